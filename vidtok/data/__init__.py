"""Datasets and data tools: file datasets, image/video mixing, motion scores, shards, token caches, Shapes.

Every dataset returns dicts with ``"video"`` (``(3, T, H, W)`` float32 in ``[-1, 1]``; images have ``T == 1``) and
``"caption"`` (str), plus provenance entries; token caches return ``"tokens"`` instead of ``"video"``.

==========================  =========================================================================
module                      what it holds
==========================  =========================================================================
``vidtok.data.video``       ``VideoDataset`` (CSV/JSONL/folder + captions, clip sampling, filters),
                            ``build_video_index``, ``load_clip``, ``read_records``
``vidtok.data.images``      ``ImageTextDataset`` (images as 1-frame videos)
``vidtok.data.mixing``      ``WeightedMixture`` (weighted sources, one source per batch), ``MixingPlan``
``vidtok.data.motion``      ``motion_score`` (DiCoDe's optical-flow motion filter; ``vidtok[motion]``)
``vidtok.data.shards``      ``write_shards`` / ``ShardDataset`` (WebDataset tar shards, streaming)
``vidtok.data.token_cache`` ``build_token_cache`` / ``TokenCacheDataset`` (train on precomputed tokens)
``vidtok.data.transforms``  clip sampling and resize + center crop
``vidtok.data.shapes``      re-exports of the Shapes world, which lives in ``vidtok.shapes``
==========================  =========================================================================

Names are imported lazily (PEP 562): ``import vidtok.data`` imports nothing heavy, and
``from vidtok.data import ShapesDataset`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> module defining it. Keep in sync with __all__ and each module's __all__ (a test checks it).
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
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
        ),
        "vidtok.data.shapes",  # re-exports of vidtok.shapes (resolved there on first access)
    ),
    **dict.fromkeys(
        (
            "Clip",
            "CropPlan",
            "center_crop",
            "clip_span",
            "parse_size",
            "parse_stride",
            "resize_center_crop",
            "resize_crop_plan",
            "sample_clip",
        ),
        "vidtok.data.transforms",
    ),
    **dict.fromkeys(
        (
            "DICODE_VIDEO_FILTERS",
            "FileDataset",
            "SKIPPABLE_ERRORS",
            "VideoDataset",
            "build_video_index",
            "load_clip",
            "read_records",
        ),
        "vidtok.data.video",
    ),
    "ImageTextDataset": "vidtok.data.images",
    **dict.fromkeys(("MixingPlan", "MixtureBatchSampler", "WeightedMixture"), "vidtok.data.mixing"),
    **dict.fromkeys(("DICODE_MOTION_RANGE", "flow_magnitudes", "motion_score"), "vidtok.data.motion"),
    **dict.fromkeys(
        ("ALLOW_CODE_ENV", "ShardDataset", "code_allowed", "expand_urls", "write_shards"), "vidtok.data.shards"
    ),
    **dict.fromkeys(
        (
            "CACHE_FORMAT",
            "CACHE_VERSION",
            "TokenCacheDataset",
            "TokenCacheError",
            "build_token_cache",
            "tokenizer_provenance",
            "weights_digest",
        ),
        "vidtok.data.token_cache",
    ),
}

_SUBMODULES = ("images", "mixing", "motion", "shapes", "shards", "token_cache", "transforms", "video")

__all__ = [
    "ALLOW_CODE_ENV",
    "CACHE_FORMAT",
    "CACHE_VERSION",
    "COLORS",
    "Clip",
    "CropPlan",
    "DEFAULT_SPEED",
    "DICODE_MOTION_RANGE",
    "DICODE_VIDEO_FILTERS",
    "FileDataset",
    "HELDOUT_COMBINATIONS",
    "ImageTextDataset",
    "LINEAR_MOTIONS",
    "LONG_CLIP_FRAMES",
    "MOTIONS",
    "MixingPlan",
    "MixtureBatchSampler",
    "SHAPES",
    "SIZES",
    "SIZE_FRACTIONS",
    "SKIPPABLE_ERRORS",
    "SPLITS",
    "Scene",
    "ShapeObject",
    "ShapesConfig",
    "ShapesDataset",
    "ShardDataset",
    "TokenCacheDataset",
    "TokenCacheError",
    "VideoDataset",
    "WeightedMixture",
    "build_token_cache",
    "build_video_index",
    "caption",
    "center_crop",
    "clip_span",
    "code_allowed",
    "expand_urls",
    "flow_magnitudes",
    "generate",
    "is_heldout",
    "load_clip",
    "make_scene",
    "motion_score",
    "parse_caption",
    "parse_size",
    "parse_stride",
    "read_records",
    "render_scene",
    "render_video",
    "resize_center_crop",
    "resize_crop_plan",
    "sample_clip",
    "sample_objects",
    "sample_scene",
    "tokenizer_provenance",
    "weights_digest",
    "write_shards",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # cache: later lookups skip __getattr__
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))


if TYPE_CHECKING:  # real imports for IDEs and type checkers
    from vidtok.data.images import ImageTextDataset
    from vidtok.data.mixing import MixingPlan, MixtureBatchSampler, WeightedMixture
    from vidtok.data.motion import DICODE_MOTION_RANGE, flow_magnitudes, motion_score
    from vidtok.data.shapes import (
        COLORS,
        DEFAULT_SPEED,
        HELDOUT_COMBINATIONS,
        LINEAR_MOTIONS,
        LONG_CLIP_FRAMES,
        MOTIONS,
        SHAPES,
        SIZE_FRACTIONS,
        SIZES,
        SPLITS,
        Scene,
        ShapeObject,
        ShapesConfig,
        ShapesDataset,
        caption,
        generate,
        is_heldout,
        make_scene,
        parse_caption,
        render_scene,
        render_video,
        sample_objects,
        sample_scene,
    )
    from vidtok.data.shards import ALLOW_CODE_ENV, ShardDataset, code_allowed, expand_urls, write_shards
    from vidtok.data.token_cache import (
        CACHE_FORMAT,
        CACHE_VERSION,
        TokenCacheDataset,
        TokenCacheError,
        build_token_cache,
        tokenizer_provenance,
        weights_digest,
    )
    from vidtok.data.transforms import (
        Clip,
        CropPlan,
        center_crop,
        clip_span,
        parse_size,
        parse_stride,
        resize_center_crop,
        resize_crop_plan,
        sample_clip,
    )
    from vidtok.data.video import (
        DICODE_VIDEO_FILTERS,
        SKIPPABLE_ERRORS,
        FileDataset,
        VideoDataset,
        build_video_index,
        load_clip,
        read_records,
    )
