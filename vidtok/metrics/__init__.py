"""Metrics: the Shapes scorer, reconstruction quality, Fréchet distances, FVD, CLIPSIM, eval cards, pictures.

The per-frame quality metrics and the Shapes scorer are imported with the package; the rest load on first use
(they pull in torchmetrics, open_clip or transformers).
"""

import importlib

from vidtok.metrics.video_quality import ms_ssim, psnr, psnr_per_frame, ssim, ssim_per_frame
from vidtok.shapes.scorer import ATTRIBUTES, DetectedObject, ShapesScore, analyze_video, score_video, score_videos

#: Public name -> the module that defines it (loaded on first access).
_LAZY = {
    "FeatureStats": "frechet",
    "frechet_distance": "frechet",
    "frechet_distance_from_stats": "frechet",
    "InceptionI3d": "i3d",
    "load_i3d": "i3d",
    "VideoFeatureExtractor": "fvd",
    "fvd": "fvd",
    "CLIPSimilarity": "clipsim",
    "clipsim": "clipsim",
    "LPIPS": "lpips",
    "lpips_video": "lpips",
    "reconstruction_metrics": "reconstruction",
    "ReconstructionAccumulator": "reconstruction",
    "EvalCard": "eval_card",
    "compare_cards": "eval_card",
    "SmallSampleWarning": "eval_card",
    "ProtocolMismatchError": "eval_card",
    "ShapesFeatureNet": "shapes_features",
    "load_shapes_features": "shapes_features",
    "shapes_frechet_distance": "shapes_features",
    "contact_sheet": "visuals",
    "animated_grid": "visuals",
    "accuracy_plot": "visuals",
}

__all__ = [
    "ATTRIBUTES",
    "CLIPSimilarity",
    "DetectedObject",
    "EvalCard",
    "FeatureStats",
    "InceptionI3d",
    "LPIPS",
    "ProtocolMismatchError",
    "ReconstructionAccumulator",
    "ShapesFeatureNet",
    "ShapesScore",
    "SmallSampleWarning",
    "VideoFeatureExtractor",
    "accuracy_plot",
    "analyze_video",
    "animated_grid",
    "clipsim",
    "compare_cards",
    "contact_sheet",
    "frechet_distance",
    "frechet_distance_from_stats",
    "fvd",
    "load_i3d",
    "load_shapes_features",
    "lpips_video",
    "ms_ssim",
    "psnr",
    "psnr_per_frame",
    "reconstruction_metrics",
    "score_video",
    "score_videos",
    "shapes_frechet_distance",
    "ssim",
    "ssim_per_frame",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"vidtok.metrics.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'vidtok.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
