"""``read_video``, ``read_video_info`` and ``save_video``: one entry point that picks the format by extension."""

from __future__ import annotations

import errno
import math
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from vidtok.io.base import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, Layout, OutputType, Selector, VideoInfo, VideoReadError
from vidtok.io.frames import normalize_frames, to_uint8, uint8_to_tensor
from vidtok.io.gif import read_gif, read_gif_info, write_gif
from vidtok.io.images import PIL_WRITE_FORMATS, folder_images, read_images, read_images_info, write_image
from vidtok.io.video import AV_WRITE_FORMATS, read_av, read_av_info, write_av

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["read_video", "read_video_info", "save_video", "write_atomically"]


_WRITE_EXTENSIONS = (*AV_WRITE_FORMATS, ".gif", *PIL_WRITE_FORMATS)


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

    sel = Selector(start, num_frames, stride)
    if kind == "av":
        frames, total = read_av(path, sel, size, allow_partial)
    elif kind == "gif":
        frames, total = read_gif(path, sel, size, allow_partial)
    elif kind == "image":
        frames, total = read_images([path], path, sel, size)
    else:
        frames, total = read_images(folder_images(path), path, sel, size)

    if not frames:
        raise ValueError(f"start={start} is past the end of {path}, which has {total} frame(s)")
    if any(f.shape != frames[0].shape for f in frames):
        raise VideoReadError(path, "frame size changes within the video (pass size=(H, W) to resize all frames)")

    if output_type == "pil":
        return [Image.fromarray(f) for f in frames]
    video = np.stack(frames)
    if output_type == "np":
        return video
    return uint8_to_tensor(video)


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
        return read_av_info(path)
    if kind == "gif":
        return read_gif_info(path)
    return read_images_info([path] if kind == "image" else folder_images(path), path, kind)


def _fps_fraction(fps: float | Fraction) -> Fraction:
    if isinstance(fps, bool) or not isinstance(fps, (int, float, Fraction, np.integer, np.floating)):
        raise TypeError(f"fps must be a number, got {type(fps).__name__}")
    if not math.isfinite(float(fps)) or fps <= 0:
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    return fps if isinstance(fps, Fraction) else Fraction(float(fps)).limit_denominator(1001)


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
    if codec is not None and ext not in AV_WRITE_FORMATS:
        raise ValueError(f"codec= only applies to video containers ({', '.join(AV_WRITE_FORMATS)}), not {ext}")
    video = to_uint8(normalize_frames(frames, layout))

    def write(tmp: Path) -> None:
        if ext in AV_WRITE_FORMATS:
            write_av(video, str(tmp), ext, rate, codec, crf, lossless, options)
        elif ext == ".gif":
            write_gif(video, str(tmp), rate, lossless)
        else:
            write_image(video, str(tmp), ext, lossless)

    return write_atomically(path, write)


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` on a new hidden file next to ``path`` and move it onto ``path`` only if it succeeded.

    The parent folder is created if needed. A failure (any exception, ``KeyboardInterrupt`` included) removes the
    temporary file and leaves ``path`` as it was; readers never see a partly written file.

    Args:
        path: The file to write.
        write: Writes the whole content to the path it is given (an empty file, created beforehand).

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _reserve_temp(path)
    try:
        write(tmp)
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
