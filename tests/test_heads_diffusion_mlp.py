"""DiffusionMLPHead: shapes, dtypes, zero init, schedulers, fused == generic sampling, guidance, loading, learning."""

from __future__ import annotations

import functools
import json
import warnings

import diffusers
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vidtok
from vidtok.heads.diffusion_mlp import DiffusionMLPHead

TINY = DiffusionMLPHead.tiny_config()
H, C = TINY["hidden_size"], TINY["token_dim"]


def make(seed: int = 0, perturb: float = 0.3, **overrides) -> DiffusionMLPHead:
    """A tiny head; ``perturb`` adds noise to every weight so the zero-initialized layers predict non-zero."""
    torch.manual_seed(seed)
    head = DiffusionMLPHead(**{**TINY, **overrides})
    if perturb:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for p in head.parameters():
                p.add_(torch.randn(p.shape, generator=g) * perturb)
    return head.eval()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def without_fused_path(head: DiffusionMLPHead) -> DiffusionMLPHead:
    """Force the generic ``scheduler.step`` loop (the reference the fused DDPM/DDIM loop must equal)."""
    head._fused_steps = lambda *args, **kwargs: None
    return head


def test_registered_and_created_with_the_common_kwargs():
    head = vidtok.HEADS.create("diffusion_mlp", hidden_size=12, token_dim=3, width=16, depth=1)
    assert isinstance(head, DiffusionMLPHead)
    assert vidtok.HEADS.get("diffusion_mlp") is DiffusionMLPHead
    assert head.loss(torch.randn(5, 12), torch.randn(5, 3)).shape == (5,)


@pytest.mark.parametrize("lead", [(), (5,), (2, 3), (2, 1, 3), (0, 4)])
@pytest.mark.parametrize("adaln", ["separable", "joint", "nova"])
def test_shapes_for_any_leading_dims(lead, adaln):
    head = make(adaln=adaln)
    hidden, target = torch.randn(*lead, H), torch.randn(*lead, C)
    loss = head.loss(hidden, target, generator=gen())
    assert loss.shape == lead and loss.dtype == torch.float32 and torch.isfinite(loss).all()
    sample = head.sample(hidden, generator=gen())
    assert sample.shape == (*lead, C) and torch.isfinite(sample).all()
    assert head(target, 10, hidden).shape == (*lead, C)


def test_wrong_shapes_are_refused():
    head = make()
    with pytest.raises(ValueError, match="hidden_size"):
        head.loss(torch.randn(2, H + 1), torch.randn(2, C))
    with pytest.raises(ValueError, match="token_dim"):
        head.loss(torch.randn(2, H), torch.randn(2, C + 1))
    with pytest.raises(ValueError, match="leading dims"):
        head.loss(torch.randn(2, H), torch.randn(3, C))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_inputs_give_finite_results(dtype):
    head = make()
    hidden, target = torch.randn(4, 3, H).to(dtype), torch.randn(4, 3, C).to(dtype)
    loss = head.loss(hidden, target, generator=gen())
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()
    sample = head.sample(hidden, generator=gen())
    assert sample.dtype == dtype and torch.isfinite(sample).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_head_trains_and_samples(dtype):
    head = make().to(dtype).train()
    hidden, target = torch.randn(4, 3, H, dtype=dtype), torch.randn(4, 3, C, dtype=dtype)
    loss = head.loss(hidden, target, generator=gen())
    loss.mean().backward()
    assert torch.isfinite(loss).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())
    assert torch.isfinite(head.eval().sample(hidden, generator=gen())).all()


@pytest.mark.parametrize("adaln", ["separable", "joint", "nova"])
def test_zero_init_untrained_denoiser_predicts_zero(adaln):
    head = DiffusionMLPHead(**TINY, adaln=adaln)
    out = head(torch.randn(6, C), torch.arange(6) * 100, torch.randn(6, H))
    assert torch.equal(out, torch.zeros_like(out))
    # With ε = 0 predicted everywhere the loss is E[ε²] = 1 per channel, up to sampling noise.
    loss = head.loss(torch.randn(4096, H), torch.randn(4096, C), generator=gen())
    assert abs(loss.mean().item() - 1.0) < 0.05


