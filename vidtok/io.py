"""Reading and writing videos: files, GIFs, images and folders of frames.

Conventions used across vidtok:

* **Model layout** -- inside models a video is a float tensor `(B, C, T, H, W)` (or unbatched
  `(C, T, H, W)`) with values in `[-1, 1]`.
* **Frames** -- the user-facing form (like diffusers' `output_type="np"`) is channels-last
  `(T, H, W, C)`: `uint8` in `[0, 255]` or float in `[0, 1]`. A batch `(1, T, H, W, C)`,
  a torch tensor, or a list of PIL images is accepted wherever frames are expected.

[`read_video`][vidtok.io.read_video] returns `uint8` frames `(T, H, W, 3)` (`output_type="np"`) or a
model-layout tensor `(C, T, H, W)` in `[-1, 1]` (`output_type="pt"`). [`save_video`][vidtok.io.save_video]
accepts any of the forms above and picks the writer from the file extension: H.264 `.mp4` for viewing
(`lossless=True` for bit-exact round trips), `.gif` for previews in docs, `.png`/`.jpg` for a single frame.
[`frames_to_tensor`][vidtok.io.frames_to_tensor] and [`tensor_to_frames`][vidtok.io.tensor_to_frames]
convert between the two conventions.

Importing this module does not import torch; torch is imported only by the functions that return or
receive tensors.
"""

from __future__ import annotations

import errno
import math
import os
import re
import secrets
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import av
import numpy as np
from PIL import Image

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "VideoReadError",
    "frames_to_tensor",
    "read_video",
    "read_video_info",
    "save_video",
    "tensor_to_frames",
]

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".gif")
"""File extensions read as (multi-frame) videos: container formats via PyAV, `.gif` via Pillow."""

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
"""File extensions read as single images (a 1-frame video) or as frames of an image folder."""

# Container name PyAV/FFmpeg uses when writing each video extension.
_AV_WRITE_FORMATS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".avi": "avi",
    ".webm": "webm",
}
_PIL_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}
_WRITE_EXTENSIONS = (*_AV_WRITE_FORMATS, ".gif", *_PIL_WRITE_FORMATS)

# Encoders that understand a `crf` option, with the default used when `crf=None`.
_CRF_DEFAULTS = {"libx264": 18, "libx265": 20, "libvpx-vp9": 32, "libaom-av1": 32, "libsvtav1": 32}

# Float frames may exceed [0, 1] by this much (rounding noise); they are clipped to [0, 1].
_RANGE_TOLERANCE = 1e-2

# FFmpeg's enum value for SMPTE 170M (BT.601), the matrix swscale uses for RGB <-> YUV by default.
_AVCOL_SMPTE170M = 6
_AVCOL_RANGE_MPEG = 1

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


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def _natural_key(name: str) -> list[Any]:
    """Sort key that orders `frame2` before `frame10`."""
    return [(0, int(part), part) if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name)]


def _source_kind(path: Path) -> str:
    """Return `"folder"`, `"gif"`, `"image"` or `"av"` for an existing path, or raise."""
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "video file or folder not found", str(path))
    if path.is_dir():
        return "folder"
    ext = path.suffix.lower()
    if ext == ".gif":
        return "gif"
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "av"
    raise ValueError(
        f"unsupported file extension {path.suffix!r} for {path}; supported: "
        f"videos {', '.join(VIDEO_EXTENSIONS)}; images {', '.join(IMAGE_EXTENSIONS)}; or a folder of images"
    )


