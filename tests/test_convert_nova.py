"""NOVA's released diffusion head converts key by key into ``DiffusionMLPHead(adaln="nova")``.

The released tensors are random here (no weights can be downloaded); their names and shapes are those of the
official ``diffnext`` ``DiffusionMLP``, and ``reference`` is an independent forward pass of that architecture
written from its description (patch-embedding convolution, condition and time projectors, AdaLN-Zero blocks
with a post-LayerNorm branch, stats in (scale, shift, gate) order, a head in (p1, p2, c) order).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vidtok.convert import ConversionError, convert_nova_head, nova_head_config
from vidtok.heads.diffusion_mlp import DiffusionMLPHead

C, P, D, COND, DEPTH, FREQ = 4, 2, 32, 24, 3, 256


def released_state(seed: int = 0, prefix: str = "image_decoder.") -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.2  # noqa: E731
    state = {"patch_embed.proj.weight": r(D, C, P, P), "patch_embed.proj.bias": r(D)}
    for name, inp in (("timestep_proj", FREQ), ("condition_proj", COND)):
        state |= {f"time_cond_embed.{name}.fc1.weight": r(D, inp), f"time_cond_embed.{name}.fc1.bias": r(D),
                  f"time_cond_embed.{name}.fc2.weight": r(D, D), f"time_cond_embed.{name}.fc2.bias": r(D)}  # fmt: skip
    for i in range(DEPTH):
        state |= {f"blocks.{i}.norm1.proj.weight": r(3 * D, D), f"blocks.{i}.norm1.proj.bias": r(3 * D),
                  f"blocks.{i}.proj.fc1.weight": r(D, D), f"blocks.{i}.proj.fc1.bias": r(D),
                  f"blocks.{i}.proj.fc2.weight": r(D, D), f"blocks.{i}.proj.fc2.bias": r(D),
                  f"blocks.{i}.norm2.weight": 1 + r(D), f"blocks.{i}.norm2.bias": r(D)}  # fmt: skip
    state |= {"norm.proj.weight": r(2 * D, D), "norm.proj.bias": r(2 * D), "head.weight": r(P * P * C, D),
              "head.bias": r(P * P * C)}  # fmt: skip
    return {prefix + k: v for k, v in state.items()}


def reference(s: dict[str, torch.Tensor], patches: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """NOVA's DiffusionMLP on ``(N, C, P, P)`` patches; returns ``(N, P, P, C)``."""
    lin = lambda x, k: F.linear(x, s[k + ".weight"], s[k + ".bias"])  # noqa: E731
    x = F.conv2d(patches, s["patch_embed.proj.weight"], s["patch_embed.proj.bias"], stride=P).flatten(1)
    half = FREQ // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / half)
    emb = torch.cat([torch.cos(t[:, None] * freqs), torch.sin(t[:, None] * freqs)], -1)
    proj = lambda x, k: lin(F.silu(lin(x, k + ".fc1")), k + ".fc2")  # noqa: E731
    c = proj(z, "time_cond_embed.condition_proj") + proj(emb, "time_cond_embed.timestep_proj")
    for i in range(DEPTH):
        scale, shift, gate = lin(F.silu(c), f"blocks.{i}.norm1.proj").chunk(3, -1)
        h = F.layer_norm(x, (D,), eps=1e-6) * (1 + scale) + shift
        h = proj(h, f"blocks.{i}.proj")
        x = x + gate * F.layer_norm(h, (D,), s[f"blocks.{i}.norm2.weight"], s[f"blocks.{i}.norm2.bias"], eps=1e-5)
    scale, shift = lin(F.silu(c), "norm.proj").chunk(2, -1)
    x = F.layer_norm(x, (D,), eps=1e-6) * (1 + scale) + shift
    return lin(x, "head").reshape(-1, P, P, C)


def test_converted_head_computes_the_released_function():
    state = released_state()
    config = nova_head_config(state)
    assert config == {"adaln": "nova", "width": D, "depth": DEPTH, "hidden_size": COND, "token_dim": C * P * P,
                      "timestep_embedding_dim": FREQ}  # fmt: skip
    head = DiffusionMLPHead(**config).eval()
    converted = convert_nova_head(state, head=head)
    assert set(converted) == set(head.state_dict())
    g = torch.Generator().manual_seed(1)
    patches, z = torch.randn(10, C, P, P, generator=g), torch.randn(10, COND, generator=g)
    t = torch.tensor([0.0, 1, 17, 250, 500, 999, 3.5, 42, 600, 999])
    want = reference({k.removeprefix("image_decoder."): v for k, v in state.items()}, patches, t, z)
    with torch.no_grad():
        got = head(patches.reshape(10, -1), t, z)  # continuous_vae tokens are (c, p1, p2)
    torch.testing.assert_close(got.reshape(10, C, P, P), want.permute(0, 3, 1, 2), atol=1e-5, rtol=1e-5)


def test_every_key_is_accounted_for():
    state = released_state(prefix="")
    head = DiffusionMLPHead(**nova_head_config(state, prefix=""))
    with pytest.raises(ConversionError, match=r"missing blocks\.1\.norm2\.bias") as err:
        convert_nova_head({k: v for k, v in state.items() if k != "blocks.1.norm2.bias"}, prefix="")
    assert "unmapped" not in str(err.value)  # a missing key does not make the keys read after it look unused
    with pytest.raises(ConversionError, match=r"unmapped blocks\.0\.extra"):
        convert_nova_head({**state, "blocks.0.extra": torch.zeros(1)}, prefix="")
    with pytest.raises(ConversionError, match="adaln='nova'"):
        convert_nova_head(state, prefix="", head=DiffusionMLPHead(**{**nova_head_config(state, ""), "adaln": "joint"}))
    with pytest.raises(ConversionError, match="does not fit"):
        convert_nova_head(state, prefix="", head=DiffusionMLPHead(**{**nova_head_config(state, ""), "width": 16}))
    with pytest.raises(ConversionError, match="not a NOVA DiffusionMLP"):
        nova_head_config(state)  # the default prefix finds nothing
    convert_nova_head(state, prefix="", head=head)  # the whole dict converts


@pytest.mark.parametrize(
    ("cond", "width", "depth", "millions"),
    [(1024, 1280, 3, 32.84), (768, 768, 6, 20.90), (1024, 1024, 6, 37.05), (1536, 1536, 6, 83.09), (256, 256, 3, 1.39)],
)
def test_nova_heads_have_the_released_sizes(cond, width, depth, millions):
    """mlp_d3w1280 (the T2V model's head) and the T2I models' mlp_d6w{768,1024,1536}, 2 x 2 x 4 tokens."""
    with torch.device("meta"):
        head = DiffusionMLPHead(adaln="nova", hidden_size=cond, width=width, depth=depth, token_dim=16)
    assert round(sum(p.numel() for p in head.parameters()) / 1e6, 2) == millions
