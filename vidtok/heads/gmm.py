"""The Gaussian-mixture head, DiCoDe's default AR head (DiCoDe §3.4, Alg. 1, Table 4 "16-GMM")."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks it up in this module)
from diffusers.configuration_utils import register_to_config

from vidtok.heads._layers import (
    build_trunk,
    check_config_bool,
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
from vidtok.noise import gumbel, randn

__all__ = ["GMMHead"]


@HEADS.register("gmm")
class GMMHead(TokenHead):
    """A mixture of ``K`` diagonal Gaussians over the next token (DiCoDe §3.4, Alg. 1; Table 4 "16-GMM").

    ``p(x | h) = Σ_k w_k(h) N(x | μ_k(h), diag σ²_k(h))``. The mixture can put mass on several distinct
    next tokens, which the L2 and Gaussian heads cannot (see the ablations page); DiCoDe's ablation
    (Table 4) ranks it best (FVD 565 vs 593 Gaussian, 643 L2).

    **Parameterization** (DiCoDe's layout, research notes §4). After the MLP trunk, ONE linear projection
    outputs ``2·K·d + K`` values per token — ``16·1024·2 + 16 = 32784`` at DiCoDe scale: ``K·d`` means
    (component-major), ``K·d`` raw variances mapped to ``σ² = clamp(softplus(raw), min=variance_floor)``,
    and ``K`` mixture logits ``w = softmax(logits)``.

    **Density.** ``nll`` is the exact negative log-density in nats per token, evaluated with ``logsumexp``
    over components in fp32 by a fused kernel that never builds a ``(..., K, d)`` distribution object
    (equal to ``torch.distributions.MixtureSameFamily`` to float rounding, several times faster and with
    less peak memory: ``benchmarks/heads_gmm.py``). ``loss`` is that NLL divided by ``token_dim``
    (``loss_reduction="mean"``, as DiCoDe's ``-log_prob(x).mean() / d``, which keeps the loss scale
    independent of ``d``) or the NLL itself (``"sum"``).

    **Sampling** picks a component from ``softmax(logits / τ)`` (``softmax(logits)`` if
    ``temper_logits=False``), then draws ``μ_k + τ · sqrt(sample_variance_scale) · σ_k · ε``
    (reparameterized given the component). ``τ = temperature = 0`` is deterministic: the mean of the most
    likely component. The defaults sample the model's own density; DiCoDe's released sampler corresponds
    to ``temper_logits=False, sample_variance_scale=0.01`` (variance × 0.01, weights untempered).

    Args:
        hidden_size: Size of the backbone hidden state.
        token_dim: Channels ``d`` of a continuous token.
        num_components: ``K`` (DiCoDe: 16).
        mlp_width: Width of the MLP's hidden layers (default ``hidden_size``).
        mlp_layers: Linear layers in the MLP, the output projection included (2 = DiCoDe's
            ``Linear → GELU → Linear`` output MLP).
        variance_floor: Smallest predicted variance (DiCoDe: 1e-5).
        loss_reduction: ``"mean"`` (NLL per channel, DiCoDe) or ``"sum"`` (NLL per token, nats).
        sample_variance_scale: Multiplies every component variance when sampling (DiCoDe's release: 0.01).
        temper_logits: Whether ``temperature`` also sharpens the mixture weights (``logits / τ``).

    Example:
        >>> import torch
        >>> from vidtok.heads import GMMHead
        >>> head = GMMHead(hidden_size=16, token_dim=4, num_components=3)
        >>> head.proj.out_features  # 2·K·d + K
        27
        >>> hidden = torch.randn(2, 3, 16)
        >>> head.loss(hidden, torch.randn(2, 3, 4)).shape
        torch.Size([2, 3])
        >>> head.sample(hidden, temperature=0.0).shape
        torch.Size([2, 3, 4])
    """

    @register_to_config
    def __init__(
        self,
        *,
        hidden_size: int,
        token_dim: int,
        num_components: int = 16,
        mlp_width: int | None = None,
        mlp_layers: int = 2,
        variance_floor: float = 1e-5,
        loss_reduction: str = "mean",
        sample_variance_scale: float = 1.0,
        temper_logits: bool = True,
    ):
        super().__init__()
        sizes = {"hidden_size": hidden_size, "token_dim": token_dim, "num_components": num_components}
        for key, value in {**sizes, "mlp_layers": mlp_layers}.items():
            check_config_int("GMMHead", key, value)
        check_config_int("GMMHead", "mlp_width", mlp_width, optional=True)
        check_config_float("GMMHead", "variance_floor", variance_floor, strict=True)
        check_config_float("GMMHead", "sample_variance_scale", sample_variance_scale)
        check_config_bool("GMMHead", "temper_logits", temper_logits)
        check_reduction(loss_reduction)
        self.trunk, features = build_trunk(hidden_size, mlp_width or hidden_size, mlp_layers)
        self.proj = torch.nn.Linear(features, 2 * num_components * token_dim + num_components)
        init_linear_(self)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """A 16 → 16 → (2·3·4 + 3) MLP: three components over 4-channel tokens."""
        return {"hidden_size": 16, "token_dim": 4, "num_components": 3, "mlp_width": 16}

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Raw mixture parameters ``(..., 2·K·d + K)``: means, raw variances, logits (DiCoDe's layout)."""
        self.check_inputs(hidden)
        return self._params(hidden)

    def _params(self, hidden: torch.Tensor) -> torch.Tensor:
        # Unchecked forward; outside autocast (see fp32_island): NLL gradients overflow fp16.
        with fp32_island(hidden.device):
            return self.proj(self.trunk(hidden.to(self.proj.weight.dtype)))

    def split_params(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Turn :meth:`forward`'s output into fp32 ``(means, variances, logits)``.

        Returns:
            Means and variances ``(..., K, d)`` and mixture logits ``(..., K)``.
        """
        k, d = self.config["num_components"], self.config["token_dim"]
        params = params.float()
        lead = params.shape[:-1]
        means = params[..., : k * d].unflatten(-1, (k, d))
        raw = params[..., k * d : 2 * k * d].unflatten(-1, (k, d))
        variances = softplus_variance(raw, self.config["variance_floor"])
        return means, variances, params[..., 2 * k * d :].reshape(*lead, k)

    def nll(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Exact negative log-density of ``target`` under the mixture, fp32 nats per token ``(...)``."""
        self.check_inputs(hidden, target)
        return self._nll(hidden, target)

    def _nll(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with fp32_island(hidden.device):
            return diagonal_gmm_nll(
                self._params(hidden),
                target,
                num_components=self.config["num_components"],
                variance_floor=self.config["variance_floor"],
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
        """Pick a component, then draw from it; in ``hidden``'s dtype, ``(..., token_dim)``.

        Args:
            hidden: ``(..., hidden_size)``.
            temperature: ``τ``: scales every component's standard deviation and, with ``temper_logits``,
                divides the logits. ``0`` returns the mean of the most likely component.
            generator: Source of randomness (component choice, then Gaussian noise).
            guidance_scale: Classifier-free guidance ``s`` against ``uncond_hidden`` (1 = off). Both branches
                share one component, drawn from the guided logits ``l_u + s·(l_c − l_u)``, whose mean is
                guided the same way, ``μ_u,k + s·(μ_c,k − μ_u,k)``, with the conditional ``σ_k`` for the
                noise. (Guiding two independently drawn tokens, ``u + s·(c − u)``, would combine unrelated
                components and amplify the noise.)
            uncond_hidden: Hidden states of the null prompt, the shape of ``hidden``; needed when
                ``guidance_scale != 1``.

        Returns:
            One token per hidden state.
        """
        temperature = check_temperature(temperature)
        guidance_scale = check_guidance_scale(guidance_scale)
        check_generator(generator)
        self.check_inputs(hidden)
        guided = check_guidance("GMMHead.sample", hidden, uncond_hidden, guidance_scale)
        if guided:
            self.check_inputs(uncond_hidden, name="uncond_hidden")
        k, d = self.config["num_components"], self.config["token_dim"]
        params = self._params(hidden).float()
        lead = params.shape[:-1]
        params = params.reshape(-1, params.shape[-1])
        rows = params.shape[0]
        logits = params[:, 2 * k * d :]
        uncond = None
        if guided:
            # An explicit width: reshape(0, -1) is ambiguous for empty leading dims.
            uncond = self._params(uncond_hidden).float().reshape(rows, params.shape[-1])
            logits = uncond[:, 2 * k * d :] + guidance_scale * (logits - uncond[:, 2 * k * d :])
        if temperature == 0 or k == 1:  # one component: no choice to draw, so k = 1 samples like GaussianHead
            component = logits.argmax(-1)
        else:
            scaled = logits / temperature if self.config["temper_logits"] else logits
            component = (scaled + gumbel((rows, k), generator, params.device)).argmax(-1)
        # Gather the chosen component before transforming: O(M·d) work instead of O(M·K·d).
        index = torch.arange(rows, device=params.device)
        mean = params[:, : k * d].view(rows, k, d)[index, component]
        if uncond is not None:
            mean_u = uncond[:, : k * d].view(rows, k, d)[index, component]
            mean = mean_u + guidance_scale * (mean - mean_u)
        if temperature == 0:
            return mean.reshape(*lead, d).to(hidden.dtype)
        raw = params[:, k * d : 2 * k * d].view(rows, k, d)[index, component]
        variance = softplus_variance(raw, self.config["variance_floor"])
        std = (variance * self.config["sample_variance_scale"]).sqrt() * temperature
        token = mean + std * randn((rows, d), generator, params.device, torch.float32)
        return token.reshape(*lead, d).to(hidden.dtype)
