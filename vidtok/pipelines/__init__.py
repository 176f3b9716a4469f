"""Pipelines: diffusers ``DiffusionPipeline`` subclasses with one ``__call__`` each.

* [`Reconstruct`][vidtok.pipelines.reconstruct.Reconstruct]: tokenize a video and decode it back
  (and [`reconstruct_file`][vidtok.pipelines.reconstruct.reconstruct_file], what ``vidtok reconstruct`` runs).
* [`TextToVideo`][vidtok.pipelines.text_to_video.TextToVideo]: prompt → deep tokens (video LM) → frames.
* [`ImageToVideo`][vidtok.pipelines.image_to_video.ImageToVideo]: the same, starting from an image.

All derive from [`VidtokPipeline`][vidtok.pipelines.pipeline_utils.VidtokPipeline], whose
``from_pretrained`` loads saved pipelines in a fresh interpreter.

Submodules are imported on first attribute access, so ``import vidtok.pipelines`` stays cheap.
"""

from __future__ import annotations

from vidtok._lazy import lazy_exports

_LAZY = {
    "Reconstruct": "vidtok.pipelines.reconstruct",
    "reconstruct_file": "vidtok.pipelines.reconstruct",
    "compression_report": "vidtok.pipelines.reconstruct",
    "ReconstructionOutput": "vidtok.pipelines.pipeline_output",
    "TextToVideo": "vidtok.pipelines.text_to_video",
    "ImageToVideo": "vidtok.pipelines.image_to_video",
    "TextToVideoOutput": "vidtok.pipelines.pipeline_output",
    "VideoPipelineOutput": "vidtok.pipelines.pipeline_output",
    "VidtokPipeline": "vidtok.pipelines.pipeline_utils",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
