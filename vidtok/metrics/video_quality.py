"""Reconstruction quality: PSNR, SSIM and MS-SSIM per frame, averaged (the convention of video tokenizer papers).

All take videos ``(B, C, T, H, W)`` (or images ``(B, C, H, W)``) with values in a known range (default
``[-1, 1]``, the model convention; pass ``data_range=(0, 1)`` or ``(0, 255)`` otherwise). Scores are
computed for every frame separately and then averaged over frames (and, for a batch, over videos), as
video papers do — not by pooling the squared error over a whole batch.

SSIM follows Wang et al. (2004) with an 11×11 Gaussian window of σ = 1.5, constants ``K1 = 0.01`` and
``K2 = 0.03``, per RGB channel with "valid" borders, averaged over channels (the convention of
``common_metrics`` and of scikit-image with ``gaussian_weights=True, use_sample_covariance=False``).

MS-SSIM follows Wang, Simoncelli & Bovik (2003), "Multi-scale structural similarity for image quality
assessment": 5 scales with the weights ``(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)`` and the same Gaussian
window. It is computed by torchmetrics' functional MS-SSIM (the ``eval``/``test`` extras).

Every ``*_per_frame`` function returns ``(B, T)``; the averaged forms return a float, or with ``per_video=True``
the per-frame mean of every video, ``(B,)`` (what a streaming evaluation sums over videos).

Example:
    >>> import torch
    >>> x = torch.zeros(1, 3, 2, 16, 16)
    >>> round(psnr(x, x + 0.2), 2)  # an error of 0.2 over a range of 2 -> 20 dB
    20.0
    >>> ssim(x, x)
    1.0
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "MS_SSIM_BETAS",
    "data_range_span",
    "frame_pair",
    "ms_ssim",
    "ms_ssim_min_size",
    "ms_ssim_per_frame",
    "psnr",
    "psnr_per_frame",
    "ssim",
    "ssim_per_frame",
]

#: Scale weights of Wang et al. (2003), finest scale first: the standard 5-scale MS-SSIM.
MS_SSIM_BETAS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _video(x: torch.Tensor, name: str) -> torch.Tensor:
    """``(B, C, T, H, W)`` or ``(B, C, H, W)`` → ``(B, C, T, H, W)``, values untouched."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 4:
        x = x[:, :, None]
    if x.ndim != 5:
        raise ValueError(f"{name} must be (B, C, T, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
    return x


def frame_pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A reconstruction and its reference as videos ``(B, C, T, H, W)`` of one shape, values untouched.

    Images ``(B, C, H, W)`` become one-frame videos. The checks every per-frame metric here (and LPIPS) makes.

    Raises:
        TypeError: If either is not a torch tensor.
        ValueError: If either has another number of dimensions, or their shapes differ.
    """
    a, b = _video(pred, "pred"), _video(target, "target")
    if a.shape != b.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return a, b


def _pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`frame_pair` as frames ``(B, T, C, H, W)`` float64."""
    a, b = frame_pair(pred, target)
    return a.transpose(1, 2).double(), b.transpose(1, 2).double()


def data_range_span(data_range: tuple[float, float]) -> float:
    """``high - low`` of a value range ``(low, high)``.

    Raises:
        ValueError: Unless ``high > low``.
    """
    lo, hi = data_range
    if not hi > lo:
        raise ValueError(f"data_range must be (low, high) with high > low, got {data_range}")
    return float(hi - lo)


def psnr_per_frame(
    pred: torch.Tensor, target: torch.Tensor, *, data_range: tuple[float, float] = (-1.0, 1.0)
) -> torch.Tensor:
    """PSNR in dB of every frame, ``(B, T)``; identical frames give ``inf``.

    Args:
        pred: Reconstruction ``(B, C, T, H, W)`` or ``(B, C, H, W)``.
        target: Reference of the same shape.
        data_range: ``(low, high)`` of the value range (the peak is ``high - low``).
    """
    a, b = _pair(pred, target)
    mse = (a - b).pow(2).flatten(2).mean(-1)
    return 10 * torch.log10(data_range_span(data_range) ** 2 / mse)


def psnr(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: tuple[float, float] = (-1.0, 1.0),
    per_video: bool = False,
) -> float | torch.Tensor:
    """Mean per-frame PSNR in dB (frames of all videos averaged; see :func:`psnr_per_frame`).

    With ``per_video=True``: the mean over the frames of each video, ``(B,)`` float64.
    """
    per_frame = psnr_per_frame(pred, target, data_range=data_range)
    return per_frame.mean(-1) if per_video else float(per_frame.mean())


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_per_frame(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: tuple[float, float] = (-1.0, 1.0),
    window_size: int = 11,
    sigma: float = 1.5,
) -> torch.Tensor:
    """SSIM of every frame, ``(B, T)`` (Gaussian 11/1.5 window, valid borders, channel mean).

    Args:
        pred: Reconstruction ``(B, C, T, H, W)`` or ``(B, C, H, W)``.
        target: Reference of the same shape.
        data_range: ``(low, high)`` of the value range.
        window_size: Side of the Gaussian window.
        sigma: Its standard deviation.

    Raises:
        ValueError: If a frame is smaller than the window.
    """
    a, b = _pair(pred, target)
    bsz, t, c, h, w = a.shape
    if h < window_size or w < window_size:
        raise ValueError(f"SSIM needs frames of at least {window_size}x{window_size}, got {h}x{w}")
    span = data_range_span(data_range)
    lo = data_range[0]
    a = (a - lo).reshape(bsz * t * c, 1, h, w)
    b = (b - lo).reshape(bsz * t * c, 1, h, w)
    g = _gaussian_1d(window_size, sigma).to(a.device)
    # The 2-D Gaussian is separable: two 1-D passes (valid borders) cost 2k instead of k^2 per pixel, which
    # matters in float64 on CPU; the five moments go through one batched call.
    moments = torch.cat([a, b, a * a, b * b, a * b])
    moments = F.conv2d(F.conv2d(moments, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))
    mu_a, mu_b, ex_aa, ex_bb, ex_ab = moments.chunk(5)
    var_a = ex_aa - mu_a**2
    var_b = ex_bb - mu_b**2
    cov = ex_ab - mu_a * mu_b
    c1, c2 = (0.01 * span) ** 2, (0.03 * span) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(-1).reshape(bsz, t, c).mean(-1)


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: tuple[float, float] = (-1.0, 1.0),
    window_size: int = 11,
    sigma: float = 1.5,
    per_video: bool = False,
) -> float | torch.Tensor:
    """Mean per-frame SSIM (see :func:`ssim_per_frame`); with ``per_video=True`` the mean of each video, ``(B,)``."""
    per_frame = ssim_per_frame(pred, target, data_range=data_range, window_size=window_size, sigma=sigma)
    if per_video:
        return per_frame.mean(-1)
    value = per_frame.mean()
    return float(value) if math.isfinite(float(value)) else math.nan


