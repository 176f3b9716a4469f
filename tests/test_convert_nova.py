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
from einops import rearrange

from vidtok.convert import ConversionError, convert_nova_head, convert_nova_transformer, nova_head_config
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


# ---------------------------------------------------------------------------------------------------------------
# The whole released transformer. ``released_transformer`` makes tensors with the names and shapes of diffnext's
# NOVATransformer3DModel; ``reference_*`` run that architecture from its description (res-post-norm blocks with
# LayerNorm eps 1e-5, an additive block mask, a learned time embedding LayerNorm(MLP(sincos(t * base_t / T))),
# 2-D sine-cosine positions [sin x, cos x, sin y, cos y], BOV and mask tokens, unprojected indicators, the
# low-rank AdaLN mixer on the BOV output), independently of vidtok's modules.

TINY_ARCH = {"vit_d2w32": (2, 32, 4), "vit_d4w32": (4, 32, 4)}


def tiny_transformer_config(**changes):
    config = {"image_dim": 4, "image_size": [32, 64], "image_stride": 8, "text_token_dim": 12, "text_token_len": 6,
              "video_base_size": [16, 1, 2], "image_base_size": [2, 4], "video_mixer_rank": 3,
              "rotary_pos_embed": False, "arch": ["vit_d2w32", "vit_d4w32", "mlp_d3w1280"]}  # fmt: skip
    return {**config, **changes}


def released_transformer(config, *, head_width=D, head_depth=DEPTH, seed=0, device=None, pad_rows=9):
    """Random tensors named and shaped like a released NOVATransformer3DModel (on ``device``: meta for sizes)."""
    g = torch.Generator().manual_seed(seed)
    arch = {**TINY_ARCH, "vit_d16w1024": (16, 1024, 16), "vit_d32w1024": (32, 1024, 16)}
    (vdepth, width, _), (sdepth, _, _) = arch[config["arch"][0]], arch[config["arch"][1]]
    c, e, p = config["image_dim"], config["text_token_dim"], 15 // config["image_stride"] + 1

    def r(*shape, one=False):
        if device == "meta":
            return torch.empty(*shape, device="meta")
        return (1.0 if one else 0.0) + torch.randn(*shape, generator=g) * 0.2

    def blocks(prefix, depth):
        out = {}
        for i in range(depth):
            b = f"{prefix}.blocks.{i}"
            out |= {f"{b}.attn.qkv.weight": r(3 * width, width), f"{b}.attn.qkv.bias": r(3 * width),
                    f"{b}.attn.proj.weight": r(width, width), f"{b}.attn.proj.bias": r(width),
                    f"{b}.norm1.weight": r(width, one=True), f"{b}.norm1.bias": r(width),
                    f"{b}.norm2.weight": r(width, one=True), f"{b}.norm2.bias": r(width),
                    f"{b}.mlp.fc1.weight": r(4 * width, width), f"{b}.mlp.fc1.bias": r(4 * width),
                    f"{b}.mlp.fc2.weight": r(width, 4 * width), f"{b}.mlp.fc2.bias": r(width)}  # fmt: skip
        return out | {f"{prefix}.norm.weight": r(width, one=True), f"{prefix}.norm.bias": r(width)}

    def mlp(prefix, inp):
        return {f"{prefix}.0.weight": r(width, inp), f"{prefix}.0.bias": r(width),
                f"{prefix}.2.weight": r(width, width), f"{prefix}.2.bias": r(width)}  # fmt: skip

    state = blocks("video_encoder", vdepth) | blocks("image_encoder", sdepth)
    state |= {"video_encoder.patch_embed.proj.weight": r(width, c, 2 * p, 2 * p),
              "video_encoder.patch_embed.proj.bias": r(width),
              "image_encoder.patch_embed.proj.weight": r(width, c, p, p),
              "image_encoder.patch_embed.proj.bias": r(width),
              "mask_embed.bos_token": r(1, width), "mask_embed.mask_token": r(1, width),
              "text_embed.proj.weight": r(width, e), "text_embed.proj.bias": r(width),
              "text_embed.norm.weight": r(width, one=True), "text_embed.norm.bias": r(width),
              "text_embed.weight": r(pad_rows, e),
              "video_pos_embed.norm.weight": r(width, one=True), "video_pos_embed.norm.bias": r(width)}  # fmt: skip
    state |= mlp("video_pos_embed.time_proj", FREQ)
    if config["video_base_size"][0] > 1:
        state |= mlp("motion_embed.flow_proj", FREQ) | mlp("motion_embed.fps_proj", FREQ)
    if config.get("video_mixer_rank"):
        rank = config["video_mixer_rank"]
        state |= {"video_encoder.mixer.lora.weight": r(rank, width),
                  "video_encoder.mixer.proj.weight": r(2 * width, rank),
                  "video_encoder.mixer.proj.bias": r(2 * width)}  # fmt: skip
    head = {"patch_embed.proj.weight": r(head_width, c, p, p), "patch_embed.proj.bias": r(head_width)}
    for name, inp in (("timestep_proj", FREQ), ("condition_proj", width)):
        head |= {f"time_cond_embed.{name}.fc1.weight": r(head_width, inp),
                 f"time_cond_embed.{name}.fc1.bias": r(head_width),
                 f"time_cond_embed.{name}.fc2.weight": r(head_width, head_width),
                 f"time_cond_embed.{name}.fc2.bias": r(head_width)}  # fmt: skip
    for i in range(head_depth):
        hw = head_width
        head |= {f"blocks.{i}.norm1.proj.weight": r(3 * hw, hw), f"blocks.{i}.norm1.proj.bias": r(3 * hw),
                 f"blocks.{i}.proj.fc1.weight": r(hw, hw), f"blocks.{i}.proj.fc1.bias": r(hw),
                 f"blocks.{i}.proj.fc2.weight": r(hw, hw), f"blocks.{i}.proj.fc2.bias": r(hw),
                 f"blocks.{i}.norm2.weight": r(hw, one=True), f"blocks.{i}.norm2.bias": r(hw)}  # fmt: skip
    head |= {"norm.proj.weight": r(2 * head_width, head_width), "norm.proj.bias": r(2 * head_width),
             "head.weight": r(p * p * c, head_width), "head.bias": r(p * p * c)}  # fmt: skip
    return state | {f"image_decoder.{k}": v for k, v in head.items()}


