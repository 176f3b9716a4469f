"""Shapes datasets: seeded sampling of scenes, the train/held-out splits, and the map-style dataset.

**Held-out split.** ``split="train"`` never draws a (color, shape) pair of
[`HELDOUT_COMBINATIONS`][vidtok.shapes.grammar.HELDOUT_COMBINATIONS]; ``split="heldout"`` contains at least
one held-out object per scene (others are unrestricted); ``split="all"`` samples everything. A model
trained on ``train`` and evaluated on ``heldout`` measures compositional generalization.

**Determinism.** Sample ``i`` of a dataset is a pure function of ``(seed, split, mode, i)`` and the
configuration, so datasets need no storage and any index can be rendered on demand.

Example:
    >>> from vidtok.shapes.dataset import ShapesDataset
    >>> ds = ShapesDataset("heldout", resolution=32, num_frames=8, length=10)
    >>> item = ds[0]
    >>> tuple(item["video"].shape), item["caption"].startswith("a ")
    ((3, 8, 32, 32), True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vidtok.shapes._common import as_rng, frame_size
from vidtok.shapes.grammar import COLORS, HELDOUT_COMBINATIONS, MOTIONS, SHAPES, SIZES, ShapeObject, caption, is_heldout
from vidtok.shapes.render import DEFAULT_SPEED, make_scene, render_scene

__all__ = [
    "LONG_CLIP_FRAMES",
    "SPLITS",
    "ShapesConfig",
    "ShapesDataset",
    "generate",
    "sample_objects",
    "sample_scene",
]

LONG_CLIP_FRAMES: int = 32
"""Clips with at least this many frames include ``bounces`` in their default motions."""

SPLITS: tuple[str, ...] = ("train", "heldout", "all")
"""Dataset splits."""

_SHORT_CLIP_MOTIONS = ("left", "right", "up", "down", "still")
_LONG_CLIP_MOTIONS = (*_SHORT_CLIP_MOTIONS, "bounces")
_MODES = ("video", "image")
_SPLIT_CODES = {"train": 0, "heldout": 1, "all": 2}
_MODE_CODES = {"video": 0, "image": 1}


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
    rng = as_rng(rng)
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
        frame_size(self.resolution)
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
        return frame_size(self.resolution)[0]

    @property
    def width(self) -> int:
        """Frame width in pixels."""
        return frame_size(self.resolution)[1]

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
    rng = as_rng(rng)
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
        config: A [`ShapesConfig`][vidtok.shapes.dataset.ShapesConfig]; ``split``/``mode`` and ``**kwargs``
            override its fields.
        **kwargs: Any other [`ShapesConfig`][vidtok.shapes.dataset.ShapesConfig] field (``resolution``,
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
