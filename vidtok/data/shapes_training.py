"""Shapes training data: caption augmentation, clips in memory, and token caches for AR models.

* [`augment_caption`][vidtok.data.shapes_training.augment_caption] /
  [`CaptionAugmentation`][vidtok.data.shapes_training.CaptionAugmentation]: drop attributes from training
  captions so under-specified prompts (``"a red shape"``) are learned;
* [`ClipPool`][vidtok.data.shapes_training.ClipPool]: pre-rendered clips in memory for tokenizer training,
  with an optional extra loss weight on the objects;
* [`shapes_token_cache`][vidtok.data.shapes_training.shapes_token_cache]: render Shapes videos and encode them
  once with any tokenizer into a token cache (DiCoDe §3.3: the AR model trains on precomputed tokens).

Example:
    >>> import torch
    >>> from vidtok.data.shapes_training import augment_caption
    >>> caption = "a large red circle moves left"
    >>> augment_caption(caption, torch.Generator().manual_seed(0))
    'a large red shape moves left'
"""

from __future__ import annotations

import inspect
import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from vidtok.shapes.grammar import COLORS, SHAPES, SIZES

__all__ = ["AR_MOTIONS", "CaptionAugmentation", "ClipPool", "augment_caption", "shapes_token_cache"]

#: Motions of AR training videos: every motion, ``bounces`` included.
AR_MOTIONS = ("left", "right", "up", "down", "still", "bounces")


def augment_caption(caption: str, generator: Any = None, color_dropout: float = 0.0) -> str:
    """Drop the size word / the motion phrase (p = 0.2 each) and generalize the shape (p = 0.1), per object.

    With ``color_dropout`` > 0 the color word is also dropped with that probability, so the model sees every
    shape without its color: the held-out (color, shape) pairs are otherwise pulled toward the shapes their
    color came with in training (measured: large magenta squares drawn as circles, small yellow circles as
    squares). Off, it draws nothing, so the augmentation stream of earlier runs is unchanged.

    Args:
        caption: A caption of the Shapes grammar (objects joined by ``" and "``).
        generator: A ``torch.Generator`` seeding the choices (one draw per call), or ``None``.
        color_dropout: Probability of dropping each object's color word.

    Returns:
        The augmented caption.
    """
    import torch

    rng = random.Random(int(torch.randint(2**31, (1,), generator=generator)))
    out = []
    for phrase in caption.split(" and "):
        words = phrase.split()
        if color_dropout and rng.random() < color_dropout:
            words = [w for w in words if w not in COLORS]
        if len(words) > 1 and words[1] in SIZES and rng.random() < 0.2:
            words.pop(1)
        for motion_start in ("moves", "stays", "bounces"):
            if motion_start in words and rng.random() < 0.2:
                words = words[: words.index(motion_start)]
        if rng.random() < 0.1:
            words = ["shape" if w in SHAPES else w for w in words]
        out.append(" ".join(words))
    return " and ".join(out)


