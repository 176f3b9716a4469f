"""Composite AR models: the video language model (DiCoDe §3.3) and the text tokenizers it reads prompts with."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "VideoLM": "vidtok.models.video_lm",
    "VideoLMForTraining": "vidtok.models.video_lm",
    "load_text_tokenizer": "vidtok.models.text_tokenizers",
    "encode_prompts": "vidtok.models.text_tokenizers",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vidtok.models' has no attribute {name!r}")
