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
            if head.group_embed is not None:  # and groups that really depend on each other
                head.group_embed.weight.normal_(0, 1.0)
    return head


SEQUENTIAL = {"num_bits": 6, "bits_per_group": 2, "sequential_groups": True}
MODES = [{"vocab_size": 11}, {"num_bits": 4, "bits_per_group": 1}, {"num_bits": 6, "bits_per_group": 2}, SEQUENTIAL]
IDS = ["flat", "bits", "groups", "sequential"]


def all_codes_log_probs(head, hidden):
    """-nll of every code for one hidden state: the head's full distribution over codes."""
    codes = torch.arange(head.num_codes)
    with torch.no_grad():
        return -head.nll(hidden.expand(head.num_codes, HIDDEN), codes)


@pytest.mark.parametrize("kwargs", MODES, ids=IDS)
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


@pytest.mark.parametrize("kwargs", MODES, ids=IDS)
def test_sample_frequencies_match_the_distribution(kwargs):
    head = make(**kwargs)
    hidden = torch.randn(1, HIDDEN)
    n = 60_000
    codes = head.sample(hidden.expand(n, HIDDEN), generator=torch.Generator().manual_seed(0))
    observed = torch.bincount(codes, minlength=head.num_codes).float() / n
    expected = all_codes_log_probs(head, hidden).exp()
    assert 0.5 * float((observed - expected).abs().sum()) < 0.02


@pytest.mark.parametrize("kwargs", MODES[:3], ids=IDS[:3])
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


@pytest.mark.parametrize("kwargs", MODES, ids=IDS)
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


# -- sequential_groups: the chain rule inside one code -------------------------------------------------------


def greedy_chain(head, hidden):
    """The most likely digit of each group given the ones chosen before, by brute force over all codes."""
    log_p = all_codes_log_probs(head, hidden)  # (num_codes,)
    digits = head._digits(torch.arange(head.num_codes))
    chosen = torch.ones(head.num_codes, dtype=torch.bool)
    for j in range(head.num_groups):
        # p(group j = d | chosen prefix) is proportional to the summed mass of the codes that extend it.
        mass = torch.zeros(head.group_size).index_add_(0, digits[chosen, j], log_p[chosen].exp())
        chosen &= digits[:, j] == mass.argmax()
    return int(torch.nonzero(chosen)[0])


def test_sequential_temperature_zero_is_the_greedy_chain_of_groups():
    head = make(**SEQUENTIAL)
    hidden = torch.randn(6, HIDDEN)
    codes = head.sample(hidden, temperature=0.0)
    assert codes.tolist() == [greedy_chain(head, h[None]) for h in hidden]
    assert torch.equal(head.sample(hidden, top_k=1, generator=torch.Generator().manual_seed(1)), codes)


def test_sequential_head_starts_as_the_independent_one():
    # Zero-initialized digit embeddings: the same weights give the same distribution, so a trained independent
    # head loads into a sequential one (its embeddings fresh) without changing what it models.
    independent, sequential = (
        make(seed=3, spread=False, num_bits=6, bits_per_group=2),
        make(seed=3, spread=False, **SEQUENTIAL),
    )
    assert not sequential.group_embed.weight.any()
    sequential.load_state_dict({**independent.state_dict(), "group_embed.weight": sequential.group_embed.weight})
    hidden, codes = torch.randn(4, 5, HIDDEN), torch.randint(0, 64, (4, 5))
    torch.testing.assert_close(sequential.nll(hidden, codes), independent.nll(hidden, codes))
    assert torch.equal(sequential.sample(hidden, temperature=0.0), independent.sample(hidden, temperature=0.0))


def test_sequential_groups_learn_a_joint_that_independent_groups_cannot():
    """Two equally likely codes that differ in every group: 000000 and 111111.

    Independent groups can only learn the marginals (each digit 0 or 3 with probability 1/2), so they draw a
    mix of the two codes 3/4 of the time; conditioning each group on the ones before learns the joint.
    """
    hidden = torch.randn(1, HIDDEN).expand(256, HIDDEN)
    targets = torch.tensor([0, 63]).repeat(128)
    mixed, nll = {}, {}
    for name, kwargs in {"independent": {"num_bits": 6, "bits_per_group": 2}, "sequential": SEQUENTIAL}.items():
        head = make(seed=0, spread=False, **kwargs)
        opt = torch.optim.Adam(head.parameters(), lr=0.05)
        for _ in range(200):
            opt.zero_grad()
            head.loss(hidden, targets).mean().backward()
            opt.step()
        codes = head.sample(hidden[:1].expand(4000, HIDDEN), generator=torch.Generator().manual_seed(0))
        mixed[name] = float(((codes != 0) & (codes != 63)).float().mean())
        nll[name] = float(head.nll(hidden[:2], torch.tensor([0, 63])).mean().detach())
    assert mixed["independent"] > 0.6 and nll["independent"] > 3 * math.log(2) - 0.05  # ln 8: three coin flips
    assert mixed["sequential"] < 0.02 and abs(nll["sequential"] - math.log(2)) < 0.05


def test_sequential_head_save_load_round_trip(tmp_path):
    head = make(**SEQUENTIAL)
    head.save_pretrained(tmp_path)
    loaded = CategoricalHead.from_pretrained(tmp_path)
    assert loaded.config["sequential_groups"] is True
    assert loaded.state_dict().keys() == head.state_dict().keys()
    hidden, codes = torch.randn(3, HIDDEN), torch.tensor([1, 17, 63])
    torch.testing.assert_close(loaded.nll(hidden, codes), head.nll(hidden, codes))
    with pytest.raises(ValueError, match="needs codes"):
        loaded(hidden)
    torch.testing.assert_close(loaded(hidden, codes), head(hidden, codes))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"vocab_size": 8, "sequential_groups": True}, ValueError, "factorized"),
        ({"num_bits": 4, "sequential_groups": 1}, TypeError, "sequential_groups must be a bool"),
    ],
)
def test_bad_sequential_configs_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        CategoricalHead(hidden_size=HIDDEN, **kwargs)


def test_sequential_head_restricted_to_fewer_codes_is_a_distribution_its_samples_follow():
    head = make(**SEQUENTIAL)  # 6 bits in 3 groups of 2
    hidden = torch.randn(1, HIDDEN)
    codes = torch.arange(16)  # num_codes=16: the top group is 0, the other two free
    with torch.no_grad():
        p = (-head.nll(hidden.expand(16, HIDDEN), codes, num_codes=16)).exp()
    torch.testing.assert_close(p.sum(), torch.tensor(1.0))
    draws = head.sample(hidden.expand(40_000, HIDDEN), num_codes=16, generator=torch.Generator().manual_seed(0))
    assert int(draws.max()) < 16
    observed = torch.bincount(draws, minlength=16).float() / draws.numel()
    assert 0.5 * float((observed - p).abs().sum()) < 0.02