def _folder_images(path: Path) -> list[Path]:
    files = [
        p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]
    if not files:
        raise VideoReadError(path, f"folder contains no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return sorted(files, key=lambda p: _natural_key(p.name))


def _check_selection(start: int, num_frames: int | None, stride: int) -> None:
    if not isinstance(start, (int, np.integer)) or isinstance(start, bool) or start < 0:
        raise ValueError(f"start must be a non-negative integer, got {start!r}")
    if num_frames is not None and (
        not isinstance(num_frames, (int, np.integer)) or isinstance(num_frames, bool) or num_frames < 1
    ):
        raise ValueError(f"num_frames must be a positive integer or None, got {num_frames!r}")
    if not isinstance(stride, (int, np.integer)) or isinstance(stride, bool) or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")


def _check_size(size: Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be a (height, width) pair of positive integers, got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be a (height, width) pair of positive integers, got {size!r}")
    return h, w


def _resize(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or frame.shape[:2] == size:
        return frame
    # Pillow's bilinear filter widens its support when downscaling, so it also anti-aliases.
    return np.asarray(Image.fromarray(frame).resize((size[1], size[0]), Image.Resampling.BILINEAR))


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


class _Selector:
    """Tracks which decoded frame indices are wanted and when reading can stop."""

    def __init__(self, start: int, num_frames: int | None, stride: int):
        self.start, self.num_frames, self.stride = int(start), num_frames, int(stride)
        self.count = 0

    def wanted(self, index: int) -> bool:
        return index >= self.start and (index - self.start) % self.stride == 0

    @property
    def done(self) -> bool:
        return self.num_frames is not None and self.count >= self.num_frames


def _partial_or_raise(path: Path, reason: str, frames: list[np.ndarray], allow_partial: bool) -> None:
    if not allow_partial or not frames:
        raise VideoReadError(path, reason)
    warnings.warn(
        f"{path}: {reason}; returning the {len(frames)} frame(s) decoded before the problem",
        RuntimeWarning,
        stacklevel=4,
    )


def _open_av(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as e:
        raise VideoReadError(path, _ffmpeg_message(e)) from e


def _ffmpeg_message(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e)


def _read_av(
    path: Path, sel: _Selector, size: tuple[int, int] | None, allow_partial: bool
) -> tuple[list[np.ndarray], int]:
    frames: list[np.ndarray] = []
    index = 0
    with _open_av(path) as container:
        if not container.streams.video:
            raise VideoReadError(path, "file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 0) or None
        last_time = None
        error = None
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if sel.wanted(index):
                        frames.append(_resize(frame.to_ndarray(format="rgb24"), size))
                        sel.count += 1
                    index += 1
                    last_time = frame.time
                    if sel.done:
                        return frames, index
        except av.FFmpegError as e:
            error = _ffmpeg_message(e)
        if error is None:
            error = _truncation(stream, index, last_time, fps)
        if error is not None:
            _partial_or_raise(path, error, frames, allow_partial)
    if index == 0:
        raise VideoReadError(path, "no decodable video frames")
    return frames, index


def _truncation(stream: av.video.stream.VideoStream, decoded: int, last_time: float | None, fps: float | None):
    """Return a message if the stream ended before the length its container declares, else None."""
    declared = stream.frames or 0
    short_by_count = declared > 0 and decoded < declared
    short_by_time = None
    if stream.duration and stream.time_base and fps and last_time is not None:
        expected_end = float((stream.duration + (stream.start_time or 0)) * stream.time_base)
        short_by_time = last_time + 1.0 / fps < expected_end - 1.5 / fps
    if declared > 0 and short_by_time is not None:
        truncated = short_by_count and short_by_time
    elif declared > 0:
        truncated = short_by_count
    else:
        truncated = bool(short_by_time)
    if not truncated:
        return None
    if declared > 0:
        return f"file is truncated or corrupt: decoded {decoded} of {declared} frames"
    return f"file is truncated or corrupt: decoding stopped at {last_time:.3f}s"


def _read_gif(
    path: Path, sel: _Selector, size: tuple[int, int] | None, allow_partial: bool
) -> tuple[list[np.ndarray], int]:
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
                        _partial_or_raise(path, "GIF is truncated (no trailer)", frames, allow_partial)
                    break
                if sel.wanted(index):
                    frames.append(_resize(_pil_to_rgb(image), size))
                    sel.count += 1
                index += 1
                if sel.done:
                    break
        except VideoReadError:
            raise
        except Exception as e:  # Pillow raises OSError, IndexError, SyntaxError, ... on corrupt frames
            _partial_or_raise(path, f"GIF is truncated or corrupt: {e}", frames, allow_partial)
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


def _load_image(path: Path, video: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return _pil_to_rgb(image)
    except Exception as e:  # Pillow raises assorted errors on corrupt input
        raise VideoReadError(video, f"cannot decode image {path.name}: {e}") from e


def _read_images(
    files: list[Path], video: Path, sel: _Selector, size: tuple[int, int] | None
) -> tuple[list[np.ndarray], int]:
    chosen = files[sel.start :: sel.stride]
    if sel.num_frames is not None:
        chosen = chosen[: sel.num_frames]
    frames = []
    for file in chosen:
        frame = _resize(_load_image(file, video), size)
        if frames and frame.shape != frames[0].shape:
            raise VideoReadError(
                video,
                f"image {file.name} is {frame.shape[1]}x{frame.shape[0]} but {chosen[0].name} is "
                f"{frames[0].shape[1]}x{frames[0].shape[0]} (pass size=(H, W) to resize all frames)",
            )
        frames.append(frame)
    return frames, len(files)


def read_video(
    path: str | os.PathLike[str],
    *,
    output_type: OutputType = "np",
    start: int = 0,
    num_frames: int | None = None,
    stride: int = 1,
    size: Sequence[int] | None = None,
    allow_partial: bool = False,
) -> np.ndarray | torch.Tensor | list[Image.Image]:
    """Read a video file, GIF, image or folder of images.

    Supported sources: video files (`.mp4`, `.m4v`, `.mov`, `.avi`, `.mkv`, `.webm`, decoded with
    PyAV), `.gif` (all frames, composited, RGB), a single image (`.png`, `.jpg`, `.jpeg`, `.webp`,
    `.bmp`; a 1-frame video) or a folder of such images, sorted naturally by file name (`frame2`
    before `frame10`; hidden files are ignored). Frames are always converted to RGB (alpha is dropped).

    Frames `start, start + stride, start + 2 * stride, ...` are returned, at most `num_frames` of them:
    the result equals `read_video(path)[start::stride][:num_frames]`. Decoding stops as soon as enough
    frames are read (frames before `start` are still decoded, video codecs need them). If the video
    ends first, fewer frames are returned.

    Truncated or corrupt files raise [`VideoReadError`][vidtok.io.VideoReadError] when any requested frame cannot be
    decoded (including when the stream ends before the frame count or duration its container
    declares). A window that lies entirely in the intact part of a truncated file is returned
    normally. With `allow_partial=True` the frames decoded before the problem are returned instead,
    with a `RuntimeWarning`; a file with no decodable frame still raises.

    Args:
        path: File or folder to read.
        output_type: `"np"` for a `uint8` array `(T, H, W, 3)`; `"pt"` for a `float32` torch
            tensor `(3, T, H, W)` in `[-1, 1]` (the model layout); `"pil"` for a list of RGB PIL images.
        start: Index of the first frame to return.
        num_frames: Maximum number of frames to return; `None` reads to the end.
        stride: Step between returned frames (`2` returns every other frame).
        size: Optional `(height, width)` to resize every frame to (bilinear with anti-aliasing).
        allow_partial: Return the decodable frames of a truncated/corrupt file (with a warning) instead
            of raising.

    Returns:
        The frames, in the form chosen by `output_type`.

    Raises:
        FileNotFoundError: If `path` does not exist.
        ValueError: For an unsupported extension, invalid arguments, or a `start` past the last frame.
        VideoReadError: If the file cannot be decoded, is truncated (see above), or a folder holds no
            images or images of different sizes.

    Example:
        >>> import tempfile, numpy as np
        >>> from vidtok.io import read_video, save_video
        >>> frames = np.zeros((8, 32, 32, 3), dtype=np.uint8)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = save_video(frames, f"{d}/clip.mp4", fps=8)
        ...     video = read_video(path)
        ...     window = read_video(path, output_type="pt", start=2, num_frames=3, stride=2)
        >>> video.shape, video.dtype
        ((8, 32, 32, 3), dtype('uint8'))
        >>> tuple(window.shape)
        (3, 3, 32, 32)
    """
    path = Path(path)
    kind = _source_kind(path)
    _check_selection(start, num_frames, stride)
    size = _check_size(size)
    if output_type not in ("np", "pt", "pil"):
        raise ValueError(f"output_type must be 'np', 'pt' or 'pil', got {output_type!r}")

    sel = _Selector(start, num_frames, stride)
    if kind == "av":
        frames, total = _read_av(path, sel, size, allow_partial)
    elif kind == "gif":
        frames, total = _read_gif(path, sel, size, allow_partial)
    elif kind == "image":
        frames, total = _read_images([path], path, sel, size)
    else:
        frames, total = _read_images(_folder_images(path), path, sel, size)

    if not frames:
        raise ValueError(f"start={start} is past the end of {path}, which has {total} frame(s)")
    if any(f.shape != frames[0].shape for f in frames):
        raise VideoReadError(path, "frame size changes within the video (pass size=(H, W) to resize all frames)")

    if output_type == "pil":
        return [Image.fromarray(f) for f in frames]
    video = np.stack(frames)
    if output_type == "np":
        return video
    return _uint8_to_tensor(video)


def read_video_info(path: str | os.PathLike[str]) -> VideoInfo:
    """Read metadata (frame count, fps, size, duration, codec) without decoding the frames.

    Args:
        path: A video file, GIF, image or folder of images (same sources as [`read_video`][vidtok.io.read_video]).

    Returns:
        The metadata. For video files `num_frames` is the count the container declares (exact for
        MP4/MOV/AVI), or an estimate from the duration for Matroska/WebM (see `num_frames_exact`).

    Raises:
        FileNotFoundError: If `path` does not exist.
        ValueError: For an unsupported extension.
        VideoReadError: If the file cannot be opened or has no video stream.

    Example:
        >>> import tempfile, numpy as np
        >>> from vidtok.io import read_video_info, save_video
        >>> with tempfile.TemporaryDirectory() as d:
        ...     info = read_video_info(save_video(np.zeros((10, 16, 24, 3), np.uint8), f"{d}/a.mp4", fps=5))
        >>> info.num_frames, info.fps, info.height, info.width, info.duration
        (10, 5.0, 16, 24, 2.0)
    """
    path = Path(path)
    kind = _source_kind(path)
    if kind == "av":
        with _open_av(path) as container:
            if not container.streams.video:
                raise VideoReadError(path, "file has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else None
            if stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            elif container.duration:
                duration = container.duration / av.time_base
            else:
                duration = None
            exact = bool(stream.frames)
            estimate = round(duration * fps) if duration and fps else 0
            num = int(stream.frames) if exact else estimate
            return VideoInfo(
                path=path,
                num_frames=num,
                fps=fps,
                height=stream.codec_context.height,
                width=stream.codec_context.width,
                duration=duration,
                codec=stream.codec_context.name,
                container=path.suffix.lower().lstrip("."),
                num_frames_exact=exact,
            )
    if kind == "gif":
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
    files = [path] if kind == "image" else _folder_images(path)
    try:
        with Image.open(files[0]) as image:
            width, height = image.size
            codec = (image.format or files[0].suffix.lstrip(".")).lower()
    except Exception as e:  # Pillow raises assorted errors on corrupt input
        raise VideoReadError(path, f"cannot decode image {files[0].name}: {e}") from e
    container = "folder" if kind == "folder" else path.suffix.lower().lstrip(".")
    return VideoInfo(path, len(files), None, height, width, None, codec, container)


# --------------------------------------------------------------------------------------------------
# Frame / tensor conversion
# --------------------------------------------------------------------------------------------------


def _torch_module():
    return sys.modules.get("torch")


def _is_tensor(x: Any) -> bool:
    torch_mod = _torch_module()
    return torch_mod is not None and isinstance(x, torch_mod.Tensor)


def _describe(x: np.ndarray) -> str:
    return f"shape {tuple(x.shape)} and dtype {x.dtype}"


def _to_numpy(frames: Any) -> tuple[np.ndarray, str]:
    """Convert supported inputs to a numpy array; also return the source kind for layout detection."""
    if _is_tensor(frames):
        torch_mod = _torch_module()
        t = frames.detach()
        if t.dtype == torch_mod.uint8:
            return t.cpu().numpy(), "tensor_uint8"
        if t.is_floating_point():
            return t.to(device="cpu", dtype=torch_mod.float32).numpy(), "tensor_float"
        raise TypeError(
            f"frames tensor must be uint8 or floating point, got {t.dtype} with shape {tuple(t.shape)}; "
            "for integer frames in [0, 255] use frames.to(torch.uint8)"
        )
    if isinstance(frames, Image.Image):
        return _pil_to_rgb(frames)[None], "pil"
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError("empty video: got an empty list of frames")
        items = []
        for item in frames:
            if isinstance(item, Image.Image):
                items.append(_pil_to_rgb(item))
            elif _is_tensor(item) or isinstance(item, np.ndarray):
                items.append(_to_numpy(item)[0])
            else:
                raise TypeError(f"list items must be PIL images or (H, W, C) arrays, got {type(item).__name__}")
        shapes = {a.shape for a in items}
        if len(shapes) > 1:
            raise ValueError(f"all frames must have the same shape, got {sorted(shapes)}")
        if items[0].ndim != 3:
            raise ValueError(f"list items must be single (H, W, C) frames, got shape {items[0].shape}")
        return np.stack(items), "pil" if isinstance(frames[0], Image.Image) else "numpy"
    if isinstance(frames, np.ndarray):
        return frames, "numpy"
    raise TypeError(
        "frames must be a numpy array, a torch tensor or a list of PIL images, "
        f"got {type(frames).__module__}.{type(frames).__qualname__}"
    )


def _resolve_layout(arr: np.ndarray, source: str, layout: Layout) -> str:
    if layout not in ("auto", "thwc", "cthw"):
        raise ValueError(f"layout must be 'auto', 'thwc' or 'cthw', got {layout!r}")
    if layout != "auto":
        return layout
    if source != "tensor_float":
        return "thwc"
    channels_first = arr.shape[0] in (1, 3)
    channels_last = arr.shape[-1] in (1, 3, 4)
    if channels_first and channels_last:
        raise ValueError(
            f"cannot tell the layout of a float tensor with shape {tuple(arr.shape)}: it could be (C, T, H, W) in "
            "[-1, 1] or (T, H, W, C) in [0, 1]; pass layout='cthw' or layout='thwc'"
        )
    return "cthw" if channels_first else "thwc"


def _normalize_frames(frames: Any, layout: Layout) -> np.ndarray:
    """Return RGB frames `(T, H, W, 3)`: uint8, or float32 in `[0, 1]`."""
    arr, source = _to_numpy(frames)
    if arr.dtype == np.bool_ or not (arr.dtype == np.uint8 or np.issubdtype(arr.dtype, np.floating)):
        hint = " (convert with .astype(np.uint8) if the values are in [0, 255])"
        raise TypeError(
            f"frames must be uint8 or floating point, got {_describe(arr)}"
            f"{hint if np.issubdtype(arr.dtype, np.integer) else ''}"
        )
    if arr.ndim not in (4, 5):
        raise ValueError(
            f"frames must be 4-D (T, H, W, C) or (C, T, H, W), optionally with a leading batch dimension of 1; "
            f"got {_describe(arr)}" + (" (for a single image add a time axis: frames[None])" if arr.ndim == 3 else "")
        )
    if arr.ndim == 5:
        if arr.shape[0] != 1:
            raise ValueError(
                f"save one video at a time: got a batch of {arr.shape[0]} videos with shape {tuple(arr.shape)}; "
                "loop over the batch"
            )
        arr = arr[0]
    layout = _resolve_layout(arr, source, layout)
    if layout == "cthw":
        if arr.shape[0] not in (1, 3):
            raise ValueError(f"(C, T, H, W) frames must have C in (1, 3), got {_describe(arr)}")
        arr = np.moveaxis(arr, 0, -1)
    elif arr.shape[-1] not in (1, 3, 4):
        hint = ""
        if arr.shape[0] in (1, 3):
            hint = " (this looks like (C, T, H, W) model layout: pass layout='cthw')"
        raise ValueError(f"(T, H, W, C) frames must have C in (1, 3, 4), got {_describe(arr)}{hint}")
    if 0 in arr.shape:
        raise ValueError(f"empty video: got frames with shape (T, H, W, C) = {tuple(arr.shape)}")

    if arr.dtype != np.uint8:
        arr = arr.astype(np.float32, copy=False)
        finite = np.isfinite(arr)
        if not finite.all():
            what = "NaN" if np.isnan(arr).any() else "inf"
            raise ValueError(f"frames contain {what} ({int((~finite).sum())} non-finite values)")
        if layout == "cthw":
            arr = (np.clip(arr, -1.0, 1.0) + 1.0) * 0.5
        else:
            lo, hi = float(arr.min()), float(arr.max())
            if lo < -_RANGE_TOLERANCE or hi > 1.0 + _RANGE_TOLERANCE:
                hint = ""
                if hi > 1.0 + _RANGE_TOLERANCE and lo >= 0:
                    hint = "; for values in [0, 255] use frames / 255 or uint8"
                elif lo < 0:
                    hint = "; for values in [-1, 1] use (frames + 1) / 2, or pass (C, T, H, W) with layout='cthw'"
                raise ValueError(
                    f"float (T, H, W, C) frames must be in [0, 1], found values in [{lo:.4g}, {hi:.4g}]{hint}"
                )
            arr = np.clip(arr, 0.0, 1.0)

    channels = arr.shape[-1]
    if channels == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif channels == 4:
        arr = arr[..., :3]  # alpha is dropped, not composited
    return arr


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    return np.ascontiguousarray(np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8))


def _uint8_to_tensor(video: np.ndarray) -> torch.Tensor:
    import torch

    x = torch.from_numpy(np.ascontiguousarray(video)).permute(3, 0, 1, 2)
    return x.to(torch.float32, memory_format=torch.contiguous_format).div_(127.5).sub_(1.0)


def frames_to_tensor(frames: Any, *, layout: Layout = "auto") -> torch.Tensor:
    """Convert user-facing frames to a model-layout tensor `(3, T, H, W)` in `[-1, 1]`.

    Accepts the same inputs as [`save_video`][vidtok.io.save_video] (uint8 or `[0, 1]` float `(T, H, W, C)`
    arrays or tensors, a `(1, T, H, W, C)` batch, lists of PIL images, or an already model-layout tensor). Grayscale
    is expanded to RGB and alpha is dropped. Float input keeps its precision (it is not quantized to
    8 bits).

    Args:
        frames: The frames to convert.
        layout: `"auto"`, `"thwc"` or `"cthw"`; see [`save_video`][vidtok.io.save_video] for the detection rule.

    Returns:
        A contiguous `float32` tensor `(3, T, H, W)`, on the input tensor's device (CPU otherwise).

    Raises:
        TypeError: For unsupported types or dtypes.
        ValueError: For bad shapes, batches larger than 1, NaN/inf or out-of-range values.

    Example:
        >>> import numpy as np
        >>> from vidtok.io import frames_to_tensor
        >>> x = frames_to_tensor(np.full((4, 8, 8, 3), 255, dtype=np.uint8))
        >>> tuple(x.shape), float(x.min()), float(x.max())
        ((3, 4, 8, 8), 1.0, 1.0)
    """
    import torch

    device = frames.device if _is_tensor(frames) else None
    arr = _normalize_frames(frames, layout)
    if arr.dtype == np.uint8:
        out = _uint8_to_tensor(arr)
    else:
        out = torch.from_numpy(np.ascontiguousarray(arr)).permute(3, 0, 1, 2).mul(2.0).sub_(1.0).contiguous()
    return out if device is None else out.to(device)


def tensor_to_frames(video: Any) -> np.ndarray:
    """Convert a model-layout video `(C, T, H, W)` or `(1, C, T, H, W)` in `[-1, 1]` to uint8 frames.

    Values are clamped to `[-1, 1]` (model outputs often overshoot slightly), then mapped to
    `[0, 255]` with rounding. The channel count is kept (1 or 3).

    Args:
        video: A floating-point torch tensor (any device/dtype) or numpy array.

    Returns:
        A `uint8` numpy array `(T, H, W, C)`.

    Raises:
        TypeError: If `video` is not a floating-point tensor/array.
        ValueError: If the shape is not `(C, T, H, W)`/`(1, C, T, H, W)` with `C` in `(1, 3)`, or it
            contains NaN or inf.

    Example:
        >>> import torch
        >>> from vidtok.io import tensor_to_frames
        >>> frames = tensor_to_frames(torch.zeros(3, 2, 4, 4))
        >>> frames.shape, frames.dtype, int(frames[0, 0, 0, 0])
        ((2, 4, 4, 3), dtype('uint8'), 128)
    """
    if _is_tensor(video):
        torch_mod = _torch_module()
        if not video.is_floating_point():
            raise TypeError(f"video must be a floating-point tensor in [-1, 1], got {video.dtype}")
        shape = tuple(video.shape)
        x = video.detach().to(torch_mod.float32)
        if not bool(torch_mod.isfinite(x).all()):
            what = "NaN" if bool(torch_mod.isnan(x).any()) else "inf"
            raise ValueError(f"video contains {what}")
        _check_model_shape(shape)
        if x.ndim == 5:
            x = x[0]
        x = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round_().to(torch_mod.uint8)
        return np.ascontiguousarray(x.permute(1, 2, 3, 0).cpu().numpy())
    if isinstance(video, np.ndarray):
        if not np.issubdtype(video.dtype, np.floating):
            raise TypeError(f"video must be a floating-point array in [-1, 1], got {video.dtype}")
        x = video.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise ValueError(f"video contains {'NaN' if np.isnan(x).any() else 'inf'}")
        _check_model_shape(x.shape)
        if x.ndim == 5:
            x = x[0]
        x = np.rint((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
        return np.ascontiguousarray(np.moveaxis(x, 0, -1))
    raise TypeError(f"video must be a torch tensor or numpy array, got {type(video).__name__}")


def _check_model_shape(shape: tuple[int, ...]) -> None:
    if len(shape) == 5 and shape[0] != 1:
        raise ValueError(f"expected a single video, got a batch of {shape[0]} with shape {shape}; loop over the batch")
    if len(shape) not in (4, 5) or shape[-4] not in (1, 3):
        raise ValueError(f"expected a (C, T, H, W) or (1, C, T, H, W) video with C in (1, 3), got shape {shape}")


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _fps_fraction(fps: float | Fraction) -> Fraction:
    if isinstance(fps, bool) or not isinstance(fps, (int, float, Fraction, np.integer, np.floating)):
        raise TypeError(f"fps must be a number, got {type(fps).__name__}")
    if not math.isfinite(float(fps)) or fps <= 0:
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    return fps if isinstance(fps, Fraction) else Fraction(float(fps)).limit_denominator(1001)


def _write_av(
    frames: np.ndarray,
    target: str,
    ext: str,
    fps: Fraction,
    codec: str | None,
    crf: int | None,
    lossless: bool,
    options: Mapping[str, str] | None,
) -> None:
    _, height, width, _ = frames.shape
    odd = height % 2 == 1 or width % 2 == 1
    opts: dict[str, str] = {}
    if lossless:
        if codec is not None:
            raise ValueError("pass either codec= or lossless=True, not both")
        if ext == ".webm":
            codec, pix_fmt, opts = "libvpx-vp9", "gbrp", {"lossless": "1", "row-mt": "1", "cpu-used": "4"}
        else:
            codec, pix_fmt, opts = "libx264rgb", "rgb24", {"qp": "0", "preset": "medium"}
    else:
        if codec is None:
            codec = "libvpx-vp9" if ext == ".webm" else "libx264"
        try:
            supported = av.Codec(codec, "w").video_formats or ()
        except Exception as e:  # unknown encoder name
            raise ValueError(f"unknown or unavailable video encoder {codec!r}: {e}") from e
        names = [f.name for f in supported]
        if "yuv420p" in names and not (odd and codec in ("libx264", "libx265")):
            pix_fmt = "yuv420p"
        elif "yuv444p" in names:
            pix_fmt = "yuv444p"
            if odd and codec in ("libx264", "libx265"):
                warnings.warn(
                    f"{codec} needs even width and height for yuv420p; got {width}x{height}, so the video is "
                    "encoded as yuv444p, which some players (browsers, QuickTime) cannot play. Use even sizes "
                    "for widely playable files.",
                    UserWarning,
                    stacklevel=3,
                )
        else:
            pix_fmt = names[0] if names else "yuv420p"
        if codec in _CRF_DEFAULTS:
            opts["crf"] = str(_CRF_DEFAULTS[codec] if crf is None else int(crf))
            if codec == "libvpx-vp9":
                opts.update({"b": "0", "row-mt": "1", "cpu-used": "4"})
        elif crf is not None:
            raise ValueError(f"crf is not supported by encoder {codec!r}; pass encoder options via options=")
    opts.update({str(k): str(v) for k, v in (options or {}).items()})

    container_opts = {"movflags": "+faststart"} if ext in (".mp4", ".m4v", ".mov") else {}
    with av.open(target, mode="w", format=_AV_WRITE_FORMATS[ext], options=container_opts) as container:
        stream = container.add_stream(codec, rate=fps, options=opts)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if pix_fmt.startswith("yuv"):
            # Tag the matrix swscale uses for RGB -> YUV so players decode the colours correctly.
            cc = stream.codec_context
            cc.colorspace = cc.color_primaries = cc.color_trc = _AVCOL_SMPTE170M
            cc.color_range = _AVCOL_RANGE_MPEG
        for i, frame in enumerate(frames):
            vframe = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vframe.pts = i
            container.mux(stream.encode(vframe))
        container.mux(stream.encode(None))


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


def _write_gif(frames: np.ndarray, target: str, fps: Fraction, lossless: bool) -> None:
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


def _write_image(frames: np.ndarray, target: str, ext: str, lossless: bool) -> None:
    if frames.shape[0] != 1:
        raise ValueError(
            f"{ext} holds a single frame, got {frames.shape[0]} frames; save to .mp4/.gif, or save frames one by one"
        )
    fmt = _PIL_WRITE_FORMATS[ext]
    kwargs: dict[str, Any] = {}
    if fmt == "JPEG":
        if lossless:
            raise ValueError("JPEG cannot be lossless; use .png")
        kwargs = {"quality": 95}
    elif fmt == "WEBP":
        kwargs = {"lossless": True} if lossless else {"quality": 95}
    Image.fromarray(frames[0]).save(target, format=fmt, **kwargs)


def save_video(
    frames: Any,
    path: str | os.PathLike[str],
    fps: float | Fraction = 8,
    *,
    codec: str | None = None,
    crf: int | None = None,
    lossless: bool = False,
    layout: Layout = "auto",
    options: Mapping[str, str] | None = None,
) -> Path:
    """Write frames to a video file, GIF or single image; the writer is chosen by the extension.

    Writers:

    * `.mp4`/`.m4v`/`.mov`/`.mkv`/`.avi` -- H.264 (`libx264`, `yuv420p`, `crf=18`), playable
      everywhere; MP4/MOV get `faststart` so browsers can stream them. With `lossless=True`:
      `libx264rgb` in RGB with `qp=0`, so [`read_video`][vidtok.io.read_video] returns exactly the frames
      written (few browsers play these). yuv420p needs even sizes: odd widths/heights are encoded as `yuv444p` instead
      (same size, exact shape round trip) with a warning that some players cannot play that.
    * `.webm` -- VP9 (`crf=32`); `lossless=True` gives a bit-exact RGB VP9 file.
    * `.gif` -- Pillow, looping forever, delays from `fps` (GIF stores them in 10 ms steps; the rounding
      is spread so that the average rate is kept). Frames with at most 256 colours are stored exactly;
      others are quantized to 256 colours (`lossless=True` raises instead). Pillow merges identical
      consecutive frames into one longer frame, so such GIFs read back with fewer frames.
    * `.png`/`.jpg`/`.jpeg`/`.webp`/`.bmp` -- a single frame (`T` must be 1).

    Accepted frames (see the module docs): numpy or torch `(T, H, W, C)` as `uint8` or float in
    `[0, 1]` (up to 0.01 outside is clipped), a `(1, T, H, W, C)` batch, a list of PIL images or of
    `(H, W, C)` arrays, or the model layout `(C, T, H, W)`/`(1, C, T, H, W)` float in `[-1, 1]`
    (clamped). `C` may be 1 (expanded to RGB), 3, or 4 for channels-last (alpha dropped).

    Layout rule for `layout="auto"`: numpy arrays, PIL images and uint8 tensors are channels-last. A float
    torch tensor is model layout `(C, T, H, W)` when its (unbatched) first dimension is 1 or 3 and its
    last is not 1, 3 or 4; channels-last in the opposite case; and when both fit (e.g. `(3, 64, 64, 3)`) a
    `ValueError` asks for `layout="cthw"` or `layout="thwc"`. Passing `layout` explicitly always wins
    (`layout="cthw"` also works for numpy arrays).

    The write is atomic: frames are validated first, then encoded to a hidden temporary file next to
    `path` that replaces `path` only on success. A failed call leaves no new file behind and does not
    touch an existing `path`. Missing parent folders are created.

    Args:
        frames: The video to write (see above).
        path: Destination file; its extension selects the format.
        fps: Frames per second (a float, int or `fractions.Fraction`, e.g. `Fraction(30000, 1001)`).
        codec: FFmpeg encoder name to use instead of the default for the extension (video containers only),
            e.g. `"libx265"` or `"mpeg4"`. Not combinable with `lossless`.
        crf: Constant rate factor for x264/x265/VP9/AV1 encoders: lower is better quality and bigger files.
            `None` uses 18 for H.264 and 32 for VP9.
        lossless: Store the frames exactly (see the writers above).
        layout: `"auto"`, `"thwc"` (channels-last) or `"cthw"` (model layout).
        options: Extra FFmpeg encoder options, e.g. `{"preset": "veryslow"}`; they override the defaults.

    Returns:
        `path` as a `pathlib.Path`.

    Raises:
        TypeError: For unsupported input types or dtypes (integers other than uint8, bool, ...).
        ValueError: For an unsupported extension, wrong shapes, a batch of more than one video, an empty video,
            values outside the expected range, NaN/inf, or an invalid fps/codec combination.

    Example:
        >>> import tempfile, numpy as np
        >>> from vidtok.io import read_video, save_video
        >>> frames = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     exact = read_video(save_video(frames, f"{d}/exact.mp4", fps=4, lossless=True))
        ...     preview = save_video(frames[:, :, :, :1], f"{d}/gray.gif", fps=4)  # grayscale -> RGB
        >>> bool((exact == frames).all())
        True
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _WRITE_EXTENSIONS:
        raise ValueError(
            f"cannot write {path}: unsupported extension {path.suffix!r}; supported: {', '.join(_WRITE_EXTENSIONS)}"
        )
    rate = _fps_fraction(fps)
    if codec is not None and ext not in _AV_WRITE_FORMATS:
        raise ValueError(f"codec= only applies to video containers ({', '.join(_AV_WRITE_FORMATS)}), not {ext}")
    video = _to_uint8(_normalize_frames(frames, layout))

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _reserve_temp(path)
    try:
        if ext in _AV_WRITE_FORMATS:
            _write_av(video, str(tmp), ext, rate, codec, crf, lossless, options)
        elif ext == ".gif":
            _write_gif(video, str(tmp), rate, lossless)
        else:
            _write_image(video, str(tmp), ext, lossless)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _reserve_temp(path: Path) -> Path:
    """Create an empty hidden file next to `path` (honouring the umask) and return its path."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "xb"):
                return tmp
        except FileExistsError:  # pragma: no cover - astronomically unlikely
            continue
