"""Composite AR models: the video language model (DiCoDe §3.3) and the text tokenizers it reads prompts with."""

from __future__ import annotations

from vidtok._lazy import lazy_exports

_LAZY = {
    "VideoLM": "vidtok.models.video_lm",
    "VideoLMForTraining": "vidtok.models.video_lm",
    "load_text_tokenizer": "vidtok.models.text_tokenizers",
    "encode_prompts": "vidtok.models.text_tokenizers",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
