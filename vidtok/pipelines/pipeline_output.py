"""Output dataclasses of vidtok pipelines (diffusers ``BaseOutput``: attribute, key and index access)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from diffusers.utils import BaseOutput

__all__ = ["ReconstructionOutput", "TextToVideoOutput", "VideoPipelineOutput"]


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


@dataclass
class TextToVideoOutput(VideoPipelineOutput):
    """What the text-to-video and image-to-video pipelines return.

    [`TextToVideo`][vidtok.pipelines.text_to_video.TextToVideo] and
    [`ImageToVideo`][vidtok.pipelines.image_to_video.ImageToVideo] share it.

    Attributes:
        frames: The videos (see [`VideoPipelineOutput`][vidtok.pipelines.pipeline_output.VideoPipelineOutput]);
            ``None`` with ``output_type="latent"`` (read the fields by name then: diffusers' outputs leave
            ``None`` fields out of ``out[i]``, so ``out[0]`` is ``tokens``).
        tokens: The generated deep tokens ``(B, S, N, D)`` (prefix included).
        fps: Frame rate to play or save the frames at (``vidtok.io.save_video(frames[0], path, fps)``).
    """

    tokens: Any = None
    fps: float | None = None
