"""Old home of the Shapes world; it now lives in [`vidtok.shapes`][vidtok.shapes].

This module re-exports the names it used to define, so ``from vidtok.data.shapes import ShapesDataset`` (and
``"vidtok.data.shapes:ShapesDataset"`` in training configs) keeps working. New code imports from
``vidtok.shapes``.
"""

from __future__ import annotations

from vidtok.shapes.dataset import (
    LONG_CLIP_FRAMES,
    SPLITS,
    ShapesConfig,
    ShapesDataset,
    generate,
    sample_objects,
    sample_scene,
)
from vidtok.shapes.grammar import (
    COLORS,
    HELDOUT_COMBINATIONS,
    LINEAR_MOTIONS,
    MOTIONS,
    SHAPES,
    SIZES,
    ShapeObject,
    caption,
    is_heldout,
    parse_caption,
)
from vidtok.shapes.render import DEFAULT_SPEED, SIZE_FRACTIONS, Scene, make_scene, render_scene, render_video

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
