"""Every public import path that existed before the layout refactor still works (re-export modules and aliases).

New code imports from vidtok.shapes, vidtok.io (a package now) and vidtok.tokenizers.deep_tokens_diagnostics; these
old paths are kept so user code, training configs and shipped pipelines keep loading.
"""

from __future__ import annotations

import importlib

import pytest

OLD_PUBLIC_NAMES = {
    "vidtok.data.shapes": [
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
    ],
    "vidtok.metrics.shapes": [
        "ATTRIBUTES",
        "DetectedObject",
        "ShapesScore",
        "analyze_video",
        "score_video",
        "score_videos",
    ],
    "vidtok.metrics": [
        "ATTRIBUTES",
        "DetectedObject",
        "ShapesScore",
        "analyze_video",
        "psnr",
        "psnr_per_frame",
        "score_video",
        "score_videos",
        "ssim",
        "ssim_per_frame",
    ],
    "vidtok.data": [
        "CACHE_FORMAT",
        "CACHE_VERSION",
        "COLORS",
        "Clip",
        "CropPlan",
        "DEFAULT_SPEED",
        "DICODE_MOTION_RANGE",
        "DICODE_VIDEO_FILTERS",
        "HELDOUT_COMBINATIONS",
        "ImageTextDataset",
        "LINEAR_MOTIONS",
        "LONG_CLIP_FRAMES",
        "MOTIONS",
        "MixtureBatchSampler",
        "SHAPES",
        "SIZES",
        "SIZE_FRACTIONS",
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
    ],
    "vidtok.io": [
        "IMAGE_EXTENSIONS",
        "VIDEO_EXTENSIONS",
        "VideoInfo",
        "VideoReadError",
        "frames_to_tensor",
        "read_video",
        "read_video_info",
        "save_video",
        "tensor_to_frames",
    ],
    "vidtok.diagnostics": ["token_zeroing_grid", "zero_out_tokens"],
    "vidtok.models.text_tokenizers": ["SHAPES_WORDS"],
    "vidtok.data.transforms": ["resize_center_crop", "center_crop", "resize_crop_plan"],
    "vidtok.training.sampling": ["IndexedSources", "ShardedBatchSampler", "ShardedStream"],
}

# Where each moved name lives now: the old path must give the very same object.
NEW_HOMES = {
    "vidtok.data.shapes": "vidtok.shapes",
    "vidtok.metrics.shapes": "vidtok.shapes",
    "vidtok.diagnostics": "vidtok.tokenizers.deep_tokens_diagnostics",
}


@pytest.mark.parametrize("module", sorted(OLD_PUBLIC_NAMES))
def test_old_names_import(module):
    mod = importlib.import_module(module)
    missing = [name for name in OLD_PUBLIC_NAMES[module] if not hasattr(mod, name)]
    assert not missing, f"{module} lost {missing}"
    exec(f"from {module} import {', '.join(OLD_PUBLIC_NAMES[module])}", {})


@pytest.mark.parametrize("old", sorted(NEW_HOMES))
def test_old_names_are_the_new_objects(old):
    old_mod, new_mod = importlib.import_module(old), importlib.import_module(NEW_HOMES[old])
    for name in OLD_PUBLIC_NAMES[old]:
        assert getattr(old_mod, name) is getattr(new_mod, name), f"{old}.{name}"


def test_old_dotted_paths_in_configs_resolve():
    """Training configs name datasets as "module:attribute" strings; the old Shapes path still resolves."""
    module, _, attr = "vidtok.data.shapes:ShapesDataset".partition(":")
    from vidtok.shapes import ShapesDataset

    assert getattr(importlib.import_module(module), attr) is ShapesDataset


def test_top_level_lazy_names_still_resolve():
    import vidtok

    for name in ("read_video", "read_video_info", "save_video", "frames_to_tensor", "tensor_to_frames"):
        assert getattr(vidtok, name) is getattr(importlib.import_module("vidtok.io"), name)
    assert vidtok.diagnostics.zero_out_tokens is importlib.import_module("vidtok.diagnostics").zero_out_tokens
