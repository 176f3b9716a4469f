"""Behaviour of the continuous heads (l2, gaussian, gmm): real densities, faithful samplers, stable numerics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributions as D
from hypothesis import given, settings
from hypothesis import strategies as st

import vidtok
from vidtok.heads import GaussianHead, GMMHead, L2Head

CONTINUOUS = ["l2", "gaussian", "gmm"]
HIDDEN = 8


def make(name: str, token_dim: int = 3, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    kwargs.setdefault("mlp_width", 16)
    if name == "gmm":
        kwargs.setdefault("num_components", 3)
    return vidtok.HEADS.create(name, hidden_size=HIDDEN, token_dim=token_dim, **kwargs)


def spread_weights(head, seed: int = 0, scale: float = 1.0) -> None:
    """Replace the 0.02-std init by O(1) weights so means, variances and weights differ visibly."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale / math.sqrt(max(p.shape[-1], 1)))


def fixed_params(head, bias: torch.Tensor):
    """Make the head ignore its input: zero every weight, put the distribution parameters in the last bias."""
    with torch.no_grad():
        for p in head.parameters():
            p.zero_()
        head.proj.bias.copy_(bias)
    return head


def gmm_bias(means, raw, logits):
    return torch.cat([torch.as_tensor(means).flatten(), torch.as_tensor(raw).flatten(), torch.as_tensor(logits)])


def reference_gmm(head, hidden):
    means, variances, logits = head.split_params(head(hidden))
    components = D.Independent(D.Normal(means, variances.sqrt()), 1)
    return D.MixtureSameFamily(D.Categorical(logits=logits), components)


# ------------------------------------------------------------------------------------------- exact densities
def test_gmm_projection_is_one_layer_of_dicode_width():
    head = GMMHead(hidden_size=HIDDEN, token_dim=1024, num_components=16, mlp_layers=1)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert linears == [head.proj]
    assert head.proj.out_features == 16 * 1024 * 2 + 16 == 32784


@pytest.mark.parametrize("variance_floor", [1e-5, 0.3])
def test_gmm_nll_and_gradients_match_torch_distributions(variance_floor):
    # With a floor of 0.3 many variances are clamped where softplus still has a large slope, so the
    # clamp's zero gradient must be reproduced; the -40 biases push a few far below any floor.
    head = make("gmm", token_dim=5, num_components=4, variance_floor=variance_floor)
    spread_weights(head, scale=2.0)
    with torch.no_grad():
        head.proj.bias[20:24] = -40.0
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(3, 7, HIDDEN, generator=gen)
    target = 2 * torch.randn(3, 7, 5, generator=gen)

    ours = head.nll(hidden, target)
    grads = torch.autograd.grad(ours.sum(), list(head.parameters()))
    theirs = -reference_gmm(head, hidden).log_prob(target)
    ref_grads = torch.autograd.grad(theirs.sum(), list(head.parameters()))

    assert ours.dtype == torch.float32 and ours.shape == (3, 7)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_gmm_target_gradient_matches_torch_distributions():
    head = make("gmm", token_dim=4)
    spread_weights(head)
    hidden = torch.randn(6, HIDDEN)
    target = torch.randn(6, 4, requires_grad=True)
    (g_ours,) = torch.autograd.grad(head.nll(hidden, target).sum(), target)
    (g_ref,) = torch.autograd.grad(-reference_gmm(head, hidden).log_prob(target).sum(), target)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-4, atol=1e-5)


def test_gaussian_nll_matches_torch_normal():
    head = make("gaussian", token_dim=5)
    spread_weights(head, scale=2.0)
    hidden, target = torch.randn(4, 2, HIDDEN), torch.randn(4, 2, 5)
    mean, variance = head.split_params(head(hidden))
    reference = -D.Independent(D.Normal(mean, variance.sqrt()), 1).log_prob(target)
    torch.testing.assert_close(head.nll(hidden, target), reference, rtol=1e-5, atol=1e-5)


