"""Pipelines: diffusers ``DiffusionPipeline`` subclasses with one ``__call__`` each.

* [`Reconstruct`][vidtok.pipelines.reconstruct.Reconstruct]: tokenize a video and decode it back
  (and [`reconstruct_file`][vidtok.pipelines.reconstruct.reconstruct_file], what ``vidtok reconstruct`` runs).
* [`TextToVideo`][vidtok.pipelines.text_to_video.TextToVideo]: prompt → deep tokens (video LM) → frames.
* [`ImageToVideo`][vidtok.pipelines.image_to_video.ImageToVideo]: the same, starting from an image.

Submodules are imported on first attribute access, so ``import vidtok.pipelines`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Reconstruct": "vidtok.pipelines.reconstruct",
    "reconstruct_file": "vidtok.pipelines.reconstruct",
    "compression_report": "vidtok.pipelines.reconstruct",
    "ReconstructionOutput": "vidtok.pipelines.pipeline_output",
    "TextToVideo": "vidtok.pipelines.text_to_video",
    "ImageToVideo": "vidtok.pipelines.image_to_video",
    "TextToVideoOutput": "vidtok.pipelines.pipeline_output",
    "VideoPipelineOutput": "vidtok.pipelines.pipeline_output",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vidtok.pipelines' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
