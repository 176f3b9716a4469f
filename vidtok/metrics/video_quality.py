"""Reconstruction quality: PSNR and SSIM per frame, averaged (the convention of video tokenizer papers).

Both take videos ``(B, C, T, H, W)`` (or images ``(B, C, H, W)``) with values in a known range (default
``[-1, 1]``, the model convention; pass ``data_range=(0, 1)`` or ``(0, 255)`` otherwise). Scores are
computed for every frame separately and then averaged over frames (and, for a batch, over videos), as
video papers do — not by pooling the squared error over a whole batch.

SSIM follows Wang et al. (2004) with an 11×11 Gaussian window of σ = 1.5, constants ``K1 = 0.01`` and
``K2 = 0.03``, per RGB channel with "valid" borders, averaged over channels (the convention of
``common_metrics`` and of scikit-image with ``gaussian_weights=True, use_sample_covariance=False``).

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

__all__ = ["psnr", "psnr_per_frame", "ssim", "ssim_per_frame"]


def _frames(x: torch.Tensor, name: str) -> torch.Tensor:
    """``(B, C, T, H, W)`` or ``(B, C, H, W)`` → ``(B, T, C, H, W)`` float64."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 4:
        x = x[:, :, None]
    if x.ndim != 5:
        raise ValueError(f"{name} must be (B, C, T, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
    return x.transpose(1, 2).double()


def _pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _frames(pred, "pred"), _frames(target, "target")
    if a.shape != b.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return a, b


def _span(data_range: tuple[float, float]) -> float:
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
    return 10 * torch.log10(_span(data_range) ** 2 / mse)


def psnr(pred: torch.Tensor, target: torch.Tensor, *, data_range: tuple[float, float] = (-1.0, 1.0)) -> float:
    """Mean per-frame PSNR in dB (frames of all videos averaged; see :func:`psnr_per_frame`)."""
    return float(psnr_per_frame(pred, target, data_range=data_range).mean())


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


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
    span = _span(data_range)
    lo = data_range[0]
    a = (a - lo).reshape(bsz * t * c, 1, h, w)
    b = (b - lo).reshape(bsz * t * c, 1, h, w)
    win = _gaussian_window(window_size, sigma).to(a.device)[None, None]
    filt = lambda x: F.conv2d(x, win)  # noqa: E731  (valid borders)
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
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
) -> float:
    """Mean per-frame SSIM (see :func:`ssim_per_frame`)."""
    value = ssim_per_frame(pred, target, data_range=data_range, window_size=window_size, sigma=sigma).mean()
    return float(value) if math.isfinite(float(value)) else math.nan
