"""Composite AR models (``MODELS``), the generation machinery they share, and the text tokenizers prompts use.

Every file registers one model under its file's name (``dicode_lm``, ``hitvideo_lm``, ``nova``);
:mod:`vidtok.models.generation` holds the shared loop pieces (backbone context with KV cache, sliding window,
guidance batching).
"""

from __future__ import annotations

from vidtok.models import dicode_lm, hitvideo_lm, nova  # noqa: F401  (registers)
from vidtok.models.base import MODELS, VideoARModel, VideoARModelForTraining
from vidtok.models.dicode_lm import DiCoDeLM
from vidtok.models.hitvideo_lm import HiTVideoLM
from vidtok.models.nova import NOVAModel
from vidtok.models.text_tokenizers import encode_prompts, load_text_tokenizer
from vidtok.models.video_lm import VideoLM, VideoLMForTraining

__all__ = [
    "MODELS",
    "DiCoDeLM",
    "HiTVideoLM",
    "NOVAModel",
    "VideoARModel",
    "VideoARModelForTraining",
    "VideoLM",
    "VideoLMForTraining",
    "encode_prompts",
    "load_text_tokenizer",
]
