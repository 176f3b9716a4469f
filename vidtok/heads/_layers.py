"""Building blocks shared by the built-in heads (private: the public surface is the head classes).

* :func:`build_trunk` — the MLP between the backbone's hidden state and a head's final projection
  (DiCoDe's ``output_resampler``: ``Linear → GELU → Linear``).
* :func:`diagonal_gmm_nll` — the exact negative log-density of a diagonal Gaussian mixture (DiCoDe §3.4,
  Alg. 1) computed from a head's raw projection output, fused into one autograd function so that it
  neither builds ``torch.distributions`` objects nor keeps ``(..., K, d)`` intermediates alive for the
  backward pass.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidtok.validation import check_count, check_generator, check_number

__all__ = [
    "build_trunk",
    "check_config_bool",
    "check_config_float",
    "check_config_int",
    "check_generator",
    "check_guidance",
    "check_guidance_scale",
    "check_number",
    "check_reduction",
    "check_temperature",
    "diagonal_gmm_nll",
    "fp32_island",
    "init_linear_",
    "softplus_variance",
]

_LOG_2PI = math.log(2.0 * math.pi)


def init_linear_(module: nn.Module, std: float = 0.02) -> None:
    """Initialise every ``nn.Linear`` in ``module`` with N(0, std²) weights and zero biases.

    This is the official DiCoDe initialisation of the output MLP (research notes §4): at initialisation the
    predicted variance is ``softplus(0) ≈ 0.69`` and the mixture weights are about uniform.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def build_trunk(in_features: int, width: int, num_layers: int) -> tuple[nn.Sequential, int]:
    """The hidden layers of a head's MLP: ``num_layers - 1`` blocks of ``Linear → GELU``.

    Args:
        in_features: The backbone hidden size.
        width: Width of the hidden layers.
        num_layers: Number of linear layers of the whole MLP, the head's final projection included; ``1``
            gives an empty trunk (the head is a single linear projection).

    Returns:
        The trunk and the number of features it outputs (the final projection's input size).
    """
    if num_layers < 1:
        raise ValueError(f"mlp_layers must be >= 1, got {num_layers}")
    if width < 1:
        raise ValueError(f"mlp_width must be >= 1, got {width}")
    layers: list[nn.Module] = []
    features = in_features
    for _ in range(num_layers - 1):
        layers += [nn.Linear(features, width), nn.GELU()]
        features = width
    return nn.Sequential(*layers), features


def _type_name(value: object) -> str:
    return type(value).__name__


def check_config_int(owner: str, name: str, value: Any, *, minimum: int = 1, optional: bool = False) -> int | None:
    """Validate an integer config value (a Python ``int``, not a bool or a float) ``>= minimum``.

    Raises:
        TypeError: Naming ``name`` when ``value`` is not an int (``3.5``, ``4.0``, ``True``, ``"16"``).
        ValueError: Naming ``name`` when it is below ``minimum``.
    """
    # The library's one int check (bools and floats refused: even 4.0 would be stored as 4.0 in config.json and
    # break nn.Linear), with the head's name in front of the key.
    return check_count(f"{owner}: {name}", value, low=minimum, optional=optional)


