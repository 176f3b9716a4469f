"""Container video files (``.mp4``, ``.mov``, ``.mkv``, ``.webm``, ...) read and written with PyAV (FFmpeg)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidtok.io.base import Selector, VideoInfo, VideoReadError, partial_or_raise
from vidtok.io.frames import resize_frames

__all__ = ["AV_WRITE_FORMATS", "read_av", "read_av_info", "write_av"]


# Container name PyAV/FFmpeg uses when writing each video extension.
AV_WRITE_FORMATS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".avi": "avi",
    ".webm": "webm",
}

# Encoders that understand a `crf` option, with the default used when `crf=None`.
_CRF_DEFAULTS = {"libx264": 18, "libx265": 20, "libvpx-vp9": 32, "libaom-av1": 32, "libsvtav1": 32}

# FFmpeg's enum value for SMPTE 170M (BT.601), the matrix swscale uses for RGB <-> YUV by default.
_AVCOL_SMPTE170M = 6

_AVCOL_RANGE_MPEG = 1


def _open_av(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as e:
        raise VideoReadError(path, _ffmpeg_message(e)) from e


def _ffmpeg_message(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e)


def read_av(
    path: Path, sel: Selector, size: tuple[int, int] | None, allow_partial: bool
) -> tuple[list[np.ndarray], int]:
    """The selected frames of a container file (decoding stops early) and the number of frames decoded."""
    frames: list[np.ndarray] = []
    index = 0
    with _open_av(path) as container:
        if not container.streams.video:
            raise VideoReadError(path, "file has no video stream")
        stream = container.streams.video[0]
        # Slice threads only: frame threading ("AUTO"/"FRAME") can deadlock when decoding stops before the end of
        # the stream, as it does here once the selection is complete (seen in a DataLoader worker; PyAV #1849,
        # pytorch/vision #9010).
        stream.thread_type = "SLICE"
        fps = float(stream.average_rate or stream.guessed_rate or 0) or None
        last_time = None
        error = None
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if sel.wanted(index):
                        # One swscale thread: its slice-thread pool hung in forked DataLoader workers (CI, PyAV 18).
                        rgb = frame.to_ndarray(format="rgb24", threads=1)
                        frames.append(resize_frames(rgb, size))
                        sel.count += 1
                    index += 1
                    last_time = frame.time
                    if sel.done:
                        return frames, index
        except av.FFmpegError as e:
            # Decoding past the end of a cut file fails with FFmpeg's generic message: say it is cut when it is.
            truncated = _truncation(stream, index, last_time, fps)
            error = f"{truncated} ({_ffmpeg_message(e)})" if truncated else _ffmpeg_message(e)
        if error is None:
            error = _truncation(stream, index, last_time, fps)
        if error is not None:
            partial_or_raise(path, error, frames, allow_partial)
    if index == 0:
        raise VideoReadError(path, "no decodable video frames")
    return frames, index


def read_av_info(path: Path) -> VideoInfo:
    """Metadata of a container file from its headers (no frame is decoded)."""
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


def write_av(
    frames: np.ndarray,
    target: str,
    ext: str,
    fps: Fraction,
    codec: str | None,
    crf: int | None,
    lossless: bool,
    options: Mapping[str, str] | None,
) -> None:
    """Encode ``uint8`` frames into a container with PyAV (H.264/VP9 by default, or a lossless RGB codec)."""
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
    with av.open(target, mode="w", format=AV_WRITE_FORMATS[ext], options=container_opts) as container:
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
