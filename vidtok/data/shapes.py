"""The Shapes world: procedurally generated, captioned videos of colored shapes.

Nothing pretrained can be downloaded where vidtok is developed, so the library ships a small synthetic
world whose videos are rendered on the fly (pure NumPy, a few milliseconds per clip) and whose captions
can be checked from pixels alone by [`vidtok.metrics.shapes`][vidtok.metrics.shapes]. The default models
are trained on it.

**Scene.** A black background with one or more objects. Each object has a color (see
[`COLORS`][vidtok.data.shapes.COLORS]), a shape (``circle``, ``square``, ``triangle``), a size (``small``,
``large``) and a motion (``moves left|right|up|down``, ``stays still``, ``bounces``). Objects in one scene
always have different colors (the scorer finds objects by color).

**Caption grammar.** One object is ``a [small|large] <color> <shape> [<motion>]``; several objects are
joined with ``" and "``, e.g. ``"a large red circle moves left and a small blue square stays still"``.
[`caption`][vidtok.data.shapes.caption] writes it and [`parse_caption`][vidtok.data.shapes.parse_caption]
reads it back (case-insensitive, extra whitespace ignored, anything else raises ``ValueError`` naming the
offending word). Both the size and the motion word may be left out:

- generated captions always name the size; a caption without a size, when rendered
  ([`render_video`][vidtok.data.shapes.render_video]), gets a random (seeded) size, and when scored, its
  size is not scored;
- image captions (``mode="image"``) have no motion phrase (``"a large red circle"``); a caption without a
  motion is rendered still and its motion is not scored.

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
part of the default motions only from [`LONG_CLIP_FRAMES`][vidtok.data.shapes.LONG_CLIP_FRAMES] frames on.

**Several objects.** Starting positions are drawn again (up to 256 times) until the objects' bounding
boxes stay at least one pixel apart in every frame; when no draw succeeds (possible with large objects
and long bouncing clips, where paths must cross) the draw with the largest minimum gap is kept, so
objects may briefly overlap (later objects are drawn on top).

**Held-out split.** The (color, shape) pairs in
[`HELDOUT_COMBINATIONS`][vidtok.data.shapes.HELDOUT_COMBINATIONS] (blue triangle, yellow circle, magenta
square: 3 of the 21 pairs, 14 % of all single-object combinations) never appear in ``split="train"``;
every color, every shape, every size and every motion still does. ``split="heldout"`` contains at least
one held-out object per scene (others are unrestricted); ``split="all"`` samples everything. A model
trained on ``train`` and evaluated on ``heldout`` measures compositional generalization.

**Determinism.** Sample ``i`` of a dataset is a pure function of ``(seed, split, mode, i)`` and the
configuration, so datasets need no storage and any index can be rendered on demand.

Example:
    >>> from vidtok.data.shapes import ShapeObject, caption, parse_caption, render_video
    >>> objs = parse_caption("a large red circle moves right and a small blue square stays still")
    >>> objs[0]
    ShapeObject(color='red', shape='circle', size='large', motion='right')
    >>> caption(objs)
    'a large red circle moves right and a small blue square stays still'
    >>> render_video(objs, num_frames=16, resolution=64, seed=0).shape
    (16, 64, 64, 3)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

__all__ = [
    "COLORS",
    "DEFAULT_SPEED",
    "HELDOUT_COMBINATIONS",
    "LINEAR_MOTIONS",
    "LONG_CLIP_FRAMES",
    "MOTIONS",
    "SHAPES",
    "SIZES",
    "SIZE_FRACTIONS",
    "SPLITS",
    "Scene",
    "ShapeObject",
    "ShapesConfig",
    "ShapesDataset",
    "caption",
    "generate",
    "is_heldout",
    "make_scene",
    "parse_caption",
    "render_scene",
    "render_video",
    "sample_objects",
    "sample_scene",
]

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 30),
    "blue": (40, 80, 255),
    "yellow": (240, 220, 30),
    "magenta": (220, 40, 220),
    "cyan": (30, 210, 220),
    "white": (240, 240, 240),
}
"""Object colors by name (RGB, 0-255). The background is black."""

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
"""Object shapes."""

SIZES: tuple[str, ...] = ("small", "large")
"""Object sizes."""

SIZE_FRACTIONS: dict[str, float] = {"small": 0.16, "large": 0.28}
"""Side of the equal-area square, as a fraction of the shorter frame side, for each size."""

MOTIONS: dict[str, str] = {
    "left": "moves left",
    "right": "moves right",
    "up": "moves up",
    "down": "moves down",
    "still": "stays still",
    "bounces": "bounces",
}
"""Motion keys (used in [`ShapeObject`][vidtok.data.shapes.ShapeObject]) and their caption phrases."""

LINEAR_MOTIONS: tuple[str, ...] = ("left", "right", "up", "down")
"""The motions that move in a straight line at constant speed."""

LONG_CLIP_FRAMES: int = 32
"""Clips with at least this many frames include ``bounces`` in their default motions."""

DEFAULT_SPEED: float = 0.2
"""Default object speed, in frame sides (``min(H, W)``) per second."""

HELDOUT_COMBINATIONS: tuple[tuple[str, str], ...] = (
    ("blue", "triangle"),
    ("yellow", "circle"),
    ("magenta", "square"),
)
"""(color, shape) pairs that never appear in the ``train`` split (any size, any motion)."""

SPLITS: tuple[str, ...] = ("train", "heldout", "all")
"""Dataset splits."""

_SHORT_CLIP_MOTIONS = ("left", "right", "up", "down", "still")
_LONG_CLIP_MOTIONS = (*_SHORT_CLIP_MOTIONS, "bounces")
_PHRASE_TO_MOTION = {phrase: key for key, phrase in MOTIONS.items()}
_MODES = ("video", "image")
_SPLIT_CODES = {"train": 0, "heldout": 1, "all": 2}
_MODE_CODES = {"video": 0, "image": 1}
_SUPERSAMPLE = 4
_MAX_PLACEMENT_TRIES = 256
# A reflection must be at least this far (fraction of S) from the start and from the end of the track.
_MIN_BOUNCE_EXCURSION = 0.12
_DIRECTIONS_8 = tuple(
    (dx / math.hypot(dx, dy), dy / math.hypot(dx, dy)) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)
)


# ----------------------------------------------------------------------------------------------------------
# objects and captions


@dataclass(frozen=True)
class ShapeObject:
    """One object of a Shapes scene: color, shape, and optionally size and motion.

    Args:
        color: A key of [`COLORS`][vidtok.data.shapes.COLORS].
        shape: One of [`SHAPES`][vidtok.data.shapes.SHAPES].
        size: One of [`SIZES`][vidtok.data.shapes.SIZES], or ``None`` (unspecified: random when
            rendered, not scored).
        motion: A key of [`MOTIONS`][vidtok.data.shapes.MOTIONS] (``"left"``, ..., ``"still"``,
            ``"bounces"``); the caption phrase (``"moves left"``) is accepted and normalized to its key.
            ``None`` means unspecified (rendered still, not scored), as in image captions.

    Raises:
        ValueError: If an attribute is not one of the allowed values.

    Example:
        >>> ShapeObject("red", "circle", "large", "moves left").phrase
        'a large red circle moves left'
    """

    color: str
    shape: str
    size: str | None = None
    motion: str | None = None

    def __post_init__(self) -> None:
        if self.color not in COLORS:
            raise ValueError(f"unknown color {self.color!r}; expected one of {list(COLORS)}")
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; expected one of {list(SHAPES)}")
        if self.size is not None and self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}; expected one of {list(SIZES)} or None")
        if self.motion is not None and self.motion not in MOTIONS:
            if self.motion not in _PHRASE_TO_MOTION:
                raise ValueError(f"unknown motion {self.motion!r}; expected one of {list(MOTIONS)} or None")
            object.__setattr__(self, "motion", _PHRASE_TO_MOTION[self.motion])

    @property
    def phrase(self) -> str:
        """This object's caption phrase, e.g. ``"a large red circle moves left"``."""
        words = ["a"]
        if self.size is not None:
            words.append(self.size)
        words += [self.color, self.shape]
        if self.motion is not None:
            words.append(MOTIONS[self.motion])
        return " ".join(words)