def _sincos(values, dim):
    """[sin, cos] of ``values`` at frequencies 1 / 10000^(k / (dim/2)): diffnext's 1-D features."""
    freqs = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float32) / (dim // 2))
    args = values.float()[:, None] * freqs
    return torch.cat([args.sin(), args.cos()], -1)


def _space(h, w, dim):
    """diffnext's PosEmbed on an (h, w) grid, row-major: [sin x, cos x, sin y, cos y], dim/4 frequencies each."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    fx, fy = _sincos(xs.flatten(), dim // 2), _sincos(ys.flatten(), dim // 2)
    q = dim // 4
    return torch.cat([fx[:, :q], fx[:, q:], fy[:, :q], fy[:, q:]], -1)


def _block(s, prefix, x, heads, mask=None):
    lin = lambda t, k: F.linear(t, s[k + ".weight"], s[k + ".bias"])  # noqa: E731
    ln = lambda t, k: F.layer_norm(t, t.shape[-1:], s[k + ".weight"], s[k + ".bias"], eps=1e-5)  # noqa: E731
    b, n, d = x.shape
    q, k, v = lin(x, f"{prefix}.attn.qkv").view(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads) + (0 if mask is None else mask), -1) @ v
    x = x + ln(lin(att.transpose(1, 2).reshape(b, n, d), f"{prefix}.attn.proj"), f"{prefix}.norm1")
    return x + ln(lin(F.gelu(lin(x, f"{prefix}.mlp.fc1")), f"{prefix}.mlp.fc2"), f"{prefix}.norm2")


def reference_indicators(s, config, latents, text_states, real, heads):
    """The released temporal pass (teacher forcing): indicator features ``(B, T, M, D)`` of every frame."""
    lin = lambda t, k: F.linear(t, s[k + ".weight"], s[k + ".bias"])  # noqa: E731
    ln = lambda t, k: F.layer_norm(t, t.shape[-1:], s[k + ".weight"], s[k + ".bias"], eps=1e-5)  # noqa: E731
    mlp = lambda t, k: lin(F.silu(lin(t, k + ".0")), k + ".2")  # noqa: E731
    b, c, t, h, w = latents.shape
    p2 = 2 * (15 // config["image_stride"] + 1)
    width = s["mask_embed.bos_token"].shape[-1]
    table = s["text_embed.weight"][: text_states.shape[1]]
    text = ln(lin(torch.where(real[..., None], text_states, table), "text_embed.proj"), "text_embed.norm")
    motion = [
        mlp(_sincos(torch.tensor([v]), FREQ), f"motion_embed.{k}_proj") for k, v in (("flow", 5.0), ("fps", 12.0))
    ]
    prefix = torch.cat([text, torch.cat(motion)[None].expand(b, 2, width)], 1)
    frames = latents[:, :, : t - 1].transpose(1, 2).flatten(0, 1)
    slots = F.conv2d(frames, s["video_encoder.patch_embed.proj.weight"], s["video_encoder.patch_embed.proj.bias"],
                     stride=p2).flatten(2).transpose(1, 2).reshape(b, t - 1, -1, width)  # fmt: skip
    m = slots.shape[2]
    x = torch.cat([s["mask_embed.bos_token"].expand(b, 1, m, width), slots], 1)
    base_t = config["video_base_size"][0]
    time = ln(mlp(_sincos(torch.arange(t) / (t / base_t), FREQ), "video_pos_embed.time_proj"), "video_pos_embed.norm")
    x = x + time[None, :, None] + _space(h // p2, w // p2, width)[None, None]
    seq = torch.cat([prefix, x.flatten(1, 2)], 1)
    ids = torch.cat([torch.zeros(prefix.shape[1]), torch.arange(t).repeat_interleave(m)])
    mask = torch.where(ids[:, None] >= ids[None, :], 0.0, float("-inf"))
    depth = 0
    while f"video_encoder.blocks.{depth}.norm1.weight" in s:
        seq = _block(s, f"video_encoder.blocks.{depth}", seq, heads, mask)
        depth += 1
    out = ln(seq[:, prefix.shape[1] :], "video_encoder.norm").reshape(b, t, m, width)
    if "video_encoder.mixer.lora.weight" in s:
        stats = F.silu(out[:, 1:]) @ s["video_encoder.mixer.lora.weight"].T
        scale, shift = lin(stats, "video_encoder.mixer.proj").chunk(2, -1)
        out = torch.cat([out[:, :1], out[:, :1] * (1 + scale) + shift], 1)
    return out


def reference_spatial(s, config, frames, cond, visible, heads):
    """The released spatial encoder-decoder on frames ``(R, C, H, W)`` with ``visible`` token ids ``(R, k)``."""
    p = 15 // config["image_stride"] + 1
    ln = lambda t, k: F.layer_norm(t, t.shape[-1:], s[k + ".weight"], s[k + ".bias"], eps=1e-5)  # noqa: E731
    x = F.conv2d(frames, s["image_encoder.patch_embed.proj.weight"], s["image_encoder.patch_embed.proj.bias"], stride=p)
    r, width, h, w = x.shape
    x = x.flatten(2).transpose(1, 2)
    keep = torch.zeros(r, h * w, 1, dtype=torch.bool).scatter(1, visible[..., None], True)
    masked = torch.where(keep, x, s["mask_embed.mask_token"]) + _space(h, w, width)
    index = visible[..., None].expand(-1, -1, width)
    seq = torch.cat([cond, masked.gather(1, index)], 1)
    depth = 0
    while f"image_encoder.blocks.{depth}.norm1.weight" in s:
        depth += 1
    for i in range(depth // 2):
        seq = _block(s, f"image_encoder.blocks.{i}", seq, heads)
    m = cond.shape[1]
    seq = torch.cat([seq[:, :m], masked.scatter(1, index, seq[:, m:])], 1)
    for i in range(depth // 2, depth):
        seq = _block(s, f"image_encoder.blocks.{i}", seq, heads)
    return ln(seq[:, m:], "image_encoder.norm")


def test_converted_transformer_computes_the_released_function():
    config = tiny_transformer_config()
    state = released_transformer(config)
    conversion = convert_nova_transformer(config, state, arch=TINY_ARCH)
    assert conversion.configs["model"]["grid"] == [2, 4] and conversion.configs["model"]["token_dim"] == 16
    assert set(conversion.dropped) == {"text_embed.weight"}  # rows 6..8 of the 9-row pad table
    parts = conversion.build()
    model, backbone = parts["model"].eval(), parts["backbone"].eval()
    g = torch.Generator().manual_seed(3)
    b, t = 2, 3
    latents = torch.randn(b, 4, t, 4, 8, generator=g)  # 32 x 64 pixels through an 8x VAE
    text = torch.randn(b, 6, 12, generator=g)
    real = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])
    tokens = rearrange(latents, "b c t (h p1) (w p2) -> b t (h w) (c p1 p2)", p1=2, p2=2)  # continuous_vae order
    with torch.no_grad():
        ours = model.frame_conditions(backbone, model.fill_text_padding(text, real), tokens)
        want = reference_indicators(state, config, latents, text, real, heads=4)
        torch.testing.assert_close(ours, want, atol=2e-5, rtol=1e-4)
        # The null prompt (nothing real) is the stored table itself.
        null = model.fill_text_padding(text, torch.zeros(b, 6, dtype=torch.bool))
        torch.testing.assert_close(null, state["text_embed.weight"][:6].expand(b, 6, 12))
        rows = b * t
        visible = torch.stack([torch.randperm(8, generator=g)[:3] for _ in range(rows)])
        z = model.spatial(ours.reshape(rows, 2, -1), tokens.reshape(rows, 8, 16), visible, model.grid)
        frames = latents.transpose(1, 2).flatten(0, 1)
        torch.testing.assert_close(
            z,
            reference_spatial(state, config, frames, want.reshape(rows, 2, -1), visible, heads=4),
            atol=2e-5,
            rtol=1e-4,
        )
    # The time grid is rescaled to the sequence: slot f of T sits at f * 16 / T (checked above with T = 3).
    assert model.config.time_rescale == 16.0 and backbone.config.time_embedding == "mlp"


def test_transformer_conversion_names_every_problem():
    config = tiny_transformer_config()
    state = released_transformer(config)
    with pytest.raises(ConversionError, match=r"missing video_pos_embed\.norm\.bias"):
        convert_nova_transformer(
            config, {k: v for k, v in state.items() if k != "video_pos_embed.norm.bias"}, arch=TINY_ARCH
        )
    with pytest.raises(ConversionError, match=r"unmapped image_encoder\.extra"):
        convert_nova_transformer(config, {**state, "image_encoder.extra": torch.zeros(1)}, arch=TINY_ARCH)
    with pytest.raises(
        ConversionError, match=r"video_encoder\.patch_embed\.proj\.weight: \(32, 3, 4, 4\), expected \(32, 4, 4, 4\)"
    ):
        bad = {**state, "video_encoder.patch_embed.proj.weight": torch.zeros(32, 3, 4, 4)}
        convert_nova_transformer(config, bad, arch=TINY_ARCH)
    with pytest.raises(ConversionError, match="unknown video encoder arch 'vit_d2w32'"):
        convert_nova_transformer(config, state)
    with pytest.raises(ConversionError, match="rotary_pos_embed"):
        convert_nova_transformer(tiny_transformer_config(rotary_pos_embed=True), state, arch=TINY_ARCH)
    with pytest.raises(ConversionError, match="class-conditional"):
        convert_nova_transformer(tiny_transformer_config(text_token_dim=None), state, arch=TINY_ARCH)
    with pytest.raises(ConversionError, match="position grids"):
        convert_nova_transformer(tiny_transformer_config(image_base_size=[4, 4]), state, arch=TINY_ARCH)
    with pytest.raises(ConversionError, match="full-rank"):
        convert_nova_transformer(tiny_transformer_config(video_mixer_rank=-1), state, arch=TINY_ARCH)
    with pytest.raises(ConversionError, match="fewer than text_token_len"):
        convert_nova_transformer(config, released_transformer(config, pad_rows=4), arch=TINY_ARCH)


@pytest.mark.parametrize("mixer_rank", [None, 24])
def test_released_t2v_transformer_converts_to_the_nova_0_6b_recipe(mixer_rank):
    """nova-d48w1024-osp480's config (the repo's YAML; the Scaling and Shift rank is not in it, so both) on the meta
    device: every released tensor maps, every parameter of the recipe's components is filled with its shape."""
    import vidtok

    config = {"image_dim": 4, "image_size": [480, 768], "image_stride": 8, "text_token_dim": 2560,
              "text_token_len": 256, "video_base_size": [16, 15, 24], "image_base_size": [30, 48],
              "video_mixer_rank": mixer_rank, "rotary_pos_embed": False,
              "arch": ["vit_d16w1024", "vit_d32w1024", "mlp_d3w1280"]}  # fmt: skip
    state = released_transformer(config, head_width=1280, head_depth=3, device="meta", pad_rows=512)
    conversion = convert_nova_transformer(config, state)
    recipe = vidtok.RECIPES.get("nova_0_6b")(backbone_kwargs={"mixer_rank": mixer_rank})
    with torch.device("meta"):
        built = {
            "model": vidtok.MODELS.create("nova", **recipe.model.kwargs),
            "backbone": vidtok.BACKBONES.create("block_causal", **recipe.backbone.kwargs),
            "head": vidtok.HEADS.create("diffusion_mlp", **recipe.head.kwargs),
        }
    for name, module in built.items():
        converted = conversion.configs[name]
        assert {k: module.config[k] for k in converted} == converted, name
        expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        assert {k: tuple(v.shape) for k, v in conversion.states[name].items()} == expected, name
    released = sum(v.numel() for v in state.values())
    assert released == sum(v.numel() for s in conversion.states.values() for v in s.values()) + (512 - 256) * 2560
