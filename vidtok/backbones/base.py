"""The ``BACKBONES`` registry.

Backbones map a sequence of input embeddings to hidden states. Hugging Face causal LMs stay
``transformers`` objects, so their entry is a *builder* class returning a ``PreTrainedModel``; native
backbones (the NOVA-style block-causal transformer) are vidtok components. The registry therefore
accepts any class; each entry documents what it builds.
"""

from __future__ import annotations

from vidtok.registry import Registry

__all__ = ["BACKBONES"]

BACKBONES: Registry[type] = Registry("backbone", package="vidtok.backbones")
