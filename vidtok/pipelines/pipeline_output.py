"""Output dataclasses of vidtok pipelines (diffusers ``BaseOutput``: attribute, key and index access)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from diffusers.utils import BaseOutput

__all__ = ["ReconstructionOutput", "VideoPipelineOutput"]


@dataclass
class VideoPipelineOutput(BaseOutput):
    """Frames produced by a video pipeline.

    Attributes:
        frames: ``output_type="np"``: ``(B, T, H, W, C)`` float in ``[0, 1]``; ``"pt"``: a tensor
            ``(B, C, T, H, W)`` in ``[-1, 1]`` (the model layout); ``"pil"``: one list of PIL images per video.
    """

    frames: Any = None


@dataclass
class ReconstructionOutput(VideoPipelineOutput):
    """What [`Reconstruct`][vidtok.pipelines.reconstruct.Reconstruct] returns.

    Attributes:
        frames: The reconstruction (see [`VideoPipelineOutput`][vidtok.pipelines.pipeline_output.VideoPipelineOutput]).
        tokens: The tokens the video was compressed to (``(B, S, N, D)`` for deep tokens).
        num_frames: Frames the reconstruction covers (``(S - 1) f + 1`` for deep tokens); the input is
            compared over its first ``num_frames`` frames.
    """

    tokens: Any = None
    num_frames: int | None = None
