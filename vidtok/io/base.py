"""What every part of vidtok.io shares: the file extensions, ``VideoInfo``, ``VideoReadError`` and frame selection."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Layout",
    "OutputType",
    "Selector",
    "VideoInfo",
    "VideoReadError",
    "partial_or_raise",
    "pil_to_rgb",
]


VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".gif")
"""File extensions read as (multi-frame) videos: container formats via PyAV, `.gif` via Pillow."""

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
"""File extensions read as single images (a 1-frame video) or as frames of an image folder."""

OutputType = Literal["np", "pt", "pil"]

Layout = Literal["auto", "thwc", "cthw"]


class VideoReadError(ValueError):
    """A file exists but could not be decoded as a video (corrupt, truncated or not a video).

    Data loaders can catch this to skip bad files. It subclasses `ValueError`.

    Attributes:
        path: The file (or folder) that failed.
        reason: What went wrong, usually the decoder's own message.

    Example:
        >>> err = VideoReadError("clip.mp4", "moov atom not found")
        >>> str(err)
        'could not read video clip.mp4: moov atom not found'
    """

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"could not read video {path}: {reason}")

    def __reduce__(self):  # keep picklable (DataLoader workers send exceptions between processes)
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class VideoInfo:
    """Metadata of a video file, GIF, image or folder of images.

    Returned by [`read_video_info`][vidtok.io.read_video_info].

    Attributes:
        path: The path that was inspected.
        num_frames: Number of frames. Exact when `num_frames_exact` is true, otherwise estimated from
            `duration * fps` (e.g. Matroska/WebM files, which do not store a frame count).
        fps: Frames per second, or `None` for images and folders (which have no timing). For GIFs it is
            derived from the frame durations, which GIF stores in 10 ms steps.
        height: Frame height in pixels.
        width: Frame width in pixels.
        duration: Length in seconds, or `None` when unknown (images, folders).
        codec: The codec or image format, e.g. `"h264"`, `"gif"`, `"png"`.
        container: The container, taken from the extension (`"mp4"`, `"gif"`, `"png"`) or
            `"folder"` for a folder of images.
        num_frames_exact: Whether `num_frames` was read from the file rather than estimated.
    """

    path: Path
    num_frames: int
    fps: float | None
    height: int
    width: int
    duration: float | None
    codec: str
    container: str
    num_frames_exact: bool = True


def pil_to_rgb(image: Image.Image) -> np.ndarray:
    """An RGB ``uint8`` array ``(H, W, 3)`` of a PIL image (alpha dropped, palettes expanded)."""
    return np.asarray(image.convert("RGB"))


class Selector:
    """Tracks which decoded frame indices are wanted and when reading can stop."""

    def __init__(self, start: int, num_frames: int | None, stride: int):
        self.start, self.num_frames, self.stride = int(start), num_frames, int(stride)
        self.count = 0

    def wanted(self, index: int) -> bool:
        """Whether decoded frame ``index`` is one of the requested frames."""
        return index >= self.start and (index - self.start) % self.stride == 0

    @property
    def done(self) -> bool:
        """Whether enough frames were collected (reading can stop)."""
        return self.num_frames is not None and self.count >= self.num_frames


def partial_or_raise(path: Path, reason: str, frames: list[np.ndarray], allow_partial: bool) -> None:
    """Raise ``VideoReadError`` for a damaged file, or warn when ``allow_partial`` and some frames were decoded."""
    if not allow_partial or not frames:
        raise VideoReadError(path, reason)
    warnings.warn(
        f"{path}: {reason}; returning the {len(frames)} frame(s) decoded before the problem",
        RuntimeWarning,
        stacklevel=4,
    )
