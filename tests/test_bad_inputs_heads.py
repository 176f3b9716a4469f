"""Bad inputs to every registered head fail loudly, with an error that names the argument at fault.

Hypothesis draws NaN/inf tensors, wrong dtypes, empty leading dimensions and bad sampling arguments over
``vidtok.HEADS.list()``; configs are checked key by key; fp16/bf16 autocast must keep losses, gradients and
samples finite for hidden states up to 1e6 (the heads' fp32 islands).
"""

from __future__ import annotations

import inspect
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vidtok
from vidtok.heads._layers import diagonal_gmm_nll

NAMES = vidtok.HEADS.list()
NAN, INF = float("nan"), float("inf")
EXAMPLES = settings(max_examples=15, deadline=None)


def make(name: str, **overrides):
    cls = vidtok.HEADS.get(name)
    return cls(**{**cls.tiny_config(), **overrides})


def hidden_size(head) -> int:
    return head.config["hidden_size"]


def target_for(head, lead: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if head.is_discrete:
        return torch.randint(0, head.num_codes, lead, generator=g)
    return torch.randn(*lead, head.config["token_dim"], generator=g)


def has_nll(head) -> bool:
    return type(head).nll is not vidtok.TokenHead.nll and head.config.get("prediction_type") is None


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def raises_naming(exc: type[Exception], name: str):
    """``pytest.raises`` whose message must contain ``name`` as a word (``hidden`` but not only ``uncond_hidden``)."""
    return pytest.raises(exc, match=rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])")


leads = st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple)
bad_values = st.sampled_from([NAN, INF, -INF])


@st.composite
def poisoned(draw, size: int):
    """A ``(lead..., size)`` float tensor with one NaN/inf entry at a drawn position."""
    lead = draw(leads)
    x = torch.randn(*lead, size, generator=gen(draw(st.integers(0, 99))))
    flat = x.view(-1)
    flat[draw(st.integers(0, flat.numel() - 1))] = draw(bad_values)
    return x


# ------------------------------------------------------------------------------------ NaN / inf tensors
@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(data=st.data())
def test_nonfinite_hidden_is_refused_by_every_call(name, data):
    head = make(name)
    hidden = data.draw(poisoned(hidden_size(head)))
    target = target_for(head, tuple(hidden.shape[:-1]))
    with raises_naming(ValueError, "hidden"):
        head.loss(hidden, target, generator=gen())
    with raises_naming(ValueError, "hidden"):
        head.sample(hidden, generator=gen())
    if has_nll(head):
        with raises_naming(ValueError, "hidden"):
            head.nll(hidden, target)
    clean = torch.randn(hidden.shape)
    with raises_naming(ValueError, "uncond_hidden"):
        head.sample(clean, guidance_scale=2.0, uncond_hidden=hidden, generator=gen())


@pytest.mark.parametrize("name", [n for n in NAMES if not vidtok.HEADS.get(n).is_discrete])
@EXAMPLES
@given(data=st.data())
def test_nonfinite_target_is_refused(name, data):
    head = make(name)
    target = data.draw(poisoned(head.config["token_dim"]))
    hidden = torch.randn(*target.shape[:-1], hidden_size(head))
    with raises_naming(ValueError, "target"):
        head.loss(hidden, target, generator=gen())
    if has_nll(head):
        with raises_naming(ValueError, "target"):
            head.nll(hidden, target)


def test_the_finite_check_can_be_switched_off(monkeypatch):
    head = make("gmm")
    hidden = torch.full((2, hidden_size(head)), NAN)
    monkeypatch.setattr(vidtok.heads.base, "CHECK_FINITE", False)
    assert torch.isnan(head.loss(hidden, target_for(head, (2,)))).all()  # the documented opt-out


# ------------------------------------------------------------------------------------------- dtypes
wrong_float_dtypes = st.sampled_from([torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64])


@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(dtype=wrong_float_dtypes, lead=leads)
def test_non_floating_hidden_is_a_type_error(name, dtype, lead):
    head = make(name)
    hidden = torch.ones(*lead, hidden_size(head)).to(dtype)
    with raises_naming(TypeError, "hidden"):
        head.sample(hidden, generator=gen())
    with raises_naming(TypeError, "hidden"):
        head.loss(hidden, target_for(head, lead), generator=gen())
    with raises_naming(TypeError, "uncond_hidden"):
        head.sample(torch.randn(*lead, hidden_size(head)), guidance_scale=2.0, uncond_hidden=hidden)


@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(lead=leads, data=st.data())
def test_wrong_target_dtype_is_a_type_error(name, lead, data):
    head = make(name)
    if head.is_discrete:  # codes must be integers
        dtype = data.draw(st.sampled_from([torch.float32, torch.float16, torch.bool, torch.complex64]))
        target = torch.zeros(lead, dtype=dtype)
    else:
        dtype = data.draw(wrong_float_dtypes)
        target = torch.zeros(*lead, head.config["token_dim"]).to(dtype)
    with raises_naming(TypeError, "target"):
        head.loss(torch.randn(*lead, hidden_size(head)), target, generator=gen())


