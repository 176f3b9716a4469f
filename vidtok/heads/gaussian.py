"""The Gaussian head: a mean and a per-channel variance for the next token (DiCoDe Table 4 "Gaussian")."""

from __future__ import annotations

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
    diagonal_gmm_nll,
    fp32_island,
    init_linear_,
    softplus_variance,
)
from vidtok.heads.base import HEADS, TokenHead
from vidtok.noise import randn

__all__ = ["GaussianHead"]


@HEADS.register("gaussian")
class GaussianHead(TokenHead):
    """A diagonal Gaussian over the next token, ``N(μ(h), diag σ²(h))`` (DiCoDe §3.4 "Gaussian loss", Table 4).

    Explicitly modelling the variance lets the head express uncertainty, which the L2 head cannot (§3.4);
    but a single Gaussian is still unimodal, so a two-mode next token is covered by one wide mode centred
    between the modes (see the ablations page).

    One linear projection (after the MLP trunk) outputs ``2·d`` values: the mean, then the raw variance,
    mapped to ``σ² = clamp(softplus(raw), min=variance_floor)`` exactly as DiCoDe's GMM head does
    (softplus cannot overflow for extreme hidden states and the floor keeps ``1/σ²`` finite for extreme
    targets). The head is the one-component :class:`~vidtok.heads.gmm.GMMHead` without mixture logits.

    * ``nll``: exact negative log-density, nats per token (sum over channels), computed in fp32.
    * ``loss``: that NLL divided by ``token_dim`` (``loss_reduction="mean"``, DiCoDe's per-dimension
      convention, which keeps the loss scale independent of ``d``) or equal to it (``"sum"``).
    * ``sample``: ``μ + temperature · sqrt(sample_variance_scale) · σ · ε`` with ``ε ~ N(0, I)``
      (reparameterized: differentiable in ``μ`` and ``σ``); temperature 0 gives the mean.

    Args:
        hidden_size: Size of the backbone hidden state.
        token_dim: Channels ``d`` of a continuous token.
        mlp_width: Width of the MLP's hidden layers (default ``hidden_size``).
        mlp_layers: Linear layers in the MLP, the output projection included (2 = DiCoDe's output MLP).
        variance_floor: Smallest predicted variance (DiCoDe: 1e-5).
        loss_reduction: ``"mean"`` (NLL per channel) or ``"sum"`` (NLL per token).
        sample_variance_scale: Multiplies the variance when sampling (1 samples the model's density; DiCoDe's
            GMM sampling uses 0.01).

    Example:
        >>> import torch
        >>> from vidtok.heads import GaussianHead
        >>> head = GaussianHead(hidden_size=16, token_dim=4)
        >>> hidden = torch.randn(2, 3, 16)
        >>> head.nll(hidden, torch.randn(2, 3, 4)).shape
        torch.Size([2, 3])
        >>> head.sample(hidden, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3, 4])
    """

    @register_to_config
    def __init__(
        self,
        *,
        hidden_size: int,
        token_dim: int,
        mlp_width: int | None = None,
        mlp_layers: int = 2,
        variance_floor: float = 1e-5,
        loss_reduction: str = "mean",
        sample_variance_scale: float = 1.0,
    ):
        super().__init__()
        for key, value in {"hidden_size": hidden_size, "token_dim": token_dim, "mlp_layers": mlp_layers}.items():
            check_config_int("GaussianHead", key, value)
        check_config_int("GaussianHead", "mlp_width", mlp_width, optional=True)
        check_config_float("GaussianHead", "variance_floor", variance_floor, strict=True)
        check_config_float("GaussianHead", "sample_variance_scale", sample_variance_scale)
        check_reduction(loss_reduction)
        self.trunk, features = build_trunk(hidden_size, mlp_width or hidden_size, mlp_layers)
        self.proj = torch.nn.Linear(features, 2 * token_dim)
        init_linear_(self)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """A 16 → 16 → 2·4 MLP."""
        return {"hidden_size": 16, "token_dim": 4, "mlp_width": 16}

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Raw distribution parameters ``(..., 2·token_dim)``: means, then raw variances."""
        self.check_inputs(hidden)
        return self._params(hidden)

    def _params(self, hidden: torch.Tensor) -> torch.Tensor:
        # Unchecked forward; outside autocast (see fp32_island): NLL gradients overflow fp16.
        with fp32_island(hidden.device):
            return self.proj(self.trunk(hidden.to(self.proj.weight.dtype)))

    def split_params(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn :meth:`forward`'s output into fp32 ``(mean, variance)``, each ``(..., token_dim)``."""
        d = self.config["token_dim"]
        params = params.float()
        return params[..., :d], softplus_variance(params[..., d:], self.config["variance_floor"])

    def nll(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Exact negative log-density of ``target``, fp32 nats per token ``(...)``."""
        self.check_inputs(hidden, target)
        return self._nll(hidden, target)

    def _nll(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        floor = self.config["variance_floor"]
        with fp32_island(hidden.device):
            return diagonal_gmm_nll(
                self._params(hidden), target, num_components=1, variance_floor=floor, has_logits=False
            )

    def loss(
        self, hidden: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Per-token training loss, fp32 ``(...)``: the NLL per channel or per token (``loss_reduction``)."""
        self.check_inputs(hidden, target)
        nll = self._nll(hidden, target)
        return nll / self.config["token_dim"] if self.config["loss_reduction"] == "mean" else nll

    def sample(
        self,
        hidden: torch.Tensor,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        guidance_scale: float = 1.0,
        uncond_hidden: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw ``μ + τ·σ·ε`` (reparameterized), in ``hidden``'s dtype; ``temperature`` ``τ = 0`` gives ``μ``.

        With ``guidance_scale`` ``s != 1`` and the null prompt's ``uncond_hidden`` (same shape), the mean is
        guided, ``μ_u + s·(μ_c − μ_u)``, and the noise keeps the conditional ``σ`` (guiding two independent
        draws would scale the noise by about ``s``).
        """
        temperature = check_temperature(temperature)
        guidance_scale = check_guidance_scale(guidance_scale)
        check_generator(generator)
        self.check_inputs(hidden)
        guided = check_guidance("GaussianHead.sample", hidden, uncond_hidden, guidance_scale)
        if guided:
            self.check_inputs(uncond_hidden, name="uncond_hidden")
        mean, variance = self.split_params(self._params(hidden))
        if guided:
            mean_u, _ = self.split_params(self._params(uncond_hidden))
            mean = mean_u + guidance_scale * (mean - mean_u)
        if temperature == 0:
            return mean.to(hidden.dtype)
        std = (variance * self.config["sample_variance_scale"]).sqrt() * temperature
        noise = randn(tuple(mean.shape), generator, mean.device, torch.float32)
        return (mean + std * noise).to(hidden.dtype)