def test_l2_nll_is_a_fixed_variance_gaussian():
    head = make("l2", token_dim=5, sigma=0.5)
    hidden, target = torch.randn(4, HIDDEN), torch.randn(4, 5)
    reference = -D.Independent(D.Normal(head(hidden), 0.5), 1).log_prob(target)
    torch.testing.assert_close(head.nll(hidden, target), reference)


@pytest.mark.parametrize("name", CONTINUOUS)
def test_loss_reduction_per_dimension_or_per_token(name):
    hidden, target = torch.randn(2, 3, HIDDEN), torch.randn(2, 3, 3)
    mean_head, sum_head = make(name), make(name, loss_reduction="sum")
    mean_loss, sum_loss = mean_head.loss(hidden, target), sum_head.loss(hidden, target)
    assert mean_loss.shape == (2, 3) and mean_loss.dtype == torch.float32
    torch.testing.assert_close(sum_loss, 3 * mean_loss)
    if name == "l2":
        torch.testing.assert_close(mean_loss, (mean_head(hidden) - target).square().mean(-1))
    else:
        torch.testing.assert_close(sum_loss, sum_head.nll(hidden, target))


def _density_head(name: str, token_dim: int):
    """A head with input-independent, visibly non-standard parameters (variances 0.13 .. 1.3)."""
    if name == "l2":
        return fixed_params(
            make(name, token_dim=token_dim, mlp_layers=1, sigma=0.7), torch.tensor([0.4, -0.3])[:token_dim]
        )
    if name == "gaussian":
        bias = torch.tensor([0.4, -0.3, 0.3, -0.8])
        return fixed_params(make(name, token_dim=token_dim, mlp_layers=1), bias.view(2, 2)[:, :token_dim].flatten())
    means = torch.tensor([[-2.5, 1.0], [0.5, -1.5], [2.0, 2.0]])[:, :token_dim]
    raw = torch.tensor([[-1.0, 0.2], [0.5, -0.5], [-2.0, 1.0]])[:, :token_dim]
    head = make(name, token_dim=token_dim, mlp_layers=1, num_components=3)
    return fixed_params(head, gmm_bias(means, raw, torch.tensor([0.3, -0.4, 0.1])))


@pytest.mark.parametrize("token_dim", [1, 2])
@pytest.mark.parametrize("name", CONTINUOUS)
def test_exp_minus_nll_integrates_to_one(name, token_dim):
    head = _density_head(name, token_dim)
    step = 0.005 if token_dim == 1 else 0.04
    axis = torch.arange(-9.0, 9.0, step) + step / 2  # midpoint rule
    grid = torch.cartesian_prod(*[axis] * token_dim).reshape(-1, token_dim)
    with torch.no_grad():
        density = torch.exp(-head.nll(torch.zeros(len(grid), HIDDEN), grid))
    assert abs(float(density.sum()) * step**token_dim - 1.0) < 1e-3


@pytest.mark.parametrize("name", ["gaussian", "gmm"])
def test_sample_histogram_matches_the_density(name):
    head = _density_head(name, 1)
    n = 200_000
    with torch.no_grad():
        samples = head.sample(torch.zeros(n, HIDDEN), generator=torch.Generator().manual_seed(0)).squeeze(-1)
        edges = torch.arange(-8.0, 8.0 + 1e-6, 0.2)
        fine = torch.arange(-8.0, 8.0, 0.002) + 0.001
        density = torch.exp(-head.nll(torch.zeros(len(fine), HIDDEN), fine[:, None])) * 0.002
    expected = density.reshape(len(edges) - 1, -1).sum(-1)
    observed = torch.histogram(samples, bins=edges).hist / n
    total_variation = 0.5 * float((observed - expected).abs().sum())
    assert total_variation < 0.02, total_variation


# ------------------------------------------------------------------------------------------- sampling
def test_gmm_temperature_zero_is_the_mean_of_the_most_likely_component():
    head = _density_head("gmm", 2)  # logits 0.3, -0.4, 0.1 → component 0, mean (-2.5, 1.0)
    token = head.sample(torch.zeros(4, HIDDEN), temperature=0.0)
    torch.testing.assert_close(token, torch.tensor([[-2.5, 1.0]] * 4))


