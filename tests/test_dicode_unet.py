"""The DiCoDe (DynamiCrafter) video UNet: checkpoint naming, shapes, attention maths, head/rear conditioning."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
import torch

from vidtok.tokenizers._dicode_unet import (
    DiCoDeUNet,
    _Attention,
    _sinusoidal,
    _SpatialTransformer,
    _TemporalConv,
    _TemporalTransformer,
)

# The official key lists (``../shared/research/dicode-official-keys``), kept with the tests.
KEYS_JSON = Path(__file__).parent / "data" / "dicode_official_keys.json.gz"
PREFIX = "model.diffusion_model."
# Parameters of the released UNet, counted from the key list (1,438.8 M).
OFFICIAL_PARAMS = 1_438_843_476


def _tiny(**overrides) -> DiCoDeUNet:
    torch.manual_seed(0)
    return DiCoDeUNet(**{**DiCoDeUNet.tiny_config(), **overrides}).eval()


def _inputs(model: DiCoDeUNet, b: int = 2, t: int = 5, size: int = 16, n: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    d = model.context_dim
    sample = torch.randn(b, model.in_channels, t, size, size, generator=g)
    head, rear = torch.randn(b, n, d, generator=g), torch.randn(b, n, d, generator=g)
    return sample, torch.tensor([3, 700])[:b], head, rear


def _randomize(modules, seed: int = 2, std: float = 0.2) -> None:
    """Overwrite the parameters of ``modules`` (the zero-initialised ones) with random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in modules:
            for p in module.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * std)


def _spatial_zero_inits(model: DiCoDeUNet) -> list[torch.nn.Module]:
    """Zero-initialised layers on the per-frame path: ResNet output convs, spatial proj_out, output conv."""
    found = [model.out[2]]
    for name, module in model.named_modules():
        if isinstance(module, _SpatialTransformer):
            found.append(module.proj_out)
        elif name.endswith("out_layers"):
            found.append(module[3])
    return found


def _temporal_zero_inits(model: DiCoDeUNet) -> list[torch.nn.Module]:
    found = []
    for module in model.modules():
        if isinstance(module, _TemporalTransformer):
            found.append(module.proj_out)
        elif isinstance(module, _TemporalConv):
            found.append(module.conv4[3])
    return found


def test_full_size_matches_official_checkpoint_keys() -> None:
    with gzip.open(KEYS_JSON, "rt") as f:
        official = json.load(f)["tokenizer"]
    expected = {
        k[len(PREFIX) :].replace("temopral_conv", "temporal_conv"): tuple(shape)
        for k, shape in official.items()
        if k.startswith(PREFIX)
    }
    assert len(expected) == 1532
    with torch.device("meta"):
        unet = DiCoDeUNet()
    got = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    assert got.pop("text_context") == (77, 1024)
    assert set(got) == set(expected)
    assert {k: s for k, s in got.items() if expected[k] != s} == {}
    n_params = sum(p.numel() for p in unet.parameters())
    assert n_params == sum(math.prod(s) for s in expected.values()) == OFFICIAL_PARAMS
    assert abs(n_params / 1e6 - 1438.8) < 0.1
    # Shapes through the whole network at DiCoDe's clip size (16 frames of 32x32 latents), without memory.
    with torch.device("meta"):
        out = unet(torch.empty(2, 4, 16, 32, 32), torch.tensor([1, 981]), *torch.empty(2, 2, 16, 1024).unbind(1))
    assert out.shape == (2, 4, 16, 32, 32)


def test_constructor_accepts_lists_and_exposes_denoiser_attributes() -> None:
    config = {**DiCoDeUNet.tiny_config(), "channel_mult": [1, 2], "attention_resolutions": [1]}
    unet = DiCoDeUNet(**json.loads(json.dumps(config)))
    assert unet.in_channels == 4 and unet.spatial is None and unet.fs == 6
    assert unet.text_context.shape == (4, 16) and not unet.text_context.any()
    with pytest.raises(ValueError, match="context_mode"):
        DiCoDeUNet(**{**DiCoDeUNet.tiny_config(), "context_mode": "both"})


@pytest.mark.parametrize("frames", [1, 5])
def test_tiny_forward_shape_finite_deterministic(frames: int) -> None:
    unet = _tiny()
    _randomize(_spatial_zero_inits(unet) + _temporal_zero_inits(unet))
    sample, timestep, head, rear = _inputs(unet, t=frames)
    with torch.no_grad():
        out = unet(sample, timestep, head, rear, torch.tensor([4, 4]))
        again = unet(sample, timestep, head, rear, torch.tensor([4, 4]))
    assert out.shape == (2, 4, frames, 16, 16)
    assert torch.isfinite(out).all() and out.abs().max() > 0
    assert torch.equal(out, again)


