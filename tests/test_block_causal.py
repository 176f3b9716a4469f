"""NOVA's block-causal temporal transformer (``block_causal``): the block mask, the frame cache and its window,
sine-cosine positions and the Scaling and Shift layer."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vidtok
from vidtok.backbones.block_causal import BlockCausalCache, BlockCausalTransformer, sincos_embedding

D, N = 32, 4  # width; tokens per frame (a 2 x 2 grid)


def make(**kwargs) -> BlockCausalTransformer:
    torch.manual_seed(0)
    return BlockCausalTransformer(**{**BlockCausalTransformer.tiny_config(), **kwargs}).eval()


def layout(frames: int, prefix: int = 3, first_t: int = 0):
    """NOVA's sequence: a prefix block 0 (prompt tokens without position + the BOV slots), then one block per frame.

    Returns ``(block_ids, positions)`` for ``prefix`` prompt tokens, ``N`` BOV slots at t = first_t and
    ``frames`` frames of ``N`` tokens at t = first_t + 1, ...
    """
    grid = torch.tensor([[0.0, 0], [0, 1], [1, 0], [1, 1]])
    blocks = [torch.zeros(prefix + N, dtype=torch.long)]
    positions = [torch.full((prefix, 3), float("nan"))]
    for f in range(frames + 1):
        t = torch.full((N, 1), float(first_t + f))
        positions.append(torch.cat([t, grid], -1))
        if f:
            blocks.append(torch.full((N,), f, dtype=torch.long))
    return torch.cat(blocks), torch.cat(positions)[None]


def test_registered_and_exported():
    assert vidtok.BACKBONES.get("block_causal") is BlockCausalTransformer
    assert "block_causal" in vidtok.BACKBONES.list()


def test_changing_a_frame_changes_its_own_frame_and_later_ones_never_earlier():
    net = make()
    blocks, pos = layout(frames=3)
    x = torch.randn(1, blocks.numel(), D)
    base = net(x, position_ids=pos, block_ids=blocks).last_hidden_state
    frame2 = torch.nonzero(blocks == 2).squeeze(-1)
    y = x.clone()
    y[:, frame2[-1]] += 1.0  # one token of frame 2
    out = net(y, position_ids=pos, block_ids=blocks).last_hidden_state
    changed = (out - base).abs().amax(-1)[0] > 1e-6
    assert not changed[blocks < 2].any(), "an earlier block saw a later frame"
    assert changed[blocks == 2].all(), "every token of the frame sees the changed token (bidirectional inside)"
    assert changed[blocks > 2].all()


@settings(max_examples=20, deadline=None)
@given(sizes=st.lists(st.integers(1, 3), min_size=2, max_size=5), seed=st.integers(0, 1000), which=st.integers(0, 100))
def test_block_mask_law_for_any_partition(sizes, seed, which):
    """Perturbing position p changes exactly the positions of blocks >= block(p) that can see it (all of them)."""
    net = make(mixer_rank=None)
    blocks = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, blocks.numel(), D, generator=gen)
    p = which % blocks.numel()
    y = x.clone()
    y[0, p] += torch.randn(D, generator=gen)
    with torch.no_grad():
        a = net(x, block_ids=blocks).last_hidden_state
        b = net(y, block_ids=blocks).last_hidden_state
    changed = (a - b).abs().amax(-1)[0] > 1e-6
    assert torch.equal(changed, blocks >= blocks[p])


def test_cached_frame_by_frame_generation_equals_one_uncached_pass():
    net = make()
    blocks, pos = layout(frames=4)
    x = torch.randn(2, blocks.numel(), D)
    full = net(x, position_ids=pos, block_ids=blocks).last_hidden_state
    cache, outs = None, []
    for b in blocks.unique():
        idx = torch.nonzero(blocks == b).squeeze(-1)
        out = net(x[:, idx], position_ids=pos[:, idx], block_ids=blocks[idx], past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        outs.append(out.last_hidden_state)
    assert isinstance(cache, BlockCausalCache) and net.cache_length(cache) == blocks.numel()
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=1e-4)


def test_padding_mask_is_respected_with_the_cache():
    net = make()
    blocks, pos = layout(frames=2)
    x = torch.randn(2, blocks.numel(), D)
    mask = torch.ones(2, blocks.numel(), dtype=torch.long)
    mask[1, 0] = 0  # the second row's first prompt token is padding
    full = net(x, attention_mask=mask, position_ids=pos, block_ids=blocks).last_hidden_state
    assert torch.isfinite(full).all()
    split = int((blocks == 0).sum())
    first = net(
        x[:, :split],
        attention_mask=mask[:, :split],
        position_ids=pos[:, :split],
        block_ids=blocks[:split],
        use_cache=True,
    )
    rest = net(
        x[:, split:],
        attention_mask=mask,
        position_ids=pos[:, split:],
        block_ids=blocks[split:],
        past_key_values=first.past_key_values,
    )
    torch.testing.assert_close(rest.last_hidden_state, full[:, split:], atol=1e-5, rtol=1e-4)
    # The padded token really is invisible: changing it changes nothing of row 1 but itself.
    y = x.clone()
    y[1, 0] += 5.0
    again = net(y, attention_mask=mask, position_ids=pos, block_ids=blocks).last_hidden_state
    torch.testing.assert_close(again[1, 1:], full[1, 1:], atol=1e-5, rtol=1e-4)


def run_cached(net, x, blocks, pos, cache=None):
    outs = []
    for b in blocks.unique().tolist():
        idx = torch.nonzero(blocks == b).squeeze(-1)
        out = net(x[:, idx], position_ids=pos[:, idx], block_ids=blocks[idx], past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        outs.append(out.last_hidden_state)
        yield b, cache, torch.cat(outs, 1)


def test_sliding_window_keeps_the_prefix_and_the_last_frames():
    window, frames = 2, 5
    net = make(attention_window=window)
    blocks, pos = layout(frames=frames)
    x = torch.randn(1, blocks.numel(), D)
    kept = {b: cache.block_ids.unique().tolist() for b, cache, _ in run_cached(net, x, blocks, pos)}
    assert kept == {b: [0, *range(max(1, b - window + 1), b + 1)] for b in range(frames + 1)}
    *_, (_, cache, outs) = run_cached(net, x, blocks, pos)
    # Memory is flat: the prefix block plus `window` frames.
    assert net.cache_length(cache) == int((blocks == 0).sum()) + window * N
    # The windowed cache reproduces a windowed full pass exactly, and differs from unwindowed attention.
    windowed = net(x, position_ids=pos, block_ids=blocks).last_hidden_state
    torch.testing.assert_close(outs, windowed, atol=1e-5, rtol=1e-4)
    plain = make()(x, position_ids=pos, block_ids=blocks).last_hidden_state
    torch.testing.assert_close(windowed[:, blocks <= window], plain[:, blocks <= window], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(windowed[:, -N:], plain[:, -N:], atol=1e-4)
    # An inference-only window on a model trained without one; and a window as long as the video is none.
    *_, (_, cache, outs) = run_cached(make(), x, blocks, pos, cache=make().new_cache(window=window))
    torch.testing.assert_close(outs, windowed, atol=1e-5, rtol=1e-4)
    *_, (_, cache, outs) = run_cached(make(attention_window=frames), x, blocks, pos)
    torch.testing.assert_close(outs, plain, atol=1e-5, rtol=1e-4)


def test_sine_cosine_positions_extrapolate_and_nan_means_none():
    net = make()
    emb = net.position_embedding(torch.tensor([[[0.0, 0, 0], [40.0, 9, 9], [float("nan")] * 3]]))
    assert emb.shape == (1, 3, D) and torch.equal(emb[0, 2], torch.zeros(D))
    # Time features for t beyond anything trained are still distinct and bounded.
    t = sincos_embedding(torch.arange(0, 200.0), 16)
    assert t.abs().max() <= 1.0 and torch.cdist(t, t).add(torch.eye(200)).min() > 1e-3
    # 1-D positions (B, L) are time only; frames at other times or places give other outputs.
    x = torch.randn(1, 4, D)
    a = net(x, position_ids=torch.arange(4.0)[None]).last_hidden_state
    b = net(x, position_ids=torch.arange(4.0)[None] + 10).last_hidden_state
    assert not torch.allclose(a, b, atol=1e-4)


def test_scale_and_shift_is_an_affine_map_of_the_anchor():
    net = make(mixer_rank=3)
    assert net.mixer.down.weight.shape == (3, D)  # the low rank of §3.2 (24 in the paper)
    anchor, frame = torch.randn(2, N, D), torch.randn(2, N, D)
    with torch.no_grad():
        net.mixer.up.weight.zero_()
        net.mixer.up.bias.zero_()
    torch.testing.assert_close(net.scale_and_shift(anchor, frame), anchor)  # γ = 1, β = 0 (as frame 0)
    with torch.no_grad():
        net.mixer.up.bias.copy_(torch.cat([torch.full((D,), 1.0), torch.full((D,), 0.5)]))
    torch.testing.assert_close(net.scale_and_shift(anchor, frame), 2 * anchor + 0.5)
    with pytest.raises(RuntimeError, match="mixer_rank=None"):
        make(mixer_rank=None).scale_and_shift(anchor, frame)
    with pytest.raises(ValueError, match="must match"):
        net.scale_and_shift(anchor, frame[:, :2])


def test_the_paper_size_on_the_meta_device():
    with torch.device("meta"):
        net = BlockCausalTransformer(hidden_size=1024, num_layers=16, num_heads=16, mixer_rank=24)
    params = sum(p.numel() for p in net.parameters())
    per_layer = 4 * 1024 * 1024 + 4 * 1024 + 2 * 4 * 1024 * 1024 + 4 * 1024 + 1024 + 4 * 1024  # attn, mlp, norms
    mixer = 1024 * 24 + 24 * 2048 + 2048
    assert params == 16 * per_layer + 2 * 1024 + mixer


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_ids": torch.tensor([0, 1, 0])}, "non-decreasing"),
        ({"block_ids": torch.tensor([0.0, 1.0, 2.0])}, "integer ids"),
        ({"block_ids": torch.tensor([0, 1])}, r"shape \(L,\)"),
        ({"position_ids": torch.zeros(1, 2)}, "position_ids"),
        ({"attention_mask": torch.ones(1, 2)}, "attention_mask"),
    ],
)
def test_bad_inputs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make()(torch.randn(1, 3, D), **kwargs)


def test_bad_cache_use_raises():
    net = make()
    cache = net(torch.randn(1, 2, D), block_ids=torch.tensor([0, 1]), use_cache=True).past_key_values
    with pytest.raises(ValueError, match="continue after the cache"):
        net(torch.randn(1, 1, D), block_ids=torch.tensor([1]), past_key_values=cache)
    with pytest.raises(TypeError, match="BlockCausalCache"):
        net(torch.randn(1, 1, D), past_key_values=((torch.zeros(1), torch.zeros(1)),))
    with pytest.raises(ValueError, match="inputs_embeds"):
        net(torch.randn(1, 1, D + 1))
    with pytest.raises(ValueError, match="differs from the cache's window"):
        net(torch.randn(1, 1, D), block_ids=torch.tensor([2]), past_key_values=cache, attention_window=3)


def test_a_full_pass_with_an_inference_window_equals_the_windowed_cache():
    net = make()  # trained (here: built) without a window
    blocks, pos = layout(frames=4)
    x = torch.randn(1, blocks.numel(), D)
    *_, (_, _, cached) = run_cached(net, x, blocks, pos, cache=net.new_cache(window=1))
    full = net(x, position_ids=pos, block_ids=blocks, attention_window=1).last_hidden_state
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden_size": 30, "num_heads": 4}, "divide"),
        ({"hidden_size": 6, "num_heads": 2}, "multiple of 4"),
        ({"mixer_rank": 0}, "mixer_rank"),
        ({"attention_window": 0}, "attention_window"),
        ({"num_layers": 0}, "num_layers"),
    ],
)
def test_bad_configs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BlockCausalTransformer(**{**BlockCausalTransformer.tiny_config(), **kwargs})