def check_config_float(
    owner: str, name: str, value: Any, *, minimum: float = 0.0, strict: bool = False, finite: bool = True
) -> float:
    """Validate a real config value: a number (not a bool), not NaN, finite if ``finite``, ``>`` or ``>=`` minimum.

    Raises:
        TypeError: Naming ``name`` when ``value`` is not a real number.
        ValueError: Naming ``name`` when it is NaN, infinite or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {_type_name(value)} {value!r}")
    value = float(value)
    low_ok = value > minimum if strict else value >= minimum
    if math.isnan(value) or (finite and math.isinf(value)) or not low_ok:
        bound = f"{'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"{owner}: {name} must be a {'finite ' if finite else ''}number {bound}, got {value}")
    return value


def check_config_bool(owner: str, name: str, value: Any) -> bool:
    """Validate a boolean config value (``True``/``False`` only: ``1`` or ``"yes"`` are refused)."""
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a bool, got {_type_name(value)} {value!r}")
    return value


def check_temperature(temperature: Any) -> float:
    """Validate a sampling temperature (a finite number ``>= 0``) and return it as a float."""
    return check_number("temperature", temperature)


def check_guidance_scale(guidance_scale: Any) -> float:
    """Validate a classifier-free guidance scale (a finite number ``>= 0``) and return it as a float.

    ``0`` is the unconditional prediction and ``(0, 1)`` interpolates towards it; a negative scale would push
    away from the unconditional branch *past* it, which no head defines, so it is refused like NaN and inf.
    """
    return check_number("guidance_scale", guidance_scale)


def check_reduction(value: str) -> str:
    """Validate a ``loss_reduction`` config value."""
    if value not in ("mean", "sum"):
        raise ValueError(f"loss_reduction must be 'mean' (per dimension) or 'sum' (per token), got {value!r}")
    return value


def check_guidance(name: str, hidden: torch.Tensor, uncond_hidden: Any, guidance_scale: float) -> bool:
    """Whether ``sample`` guides (``guidance_scale != 1``); then ``uncond_hidden`` must have ``hidden``'s shape.

    ``guidance_scale`` must already have passed :func:`check_guidance_scale`. A head validates the values of
    ``uncond_hidden`` (dtype, finiteness) with ``check_inputs(uncond_hidden, name="uncond_hidden")``.

    Raises:
        TypeError: When ``uncond_hidden`` is not a tensor.
        ValueError: Naming ``name`` (the head's ``sample``) when the null prompt's states are missing or misshaped.
    """
    if guidance_scale == 1.0:
        return False
    if uncond_hidden is None:
        raise ValueError(f"{name}: guidance_scale != 1 needs uncond_hidden (the null prompt's states)")
    if not isinstance(uncond_hidden, torch.Tensor):
        raise TypeError(f"{name}: uncond_hidden must be a tensor, got {_type_name(uncond_hidden)}")
    if tuple(uncond_hidden.shape) != tuple(hidden.shape):
        raise ValueError(
            f"{name}: uncond_hidden {tuple(uncond_hidden.shape)} must have hidden's shape {tuple(hidden.shape)}"
        )
    return True


@contextlib.contextmanager
def fp32_island(device: torch.device):
    """Disable ``torch.autocast`` on ``device`` inside the block; a no-op when autocast is off.

    The heads run their MLP and densities in their parameter dtype inside it: under fp16 autocast, the
    gradient of an NLL near a small variance (``1/σ²`` up to ``1/variance_floor``) times a large hidden state
    exceeds fp16's range (65504) in the projection's backward, and hidden states beyond it overflow in the
    forward. Without autocast nothing changes, so fp32 results stay bit-identical.
    """
    if torch.is_autocast_enabled(device.type):
        with torch.autocast(device_type=device.type, enabled=False):
            yield
    else:
        yield


def softplus_variance(raw: torch.Tensor, floor: float) -> torch.Tensor:
    """DiCoDe's variance parameterization: ``clamp(softplus(raw), min=floor)`` (research notes §4).

    ``softplus`` is linear for large inputs, so extreme hidden states give large but finite variances; the
    floor keeps ``1 / variance`` finite. Unlike ``exp`` of a log-variance, nothing here can overflow.
    """
    return F.softplus(raw).clamp_min(floor)


# ----------------------------------------------------------------------------------------------- GMM density
class _DiagonalGMMNLL(torch.autograd.Function):
    """``-log Σ_k w_k N(x | μ_k, diag σ²_k)`` from the raw projection output, with a hand-written backward.

    Layout of ``params`` (``(M, P)``, fp32, contiguous), DiCoDe's ``gmm_split_params``: ``[0, K·d)`` means
    (component-major), ``[K·d, 2·K·d)`` raw variances, then ``K`` mixture logits when ``has_logits``.

    The forward keeps only the inputs and two ``(M, K)`` tensors for the backward, which recomputes the
    variance instead of storing it and writes the gradient straight into one ``(M, P)`` buffer (autograd
    on slices of ``params`` would materialise a zero-filled ``(M, P)`` tensor per slice).
    """

    @staticmethod
    def forward(ctx, params, target, num_components, token_dim, floor, has_logits):  # noqa: D102
        rows, k, d = params.shape[0], num_components, token_dim
        mean = params[:, : k * d].view(rows, k, d)
        raw = params[:, k * d : 2 * k * d].view(rows, k, d)
        variance = F.softplus(raw).clamp_(min=floor)
        # Mahalanobis term and log-determinant, summed over d in place: two (M, K, d) temporaries at most.
        quad = torch.sub(target.unsqueeze(1), mean)
        quad.square_().div_(variance)
        quad.add_(variance.log_())
        del variance
        log_comp = quad.sum(-1).mul_(-0.5).sub_(0.5 * d * _LOG_2PI)  # (M, K): log N(x | μ_k, σ²_k)
        del quad
        if has_logits:
            log_weights = torch.log_softmax(params[:, 2 * k * d :], dim=-1)
            joint = log_comp + log_weights
        else:
            log_weights = None
            joint = log_comp
        log_density = torch.logsumexp(joint, dim=-1)
        responsibility = torch.exp(joint - log_density.unsqueeze(-1))  # posterior over components, (M, K)
        ctx.save_for_backward(params, target, responsibility, log_weights)
        ctx.shape = (k, d, floor, has_logits)
        return log_density.neg()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # noqa: D102
        params, target, responsibility, log_weights = ctx.saved_tensors
        k, d, floor, has_logits = ctx.shape
        rows = params.shape[0]
        mean = params[:, : k * d].view(rows, k, d)
        raw = params[:, k * d : 2 * k * d].view(rows, k, d)
        grad = torch.empty_like(params)
        grad_mean = grad[:, : k * d].view(rows, k, d)
        grad_raw = grad[:, k * d : 2 * k * d].view(rows, k, d)

        # d(-log p)/d(q_k) = ½ g r_k where q_k = Σ_d (x-μ)²/σ² + log σ² is the per-component quadratic term.
        half_g_r = (0.5 * grad_out).unsqueeze(-1).mul(responsibility).unsqueeze(-1)  # (M, K, 1)
        work = F.softplus(raw)
        torch.sigmoid(raw, out=grad_raw)  # dσ²/d raw, zero where the floor clamps
        if work.numel() and bool(work.min() < floor):
            grad_raw.masked_fill_(work < floor, 0.0)
            work.clamp_(min=floor)
        # grad_mean first holds z = (x - μ)/σ², then becomes dq/dμ · ½ g r = -2 z · ½ g r.
        torch.sub(target.unsqueeze(1), mean, out=grad_mean)
        grad_mean.div_(work)
        # dq/dσ² = 1/σ² - z².
        work.reciprocal_().addcmul_(grad_mean, grad_mean, value=-1.0).mul_(half_g_r)
        grad_raw.mul_(work)
        del work
        grad_mean.mul_(half_g_r).mul_(-2.0)
        if has_logits:
            # -log p = -logsumexp(log_comp + log_softmax(l)) → d/dl_j = softmax(l)_j - r_j.
            grad[:, 2 * k * d :] = grad_out.unsqueeze(-1) * (log_weights.exp() - responsibility)
        grad_target = -grad_mean.sum(1) if ctx.needs_input_grad[1] else None
        return grad, grad_target, None, None, None, None


def diagonal_gmm_nll(
    params: torch.Tensor,
    target: torch.Tensor,
    *,
    num_components: int,
    variance_floor: float,
    has_logits: bool = True,
) -> torch.Tensor:
    """Exact negative log-density (nats) of ``target`` under a diagonal Gaussian mixture (DiCoDe Alg. 1).

    ``-log Σ_k softmax(l)_k N(x | μ_k, diag(σ²_k))`` with ``σ² = clamp(softplus(raw), min=variance_floor)``,
    evaluated with ``logsumexp`` over components in fp32. It equals
    ``-MixtureSameFamily(Categorical(logits=l), Independent(Normal(μ, σ), 1)).log_prob(x)`` but never
    materialises more than two ``(..., K, d)`` temporaries, and its backward writes the gradient into a
    single buffer shaped like ``params`` (see ``benchmarks/heads_gmm.py``).

    Args:
        params: Raw projection output ``(..., 2·K·d + K)`` (``(..., 2·d)`` when ``has_logits`` is false):
            means, raw variances, mixture logits, each component-major. Any float dtype; computed in fp32.
        target: ``(..., d)`` with the same leading shape.
        num_components: ``K``.
        variance_floor: Smallest variance.
        has_logits: Whether ``params`` ends with ``K`` mixture logits; without them ``K`` must be 1
            (a single diagonal Gaussian).

    Returns:
        fp32 ``(...)`` negative log-density in nats per token.
    """
    d = target.shape[-1]
    k = num_components
    width = 2 * k * d + (k if has_logits else 0)
    if params.shape[-1] != width:
        raise ValueError(f"expected params of width 2*K*d{' + K' if has_logits else ''} = {width}, got {params.shape}")
    if not has_logits and k != 1:
        raise ValueError("a mixture of more than one component needs logits")
    lead = params.shape[:-1]
    flat_params = params.reshape(-1, width).float().contiguous()
    flat_target = target.reshape(-1, d).float().contiguous()
    nll = _DiagonalGMMNLL.apply(flat_params, flat_target, k, d, float(variance_floor), has_logits)
    return nll.reshape(lead)
