"""The Shapes world: procedurally generated, captioned videos of colored shapes, and their pixel scorer.

Nothing pretrained can be downloaded where vidtok is developed, so the library ships a small synthetic
world whose videos are rendered on the fly (pure NumPy, a few milliseconds per clip) and whose captions
can be checked from pixels alone. The default models are trained on it.

==============================  ==========================================================================
module                          what it holds
==============================  ==========================================================================
``vidtok.shapes.grammar``       colors, shapes, sizes, motions; ``ShapeObject``, ``caption``,
                                ``parse_caption``; the held-out pairs; the word ``vocabulary()``
``vidtok.shapes.render``        geometry and trajectories (``make_scene``, ``Scene``), pixels
                                (``render_scene``, ``render_video``)
``vidtok.shapes.dataset``       seeded sampling and splits (``sample_objects``, ``generate``),
                                ``ShapesConfig``, ``ShapesDataset``
``vidtok.shapes.scorer``        prompt following from pixels (``score_video``, ``ShapesScore``)
==============================  ==========================================================================

Names are imported lazily (PEP 562): ``import vidtok.shapes`` imports nothing, ``from vidtok.shapes import
parse_caption`` imports only the (pure Python) grammar, and nothing here imports torch until a dataset item
is fetched.

Example:
    >>> from vidtok.shapes import parse_caption, render_video, score_video
    >>> objs = parse_caption("a large red circle moves right and a small blue square stays still")
    >>> objs[0]
    ShapeObject(color='red', shape='circle', size='large', motion='right')
    >>> video = render_video(objs, num_frames=16, resolution=64, seed=0)
    >>> video.shape
    (16, 64, 64, 3)
    >>> score_video(video, "a large red circle moves right")["overall"]
    1.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vidtok._lazy import lazy_exports

# Public name -> module defining it. Keep in sync with __all__ and each module's __all__ (a test checks it).
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
            "COLORS",
            "HELDOUT_COMBINATIONS",
            "LINEAR_MOTIONS",
            "MOTIONS",
            "SHAPES",
            "SHAPES_WORDS",
            "SIZES",
            "ShapeObject",
            "caption",
            "is_heldout",
            "parse_caption",
            "vocabulary",
        ),
        "vidtok.shapes.grammar",
    ),
    **dict.fromkeys(
        ("DEFAULT_SPEED", "SIZE_FRACTIONS", "Scene", "make_scene", "render_scene", "render_video"),
        "vidtok.shapes.render",
    ),
    **dict.fromkeys(
        ("LONG_CLIP_FRAMES", "SPLITS", "ShapesConfig", "ShapesDataset", "generate", "sample_objects", "sample_scene"),
        "vidtok.shapes.dataset",
    ),
    **dict.fromkeys(
        (
            "ATTRIBUTES",
            "DetectedObject",
            "ShapesScore",
            "analyze_video",
            "palette_fraction",
            "score_video",
            "score_videos",
        ),
        "vidtok.shapes.scorer",
    ),
}

__all__ = [
    "ATTRIBUTES",
    "COLORS",
    "DEFAULT_SPEED",
    "DetectedObject",
    "HELDOUT_COMBINATIONS",
    "LINEAR_MOTIONS",
    "LONG_CLIP_FRAMES",
    "MOTIONS",
    "SHAPES",
    "SHAPES_WORDS",
    "SIZES",
    "SIZE_FRACTIONS",
    "SPLITS",
    "Scene",
    "ShapeObject",
    "ShapesConfig",
    "ShapesDataset",
    "ShapesScore",
    "analyze_video",
    "caption",
    "generate",
    "is_heldout",
    "make_scene",
    "parse_caption",
    "render_scene",
    "render_video",
    "sample_objects",
    "sample_scene",
    "palette_fraction",
    "score_video",
    "score_videos",
    "vocabulary",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

if TYPE_CHECKING:  # real imports for IDEs and type checkers
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
        SHAPES_WORDS,
        SIZES,
        ShapeObject,
        caption,
        is_heldout,
        parse_caption,
        vocabulary,
    )
    from vidtok.shapes.render import DEFAULT_SPEED, SIZE_FRACTIONS, Scene, make_scene, render_scene, render_video
    from vidtok.shapes.scorer import (
        ATTRIBUTES,
        DetectedObject,
        ShapesScore,
        analyze_video,
        palette_fraction,
        score_video,
        score_videos,
    )