def test_loss_is_the_mean_over_timestep_draws_of_the_denoising_mse():
    head = make(num_timesteps_per_token=3)
    hidden, target = torch.randn(2, 5, H), torch.randn(2, 5, C)
    loss = head.loss(hidden, target, generator=gen(7))
    # Reproduce the draws (timesteps first, then noise) and evaluate the public denoiser row by row.
    g = gen(7)
    t = torch.randint(0, 1000, (3, 10), generator=g)
    noise = torch.randn(3, 10, C, generator=g)
    ab = diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2").alphas_cumprod.double()
    x0 = target.reshape(1, 10, C)
    a, s = ab[t].sqrt().float()[..., None], (1 - ab[t]).sqrt().float()[..., None]
    pred = head(a * x0 + s * noise, t, hidden.reshape(1, 10, H).expand(3, 10, H))
    expected = (pred - noise).square().mean(dim=(0, 2)).reshape(2, 5)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_prediction_types_train(prediction_type):
    head = make(prediction_type=prediction_type).train()
    loss = head.loss(torch.randn(3, H), torch.randn(3, C), generator=gen())
    loss.mean().backward()
    assert torch.isfinite(loss).all() and all(p.grad is not None for p in head.parameters())


@pytest.mark.parametrize(
    "scheduler", ["ddpm", "ddim", "EulerDiscreteScheduler", "DPMSolverMultistepScheduler", "PNDMScheduler"]
)
def test_every_scheduler_samples_finite_values(scheduler):
    head = make()
    hidden = torch.randn(3, 4, H)
    a = head.sample(hidden, generator=gen(), scheduler=scheduler, num_inference_steps=6)
    b = make().sample(hidden, generator=gen(), scheduler=scheduler, num_inference_steps=6)
    assert a.shape == (3, 4, C) and torch.isfinite(a).all()
    assert torch.equal(a, b)  # deterministic given the generator
    swapped = DiffusionMLPHead.from_config(head.config, scheduler=scheduler)  # the config-level swap
    swapped.load_state_dict(head.state_dict())
    assert torch.equal(swapped.eval().sample(hidden, generator=gen(), num_inference_steps=6), a)


def test_invalid_scheduler_configs_are_refused():
    with pytest.raises(ValueError, match="unknown scheduler"):
        DiffusionMLPHead(**TINY, scheduler="no_such_scheduler")
    with pytest.raises(ValueError, match="not a DDPM-family"):
        DiffusionMLPHead(**TINY, scheduler="FlowMatchEulerDiscreteScheduler")
    with pytest.raises(ValueError, match="on the head itself"):
        DiffusionMLPHead(**TINY, scheduler_config={"prediction_type": "v_prediction"})
    with pytest.raises(ValueError, match="does not accept"):
        DiffusionMLPHead(**TINY, scheduler="ddim", scheduler_config={"variance_type": "fixed_large"})
    with pytest.raises(ValueError, match="adaln"):
        DiffusionMLPHead(**TINY, adaln="cross")
    with pytest.raises(ValueError, match="prediction_type"):
        DiffusionMLPHead(**TINY, prediction_type="flow")
    with pytest.raises(ValueError, match="takes no eta"):
        make().sample(torch.randn(2, H), scheduler="ddpm", eta=0.5)


@pytest.mark.filterwarnings("ignore:DiffusionMLPHead. timestep_spacing")
@pytest.mark.parametrize(
    ("scheduler", "prediction_type", "eta", "temperature", "spacing"),
    [
        ("ddpm", "epsilon", 0.0, 1.0, "leading"),
        ("ddpm", "epsilon", 0.0, 1.0, "trailing"),
        ("ddpm", "v_prediction", 0.0, 1.0, "linspace"),
        ("ddpm", "sample", 0.0, 1.0, "leading"),
        ("ddim", "epsilon", 0.0, 0.7, "leading"),
        ("ddim", "v_prediction", 0.0, 1.0, "trailing"),
        ("ddim", "epsilon", 0.6, 1.0, "leading"),
    ],
)
def test_fused_loop_equals_scheduler_step(scheduler, prediction_type, eta, temperature, spacing):
    config = {
        "prediction_type": prediction_type,
        "scheduler": scheduler,
        "scheduler_config": {"timestep_spacing": spacing},
    }
    head, reference = make(**config), without_fused_path(make(**config))
    hidden = torch.randn(64, H)
    kwargs = {"temperature": temperature, "num_inference_steps": 20, "eta": eta}
    fast = head.sample(hidden, generator=gen(3), **kwargs)
    slow = reference.sample(hidden, generator=gen(3), **kwargs)
    assert head._fused_steps(head._make_scheduler(), 20, eta) is not None
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-4)


def test_fused_loop_falls_back_for_clipping_schedulers():
    head = make(scheduler_config={"clip_sample": True})
    assert head._fused_steps(head._make_scheduler(), 10, 0.0) is None
    sample = head.sample(torch.randn(8, H), generator=gen())
    assert sample.abs().max() <= 1.0 + 1e-6  # diffusers clipped x0 each step, so the result stays in range


