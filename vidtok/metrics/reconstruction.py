"""Reconstruction metrics of a video tokenizer: quality (PSNR, SSIM, MS-SSIM, LPIPS) and compression (bpp, tokens/s).

Quality is computed per frame and averaged over the frames of each video, then over videos
(:mod:`vidtok.metrics.video_quality`, :mod:`vidtok.metrics.lpips`). Compression comes from the tokenizer's
``token_layout`` alone — no model is run:

* ``bits_per_pixel`` — discrete codes: ``Σ_levels steps × tokens × log2(codebook) / (T × H × W)`` (HiTVideo's
  bpp, summed over the levels of a hierarchical codebook); ``None`` for continuous tokens, which have no
  codebook (the ``notes`` entry says so);
* ``tokens_per_pixel`` — ``Σ_levels steps × tokens / (T × H × W)``, for any tokenizer;
* ``tokens_per_second`` — at the given ``fps``, the first-frame step amortized away.

A metric that cannot be given is ``None`` and its entry in ``result["notes"]`` says why (frames too small for the
standard MS-SSIM, no LPIPS network, continuous tokens, no ``fps``). LPIPS with a random backbone is reported
but labelled not comparable.

Example:
    >>> import torch
    >>> target = torch.zeros(2, 3, 5, 16, 16)
    >>> result = reconstruction_metrics(target + 0.2, target)
    >>> round(result["psnr"], 2), result["ms_ssim"]
    (20.0, None)
    >>> notes = result["notes"]
    >>> notes["ms_ssim"]  # doctest: +ELLIPSIS
    'MS-SSIM with 5 scales and an 11x11 window needs frames of at least 176x176, got 16x16...'
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vidtok.metrics.lpips import LPIPS, lpips_video
from vidtok.metrics.video_quality import ms_ssim, psnr, ssim

__all__ = ["QUALITY_METRICS", "ReconstructionAccumulator", "compression_metrics", "reconstruction_metrics"]

#: The quality metrics, in report order.
QUALITY_METRICS = ("psnr", "ssim", "ms_ssim", "lpips")


def compression_metrics(
    tokenizer: Any, num_frames: int, height: int, width: int, *, fps: float | None = None
) -> dict[str, Any]:
    """Bits per pixel, tokens per pixel and tokens per second of a tokenizer, from its ``token_layout``.

    The tokenizer's own ``bits_per_pixel`` / ``tokens_per_second`` are used where it has them (any
    :class:`~vidtok.tokenizers.base.VideoTokenizer`); otherwise they are derived from the layout the same way.

    Args:
        tokenizer: An object with ``token_layout(num_frames, height, width)`` returning ``TokenLevel`` s.
        num_frames: Frames ``T`` of the input videos.
        height: Frame height ``H`` in pixels.
        width: Frame width ``W`` in pixels.
        fps: Frame rate for ``tokens_per_second`` (``None``: not reported).

    Returns:
        ``{"bits_per_pixel", "tokens_per_pixel", "tokens_per_second", "notes"}``; a value is ``None`` where
        undefined and ``notes`` maps its name to the reason.
    """
    if not callable(getattr(tokenizer, "token_layout", None)):
        raise TypeError(f"tokenizer must have a token_layout(num_frames, height, width) method, got {type(tokenizer)}")
    for key, value in (("num_frames", num_frames), ("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive int, got {value!r}")
    layout = tokenizer.token_layout(num_frames, height, width)
    pixels = num_frames * height * width
    notes: dict[str, str] = {}
    result: dict[str, Any] = {"tokens_per_pixel": sum(lv.steps * lv.tokens for lv in layout) / pixels}
    continuous = [lv.name for lv in layout if lv.codebook_size is None]
    if continuous:
        result["bits_per_pixel"] = None
        notes["bits_per_pixel"] = (
            f"continuous tokens (level(s) {', '.join(continuous)} have no codebook): bits per pixel is defined "
            "for discrete codes only; see tokens_per_pixel"
        )
    elif callable(getattr(tokenizer, "bits_per_pixel", None)):
        result["bits_per_pixel"] = float(tokenizer.bits_per_pixel(num_frames, height, width))
    else:
        result["bits_per_pixel"] = sum(lv.steps * lv.tokens * math.log2(lv.codebook_size) for lv in layout) / pixels
    if fps is None:
        result["tokens_per_second"] = None
        notes["tokens_per_second"] = "fps not given"
    elif callable(getattr(tokenizer, "tokens_per_second", None)):
        result["tokens_per_second"] = float(tokenizer.tokens_per_second(fps, height, width))
    else:
        one = tokenizer.token_layout(1, height, width)
        result["tokens_per_second"] = sum(fps / lv.frames_per_step * lv.tokens for lv in one)
    result["notes"] = notes
    return result


class ReconstructionAccumulator:
    """Streams batches of (reconstruction, reference) videos and returns the mean metrics over all videos.

    Every batch adds, per metric, the sum of its videos' per-frame means, so the result is the mean over videos
    of each video's frame mean — the same as :func:`reconstruction_metrics` on all videos at once when they have
    the same length.

    Args:
        tokenizer: For the compression entries (see :func:`compression_metrics`); ``None`` to leave them out.
        num_frames: ``T`` for the compression entries; default: the frames of the videos added.
        height: ``H``; default: that of the videos added.
        width: ``W``; default: that of the videos added.
        fps: Frame rate for ``tokens_per_second``.
        lpips: An :class:`~vidtok.metrics.lpips.LPIPS` network; ``None``: no LPIPS (noted in the result).
        data_range: ``(low, high)`` of the video values.
        ms_ssim: Whether to compute MS-SSIM (the standard 5 scales; frames of at least 176×176).
        lpips_batch_size: Frames per LPIPS forward pass.

    Example:
        >>> import torch
        >>> acc = ReconstructionAccumulator()
        >>> target = torch.zeros(1, 3, 2, 16, 16)
        >>> _ = acc.update(target + 0.2, target)  # 20 dB
        >>> _ = acc.update(target + 0.02, target)  # 40 dB
        >>> round(acc.compute()["psnr"], 6), acc.num_videos
        (30.0, 2)
    """

    def __init__(
        self,
        *,
        tokenizer: Any = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        fps: float | None = None,
        lpips: LPIPS | None = None,
        data_range: tuple[float, float] = (-1.0, 1.0),
        ms_ssim: bool = True,
        lpips_batch_size: int = 32,
    ) -> None:
        lo, hi = data_range
        if not hi > lo:
            raise ValueError(f"data_range must be (low, high) with high > low, got {data_range}")
        self.tokenizer = tokenizer
        self.num_frames, self.height, self.width, self.fps = num_frames, height, width, fps
        self.lpips = lpips
        self.data_range = (float(lo), float(hi))
        self.ms_ssim = ms_ssim
        self.lpips_batch_size = lpips_batch_size
        self.reset()

    def reset(self) -> None:
        """Forget every batch added."""
        self.num_videos = 0
        self.num_frames_seen = 0
        self._sums = {name: 0.0 for name in QUALITY_METRICS}
        self._counts = {name: 0 for name in QUALITY_METRICS}
        self._skipped: dict[str, str] = {}
        self._sizes: set[tuple[int, int, int]] = set()

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Add a batch ``(B, C, T, H, W)`` (or images ``(B, C, H, W)``).

        Returns:
            Each computed metric's per-video values ``(B,)`` (frame means) for this batch, for per-video logs.
        """
        if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
            raise TypeError(
                f"pred and target must be torch.Tensors, got {type(pred).__name__}, {type(target).__name__}"
            )
        kw = {"data_range": self.data_range, "per_video": True}
        values = {"psnr": psnr(pred, target, **kw), "ssim": ssim(pred, target, **kw)}
        h, w = pred.shape[-2:]
        if not self.ms_ssim:
            self._skipped.setdefault("ms_ssim", "not requested (ms_ssim=False)")
        else:
            try:
                values["ms_ssim"] = ms_ssim(pred, target, **kw)
            except ValueError as err:  # frames below the standard 5-scale minimum (shapes were checked above)
                self._skipped.setdefault("ms_ssim", str(err))
        if self.lpips is not None:
            values["lpips"] = lpips_video(pred, target, self.lpips, self.lpips_batch_size, **kw)
        for name, per_video in values.items():
            self._sums[name] += float(per_video.sum())
            self._counts[name] += per_video.numel()
        t = pred.shape[2] if pred.ndim == 5 else 1
        self.num_videos += pred.shape[0]
        self.num_frames_seen += pred.shape[0] * t
        self._sizes.add((t, int(h), int(w)))
        return values

    def compute(self) -> dict[str, Any]:
        """Mean metrics over all videos added so far.

        Returns:
            ``psnr``, ``ssim``, ``ms_ssim``, ``lpips`` (floats or ``None``), with a tokenizer ``bits_per_pixel``,
            ``tokens_per_pixel`` and ``tokens_per_second``; ``num_videos``, ``num_frames`` (frames scored),
            ``lpips_protocol`` (the LPIPS network's :attr:`~vidtok.metrics.lpips.LPIPS.protocol`, or ``None``)
            and ``notes``: the reason for each ``None`` and for LPIPS numbers that are not comparable.

        Raises:
            ValueError: If no batch was added.
        """
        if not self.num_videos:
            raise ValueError("no videos were added: call update(pred, target) first")
        notes: dict[str, str] = {}
        result: dict[str, Any] = {}
        for name in QUALITY_METRICS:
            # A metric missing from some batches would average different videos than the others: drop it.
            if name in self._skipped or self._counts[name] != self.num_videos:
                result[name] = None
                notes[name] = self._skipped.get(name, f"{name} not computed")
            else:
                result[name] = self._sums[name] / self._counts[name]
        if self.lpips is None:
            notes["lpips"] = "no LPIPS network given (it needs local backbone weights: vidtok.metrics.lpips.LPIPS)"
            result["lpips_protocol"] = None
        else:
            result["lpips_protocol"] = dict(self.lpips.protocol)
            if not self.lpips.protocol.get("comparable", False):
                notes["lpips"] = f"{self.lpips.protocol.get('backbone')}: numbers are not comparable to papers"
        if self.tokenizer is not None:
            sizes = {(self.num_frames or t, self.height or h, self.width or w) for t, h, w in self._sizes}
            if len(sizes) == 1:
                comp = compression_metrics(self.tokenizer, *next(iter(sizes)), fps=self.fps)
                notes.update(comp.pop("notes"))
                result.update(comp)
            else:
                reason = f"videos of several sizes {sorted(sizes)}: give num_frames, height and width"
                for name in ("bits_per_pixel", "tokens_per_pixel", "tokens_per_second"):
                    result[name] = None
                    notes[name] = reason
        result["num_videos"] = self.num_videos
        result["num_frames"] = self.num_frames_seen
        result["notes"] = notes
        return result


