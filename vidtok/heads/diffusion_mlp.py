"""Diffusion-MLP head: a small AdaLN residual MLP that models ``p(x | h)`` by denoising one token at a time.

MAR's "Diffusion Loss" (Li et al. 2024, *Autoregressive Image Generation without Vector Quantization*,
arXiv:2406.11838, §3.2 and §4.1), also used per token by NOVA (Deng et al. 2024, arXiv:2412.14169, §3.4).
The noise schedule and the sampling steps are diffusers schedulers chosen by name, so any DDPM-family
scheduler can be swapped in without retraining. ``prediction_type="flow_prediction"`` trains the same
network by flow matching instead (velocity on the rectified-flow path, logit-normal σ, Euler sampling), as
NOVA's released text-to-image models do.
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks it up in this module)
from diffusers.configuration_utils import register_to_config
from torch import nn

from vidtok.heads._layers import (
    check_config_float,
    check_config_int,
    check_generator,
    check_guidance_scale,
    check_number,
    check_temperature,
)
from vidtok.heads.base import HEADS, TokenHead
from vidtok.noise import randint, randn

__all__ = ["DiffusionMLPHead"]

_SCHEDULER_ALIASES = {"ddpm": "DDPMScheduler", "ddim": "DDIMScheduler"}
_FLOW = "flow_prediction"  # diffusers' name for a velocity prediction on the flow-matching path
_FLOW_SCHEDULER_ALIASES = {
    "flow_euler": "FlowMatchEulerDiscreteScheduler",
    "flow_heun": "FlowMatchHeunDiscreteScheduler",
}
_PREDICTION_TYPES = ("epsilon", "v_prediction", "sample", _FLOW)
_ADALN_MODES = ("separable", "joint", "nova")
# Scheduler arguments the head owns: they define what the network was trained on.
_HEAD_OWNED = ("num_train_timesteps", "beta_schedule", "prediction_type", "trained_betas")
# Flow-matching scheduler options the head cannot honour: a per-resolution ``mu`` it never has, and Mochi's
# reversed σ direction (the head's velocity points from data to noise).
_FLOW_REFUSED = ("use_dynamic_shifting", "invert_sigmas")
# Defaults of the flow-matching keys; a DDPM-family head refuses other values (they would silently do nothing).
_FLOW_DEFAULTS = {"flow_shift": 1.0, "flow_logit_mean": 0.0, "flow_logit_std": 1.0}
_DEFAULT_BETA_SCHEDULE = "squaredcos_cap_v2"


def _timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features ``[cos, sin]`` of (possibly fractional) timesteps ``t`` (DDPM / DiT style)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * (-math.log(max_period) / half))
    args = t.float()[:, None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class _ResBlock(nn.Module):
    """``x + gate * MLP(LN(x) * (1 + scale) + shift)``; the MLP has no expansion (MAR §4.1).

    With ``post_norm`` the branch ends in an affine LayerNorm before the gate, ``x + gate * LN(MLP(...))``:
    NOVA's ``DiffusionBlock`` (its res-post-norm, as in its transformer blocks).
    """

    def __init__(self, width: int, post_norm: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.post_norm = nn.LayerNorm(width, eps=1e-5) if post_norm else None

    def forward(self, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        h = F.layer_norm(x, x.shape[-1:], eps=1e-6)
        h = self.fc2(F.silu(self.fc1(torch.addcmul(h + shift, h, scale))))
        if self.post_norm is not None:
            h = self.post_norm(h)
        return torch.addcmul(x, gate, h)


@HEADS.register("diffusion_mlp")
class DiffusionMLPHead(TokenHead):
    """Per-token diffusion head: MAR's Diffusion Loss (arXiv:2406.11838 §3.2, §4.1) as used by NOVA (§3.4).

    A denoiser ``f(x_t, t, h)`` (a residual MLP of ``depth`` blocks of ``width``, AdaLN-modulated by the
    hidden state ``h`` and the timestep ``t``) is trained on the DDPM forward process with the cosine
    schedule over 1000 steps; sampling runs a reverse diffusion with a diffusers scheduler. As in DiT and
    MAR, the AdaLN modulation and the output layer start at zero, so the untrained denoiser predicts 0.

    **Conditioning.** With ``adaln="separable"`` (default) the modulation of every block is
    ``A·SiLU(Linear(h)) + B·SiLU(MLP(emb(t)))``: the hidden-state part is computed once per token and the
    timestep part once per timestep value, so sampling evaluates only the residual MLP per step (about a
    third of MAR's per-step cost at equal width) and training shares the condition across the
    ``num_timesteps_per_token`` draws. ``adaln="joint"`` is MAR's exact form, ``Linear(SiLU(Linear(h) +
    MLP(emb(t))))``, whose projection must be recomputed at every step. ``adaln="nova"`` is NOVA's
    ``DiffusionMLP`` (official ``diffnext`` code, which the paper does not detail): the joint form with a
    two-layer condition projector, ``Linear(SiLU(MLP(h) + MLP(emb(t))))``, and an affine LayerNorm closing
    every block's branch, ``x + gate · LN(MLP(...))``. Its parameters match the released heads one to one
    (3 × 1280 on a 1024-wide condition: 32.84 M; NOVA's patch-embedding convolution is ``input_proj`` with its
    kernel flattened). The initialization stays DiT's in every mode (NOVA keeps PyTorch's defaults): it only
    matters when training from scratch. MAR's learned variance (IDDPM
    hybrid loss) is not used: the reverse variance is the scheduler's (NOVA does the same).

    **Loss** (MAR §3.2, "Loss function"; §4.1): every token is noised at ``num_timesteps_per_token`` independent uniform
    timesteps (MAR's ``diffusion_batch_mul``, NOVA's ``loss_repeat``: 4); the per-token loss is the MSE of
    the prediction (ε, v or x₀ per ``prediction_type``), averaged over the draws and the channels.

    **Sampling** (MAR §3.2, "Sampler" with temperature; App. B for guidance): ``temperature`` scales the noise
    added at every stochastic step (MAR; the initial noise is not scaled) for ``ddpm`` and ``ddim`` with
    ``eta > 0``; for deterministic samplers (``ddim`` with ``eta == 0``) and for every other scheduler it
    scales the initial noise instead. ``temperature=0`` is the deterministic limit for every sampler: the
    reverse process starts at the prior's mean ``x_T = 0`` and no noise is added at any step (nothing is
    drawn from the generator), so every seed gives the same token; MAR's convention alone would keep a
    random ``x_T`` for ``ddpm``. Step noise is zeroed through ``variance_noise`` where a scheduler takes it
    (``ddim`` with ``eta > 0``, SDE DPM-Solver); a scheduler whose ``step`` adds noise the head cannot switch
    off (ancestral samplers, ``ddpm`` with ``clip_sample``) raises a ValueError at temperature 0.
    Classifier-free guidance runs the conditional and unconditional hidden states in one batched pass per
    step and combines the predictions as
    ``u + guidance_scale · (c − u)``. ``ddpm`` and ``ddim`` run a fused loop (per-step coefficients
    precomputed, the same affine update as their ``step``); other schedulers go through ``scheduler.step``.

    **Timestep spacing.** The head defaults every scheduler to ``timestep_spacing="leading"`` (100 steps:
    t = 990, 980, ..., 0). Spacings that start at t = 999 (``"trailing"``, ``"linspace"``, the default of
    diffusers' Euler and DPM-Solver) break ε-prediction with the cosine schedule: ᾱ₉₉₉ ≈ 2·10⁻⁹, so
    ``x₀ = (x − √(1−ᾱ)·ε̂)/√ᾱ`` multiplies the first step's ε error by ~2·10⁴ and the samples blow up
    (measured on a bimodal toy: thousands instead of ±2). ``prediction_type="v_prediction"`` is robust to
    any spacing.

    **Flow matching** (``prediction_type="flow_prediction"``; NOVA's released text-to-image models, whose
    paper, arXiv:2412.14169 §3.4, describes only the ε-prediction DDPM used for its text-to-video model; the
    straight path of rectified flow, Liu et al. 2022, arXiv:2209.03003, with the logit-normal σ and the
    σ shift of SD3, Esser et al. 2024, arXiv:2403.03206). Every token and every one of its
    ``num_timesteps_per_token`` draws gets its own noise level
    ``σ = sigmoid(flow_logit_mean + flow_logit_std · n)``, ``n ~ N(0, 1)``, shifted by
    ``σ ← flow_shift·σ / (1 + (flow_shift − 1)·σ)`` (SD3's shift; values above 1 favour noisier levels); the
    network sees ``x_σ = (1 − σ)·x + σ·ε`` and the timestep ``σ · num_train_timesteps`` (continuous, as NOVA
    feeds ``σ·1000`` to the same sinusoidal embedding) and regresses the velocity ``v = ε − x``; the loss is
    its MSE, averaged over the draws and the channels like the DDPM loss. ``beta_schedule`` has no role in
    this mode. Sampling integrates ``dx/dσ = v`` from ``σ = 1`` to 0 with diffusers'
    ``FlowMatchEulerDiscreteScheduler`` (``scheduler="flow_euler"``, NOVA's sampler): Euler steps on
    ``linspace(1, 1/num_train_timesteps, num_inference_steps)`` shifted by ``flow_shift`` (override it for
    sampling only with ``scheduler_config={"shift": ...}``), then a last step to ``σ = 0``;
    ``"flow_heun"`` (``FlowMatchHeunDiscreteScheduler``) is the second-order variant (two network calls per
    step). The ODE has no noise to scale, so ``temperature`` scales the initial noise ``x_1 = τ·ε``: for a
    Gaussian target ``N(μ, s²)`` the exact flow is affine and the samples are ``N(μ, τ²s²)``; at ``τ = 0``
    the sampler starts at ``x_1 = 0`` and draws nothing. Guidance combines velocities as ``u + s·(c − u)``.

    Tokens should have roughly unit scale (MAR multiplies its VAE latents by 0.2325): nothing is clamped,
    so extreme targets give large but finite losses. Unlike the other heads, the denoiser stays under
    ``torch.autocast`` (it is the expensive head): with fp16 autocast keep ``|hidden|`` of order 1e3 or less
    (larger values overflow fp16 inside the MLP); bf16 autocast has fp32's range.

    Args:
        hidden_size: Width of the backbone hidden state ``h``.
        token_dim: Channels of a token ``x``.
        width: Width of the denoising MLP (MAR: 1024; NOVA: 1280).
        depth: Number of residual blocks (MAR and NOVA: 3).
        adaln: ``"separable"`` (fast, default), ``"joint"`` (MAR's exact conditioning) or ``"nova"`` (NOVA's
            diffusion MLP; see above).
        timestep_embedding_dim: Size of the sinusoidal timestep features.
        num_timesteps_per_token: Timestep draws per token in :meth:`loss` (MAR: 4).
        prediction_type: ``"epsilon"`` (MAR, default), ``"v_prediction"`` or ``"sample"`` (x₀) on the DDPM
            process, or ``"flow_prediction"``: the flow-matching velocity ``ε − x`` (see above).
        num_train_timesteps: Steps of the training noise schedule; in the flow mode, the scale of the
            network's timestep input (``σ · num_train_timesteps``) and of the sampling grid's last σ.
        beta_schedule: diffusers beta schedule; ``"squaredcos_cap_v2"`` is the cosine schedule of MAR. Must
            keep its default in the flow mode.
        scheduler: Sampling scheduler: ``"ddpm"``, ``"ddim"`` or any diffusers scheduler class name with a
            DDPM noise schedule (``"EulerDiscreteScheduler"``, ``"DPMSolverMultistepScheduler"``, ...); in the
            flow mode ``"flow_euler"`` or ``"flow_heun"`` (or their class names).
        scheduler_config: Extra JSON keyword arguments for the scheduler (e.g. ``{"steps_offset": 1}``).
            The head sets ``clip_sample=False`` (tokens are not bounded) and ``timestep_spacing="leading"``;
            in the flow mode it sets ``shift=flow_shift``.
        num_inference_steps: Default number of sampling steps (MAR: 100; NOVA: 25 for its flow models).
        flow_shift: Flow mode only: the σ shift of training and (by default) of the sampling grid, finite and
            ``> 0``; 1 (NOVA's training) leaves σ unchanged.
        flow_logit_mean: Flow mode only: mean of the logit-normal σ distribution (NOVA and SD3: 0).
        flow_logit_std: Flow mode only: its standard deviation, finite and ``> 0`` (NOVA and SD3: 1).

    Example:
        >>> import torch
        >>> from vidtok.heads.diffusion_mlp import DiffusionMLPHead
        >>> head = DiffusionMLPHead(**DiffusionMLPHead.tiny_config())
        >>> hidden = torch.randn(2, 3, head.config.hidden_size)
        >>> head.loss(hidden, torch.randn(2, 3, head.config.token_dim)).shape
        torch.Size([2, 3])
        >>> head.sample(hidden, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3, 4])
        >>> flow = DiffusionMLPHead(**head.tiny_config(), prediction_type="flow_prediction", scheduler="flow_euler")
        >>> flow.sample(hidden, temperature=0.0).shape  # deterministic Euler from x_1 = 0
        torch.Size([2, 3, 4])
    """

    @register_to_config
    def __init__(
        self,
        *,
        hidden_size: int = 768,
        token_dim: int = 16,
        width: int = 1024,
        depth: int = 3,
        adaln: str = "separable",
        timestep_embedding_dim: int = 256,
        num_timesteps_per_token: int = 4,
        prediction_type: str = "epsilon",
        num_train_timesteps: int = 1000,
        beta_schedule: str = "squaredcos_cap_v2",
        scheduler: str = "ddpm",
        scheduler_config: dict[str, Any] | None = None,
        num_inference_steps: int = 100,
        flow_shift: float = 1.0,
        flow_logit_mean: float = 0.0,
        flow_logit_std: float = 1.0,
    ) -> None:
        super().__init__()
        if adaln not in _ADALN_MODES:
            raise ValueError(f"DiffusionMLPHead: adaln must be one of {_ADALN_MODES}, got {adaln!r}")
        if prediction_type not in _PREDICTION_TYPES:
            raise ValueError(
                f"DiffusionMLPHead: prediction_type must be one of {_PREDICTION_TYPES}, got {prediction_type!r}"
            )
        check_config_float("DiffusionMLPHead", "flow_shift", flow_shift, strict=True)
        check_config_float("DiffusionMLPHead", "flow_logit_mean", flow_logit_mean, minimum=-math.inf)
        check_config_float("DiffusionMLPHead", "flow_logit_std", flow_logit_std, strict=True)
        flow_keys = {"flow_shift": flow_shift, "flow_logit_mean": flow_logit_mean, "flow_logit_std": flow_logit_std}
        if prediction_type == _FLOW:
            if beta_schedule != _DEFAULT_BETA_SCHEDULE:
                raise ValueError(
                    f"DiffusionMLPHead: beta_schedule={beta_schedule!r} has no effect with "
                    f"prediction_type='{_FLOW}' (flow matching has no beta schedule); leave it at its default"
                )
        else:
            changed = sorted(k for k, v in flow_keys.items() if v != _FLOW_DEFAULTS[k])
            if changed:
                raise ValueError(
                    f"DiffusionMLPHead: {changed} apply only to prediction_type='{_FLOW}', got "
                    f"prediction_type={prediction_type!r}"
                )
        sizes = {
            "hidden_size": hidden_size,
            "token_dim": token_dim,
            "width": width,
            "depth": depth,
            "num_timesteps_per_token": num_timesteps_per_token,
            "num_inference_steps": num_inference_steps,
            "num_train_timesteps": num_train_timesteps,
        }
        for name, value in sizes.items():
            check_config_int("DiffusionMLPHead", name, value)
        check_config_int("DiffusionMLPHead", "timestep_embedding_dim", timestep_embedding_dim, minimum=2)
        if timestep_embedding_dim % 2:
            raise ValueError(f"DiffusionMLPHead: timestep_embedding_dim must be even, got {timestep_embedding_dim}")
        for name, value in {"beta_schedule": beta_schedule, "scheduler": scheduler}.items():
            if not isinstance(value, str):
                raise TypeError(f"DiffusionMLPHead: {name} must be a string, got {type(value).__name__} {value!r}")
        if scheduler_config is not None and not isinstance(scheduler_config, dict):
            raise TypeError(
                f"DiffusionMLPHead: scheduler_config must be a dict or None, got {type(scheduler_config).__name__}"
            )

        self.input_proj = nn.Linear(token_dim, width)
        if adaln == "nova":
            self.cond_embed = nn.Sequential(nn.Linear(hidden_size, width), nn.SiLU(), nn.Linear(width, width))
        else:
            self.cond_embed = nn.Linear(hidden_size, width)
        self.time_embed = nn.Sequential(nn.Linear(timestep_embedding_dim, width), nn.SiLU(), nn.Linear(width, width))
        num_mod = (3 * depth + 2) * width  # (shift, scale, gate) per block + (shift, scale) before the output
        if adaln == "separable":
            self.cond_modulation = nn.Linear(width, num_mod)
            self.time_modulation = nn.Linear(width, num_mod, bias=False)
        else:
            self.modulation = nn.Linear(width, num_mod)
        self.blocks = nn.ModuleList(_ResBlock(width, post_norm=adaln == "nova") for _ in range(depth))
        self.output = nn.Linear(width, token_dim)
        self._init_weights()

        # The training schedule comes from the configured scheduler (this also validates the config early).
        sched = self._make_scheduler()
        if prediction_type != _FLOW:
            alphas_cumprod = sched.alphas_cumprod.double()
            self._sqrt_alphas = {"cpu": (alphas_cumprod.sqrt().float(), (1 - alphas_cumprod).sqrt().float())}
        self._draws_noise: dict[tuple[str, int], bool] = {}  # see _steps_draw_noise

    def _init_weights(self) -> None:
        # MAR §4.1 / DiT: xavier linears, N(0, 0.02) time MLP, zero-initialized modulation and output.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for layer in (self.time_embed[0], self.time_embed[2]):
            nn.init.normal_(layer.weight, std=0.02)
        zero = [self.output] + (
            [self.cond_modulation, self.time_modulation] if self.config.adaln == "separable" else [self.modulation]
        )
        for layer in zero:
            nn.init.zeros_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """A head with a 32-wide, 2-block denoiser and 8 sampling steps (CPU unit tests)."""
        return {"hidden_size": 16, "token_dim": 4, "width": 32, "depth": 2, "num_inference_steps": 8}

    # ------------------------------------------------------------------ scheduler
    def _make_scheduler(self, name: str | None = None):
        """A fresh diffusers scheduler ``name`` (default: the config's) with the head's noise schedule."""
        import diffusers

        name = name or self.config.scheduler
        class_name = _SCHEDULER_ALIASES.get(name) or _FLOW_SCHEDULER_ALIASES.get(name) or name
        cls = getattr(diffusers, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
            raise ValueError(
                f"DiffusionMLPHead: unknown scheduler {name!r}; use 'ddpm', 'ddim' or a diffusers scheduler class "
                f"name such as 'EulerDiscreteScheduler' or 'DPMSolverMultistepScheduler' (with "
                f"prediction_type='{_FLOW}': 'flow_euler' or 'flow_heun')"
            )
        if self.config.prediction_type == _FLOW:
            return self._make_flow_scheduler(name, cls)
        if cls.__name__ in _FLOW_SCHEDULER_ALIASES.values():
            raise ValueError(
                f"DiffusionMLPHead: scheduler {name!r} is a flow-matching sampler, not a DDPM-family scheduler; it "
                f"samples only a head trained with prediction_type='{_FLOW}'"
            )
        accepted = inspect.signature(cls.__init__).parameters
        user = dict(self.config.scheduler_config or {})
        owned = sorted(set(user) & set(_HEAD_OWNED))
        if owned:
            raise ValueError(
                f"DiffusionMLPHead: set {owned} on the head itself, not in scheduler_config (they define training)"
            )
        unknown = sorted(k for k in user if k not in accepted)
        if unknown:
            raise ValueError(f"DiffusionMLPHead: {cls.__name__} does not accept scheduler_config keys {unknown}")
        kwargs = {
            "num_train_timesteps": self.config.num_train_timesteps,
            "beta_schedule": self.config.beta_schedule,
            "prediction_type": self.config.prediction_type,
            "clip_sample": False,  # diffusers clips x0 to [-1, 1] by default; tokens are unbounded
            # Never start at t = 999: the cosine schedule has alpha_bar(999) ~ 2e-9 there, where recovering x0
            # from an epsilon prediction multiplies its error by ~2e4 (samples blow up; see the class docstring).
            "timestep_spacing": "leading",
        }
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
        missing = sorted({"num_train_timesteps", "beta_schedule", "prediction_type"} - set(kwargs))
        if missing:
            raise ValueError(f"DiffusionMLPHead: {cls.__name__} takes no {missing}; it is not a DDPM-family scheduler")
        kwargs.update(user)
        if self.config.prediction_type == "epsilon" and kwargs.get("timestep_spacing") in ("trailing", "linspace"):
            warnings.warn(
                f"DiffusionMLPHead: timestep_spacing={kwargs['timestep_spacing']!r} starts sampling at the last "
                f"training step, where epsilon-prediction is ill-conditioned (samples can blow up); use 'leading' "
                f"or prediction_type='v_prediction'",
                stacklevel=3,
            )
        scheduler = cls(**kwargs)
        alphas = getattr(scheduler, "alphas_cumprod", None)
        if not isinstance(alphas, torch.Tensor) or alphas.numel() != self.config.num_train_timesteps:
            raise ValueError(
                f"DiffusionMLPHead: {cls.__name__} has no DDPM noise schedule (alphas_cumprod); the head is trained "
                f"on the DDPM forward process, so flow-matching schedulers do not apply"
            )
        return scheduler

    def _make_flow_scheduler(self, name: str, cls: type):
        """A fresh flow-matching scheduler ``cls`` on the head's σ grid (``shift=flow_shift`` unless overridden)."""
        if cls.__name__ not in _FLOW_SCHEDULER_ALIASES.values():
            raise ValueError(
                f"DiffusionMLPHead: scheduler {name!r} does not fit prediction_type='{_FLOW}' (a velocity on the "
                f"flow-matching path); use 'flow_euler' (FlowMatchEulerDiscreteScheduler, NOVA's sampler) or "
                f"'flow_heun' (FlowMatchHeunDiscreteScheduler)"
            )
        accepted = inspect.signature(cls.__init__).parameters
        user = dict(self.config.scheduler_config or {})
        if "num_train_timesteps" in user:
            raise ValueError(
                "DiffusionMLPHead: set ['num_train_timesteps'] on the head itself, not in scheduler_config "
                "(it scales the timestep the network was trained on)"
            )
        unknown = sorted(k for k in user if k not in accepted)
        if unknown:
            raise ValueError(f"DiffusionMLPHead: {cls.__name__} does not accept scheduler_config keys {unknown}")
        refused = sorted(k for k in _FLOW_REFUSED if user.get(k))
        if refused:
            raise ValueError(
                f"DiffusionMLPHead: scheduler_config {refused} is not supported: a per-token head has no image "
                f"resolution to shift by, and its velocity runs from σ = 1 (noise) to σ = 0 (data)"
            )
        if "shift" in user:
            check_config_float("DiffusionMLPHead", "scheduler_config['shift']", user["shift"], strict=True)
        kwargs = {"num_train_timesteps": self.config.num_train_timesteps, "shift": float(self.config.flow_shift)}
        kwargs.update(user)
        return cls(**kwargs)

    def _schedule(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sqrt(ᾱ_t), sqrt(1 − ᾱ_t))`` in fp32 on ``device`` (kept out of the state dict and of ``.to(dtype)``)."""
        key = str(device)
        if key not in self._sqrt_alphas:
            self._sqrt_alphas[key] = tuple(v.to(device) for v in self._sqrt_alphas["cpu"])
        return self._sqrt_alphas[key]

    # ------------------------------------------------------------------ network
    def _condition(self, hidden: torch.Tensor) -> torch.Tensor:
        """Per-row part of the modulation: final (separable) or the condition embedding (joint)."""
        c = self.cond_embed(hidden)
        return self.cond_modulation(F.silu(c)) if self.config.adaln == "separable" else c

    def _time(self, t: torch.Tensor) -> torch.Tensor:
        """Per-timestep part of the modulation, for a 1-D tensor of timestep values."""
        e = self.time_embed(_timestep_embedding(t, self.config.timestep_embedding_dim).to(self.output.weight.dtype))
        return self.time_modulation(F.silu(e)) if self.config.adaln == "separable" else e

    def _modulation(self, cond: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        if self.config.adaln == "separable":
            return cond + time
        return self.modulation(F.silu(cond + time))

    def _trunk(self, x: torch.Tensor, modulation: torch.Tensor) -> torch.Tensor:
        chunks = modulation.chunk(3 * self.config.depth + 2, dim=-1)
        h = self.input_proj(x)
        for i, block in enumerate(self.blocks):
            h = block(h, *chunks[3 * i : 3 * i + 3])
        shift, scale = chunks[-2:]
        h = F.layer_norm(h, h.shape[-1:], eps=1e-6)
        return self.output(torch.addcmul(h + shift, h, scale))

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor | float, hidden: torch.Tensor) -> torch.Tensor:
        """The denoiser's raw prediction (ε, v or x₀ per ``prediction_type``; the velocity ``ε − x`` in the flow mode).

        Args:
            noisy: Noisy tokens ``x_t``, ``(..., token_dim)``.
            timesteps: Timestep values, a scalar or a tensor broadcastable to the leading dims (one per token
                if wanted); in the flow mode ``σ · num_train_timesteps`` (fractional values are fine).
            hidden: Hidden states, ``(..., hidden_size)``.

        Returns:
            The prediction, ``(..., token_dim)``, in the parameters' dtype.
        """
        self.check_inputs(hidden, noisy, target_name="noisy")
        lead, dtype = hidden.shape[:-1], self.output.weight.dtype
        t = torch.as_tensor(timesteps, device=hidden.device).expand(lead).reshape(-1)
        unique, inverse = torch.unique(t, return_inverse=True)  # the timestep part once per distinct value
        cond = self._condition(hidden.reshape(-1, hidden.shape[-1]).to(dtype))
        out = self._trunk(
            noisy.reshape(-1, noisy.shape[-1]).to(dtype), self._modulation(cond, self._time(unique)[inverse])
        )
        return out.reshape(*lead, self.config.token_dim)

    # ------------------------------------------------------------------ TokenHead API
    def loss(
        self, hidden: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Per-token denoising loss (MAR §3.2), averaged over the timestep draws and the channels.

        Every token gets its own ``num_timesteps_per_token`` independent timesteps (NOVA draws them per token
        too). In the flow mode they are logit-normal noise levels σ and the target is the velocity ``ε − x``
        (see the class docstring).

        Args:
            hidden: Hidden states, ``(..., hidden_size)``.
            target: Clean tokens, ``(..., token_dim)``.
            generator: Source of the timesteps and noise (drawn on its device, timesteps first, then the
                noise); the global RNG if ``None``.

        Returns:
            fp32 loss with the leading shape of ``hidden``.
        """
        self.check_inputs(hidden, target)
        check_generator(generator)
        lead, device, dtype = hidden.shape[:-1], hidden.device, self.output.weight.dtype
        draws = self.config.num_timesteps_per_token
        h = hidden.reshape(-1, hidden.shape[-1]).to(dtype)
        x0 = target.reshape(-1, target.shape[-1]).float()
        if self.config.prediction_type == _FLOW:
            sigma = self._flow_sigmas((draws, h.shape[0]), generator, device)
            noise = randn((draws, *x0.shape), generator, device)
            noisy = torch.lerp(x0, noise, sigma.unsqueeze(-1))  # (1 − σ)·x + σ·ε
            cond = self._condition(h).expand(draws, -1, -1)
            # σ is continuous (every value distinct), so no torch.unique: one timestep embedding per draw.
            time = self._time(sigma.reshape(-1) * self.config.num_train_timesteps).unflatten(0, sigma.shape)
            out = self._trunk(noisy.to(dtype), self._modulation(cond, time))
            return (out.float() - (noise - x0)).square().mean(dim=(0, 2)).reshape(lead)
        t = randint(self.config.num_train_timesteps, (draws, h.shape[0]), generator, device)
        noise = randn((draws, *x0.shape), generator, device)
        sqrt_alpha, sqrt_sigma = self._schedule(device)
        a, s = sqrt_alpha[t].unsqueeze(-1), sqrt_sigma[t].unsqueeze(-1)
        noisy = a * x0 + s * noise
        if self.config.prediction_type == "epsilon":
            goal = noise
        elif self.config.prediction_type == "v_prediction":
            goal = a * noise - s * x0
        else:
            goal = x0.expand_as(noise)
        cond = self._condition(h).expand(draws, -1, -1)  # once per token, shared by its draws
        unique, inverse = torch.unique(t, return_inverse=True)
        out = self._trunk(noisy.to(dtype), self._modulation(cond, self._time(unique)[inverse]))
        return (out.float() - goal).square().mean(dim=(0, 2)).reshape(lead)

    def _flow_sigmas(self, shape: tuple[int, ...], generator: torch.Generator | None, device) -> torch.Tensor:
        """Training noise levels: logit-normal ``sigmoid(m + s·n)`` (SD3), then the ``flow_shift`` map."""
        cfg = self.config
        sigma = torch.sigmoid(randn(shape, generator, device) * float(cfg.flow_logit_std) + float(cfg.flow_logit_mean))
        shift = float(cfg.flow_shift)
        if shift != 1.0:  # the same map as the sampling grid of FlowMatchEulerDiscreteScheduler: noisier levels
            sigma = shift * sigma / (1 + (shift - 1) * sigma)
        return sigma

    def nll(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Not available: a diffusion head has no tractable density.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError(
            "diffusion_mlp defines no exact density; its loss() is a denoising objective (a reweighted variational "
            "bound up to constants), not a negative log-likelihood. Use a gaussian or gmm head for nll()."
        )

    def sample(
        self,
        hidden: torch.Tensor,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float = 1.0,
        uncond_hidden: torch.Tensor | None = None,
        scheduler: str | None = None,
        eta: float = 0.0,
    ) -> torch.Tensor:
        """Draw one token per hidden state by reverse diffusion (MAR §3.2; guidance as MAR App. B).

        In the flow mode: Euler (or Heun) integration of the predicted velocity from ``σ = 1`` to 0.

        Args:
            hidden: Hidden states, ``(..., hidden_size)``.
            temperature: Noise scale, finite and ``>= 0`` (see the class docstring); 0 gives a deterministic
                sample: no noise at all, from ``x_T = 0``. In the flow mode it scales the initial noise ``x_1``.
            generator: Source of all noise (drawn on its device); the global RNG if ``None``.
            num_inference_steps: Denoising steps; the config's ``num_inference_steps`` if ``None``.
            guidance_scale: Classifier-free guidance weight, finite and ``>= 0``; 1 disables guidance.
            uncond_hidden: Unconditional hidden states, broadcastable to ``hidden``; required when
                ``guidance_scale != 1``.
            scheduler: Override the config's scheduler for this call (same names as the config).
            eta: DDIM's stochasticity, finite and ``>= 0`` (0: deterministic DDIM, 1: DDPM-like); only for
                schedulers that take it.

        Returns:
            Tokens ``(..., token_dim)`` in ``hidden``'s dtype.

        Raises:
            TypeError: A non-numeric ``temperature``, ``guidance_scale`` or ``eta``, a non-int
                ``num_inference_steps``, a generator that is not a ``torch.Generator``, non-floating hidden states.
            ValueError: NaN/inf/negative ``temperature``, ``guidance_scale`` or ``eta``; NaN/inf in ``hidden`` or
                ``uncond_hidden``; temperature 0 with a scheduler that adds its own noise.
        """
        temperature = check_temperature(temperature)
        guidance_scale = check_guidance_scale(guidance_scale)
        eta = check_number("eta", eta)
        check_generator(generator)
        if num_inference_steps is None:
            steps = self.config.num_inference_steps
        else:
            steps = check_config_int("DiffusionMLPHead.sample", "num_inference_steps", num_inference_steps)
        if scheduler is not None and not isinstance(scheduler, str):
            raise TypeError(f"DiffusionMLPHead.sample: scheduler must be a string, got {type(scheduler).__name__}")
        self.check_inputs(hidden)
        guided = guidance_scale != 1.0
        if guided and uncond_hidden is None:
            raise ValueError("DiffusionMLPHead.sample: guidance_scale != 1 needs uncond_hidden")
        sched = self._make_scheduler(scheduler)
        step_params = inspect.signature(sched.step).parameters
        if eta != 0.0 and "eta" not in step_params:
            raise ValueError(f"DiffusionMLPHead.sample: {type(sched).__name__} takes no eta")
        fused = self._fused_steps(sched, steps, eta)
        zero_noise = temperature == 0 and fused is None and "variance_noise" in step_params
        if temperature == 0 and fused is None and not zero_noise and self._steps_draw_noise(scheduler, steps, eta):
            raise ValueError(
                f"DiffusionMLPHead.sample: temperature=0 must be deterministic, but {type(sched).__name__}'s steps "
                f"add noise the head cannot switch off; use temperature > 0 or a deterministic scheduler "
                f"('ddpm', 'ddim', 'EulerDiscreteScheduler', 'DPMSolverMultistepScheduler', ...)"
            )

        lead, device, dtype = hidden.shape[:-1], hidden.device, self.output.weight.dtype
        with torch.inference_mode():
            h = hidden.reshape(-1, hidden.shape[-1])
            rows = h.shape[0]
            if guided:  # one batched pass: [cond; uncond]
                h = torch.cat([h, self._broadcast_uncond(uncond_hidden, hidden).to(h.dtype)])
            cond = self._condition(h.to(dtype))  # fixed across steps: computed once
            if fused is None:
                sched.set_timesteps(steps, device=device)
            timesteps = sched.timesteps
            time = self._time(timesteps.to(device))  # every step's timestep part in one call

            def predict(x: torch.Tensor, k: int) -> torch.Tensor:
                xin = torch.cat([x, x]) if guided else x
                out = self._trunk(xin.to(dtype), self._modulation(cond, time[k])).float()
                if guided:
                    c, u = out.chunk(2)
                    out = torch.lerp(u, c, guidance_scale)
                return out

            shape = (rows, self.config.token_dim)
            if fused is not None:
                x = self._run_fused(predict, fused, shape, temperature, generator, device)
            else:
                if temperature == 0:  # start at the prior's mean; nothing is drawn
                    x = torch.zeros(shape, device=device)
                else:  # flow-matching schedulers start at unit noise and define no init_noise_sigma
                    x = randn(shape, generator, device) * (getattr(sched, "init_noise_sigma", 1.0) * temperature)
                extra = {"generator": generator} if "generator" in step_params else {}
                if "eta" in step_params:
                    extra["eta"] = eta
                if zero_noise:  # e.g. DDIM with eta > 0, SDE DPM-Solver: zero step noise at temperature 0
                    extra["variance_noise"] = torch.zeros(shape, device=device)
                    extra.pop("generator", None)  # diffusers refuses both
                scale_input = getattr(sched, "scale_model_input", None)  # absent on flow-matching schedulers
                for k, t in enumerate(timesteps):
                    out = predict(x if scale_input is None else scale_input(x, t), k)
                    x = sched.step(out, t, x, return_dict=False, **extra)[0]
        return x.clone().reshape(*lead, self.config.token_dim).to(hidden.dtype)

    def _broadcast_uncond(self, uncond_hidden: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """``uncond_hidden`` broadcast to ``hidden``'s rows, ``(rows, hidden_size)``, or a ValueError."""
        try:
            uncond = torch.as_tensor(uncond_hidden, device=hidden.device)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"DiffusionMLPHead.sample: uncond_hidden must be a tensor, got {type(uncond_hidden).__name__}"
            ) from None
        self.check_inputs(uncond, name="uncond_hidden")
        try:
            return uncond.expand_as(hidden).reshape(-1, hidden.shape[-1])
        except RuntimeError:
            raise ValueError(
                f"DiffusionMLPHead.sample: uncond_hidden {tuple(uncond.shape)} does not broadcast to hidden "
                f"{tuple(hidden.shape)}"
            ) from None

    # ------------------------------------------------------------------ fused DDPM / DDIM
    def _fused_steps(self, sched, steps: int, eta: float) -> list[tuple[float, float, float, bool]] | None:
        """Per-step ``(a, b, std, draws)`` with ``x_prev = a·x + b·out + std·z`` equal to ``sched.step``.

        Only for exactly ``DDPMScheduler`` (fixed_small variance) and ``DDIMScheduler`` without clipping or
        thresholding; ``None`` otherwise (the generic ``scheduler.step`` loop is used). Calls
        ``set_timesteps(steps)`` on the CPU.
        """
        from diffusers import DDIMScheduler, DDPMScheduler

        kind = type(sched)
        if kind not in (DDPMScheduler, DDIMScheduler) or sched.config.clip_sample or sched.config.thresholding:
            return None
        if kind is DDPMScheduler and sched.config.variance_type not in (None, "fixed_small"):
            return None
        sched.set_timesteps(steps)
        ac = sched.alphas_cumprod.double()
        out = []
        for t in sched.timesteps.tolist():
            if kind is DDPMScheduler:
                prev = int(sched.previous_timestep(t))
                ab_prev = float(ac[prev]) if prev >= 0 else 1.0
            else:
                prev = t - sched.config.num_train_timesteps // sched.num_inference_steps
                ab_prev = float(ac[prev]) if prev >= 0 else float(sched.final_alpha_cumprod)
            ab = float(ac[t])
            # x0 = p·x + q·out and eps = r·x + s·out for the prediction type.
            if self.config.prediction_type == "epsilon":
                p, q, r, s = 1 / math.sqrt(ab), -math.sqrt(1 - ab) / math.sqrt(ab), 0.0, 1.0
            elif self.config.prediction_type == "v_prediction":
                p, q, r, s = math.sqrt(ab), -math.sqrt(1 - ab), math.sqrt(1 - ab), math.sqrt(ab)
            else:
                p, q, r, s = 0.0, 1.0, 1 / math.sqrt(1 - ab), -math.sqrt(ab) / math.sqrt(1 - ab)
            beta = 1 - ab / ab_prev
            variance = (1 - ab_prev) / (1 - ab) * beta
            if kind is DDPMScheduler:  # DDPM Eq. 7: posterior mean from x0 and x_t, fixed_small variance
                c0, c1 = math.sqrt(ab_prev) * beta / (1 - ab), math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)
                out.append((c0 * p + c1, c0 * q, math.sqrt(max(variance, 1e-20)), t > 0))
            else:  # DDIM Eq. 12
                std = eta * math.sqrt(variance)
                d = math.sqrt(max(1 - ab_prev - std**2, 0.0))
                a0 = math.sqrt(ab_prev)
                out.append((a0 * p + d * r, a0 * q + d * s, std, eta > 0))
        return out

    def _steps_draw_noise(self, scheduler: str | None, steps: int, eta: float) -> bool:
        """Whether ``scheduler``'s own ``step`` adds noise (ancestral, SDE, ... samplers), probed once and cached.

        Runs the reverse loop on a zero token with a zero prediction under two seeds: a deterministic
        scheduler returns the same (zero) token both times. Temperature 0 cannot be honoured otherwise.
        """
        key = (scheduler or self.config.scheduler, steps, eta)
        if key not in self._draws_noise:
            ends = []
            for seed in (0, 1):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sched = self._make_scheduler(scheduler)
                params = inspect.signature(sched.step).parameters
                extra = {"eta": eta} if "eta" in params else {}
                if "generator" in params:
                    extra["generator"] = torch.Generator().manual_seed(seed)
                sched.set_timesteps(steps)
                x = torch.zeros(1, self.config.token_dim)
                for t in sched.timesteps:
                    if hasattr(sched, "scale_model_input"):
                        sched.scale_model_input(x, t)  # some schedulers insist on it before step()
                    x = sched.step(torch.zeros_like(x), t, x, return_dict=False, **extra)[0]
                ends.append(x)
            self._draws_noise[key] = not torch.equal(*ends)
        return self._draws_noise[key]

    @staticmethod
    def _run_fused(predict, coeffs, shape, temperature, generator, device) -> torch.Tensor:
        """The reverse loop with precomputed coefficients; draws noise in the same order as ``scheduler.step``.

        At temperature 0 nothing is drawn: the loop starts at ``x_T = 0`` and adds no noise at any step.
        """
        if temperature == 0:
            x = torch.zeros(shape, device=device)
        else:
            x = randn(shape, generator, device)
            if not any(draws for *_, draws in coeffs):
                x = x * temperature  # deterministic sampler: temperature scales the initial noise
        for k, (a, b, std, draws) in enumerate(coeffs):
            x = torch.add(x * a, predict(x, k), alpha=b)
            if draws and temperature != 0:
                x.add_(randn(shape, generator, device), alpha=std * temperature)
        return x