def test_guidance_scale_one_is_the_conditional_sample():
    head, hidden = make(), torch.randn(2, 3, H)
    cond = head.sample(hidden, generator=gen(1))
    guided = head.sample(hidden, generator=gen(1), guidance_scale=1.0, uncond_hidden=torch.zeros(H))
    assert torch.equal(cond, guided)
    with pytest.raises(ValueError, match="uncond_hidden"):
        head.sample(hidden, guidance_scale=3.0)


@pytest.mark.parametrize("scheduler", ["ddpm", "EulerDiscreteScheduler"])
def test_batched_guidance_equals_two_separate_passes(scheduler):
    head, hidden, uncond = make(scheduler=scheduler), torch.randn(6, H), torch.randn(H)
    fast = head.sample(hidden, generator=gen(2), guidance_scale=3.0, uncond_hidden=uncond, num_inference_steps=10)
    # Reference: the loop written with diffusers, one network call per branch.
    sched = head._make_scheduler()
    sched.set_timesteps(10)
    g = gen(2)
    x = torch.randn(6, C, generator=g) * sched.init_noise_sigma
    with torch.no_grad():
        for t in sched.timesteps:
            xin = sched.scale_model_input(x, t)
            c, u = head(xin, t, hidden), head(xin, t, uncond.expand(6, H))
            x = sched.step(u + 3.0 * (c - u), t, x, generator=g).prev_sample
    torch.testing.assert_close(fast, x, rtol=1e-4, atol=1e-4)


