"""Behaviour of the categorical head: flat and bit-factorized softmaxes over integer codes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import vidtok
from vidtok.heads import CategoricalHead

HIDDEN = 8


def make(seed: int = 0, spread: bool = True, **kwargs) -> CategoricalHead:
    torch.manual_seed(seed)
    head = CategoricalHead(hidden_size=HIDDEN, **kwargs)
    if spread:  # O(1) logits instead of the near-uniform 0.02-std init
        with torch.no_grad():
            head.proj.weight.normal_(0, 1.0)
            head.proj.bias.normal_(0, 1.0)
    return head


MODES = [{"vocab_size": 11}, {"num_bits": 4, "bits_per_group": 1}, {"num_bits": 6, "bits_per_group": 2}]


def all_codes_log_probs(head, hidden):
    """-nll of every code for one hidden state: the head's full distribution over codes."""
    codes = torch.arange(head.num_codes)
    with torch.no_grad():
        return -head.nll(hidden.expand(head.num_codes, HIDDEN), codes)


@pytest.mark.parametrize("kwargs", MODES, ids=["flat", "bits", "groups"])
def test_nll_defines_a_distribution_over_all_codes(kwargs):
    head = make(**kwargs)
    log_p = all_codes_log_probs(head, torch.randn(1, HIDDEN))
    assert log_p.dtype == torch.float32
    torch.testing.assert_close(log_p.exp().sum(), torch.tensor(1.0))


def test_flat_loss_is_cross_entropy():
    head = make(vocab_size=11)
    hidden, codes = torch.randn(2, 3, HIDDEN), torch.randint(0, 11, (2, 3))
    expected = F.cross_entropy(head.proj(hidden).reshape(6, 11), codes.reshape(6), reduction="none").reshape(2, 3)
    torch.testing.assert_close(head.loss(hidden, codes), expected)
    torch.testing.assert_close(head.nll(hidden, codes), expected)


def test_factorized_nll_sums_the_groups_most_significant_first():
    head = make(num_bits=6, bits_per_group=2)  # 3 groups of 4-way softmaxes
    hidden = torch.randn(5, HIDDEN)
    code = torch.tensor([0b10_01_11] * 5)
    log_p = torch.log_softmax(head.proj(hidden).reshape(5, 3, 4), -1)
    expected = -(log_p[:, 0, 0b10] + log_p[:, 1, 0b01] + log_p[:, 2, 0b11])
    torch.testing.assert_close(head.nll(hidden, code), expected)


def test_a_2_to_the_18_codebook_never_builds_a_2_to_the_18_softmax():
    assert CategoricalHead(hidden_size=HIDDEN, num_bits=18).proj.out_features == 18 * 2
    head = CategoricalHead(hidden_size=HIDDEN, num_bits=18, bits_per_group=9)
    assert head.proj.out_features == 2 * 512 and head.num_codes == 2**18
    hidden = torch.randn(4, HIDDEN)
    codes = head.sample(hidden, generator=torch.Generator().manual_seed(0))
    assert codes.dtype == torch.int64 and bool((codes >= 0).all() and (codes < 2**18).all())
    assert torch.isfinite(head.loss(hidden, codes)).all()


@pytest.mark.parametrize("kwargs", MODES, ids=["flat", "bits", "groups"])
def test_sample_frequencies_match_the_distribution(kwargs):
    head = make(**kwargs)
    hidden = torch.randn(1, HIDDEN)
    n = 60_000
    codes = head.sample(hidden.expand(n, HIDDEN), generator=torch.Generator().manual_seed(0))
    observed = torch.bincount(codes, minlength=head.num_codes).float() / n
    expected = all_codes_log_probs(head, hidden).exp()
    assert 0.5 * float((observed - expected).abs().sum()) < 0.02


@pytest.mark.parametrize("kwargs", MODES, ids=["flat", "bits", "groups"])
def test_temperature_zero_is_the_most_likely_code(kwargs):
    head = make(**kwargs)
    hidden = torch.randn(4, HIDDEN)
    codes = head.sample(hidden, temperature=0.0)
    expected = torch.stack([all_codes_log_probs(head, h[None]).argmax() for h in hidden])
    assert torch.equal(codes, expected)
    assert torch.equal(head.sample(hidden, top_k=1, generator=torch.Generator().manual_seed(1)), expected)


