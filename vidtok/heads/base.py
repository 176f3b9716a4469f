"""The AR head interface and the ``HEADS`` registry.

A head sits on top of a backbone's hidden state and models the next token (DiCoDe §3.4, Table 4): a
continuous head models ``p(x | h)`` for a token ``x`` of ``token_dim`` channels, a categorical head models
integer codes. Every head offers the same three calls, so an ablation is a swap of the registry name.
"""

from __future__ import annotations

import abc
from typing import Any

import torch

from vidtok.modeling_utils import Component
from vidtok.registry import Registry

__all__ = ["HEADS", "TokenHead"]


class TokenHead(Component, abc.ABC):
    """Base class of AR heads (DiCoDe §3.4: the AR model predicts the parameters of a distribution).

    Shapes: ``hidden`` is ``(..., hidden_size)``; a continuous ``target`` is ``(..., token_dim)``, a
    discrete one is an integer tensor ``(...)`` of code indices (a factorized head decomposes each code
    internally). Leading dimensions are arbitrary and must agree.

    Precision: the built-in heads run their MLP in the head's parameter dtype (``hidden`` is cast to it,
    so an fp32 head accepts bf16/fp16 hidden states and a head cast with ``.to(torch.bfloat16)`` accepts
    fp32 ones), then evaluate every density in fp32: ``loss`` and ``nll`` are always fp32, ``sample``
    returns continuous tokens in ``hidden``'s dtype. To *train* in fp16, keep the head in fp32 under
    ``torch.autocast``: NLL gradients near a small variance can exceed the fp16 range.

    Randomness: ``sample`` draws only from the given ``torch.Generator`` (on the generator's device, then
    moved to the head's), or from the global RNG when it is ``None``.
    """

    #: Whether targets are integer codes (categorical heads) rather than continuous vectors.
    is_discrete: bool = False

    @abc.abstractmethod
    def loss(
        self, hidden: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Per-token training loss with the leading shape of ``hidden`` (no reduction).

        ``generator`` feeds heads whose loss is stochastic (diffusion timesteps and noise); the others ignore it.
        """

    def nll(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Exact negative log-density (nats per token) of ``target`` given ``hidden``.

        Raises:
            NotImplementedError: For heads that define no tractable density.
        """
        raise NotImplementedError(f"{type(self).__name__} defines no exact density, so it has no nll()")

    @abc.abstractmethod
    def sample(
        self,
        hidden: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        guidance_scale: float = 1.0,
        uncond_hidden: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Draw one next token per hidden state (every head takes these arguments; callers never introspect).

        Args:
            hidden: ``(..., hidden_size)`` conditional hidden states.
            temperature: Sampling temperature (``0``: the head's most likely / mean token).
            generator: The only source of randomness.
            guidance_scale: Classifier-free guidance ``s`` against ``uncond_hidden``; ``1`` disables it and
                then equals unguided sampling. Each head guides where it is meaningful: continuous heads their
                means (or denoising steps), the categorical head its logits, the L2 head its prediction.
            uncond_hidden: Hidden states of the null prompt, the shape of ``hidden``; needed when
                ``guidance_scale != 1``.
            **kwargs: Head-specific sampler options (``top_k``, ``num_inference_steps``, …).
        """

    def check_inputs(self, hidden: torch.Tensor, target: torch.Tensor | None = None) -> None:
        """Validate ``hidden`` (and ``target``) against the config; raise a ValueError/TypeError naming the mismatch.

        Every built-in head calls it first; third-party heads should too.
        """
        hidden_size = self.config["hidden_size"]
        if not isinstance(hidden, torch.Tensor) or not hidden.is_floating_point():
            raise TypeError(f"{type(self).__name__}: hidden must be a floating tensor (..., {hidden_size})")
        if hidden.ndim == 0 or hidden.shape[-1] != hidden_size:
            raise ValueError(
                f"{type(self).__name__}: hidden must be (..., hidden_size={hidden_size}), got {tuple(hidden.shape)}"
            )
        if target is None:
            return
        if not isinstance(target, torch.Tensor):
            raise TypeError(f"{type(self).__name__}: target must be a tensor, got {type(target).__name__}")
        if self.is_discrete:
            if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
                raise TypeError(f"{type(self).__name__}: targets must be integer codes, got {target.dtype}")
            lead = target.shape
        else:
            if not target.is_floating_point():
                raise TypeError(f"{type(self).__name__}: continuous targets must be floating, got {target.dtype}")
            token_dim = self.config["token_dim"]
            if target.shape[-1:] != (token_dim,):
                raise ValueError(
                    f"{type(self).__name__}: target must be (..., token_dim={token_dim}), got {tuple(target.shape)}"
                )
            lead = target.shape[:-1]
        if tuple(lead) != tuple(hidden.shape[:-1]):
            raise ValueError(
                f"{type(self).__name__}: leading dims of hidden {tuple(hidden.shape[:-1])} and target "
                f"{tuple(lead)} differ"
            )


HEADS: Registry[type[TokenHead]] = Registry("head", base=TokenHead, package="vidtok.heads")
