"""The still gate: an optional module of ``dicode_lm`` that repeats a keyframe exactly (not in DiCoDe).

On Shapes, a static scene's keyframes have identical tokens, but copying ``N × D`` values through the
language model and the output MLP is never exact, and small "still" objects drifted by a few pixels
(``docs/results.md``). The gate is a small MLP on the hidden state at each [BOV] (keyframes 1, 2, …) that
predicts whether the keyframe repeats the previous one; a keyframe it picks is copied, any other is sampled
as without the gate. It is trained with a binary cross-entropy next to the head's loss; the head still
models every keyframe, so NLLs compare with models without a gate.
"""

from __future__ import annotations

import torch
from torch import nn

from vidtok.noise import gumbel

__all__ = ["StillGate"]


class StillGate(nn.Sequential):
    """``Linear(H, H) → GELU → Linear(H, 1)`` on the [BOV] hidden state: the logit that a keyframe repeats.

    Args:
        hidden_size: Width of the backbone's hidden states.
        tolerance: Largest absolute token difference at which a keyframe still counts as a copy (``0``: exact
            repeats only).
    """

    def __init__(self, hidden_size: int, tolerance: float = 0.0) -> None:
        # A Sequential (state-dict keys "0.*", "2.*") so models saved before the gate was its own class load.
        super().__init__(nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, 1))
        if tolerance < 0:
            raise ValueError(f"still_tolerance must be >= 0, got {tolerance}")
        self.tolerance = float(tolerance)

    def logits(self, bov_hidden: torch.Tensor) -> torch.Tensor:
        """fp32 logits ``(...)`` that each keyframe repeats the previous one, from [BOV] states ``(..., H)``."""
        return self(bov_hidden).squeeze(-1).float()

    def targets(self, tokens: torch.Tensor) -> torch.Tensor:
        """Whether keyframes ``1 … S-1`` of ``(B, S, N, D)`` tokens repeat the previous one: ``(B, S-1)`` bool."""
        change = (tokens[:, 1:] - tokens[:, :-1]).abs().amax(dim=(-2, -1))
        return change <= self.tolerance

    def loss(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy of the gate's logits ``(B, S-1)`` against the repeats in ``tokens``."""
        return nn.functional.binary_cross_entropy_with_logits(logits, self.targets(tokens).float())

    @staticmethod
    def choose(logit: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
        """The gate's choice ``(B,)`` bool from (guided) logits, tempered like a head's discrete choices.

        ``temperature == 0`` repeats when the gate gives a repeat more than even odds; otherwise a two-way
        Gumbel-max draw of "sample" (logit 0) against "repeat" (the gate's logit), divided by the temperature.
        """
        if temperature == 0:
            return logit > 0
        choice = torch.stack([torch.zeros_like(logit), logit], dim=-1) / temperature
        return (choice + gumbel((logit.shape[0], 2), generator, choice.device)).argmax(-1).bool()