@pytest.mark.parametrize("name", CONTINUOUS)
def test_sample_is_seeded_and_shaped(name):
    head = make(name)
    spread_weights(head)
    hidden = torch.randn(2, 5, HIDDEN)
    a = head.sample(hidden, generator=torch.Generator().manual_seed(3))
    b = head.sample(hidden, generator=torch.Generator().manual_seed(3))
    c = head.sample(hidden, generator=torch.Generator().manual_seed(4))
    assert a.shape == (2, 5, 3) and a.dtype == hidden.dtype
    assert torch.equal(a, b)
    assert torch.equal(a, c) == (name == "l2")  # l2 is the deterministic baseline


def test_gaussian_temperature_and_variance_scale_scale_the_std():
    bias = torch.tensor([1.0, -1.0, math.log(math.expm1(4.0)), math.log(math.expm1(4.0))])  # σ = 2
    hidden = torch.zeros(100_000, HIDDEN)
    for temperature, scale, expected in [(1.0, 1.0, 2.0), (0.5, 1.0, 1.0), (1.0, 0.01, 0.2)]:
        head = fixed_params(make("gaussian", token_dim=2, mlp_layers=1, sample_variance_scale=scale), bias)
        samples = head.sample(hidden, temperature=temperature, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(samples.mean(0), torch.tensor([1.0, -1.0]), atol=0.03, rtol=0)
        torch.testing.assert_close(samples.std(0), torch.full((2,), expected), rtol=0.02, atol=0)
    assert torch.equal(head.sample(hidden[:3], temperature=0.0), torch.tensor([[1.0, -1.0]] * 3))


@pytest.mark.parametrize("temper_logits", [True, False])
def test_gmm_component_choice_follows_tempered_or_raw_weights(temper_logits):
    logits = torch.tensor([0.0, math.log(3.0)])  # weights 1/4, 3/4
    means = torch.tensor([[-5.0], [5.0]])
    head = make("gmm", token_dim=1, mlp_layers=1, num_components=2, temper_logits=temper_logits)
    fixed_params(head, gmm_bias(means, torch.full((2, 1), -10.0), logits))
    samples = head.sample(torch.zeros(40_000, HIDDEN), temperature=0.5, generator=torch.Generator().manual_seed(0))
    right = float((samples > 0).float().mean())
    expected = 9 / 10 if temper_logits else 3 / 4  # softmax(logits / 0.5) = (1/10, 9/10)
    assert abs(right - expected) < 0.01


def test_gmm_guidance_shares_one_component_between_branches():
    """CFG inside the mixture: guided logits pick one component, whose conditional and unconditional means
    are guided; scale 1 is plain sampling, scale 0 (at temperature 0) is the unconditional mode."""
    head = make("gmm", token_dim=2, num_components=3)
    spread_weights(head)
    cond, uncond = torch.randn(6, HIDDEN), torch.randn(6, HIDDEN)
    g = torch.Generator
    plain = head.sample(cond, temperature=0.7, generator=g().manual_seed(1))
    same = head.sample(cond, temperature=0.7, generator=g().manual_seed(1), guidance_scale=1.0, uncond_hidden=uncond)
    assert torch.equal(plain, same)
    torch.testing.assert_close(
        head.sample(cond, temperature=0.0, guidance_scale=0.0, uncond_hidden=uncond),
        head.sample(uncond, temperature=0.0),
    )

    s = 3.0
    mc, _, lc = head.split_params(head(cond))
    mu, _, lu = head.split_params(head(uncond))
    k = (lu + s * (lc - lu)).argmax(-1)
    rows = torch.arange(6)
    expected = mu[rows, k] + s * (mc[rows, k] - mu[rows, k])
    torch.testing.assert_close(head.sample(cond, temperature=0.0, guidance_scale=s, uncond_hidden=uncond), expected)
    # with noise: the guided mean plus the conditional component's std (the same component in both branches)
    draws = head.sample(cond[:1].expand(20_000, -1), temperature=1.0, generator=g().manual_seed(0), guidance_scale=s,
                        uncond_hidden=uncond[:1].expand(20_000, -1))  # fmt: skip
    weights = torch.softmax(lu[0] + s * (lc[0] - lu[0]), -1)
    guided_means = mu[0] + s * (mc[0] - mu[0])
    torch.testing.assert_close(draws.mean(0), weights @ guided_means, atol=0.1, rtol=0)

    with pytest.raises(ValueError, match="needs uncond_hidden"):
        head.sample(cond, guidance_scale=2.0)
    with pytest.raises(ValueError, match="must have hidden's shape"):
        head.sample(cond, guidance_scale=2.0, uncond_hidden=uncond[:3])


def test_gaussian_guidance_guides_the_mean_and_keeps_the_conditional_std():
    head = make("gaussian", token_dim=2)
    spread_weights(head)
    cond, uncond = torch.randn(1, HIDDEN).expand(20_000, -1), torch.randn(1, HIDDEN).expand(20_000, -1)
    mc, vc = head.split_params(head(cond[:1]))
    mu, _ = head.split_params(head(uncond[:1]))
    draws = head.sample(
        cond, temperature=1.0, generator=torch.Generator().manual_seed(0), guidance_scale=2.5, uncond_hidden=uncond
    )
    torch.testing.assert_close(draws.mean(0), (mu + 2.5 * (mc - mu))[0], atol=0.05, rtol=0)
    torch.testing.assert_close(draws.std(0), vc[0].sqrt(), rtol=0.03, atol=0)
    with pytest.raises(ValueError, match="needs uncond_hidden"):
        head.sample(cond, guidance_scale=2.0)


# ------------------------------------------------------------------------------------------- properties
def _copy_into_gaussian(gmm: GMMHead) -> GaussianHead:
    cfg = {
        k: v for k, v in gmm.config.items() if not k.startswith("_") and k not in ("num_components", "temper_logits")
    }
    gaussian = GaussianHead(**cfg)
    d = cfg["token_dim"]
    state = {k: v.clone() for k, v in gmm.state_dict().items()}
    state["proj.weight"], state["proj.bias"] = state["proj.weight"][: 2 * d], state["proj.bias"][: 2 * d]
    gaussian.load_state_dict(state)
    return gaussian


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=3),
    token_dim=st.integers(1, 4),
    temperature=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_one_component_gmm_is_the_gaussian_head(seed, lead, token_dim, temperature):
    torch.manual_seed(seed)
    gmm = GMMHead(hidden_size=HIDDEN, token_dim=token_dim, num_components=1, mlp_width=8)
    spread_weights(gmm, seed=seed)
    gaussian = _copy_into_gaussian(gmm)
    hidden = torch.randn(*lead, HIDDEN)
    target = torch.randn(*lead, token_dim) * 3
    torch.testing.assert_close(gmm.nll(hidden, target), gaussian.nll(hidden, target))
    torch.testing.assert_close(gmm.loss(hidden, target), gaussian.loss(hidden, target))
    draw = {"temperature": temperature, "generator": None}
    a = gmm.sample(hidden, **draw | {"generator": torch.Generator().manual_seed(seed)})
    b = gaussian.sample(hidden, **draw | {"generator": torch.Generator().manual_seed(seed)})
    torch.testing.assert_close(a, b)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(CONTINUOUS),
    seed=st.integers(0, 2**16),
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=3),
    hidden_log10=st.floats(-2, 4),
    target_log10=st.floats(-2, 4),
)
def test_loss_and_gradients_stay_finite_for_extreme_inputs(name, seed, lead, hidden_log10, target_log10):
    head = make(name, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(*lead, HIDDEN, generator=gen) * 10**hidden_log10
    target = torch.randn(*lead, 3, generator=gen) * 10**target_log10
    loss = head.loss(hidden, target)
    nll = head.nll(hidden, target)
    assert loss.shape == tuple(lead) and torch.isfinite(loss).all() and torch.isfinite(nll).all()
    loss.sum().backward()
    for n, p in head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
    assert torch.isfinite(head.sample(hidden, generator=gen)).all()


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(CONTINUOUS), seed=st.integers(0, 2**16), lead=st.lists(st.integers(1, 3), max_size=2))
def test_temperature_zero_is_the_mode(name, seed, lead):
    head = make(name, seed=seed)
    spread_weights(head, seed=seed)
    hidden = torch.randn(*lead, HIDDEN)
    token = head.sample(hidden, temperature=0.0, generator=torch.Generator().manual_seed(seed))
    if name == "gmm":
        means, _, logits = head.split_params(head(hidden))
        expected = means.gather(-2, logits.argmax(-1)[..., None, None].expand(*lead, 1, 3)).squeeze(-2)
    elif name == "gaussian":
        expected = head.split_params(head(hidden))[0]
    else:
        expected = head(hidden)
    torch.testing.assert_close(token, expected)


