"""Small output dataclasses shared across components.

They subclass diffusers' ``BaseOutput``, so fields are reachable as attributes, by key and by position
(``out.tokens``, ``out["tokens"]``, ``out[0]``), as in diffusers and transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from diffusers.utils import BaseOutput

__all__ = ["TokenizerOutput"]


@dataclass
class TokenizerOutput(BaseOutput):
    """What a video tokenizer's ``encode`` returns.

    Attributes:
        tokens: Continuous tokens ``(B, S, N, D)`` (``S`` token steps, ``N`` tokens per step, ``D``
            channels). For discrete tokenizers, the quantized (straight-through) embeddings with the same
            layout. Hierarchical tokenizers return one tensor per level, coarsest first.
        indices: Integer codes with the leading layout of ``tokens`` (``(B, S, N)``), one per level for
            hierarchical tokenizers; ``None`` for continuous tokenizers.
        aux_losses: Named auxiliary training losses computed while encoding (commitment, entropy, KL), or
            ``None``.
    """

    tokens: Any = None
    indices: Any = None
    aux_losses: dict[str, Any] | None = None