def reconstruction_metrics(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    tokenizer: Any = None,
    num_frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
    fps: float | None = None,
    lpips: LPIPS | None = None,
    data_range: tuple[float, float] = (-1.0, 1.0),
) -> dict[str, Any]:
    """Quality and compression metrics of reconstructions ``pred`` of ``target`` (videos ``(B, C, T, H, W)``).

    One batch through :class:`ReconstructionAccumulator`; see :meth:`ReconstructionAccumulator.compute` for the
    keys. ``num_frames``/``height``/``width`` default to the videos' own (the tokenizer's input size).

    Args:
        pred: Reconstructions, values in ``data_range``.
        target: References of the same shape.
        tokenizer: For ``bits_per_pixel``, ``tokens_per_pixel`` and ``tokens_per_second``.
        num_frames: ``T`` of the tokenizer's input, if not the videos'.
        height: ``H`` of the tokenizer's input, if not the videos'.
        width: ``W`` of the tokenizer's input, if not the videos'.
        fps: Frame rate for ``tokens_per_second``.
        lpips: An :class:`~vidtok.metrics.lpips.LPIPS` network (``None``: no LPIPS).
        data_range: ``(low, high)`` of the values.
    """
    acc = ReconstructionAccumulator(
        tokenizer=tokenizer,
        num_frames=num_frames,
        height=height,
        width=width,
        fps=fps,
        lpips=lpips,
        data_range=data_range,
    )
    acc.update(pred, target)
    return acc.compute()