# ------------------------------------------------------------------------------------------- dtypes
# autocast is only meaningful with a half dtype, so (fp32, autocast) is not a case.
_DTYPE_MODES = [
    (dtype, mode)
    for mode in ("module_cast", "inputs_only", "autocast")
    for dtype in (torch.float32, torch.bfloat16, torch.float16)
    if not (mode == "autocast" and dtype == torch.float32)
]


@pytest.mark.parametrize(("dtype", "mode"), _DTYPE_MODES)
@pytest.mark.parametrize("name", CONTINUOUS)
def test_half_precision_gives_finite_fp32_losses(name, dtype, mode):
    head = make(name)
    hidden = torch.randn(2, 3, HIDDEN).to(dtype)
    target = (torch.randn(2, 3, 3) * 100).to(dtype)
    if mode == "module_cast":
        head = head.to(dtype)
    if mode == "autocast":
        with torch.autocast("cpu", dtype=dtype):
            loss, nll = head.loss(hidden.float(), target.float()), head.nll(hidden.float(), target.float())
    else:
        loss, nll = head.loss(hidden, target), head.nll(hidden, target)
    for value in (loss, nll):
        assert value.shape == (2, 3) and value.dtype == torch.float32 and torch.isfinite(value).all()
    loss.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())
    sample = head.sample(hidden, generator=torch.Generator().manual_seed(0))
    assert sample.shape == (2, 3, 3) and sample.dtype == dtype and torch.isfinite(sample).all()