def caption(objects: ShapeObject | Iterable[ShapeObject]) -> str:
    """Write the caption of a scene.

    Args:
        objects: One object or several; their phrases are joined with ``" and "``.

    Returns:
        The caption, e.g. ``"a large red circle moves left and a small blue square stays still"``.

    Raises:
        ValueError: If ``objects`` is empty.

    Example:
        >>> caption([ShapeObject("red", "circle", "large"), ShapeObject("blue", "square", None, "up")])
        'a large red circle and a blue square moves up'
    """
    if isinstance(objects, ShapeObject):
        objects = [objects]
    phrases = [obj.phrase for obj in objects]
    if not phrases:
        raise ValueError("a caption needs at least one object")
    return " and ".join(phrases)


def _expected(word: str | None, position: int, text: str, what: str) -> ValueError:
    found = "end of caption" if word is None else f"word {word!r} (word {position + 1})"
    return ValueError(f"bad caption {text!r}: unexpected {found}; expected {what}")


def parse_caption(text: str) -> list[ShapeObject]:
    """Parse a caption written in the Shapes grammar.

    The grammar is ``a [small|large] <color> <shape> [moves left|right|up|down | stays still | bounces]``,
    objects joined with ``and``. Matching ignores case and repeated whitespace; nothing else is
    tolerated.

    Args:
        text: The caption.

    Returns:
        The objects in caption order; ``size``/``motion`` are ``None`` where the caption leaves them out.

    Raises:
        ValueError: If the caption does not follow the grammar; the message names the first bad word.

    Example:
        >>> parse_caption("a red circle moves up")
        [ShapeObject(color='red', shape='circle', size=None, motion='up')]
    """
    if not isinstance(text, str):
        raise TypeError(f"caption must be a str, got {type(text).__name__}")
    words = text.lower().split()
    n = len(words)
    i = 0
    objects: list[ShapeObject] = []

    def word(k: int) -> str | None:
        return words[k] if k < n else None

    while True:
        if word(i) != "a":
            raise _expected(word(i), i, text, "'a'")
        i += 1
        size = None
        if word(i) in SIZES:
            size = words[i]
            i += 1
        if word(i) not in COLORS:
            raise _expected(word(i), i, text, f"a size or a color ({', '.join([*SIZES, *COLORS])})")
        color = words[i]
        i += 1
        if word(i) not in SHAPES:
            raise _expected(word(i), i, text, f"a shape ({', '.join(SHAPES)})")
        shape = words[i]
        i += 1
        motion = None
        if word(i) == "moves":
            if word(i + 1) not in LINEAR_MOTIONS:
                raise _expected(word(i + 1), i + 1, text, f"a direction after 'moves' ({', '.join(LINEAR_MOTIONS)})")
            motion = words[i + 1]
            i += 2
        elif word(i) == "stays":
            if word(i + 1) != "still":
                raise _expected(word(i + 1), i + 1, text, "'still' after 'stays'")
            motion = "still"
            i += 2
        elif word(i) == "bounces":
            motion = "bounces"
            i += 1
        objects.append(ShapeObject(color, shape, size, motion))
        if word(i) is None:
            return objects
        if word(i) != "and":
            raise _expected(word(i), i, text, "a motion ('moves ...', 'stays still', 'bounces'), 'and' or the end")
        i += 1


