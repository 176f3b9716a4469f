"""Single images and folders of images (frames sorted naturally by file name), with Pillow."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vidtok.io.base import IMAGE_EXTENSIONS, Selector, VideoInfo, VideoReadError, pil_to_rgb
from vidtok.io.frames import resize_frames

__all__ = ["PIL_WRITE_FORMATS", "folder_images", "read_images", "read_images_info", "write_image"]


PIL_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}


def _natural_key(name: str) -> list[Any]:
    """Sort key that orders `frame2` before `frame10`."""
    return [(0, int(part), part) if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name)]


def folder_images(path: Path) -> list[Path]:
    """The image files of a folder in natural order (``frame2`` before ``frame10``), hidden files skipped."""
    files = [
        p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]
    if not files:
        raise VideoReadError(path, f"folder contains no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return sorted(files, key=lambda p: _natural_key(p.name))


def _load_image(path: Path, video: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return pil_to_rgb(image)
    except Exception as e:  # Pillow raises assorted errors on corrupt input
        raise VideoReadError(video, f"cannot decode image {path.name}: {e}") from e


def read_images(
    files: list[Path], video: Path, sel: Selector, size: tuple[int, int] | None
) -> tuple[list[np.ndarray], int]:
    """The selected frames of a list of image files and the number of files."""
    chosen = files[sel.start :: sel.stride]
    if sel.num_frames is not None:
        chosen = chosen[: sel.num_frames]
    frames = []
    for file in chosen:
        frame = resize_frames(_load_image(file, video), size)
        if frames and frame.shape != frames[0].shape:
            raise VideoReadError(
                video,
                f"image {file.name} is {frame.shape[1]}x{frame.shape[0]} but {chosen[0].name} is "
                f"{frames[0].shape[1]}x{frames[0].shape[0]} (pass size=(H, W) to resize all frames)",
            )
        frames.append(frame)
    return frames, len(files)


def read_images_info(files: list[Path], path: Path, kind: str) -> VideoInfo:
    """Metadata of an image (``kind="image"``) or of a folder of images (``kind="folder"``), from the first file."""
    try:
        with Image.open(files[0]) as image:
            width, height = image.size
            codec = (image.format or files[0].suffix.lstrip(".")).lower()
    except Exception as e:  # Pillow raises assorted errors on corrupt input
        raise VideoReadError(path, f"cannot decode image {files[0].name}: {e}") from e
    container = "folder" if kind == "folder" else path.suffix.lower().lstrip(".")
    return VideoInfo(path, len(files), None, height, width, None, codec, container)


def write_image(frames: np.ndarray, target: str, ext: str, lossless: bool) -> None:
    """Write a one-frame video as a single image."""
    if frames.shape[0] != 1:
        raise ValueError(
            f"{ext} holds a single frame, got {frames.shape[0]} frames; save to .mp4/.gif, or save frames one by one"
        )
    fmt = PIL_WRITE_FORMATS[ext]
    kwargs: dict[str, Any] = {}
    if fmt == "JPEG":
        if lossless:
            raise ValueError("JPEG cannot be lossless; use .png")
        kwargs = {"quality": 95}
    elif fmt == "WEBP":
        kwargs = {"lossless": True} if lossless else {"quality": 95}
    Image.fromarray(frames[0]).save(target, format=fmt, **kwargs)
