"""Small output dataclasses shared across components.

They subclass diffusers' ``BaseOutput``, so fields are reachable as attributes, by key and by position
(``out.tokens``, ``out["tokens"]``, ``out[0]``), as in diffusers and transformers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from diffusers.utils import BaseOutput

__all__ = ["BackboneOutput", "TokenLevel", "TokenizerOutput"]


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
        token_masks: Tokens a tokenizer found redundant and masked (bool ``(B, S, N)``, ``True`` = masked; one
            per level), which an autoregressive model may skip (HiTVideo §4), or ``None`` when it masks none.
    """

    tokens: Any = None
    indices: Any = None
    aux_losses: dict[str, Any] | None = None
    token_masks: Any = None


@dataclass(frozen=True)
class TokenLevel:
    """One level of what a tokenizer's ``encode`` returns (ARCHITECTURE §4): the single layout description.

    A tokenizer's :meth:`~vidtok.tokenizers.base.VideoTokenizer.token_layout` returns one per level, coarsest
    first. Continuous tokens of a level are ``(B, steps, tokens, dim)``; discrete codes ``(B, steps, tokens)``.

    Attributes:
        name: Level name (``"keyframes"`` for deep tokens, ``"level0"`` … for hierarchical tokenizers).
        steps: Token steps ``S`` (keyframes for deep tokens, latent frames for VAEs).
        tokens: Tokens per step ``N``.
        dim: Channels ``D`` of one continuous token (for discrete levels: of the quantized embedding).
        codebook_size: Size of the code vocabulary, or ``None`` for continuous tokens.
        frames_per_step: Input frames one step advances (the temporal compression; the keyframe stride).
        grid: ``(h, w)`` of the spatial token grid where tokens have one (``h * w == tokens``), else ``None``.
    """

    name: str
    steps: int
    tokens: int
    dim: int
    codebook_size: int | None = None
    frames_per_step: int = 1
    grid: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for key in ("steps", "tokens", "dim", "frames_per_step"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "steps" else 1):
                raise ValueError(f"TokenLevel {self.name!r}: {key} must be a positive int, got {value!r}")
        if self.codebook_size is not None and (not isinstance(self.codebook_size, int) or self.codebook_size < 2):
            raise ValueError(f"TokenLevel {self.name!r}: codebook_size must be an int >= 2, got {self.codebook_size!r}")
        if self.grid is not None and math.prod(self.grid) != self.tokens:
            raise ValueError(f"TokenLevel {self.name!r}: grid {self.grid} does not hold {self.tokens} tokens")

    @property
    def is_discrete(self) -> bool:
        """Whether the level carries integer codes."""
        return self.codebook_size is not None

    @property
    def bits_per_token(self) -> float:
        """``log2(codebook_size)`` bits per code.

        Raises:
            TypeError: For a continuous level.
        """
        if self.codebook_size is None:
            raise TypeError(f"level {self.name!r} is continuous: it has no bits per token")
        return math.log2(self.codebook_size)


@dataclass
class BackboneOutput(BaseOutput):
    """What a backbone's ``forward`` returns (:class:`~vidtok.backbones.base.Backbone`).

    Attributes:
        last_hidden_state: ``(B, L, hidden_size)`` hidden states of the new positions.
        past_key_values: The key/value cache to continue from (a transformers ``Cache`` for ``hf_causal_lm``),
            or ``None`` when ``use_cache`` is off.
    """

    last_hidden_state: Any = None
    past_key_values: Any = None
