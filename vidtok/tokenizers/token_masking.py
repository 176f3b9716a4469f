"""HiTVideo's dynamic token masking (HiTVideo §4, Fig. 6–7): skip the tokens that barely change over time.

Per level, the difference between consecutive token steps of the latents (before quantization) is measured
token by token; a token whose difference is below the mean difference (of that sample and level, over every
step but the first) is redundant and masked — as is a token that did not change at all (which also covers a
fully still video, whose differences are all zero). The first step is never masked: it has no previous step.
At most ``max_fraction`` (85 % in the paper) of a level's tokens are masked: above that, randomly chosen
candidates are unmasked again until the cap holds exactly.

A masked token is then replaced by one of the paper's three strategies (:func:`apply_token_mask`): the
previous step's token (``"repeat"``; a run of masked steps repeats the last unmasked one), zeros (``"zero"``)
or a learned mask token (``"learned"``). The autoregressive model can skip masked tokens: only the unmasked
ones need to be predicted.

Example:
    >>> import torch
    >>> from vidtok.tokenizers.token_masking import apply_token_mask, dynamic_token_mask
    >>> latents = torch.zeros(1, 3, 2, 4)  # (B, S, N, D): token 0 still, token 1 moving
    >>> latents[0, 1, 1] = latents[0, 2, 1] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    >>> latents[0, 2, 1] *= 2
    >>> dynamic_token_mask(latents)[0].tolist()
    [[False, False], [True, False], [True, False]]
    >>> apply_token_mask(latents, dynamic_token_mask(latents), "zero")[0, :, 1, 0].tolist()
    [0.0, 1.0, 2.0]
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["STRATEGIES", "apply_token_mask", "dynamic_token_mask", "tokens_saved"]

#: The masking strategies of HiTVideo §4.1 (Fig. 7).
STRATEGIES = ("repeat", "zero", "learned")

# A token whose difference is at most this fraction of the level's mean token norm counts as unchanged.
_STILL_RTOL = 1e-5


def _check_fraction(max_fraction: Any) -> float:
    if isinstance(max_fraction, bool) or not isinstance(max_fraction, (int, float)) or not 0 <= max_fraction <= 1:
        raise ValueError(f"max_fraction must be a number in [0, 1], got {max_fraction!r}")
    return float(max_fraction)


def _level_mask(x: torch.Tensor, max_fraction: float, generator: torch.Generator | None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"dynamic_token_mask: latents must be floating-point (B, S, N, D) tensors, got {got}")
    b, s, n, _ = x.shape
    mask = torch.zeros(b, s, n, dtype=torch.bool, device=x.device)
    if s < 2 or n == 0 or b == 0:
        return mask
    x = x.detach().float()
    diff = (x[:, 1:] - x[:, :-1]).norm(dim=-1)  # (B, S - 1, N)
    mean = diff.mean(dim=(1, 2), keepdim=True)
    scale = x.norm(dim=-1).mean(dim=(1, 2), keepdim=True)
    candidates = (diff < mean) | (diff <= _STILL_RTOL * scale)
    mask[:, 1:] = candidates
    # The cap: at most floor(max_fraction * S * N) masked tokens per sample, the rest unmasked at random.
    cap = math.floor(max_fraction * s * n + 1e-9)
    flat = mask.reshape(b, s * n)
    if int(flat.sum(dim=1).max()) > cap:
        device = generator.device if generator is not None else torch.device("cpu")
        scores = torch.rand(b, s * n, generator=generator, device=device).to(x.device)
        scores = scores.masked_fill(~flat, math.inf)
        rank = scores.argsort(dim=1).argsort(dim=1)
        flat = flat & (rank < cap)
        mask = flat.reshape(b, s, n)
    return mask


def dynamic_token_mask(
    latents: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...],
    *,
    max_fraction: float = 0.85,
    generator: torch.Generator | None = None,
) -> torch.Tensor | list[torch.Tensor]:
    """Which tokens are redundant (HiTVideo §4): ``True`` where a token barely changes from the previous step.

    Args:
        latents: Continuous tokens ``(B, S, N, D)`` of one level, or a list of them (one per level); the
            tokenizer passes the quantizer's inputs.
        max_fraction: At most this fraction of a sample's ``S × N`` tokens (per level) is masked
            (``floor(max_fraction · S · N)`` tokens); candidates beyond it are unmasked at random.
        generator: Drives the random unmasking (default: torch's global generator).

    Returns:
        A bool ``(B, S, N)`` mask (``True`` = masked) for a tensor, a list of them for a list. Step 0 is never
        masked.

    Raises:
        ValueError: If ``max_fraction`` is not in ``[0, 1]`` or a latent is not a floating-point 4-D tensor.
    """
    max_fraction = _check_fraction(max_fraction)
    if isinstance(latents, (list, tuple)):
        return [_level_mask(x, max_fraction, generator) for x in latents]
    return _level_mask(latents, max_fraction, generator)


def apply_token_mask(
    tokens: torch.Tensor,
    mask: torch.Tensor,
    strategy: str = "repeat",
    mask_token: torch.Tensor | None = None,
) -> torch.Tensor:
    """Replace the masked tokens by a strategy of HiTVideo §4.1 (differentiable; the inputs are not modified).

    Args:
        tokens: ``(B, S, N, D)`` tokens.
        mask: Bool ``(B, S, N)``, ``True`` = masked.
        strategy: ``"repeat"`` (the previous step's token, chained through runs of masked steps), ``"zero"``
            or ``"learned"`` (``mask_token``).
        mask_token: ``(D,)`` learned mask token, required by ``"learned"``.

    Returns:
        The tokens with the masked ones replaced, ``tokens``' shape and dtype.

    Raises:
        ValueError: On an unknown strategy, a mask of the wrong shape or dtype, a masked first step with
            ``"repeat"``, or a missing or wrongly shaped ``mask_token``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"apply_token_mask: unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 4:
        got = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"apply_token_mask: tokens must be (B, S, N, D), got {got}")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != tokens.shape[:3]:
        got = (tuple(mask.shape), mask.dtype) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"apply_token_mask: mask must be a bool tensor of shape {tuple(tokens.shape[:3])}, got {got}")
    m = mask.unsqueeze(-1)
    if strategy == "zero":
        return tokens.masked_fill(m, 0)
    if strategy == "learned":
        if not isinstance(mask_token, torch.Tensor) or mask_token.shape != tokens.shape[-1:]:
            got = tuple(mask_token.shape) if isinstance(mask_token, torch.Tensor) else mask_token
            need = f"({tokens.shape[-1]},)"
            raise ValueError(f"apply_token_mask: 'learned' needs a mask_token of shape {need}, got {got}")
        return torch.where(m, mask_token.to(tokens.dtype), tokens)
    if tokens.shape[1] and bool(mask[:, 0].any()):
        raise ValueError("apply_token_mask: 'repeat' cannot mask the first step (it has no previous step)")
    steps = [tokens[:, 0]]
    for s in range(1, tokens.shape[1]):
        steps.append(torch.where(m[:, s], steps[-1], tokens[:, s]))
    return torch.stack(steps, dim=1)


def tokens_saved(masks: torch.Tensor | list[torch.Tensor]) -> list[dict[str, Any]]:
    """Per level: ``{"level", "masked", "total", "fraction"}``, the tokens a mask saves (over the whole batch)."""
    masks = masks if isinstance(masks, (list, tuple)) else [masks]
    report = []
    for i, m in enumerate(masks):
        masked, total = int(m.sum()), m.numel()
        report.append({"level": f"level{i}", "masked": masked, "total": total, "fraction": masked / max(total, 1)})
    return report
