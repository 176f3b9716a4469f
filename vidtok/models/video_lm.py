"""Old import path of DiCoDe's video language model, kept so saved pipelines and user code keep working.

Pipelines saved before the AR-model contract name ``["vidtok.models.video_lm", "VideoLM"]`` in their
``model_index.json``; ``VideoLM`` is :class:`~vidtok.models.dicode_lm.DiCoDeLM` (registered as ``dicode_lm``)
and ``VideoLMForTraining`` is :class:`~vidtok.models.base.VideoARModelForTraining`.
"""

from __future__ import annotations

from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks it up in this module)

from vidtok.models.base import VideoARModelForTraining as VideoLMForTraining
from vidtok.models.dicode_lm import DiCoDeLM as VideoLM

__all__ = ["VideoLM", "VideoLMForTraining"]
