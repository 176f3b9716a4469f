"""Frame sampling and spatial transforms shared by the datasets.

Two concerns live here:

* **Clip sampling** -- which frames of a video form a training clip: ``num_frames`` frames, ``stride`` apart
  (a fixed stride or one drawn from a range, as DiCoDe's tokenizer training samples strides 1 to 6, DiCoDe
  supplementary §6 "Video Diffusion Models"), starting at a random, centered or first frame.
* **Resize + center crop** -- scale a frame so that it covers the target size, keeping the aspect ratio, then
  cut the centered window (DiCoDe: "resized and center-cropped to 256x256").

Everything here works on NumPy ``uint8`` frames ``(T, H, W, C)`` and plain integers, so it can be used without
torch. [`resize_crop_plan`][vidtok.data.transforms.resize_crop_plan] computes the resize size up front, so a
reader can resize while decoding (``vidtok.io.read_video(size=...)``) and only crop afterwards.

Example:
    >>> import numpy as np
    >>> from vidtok.data.transforms import resize_center_crop, sample_clip
    >>> clip = sample_clip(100, num_frames=16, stride=(1, 6), rng=np.random.default_rng(0))
    >>> len(clip.indices), 1 <= clip.stride <= 6
    (16, True)
    >>> resize_center_crop(np.zeros((2, 90, 160, 3), np.uint8), 64).shape
    (2, 64, 64, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vidtok.io.frames import resize_frames

__all__ = [
    "Clip",
    "CropPlan",
    "center_crop",
    "clip_span",
    "parse_size",
    "parse_stride",
    "resize_center_crop",
    "resize_crop_plan",
    "sample_clip",
]

ClipStart = Literal["random", "center", "first"]


def parse_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """Normalize a target size to ``(height, width)``.

    Args:
        size: An int (square), a ``(height, width)`` pair, or ``None`` (keep the original size).

    Returns:
        ``(height, width)`` or ``None``.

    Raises:
        ValueError: If the size is not a positive int or a pair of positive ints.
    """
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        return int(size), int(size)
    try:
        h, w = size  # type: ignore[misc]
        h, w = int(h), int(w)
    except (TypeError, ValueError):
        raise ValueError(f"size must be an int or a (height, width) pair, got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


def parse_stride(stride: int | Sequence[int]) -> tuple[int, int]:
    """Normalize a frame stride to an inclusive range ``(low, high)``.

    Args:
        stride: A fixed stride ``k`` (``(k, k)``) or an inclusive range ``(low, high)`` to draw from, e.g.
            DiCoDe's ``(1, 6)``.

    Returns:
        ``(low, high)`` with ``1 <= low <= high``.

    Raises:
        ValueError: For a non-positive stride, a reversed range or anything else.
    """
    if isinstance(stride, (int, np.integer)) and not isinstance(stride, bool):
        lo = hi = int(stride)
    else:
        try:
            lo, hi = stride  # type: ignore[misc]
        except (TypeError, ValueError):
            raise ValueError(f"stride must be an int or an inclusive (low, high) range, got {stride!r}") from None
        if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in (lo, hi)):
            raise ValueError(f"stride range must hold integers, got {stride!r}")
        lo, hi = int(lo), int(hi)
    if lo < 1 or hi < lo:
        raise ValueError(f"stride must be >= 1 (a range needs 1 <= low <= high), got {stride!r}")
    return lo, hi


def clip_span(num_frames: int, stride: int) -> int:
    """Number of source frames a clip of ``num_frames`` frames ``stride`` apart covers."""
    return (num_frames - 1) * stride + 1


@dataclass(frozen=True)
class Clip:
    """Which source frames form a clip: ``start, start + stride, ...`` (``num_frames`` of them).

    Attributes:
        start: Index of the first source frame.
        stride: Step between consecutive clip frames, in source frames.
        num_frames: Number of frames in the clip.
    """

    start: int
    stride: int
    num_frames: int

    @property
    def indices(self) -> list[int]:
        """The source frame indices of the clip."""
        return [self.start + k * self.stride for k in range(self.num_frames)]

    @property
    def span(self) -> int:
        """Number of source frames covered, first to last inclusive."""
        return clip_span(self.num_frames, self.stride)


def sample_clip(
    num_available: int,
    num_frames: int,
    stride: int | Sequence[int] = 1,
    rng: np.random.Generator | None = None,
    start: ClipStart = "random",
) -> Clip:
    """Choose the frames of a clip from a video of ``num_available`` frames.

    With a stride range, the stride is drawn uniformly among the strides of the range for which the clip fits
    in the video (so short videos get smaller strides instead of failing; a video too short even for the
    smallest stride raises). Then the start is drawn uniformly among the positions where the clip fits
    (``"random"``), or the clip is centered (``"center"``) or starts at frame 0 (``"first"``). The stride is
    drawn before the start, so a generator in the same state always gives the same clip.

    Args:
        num_available: Frames in the video.
        num_frames: Frames in the clip.
        stride: Fixed stride or inclusive ``(low, high)`` range (see
            [`parse_stride`][vidtok.data.transforms.parse_stride]).
        rng: Generator for the random draws; required when anything is random.
        start: ``"random"``, ``"center"`` or ``"first"``.

    Returns:
        The [`Clip`][vidtok.data.transforms.Clip].

    Raises:
        ValueError: If the video is too short for the clip at the smallest stride, or for bad arguments.

    Example:
        >>> sample_clip(10, num_frames=4, stride=3, start="center")
        Clip(start=0, stride=3, num_frames=4)
        >>> sample_clip(20, num_frames=4, stride=2, start="center").indices
        [6, 8, 10, 12]
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
    if start not in ("random", "center", "first"):
        raise ValueError(f"start must be 'random', 'center' or 'first', got {start!r}")
    lo, hi = parse_stride(stride)
    num_available, num_frames = int(num_available), int(num_frames)
    if num_available < clip_span(num_frames, lo):
        raise ValueError(
            f"video has {num_available} frame(s) but a clip of {num_frames} frames at stride {lo} needs "
            f"{clip_span(num_frames, lo)}"
        )
    # Largest stride for which the clip still fits (any stride fits a 1-frame clip).
    fit = hi if num_frames == 1 else min(hi, (num_available - 1) // (num_frames - 1))
    if fit > lo:
        if rng is None:
            raise ValueError("a stride range needs rng (a numpy Generator) to draw from")
        chosen = int(rng.integers(lo, fit + 1))
    else:
        chosen = lo
    slack = num_available - clip_span(num_frames, chosen)
    if start == "first" or slack == 0:
        first = 0
    elif start == "center":
        first = slack // 2
    else:
        if rng is None:
            raise ValueError("start='random' needs rng (a numpy Generator)")
        first = int(rng.integers(0, slack + 1))
    return Clip(first, chosen, num_frames)


@dataclass(frozen=True)
class CropPlan:
    """How to turn an ``(H, W)`` frame into the target size: resize to ``resize``, then crop.

    Attributes:
        resize: ``(height, width)`` after the aspect-preserving resize; covers the target.
        top: First row of the crop in the resized frame.
        left: First column of the crop in the resized frame.
        size: Target ``(height, width)``.
    """

    resize: tuple[int, int]
    top: int
    left: int
    size: tuple[int, int]


def resize_crop_plan(height: int, width: int, size: int | Sequence[int]) -> CropPlan:
    """Plan a resize that covers ``size`` while keeping the aspect ratio, then a centered crop.

    The frame is scaled by ``max(target_h / height, target_w / width)`` (so the shorter side relative to the
    target matches it exactly; upscaling happens when the source is smaller), and the centered window of the
    target size is cropped.

    Args:
        height: Source height.
        width: Source width.
        size: Target size (int for square, or ``(height, width)``).

    Returns:
        The [`CropPlan`][vidtok.data.transforms.CropPlan].

    Example:
        >>> resize_crop_plan(720, 1280, 256)
        CropPlan(resize=(256, 455), top=0, left=99, size=(256, 256))
    """
    th, tw = parse_size(size)  # type: ignore[misc]
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    scale = max(th / height, tw / width)
    rh = max(th, round(height * scale))
    rw = max(tw, round(width * scale))
    return CropPlan((rh, rw), (rh - th) // 2, (rw - tw) // 2, (th, tw))


def center_crop(frames: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Cut the centered ``size`` window out of frames ``(..., H, W, C)``.

    Raises:
        ValueError: If the frames are smaller than ``size``.
    """
    th, tw = parse_size(size)  # type: ignore[misc]
    h, w = frames.shape[-3], frames.shape[-2]
    if h < th or w < tw:
        raise ValueError(f"cannot crop {th}x{tw} out of frames of size {h}x{w}; resize first")
    top, left = (h - th) // 2, (w - tw) // 2
    return frames[..., top : top + th, left : left + tw, :]


def resize_center_crop(frames: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Resize ``uint8`` frames ``(T, H, W, C)`` to cover ``size`` (keeping the aspect ratio), then center-crop.

    The resize is [`vidtok.io.resize_frames`][vidtok.io.resize_frames] (Pillow bilinear, anti-aliased), the one
    readers use while decoding. Model-layout tensors are cropped and resized by
    [`vidtok.io.center_resize`][vidtok.io.center_resize] instead (crop first, then torch interpolation).

    Args:
        frames: ``uint8`` frames ``(T, H, W, 3)``.
        size: Target size, int or ``(height, width)``.

    Returns:
        ``uint8`` frames ``(T, size_h, size_w, 3)``.
    """
    if frames.ndim != 4:
        raise ValueError(f"frames must be (T, H, W, C), got shape {frames.shape}")
    plan = resize_crop_plan(frames.shape[1], frames.shape[2], size)
    return np.ascontiguousarray(center_crop(resize_frames(frames, plan.resize), plan.size))