# ------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", CONTINUOUS)
def test_clear_errors_for_bad_inputs(name):
    head = make(name)
    hidden, target = torch.randn(2, 3, HIDDEN), torch.randn(2, 3, 3)
    with pytest.raises(ValueError, match="hidden_size=8"):
        head.loss(torch.randn(2, 3, HIDDEN + 1), target)
    with pytest.raises(ValueError, match="token_dim=3"):
        head.nll(hidden, torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="leading dims"):
        head.loss(hidden, torch.randn(3, 2, 3))
    with pytest.raises(TypeError, match="floating"):
        head.loss(hidden, torch.zeros(2, 3, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="floating"):
        head.sample(torch.zeros(2, 3, HIDDEN, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        head.sample(hidden, temperature=-1.0)


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (GMMHead, {"num_components": 0}, "num_components"),
        (GMMHead, {"variance_floor": 0.0}, "variance_floor"),
        (GaussianHead, {"loss_reduction": "avg"}, "loss_reduction"),
        (GaussianHead, {"sample_variance_scale": -1.0}, "sample_variance_scale"),
        (L2Head, {"sigma": 0.0}, "sigma"),
        (L2Head, {"mlp_layers": 0}, "mlp_layers"),
    ],
)
def test_clear_errors_for_bad_configs(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(hidden_size=HIDDEN, token_dim=3, **kwargs)