# ---------------------------------------------------------------------------------- empty dimensions
@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(lead=st.lists(st.integers(0, 3), min_size=1, max_size=3).filter(lambda s: 0 in s).map(tuple))
def test_empty_leading_dims_give_empty_results(name, lead):
    head = make(name)
    hidden, target = torch.randn(*lead, hidden_size(head)), target_for(head, lead)
    tail = () if head.is_discrete else (head.config["token_dim"],)
    loss = head.loss(hidden, target, generator=gen())
    assert loss.shape == lead and loss.dtype == torch.float32
    assert head.sample(hidden, generator=gen()).shape == (*lead, *tail)
    guided = head.sample(hidden, guidance_scale=2.0, uncond_hidden=torch.randn(hidden.shape), generator=gen())
    assert guided.shape == (*lead, *tail)
    if has_nll(head):
        assert head.nll(hidden, target).shape == lead


# --------------------------------------------------------------------------------- sampling arguments
nonfinite_or_negative = st.one_of(bad_values, st.floats(max_value=-1e-6, allow_nan=False, allow_infinity=False))
non_numbers = st.sampled_from(["1", "0.5", True, False, None, 1j, [1.0], torch.ones(2)])


@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(value=nonfinite_or_negative)
def test_bad_temperature_and_guidance_values_are_value_errors(name, value):
    head = make(name)
    hidden = torch.randn(2, hidden_size(head))
    with raises_naming(ValueError, "temperature"):
        head.sample(hidden, temperature=value, generator=gen())
    with raises_naming(ValueError, "guidance_scale"):
        head.sample(hidden, guidance_scale=value, uncond_hidden=torch.randn(hidden.shape), generator=gen())


@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(value=non_numbers)
def test_non_numeric_sampling_arguments_are_type_errors(name, value):
    head = make(name)
    hidden = torch.randn(2, hidden_size(head))
    with raises_naming(TypeError, "temperature"):
        head.sample(hidden, temperature=value, generator=gen())
    with raises_naming(TypeError, "guidance_scale"):
        head.sample(hidden, guidance_scale=value, uncond_hidden=torch.randn(hidden.shape), generator=gen())


@pytest.mark.parametrize("name", NAMES)
def test_sampling_arguments_that_do_work(name):
    head = make(name)
    hidden, uncond = torch.randn(2, hidden_size(head)), torch.randn(2, hidden_size(head))
    # ints, NumPy-like reals and 0-d tensors are numbers; guidance 0 is the unconditional prediction.
    a = head.sample(hidden, temperature=1, generator=gen(), guidance_scale=3, uncond_hidden=uncond)
    b = head.sample(hidden, temperature=torch.tensor(1.0), generator=gen(), guidance_scale=3.0, uncond_hidden=uncond)
    assert torch.equal(a, b)
    head.sample(hidden, guidance_scale=0.0, uncond_hidden=uncond, generator=gen())
    with raises_naming(TypeError, "generator"):
        head.sample(hidden, generator=0)
    with raises_naming(TypeError, "uncond_hidden"):
        head.sample(hidden, guidance_scale=2.0, uncond_hidden="null prompt")


def test_diffusion_sampler_arguments():
    head = make("diffusion_mlp")
    hidden = torch.randn(2, hidden_size(head))
    for value in (NAN, INF, -1.0):
        with raises_naming(ValueError, "eta"):
            head.sample(hidden, scheduler="ddim", eta=value, generator=gen())
    with raises_naming(TypeError, "eta"):
        head.sample(hidden, scheduler="ddim", eta="1", generator=gen())
    for value in (2.5, True, "4"):
        with raises_naming(TypeError, "num_inference_steps"):
            head.sample(hidden, num_inference_steps=value, generator=gen())
    with raises_naming(ValueError, "num_inference_steps"):
        head.sample(hidden, num_inference_steps=0, generator=gen())


def test_categorical_top_k():
    head = make("categorical")
    hidden = torch.randn(2, hidden_size(head))
    for value in (2.5, True, "3", NAN):
        with raises_naming(TypeError, "top_k"):
            head.sample(hidden, top_k=value, generator=gen())
    with raises_naming(ValueError, "top_k"):
        head.sample(hidden, top_k=0, generator=gen())


