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

__all__ = ["CHECK_FINITE", "HEADS", "TokenHead"]


class TokenHead(Component, abc.ABC):
    """Base class of AR heads (DiCoDe §3.4: the AR model predicts the parameters of a distribution).

    Shapes: ``hidden`` is ``(..., hidden_size)``; a continuous ``target`` is ``(..., token_dim)``, a
    discrete one is an integer tensor ``(...)`` of code indices (a factorized head decomposes each code
    internally). Leading dimensions are arbitrary and must agree.

    Precision: the built-in heads run their MLP in the head's parameter dtype (``hidden`` is cast to it,
    so an fp32 head accepts bf16/fp16 hidden states and a head cast with ``.to(torch.bfloat16)`` accepts
    fp32 ones), then evaluate every density in fp32: ``loss`` and ``nll`` are always fp32, ``sample``
    returns continuous tokens in ``hidden``'s dtype. Under ``torch.autocast`` the ``l2``, ``gaussian``,
    ``gmm`` and ``categorical`` heads switch autocast off for their own MLP (an fp32 island: NLL gradients
    near a small variance exceed fp16's range), so an fp32 head trained under fp16 or bf16 autocast gets
    finite losses, gradients and samples for any finite hidden state (tested up to ``|h| = 1e6``); call
    ``backward()`` outside the autocast block, as PyTorch prescribes. ``diffusion_mlp`` keeps its denoiser
    under autocast (it is the expensive head): under fp16 autocast its hidden states must stay well inside
    fp16's range (``|h|`` of order 1e3 or less), bf16 autocast has no such limit.

    Validation: every public call refuses wrong types, dtypes and shapes, and NaN/inf in ``hidden``,
    ``target`` and ``uncond_hidden`` (:meth:`check_inputs`, :data:`CHECK_FINITE`), and non-finite, negative
    or non-numeric ``temperature`` and ``guidance_scale``, with an error naming the argument. Empty leading
    dimensions are valid and give empty results.

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
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        guidance_scale: float = 1.0,
        uncond_hidden: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Draw one next token per hidden state (every head takes these arguments; callers never introspect).

        Args:
            hidden: ``(..., hidden_size)`` conditional hidden states.
            temperature: Sampling temperature, a finite number ``>= 0`` (``0``: deterministic, the head's most
                likely / mean token; for ``diffusion_mlp`` the noise-free reverse process from ``x_T = 0``).
            generator: The only source of randomness.
            guidance_scale: Classifier-free guidance ``s >= 0`` (finite) against ``uncond_hidden``; ``1``
                disables it and then equals unguided sampling, ``0`` is the unconditional prediction. Each head
                guides where it is meaningful: continuous heads their means (or denoising steps), the
                categorical head its logits, the L2 head its prediction.
            uncond_hidden: Hidden states of the null prompt, the shape of ``hidden``; needed when
                ``guidance_scale != 1``.
            **kwargs: Head-specific sampler options (``top_k``, ``num_inference_steps``, …).
        """

    def check_inputs(
        self,
        hidden: torch.Tensor,
        target: torch.Tensor | None = None,
        *,
        name: str = "hidden",
        target_name: str = "target",
    ) -> None:
        """Validate ``hidden`` (and ``target``) against the config; raise a ValueError/TypeError naming the culprit.

        Checks types, dtypes (floating hidden states; floating continuous targets, integer codes), shapes and,
        while :data:`CHECK_FINITE` is true, that every value is finite: one ``isfinite().all()`` reduction per
        tensor and a single host sync. Every built-in head calls it once per public call; third-party heads
        should too.

        Args:
            hidden: ``(..., hidden_size)`` floating tensor.
            target: Optional ``(..., token_dim)`` floating tensor, or ``(...)`` integer codes for a discrete head.
            name: What to call ``hidden`` in messages (``"uncond_hidden"`` for the null prompt's states).
            target_name: What to call ``target`` in messages.
        """
        hidden_size = self.config["hidden_size"]
        owner = type(self).__name__
        if not isinstance(hidden, torch.Tensor) or not hidden.is_floating_point():
            got = hidden.dtype if isinstance(hidden, torch.Tensor) else type(hidden).__name__
            raise TypeError(f"{owner}: {name} must be a floating tensor (..., {hidden_size}), got {got}")
        if hidden.ndim == 0 or hidden.shape[-1] != hidden_size:
            raise ValueError(f"{owner}: {name} must be (..., hidden_size={hidden_size}), got {tuple(hidden.shape)}")
        if target is not None:
            if not isinstance(target, torch.Tensor):
                raise TypeError(f"{owner}: {target_name} must be a tensor, got {type(target).__name__}")
            if self.is_discrete:
                if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
                    raise TypeError(f"{owner}: {target_name} must hold integer codes, got {target.dtype}")
                lead = target.shape
            else:
                if not target.is_floating_point():
                    raise TypeError(f"{owner}: continuous {target_name} must be floating, got {target.dtype}")
                token_dim = self.config["token_dim"]
                if target.shape[-1:] != (token_dim,):
                    raise ValueError(
                        f"{owner}: {target_name} must be (..., token_dim={token_dim}), got {tuple(target.shape)}"
                    )
                lead = target.shape[:-1]
            if tuple(lead) != tuple(hidden.shape[:-1]):
                raise ValueError(
                    f"{owner}: leading dims of {name} {tuple(hidden.shape[:-1])} and {target_name} {tuple(lead)} differ"
                )
        if not CHECK_FINITE:
            return
        # One fused reduction and one host sync for both tensors; NaN/inf would otherwise come back as NaN
        # losses and samples with no error at all.
        finite = torch.isfinite(hidden).all()
        check_target = target is not None and target.is_floating_point()
        if check_target:
            finite = finite & torch.isfinite(target).all().to(finite.device)
        if bool(finite):
            return
        culprit = name if not bool(torch.isfinite(hidden).all()) else target_name
        raise ValueError(f"{owner}: {culprit} contains NaN or inf values")


#: Whether :meth:`TokenHead.check_inputs` refuses NaN/inf in hidden states and targets (default ``True``).
#: The check is one reduction per tensor (about 1% of a GMM head's loss step on CPU,
#: ``benchmarks/heads_input_checks.py``) but also one host sync per call on a GPU; set
#: ``vidtok.heads.base.CHECK_FINITE = False`` to skip it in a tuned training loop.
CHECK_FINITE: bool = True


HEADS: Registry[type[TokenHead]] = Registry("head", base=TokenHead, package="vidtok.heads")
