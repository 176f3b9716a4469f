"""GIFs, read and written with Pillow (previews in docs; exact palettes when a frame has at most 256 colours)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from vidtok.io.base import Selector, VideoInfo, VideoReadError, partial_or_raise, pil_to_rgb
from vidtok.io.frames import resize_frames

__all__ = ["read_gif", "read_gif_info", "write_gif"]


def read_gif(
    path: Path, sel: Selector, size: tuple[int, int] | None, allow_partial: bool
) -> tuple[list[np.ndarray], int]:
    """The selected frames of a GIF (composited, RGB) and the number of frames seen."""
    frames: list[np.ndarray] = []
    index = 0
    try:
        image = Image.open(path)
    except Exception as e:  # Pillow raises assorted errors on corrupt input
        raise VideoReadError(path, f"cannot decode GIF: {e}") from e
    with image:
        try:
            while True:
                try:
                    image.seek(index)
                except EOFError:
                    # Pillow also stops here when the file is cut inside a frame; a complete GIF
                    # ends with the trailer byte ';'.
                    if _gif_truncated(path):
                        partial_or_raise(path, "GIF is truncated (no trailer)", frames, allow_partial)
                    break
                if sel.wanted(index):
                    frames.append(resize_frames(pil_to_rgb(image), size))
                    sel.count += 1
                index += 1
                if sel.done:
                    break
        except VideoReadError:
            raise
        except Exception as e:  # Pillow raises OSError, IndexError, SyntaxError, ... on corrupt frames
            partial_or_raise(path, f"GIF is truncated or corrupt: {e}", frames, allow_partial)
    if not frames and index == 0:
        raise VideoReadError(path, "no decodable GIF frames")
    return frames, index


def _gif_truncated(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b";"


def read_gif_info(path: Path) -> VideoInfo:
    """Metadata of a GIF; the frame rate comes from the frame durations (10 ms steps)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            durations = []
            while True:
                durations.append(image.info.get("duration", 0) or 0)
                try:
                    image.seek(image.tell() + 1)
                except EOFError:
                    break
    except Exception as e:  # Pillow raises assorted errors on corrupt input
        raise VideoReadError(path, f"cannot decode GIF: {e}") from e
    total_ms = float(sum(durations))
    fps = len(durations) * 1000.0 / total_ms if total_ms > 0 else None
    return VideoInfo(
        path, len(durations), fps, height, width, total_ms / 1000.0 if total_ms > 0 else None, "gif", "gif"
    )


def _gif_frame(frame: np.ndarray, lossless: bool) -> Image.Image:
    height, width, _ = frame.shape
    packed = (frame[..., 0].astype(np.uint32) << 16) | (frame[..., 1].astype(np.uint32) << 8) | frame[..., 2]
    colors, index = np.unique(packed.ravel(), return_inverse=True)
    if len(colors) <= 256:  # exact palette
        image = Image.frombytes("P", (width, height), index.astype(np.uint8).tobytes())
        palette = np.stack([(colors >> 16) & 255, (colors >> 8) & 255, colors & 255], axis=-1).astype(np.uint8)
        image.putpalette(palette.ravel().tobytes())
        return image
    if lossless:
        raise ValueError(
            f"a GIF frame holds at most 256 colours, this one has {len(colors)}: lossless=True is impossible "
            "(use .png frames or a lossless .mp4)"
        )
    return Image.fromarray(frame).quantize(colors=256, method=Image.Quantize.MEDIANCUT)


def write_gif(frames: np.ndarray, target: str, fps: Fraction, lossless: bool) -> None:
    """Write ``uint8`` frames as a looping GIF (exact palettes up to 256 colours, else median-cut)."""
    # GIF stores delays in 10 ms steps: round the cumulative time, so the average rate stays exact.
    ticks = [round(i * 100 / fps) for i in range(len(frames) + 1)]
    durations = [max(1, b - a) * 10 for a, b in zip(ticks[:-1], ticks[1:])]
    images = [_gif_frame(f, lossless) for f in frames]
    images[0].save(
        target,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=durations if len(images) > 1 else durations[0],
        loop=0,
        disposal=1,
        optimize=False,
    )