# ------------------------------------------------------------------------------------------- configs
INT_KEYS = (
    "hidden_size",
    "token_dim",
    "num_components",
    "mlp_width",
    "mlp_layers",
    "width",
    "depth",
    "timestep_embedding_dim",
    "num_timesteps_per_token",
    "num_inference_steps",
    "num_train_timesteps",
    "vocab_size",
    "num_bits",
    "bits_per_group",
)
# key -> out-of-range values besides NaN and ±inf
FLOAT_KEYS = {"variance_floor": (0.0, -1e-3), "sigma": (0.0, -1.0), "sample_variance_scale": (-1.0,)}


def _config_cases():
    for name in NAMES:
        cls = vidtok.HEADS.get(name)
        params = inspect.signature(cls.__init__).parameters
        for key in INT_KEYS:
            if key not in params:
                continue
            for value in (0, -3):
                yield name, key, value, ValueError
            for value in (3.5, 4.0, True, "16"):
                yield name, key, value, TypeError
        for key, values in FLOAT_KEYS.items():
            if key not in params:
                continue
            for value in (*values, NAN, INF, -INF):
                yield name, key, value, ValueError
            for value in (True, "1"):
                yield name, key, value, TypeError
        if "temper_logits" in params:
            for value in (1, "yes", None):
                yield name, "temper_logits", value, TypeError


def _config(name: str, key: str, value):
    cls = vidtok.HEADS.get(name)
    config = {**cls.tiny_config(), key: value}
    if name == "categorical" and key == "vocab_size":  # the flat mode excludes num_bits
        config.pop("num_bits")
        config.pop("bits_per_group")
    return cls, config


@pytest.mark.parametrize(("name", "key", "value", "exc"), list(_config_cases()))
def test_degenerate_configs_are_refused_naming_the_key(name, key, value, exc):
    cls, config = _config(name, key, value)
    with raises_naming(exc, key):
        cls(**config)


def _required(name: str) -> list[str]:
    params = inspect.signature(vidtok.HEADS.get(name).__init__).parameters.values()
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]


@pytest.mark.parametrize(("name", "key"), [(n, k) for n in NAMES for k in _required(n)])
def test_a_missing_required_argument_is_named(name, key):
    cls = vidtok.HEADS.get(name)
    config = {k: v for k, v in cls.tiny_config().items() if k != key}
    with pytest.raises(TypeError, match=rf"missing.*'{key}'"):
        cls(**config)


@pytest.mark.parametrize("name", NAMES)
def test_an_unknown_argument_is_named(name):
    with raises_naming(TypeError, "bogus"):
        make(name, bogus=1)


# ------------------------------------------------------------------------------- fp16 / bf16 autocast
ISLANDED = [n for n in NAMES if n != "diffusion_mlp"]  # diffusion_mlp stays under autocast (documented)


@pytest.mark.parametrize("name", ISLANDED)
@settings(max_examples=12, deadline=None)
@given(
    log_magnitude=st.floats(-3.0, 6.0),
    dtype=st.sampled_from([torch.float16, torch.bfloat16]),
    seed=st.integers(0, 2**16),
)
def test_autocast_keeps_losses_gradients_and_samples_finite(name, log_magnitude, dtype, seed):
    torch.manual_seed(seed)
    head = make(name)
    hidden = torch.randn(2, 3, hidden_size(head), generator=gen(seed)) * 10.0**log_magnitude
    target = target_for(head, (2, 3), seed)
    with torch.autocast("cpu", dtype=dtype):
        loss = head.loss(hidden, target)
        sample = head.sample(hidden, generator=gen(seed))
        guided = head.sample(hidden, guidance_scale=3.0, uncond_hidden=hidden.flip(0), generator=gen(seed))
        values = [loss, head.nll(hidden, target)] if has_nll(head) else [loss]
    loss.sum().backward()  # outside autocast, as PyTorch prescribes
    for value in values:
        assert value.dtype == torch.float32 and torch.isfinite(value).all()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())
    for token in (sample, guided):
        assert not token.is_floating_point() or torch.isfinite(token).all()


def test_autocast_island_leaves_plain_fp32_bit_identical():
    """Outside autocast the island is a no-op: the GMM loss equals the un-islanded computation exactly."""
    head = make("gmm")
    hidden, target = torch.randn(5, hidden_size(head)), target_for(head, (5,))
    params = head.proj(head.trunk(hidden))
    expected = diagonal_gmm_nll(
        params, target, num_components=head.config["num_components"], variance_floor=head.config["variance_floor"]
    )
    assert torch.equal(head.nll(hidden, target), expected)
    assert torch.equal(head.loss(hidden, target), expected / head.config["token_dim"])


def test_diffusion_head_under_bf16_autocast_is_finite_for_large_hidden_states():
    head = make("diffusion_mlp")
    hidden, target = torch.randn(4, hidden_size(head)) * 1e6, torch.randn(4, head.config["token_dim"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = head.loss(hidden, target, generator=gen())
        sample = head.sample(hidden, generator=gen())
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(sample).all()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())
