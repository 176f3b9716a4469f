"""Binary quantizers (LFQ, BSQ): the exact factorized entropy against brute force over all 2^d codes, exact codes,
straight-through gradients, the big-endian index order shared with the categorical head, masking, the memory law
at d = 18, and swapping by constructor."""

from __future__ import annotations

import doctest
import importlib
import math
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vidtok.heads import CategoricalHead
from vidtok.tokenizers.quantizers import (
    BSQ,
    LFQ,
    LOSS_KEYS,
    QUANTIZERS,
    QuantizerOutput,
    bits_to_indices,
    factorized_entropy,
    indices_to_bits,
    mean_code_distribution,
)

CLASSES = [LFQ, BSQ]
AUX_KEYS = {"commitment", "entropy", "per_sample_entropy", "batch_entropy"}


# ---------------------------------------------------------------------------------------------- brute force
def _corners(num_bits: int, scale: float) -> torch.Tensor:
    """All 2^d corners {-s, +s}^d in big-endian index order, written out from the definition."""
    rows = [[scale if (k >> (num_bits - 1 - i)) & 1 else -scale for i in range(num_bits)] for k in range(2**num_bits)]
    return torch.tensor(rows, dtype=torch.float64)


def _brute_force(quantizer, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample entropy, batch entropy and the mean distribution from q(c|u) ∝ exp(-β ||u - c||²) over all codes."""
    u = z / z.norm(dim=-1, keepdim=True) if isinstance(quantizer, BSQ) else z
    corners = _corners(quantizer.num_bits, quantizer.code_scale)
    logits = -quantizer.inv_temperature * (u.unsqueeze(1) - corners).square().sum(-1)  # (N, 2^d)
    log_p = torch.log_softmax(logits, dim=-1)
    p = log_p.exp()
    per_sample = -(p * log_p).sum(-1).mean()
    mean = p.mean(0)
    batch = -(mean * mean.log()).sum()
    return per_sample, batch, mean


def _close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5) -> None:
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("num_bits", [1, 2, 3, 5, 8, 10])
@pytest.mark.parametrize("masked", [False, True])
def test_exact_entropy_equals_brute_force_values_and_gradients(cls, num_bits, masked):
    gen = torch.Generator().manual_seed(1000 * num_bits + 10 * masked + (cls is BSQ))
    # Random temperature, log-uniform over two decades (the per-bit log-odds of BSQ are ~1/d smaller: shift it).
    low, high = (0.1, 10.0) if cls is LFQ else (1.0, 100.0)
    inv_temperature = math.exp(math.log(low) + torch.rand((), generator=gen).item() * math.log(high / low))
    quantizer = cls(num_bits=num_bits, inv_temperature=inv_temperature, diversity_gamma=0.7).train()
    z = torch.randn(3, 11, num_bits, generator=gen, dtype=torch.float64).requires_grad_(True)
    mask = torch.rand(3, 11, generator=gen) < 0.6 if masked else None
    if masked:
        mask[0, 0] = True

    out = quantizer(z, mask)
    kept = z[mask] if masked else z.reshape(-1, num_bits)
    per_sample, batch, mean = _brute_force(quantizer, kept)

    _close(out.aux_losses["per_sample_entropy"], per_sample)
    _close(out.aux_losses["batch_entropy"], batch)
    _close(out.aux_losses["entropy"], quantizer.entropy_loss_weight * (per_sample - 0.7 * batch))
    for key, expected in (("per_sample_entropy", per_sample), ("batch_entropy", batch)):
        (grad,) = torch.autograd.grad(out.aux_losses[key], z, retain_graph=True)
        (expected_grad,) = torch.autograd.grad(expected, z, retain_graph=True)
        _close(grad, expected_grad)
    # The 2^d-entry mean distribution itself, in the big-endian index order of the codes.
    bit_logits = 4 * quantizer.inv_temperature * quantizer.code_scale * quantizer.project(kept)
    _close(mean_code_distribution(bit_logits).flatten(), mean, tol=1e-10)


def test_exact_entropy_at_the_default_sharp_temperature():
    # tau = 0.01: most of the 2^d probabilities underflow; values still exact, gradients finite.
    quantizer = LFQ(num_bits=8).train()
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64, requires_grad=True)
    out = quantizer(z)
    corners = _corners(8, 1.0)
    log_p = torch.log_softmax(-100.0 * (z.detach().unsqueeze(1) - corners).square().sum(-1), dim=-1)
    mean = log_p.exp().mean(0)
    _close(out.aux_losses["per_sample_entropy"], -(log_p.exp() * log_p).sum(-1).mean())
    _close(out.aux_losses["batch_entropy"], -torch.special.xlogy(mean, mean).sum())
    out.loss.backward()
    assert torch.isfinite(z.grad).all()


def test_float32_inputs_match_the_float64_result():
    z = torch.randn(256, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    quantizer = LFQ(num_bits=12, inv_temperature=5.0).train()
    reference = quantizer(z).aux_losses
    single = quantizer(z.float()).aux_losses
    for key in AUX_KEYS:
        assert single[key].dtype == torch.float32
        _close(single[key].double(), reference[key])


# ---------------------------------------------------------------------------------------------- codes
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_quantized_values_are_exact_corners(cls, dtype):
    num_bits = 7
    z = torch.randn(4, 9, num_bits, generator=torch.Generator().manual_seed(2)).to(dtype)
    z[0, 0, 0] = 0.0  # 0 goes to the positive corner
    out = cls(num_bits=num_bits).train()(z.requires_grad_(True))
    # Half precision is quantized in float32 and cast back.
    compute = torch.float32 if dtype == torch.bfloat16 else dtype
    scale = torch.tensor(1.0 if cls is LFQ else 1.0 / math.sqrt(num_bits), dtype=compute).to(dtype)
    assert out.quantized.dtype == dtype
    assert bool((out.quantized.detach().abs() == scale).all())
    assert torch.equal(out.quantized.detach() > 0, z.detach() >= 0)
    assert out.quantized[0, 0, 0].item() > 0
    assert out.indices.dtype == torch.int64 and out.indices.shape == (4, 9)
    for value in out.aux_losses.values():
        assert value.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)


@pytest.mark.parametrize("cls", CLASSES)
def test_straight_through_gradients_reach_the_encoder(cls):
    torch.manual_seed(0)
    encoder = torch.nn.Linear(5, 6)
    quantizer = cls(num_bits=6, commitment_loss_weight=0.0, entropy_loss_weight=0.0).train()
    x = torch.randn(8, 5)
    out = quantizer(encoder(x))
    weights = torch.randn(8, 6)
    (out.quantized * weights).sum().backward()
    assert encoder.weight.grad is not None and encoder.weight.grad.abs().sum() > 0
    if cls is LFQ:  # the identity straight-through: d(quantized)/dz = 1
        expected = weights.T @ x
        torch.testing.assert_close(encoder.weight.grad, expected)


@pytest.mark.parametrize("cls", CLASSES)
def test_losses_give_gradients_to_the_encoder(cls):
    torch.manual_seed(0)
    encoder = torch.nn.Linear(5, 6)
    out = cls(num_bits=6, commitment_loss_weight=0.25).train()(encoder(torch.randn(8, 5)))
    out.loss.backward()
    assert encoder.weight.grad.abs().sum() > 0
    assert set(out.aux_losses) == AUX_KEYS
    torch.testing.assert_close(out.loss, sum(out.aux_losses[key] for key in LOSS_KEYS))


# ---------------------------------------------------------------------------------------------- index order
@settings(max_examples=25, deadline=None)
@given(data=st.data(), num_bits=st.integers(1, 24))
def test_index_bits_round_trip_in_the_categorical_head_order(data, num_bits):
    bits = torch.tensor(data.draw(st.lists(st.booleans(), min_size=num_bits, max_size=num_bits)))
    index = bits_to_indices(bits)
    # Big-endian by definition: bit 0 is the most significant.
    assert int(index) == sum(int(b) << (num_bits - 1 - i) for i, b in enumerate(bits.tolist()))
    assert torch.equal(indices_to_bits(index, num_bits), bits)

    # The factorized categorical head's helper splits a code into groups, most significant first: with one bit
    # per group its digits are our bits; with g bits per group, our bits read in g-bit MSB-first chunks.
    divisors = [g for g in range(1, min(num_bits, 20) + 1) if num_bits % g == 0]
    for group in {1, data.draw(st.sampled_from(divisors))}:
        head = CategoricalHead(hidden_size=4, num_bits=num_bits, bits_per_group=group)
        expected = torch.stack([bits_to_indices(chunk) for chunk in bits.split(group)])
        assert torch.equal(head._digits(index), expected)

    # And through the head's public API: a head whose group-i logits favour bit b_i samples (argmax) our index.
    head = CategoricalHead(hidden_size=4, num_bits=num_bits, bits_per_group=1)
    with torch.no_grad():
        head.proj.weight.zero_()
        head.proj.bias.copy_(torch.nn.functional.one_hot(bits.long(), 2).flatten().float())
    assert int(head.sample(torch.zeros(4), temperature=0)) == int(index)

    # Codes round trip through both quantizers.
    for cls in CLASSES:
        quantizer = cls(num_bits=num_bits)
        codes = quantizer.indices_to_codes(index.reshape(1))
        assert torch.equal(codes[0] > 0, bits)
        assert int(quantizer.codes_to_indices(codes)) == int(index)
        assert int(quantizer(codes).indices) == int(index)


def test_index_conversions_refuse_bad_values():
    with pytest.raises(ValueError, match=r"\[0, 2\^3\)"):
        indices_to_bits(torch.tensor([8]), 3)
    with pytest.raises(ValueError, match="indices must lie"):
        LFQ(num_bits=3).indices_to_codes(torch.tensor([-1]))
    with pytest.raises(TypeError, match="integer"):
        indices_to_bits(torch.tensor([1.0]), 3)


# ---------------------------------------------------------------------------------------------- masking
@pytest.mark.parametrize("cls", CLASSES)
def test_masked_tokens_change_no_loss(cls):
    quantizer = cls(num_bits=6, commitment_loss_weight=0.25, inv_temperature=3.0).train()
    z = torch.randn(2, 10, 6, generator=torch.Generator().manual_seed(3), requires_grad=True)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 3] = mask[1, 7] = False
    first = quantizer(z, mask)
    first.loss.backward()
    assert bool((z.grad[0, 3] == 0).all()) and bool((z.grad[1, 7] == 0).all())
    assert bool((z.grad[0, 2] != 0).any())

    changed = z.detach().clone()
    changed[0, 3] = 50.0 * torch.randn(6)
    changed[1, 7] = -changed[1, 7]
    second = quantizer(changed, mask)
    for key in AUX_KEYS:
        assert torch.equal(first.aux_losses[key].detach(), second.aux_losses[key])
    # The masked tokens are still quantized.
    assert torch.equal(second.indices[0, 3], quantizer.codes_to_indices(changed[0, 3]))


@pytest.mark.parametrize("cls", CLASSES)
def test_everything_masked_gives_zero_losses_and_a_working_backward(cls):
    z = torch.randn(4, 5, requires_grad=True)
    out = cls(num_bits=5).train()(z, torch.zeros(4, dtype=torch.bool))
    assert all(float(value.detach()) == 0.0 for value in out.aux_losses.values())
    out.loss.backward()
    assert bool((z.grad == 0).all())


# ---------------------------------------------------------------------------------------------- memory law
def test_memory_law_at_18_bits_and_1024_tokens():
    """At d = 18 the naive entropy keeps several N × 2^18 tensors for backward (1 GiB each at N = 1024).

    Measured with :func:`torch.autograd.graph.saved_tensors_hooks`: the bytes of every tensor autograd keeps for
    the backward pass (counting shared storage more than once: an upper bound on what the graph holds), plus the
    wall time of forward + backward on one thread.
    """
    num_tokens, num_bits = 1024, 18
    naive = num_tokens * 2**num_bits * 4
    saved = 0

    def pack(tensor):
        nonlocal saved
        saved += tensor.numel() * tensor.element_size()
        return tensor

    z = torch.randn(num_tokens, num_bits, generator=torch.Generator().manual_seed(4), requires_grad=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            out = LFQ(num_bits=num_bits).train()(z)
        out.loss.backward()
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    assert saved < 200 * 2**20, f"{saved / 2**20:.1f} MiB saved for backward"
    assert saved < naive / 20
    assert elapsed < 5.0, f"{elapsed:.2f} s"
    assert torch.isfinite(z.grad).all()
    # About log(1024) distinct codes in the batch, a confident code per token at tau = 0.01.
    assert 6.5 < out.aux_losses["batch_entropy"].item() < math.log(2**num_bits)


# ---------------------------------------------------------------------------------------------- swapping
@pytest.mark.parametrize("name", ["lfq", "bsq"])
def test_swap_by_constructor(name):
    kwargs = {"num_bits": 5, "entropy_loss_weight": 0.2, "commitment_loss_weight": 0.1, "diversity_gamma": 1.5}
    quantizer = QUANTIZERS.create(name, inv_temperature=10.0, **kwargs).train()
    z = torch.randn(2, 3, 5)
    out = quantizer(z)
    assert isinstance(out, QuantizerOutput)
    quantized, indices, aux_losses = out  # unpacks like vector-quantize-pytorch
    assert quantized.shape == z.shape and indices.shape == (2, 3) and set(aux_losses) == AUX_KEYS
    assert all(value.ndim == 0 for value in aux_losses.values())
    for other in CLASSES:
        clone = other(**quantizer.config)
        assert clone.config == quantizer.config
        assert torch.equal(clone.train()(z).indices, indices)  # same sign pattern, same index
    assert sorted(QUANTIZERS.list()) == ["bsq", "lfq"]


@pytest.mark.parametrize("cls", CLASSES)
def test_channel_dim_for_convolution_layouts(cls):
    z = torch.randn(2, 4, 3, 5, 6, generator=torch.Generator().manual_seed(5))  # (B, d, T, H, W)
    first = cls(num_bits=4, channel_dim=1).train()(z)
    last = cls(num_bits=4).train()(z.movedim(1, -1))
    assert torch.equal(first.quantized, last.quantized.movedim(-1, 1))
    assert torch.equal(first.indices, last.indices) and first.indices.shape == (2, 3, 5, 6)
    for key in AUX_KEYS:
        torch.testing.assert_close(first.aux_losses[key], last.aux_losses[key])
    assert torch.equal(cls(num_bits=4, channel_dim=1).indices_to_codes(first.indices), first.quantized)


@pytest.mark.parametrize("cls", CLASSES)
def test_losses_are_computed_in_training_or_on_request(cls):
    quantizer = cls(num_bits=5)
    z = torch.randn(6, 5)
    evaluated = quantizer.eval()(z)
    assert all(float(value) == 0.0 for value in evaluated.aux_losses.values())
    requested = quantizer(z, compute_losses=True)
    trained = quantizer.train()(z)
    for key in AUX_KEYS:
        torch.testing.assert_close(requested.aux_losses[key], trained.aux_losses[key])
    assert float(trained.aux_losses["batch_entropy"]) > 0


# ---------------------------------------------------------------------------------------------- errors
def test_bad_arguments_name_what_is_wrong():
    with pytest.raises(ValueError, match=r"num_bits=4 channels.*\(2, 5\)"):
        LFQ(num_bits=4)(torch.randn(2, 5))
    with pytest.raises(TypeError, match="floating-point"):
        LFQ(num_bits=4)(torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"mask must have z's shape.*\(2,\).*\(3,\)"):
        BSQ(num_bits=4)(torch.randn(2, 4), torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a bool"):
        BSQ(num_bits=4)(torch.randn(2, 4), torch.ones(2))
    with pytest.raises(ValueError, match="num_bits must be <= 24"):
        LFQ(num_bits=25)
    with pytest.raises(ValueError, match="inv_temperature must be > 0"):
        BSQ(inv_temperature=0.0)
    with pytest.raises(ValueError, match="diversity_gamma"):
        LFQ(diversity_gamma=float("nan"))
    with pytest.raises(TypeError, match="num_bits must be an int"):
        LFQ(num_bits=4.0)
    with pytest.raises(ValueError, match="channel_dim=3 is out of range"):
        LFQ(num_bits=4, channel_dim=3)(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"bit_logits must be \(tokens, bits\)"):
        factorized_entropy(torch.randn(5))
    with pytest.raises(ValueError, match="mask must be a bool tensor of shape"):
        factorized_entropy(torch.randn(5, 3), torch.ones(4, dtype=torch.bool))


MODULES = ["entropy", "base", "lfq", "bsq"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"vidtok.tokenizers.quantizers.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