def is_heldout(obj: ShapeObject | tuple[str, str]) -> bool:
    """Whether an object belongs to the held-out combinations.

    Args:
        obj: A [`ShapeObject`][vidtok.data.shapes.ShapeObject] or a ``(color, shape)`` pair.

    Returns:
        ``True`` if its (color, shape) pair is in
        [`HELDOUT_COMBINATIONS`][vidtok.data.shapes.HELDOUT_COMBINATIONS].

    Example:
        >>> is_heldout(ShapeObject("blue", "triangle", "small", "left")), is_heldout(("blue", "circle"))
        (True, False)
    """
    pair = (obj.color, obj.shape) if isinstance(obj, ShapeObject) else tuple(obj)
    return pair in HELDOUT_COMBINATIONS


# ----------------------------------------------------------------------------------------------------------
# geometry and rendering


def _hw(resolution: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(resolution, (int, np.integer)):
        h = w = int(resolution)
    else:
        h, w = (int(v) for v in resolution)
    if h < 16 or w < 16:
        raise ValueError(f"resolution must be at least 16x16, got {h}x{w}")
    return h, w


def _as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


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
        The planned [`Scene`][vidtok.data.shapes.Scene].

    Raises:
        ValueError: For an invalid caption or argument.
    """
    objs = _coerce_objects(objects)
    height, width = _hw(resolution)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if fps <= 0 or speed < 0:
        raise ValueError(f"fps must be > 0 and speed >= 0, got fps={fps}, speed={speed}")
    rng = _as_rng(seed)
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
        scene: The scene from [`make_scene`][vidtok.data.shapes.make_scene].
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


# ----------------------------------------------------------------------------------------------------------
# sampling and datasets


def _all_pairs() -> list[tuple[str, str]]:
    return [(c, s) for c in COLORS for s in SHAPES]


def _num_objects_choices(spec: int | Sequence[int] | Mapping[int, float]) -> tuple[list[int], list[float]]:
    if isinstance(spec, (int, np.integer)):
        values, probs = [int(spec)], [1.0]
    elif isinstance(spec, Mapping):
        values = [int(k) for k in spec]
        probs = [float(v) for v in spec.values()]
    else:
        values = [int(v) for v in spec]
        probs = [1.0] * len(values)
    if not values or any(v < 1 or v > len(COLORS) for v in values):
        raise ValueError(f"num_objects must be between 1 and {len(COLORS)}, got {spec!r}")
    total = sum(probs)
    if total <= 0 or any(p < 0 for p in probs):
        raise ValueError(f"num_objects probabilities must be non-negative and not all zero, got {spec!r}")
    return values, [p / total for p in probs]


def sample_objects(
    rng: int | np.random.Generator | None = None,
    *,
    num_objects: int | Sequence[int] | Mapping[int, float] = (1, 2),
    split: str = "train",
    motions: Sequence[str] | None = _SHORT_CLIP_MOTIONS,
) -> list[ShapeObject]:
    """Draw the objects of one scene (distinct colors, uniform attributes, split rules applied).

    Args:
        rng: Seed or generator.
        num_objects: A count, a sequence of counts drawn uniformly, or a mapping count -> probability.
        split: ``"train"`` (no held-out object), ``"heldout"`` (at least one held-out object) or ``"all"``.
        motions: Motion keys to draw from, or ``None`` for objects without motion (images).

    Returns:
        The objects (sizes always set).

    Raises:
        ValueError: For an unknown split or motion, or an impossible object count.
    """
    rng = _as_rng(rng)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    if motions is not None:
        motions = tuple(motions)
        bad = [m for m in motions if m not in MOTIONS]
        if bad or not motions:
            raise ValueError(f"motions must be a non-empty subset of {list(MOTIONS)}, got {list(motions)}")
    values, probs = _num_objects_choices(num_objects)
    n = values[rng.choice(len(values), p=probs)] if len(values) > 1 else values[0]
    pairs = _all_pairs()
    if split == "train":
        pairs = [p for p in pairs if not is_heldout(p)]
    chosen: list[tuple[str, str]] = []
    if split == "heldout":
        chosen.append(HELDOUT_COMBINATIONS[rng.integers(len(HELDOUT_COMBINATIONS))])
    while len(chosen) < n:
        used = {c for c, _ in chosen}
        options = [p for p in pairs if p[0] not in used]
        chosen.append(options[rng.integers(len(options))])
    if split == "heldout" and n > 1:
        chosen = [chosen[k] for k in rng.permutation(n)]
    objects = []
    for color, shape in chosen:
        size = SIZES[rng.integers(len(SIZES))]
        motion = None if motions is None else motions[rng.integers(len(motions))]
        objects.append(ShapeObject(color, shape, size, motion))
    return objects


@dataclass(frozen=True)
class ShapesConfig:
    """Configuration of a Shapes dataset (everything that determines its samples).

    Args:
        resolution: Frame size, an int (square) or ``(H, W)``.
        num_frames: Frames per video (ignored in image mode, where it is 1).
        fps: Frames per second (sets the per-frame displacement with ``speed``; stored for saving).
        num_objects: Objects per scene: a count, a sequence of counts drawn uniformly, or a mapping count
            -> probability.
        motions: Motion keys to draw from; ``None`` means ``left, right, up, down, still`` plus
            ``bounces`` when ``num_frames >= LONG_CLIP_FRAMES``.
        speed: Speed in frame sides per second.
        antialias: Supersampled (``True``) or crisp rendering.
        split: ``"train"``, ``"heldout"`` or ``"all"``.
        mode: ``"video"`` or ``"image"`` (one frame, captions without motion).
        seed: Base seed; sample ``i`` is drawn from ``(seed, split, mode, i)``.
        length: Number of samples a dataset reports.
    """

    resolution: int | tuple[int, int] = 64
    num_frames: int = 16
    fps: float = 8.0
    num_objects: int | tuple[int, ...] | Mapping[int, float] = (1, 2)
    motions: tuple[str, ...] | None = None
    speed: float = DEFAULT_SPEED
    antialias: bool = True
    split: str = "train"
    mode: str = "video"
    seed: int = 0
    length: int = 10_000

    def __post_init__(self) -> None:
        _hw(self.resolution)
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; expected one of {list(SPLITS)}")
        if self.mode not in _MODES:
            raise ValueError(f"unknown mode {self.mode!r}; expected one of {list(_MODES)}")
        if self.num_frames < 1 or self.length < 0 or self.seed < 0:
            raise ValueError("num_frames must be >= 1, length >= 0 and seed >= 0")
        if self.fps <= 0 or self.speed < 0:
            raise ValueError(f"fps must be > 0 and speed >= 0, got fps={self.fps}, speed={self.speed}")
        _num_objects_choices(self.num_objects)
        if self.motions is not None:
            object.__setattr__(self, "motions", tuple(self.motions))
            bad = [m for m in self.motions if m not in MOTIONS]
            if bad or not self.motions:
                raise ValueError(f"motions must be a non-empty subset of {list(MOTIONS)}, got {self.motions}")
        if not isinstance(self.resolution, (int, np.integer)):
            object.__setattr__(self, "resolution", tuple(int(v) for v in self.resolution))

    @property
    def height(self) -> int:
        """Frame height in pixels."""
        return _hw(self.resolution)[0]

    @property
    def width(self) -> int:
        """Frame width in pixels."""
        return _hw(self.resolution)[1]

    @property
    def frames(self) -> int:
        """Frames per sample: ``num_frames`` for videos, 1 for images."""
        return 1 if self.mode == "image" else self.num_frames

    @property
    def resolved_motions(self) -> tuple[str, ...] | None:
        """The motions samples are drawn from (``None`` in image mode)."""
        if self.mode == "image":
            return None
        if self.motions is not None:
            return self.motions
        return _LONG_CLIP_MOTIONS if self.num_frames >= LONG_CLIP_FRAMES else _SHORT_CLIP_MOTIONS

    def rng(self, index: int) -> np.random.Generator:
        """The generator that draws sample ``index`` (a pure function of seed, split, mode and index)."""
        return np.random.default_rng([self.seed, _SPLIT_CODES[self.split], _MODE_CODES[self.mode], int(index)])


def _config(config: ShapesConfig | None, kwargs: dict[str, Any]) -> ShapesConfig:
    if config is None:
        return ShapesConfig(**kwargs)
    return replace(config, **kwargs) if kwargs else config


def sample_scene(
    rng: int | np.random.Generator | None = None, config: ShapesConfig | None = None, **kwargs: Any
) -> tuple[list[ShapeObject], np.ndarray]:
    """Draw objects and render them.

    Args:
        rng: Seed or generator.
        config: Generation settings (split, mode, resolution, ...); ``seed`` and ``length`` are not used.
        **kwargs: Overrides of ``config`` fields (or the fields themselves when ``config`` is ``None``).

    Returns:
        ``(objects, video)``: the objects (``caption(objects)`` is the caption) and ``uint8`` frames
        ``(T, H, W, 3)``.

    Example:
        >>> objects, video = sample_scene(0, resolution=32, num_frames=8)
        >>> video.shape
        (8, 32, 32, 3)
    """
    cfg = _config(config, kwargs)
    rng = _as_rng(rng)
    objects = sample_objects(rng, num_objects=cfg.num_objects, split=cfg.split, motions=cfg.resolved_motions)
    scene = make_scene(
        objects, num_frames=cfg.frames, resolution=cfg.resolution, fps=cfg.fps, speed=cfg.speed, seed=rng
    )
    return list(scene.objects), render_scene(scene, antialias=cfg.antialias)


def generate(
    n: int, config: ShapesConfig | None = None, *, start: int = 0, **kwargs: Any
) -> tuple[np.ndarray, list[str]]:
    """Render ``n`` consecutive samples of a Shapes dataset as NumPy arrays.

    Sample ``k`` is identical to ``ShapesDataset(config=config)[start + k]`` (before its conversion to a
    tensor).

    Args:
        n: Number of samples.
        config: Dataset configuration.
        start: Index of the first sample.
        **kwargs: Overrides of ``config`` fields (or the fields themselves when ``config`` is ``None``).

    Returns:
        ``(videos, captions)``: ``uint8`` ``(n, T, H, W, 3)`` and ``n`` captions.

    Example:
        >>> videos, captions = generate(4, resolution=32, num_frames=8, seed=3)
        >>> videos.shape, len(captions)
        ((4, 8, 32, 32, 3), 4)
    """
    cfg = _config(config, kwargs)
    videos = np.zeros((n, cfg.frames, cfg.height, cfg.width, 3), dtype=np.uint8)
    captions = []
    for k in range(n):
        objects, videos[k] = sample_scene(cfg.rng(start + k), cfg)
        captions.append(caption(objects))
    return videos, captions


class ShapesDataset:
    """Map-style dataset of procedurally rendered Shapes videos (or images) with captions.

    Samples are rendered on demand and are a pure function of ``(seed, split, mode, index)`` and the
    configuration, so the dataset needs no storage and behaves the same in every DataLoader worker. It
    implements ``__len__``/``__getitem__`` and works with ``torch.utils.data.DataLoader``; torch is only
    imported when an item is fetched.

    Args:
        split: ``"train"`` (never a held-out (color, shape) pair), ``"heldout"`` (at least one held-out
            object per scene) or ``"all"``; ``None`` keeps the config's (default ``"train"``).
        mode: ``"video"``, or ``"image"`` (``T == 1`` and captions without motion, e.g.
            ``"a large red circle"``); ``None`` keeps the config's (default ``"video"``).
        config: A [`ShapesConfig`][vidtok.data.shapes.ShapesConfig]; ``split``/``mode`` and ``**kwargs``
            override its fields.
        **kwargs: Any other [`ShapesConfig`][vidtok.data.shapes.ShapesConfig] field (``resolution``,
            ``num_frames``, ``fps``, ``num_objects``, ``motions``, ``speed``, ``antialias``, ``seed``,
            ``length``).

    Example:
        >>> ds = ShapesDataset("train", resolution=32, num_frames=8, length=100)
        >>> item = ds[0]
        >>> tuple(item["video"].shape), item["video"].dtype, isinstance(item["caption"], str)
        ((3, 8, 32, 32), torch.float32, True)
    """

    def __init__(
        self,
        split: str | None = None,
        mode: str | None = None,
        *,
        config: ShapesConfig | None = None,
        **kwargs: Any,
    ) -> None:
        if split is not None:
            kwargs["split"] = split
        if mode is not None:
            kwargs["mode"] = mode
        self.config = _config(config, kwargs)

    def __len__(self) -> int:
        return self.config.length

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    def _index(self, index: int) -> int:
        n = len(self)
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of length {n}")
        return index

    def scene(self, index: int) -> tuple[list[ShapeObject], np.ndarray]:
        """The objects and ``uint8`` frames ``(T, H, W, 3)`` of sample ``index``.

        Args:
            index: Sample index (negative indices count from the end).

        Returns:
            ``(objects, video)``.
        """
        index = self._index(index)
        return sample_scene(self.config.rng(index), self.config)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample ``index`` as ``{"video": (C, T, H, W) float32 in [-1, 1], "caption": str}``."""
        import torch

        objects, video = self.scene(index)
        tensor = torch.from_numpy(np.ascontiguousarray(video.transpose(3, 0, 1, 2))).float().div_(127.5).sub_(1.0)
        return {"video": tensor, "caption": caption(objects)}
