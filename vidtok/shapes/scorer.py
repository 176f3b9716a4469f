"""Prompt-following score for the Shapes world, from pixels alone.

[`score_video`][vidtok.shapes.scorer.score_video] checks a video against a caption in the
[Shapes grammar][vidtok.shapes.grammar] without any model: every object of the caption is looked up by its
color and each attribute the caption states becomes one *fact*:

- ``color``: an object of that color is present (in at least 75 % of the frames, compact, smaller than a
  quarter of the frame);
- ``shape``: its fill ratio (area over bounding box: square 1, circle π/4, triangle 1/2) and its vertical
  asymmetry (the centroid of an apex-up triangle sits 1/6 of its height below the middle) give the shape;
- ``size``: its equivalent side ``sqrt(area) / min(H, W)`` is below or above 0.21 (the generator's small
  and large objects are 0.16 and 0.28);
- ``motion``: its centroid track is classified as ``bounces`` (it reverses along x or y by at least 8 % of
  the frame side on both sides of the turn), ``still`` (net displacement under 5 % of the side), or else a
  direction (sign of the dominant axis of the least-squares displacement).

Shape, size and motion facts are conditional on the color: if no object of the caption's color is found
they fail. Sizes and motions that the caption does not state are not scored: the attribute is NaN when no
object of the caption states it (e.g. motion for an image caption ``"a large red circle"``). All thresholds
are relative to the frame side, so one scorer serves 32 to 256 pixels and any frame count (motion needs
at least two frames; a single frame reads as ``still``).

**Pixels to objects.** Each pixel is assigned to the palette color whose RGB direction is closest in angle
(within 20°), with a brightness ``alpha = <p, c> / <c, c>`` (the coverage of an anti-aliased edge over
the black background) of at least 0.3. Thin fringes are dropped: only pixels within 2 pixels of a solid 3×3
core count (this removes, e.g., the grey chroma-subsampled edges of a yellow object that would otherwise
read as white). Per frame and color, the soft mask ``alpha`` gives the area, the centroid, and the soft
bounding box (sums of the per-column and per-row maxima), which makes the fill ratio accurate down to
objects of a few pixels, crisp or anti-aliased, and after H.264 compression. Frames in which an object's
area drops under 60 % of its median (an occlusion) are left out of its shape, size and motion estimates.

**Accepted inputs.** ``uint8`` ``(T, H, W, 3)``; float ``(T, H, W, 3)`` in ``[0, 1]``; or NumPy/torch
``(C, T, H, W)`` in ``[-1, 1]`` (the model layout). The layout is channel-last when the last axis has 3
entries, else channel-first; single frames ``(H, W, 3)`` / ``(3, H, W)`` are videos of one frame. Pass
``value_range`` to override the range implied by the dtype and layout.

Validation (300 generated videos each, see ``docs/shapes.md``): ground truth scores 1.000 on every attribute
at 64×64×16 and 32×32×9, also with 64 frames and ``bounces``; captions shuffled among videos score exactly
what an oracle comparing the captions gives them (color 0.238, shape 0.092, size 0.137, motion 0.048); a
frozen first frame fails every moving object; H.264 (crf 23) keeps 1.000 at 64×64.

Example:
    >>> from vidtok.shapes.render import render_video
    >>> video = render_video("a large red circle moves right", seed=0)
    >>> score_video(video, "a large red circle moves right")["overall"]
    1.0
    >>> score_video(video, "a large red circle moves left")["motion"]
    0.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidtok.shapes.grammar import COLORS, ShapeObject, parse_caption
from vidtok.shapes.render import SIZE_FRACTIONS

__all__ = [
    "ATTRIBUTES",
    "DetectedObject",
    "ShapesScore",
    "analyze_video",
    "palette_fraction",
    "score_video",
    "score_videos",
]

ATTRIBUTES: tuple[str, ...] = ("color", "shape", "size", "motion")
"""The scored attributes, in the order of the score dictionaries (followed by ``overall``)."""

_COLOR_NAMES = tuple(COLORS)
_PALETTE = np.array([COLORS[c] for c in _COLOR_NAMES], dtype=np.float32)  # (K, 3)
_PALETTE_NORM = np.linalg.norm(_PALETTE, axis=1)
_PALETTE_SQ = (_PALETTE**2).sum(axis=1)

_MAX_ANGLE_COS = math.cos(math.radians(20.0))  # pixel hue within 20 degrees of the palette color
_MIN_ALPHA = 0.3  # pixel brightness along the color (coverage of the pixel)
_MIN_BRIGHTNESS = 0.9 * _MIN_ALPHA * float(_PALETTE.max(axis=1).min())  # max channel of a candidate pixel
_MIN_AREA = 0.3 * SIZE_FRACTIONS["small"] ** 2  # of S^2: 30 % of a small object
_MAX_AREA = 0.25  # of H * W
_MIN_FILL = 0.3  # area / soft bounding box: compactness
_MIN_PRESENCE = 0.75  # fraction of frames in which the object must be found
_OCCLUDED = 0.6  # frames with area under this fraction of the median are ignored for shape/size/motion
_TRIANGLE_ASYMMETRY = 0.055  # |asymmetry| >= this (ideal 1/6 for a triangle, 0 otherwise): triangle
_TRIANGLE_FILL = 0.65  # fill < this (ideal 1/2 for a triangle, >= pi/4 otherwise): triangle
_SQUARE_FILL = 0.89  # otherwise fill > this (ideal 1): square, else circle (ideal pi/4)
_SIZE_THRESHOLD = math.sqrt(SIZE_FRACTIONS["small"] * SIZE_FRACTIONS["large"])  # 0.21 of S
_STILL = 0.05  # net displacement under this fraction of S: still
_REVERSAL = 0.08  # a turn with excursions of at least this fraction of S on both sides: bounces


@dataclass(frozen=True, eq=False)
class DetectedObject:
    """What the scorer sees of one color in a video.

    Attributes:
        color: The color name.
        present: Whether a compact object of this color is found in at least 75 % of the frames.
        shape: ``"circle"``, ``"square"`` or ``"triangle"``, or ``None`` when not present.
        size: ``"small"`` or ``"large"``, or ``None`` when not present.
        motion: A motion key (``"left"``, ``"right"``, ``"up"``, ``"down"``, ``"still"``, ``"bounces"``), or
            ``None`` when not present.
        presence: Fraction of frames in which the color forms a compact object.
        fill: Median fill ratio (area over soft bounding box).
        asymmetry: Median distance from the mass centroid down to the middle of the occupied rows, over the
            height (about 0.15 for an apex-up triangle, 0 for circles and squares).
        size_fraction: Median equivalent side ``sqrt(area) / min(H, W)``.
        track: Centroid per frame ``(T, 2)`` as ``(x, y)`` pixels, NaN where not found or occluded.
    """

    color: str
    present: bool
    shape: str | None
    size: str | None
    motion: str | None
    presence: float
    fill: float
    asymmetry: float
    size_fraction: float
    track: np.ndarray


def _to_frames(video: Any, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Any accepted input -> float32 ``(T, H, W, 3)`` in [0, 255]."""
    if hasattr(video, "detach"):  # a torch tensor (torch is not imported here)
        tensor = video.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.float()  # bfloat16/float16 -> float32; integer tensors keep their dtype
        video = tensor.numpy()
    arr = np.asarray(video)
    if arr.ndim == 3:
        arr = arr[None] if arr.shape[-1] == 3 else arr[:, None]
    if arr.ndim != 4:
        raise ValueError(f"expected a video (T, H, W, 3) or (C, T, H, W), got shape {arr.shape}")
    channel_last = arr.shape[-1] == 3
    if not channel_last and arr.shape[0] != 3:
        raise ValueError(f"expected 3 color channels first or last, got shape {arr.shape}")
    frames = arr if channel_last else np.moveaxis(arr, 0, -1)
    if value_range is None:
        if arr.dtype == np.uint8:
            return np.ascontiguousarray(frames, dtype=np.float32)
        value_range = (0.0, 1.0) if channel_last else (-1.0, 1.0)
    lo, hi = (float(v) for v in value_range)
    if hi <= lo:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    frames = (frames.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.ascontiguousarray(np.clip(frames, 0.0, 255.0))


def palette_fraction(video: Any, *, value_range: tuple[float, float] | None = None) -> float:
    """The fraction of pixels a Shapes video could have: near black, or of a palette color's hue.

    About 1 for Shapes videos (and their reconstructions), far lower for natural video: the check that tells a
    user a model trained on Shapes is being shown another domain (``vidtok reconstruct`` uses it).

    Args:
        video: As :func:`score_video` takes it.
        value_range: As :func:`score_video`.

    Example:
        >>> from vidtok.shapes import parse_caption, render_video
        >>> video = render_video(parse_caption("a large red circle moves right"), seed=0)
        >>> palette_fraction(video) > 0.95
        True
    """
    frames = _to_frames(video, value_range).reshape(-1, 3)
    # A Shapes pixel is background (near black) or a palette color scaled by its coverage (anti-aliased edges
    # blend with the black): on a palette color's ray from black, mostly covered. Distances in 0-255 units.
    along = np.clip(frames @ _PALETTE.T / _PALETTE_SQ[None], 0.0, 1.0)  # (P, K) coverage
    distance = np.sqrt(((frames[:, None] - along[..., None] * _PALETTE[None]) ** 2).sum(-1))
    nearest = distance.argmin(axis=1)
    covered = along[np.arange(len(frames)), nearest] > 0.5
    dark = frames.max(axis=1) < 48.0
    return float((dark | ((distance.min(axis=1) < 24.0) & covered)).mean())


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion of ``(T, H, W)`` masks with a square of side ``2 * radius + 1`` (outside is empty)."""
    return ~_dilate(~mask, radius, outside=True)


def _dilate(mask: np.ndarray, radius: int, outside: bool = False) -> np.ndarray:
    """Binary dilation of ``(T, H, W)`` masks with a square of side ``2 * radius + 1``."""
    out = mask
    for axis in (1, 2):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, constant_values=outside)
        n = out.shape[axis]
        acc = out.copy()
        for shift in range(2 * radius + 1):
            if shift != radius:
                acc |= padded[:, shift : shift + n] if axis == 1 else padded[:, :, shift : shift + n]
        out = acc
    return out


def _classify_motion(track: np.ndarray, side: int) -> str:
    """Motion key of a centroid track ``(T, 2)`` with NaN where unknown."""
    valid = np.flatnonzero(np.isfinite(track[:, 0]))
    if len(valid) < 2:
        return "still"
    t = valid.astype(np.float64)
    pts = track[valid]
    delta = _REVERSAL * side
    for axis in (0, 1):
        p = pts[:, axis]
        # a turn at k: p[k] is at least delta beyond the extreme before and the extreme after it
        rise_before = p - np.minimum.accumulate(p)
        rise_after = p - np.minimum.accumulate(p[::-1])[::-1]
        fall_before = np.maximum.accumulate(p) - p
        fall_after = np.maximum.accumulate(p[::-1])[::-1] - p
        if np.any(np.minimum(rise_before, rise_after) >= delta) or np.any(np.minimum(fall_before, fall_after) >= delta):
            return "bounces"
    tc = t - t.mean()
    slopes = (tc[:, None] * (pts - pts.mean(axis=0))).sum(axis=0) / (tc**2).sum()
    net = slopes * (t[-1] - t[0])
    if np.abs(net).max() < _STILL * side:
        return "still"
    if abs(net[0]) >= abs(net[1]):
        return "right" if net[0] > 0 else "left"
    return "down" if net[1] > 0 else "up"


def _analyze(frames: np.ndarray, colors: Iterable[str]) -> dict[str, DetectedObject]:
    num_frames, height, width, _ = frames.shape
    side = min(height, width)
    # only pixels bright enough to reach alpha >= _MIN_ALPHA for some color are classified (speed)
    flat = frames.reshape(-1, 3)
    brightest = np.maximum(np.maximum(flat[:, 0], flat[:, 1]), flat[:, 2])
    candidates = np.flatnonzero(brightest >= _MIN_BRIGHTNESS)
    pixels = flat[candidates]
    dots = pixels @ _PALETTE.T  # (n, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        norms = np.sqrt(np.einsum("ij,ij->i", pixels, pixels))
        cos = dots / (norms[:, None] * _PALETTE_NORM)
    nearest = cos.argmax(axis=1)
    out = {}
    for color in colors:
        k = _COLOR_NAMES.index(color)
        alpha_k = np.minimum(dots[:, k] / _PALETTE_SQ[k], 1.0)
        keep = (nearest == k) & (cos[:, k] >= _MAX_ANGLE_COS) & (alpha_k >= _MIN_ALPHA)
        index = candidates[keep]
        # work in the bounding box (over all frames) of the owned pixels, plus a margin for the morphology
        t_idx, rest = np.divmod(index, height * width)
        y_idx, x_idx = np.divmod(rest, width)
        if len(index):
            y0, y1 = max(int(y_idx.min()) - 3, 0), min(int(y_idx.max()) + 4, height)
            x0, x1 = max(int(x_idx.min()) - 3, 0), min(int(x_idx.max()) + 4, width)
        else:
            y0, y1, x0, x1 = 0, 1, 0, 1
        alpha = np.zeros((num_frames, y1 - y0, x1 - x0), dtype=np.float32)
        alpha[t_idx, y_idx - y0, x_idx - x0] = alpha_k[keep]
        owned = alpha > 0
        # drop thin fringes (anti-aliased or compressed edges of other objects): keep owned pixels within
        # 2 pixels of the core, the owned pixels whose whole 3x3 neighborhood is solidly owned
        support = _dilate(_erode(alpha >= 0.5, 1), 2)
        m = np.where(owned & support, alpha, np.float32(0.0))  # (T, h, w)
        xs = np.arange(x0, x1, dtype=np.float64) + 0.5
        ys = np.arange(y0, y1, dtype=np.float64) + 0.5
        area = m.sum(axis=(1, 2), dtype=np.float64)
        col_mass, row_mass = m.sum(axis=1, dtype=np.float64), m.sum(axis=2, dtype=np.float64)
        col_max, row_max = m.max(axis=1).astype(np.float64), m.max(axis=2).astype(np.float64)
        box_w, box_h = col_max.sum(axis=1), row_max.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            fill = area / (box_w * box_h)
            cx = col_mass @ xs / area
            cy = row_mass @ ys / area
            asym = (cy - row_max @ ys / box_h) / box_h
        found = (area >= _MIN_AREA * side**2) & (area <= _MAX_AREA * height * width) & (fill >= _MIN_FILL)
        presence = float(found.mean())
        if presence < _MIN_PRESENCE:
            out[color] = DetectedObject(
                color, False, None, None, None, presence, math.nan, math.nan, math.nan, np.full((num_frames, 2), np.nan)
            )
            continue
        usable = found & (area >= _OCCLUDED * np.median(area[found]))
        med_fill = float(np.median(fill[usable]))
        med_asym = float(np.median(asym[usable]))
        size_fraction = float(np.median(np.sqrt(area[usable]))) / side
        if abs(med_asym) >= _TRIANGLE_ASYMMETRY or med_fill < _TRIANGLE_FILL:
            shape = "triangle"
        else:
            shape = "square" if med_fill > _SQUARE_FILL else "circle"
        size = "small" if size_fraction < _SIZE_THRESHOLD else "large"
        track = np.where(usable[:, None], np.stack([cx, cy], axis=1), np.nan)
        motion = _classify_motion(track, side)
        out[color] = DetectedObject(
            color, True, shape, size, motion, presence, med_fill, med_asym, size_fraction, track
        )
    return out


def analyze_video(
    video: Any, colors: Iterable[str] | None = None, *, value_range: tuple[float, float] | None = None
) -> dict[str, DetectedObject]:
    """Detect the object of each color in a video and read its attributes.

    Args:
        video: ``uint8`` ``(T, H, W, 3)``, float ``(T, H, W, 3)`` in ``[0, 1]`` or ``(C, T, H, W)`` in
            ``[-1, 1]`` (NumPy or torch).
        colors: Colors to look for (default: all of [`COLORS`][vidtok.shapes.grammar.COLORS]).
        value_range: ``(low, high)`` of the input values, overriding the default for its dtype/layout.

    Returns:
        A [`DetectedObject`][vidtok.shapes.scorer.DetectedObject] per color.

    Raises:
        ValueError: For an unknown color or a video of the wrong shape.

    Example:
        >>> from vidtok.shapes.render import render_video
        >>> found = analyze_video(render_video("a small green triangle moves up", seed=0), ["green", "red"])
        >>> found["green"].shape, found["green"].size, found["green"].motion, found["red"].present
        ('triangle', 'small', 'up', False)
    """
    colors = list(COLORS) if colors is None else list(dict.fromkeys(colors))
    for color in colors:
        if color not in COLORS:
            raise ValueError(f"unknown color {color!r}; expected one of {list(COLORS)}")
    return _analyze(_to_frames(video, value_range), colors)


def _score(found: dict[str, DetectedObject], objects: Sequence[ShapeObject]) -> dict[str, float]:
    facts: dict[str, list[bool]] = {name: [] for name in ATTRIBUTES}
    for obj in objects:
        det = found[obj.color]
        facts["color"].append(det.present)
        facts["shape"].append(det.present and det.shape == obj.shape)
        if obj.size is not None:
            facts["size"].append(det.present and det.size == obj.size)
        if obj.motion is not None:
            facts["motion"].append(det.present and det.motion == obj.motion)
    result = {name: (float(np.mean(v)) if v else math.nan) for name, v in facts.items()}
    every = [f for v in facts.values() for f in v]
    result["overall"] = float(np.mean(every))
    return result


def score_video(video: Any, caption: str, *, value_range: tuple[float, float] | None = None) -> dict[str, float]:
    """Score how well a video follows a Shapes caption.

    Args:
        video: ``uint8`` ``(T, H, W, 3)``, float ``(T, H, W, 3)`` in ``[0, 1]`` or ``(C, T, H, W)`` in
            ``[-1, 1]`` (NumPy or torch).
        caption: A caption in the [Shapes grammar][vidtok.shapes.grammar].
        value_range: ``(low, high)`` of the input values, overriding the default for its dtype/layout.

    Returns:
        ``{"color", "shape", "size", "motion", "overall"}``: the accuracy of each attribute over the
        caption's objects that state it (NaN when none does), and ``overall``, the fraction of all facts
        that hold.

    Raises:
        ValueError: If the caption does not follow the grammar or the video has the wrong shape.

    Example:
        >>> from vidtok.shapes.render import render_video
        >>> video = render_video("a small blue square stays still", resolution=32, seed=0)
        >>> score_video(video, "a large blue square")
        {'color': 1.0, 'shape': 1.0, 'size': 0.0, 'motion': nan, 'overall': 0.6666666666666666}
    """
    objects = parse_caption(caption)
    found = _analyze(_to_frames(video, value_range), [o.color for o in objects])
    return _score(found, objects)


def _mean_scores(scores: Sequence[dict[str, float]]) -> dict[str, float]:
    result = {}
    for name in (*ATTRIBUTES, "overall"):
        values = np.array([s[name] for s in scores], dtype=np.float64)
        values = values[np.isfinite(values)]
        result[name] = float(values.mean()) if len(values) else math.nan
    return result


def score_videos(
    videos: Any, captions: Sequence[str], *, value_range: tuple[float, float] | None = None
) -> dict[str, float]:
    """Mean [`score_video`][vidtok.shapes.scorer.score_video] over a batch.

    Args:
        videos: A sequence of videos, or one array/tensor with a leading batch axis (``(B, T, H, W, 3)`` or
            ``(B, C, T, H, W)``), in any layout [`score_video`][vidtok.shapes.scorer.score_video] accepts.
        captions: One caption per video.
        value_range: ``(low, high)`` of the input values, overriding the default for its dtype/layout.

    Returns:
        The mean of each entry over the videos, ignoring NaN (NaN when all are NaN).

    Raises:
        ValueError: If the numbers of videos and captions differ.
    """
    if isinstance(captions, str):
        raise TypeError("captions must be a sequence of str, one per video")
    if len(videos) != len(captions):
        raise ValueError(f"got {len(videos)} videos and {len(captions)} captions")
    return _mean_scores([score_video(v, c, value_range=value_range) for v, c in zip(videos, captions, strict=True)])


class ShapesScore:
    """Accumulating form of [`score_videos`][vidtok.shapes.scorer.score_videos] for evaluation loops.

    Args:
        value_range: ``(low, high)`` of the input values, overriding the default for their dtype/layout.

    Example:
        >>> from vidtok.shapes.dataset import generate
        >>> videos, captions = generate(4, resolution=32, num_frames=8)
        >>> metric = ShapesScore()
        >>> metric.update(videos[:2], captions[:2])
        >>> metric.update(videos[2:], captions[2:])
        >>> metric.compute()["color"], len(metric)
        (1.0, 4)
    """

    def __init__(self, *, value_range: tuple[float, float] | None = None) -> None:
        self.value_range = value_range
        self.scores: list[dict[str, float]] = []

    def __len__(self) -> int:
        return len(self.scores)

    def update(self, videos: Any, captions: str | Sequence[str]) -> None:
        """Score a batch of videos (or one video with one caption) and keep the results.

        Args:
            videos: A batch as in [`score_videos`][vidtok.shapes.scorer.score_videos], or one video.
            captions: One caption per video, or a single caption for a single video.
        """
        if isinstance(captions, str):
            videos, captions = [videos], [captions]
        if len(videos) != len(captions):
            raise ValueError(f"got {len(videos)} videos and {len(captions)} captions")
        self.scores += [score_video(v, c, value_range=self.value_range) for v, c in zip(videos, captions, strict=True)]

    def compute(self) -> dict[str, float]:
        """Mean score per attribute over everything seen so far (NaN-aware), plus ``overall``."""
        return _mean_scores(self.scores)

    def reset(self) -> None:
        """Forget all scores."""
        self.scores = []
