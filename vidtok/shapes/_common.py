"""Small helpers shared by the Shapes modules (frame size and seed handling)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def frame_size(resolution: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` of an int (square) or pair resolution; at least 16 pixels each."""
    if isinstance(resolution, (int, np.integer)):
        h = w = int(resolution)
    else:
        h, w = (int(v) for v in resolution)
    if h < 16 or w < 16:
        raise ValueError(f"resolution must be at least 16x16, got {h}x{w}")
    return h, w


def as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A generator as is, or a new one seeded with ``seed``."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)
