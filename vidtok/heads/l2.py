"""The L2 head: regress the next token (the deterministic baseline of DiCoDe Table 4)."""

from __future__ import annotations

import math
from typing import Any

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks it up in this module)
from diffusers.configuration_utils import register_to_config

from vidtok.heads._layers import (
    build_trunk,
    check_config_float,
    check_config_int,
    check_generator,
    check_guidance,
    check_guidance_scale,
    check_reduction,
    check_temperature,
    fp32_island,
    init_linear_,
)
from vidtok.heads.base import HEADS, TokenHead

__all__ = ["L2Head"]


@HEADS.register("l2")
class L2Head(TokenHead):
    """Predicts the next token directly and trains it with squared error (DiCoDe §3.4, Table 4 "L2").

    An MLP maps the hidden state to a point estimate ``μ``. DiCoDe §3.4 explains why this is the weakest
    head: squared error is the negative log-likelihood of a Gaussian with a *fixed* variance, so the head
    learns the conditional mean and collapses a multi-modal next token to the average of its modes (see
    the ablations page for a measured example).

    * ``loss`` is the squared error ``(x - μ)²`` averaged over the ``token_dim`` channels
      (``loss_reduction="mean"``, the ``F.mse_loss`` convention DiCoDe's L2 stage uses) or summed over them
      (``"sum"``).
    * ``nll`` is the exact negative log-density of ``N(μ, sigma² I)`` in nats per token, so the L2 head can
      be compared with the other heads on the same scale: ``‖x - μ‖² / (2 sigma²) + d log sigma + d/2 log 2π``.
    * ``sample`` returns ``μ``: the deterministic baseline, ``temperature`` and ``generator`` are ignored.

    Args:
        hidden_size: Size of the backbone hidden state.
        token_dim: Channels ``d`` of a continuous token.
        mlp_width: Width of the MLP's hidden layers (default ``hidden_size``).
        mlp_layers: Linear layers in the MLP, the output projection included (2 = DiCoDe's
            ``Linear → GELU → Linear`` output MLP; 1 = a single linear projection).
        sigma: Standard deviation of the fixed-variance Gaussian that defines ``nll``.
        loss_reduction: ``"mean"`` (average over channels) or ``"sum"`` (sum over channels).

    Example:
        >>> import torch
        >>> from vidtok.heads import L2Head
        >>> head = L2Head(hidden_size=16, token_dim=4)
        >>> hidden = torch.randn(2, 3, 16)
        >>> head.loss(hidden, torch.randn(2, 3, 4)).shape
        torch.Size([2, 3])
        >>> torch.equal(head.sample(hidden), head.sample(hidden))
        True
    """

    @register_to_config
    def __init__(
        self,
        *,
        hidden_size: int,
        token_dim: int,
        mlp_width: int | None = None,
        mlp_layers: int = 2,
        sigma: float = 1.0,
        loss_reduction: str = "mean",
    ):
        super().__init__()
        for key, value in {"hidden_size": hidden_size, "token_dim": token_dim, "mlp_layers": mlp_layers}.items():
            check_config_int("L2Head", key, value)
        check_config_int("L2Head", "mlp_width", mlp_width, optional=True)
        check_config_float("L2Head", "sigma", sigma, strict=True)
        check_reduction(loss_reduction)
        self.trunk, features = build_trunk(hidden_size, mlp_width or hidden_size, mlp_layers)
        self.proj = torch.nn.Linear(features, token_dim)
        init_linear_(self)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """A 16 → 16 → 4 MLP."""
        return {"hidden_size": 16, "token_dim": 4, "mlp_width": 16}

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """The predicted token ``μ`` ``(..., token_dim)`` in the head's parameter dtype."""
        self.check_inputs(hidden)
        return self._predict(hidden)

    def _predict(self, hidden: torch.Tensor) -> torch.Tensor:
        # Unchecked forward; outside autocast (see fp32_island) so fp16 autocast cannot overflow.
        with fp32_island(hidden.device):
            return self.proj(self.trunk(hidden.to(self.proj.weight.dtype)))

    def loss(
        self, hidden: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Squared error per token, fp32 ``(...)``, averaged or summed over channels (``loss_reduction``)."""
        self.check_inputs(hidden, target)
        error = (self._predict(hidden).float() - target.float()).square()
        return error.mean(-1) if self.config["loss_reduction"] == "mean" else error.sum(-1)

    def nll(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Negative log-density of ``target`` under ``N(μ, sigma² I)``, fp32 nats per token ``(...)``."""
        self.check_inputs(hidden, target)
        sigma = float(self.config["sigma"])
        d = self.config["token_dim"]
        error = (self._predict(hidden).float() - target.float()).square().sum(-1)
        return error / (2.0 * sigma**2) + d * (math.log(sigma) + 0.5 * math.log(2.0 * math.pi))

    def sample(
        self,
        hidden: torch.Tensor,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        guidance_scale: float = 1.0,
        uncond_hidden: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The predicted mean ``μ`` in ``hidden``'s dtype; ``temperature`` and ``generator`` are ignored.

        With ``guidance_scale`` ``s != 1`` the prediction is guided in token space, ``μ_u + s (μ_c − μ_u)``, as
        DiCoDe's released code guides its L2 model (there is no distribution to guide).
        """
        check_temperature(temperature)
        guidance_scale = check_guidance_scale(guidance_scale)
        check_generator(generator)
        self.check_inputs(hidden)
        if not check_guidance("L2Head.sample", hidden, uncond_hidden, guidance_scale):
            return self._predict(hidden).to(hidden.dtype)
        self.check_inputs(uncond_hidden, name="uncond_hidden")
        # One batched pass over both branches (the numbers of the two-branch batch the video LM used to run).
        both = self._predict(torch.cat([hidden, uncond_hidden.to(hidden.dtype)])).to(hidden.dtype)
        cond, uncond = both[: hidden.shape[0]], both[hidden.shape[0] :]
        return uncond + guidance_scale * (cond - uncond)
