"""Generation machinery every AR model shares: the backbone context, its window, and guidance batching.

An AR model's ``generate`` is a loop of "feed new positions, read the last hidden state, let the head draw".
The pieces that loop needs and that do not depend on the method live here, once:

* :class:`BackboneContext` feeds a backbone a growing sequence, with the key/value cache (one new position
  or frame per call) or by recomputing the whole sequence (the reference the cache is tested against);
* :func:`window_start` decides which steps a restarted context keeps once a sliding window is full;
* :class:`Guidance` batches the conditional and null-prompt rows of classifier-free guidance, splits the
  hidden states and calls the head with ``uncond_hidden`` (every head takes it; no introspection);
* :func:`set_by_set_schedule` says how many tokens of a frame each step of MAR/NOVA's set-by-set decoding
  decides.

DiCoDe's keyframe-by-keyframe loop (``dicode_lm``) and the next models (HiTVideo's coarse-to-fine levels,
NOVA's frame-by-frame set-by-set decoding) build on them.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vidtok.backbones.base import Backbone

__all__ = ["BackboneContext", "Guidance", "set_by_set_schedule", "window_start"]


def window_start(step: int, window: int) -> int:
    """The first step a context restarted for ``step`` keeps, when at most ``window`` steps fit.

    Before the window is full nothing is dropped (``0``); afterwards the newest half of the window is kept
    (at least one step), so a restart happens every ``window // 2`` steps rather than every step, and memory
    stays flat however long the video is.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if step < window:
        return 0
    return step - max(window // 2, 1) if window > 1 else step


def set_by_set_schedule(num_tokens: int, num_steps: int) -> list[int]:
    """How many tokens each step of set-by-set decoding decides: a cosine schedule (MaskGIT, MAR, NOVA §3.3).

    After step ``k`` of ``K`` about ``N cos(π/2 · (k + 1) / K)`` tokens stay undecided, so early steps decide
    few tokens (little context yet) and later steps many. Every step decides at least one token and the
    counts sum to ``N``; more steps than tokens give one token per step.

    Args:
        num_tokens: Tokens of the set ``N`` (one frame).
        num_steps: Decoding steps ``K`` (capped at ``N``).

    Returns:
        Tokens per step, summing to ``num_tokens``.

    Example:
        >>> set_by_set_schedule(16, 4)
        [2, 3, 5, 6]
    """
    for name, value in (("num_tokens", num_tokens), ("num_steps", num_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    steps = min(num_steps, num_tokens)
    remaining = [math.floor(num_tokens * math.cos(math.pi / 2 * (k + 1) / steps)) for k in range(steps)]
    counts, left = [], num_tokens
    for k, target in enumerate(remaining):
        # At least one token now, and at least one left for each later step.
        target = min(max(target, steps - k - 1), left - 1) if k < steps - 1 else 0
        counts.append(left - target)
        left = target
    return counts


class BackboneContext:
    """A backbone run over a growing sequence (DiCoDe §3.4's autoregressive loop; any backbone).

    Args:
        backbone: Any :class:`~vidtok.backbones.base.Backbone`.
        use_cache: Keep the key/value cache and feed only new positions; ``False`` recomputes the whole
            sequence on every call (slower, same result up to rounding).
        make_cache: Builds the empty cache a (re)started context begins with (e.g. a block-causal backbone's
            windowed frame cache); ``None``: the backbone makes one on the first call.
        sequence_kwargs: Per-position backbone arguments and the dimension they grow along (e.g.
            ``{"position_ids": 1, "block_ids": 0}``): without the cache they are concatenated like the sequence.

    Example:
        >>> import torch
        >>> from vidtok.backbones.hf_causal_lm import HFCausalLM
        >>> ctx = BackboneContext(HFCausalLM(**HFCausalLM.tiny_config()))
        >>> ctx.feed(torch.randn(1, 3, 32)).shape, ctx.length
        (torch.Size([1, 32]), 3)
    """

    def __init__(
        self,
        backbone: Backbone,
        use_cache: bool = True,
        *,
        make_cache: Any = None,
        sequence_kwargs: dict[str, int] | None = None,
    ) -> None:
        if not isinstance(backbone, Backbone):
            raise TypeError(f"expected a vidtok Backbone, got {type(backbone).__name__} (see vidtok.backbones)")
        self.backbone = backbone
        self.use_cache = bool(use_cache)
        self.make_cache = make_cache
        self.sequence_kwargs = dict(sequence_kwargs or {})
        self.reset()

    def reset(self) -> None:
        """Forget the sequence (a new window or a new video)."""
        self._cache: Any = self.make_cache() if (self.use_cache and self.make_cache is not None) else None
        self._seq: torch.Tensor | None = None
        self._seq_kwargs: dict[str, torch.Tensor] = {}
        self.length = 0

    def feed(self, new: torch.Tensor, **backbone_kwargs: Any) -> torch.Tensor:
        """Append ``new`` positions ``(rows, L, hidden)``; return the last hidden state ``(rows, hidden)``."""
        return self.feed_all(new, **backbone_kwargs)[:, -1]

    def feed_all(self, new: torch.Tensor, **backbone_kwargs: Any) -> torch.Tensor:
        """Append ``new`` positions and return the hidden states of all of them ``(rows, L, hidden)``."""
        if self.use_cache:
            out = self.backbone(new, past_key_values=self._cache, use_cache=True, **backbone_kwargs)
            self._cache = out.past_key_values
            hidden = out.last_hidden_state
        else:
            self._seq = new if self._seq is None else torch.cat([self._seq, new], dim=1)
            # Per-position arguments (positions, block ids) grow with the sequence, along their own dimension.
            for name, dim in self.sequence_kwargs.items():
                if name in backbone_kwargs:
                    value = backbone_kwargs[name]
                    old = self._seq_kwargs.get(name)
                    self._seq_kwargs[name] = value if old is None else torch.cat([old, value], dim=dim)
                    backbone_kwargs[name] = self._seq_kwargs[name]
            hidden = self.backbone(self._seq, use_cache=False, **backbone_kwargs).last_hidden_state
            hidden = hidden[:, -new.shape[1] :]
        self.length += new.shape[1]
        return hidden


class Guidance:
    """Classifier-free guidance as one batch: conditional rows first, then the null prompt's rows.

    Args:
        scale: Guidance scale ``s``; ``1`` turns guidance off (then nothing is duplicated).
        batch: Conditional rows ``B``.

    Example:
        >>> import torch
        >>> g = Guidance(3.0, batch=2)
        >>> rows = g.rows(torch.ones(2, 4), torch.zeros(2, 4))  # (4, 4): cond then null
        >>> cond, uncond = g.split(rows)
        >>> g.mix(cond, uncond)[0, 0].item()
        3.0
    """

    def __init__(self, scale: float, batch: int) -> None:
        self.scale = float(scale)
        self.batch = int(batch)
        self.active = self.scale != 1.0

    def rows(self, cond: torch.Tensor, null: torch.Tensor) -> torch.Tensor:
        """The model's input rows: ``[cond; null]`` when guiding, else ``cond``."""
        return torch.cat([cond, null]) if self.active else cond

    def duplicate(self, x: torch.Tensor) -> torch.Tensor:
        """A value both branches share (a sampled token, a prefix), once per branch."""
        return torch.cat([x, x]) if self.active else x

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(cond, uncond)`` rows (``uncond`` is ``None`` without guidance)."""
        if not self.active:
            return x, None
        return x[: self.batch], x[self.batch :]

    def mix(self, cond: torch.Tensor, uncond: torch.Tensor) -> torch.Tensor:
        """``u + s (c − u)``: guidance of any quantity (logits, means, tokens)."""
        return uncond + self.scale * (cond - uncond)

    def sample(
        self,
        head: Any,
        hidden: torch.Tensor,
        *,
        temperature: float,
        generator: torch.Generator | None,
        **options: Any,
    ) -> torch.Tensor:
        """One token per conditional row from ``head``, guided by the head itself against the null rows."""
        cond, uncond = self.split(hidden)
        if uncond is None:
            return head.sample(cond, temperature=temperature, generator=generator, **options)
        return head.sample(
            cond,
            temperature=temperature,
            generator=generator,
            guidance_scale=self.scale,
            uncond_hidden=uncond,
            **options,
        )
