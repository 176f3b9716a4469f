"""Rendering Shapes scenes: object geometry, trajectories and anti-aliased pixels (pure NumPy).

**Geometry.** Sizes are fractions of the shorter frame side ``S = min(H, W)``: ``small`` objects have the
area of a square of side ``0.16 S``, ``large`` ones of ``0.28 S`` (all three shapes of one size have the
same area, so size and shape are independent cues). Circles are disks, squares are axis-aligned and
triangles are isosceles with the apex up and base = height. Positions are continuous; with
``antialias=True`` every pixel gets its exact coverage (4×4 supersampling), otherwise pixel centers decide
(crisp, faster).

**Motion.** ``speed`` is measured in frame sides per second (default ``0.2``), i.e. ``speed * S / fps``
pixels per frame: a 16-frame clip at 8 fps travels 40 % of the frame. Linear motions start where the
object stays fully inside the frame for the whole clip; when a clip is too long for that, the object is
slowed down until it fits. ``bounces`` moves along one of 8 directions (axes or diagonals) and reflects
off the walls; the start is chosen so the first reflection happens between 30 % and 60 % of the clip (the
speed is raised for short clips so the reflection is visible). ``bounces`` is meant for long clips: it is
part of the default motions only from [`LONG_CLIP_FRAMES`][vidtok.shapes.dataset.LONG_CLIP_FRAMES] frames on.

**Several objects.** Starting positions are drawn again (up to 256 times) until the objects' bounding
boxes stay at least one pixel apart in every frame; when no draw succeeds (possible with large objects
and long bouncing clips, where paths must cross) the draw with the largest minimum gap is kept, so
objects may briefly overlap (later objects are drawn on top).

Example:
    >>> from vidtok.shapes.render import render_video
    >>> render_video("a large red circle moves right", num_frames=16, resolution=64, seed=0).shape
    (16, 64, 64, 3)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from vidtok.shapes._common import as_rng, frame_size
from vidtok.shapes.grammar import COLORS, LINEAR_MOTIONS, SIZES, ShapeObject, caption, parse_caption

__all__ = ["DEFAULT_SPEED", "SIZE_FRACTIONS", "Scene", "make_scene", "render_scene", "render_video"]

SIZE_FRACTIONS: dict[str, float] = {"small": 0.16, "large": 0.28}
"""Side of the equal-area square, as a fraction of the shorter frame side, for each size."""

DEFAULT_SPEED: float = 0.2
"""Default object speed, in frame sides (``min(H, W)``) per second."""

_SUPERSAMPLE = 4
_MAX_PLACEMENT_TRIES = 256
# A reflection must be at least this far (fraction of S) from the start and from the end of the track.
_MIN_BOUNCE_EXCURSION = 0.12
_DIRECTIONS_8 = tuple(
    (dx / math.hypot(dx, dy), dy / math.hypot(dx, dy)) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)
)


def _half_extent(shape: str, size: str, side: int) -> float:
    """Half the side of the (square) bounding box of an object, in pixels."""
    s = SIZE_FRACTIONS[size] * side  # side of the equal-area square
    extent = {"square": s, "circle": 2.0 * s / math.sqrt(math.pi), "triangle": math.sqrt(2.0) * s}[shape]
    return extent / 2.0


def _fold(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect unconstrained positions into ``[lo, hi]`` (a wall bounce at each end)."""
    span = hi - lo
    if span <= 0:
        return np.full_like(x, (lo + hi) / 2)
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y > span, 2 * span - y, y)