def test_uncond_hidden_must_broadcast():
    head = make()
    with pytest.raises(ValueError, match="does not broadcast"):
        head.sample(torch.randn(2, 3, H), guidance_scale=2.0, uncond_hidden=torch.randn(4, H))
    with pytest.raises(ValueError, match="hidden_size"):
        head.sample(torch.randn(2, 3, H), guidance_scale=2.0, uncond_hidden=torch.randn(H + 1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_head_with_a_cpu_generator_matches_cpu():
    """Noise is drawn on the generator's device and moved, so a CPU seed reproduces the CPU result on CUDA."""
    head, hidden, target = make(), torch.randn(8, H), torch.randn(8, C)
    cpu_sample, cpu_loss = head.sample(hidden, generator=gen()), head.loss(hidden, target, generator=gen())
    head.to("cuda")
    sample = head.sample(hidden.to("cuda"), generator=gen(), guidance_scale=1.0)
    loss = head.loss(hidden.to("cuda"), target.to("cuda"), generator=gen())
    assert sample.device.type == "cuda" and loss.device.type == "cuda"
    torch.testing.assert_close(sample.cpu(), cpu_sample, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(loss.cpu(), cpu_loss, rtol=1e-3, atol=1e-4)


def test_sampling_is_deterministic_given_a_generator():
    head, hidden = make(), torch.randn(4, H)
    assert torch.equal(head.sample(hidden, generator=gen(5)), head.sample(hidden, generator=gen(5)))
    assert not torch.equal(head.sample(hidden, generator=gen(5)), head.sample(hidden, generator=gen(6)))
    target = torch.randn(4, C)
    assert torch.equal(head.loss(hidden, target, generator=gen(5)), head.loss(hidden, target, generator=gen(5)))


def test_temperature_zero_makes_ddim_deterministic():
    head, hidden = make(scheduler="ddim"), torch.randn(4, H)
    a = head.sample(hidden, temperature=0.0, generator=gen(1))
    b = head.sample(hidden, temperature=0.0, generator=gen(2))
    assert torch.equal(a, b)


def test_nll_is_not_defined():
    with pytest.raises(NotImplementedError, match="diffusion_mlp defines no exact density"):
        make().nll(torch.randn(2, H), torch.randn(2, C))


def test_save_load_roundtrip_keeps_config_and_samples(tmp_path):
    head = make(
        adaln="joint",
        prediction_type="v_prediction",
        scheduler="ddim",
        scheduler_config={"timestep_spacing": "trailing"},
    )
    head.save_pretrained(tmp_path)
    loaded = DiffusionMLPHead.from_pretrained(tmp_path)
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(loaded.config) == public(head.config)
    hidden = torch.randn(3, H)
    assert torch.equal(head.sample(hidden, generator=gen()), loaded.sample(hidden, generator=gen()))
    assert torch.equal(
        head.loss(hidden, torch.ones(3, C), generator=gen()), loaded.loss(hidden, torch.ones(3, C), generator=gen())
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=3),
    target_scale=st.sampled_from([0.0, 1e-6, 1.0, 1e2, 1e4]),
    hidden_scale=st.sampled_from([0.0, 1e-6, 1.0, 1e2, 1e4]),
    prediction_type=st.sampled_from(["epsilon", "v_prediction", "sample"]),
    adaln=st.sampled_from(["separable", "joint", "nova"]),
    seed=st.integers(0, 2**16),
)
def test_loss_and_gradients_stay_finite(lead, target_scale, hidden_scale, prediction_type, adaln, seed):
    head = make(seed=seed % 7, prediction_type=prediction_type, adaln=adaln).train()
    g = gen(seed)
    hidden = torch.randn(*lead, H, generator=g) * hidden_scale
    target = torch.randn(*lead, C, generator=g) * target_scale
    hidden.requires_grad_(True)
    loss = head.loss(hidden, target, generator=g)
    assert loss.shape == tuple(lead) and torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(hidden.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())


@functools.cache
def fit_bimodal() -> DiffusionMLPHead:
    """A head fitted (200 Adam steps) to a fixed hidden state whose token is (2, 2) or (-2, -2), equally likely."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only add contention
    try:
        return _fit_bimodal()
    finally:
        torch.set_num_threads(threads)


def _fit_bimodal() -> DiffusionMLPHead:
    torch.manual_seed(0)
    head = DiffusionMLPHead(hidden_size=8, token_dim=2, width=64, depth=2)
    optimizer = torch.optim.Adam(head.parameters(), lr=2e-3)
    g = gen(0)
    hidden = torch.randn(8, generator=g).expand(256, 8)
    for _ in range(200):
        sign = torch.randint(0, 2, (256, 1), generator=g).float() * 2 - 1
        loss = head.loss(hidden, sign * torch.full((256, 2), 2.0), generator=g).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    head.bimodal_hidden = hidden[0]
    return head.eval()


def mode_fractions(samples: torch.Tensor) -> tuple[float, float]:
    near = lambda mode: ((samples - mode).norm(dim=-1) < 1).float().mean().item()  # noqa: E731
    return near(2.0), near(-2.0)


@pytest.mark.slow
def test_fits_a_bimodal_target_with_both_modes():
    """The thesis of the head: one hidden state, two modes at ±2: samples land in both, none between."""
    head = fit_bimodal()
    samples = head.sample(head.bimodal_hidden.expand(2000, 8), generator=gen(1), num_inference_steps=50)
    plus, minus = mode_fractions(samples)
    assert 0.3 < plus < 0.7 and 0.3 < minus < 0.7, (plus, minus)
    assert 1 - plus - minus < 0.05  # few samples between the modes (an L2 head would put all at 0)


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["ddim", "EulerDiscreteScheduler", "DPMSolverMultistepScheduler"])
def test_swapped_schedulers_sample_the_fitted_modes(scheduler):
    """Swapping the sampler after training keeps both modes (with the head's default 'leading' spacing)."""
    head = fit_bimodal()
    swapped = DiffusionMLPHead.from_config(head.config, scheduler=scheduler)
    swapped.load_state_dict(head.state_dict())
    samples = swapped.eval().sample(head.bimodal_hidden.expand(2000, 8), generator=gen(1), num_inference_steps=20)
    plus, minus = mode_fractions(samples)
    assert 0.3 < plus < 0.7 and 0.3 < minus < 0.7 and plus + minus > 0.95, (plus, minus)


def test_epsilon_with_a_spacing_that_starts_at_the_last_step_warns():
    with pytest.warns(UserWarning, match="ill-conditioned"):
        DiffusionMLPHead(**TINY, scheduler_config={"timestep_spacing": "trailing"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DiffusionMLPHead(**TINY, prediction_type="v_prediction", scheduler_config={"timestep_spacing": "trailing"})


@pytest.mark.parametrize(
    ("scheduler", "eta", "scheduler_config"),
    [
        ("ddpm", 0.0, None),  # fused DDPM: used to keep a random x_T (two seeds differed by up to 8.3)
        ("ddim", 0.6, None),  # fused stochastic DDIM
        ("ddim", 0.6, {"clip_sample": True}),  # generic loop: step noise zeroed through variance_noise
        ("EulerDiscreteScheduler", 0.0, None),  # generic deterministic sampler
    ],
)
def test_temperature_zero_is_deterministic_with_every_sampler(scheduler, eta, scheduler_config):
    """Temperature 0 starts at x_T = 0 and adds no noise: every seed gives the same token."""
    head, hidden = make(scheduler=scheduler, scheduler_config=scheduler_config), torch.randn(4, H)
    # Non-zero weights, so that the denoiser's prediction is not identically zero.
    with torch.no_grad():
        for p in head.parameters():
            p.add_(torch.randn(p.shape, generator=gen(9)) * 0.05)
    a = head.sample(hidden, temperature=0.0, generator=gen(1), eta=eta)
    b = head.sample(hidden, temperature=0.0, generator=gen(2), eta=eta)
    assert torch.equal(a, b) and torch.isfinite(a).all()
    assert not torch.equal(a, head.sample(hidden, temperature=1.0, generator=gen(1), eta=eta))


def test_temperature_zero_draws_nothing_from_the_generator():
    g = gen(4)
    make().sample(torch.randn(3, H), temperature=0.0, generator=g)
    assert torch.equal(g.get_state(), gen(4).get_state())


def test_temperature_zero_refuses_a_scheduler_that_adds_its_own_noise():
    head = make(scheduler="EulerAncestralDiscreteScheduler")
    head.sample(torch.randn(2, H), temperature=0.5, generator=gen())  # fine with temperature > 0
    with pytest.raises(ValueError, match="temperature=0 must be deterministic"):
        head.sample(torch.randn(2, H), temperature=0.0, generator=gen())


# ---------------------------------------------------------------------------------------------- flow matching
FLOW = {"prediction_type": "flow_prediction", "scheduler": "flow_euler"}


def exact_flow_head(scale: float, **overrides) -> DiffusionMLPHead:
    """A flow head whose network is replaced by the exact velocity field of the target ``N(μ, scale²)`` per channel.

    ``μ`` is read from the first ``token_dim`` channels of each hidden state. For ``x ~ N(μ, s²)`` and
    ``x_σ = (1 − σ)·x + σ·ε`` (a = 1 − σ, V = a²s² + σ²), ``E[ε − x | x_σ = y] = (σ − a·s²)/V·(y − a·μ) − μ``,
    whose ODE maps ``x_1`` to ``μ + s·x_1`` exactly. Only the network is replaced: the σ grid, the Euler
    steps, temperature and guidance are the head's own.
    """
    head = make(**FLOW, **overrides)
    steps = head.config.num_train_timesteps
    head._condition = lambda hidden: hidden.float()
    head._time = lambda t: t.float() / steps  # the network's timestep input is σ · num_train_timesteps
    head._modulation = lambda cond, sigma: (cond[:, :C], sigma)

    def velocity(x, modulation):
        mean, sigma = modulation
        a = 1 - sigma
        return (sigma - a * scale**2) / (a**2 * scale**2 + sigma**2) * (x - a * mean) - mean

    head._trunk = velocity
    return head


def test_flow_loss_is_the_velocity_mse_at_per_token_logit_normal_sigmas():
    """Each token and each of its draws gets its own σ; the loss is the MSE of the velocity ε − x (hand computed)."""
    head = make(**FLOW, num_timesteps_per_token=3, flow_shift=3.0, flow_logit_mean=0.5, flow_logit_std=0.8)
    hidden, target = torch.randn(2, 5, H), torch.randn(2, 5, C)
    loss = head.loss(hidden, target, generator=gen(7))
    g = gen(7)  # σ first, then the noise
    sigma = torch.sigmoid(0.5 + 0.8 * torch.randn(3, 10, generator=g))
    sigma = 3 * sigma / (1 + 2 * sigma)  # the shift
    noise = torch.randn(3, 10, C, generator=g)
    x = target.reshape(1, 10, C)
    noisy = (1 - sigma[..., None]) * x + sigma[..., None] * noise
    pred = head(noisy, sigma * 1000, hidden.reshape(1, 10, H).expand(3, 10, H))
    expected = (pred - (noise - x)).square().mean(dim=(0, 2)).reshape(2, 5)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert sigma.unique().numel() == 30  # per token and per draw
    # An untrained (zero-output) head scores E[(ε − x)²] = 1 + x² per channel, whatever σ.
    untrained = DiffusionMLPHead(**TINY, **FLOW)
    loss = untrained.loss(torch.randn(4096, H), torch.full((4096, C), 2.0), generator=gen())
    assert abs(loss.mean().item() - 5.0) < 0.1


@pytest.mark.parametrize(("mean", "std", "shift"), [(0.0, 1.0, 1.0), (0.5, 0.8, 1.0), (-0.3, 1.2, 3.0)])
def test_flow_training_sigmas_are_logit_normal_then_shifted(mean, std, shift):
    head = make(**FLOW, flow_logit_mean=mean, flow_logit_std=std, flow_shift=shift)
    sigma = head._flow_sigmas((200_000,), gen(1), "cpu").double()
    assert sigma.min() > 0 and sigma.max() < 1
    unshifted = sigma / (shift - (shift - 1) * sigma)  # the inverse of σ' = shift·σ / (1 + (shift − 1)·σ)
    logit = torch.logit(unshifted)
    assert abs(logit.mean().item() - mean) < 0.01 and abs(logit.std().item() - std) < 0.01
    median = torch.sigmoid(torch.tensor(mean)).item()
    assert abs(sigma.median().item() - shift * median / (1 + (shift - 1) * median)) < 0.01


def test_flow_euler_sampler_follows_diffusers_grid_and_steps():
    """head.sample == x ← x + (σ_{k+1} − σ_k)·v on FlowMatchEulerDiscreteScheduler's shifted grid, ending at σ = 0."""
    head, hidden = make(**FLOW, flow_shift=3.0), torch.randn(6, H)
    sample = head.sample(hidden, generator=gen(2), temperature=0.7, num_inference_steps=10)
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(10)
    assert sched.sigmas[0] == 1 and sched.sigmas[-1] == 0 and len(sched.sigmas) == 11
    x = torch.randn(6, C, generator=gen(2)) * 0.7
    with torch.no_grad():
        for k in range(10):
            x = x + (sched.sigmas[k + 1] - sched.sigmas[k]) * head(x, sched.sigmas[k] * 1000, hidden)
    torch.testing.assert_close(sample, x, rtol=1e-5, atol=1e-5)


def test_flow_batched_guidance_equals_two_separate_passes():
    head, hidden, uncond = make(**FLOW, flow_shift=2.0), torch.randn(6, H), torch.randn(H)
    fast = head.sample(hidden, generator=gen(2), guidance_scale=3.0, uncond_hidden=uncond, num_inference_steps=10)
    sched = head._make_scheduler()
    sched.set_timesteps(10)
    x = torch.randn(6, C, generator=gen(2))
    with torch.no_grad():
        for t in sched.timesteps:
            c, u = head(x, t, hidden), head(x, t, uncond.expand(6, H))
            x = sched.step(u + 3.0 * (c - u), t, x).prev_sample
    torch.testing.assert_close(fast, x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_euler_with_the_exact_velocity_transports_noise_to_a_gaussian_target(shift):
    """Closed form, no training: the exact flow of N(μ, s²) maps x_1 to μ + s·x_1; Euler converges to it."""
    mu, scale = torch.tensor([2.0, -1.0, 0.5, 0.0]), 0.5
    hidden = torch.cat([mu, torch.zeros(H - C)]).expand(20_000, H)
    head = exact_flow_head(scale, flow_shift=shift)
    x1 = torch.randn(20_000, C, generator=gen(0))
    errors = {}
    for steps in (10, 100):
        sample = head.sample(hidden, generator=gen(0), num_inference_steps=steps)
        errors[steps] = (sample - (mu + scale * x1)).abs().max().item()
    assert errors[100] < 0.1 and errors[100] < errors[10] / 5, errors  # first-order convergence (max over 20k)
    sample = head.sample(hidden, generator=gen(0), num_inference_steps=100)
    torch.testing.assert_close(sample.mean(0), mu, atol=0.02, rtol=0)
    torch.testing.assert_close(sample.std(0), torch.full((C,), scale), atol=0.02, rtol=0)
    # Temperature scales the initial noise: N(μ, τ²s²) for a Gaussian target; τ = 0 gives μ exactly, drawing nothing.
    cool = head.sample(hidden, generator=gen(0), num_inference_steps=100, temperature=0.5)
    torch.testing.assert_close(cool.std(0), torch.full((C,), 0.5 * scale), atol=0.02, rtol=0)
    g = gen(4)
    cold = head.sample(hidden[:3], generator=g, temperature=0.0, num_inference_steps=7)
    torch.testing.assert_close(cold, mu.expand(3, C), atol=1e-5, rtol=0)
    assert torch.equal(g.get_state(), gen(4).get_state())


def test_flow_guidance_combines_velocities():
    """With exact fields of N(μ_c, s²) and N(μ_u, s²), u + w·(c − u) is the field of N(μ_u + w·(μ_c − μ_u), s²)."""
    mu_c, mu_u, w = torch.tensor([1.0, -1.0, 0.5, 2.0]), torch.tensor([0.0, 0.5, 0.5, -1.0]), 3.0
    head = exact_flow_head(0.5)
    pad = torch.zeros(H - C)
    hidden, uncond = torch.cat([mu_c, pad]).expand(2, H), torch.cat([mu_u, pad])
    out = head.sample(hidden, temperature=0.0, guidance_scale=w, uncond_hidden=uncond, num_inference_steps=5)
    torch.testing.assert_close(out, (mu_u + w * (mu_c - mu_u)).expand(2, C), atol=1e-5, rtol=0)


@pytest.mark.parametrize("scheduler", ["flow_euler", "flow_heun", "FlowMatchEulerDiscreteScheduler"])
@pytest.mark.parametrize("lead", [(), (2, 3), (0, 4)])
def test_flow_shapes_determinism_and_temperature_zero(scheduler, lead):
    head, hidden = make(**{**FLOW, "scheduler": scheduler}), torch.randn(*lead, H)
    loss = head.loss(hidden, torch.randn(*lead, C), generator=gen())
    assert loss.shape == lead and loss.dtype == torch.float32 and torch.isfinite(loss).all()
    a = head.sample(hidden, generator=gen(5))
    assert a.shape == (*lead, C) and torch.isfinite(a).all()
    assert torch.equal(a, head.sample(hidden, generator=gen(5)))
    if hidden.numel():
        assert not torch.equal(a, head.sample(hidden, generator=gen(6)))
    g = gen(4)
    cold = head.sample(hidden, temperature=0.0, generator=g)
    assert torch.equal(cold, head.sample(hidden, temperature=0.0, generator=gen(9)))
    assert torch.equal(g.get_state(), gen(4).get_state())


@pytest.mark.parametrize("adaln", ["separable", "joint", "nova"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_flow_gradients_reach_every_parameter(adaln, dtype):
    head = make(**FLOW, adaln=adaln).to(dtype).train()
    hidden = (torch.randn(4, 3, H) * 100).to(dtype).requires_grad_(True)
    loss = head.loss(hidden, torch.randn(4, 3, C, dtype=dtype) * 100, generator=gen())
    loss.mean().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(hidden.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())


def test_flow_save_load_keeps_the_mode(tmp_path):
    head = make(**FLOW, flow_shift=3.0, flow_logit_mean=0.2, flow_logit_std=0.9, scheduler_config={"shift": 2.0})
    head.save_pretrained(tmp_path)
    loaded = DiffusionMLPHead.from_pretrained(tmp_path)
    assert loaded.config.prediction_type == "flow_prediction" and loaded.config.flow_shift == 3.0
    assert loaded.config.flow_logit_mean == 0.2 and loaded.config.flow_logit_std == 0.9
    hidden, target = torch.randn(3, H), torch.randn(3, C)
    assert torch.equal(head.sample(hidden, generator=gen()), loaded.sample(hidden, generator=gen()))
    assert torch.equal(head.loss(hidden, target, generator=gen()), loaded.loss(hidden, target, generator=gen()))


def test_configs_saved_without_the_flow_keys_load_the_ddpm_head(tmp_path):
    head = make()
    head.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key in ("flow_shift", "flow_logit_mean", "flow_logit_std"):
        del config[key]  # as written before the flow mode existed
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = DiffusionMLPHead.from_pretrained(tmp_path)
    assert loaded.config.prediction_type == "epsilon" and loaded.config.flow_shift == 1.0
    hidden = torch.randn(3, H)
    assert torch.equal(head.sample(hidden, generator=gen()), loaded.sample(hidden, generator=gen()))


def test_invalid_flow_configs_are_refused():
    with pytest.raises(ValueError, match="scheduler 'ddpm' does not fit prediction_type='flow_prediction'"):
        DiffusionMLPHead(**TINY, prediction_type="flow_prediction")
    with pytest.raises(ValueError, match="'EulerDiscreteScheduler' does not fit"):
        DiffusionMLPHead(**TINY, prediction_type="flow_prediction", scheduler="EulerDiscreteScheduler")
    with pytest.raises(ValueError, match="flow-matching sampler, not a DDPM-family"):
        DiffusionMLPHead(**TINY, scheduler="flow_euler")
    with pytest.raises(ValueError, match="flow_shift must be a finite number > 0"):
        DiffusionMLPHead(**TINY, **FLOW, flow_shift=0.0)
    with pytest.raises(ValueError, match="flow_shift"):
        DiffusionMLPHead(**TINY, **FLOW, flow_shift=float("inf"))
    with pytest.raises(ValueError, match="flow_logit_std must be a finite number > 0"):
        DiffusionMLPHead(**TINY, **FLOW, flow_logit_std=0.0)
    with pytest.raises(ValueError, match="flow_logit_mean"):
        DiffusionMLPHead(**TINY, **FLOW, flow_logit_mean=float("nan"))
    with pytest.raises(TypeError, match="flow_shift"):
        DiffusionMLPHead(**TINY, **FLOW, flow_shift="3")
    with pytest.raises(ValueError, match=r"\['flow_logit_std', 'flow_shift'\] apply only to"):
        DiffusionMLPHead(**TINY, flow_shift=3.0, flow_logit_std=2.0)
    with pytest.raises(ValueError, match="beta_schedule='linear' has no effect"):
        DiffusionMLPHead(**TINY, **FLOW, beta_schedule="linear")
    with pytest.raises(ValueError, match=r"scheduler_config\['shift'\] must be a finite number > 0"):
        DiffusionMLPHead(**TINY, **FLOW, scheduler_config={"shift": -1.0})
    with pytest.raises(ValueError, match="use_dynamic_shifting"):
        DiffusionMLPHead(**TINY, **FLOW, scheduler_config={"use_dynamic_shifting": True})
    with pytest.raises(ValueError, match="on the head itself"):
        DiffusionMLPHead(**TINY, **FLOW, scheduler_config={"num_train_timesteps": 100})
    with pytest.raises(ValueError, match="does not accept"):
        DiffusionMLPHead(**TINY, **FLOW, scheduler_config={"timestep_spacing": "leading"})
    head = make(**FLOW)
    with pytest.raises(ValueError, match="'ddim' does not fit"):
        head.sample(torch.randn(2, H), scheduler="ddim")
    with pytest.raises(ValueError, match="takes no eta"):
        head.sample(torch.randn(2, H), eta=0.5)


@functools.cache
def fit_flow(bimodal: bool) -> tuple[DiffusionMLPHead, torch.Tensor]:
    """A flow head fitted with Adam: one hidden state with modes (2, 2) and (−2, −2), or two hidden states whose
    tokens are N((1.5, 1.5), 0.3²) and N((−1, 0.5), 0.5²)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        head = DiffusionMLPHead(hidden_size=8, token_dim=2, width=64, depth=2, **FLOW)
        optimizer = torch.optim.Adam(head.parameters(), lr=2e-3)
        g = gen(0)
        states = torch.randn(2, 8, generator=g)
        mean, std = torch.tensor([[1.5, 1.5], [-1.0, 0.5]]), torch.tensor([0.3, 0.5])
        for _ in range(200 if bimodal else 150):
            pick = torch.randint(0, 2, (256,), generator=g)
            if bimodal:
                hidden, target = states[0].expand(256, 8), (pick[:, None].float() * 4 - 2).expand(256, 2)
            else:
                hidden, target = states[pick], mean[pick] + std[pick, None] * torch.randn(256, 2, generator=g)
            loss = head.loss(hidden, target, generator=g).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return head.eval(), states
    finally:
        torch.set_num_threads(threads)


def test_flow_matching_learns_a_conditional_gaussian():
    """The flow sampler reaches the target: per hidden state, the sample mean and std match the training data."""
    head, states = fit_flow(bimodal=False)
    for state, mean, std in zip(states, ([1.5, 1.5], [-1.0, 0.5]), (0.3, 0.5)):
        samples = head.sample(state.expand(2000, 8), generator=gen(1), num_inference_steps=25)
        torch.testing.assert_close(samples.mean(0), torch.tensor(mean), atol=0.1, rtol=0)
        torch.testing.assert_close(samples.std(0), torch.full((2,), std), atol=0.08, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize(("scheduler", "steps"), [("flow_euler", 25), ("flow_heun", 10)])
def test_flow_matching_fits_both_modes_of_a_bimodal_target(scheduler, steps):
    head, states = fit_flow(bimodal=True)
    swapped = DiffusionMLPHead.from_config(head.config, scheduler=scheduler)
    swapped.load_state_dict(head.state_dict())
    samples = swapped.eval().sample(states[0].expand(2000, 8), generator=gen(1), num_inference_steps=steps)
    plus, minus = mode_fractions(samples)
    assert 0.3 < plus < 0.7 and 0.3 < minus < 0.7 and plus + minus > 0.95, (plus, minus)


def test_nova_blocks_close_their_branch_with_a_layer_norm():
    """adaln="nova": scaling a block's last linear layer leaves the output unchanged (LN(a·y) = LN(y), a > 0),
    while the same change moves MAR's (joint) head; and it is the joint conditioning with a two-layer
    condition projector."""
    outputs = {}
    for adaln in ("joint", "nova"):
        torch.manual_seed(0)
        head = DiffusionMLPHead(**TINY, adaln=adaln).eval()
        with torch.no_grad():
            for p in head.parameters():
                p.normal_(0, 0.3)
        x, t, h = torch.randn(6, C), torch.arange(6) * 100, torch.randn(6, H)
        with torch.no_grad():
            before = head(x, t, h)
            head.blocks[0].fc2.weight.mul_(7.0)
            head.blocks[0].fc2.bias.mul_(7.0)
            outputs[adaln] = (before, head(x, t, h))
    torch.testing.assert_close(*outputs["nova"], atol=1e-3, rtol=1e-3)
    assert (outputs["joint"][0] - outputs["joint"][1]).abs().max() > 0.1
    nova = DiffusionMLPHead(**TINY, adaln="nova")
    assert isinstance(nova.cond_embed, torch.nn.Sequential) and len(nova.cond_embed) == 3
    assert all(block.post_norm is not None for block in nova.blocks)
    assert all(block.post_norm is None for block in DiffusionMLPHead(**TINY, adaln="joint").blocks)