def ms_ssim_min_size(num_scales: int = len(MS_SSIM_BETAS), window_size: int = 11) -> int:
    """Smallest frame side MS-SSIM accepts: 176 px for the standard 5 scales and 11-px window.

    The coarsest scale, after ``num_scales - 1`` halvings (2×2 average pooling, rounding down), must still hold
    one window; torchmetrics additionally asks ``side // max(1, num_scales - 1) ** 2 >= window_size`` (the
    same bound for 3 and 5 scales, stricter for 4).
    """
    if num_scales < 1:
        raise ValueError(f"num_scales must be >= 1, got {num_scales}")
    return window_size * max(2 ** (num_scales - 1), max(1, num_scales - 1) ** 2)


def ms_ssim_per_frame(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: tuple[float, float] = (-1.0, 1.0),
    betas: tuple[float, ...] | None = None,
) -> torch.Tensor:
    """MS-SSIM of every frame, ``(B, T)`` (Wang et al. 2003; torchmetrics' functional MS-SSIM).

    The standard protocol: 5 scales weighted by :data:`MS_SSIM_BETAS`, an 11×11 Gaussian window of σ = 1.5,
    ``K1 = 0.01``, ``K2 = 0.03``, 2×2 average pooling between scales, frames of at least 176×176. Per frame,
    the channel-mean contrast-structure terms of the finer scales and the channel-mean SSIM of the coarsest
    are raised to their weights and multiplied; negative terms are clipped to 0 first (torchmetrics'
    ``normalize="relu"``, as pytorch-msssim does), which keeps very dissimilar frames from producing NaN.
    torchmetrics averages the coarsest scale's SSIM over the whole reflect-padded frame (the finer scales use
    valid windows only), where Wang et al. and pytorch-msssim keep valid windows throughout: measured on
    176×176 frames with Gaussian noise of σ = 0.05 / 0.1 / 0.3 (in [-1, 1] units) the two conventions differ
    by 5e-5 / 2e-4 / 9e-4 (2e-5 / 2e-5 / 7e-4 at 256×256). Compare MS-SSIM numbers only within one convention.

    Values are shifted so that ``data_range[0]`` maps to 0 and passed with the span as the data range, as
    :func:`ssim_per_frame` does (they are not clipped to the range).

    Args:
        pred: Reconstruction ``(B, C, T, H, W)`` or ``(B, C, H, W)``.
        target: Reference of the same shape.
        data_range: ``(low, high)`` of the value range.
        betas: Scale weights, finest first. ``None`` is the standard 5-scale protocol. Fewer weights allow
            smaller frames (3 scales: 44 px) but give **non-standard** numbers, not comparable to papers;
            label them as such.

    Raises:
        ValueError: If a frame is smaller than :func:`ms_ssim_min_size` for the number of scales, or the
            shapes/range are invalid.
        ModuleNotFoundError: If torchmetrics is not installed.
    """
    a, b = _pair(pred, target)
    weights = MS_SSIM_BETAS if betas is None else tuple(float(x) for x in betas)
    if not weights or any(not math.isfinite(x) or x < 0 for x in weights):
        raise ValueError(f"betas must be non-empty, finite and >= 0, got {betas}")
    bsz, t, c, h, w = a.shape
    need = ms_ssim_min_size(len(weights))
    if h < need or w < need:
        hint = "" if betas is not None else "; pass betas with fewer scales for smaller frames (non-standard numbers)"
        raise ValueError(
            f"MS-SSIM with {len(weights)} scales and an 11x11 window needs frames of at least {need}x{need}, "
            f"got {h}x{w}{hint}"
        )
    try:
        from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as tm_ms_ssim
    except ImportError as err:  # pragma: no cover - torchmetrics is in the test and eval extras
        raise ModuleNotFoundError(
            "MS-SSIM needs torchmetrics: pip install 'vidtok[eval]' (or pip install torchmetrics)"
        ) from err
    span, lo = data_range_span(data_range), data_range[0]
    # float32 as torchmetrics and pytorch-msssim compute it: float64 convolutions are ~20x slower on CPU and
    # change the score by less than 1e-6. A float data range, not a tuple: torchmetrics clips to a tuple range.
    values = tm_ms_ssim(
        (a - lo).float().reshape(bsz * t, c, h, w),
        (b - lo).float().reshape(bsz * t, c, h, w),
        gaussian_kernel=True,
        sigma=1.5,
        kernel_size=11,
        reduction="none",
        data_range=span,
        k1=0.01,
        k2=0.03,
        betas=weights,
        normalize="relu",
    )
    return values.double().reshape(bsz, t)


def ms_ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: tuple[float, float] = (-1.0, 1.0),
    betas: tuple[float, ...] | None = None,
    per_video: bool = False,
) -> float | torch.Tensor:
    """Mean per-frame MS-SSIM (see :func:`ms_ssim_per_frame`); with ``per_video=True`` each video's, ``(B,)``."""
    per_frame = ms_ssim_per_frame(pred, target, data_range=data_range, betas=betas)
    return per_frame.mean(-1) if per_video else float(per_frame.mean())