class CaptionAugmentation:
    """[`augment_caption`][vidtok.data.shapes_training.augment_caption] with a fixed ``color_dropout``.

    A picklable ``f(caption, generator) -> caption`` for
    [`VideoARModelForTraining`][vidtok.models.base.VideoARModelForTraining]'s ``caption_transform``.

    Args:
        color_dropout: Probability of dropping each object's color word.
    """

    def __init__(self, color_dropout: float = 0.0) -> None:
        if not 0.0 <= color_dropout <= 1.0:
            raise ValueError(f"color_dropout must be in [0, 1], got {color_dropout}")
        self.color_dropout = float(color_dropout)

    def __call__(self, caption: str, generator: Any = None) -> str:
        """The augmented caption (see [`augment_caption`][vidtok.data.shapes_training.augment_caption])."""
        return augment_caption(caption, generator, color_dropout=self.color_dropout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(color_dropout={self.color_dropout})"


class ClipPool:
    """Pre-rendered Shapes clips in memory, as a map-style dataset of ``{"video"}`` items.

    Rendering on the fly costs ~35 ms per clip on a CPU. With ``foreground_weight`` > 0 every item also
    carries a ``loss_weight``: ``1 + foreground_weight`` on the objects (pixels brighter than 10 % over the
    black background, grown by one pixel to include their outline) and 1 elsewhere. A plain MSE is dominated
    by the background; a 5-pixel object's corners — all that tells a small square from a small circle —
    weigh almost nothing in it.

    Args:
        videos: ``uint8`` clips ``(n, T, H, W, 3)`` (see
            [`render_clips`][vidtok.metrics.shapes_evaluation.render_clips]).
        foreground_weight: Extra loss weight on the objects.
    """

    def __init__(self, videos: np.ndarray, foreground_weight: float = 0.0) -> None:
        self.videos = videos
        self.foreground_weight = foreground_weight

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        v = torch.from_numpy(np.ascontiguousarray(self.videos[i].transpose(3, 0, 1, 2)))
        item = {"video": v.float().div(127.5).sub(1.0)}
        if self.foreground_weight:
            objects = (v.amax(0, keepdim=True) > 25).float()  # (1, T, H, W)
            objects = torch.nn.functional.max_pool3d(objects[None], (1, 3, 3), 1, (0, 1, 1))[0]
            item["loss_weight"] = 1.0 + self.foreground_weight * objects
        return item


def _takes(fn: Any, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def shapes_token_cache(
    tokenizer: Any,
    path: str | os.PathLike[str],
    *,
    steps: int,
    videos: int,
    split: str = "train",
    seed: int = 0,
    resolution: int | None = None,
    fps: float = 8.0,
    motions: tuple[str, ...] = AR_MOTIONS,
    num_objects: tuple[int, ...] = (1, 1, 2),
    batch_size: int = 64,
    log: Any = print,
) -> Any:
    """Render Shapes videos of ``steps`` token steps and encode them once with ``tokenizer`` (reused if built).

    A tokenizer whose ``encode`` takes a ``frame_stride`` (deep tokens) gets one frame per keyframe interval:
    ``steps`` frames rendered at ``fps / temporal_compression`` and encoded with ``frame_stride=1``, as DiCoDe
    encodes long videos at a reduced frame rate (§3.3, supplementary §6). Any other tokenizer gets
    ``(steps - 1) f + 1`` frames at ``fps`` (``f``: its temporal compression). An existing cache must have been
    built by a tokenizer of the same class and config (else a ``TokenCacheError`` says to rebuild it).

    Args:
        tokenizer: A [`VideoTokenizer`][vidtok.tokenizers.base.VideoTokenizer] (in eval mode).
        path: Cache folder.
        steps: Token steps per video.
        videos: Number of videos.
        split: Shapes split (``"train"``; ``"heldout"`` for validation videos of the held-out pairs).
        seed: Seed of the videos.
        resolution: Frame side (default: the tokenizer's ``sample_size``, else 32).
        fps: Frame rate of the decoded videos.
        motions: Motions of the objects.
        num_objects: Objects per video, drawn uniformly from this tuple.
        batch_size: Videos per ``encode`` call.
        log: Called with a progress message when a cache is built (``None``: silent).

    Returns:
        The [`TokenCacheDataset`][vidtok.data.token_cache.TokenCacheDataset].
    """
    import time

    from vidtok.data.token_cache import TokenCacheDataset, build_token_cache
    from vidtok.shapes.dataset import ShapesDataset

    path = Path(path)
    if not path.exists():
        f = int(tokenizer.temporal_compression)
        keyframes = _takes(tokenizer.encode, "frame_stride")
        size = resolution or (tokenizer.sample_size or (32, 32))[0]
        data = ShapesDataset(
            split,
            resolution=int(size),
            num_frames=steps if keyframes else (steps - 1) * f + 1,
            fps=fps / f if keyframes else fps,
            motions=tuple(motions),
            num_objects=tuple(num_objects),
            seed=seed,
            length=videos,
        )
        t0 = time.time()
        encode_kwargs = {"frame_stride": 1} if keyframes else {}
        build_token_cache(tokenizer, data, path, batch_size=batch_size, encode_kwargs=encode_kwargs)
        if log is not None:
            log(f"{split} token cache of {videos} videos built in {time.time() - t0:.0f} s")
    return TokenCacheDataset(path, tokenizer=tokenizer)