def test_zero_init_output_and_gradients_reach_every_parameter() -> None:
    unet = _tiny()
    sample, timestep, head, rear = _inputs(unet)
    assert not unet(sample, timestep, head, rear).any()  # zero output conv: predicts 0 at initialisation
    zero_init = [p for p in unet.parameters() if not p.any()]
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in zero_init:
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        unet.text_context.normal_(generator=g)  # an all-zero text context gives to_k / to_v no gradient
    unet(sample, timestep, head, rear).square().mean().backward()
    missing = [name for name, p in unet.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_image_cross_attention_matches_direct_computation() -> None:
    torch.manual_seed(0)
    heads, head_dim = 2, 4
    attn = _Attention(8, heads, head_dim, context_dim=6, image_context=True).double()
    with torch.no_grad():
        attn.alpha.fill_(0.7)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    text = torch.randn(1, 4, 6, dtype=torch.float64)  # shared by every query row's batch element
    image = torch.randn(3, 2, 6, dtype=torch.float64)

    def split(t: torch.Tensor) -> torch.Tensor:  # (b, n, h*d) -> (b, h, n, d)
        return t.view(t.shape[0], t.shape[1], heads, head_dim).transpose(1, 2)

    def direct(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = split(x @ attn.to_q.weight.T)
        k, v = split(k.expand(3, -1, -1)), split(v.expand(3, -1, -1))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), dim=-1)
        return (weights @ v).transpose(1, 2).reshape(3, 5, heads * head_dim)

    out_text = direct(text @ attn.to_k.weight.T, text @ attn.to_v.weight.T)
    out_image = direct(image @ attn.to_k_ip.weight.T, image @ attn.to_v_ip.weight.T)
    combined = out_text + out_image * (math.tanh(0.7) + 1)
    expected = combined @ attn.to_out[0].weight.T + attn.to_out[0].bias
    torch.testing.assert_close(attn(x, (text, image)), expected)
    # Without a context (temporal layers, attn1) it is plain self-attention through to_k / to_v.
    plain = _Attention(8, heads, head_dim).double()
    q, k, v = (split(x @ layer.weight.T) for layer in (plain.to_q, plain.to_k, plain.to_v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), dim=-1)
    expected = (weights @ v).transpose(1, 2).reshape(3, 5, 8) @ plain.to_out[0].weight.T + plain.to_out[0].bias
    torch.testing.assert_close(plain(x), expected)


def test_head_rear_assignment_per_frame() -> None:
    unet = _tiny()
    # Per-frame path live, temporal layers (temporal convs, temporal transformers, init_attn) still zero:
    # the frames are then processed independently.
    _randomize(_spatial_zero_inits(unet))
    sample, timestep, head, rear = _inputs(unet, b=1, t=6)
    positions = torch.linspace(0, 1, 6)  # frames 0-2 before 0.5 (head), 3-5 after (rear)
    other_rear = torch.randn_like(rear)
    with torch.no_grad():
        out = unet(sample, timestep, head, rear)
        changed = unet(sample, timestep, head, other_rear)
        frame_by_frame = torch.cat(
            [unet(sample[:, :, i : i + 1], timestep, head, rear, positions=positions[i : i + 1]) for i in range(6)],
            dim=2,
        )
    torch.testing.assert_close(frame_by_frame, out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(changed[:, :, :3], out[:, :, :3], rtol=0, atol=1e-6)
    assert (changed[:, :, 3:] - out[:, :, 3:]).abs().amax(dim=(0, 1, 3, 4)).min() > 1e-3

    # The text context conditions every frame.
    with torch.no_grad():
        unet.text_context.normal_()
        with_text = unet(sample, timestep, head, rear)
    assert (with_text - out).abs().amax(dim=(0, 1, 3, 4)).min() > 1e-3

    # With the temporal layers live, the rear tokens reach the first half too.
    _randomize(_temporal_zero_inits(unet), seed=5)
    with torch.no_grad():
        mixed = unet(sample, timestep, head, rear)
        mixed_changed = unet(sample, timestep, head, other_rear)
    assert (mixed_changed[:, :, :3] - mixed[:, :, :3]).abs().max() > 1e-3


def test_stride_ignored_fs_attribute_used() -> None:
    unet = _tiny()
    _randomize(_spatial_zero_inits(unet) + [unet.fps_embedding[2]])
    sample, timestep, head, rear = _inputs(unet)
    with torch.no_grad():
        out = unet(sample, timestep, head, rear, torch.tensor([2, 2]))
        assert torch.equal(unet(sample, timestep, head, rear, torch.tensor([9, 30])), out)
        unet.fs = 3
        assert (unet(sample, timestep, head, rear) - out).abs().max() > 1e-4


def test_timestep_embedding_is_ldm_cos_then_sin() -> None:
    t = torch.tensor([0, 3, 250])
    emb = _sinusoidal(t, 8)
    freqs = torch.exp(-math.log(10000) * torch.arange(4) / 4)
    args = t[:, None].float() * freqs
    torch.testing.assert_close(emb, torch.cat([args.cos(), args.sin()], dim=-1))


def test_runs_in_parameter_dtype_returns_sample_dtype() -> None:
    unet = _tiny().double()
    _randomize(_spatial_zero_inits(unet))
    sample, timestep, head, rear = _inputs(unet, t=2)
    out = unet(sample, timestep.float(), head, rear)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_bad_inputs() -> None:
    unet = _tiny()
    sample, timestep, head, rear = _inputs(unet)
    with pytest.raises(ValueError, match="spatial must be None"):
        unet(sample, timestep, head, rear, spatial=(sample, sample))
    with pytest.raises(ValueError, match=r"head must have shape \(B, N, context_dim\) = \(2, N, 16\)"):
        unet(sample, timestep, head[..., :8], rear[..., :8])
    with pytest.raises(ValueError, match="head must have shape"):
        unet(sample, timestep, head[:1], rear[:1])
    with pytest.raises(ValueError, match="rear must have the shape of head"):
        unet(sample, timestep, head, rear[:, :2])
    with pytest.raises(ValueError, match="positions must have shape"):
        unet(sample, timestep, head, rear, positions=torch.zeros(3))
    with pytest.raises(ValueError, match="divisible by 2"):
        unet(sample[..., :15, :15], timestep, head, rear)
    with pytest.raises(ValueError, match="sample must have shape"):
        unet(sample[:, :3], timestep, head, rear)