def _trajectory(
    motion: str | None,
    half: float,
    height: int,
    width: int,
    num_frames: int,
    step: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Centers ``(T, 2)`` (x, y) of one object's bounding box, inside the frame with a 1-pixel margin."""
    side = min(height, width)
    margin = 1.0
    lo = half + margin
    hi = np.array([width - half - margin, height - half - margin])
    hi = np.maximum(hi, lo)
    t = np.arange(num_frames, dtype=np.float64)
    duration = max(num_frames - 1, 1)
    if motion is None or motion == "still":
        start = rng.uniform(lo, hi)
        return np.broadcast_to(start, (num_frames, 2)).copy()
    if motion in LINEAR_MOTIONS:
        axis = 0 if motion in ("left", "right") else 1
        sign = 1.0 if motion in ("right", "down") else -1.0
        span = hi[axis] - lo
        step = min(step, 0.9 * span / duration)
        travel = step * (num_frames - 1)
        start = rng.uniform(lo, hi)
        start[axis] = rng.uniform(lo, hi[axis] - travel) if sign > 0 else rng.uniform(lo + travel, hi[axis])
        centers = np.broadcast_to(start, (num_frames, 2)).copy()
        centers[:, axis] += sign * step * t
        return centers
    if motion == "bounces":
        direction = np.array(_DIRECTIONS_8[rng.integers(len(_DIRECTIONS_8))])
        axes = np.flatnonzero(direction != 0)
        primary = int(axes[rng.integers(len(axes))])
        velocity = direction * step
        # make the first reflection on the primary axis visible: far enough from both ends of the clip
        needed = _MIN_BOUNCE_EXCURSION * side / (0.3 * duration)
        if abs(velocity[primary]) < needed:  # also covers speed == 0
            velocity = direction * (needed / abs(direction[primary]))
        u = abs(velocity[primary])
        sign = np.sign(velocity[primary])
        span = hi[primary] - lo
        t_hit = min(rng.uniform(0.3, 0.6) * duration, span / u)
        start = rng.uniform(lo, hi)
        wall = hi[primary] if sign > 0 else lo
        start[primary] = wall - sign * u * t_hit
        unfolded = start[None, :] + velocity[None, :] * t[:, None]
        return np.stack([_fold(unfolded[:, 0], lo, hi[0]), _fold(unfolded[:, 1], lo, hi[1])], axis=1)
    raise ValueError(f"unknown motion {motion!r}")


def _min_gap(centers: np.ndarray, halves: np.ndarray) -> float:
    """Smallest gap in pixels between any two objects' bounding boxes over all frames (negative: overlap)."""
    n = len(halves)
    if n < 2:
        return math.inf
    gap = math.inf
    for i in range(n):
        for j in range(i + 1, n):
            d = np.abs(centers[i] - centers[j]) - (halves[i] + halves[j])  # (T, 2)
            gap = min(gap, float(d.max(axis=1).min()))
    return gap


@dataclass(frozen=True, eq=False)
class Scene:
    """A planned scene: objects with resolved sizes and their trajectories.

    Attributes:
        objects: The objects, sizes filled in (a motion of ``None`` is kept and rendered still).
        centers: Bounding-box centers in pixels, ``(num_objects, T, 2)`` as ``(x, y)``; pixel ``(i, j)``
            covers ``[j, j + 1) x [i, i + 1)``.
        height: Frame height in pixels.
        width: Frame width in pixels.
        fps: Frames per second the motion was planned for.
    """

    objects: tuple[ShapeObject, ...]
    centers: np.ndarray
    height: int
    width: int
    fps: float

    @property
    def num_frames(self) -> int:
        """Number of frames."""
        return int(self.centers.shape[1])

    @property
    def caption(self) -> str:
        """The scene's caption (sizes always named)."""
        return caption(self.objects)

    @property
    def half_extents(self) -> np.ndarray:
        """Half the bounding-box side of each object, in pixels, ``(num_objects,)``."""
        side = min(self.height, self.width)
        return np.array([_half_extent(o.shape, o.size or "small", side) for o in self.objects])


def _coerce_objects(objects: str | ShapeObject | Iterable[ShapeObject]) -> list[ShapeObject]:
    if isinstance(objects, str):
        return parse_caption(objects)
    if isinstance(objects, ShapeObject):
        return [objects]
    objects = list(objects)
    if not objects:
        raise ValueError("a scene needs at least one object")
    for obj in objects:
        if not isinstance(obj, ShapeObject):
            raise TypeError(f"expected ShapeObject, got {type(obj).__name__}")
    return objects


def make_scene(
    objects: str | ShapeObject | Iterable[ShapeObject],
    *,
    num_frames: int = 16,
    resolution: int | tuple[int, int] = 64,
    fps: float = 8.0,
    speed: float = DEFAULT_SPEED,
    seed: int | np.random.Generator | None = None,
) -> Scene:
    """Plan a scene: resolve unspecified sizes and draw trajectories (no pixels yet).

    Args:
        objects: A caption, one object or a list of objects.
        num_frames: Number of frames ``T`` (at least 1).
        resolution: Frame size, an int (square) or ``(H, W)``; at least 16 pixels each.
        fps: Frames per second; with ``speed`` it sets the displacement per frame.
        speed: Speed in frame sides (``min(H, W)``) per second.
        seed: Seed or generator for positions, directions and unspecified sizes.

    Returns:
        The planned [`Scene`][vidtok.shapes.render.Scene].

    Raises:
        ValueError: For an invalid caption or argument.
    """
    objs = _coerce_objects(objects)
    height, width = frame_size(resolution)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if fps <= 0 or speed < 0:
        raise ValueError(f"fps must be > 0 and speed >= 0, got fps={fps}, speed={speed}")
    rng = as_rng(seed)
    side = min(height, width)
    objs = [o if o.size is not None else replace(o, size=SIZES[rng.integers(len(SIZES))]) for o in objs]
    halves = np.array([_half_extent(o.shape, o.size, side) for o in objs])
    step = speed * side / fps

    def draw() -> np.ndarray:
        return np.stack(
            [_trajectory(o.motion, h, height, width, num_frames, step, rng) for o, h in zip(objs, halves, strict=True)]
        )

    best = draw()
    best_gap = _min_gap(best, halves)
    tries = 1
    while best_gap < 1.0 and tries < _MAX_PLACEMENT_TRIES:
        candidate = draw()
        gap = _min_gap(candidate, halves)
        if gap > best_gap:
            best, best_gap = candidate, gap
        tries += 1
    return Scene(objects=tuple(objs), centers=best, height=height, width=width, fps=float(fps))


def _coverage(shape: str, half: float, cx: float, cy: float, x0: int, y0: int, size: int, ss: int) -> np.ndarray:
    """Coverage ``(size, size)`` in [0, 1] of the pixel patch with top-left corner ``(x0, y0)``."""
    offsets = (np.arange(size * ss, dtype=np.float64) + 0.5) / ss
    xs = x0 + offsets - cx
    ys = y0 + offsets - cy
    if shape == "square":
        inside = (np.abs(ys) <= half)[:, None] & (np.abs(xs) <= half)[None, :]
    elif shape == "circle":
        inside = (ys**2)[:, None] + (xs**2)[None, :] <= half**2
    else:  # triangle, apex up, base = height = 2 * half
        depth = ys + half
        inside = ((depth >= 0) & (depth <= 2 * half))[:, None] & (np.abs(xs)[None, :] <= depth[:, None] / 2)
    if ss == 1:
        return inside.astype(np.float32)
    return inside.reshape(size, ss, size, ss).mean(axis=(1, 3), dtype=np.float32)


def render_scene(scene: Scene, *, antialias: bool = True) -> np.ndarray:
    """Render a planned scene.

    Args:
        scene: The scene from [`make_scene`][vidtok.shapes.render.make_scene].
        antialias: Exact pixel coverage by 4×4 supersampling (``True``) or crisp pixel-center sampling.

    Returns:
        ``uint8`` frames ``(T, H, W, 3)``.
    """
    ss = _SUPERSAMPLE if antialias else 1
    num_frames, height, width = scene.num_frames, scene.height, scene.width
    canvas = np.zeros((num_frames, height, width, 3), dtype=np.float32)
    for obj, half, track in zip(scene.objects, scene.half_extents, scene.centers, strict=True):
        color = np.asarray(COLORS[obj.color], dtype=np.float32)
        size = int(math.ceil(2 * half)) + 2
        for t in range(num_frames):
            cx, cy = float(track[t, 0]), float(track[t, 1])
            x0, y0 = int(math.floor(cx - half)) - 1, int(math.floor(cy - half)) - 1
            cov = _coverage(obj.shape, half, cx, cy, x0, y0, size, ss)
            # clip the patch to the frame
            px0, py0 = max(0, -x0), max(0, -y0)
            px1, py1 = min(size, width - x0), min(size, height - y0)
            if px1 <= px0 or py1 <= py0:
                continue
            a = cov[py0:py1, px0:px1, None]
            region = canvas[t, y0 + py0 : y0 + py1, x0 + px0 : x0 + px1]
            region *= 1.0 - a
            region += a * color
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def render_video(
    objects: str | ShapeObject | Iterable[ShapeObject],
    *,
    num_frames: int = 16,
    resolution: int | tuple[int, int] = 64,
    fps: float = 8.0,
    speed: float = DEFAULT_SPEED,
    seed: int | np.random.Generator | None = None,
    antialias: bool = True,
) -> np.ndarray:
    """Render a video of the given objects (deterministic for a given seed).

    Args:
        objects: A caption (``"a large red circle moves left"``), one object or a list of objects.
            Unspecified sizes are drawn at random; unspecified motions are rendered still.
        num_frames: Number of frames ``T``.
        resolution: Frame size, an int (square) or ``(H, W)``; 32 to 256 is the tested range.
        fps: Frames per second; with ``speed`` it sets the displacement per frame.
        speed: Speed in frame sides (``min(H, W)``) per second; linear motions are slowed down when the
            clip is too long to stay inside the frame.
        seed: Seed or ``numpy.random.Generator``.
        antialias: Supersampled edges (``True``) or crisp pixel-center rendering.

    Returns:
        ``uint8`` frames ``(T, H, W, 3)``.

    Example:
        >>> video = render_video("a small green triangle moves down", resolution=32, num_frames=9, seed=1)
        >>> video.shape, video.dtype
        ((9, 32, 32, 3), dtype('uint8'))
    """
    scene = make_scene(objects, num_frames=num_frames, resolution=resolution, fps=fps, speed=speed, seed=seed)
    return render_scene(scene, antialias=antialias)