def test_top_k_restricts_each_group():
    head = make(num_bits=6, bits_per_group=3)  # 2 groups of 8
    hidden = torch.randn(1, HIDDEN)
    codes = head.sample(hidden.expand(5000, HIDDEN), top_k=2, generator=torch.Generator().manual_seed(0))
    allowed = head(hidden)[0].topk(2, dim=-1).indices  # (groups, 2)
    digits = torch.stack([codes >> 3, codes & 7], -1)
    for group in range(2):
        assert set(digits[:, group].unique().tolist()) == set(allowed[group].tolist())


def test_low_temperature_concentrates_and_high_temperature_spreads():
    head = make(vocab_size=11)
    hidden = torch.randn(1, HIDDEN).expand(20_000, HIDDEN)
    gen = torch.Generator().manual_seed(0)
    mode = head.sample(hidden[:1], temperature=0.0)

    def hit_rate(t):
        return float((head.sample(hidden, temperature=t, generator=gen) == mode).float().mean())

    assert hit_rate(0.05) > hit_rate(1.0) > hit_rate(100.0) > 1 / 11 - 0.02


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    lead=st.lists(st.integers(1, 3), max_size=3),
    mode=st.sampled_from(MODES),
    hidden_log10=st.floats(-2, 4),
)
def test_loss_and_gradients_are_finite_for_any_shape_and_scale(seed, lead, mode, hidden_log10):
    head = make(seed=seed, spread=False, **mode)
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(*lead, HIDDEN, generator=gen) * 10**hidden_log10
    codes = torch.randint(0, head.num_codes, tuple(lead), generator=gen)
    loss = head.loss(hidden, codes)
    assert loss.shape == tuple(lead) and torch.isfinite(loss).all() and bool((loss >= 0).all())
    loss.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())
    sample = head.sample(hidden, generator=gen, top_k=3)
    assert sample.shape == tuple(lead) and bool((sample >= 0).all() and (sample < head.num_codes).all())


@pytest.mark.parametrize("mode", ["module_cast", "inputs_only"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_half_precision(dtype, mode):
    head = make(num_bits=6, bits_per_group=2)
    if mode == "module_cast":
        head = head.to(dtype)
    hidden = torch.randn(2, 3, HIDDEN).to(dtype)
    codes = head.sample(hidden, generator=torch.Generator().manual_seed(0))
    loss = head.loss(hidden, codes)
    assert codes.shape == (2, 3) and loss.dtype == torch.float32 and torch.isfinite(loss).all()


def test_seeded_sampling_is_reproducible():
    head = make(vocab_size=1000)
    hidden = torch.randn(3, 4, HIDDEN)
    a = head.sample(hidden, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, head.sample(hidden, generator=torch.Generator().manual_seed(5)))
    assert not torch.equal(a, head.sample(hidden, generator=torch.Generator().manual_seed(6)))


def test_token_dim_is_accepted_so_common_kwargs_swap():
    head = vidtok.HEADS.create("categorical", hidden_size=HIDDEN, token_dim=16, vocab_size=32)
    assert head.config["token_dim"] == 16 and head.proj.out_features == 32


@pytest.mark.parametrize("kwargs", MODES, ids=["flat", "bits", "groups"])
def test_out_of_range_and_mistyped_codes_raise(kwargs):
    head = make(**kwargs)
    hidden = torch.randn(2, HIDDEN)
    with pytest.raises(ValueError, match=rf"\[0, {head.num_codes}\)"):
        head.loss(hidden, torch.tensor([0, head.num_codes]))
    with pytest.raises(ValueError, match=rf"\[0, {head.num_codes}\)"):
        head.nll(hidden, torch.tensor([-1, 0]))
    with pytest.raises(TypeError, match="integer codes"):
        head.loss(hidden, torch.zeros(2))
    with pytest.raises(ValueError, match="leading dims"):
        head.loss(hidden, torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="top_k"):
        head.sample(hidden, top_k=0)
    with pytest.raises(ValueError, match="temperature"):
        head.sample(hidden, temperature=math.nan)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one"),
        ({"vocab_size": 8, "num_bits": 3}, "exactly one"),
        ({"vocab_size": 1}, "vocab_size"),
        ({"num_bits": 18, "bits_per_group": 4}, "divide"),
        ({"num_bits": 63}, "num_bits"),
    ],
)
def test_bad_configs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CategoricalHead(hidden_size=HIDDEN, **kwargs)
