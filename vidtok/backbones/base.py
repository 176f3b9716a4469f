"""The backbone contract and the ``BACKBONES`` registry (ARCHITECTURE §2, §5).

A backbone maps a sequence of input embeddings to hidden states, with an optional key/value cache so that
generation feeds one new position (or one new frame) at a time::

    out = backbone(inputs_embeds, attention_mask=None, position_ids=None, past_key_values=None, use_cache=False)
    out.last_hidden_state      # (B, L, backbone.hidden_size)
    out.past_key_values        # the cache to pass back in (None unless use_cache)

Every registered backbone subclasses :class:`Backbone`, so AR models call every backbone the same way:
Hugging Face causal LMs through the :class:`~vidtok.backbones.hf_causal_lm.HFCausalLM` adapter (their weights
and ``save_pretrained`` layout unchanged), native backbones (NOVA's block-causal transformer) directly.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn

from vidtok.outputs import BackboneOutput
from vidtok.registry import Registry

__all__ = ["BACKBONES", "Backbone", "BackboneOutput"]


class Backbone(nn.Module, abc.ABC):
    """Base class of AR backbones: ``inputs_embeds`` in, :class:`~vidtok.outputs.BackboneOutput` out.

    Subclasses implement :attr:`hidden_size` and :meth:`forward`. Backbones with a token vocabulary (causal
    language models, whose own embedding table embeds the prompt) return it from :meth:`get_input_embeddings`.

    The contract every registered backbone is tested against: feeding a sequence position by position
    through the cache (``use_cache=True``, passing ``past_key_values`` back in) gives the hidden states of one
    full forward pass.
    """

    @property
    @abc.abstractmethod
    def hidden_size(self) -> int:
        """Width of the hidden states (and of ``inputs_embeds``)."""

    @abc.abstractmethod
    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool = False,
    ) -> BackboneOutput:
        """Hidden states of ``inputs_embeds`` ``(B, L, hidden_size)``.

        Args:
            inputs_embeds: ``(B, L, hidden_size)`` embeddings of the new positions.
            attention_mask: Which positions (cached ones included) may be attended, ``(B, past + L)`` with 1 for
                real positions and 0 for padding, or a backbone-specific mask (block/frame structure).
            position_ids: ``(B, L)`` positions of the new inputs (default: continue after the cache).
            past_key_values: The cache a previous call returned, or ``None``.
            use_cache: Return the cache to continue from.
        """

    def get_input_embeddings(self) -> nn.Embedding | None:
        """The token embedding table the backbone owns (for text prompts), or ``None``."""
        return None

    @property
    def max_positions(self) -> int | None:
        """The longest sequence the backbone can read (learned position tables), or ``None`` if unbounded."""
        return None

    @staticmethod
    def cache_length(past_key_values: Any) -> int:
        """Positions held by a cache (0 for ``None``)."""
        if past_key_values is None:
            return 0
        if hasattr(past_key_values, "get_seq_length"):
            return int(past_key_values.get_seq_length())
        raise TypeError(f"cannot tell the length of a {type(past_key_values).__name__} cache")


BACKBONES: Registry[type[Backbone]] = Registry("backbone", base=Backbone, package="vidtok.backbones")
