"""`vidtok convert dicode`: the official DiCoDe release into a strict-loading TextToVideo folder.

Three layers of evidence:

* full size, on the ``meta`` device: state dicts with exactly the official keys and shapes (the key lists in
  ``tests/data/dicode_official_keys.json.gz``) convert and load into the release configuration with zero missing
  and zero unexpected keys, and every kind of mismatch is reported by name;
* small size, real tensors written in the official layouts by independent code (transformers' GPT-2, an
  IP-Adapter-style resampler written here from its equations, open_clip, an LDM-layout VAE checked against
  diffusers' own converter): converted weights compute what the originals compute;
* the command line and the no-partial-write guarantee.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
import os
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from vidtok.convert.dicode import (
    ConversionError,
    convert_dicode,
    convert_state_dicts,
    empty_prompt_context,
    release_configs,
    release_text_tokenizer,
)

KEYS = Path(__file__).parent / "data" / "dicode_official_keys.json.gz"


def _official_keys() -> dict[str, dict[str, list[int]]]:
    with gzip.open(KEYS, "rt") as f:
        return json.load(f)


def _meta_state(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(v, device="meta") for k, v in shapes.items()}


# ------------------------------------------------------------------------------------------- full size (meta)
@pytest.fixture(scope="module")
def official():
    return _official_keys()


def test_key_lists_are_the_documented_ones(official):
    assert len(official["tokenizer"]) == 2535 and len(official["llm"]) == 3033
    assert set(official["tokenizer"]) < set(official["llm"])  # the LM file repeats the tokenizer


def test_full_size_conversion_loads_with_no_missing_or_unexpected_keys(official):
    converted = convert_state_dicts(_meta_state(official["tokenizer"]), _meta_state(official["llm"]), dtype=None)
    modules = converted.build()  # strict=True: raises on any missing or unexpected key
    assert set(modules) == {"video_tokenizer", "backbone", "model", "head"}
    for name, module in modules.items():
        assert set(module.state_dict()) == set(converted.state_dicts[name]), name
    # Every official key is used or dropped for a stated reason.
    used_or_dropped = len(converted.dropped) + sum(len(sd) for sd in converted.state_dicts.values())
    assert used_or_dropped > 0
    dropped = set(converted.dropped)
    assert {k for k in official["llm"] if k.startswith("llm_agent.pre_input_resampler.")} <= dropped
    assert "llm_agent.llm.lm_head.weight" in dropped and "embedder.model.visual.proj" in dropped
    tok = modules["video_tokenizer"]
    assert tok.config.denoiser_type == "dicode_unet"
    assert sum(p.numel() for p in tok.denoiser.parameters()) == pytest.approx(1438.8e6, abs=0.1e6)
    assert tuple(converted.state_dicts["video_tokenizer"]["denoiser.text_context"].shape) == (77, 1024)


def test_tokenizer_only_conversion_uses_the_tokenizer_file_alone(official):
    converted = convert_state_dicts(_meta_state(official["tokenizer"]), None, dtype=None)
    assert set(converted.state_dicts) == {"video_tokenizer"}
    converted.build()


def test_lm_file_alone_holds_the_whole_model(official):
    converted = convert_state_dicts(None, _meta_state(official["llm"]), dtype=None)
    assert set(converted.state_dicts) == {"video_tokenizer", "backbone", "model", "head"}


def test_every_mismatch_is_named_and_nothing_converts(official):
    state = _meta_state(official["llm"])
    del state["model.diffusion_model.out.2.weight"]  # missing
    state["llm_agent.video_pos_token.extra"] = torch.empty(3, device="meta")  # unmapped
    state["llm_agent.input_resampler.0.weight"] = torch.empty(1280, 1000, device="meta")  # mis-shaped
    del state["cond_stage_model.model.token_embedding.weight"]
    with pytest.raises(ConversionError) as err:
        convert_state_dicts(None, state, dtype=None)
    msg = str(err.value)
    assert "missing video_tokenizer.denoiser.out.2.weight" in msg
    assert "unmapped key llm_agent.video_pos_token.extra" in msg
    assert "shape of model.input_proj.0.weight: official (1280, 1000), vidtok (1280, 1024)" in msg
    assert "text tower" in msg and "nothing was written" in msg


def test_vae_key_map_covers_the_release_and_matches_diffusers_layout(official):
    from diffusers import AutoencoderKL

    from vidtok.convert.dicode import _vae_key  # the rule under test (a private helper of the converter)

    cfg = release_configs()["video_tokenizer"]["vae_config"]
    with torch.device("meta"):
        want = {k: tuple(v.shape) for k, v in AutoencoderKL(**cfg).state_dict().items()}
    got = {}
    for key, shape in official["tokenizer"].items():
        if key.startswith("first_stage_model."):
            mapped, make = _vae_key(key[len("first_stage_model.") :], 4)
            got[mapped] = tuple(make(torch.empty(shape, device="meta")).shape)
    assert got == want


# ------------------------------------------------------------------------------------------- small size (real)
CLIP_ARCH = "vidtok-test-tiny-clip"
HIDDEN, DIM, TOKENS, COMPONENTS = 32, 16, 4, 2


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import open_clip

    folder = tmp_path_factory.mktemp("clip")
    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": DIM, "heads": 2, "layers": 3},
    }
    (folder / f"{CLIP_ARCH}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    return CLIP_ARCH


def _small_configs() -> dict:
    cfg = release_configs()
    tok = cfg["video_tokenizer"]
    tok.update(
        encoder=f"open_clip:{CLIP_ARCH}",
        num_queries=TOKENS,
        token_dim=DIM,
        resampler_dim=32,
        resampler_depth=2,
        resampler_heads=2,
        resampler_dim_head=16,
        frame_stride=3,
        train_strides=[3],
        sample_size=32,
        denoiser_kwargs={
            "model_channels": 32,
            "channel_mult": [1, 2],
            "num_res_blocks": 1,
            "attention_resolutions": [1],
            "num_head_channels": 16,
            "norm_groups": 8,
            "init_attn_heads": 2,
            "fs": 6,
        },
        decode_defaults={**tok["decode_defaults"], "num_inference_steps": 2},
    )
    tok["vae_config"].update(block_out_channels=[32, 32], layers_per_block=1, norm_num_groups=8, sample_size=32)
    tok["vae_config"]["down_block_types"] = ["DownEncoderBlock2D"] * 2
    tok["vae_config"]["up_block_types"] = ["UpDecoderBlock2D"] * 2
    cfg["backbone"] = {
        "config": {
            "model_type": "gpt2",
            "n_layer": 2,
            "n_embd": HIDDEN,
            "n_head": 2,
            "n_positions": 256,
            "vocab_size": 50323,
        }
    }
    cfg["model"].update(hidden_size=HIDDEN, token_dim=DIM, num_tokens=TOKENS)
    cfg["head"].update(hidden_size=HIDDEN, token_dim=DIM, num_components=COMPONENTS, mlp_width=HIDDEN)
    return cfg


class OfficialResampler(nn.Module):
    """IP-Adapter's Perceiver resampler written here from its equations, with the official parameter names.

    Latents attend to ``[LN1(x); LN2(latents)]`` with one bias-free ``to_kv`` projection (keys first), q and k
    each scaled by ``dim_head ** -0.25``, softmax in fp32; then ``LN → Linear → GELU → Linear`` feed-forward;
    both residual; finally ``proj_out`` and ``norm_out``.
    """

    def __init__(self, *, dim, depth, dim_head, heads, num_queries, embedding_dim, output_dim, ff_mult=4):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        self.latents = nn.Parameter(torch.randn(1, num_queries, dim) / dim**0.5)
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        inner = heads * dim_head
        self.layers = nn.ModuleList()
        for _ in range(depth):
            attn = nn.Module()
            attn.norm1, attn.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            attn.to_q = nn.Linear(dim, inner, bias=False)
            attn.to_kv = nn.Linear(dim, 2 * inner, bias=False)
            attn.to_out = nn.Linear(inner, dim, bias=False)
            ff = nn.Sequential(
                nn.LayerNorm(dim),
                nn.Linear(dim, dim * ff_mult, bias=False),
                nn.GELU(),
                nn.Linear(dim * ff_mult, dim, bias=False),
            )
            self.layers.append(nn.ModuleList([attn, ff]))

    def forward(self, x):
        latents = self.latents.repeat(x.shape[0], 1, 1)
        x = self.proj_in(x)
        for attn, ff in self.layers:
            xn, ln = attn.norm1(x), attn.norm2(latents)
            q = attn.to_q(ln)
            k, v = attn.to_kv(torch.cat([xn, ln], dim=1)).chunk(2, dim=-1)
            split = lambda t: t.reshape(t.shape[0], t.shape[1], self.heads, self.dim_head).transpose(1, 2)  # noqa: E731
            q, k, v = split(q), split(k), split(v)
            scale = 1 / math.sqrt(math.sqrt(self.dim_head))
            w = ((q * scale) @ (k * scale).transpose(-2, -1)).float().softmax(dim=-1).to(q.dtype)
            out = (w @ v).transpose(1, 2).reshape(x.shape[0], -1, self.heads * self.dim_head)
            latents = attn.to_out(out) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))


def _ldm_vae_from_diffusers(sd: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """Write a diffusers AutoencoderKL state dict in LDM's layout (inputs for the converter)."""
    out = {}
    for key, t in sd.items():
        k = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        k = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)", r"encoder.down.\1.block.\2", k)
        k = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0", r"encoder.down.\1.downsample", k)
        k = re.sub(
            r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)",
            lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}",
            k,
        )
        k = re.sub(
            r"decoder\.up_blocks\.(\d+)\.upsamplers\.0", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample", k
        )
        k = re.sub(r"mid_block\.resnets\.(\d)", lambda m: f"mid.block_{int(m[1]) + 1}", k)
        attn = re.match(r"(.*)mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(.*)", k)
        if attn:
            name = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}[attn[2]]
            k = f"{attn[1]}mid.attn_1.{name}.{attn[3]}"
            if name != "norm" and t.ndim == 2:
                t = t[:, :, None, None]
        out[k] = t
    return out


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    """Random weights everywhere (zero-initialized output layers included), small enough to stay finite."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return module


@pytest.fixture(scope="module")
def release_files(tmp_path_factory, tiny_clip):
    """Small official-layout tokenizer and LM checkpoints, plus the original modules they were made from."""
    import open_clip
    from diffusers import AutoencoderKL, DDPMScheduler
    from transformers import GPT2Config, GPT2LMHeadModel

    from vidtok.tokenizers._dicode_unet import DiCoDeUNet  # the architecture the UNet keys describe

    cfg = _small_configs()
    tok_cfg = cfg["video_tokenizer"]
    torch.manual_seed(0)
    unet = _randomize(DiCoDeUNet(**{**tok_cfg["denoiser_kwargs"], "context_dim": DIM}), 1)
    vae = _randomize(AutoencoderKL(**tok_cfg["vae_config"]), 2)
    resampler = _randomize(
        OfficialResampler(dim=32, depth=2, dim_head=16, heads=2, num_queries=TOKENS, embedding_dim=64, output_dim=DIM),
        3,
    )
    clip = _randomize(open_clip.create_model(tiny_clip, pretrained=None), 4)
    gpt2 = GPT2LMHeadModel(GPT2Config(**{k: v for k, v in cfg["backbone"]["config"].items() if k != "model_type"}))
    sched = DDPMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, rescale_betas_zero_snr=True
    )

    tokenizer = {}
    for k, v in unet.state_dict().items():
        if k != "text_context":
            tokenizer["model.diffusion_model." + k.replace("temporal_conv", "temopral_conv")] = v
    tokenizer.update({"first_stage_model." + k: v for k, v in _ldm_vae_from_diffusers(vae.state_dict(), 2).items()})
    tokenizer.update({"image_proj_model." + k: v for k, v in resampler.state_dict().items()})
    clip_sd = clip.state_dict()
    leftovers = (
        "token_embedding.weight",
        "positional_embedding",
        "ln_final.weight",
        "ln_final.bias",
        "text_projection",
        "logit_scale",
    )
    tokenizer.update(
        {"embedder.model." + k: v for k, v in clip_sd.items() if k.startswith("visual.") or k in leftovers}
    )
    tokenizer.update({"cond_stage_model.model." + k: v for k, v in clip_sd.items() if not k.startswith("visual.")})
    tokenizer["alphas_cumprod"] = sched.alphas_cumprod.clone()
    tokenizer["betas"] = sched.betas.clone()
    for name in ("sqrt_alphas_cumprod", "posterior_variance", "posterior_mean_coef1", "posterior_mean_coef2"):
        tokenizer[name] = torch.zeros(1000)

    g = torch.Generator().manual_seed(5)
    llm = dict(tokenizer)
    llm.update({"llm_agent.llm." + k: v for k, v in gpt2.state_dict().items()})
    agent = {
        "input_resampler.0.weight": (HIDDEN, DIM),
        "input_resampler.0.bias": (HIDDEN,),
        "input_resampler.2.weight": (HIDDEN, HIDDEN),
        "input_resampler.2.bias": (HIDDEN,),
        "output_resampler.0.weight": (HIDDEN, HIDDEN),
        "output_resampler.0.bias": (HIDDEN,),
        "output_resampler.2.weight": (2 * COMPONENTS * DIM + COMPONENTS, HIDDEN),
        "output_resampler.2.bias": (2 * COMPONENTS * DIM + COMPONENTS,),
        "video_pos_token.frame_token": (32, 1, HIDDEN),
        "video_pos_token.pos_token": (1, TOKENS, HIDDEN),
    }
    llm.update({"llm_agent." + k: 0.02 * torch.randn(s, generator=g) for k, s in agent.items()})
    llm.update({"llm_agent.pre_input_resampler." + k: v for k, v in resampler.state_dict().items()})

    folder = tmp_path_factory.mktemp("release")
    torch.save(tokenizer, folder / "pytorch_model.bin")
    torch.save(llm, folder / "gpt2_large.pt")
    originals = {"unet": unet, "vae": vae, "resampler": resampler, "clip": clip, "gpt2": gpt2, "llm": llm}
    return folder, cfg, originals


@pytest.fixture(scope="module")
def converted(release_files, tmp_path_factory):
    folder, cfg, originals = release_files
    out = tmp_path_factory.mktemp("out") / "dicode"
    convert_dicode(out, tokenizer=folder / "pytorch_model.bin", llm=folder / "gpt2_large.pt", configs=cfg)
    from vidtok.pipelines import TextToVideo

    return TextToVideo.from_pretrained(out), out, originals


def test_converted_gpt2_hidden_states_equal_the_original_exactly(converted):
    pipe, _, originals = converted
    embeds = torch.randn(2, 7, HIDDEN, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = originals["gpt2"].eval().transformer(inputs_embeds=embeds).last_hidden_state
        got = pipe.backbone(embeds).last_hidden_state
    assert torch.equal(got, want)


def test_converted_resampler_matches_the_direct_computation(converted):
    pipe, _, originals = converted
    x = torch.randn(3, 17, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = originals["resampler"].eval()(x)
        got = pipe.video_tokenizer.resampler(x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_converted_unet_runs_a_denoising_step_like_the_original(converted):
    pipe, _, originals = converted
    tok = pipe.video_tokenizer
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 4, 4, 16, 16, generator=g)
    head, rear = torch.randn(1, TOKENS, DIM, generator=g), torch.randn(1, TOKENS, DIM, generator=g)
    t = torch.tensor([981])
    original = copy.deepcopy(originals["unet"]).eval()
    with torch.no_grad():
        original.text_context.copy_(tok.denoiser.text_context)
        want = original(x, t, head, rear)
        got = tok.denoiser(x, t, head, rear)
    # Two module instances: CPU convolution kernels may round differently between them (seen once in CI).
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    scheduler = tok._make_scheduler("ddim")  # one DDIM step with the release's sampler settings
    scheduler.set_timesteps(2)
    assert scheduler.timesteps.tolist() == [501, 1]  # "uniform" spacing with offset 1, as the release
    step = scheduler.step(got, scheduler.timesteps[0], x, eta=1.0, generator=g).prev_sample
    assert torch.isfinite(step).all()


def test_text_context_is_the_empty_prompt_through_the_penultimate_block(converted, tiny_clip):
    import open_clip

    pipe, _, originals = converted
    clip = originals["clip"].eval()
    tokens = open_clip.get_tokenizer(tiny_clip)([""])
    # Independent route: open_clip's own transformer with its last block removed.
    trimmed = copy.deepcopy(clip)
    trimmed.transformer.resblocks = trimmed.transformer.resblocks[:-1]
    with torch.no_grad():
        x = trimmed.token_embedding(tokens) + trimmed.positional_embedding
        want = trimmed.ln_final(trimmed.transformer(x, attn_mask=trimmed.attn_mask))[0]
    torch.testing.assert_close(pipe.video_tokenizer.denoiser.text_context, want, atol=1e-6, rtol=1e-6)


def test_converted_lm_parts_and_sampler_defaults(converted):
    pipe, out, originals = converted
    llm = originals["llm"]
    assert torch.equal(pipe.model.bov, llm["llm_agent.llm.transformer.wte.weight"][50258])
    assert torch.equal(pipe.model.frame_embedding.weight, llm["llm_agent.video_pos_token.frame_token"][:, 0])
    assert torch.equal(pipe.model.token_embedding.weight, llm["llm_agent.video_pos_token.pos_token"][0])
    assert torch.equal(pipe.head.proj.weight, llm["llm_agent.output_resampler.2.weight"])
    assert torch.equal(pipe.model.input_proj[2].bias, llm["llm_agent.input_resampler.2.bias"])
    assert isinstance(pipe.model.output_proj, nn.Sequential) and len(pipe.model.output_proj) == 0
    tok = pipe.video_tokenizer
    assert tok.decode_defaults == {"num_inference_steps": 2, "guidance_scale": 7.5, "guidance_rescale": 0.7, "eta": 1.0}
    assert tok.denoiser.fs == 6 and pipe.head.config.sample_variance_scale == 0.01
    assert pipe.text_tokenizer.convert_tokens_to_ids("<img>") == 50258 and len(pipe.text_tokenizer) == 50323
    index = json.loads((out / "model_index.json").read_text())
    assert index["video_tokenizer"][1] == "DeepTokenizer" and index["model"][1] == "DiCoDeLM"


def test_converted_pipeline_generates_with_the_release_defaults(converted):
    pipe, _, _ = converted
    out = pipe("a time-lapse of clouds", num_keyframes=2, generator=torch.Generator().manual_seed(0), progress=False)
    assert out.frames.shape == (1, 4, 32, 32, 3)  # (S - 1) f + 1 frames at the tokenizer's size
    assert torch.isfinite(torch.as_tensor(out.frames)).all()


def test_llm_file_alone_converts_the_same_weights(release_files, converted, tmp_path):
    folder, cfg, _ = release_files
    out = convert_dicode(tmp_path / "lm_only", llm=folder / "gpt2_large.pt", configs=cfg)
    from vidtok.pipelines import TextToVideo

    again = TextToVideo.from_pretrained(out)
    first = converted[0]
    for name in ("video_tokenizer", "backbone", "model", "head"):
        a, b = getattr(first, name).state_dict(), getattr(again, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_clip_towers_from_the_open_clip_checkpoint(release_files, converted, tmp_path):
    """A release without the CLIP weights converts with the OpenCLIP file the official code builds them from."""
    folder, cfg, originals = release_files
    lean = {k: v for k, v in originals["llm"].items() if not k.startswith(("embedder.", "cond_stage_model."))}
    torch.save(lean, tmp_path / "lean.pt")
    with pytest.raises(ConversionError, match="frame_encoder.visual"):
        convert_dicode(tmp_path / "no_clip", llm=tmp_path / "lean.pt", configs=cfg)
    torch.save(originals["clip"].state_dict(), tmp_path / "open_clip_pytorch_model.bin")
    out = convert_dicode(
        tmp_path / "with_clip",
        llm=tmp_path / "lean.pt",
        open_clip=tmp_path / "open_clip_pytorch_model.bin",
        configs=cfg,
    )
    from vidtok.tokenizers import DeepTokenizer

    tok = DeepTokenizer.from_pretrained(os.path.join(out, "video_tokenizer")).state_dict()
    want = converted[0].video_tokenizer.state_dict()
    assert tok.keys() == want.keys() and all(torch.equal(tok[k], want[k]) for k in tok)


def test_tokenizer_only_writes_a_deep_tokenizer_folder(release_files, tmp_path):
    from vidtok.tokenizers import DeepTokenizer

    folder, cfg, originals = release_files
    out = convert_dicode(tmp_path / "tok", tokenizer=folder / "pytorch_model.bin", configs=cfg)
    tok = DeepTokenizer.from_pretrained(out)
    video = torch.rand(1, 3, 4, 32, 32) * 2 - 1
    tokens = tok.encode(video).tokens
    assert tokens.shape == (1, 2, TOKENS, DIM)
    frames = tok.decode(tokens, generator=torch.Generator().manual_seed(0), progress=False)
    assert frames.shape == (1, 3, 4, 32, 32) and torch.isfinite(frames).all()


def test_a_bad_file_writes_nothing(release_files, tmp_path):
    folder, cfg, originals = release_files
    broken = dict(originals["llm"])
    broken["llm_agent.video_pos_token.pos_token"] = torch.zeros(1, TOKENS + 1, HIDDEN)
    del broken["model.diffusion_model.out.2.bias"]
    path = tmp_path / "broken.pt"
    torch.save(broken, path)
    out = tmp_path / "never"
    with pytest.raises(ConversionError) as err:
        convert_dicode(out, llm=path, configs=cfg)
    assert "model.token_embedding.weight" in str(err.value) and "denoiser.out.2.bias" in str(err.value)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("never") or ".tmp" in p.name]


def test_differing_tokenizer_copies_are_refused(release_files, tmp_path):
    folder, cfg, originals = release_files
    other = dict(originals["llm"])
    other["image_proj_model.latents"] = other["image_proj_model.latents"] + 1
    path = tmp_path / "other.pt"
    torch.save(other, path)
    with pytest.raises(ConversionError, match="image_proj_model.latents"):
        convert_dicode(tmp_path / "x", tokenizer=folder / "pytorch_model.bin", llm=path, configs=cfg)
    assert not (tmp_path / "x").exists()


def test_a_different_noise_schedule_is_refused(release_files, tmp_path):
    folder, cfg, originals = release_files
    state = {k: v for k, v in originals["llm"].items() if not k.startswith("llm_agent.")}
    state["alphas_cumprod"] = torch.linspace(0.999, 0.001, 1000)
    path = tmp_path / "sched.bin"
    torch.save(state, path)
    with pytest.raises(ConversionError, match="noise schedule"):
        convert_dicode(tmp_path / "y", tokenizer=path, configs=cfg)


def test_pickled_objects_are_never_loaded(tmp_path):
    path = tmp_path / "evil.bin"
    torch.save({"model.diffusion_model.x": torch.zeros(1), "obj": OfficialResampler}, path)
    with pytest.raises(ConversionError, match="evil.bin"):
        convert_dicode(tmp_path / "z", tokenizer=path)


def test_existing_folder_is_not_overwritten(release_files, tmp_path):
    folder, cfg, _ = release_files
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        convert_dicode(out, tokenizer=folder / "pytorch_model.bin", configs=cfg)
    assert (out / "keep.txt").read_text() == "mine"


def test_command_line(release_files, tmp_path, capsys):
    from vidtok.cli import main

    folder, cfg, _ = release_files
    configs = tmp_path / "configs.json"
    configs.write_text(json.dumps(cfg))
    out = tmp_path / "cli"
    code = main(
        [
            "convert",
            "dicode",
            "--tokenizer",
            str(folder / "pytorch_model.bin"),
            "--llm",
            str(folder / "gpt2_large.pt"),
            "--out",
            str(out),
            "--configs",
            str(configs),
        ]
    )
    assert code == 0 and (out / "model_index.json").is_file()
    assert "wrote" in capsys.readouterr().out
    assert main(["convert", "dicode", "--tokenizer", str(tmp_path / "missing.bin"), "--out", str(tmp_path / "m")]) != 0
    assert "missing.bin" in capsys.readouterr().err


def test_release_text_tokenizer_ids():
    tok = release_text_tokenizer()
    assert tok.convert_tokens_to_ids(["</img>", "<img>", "<img_00000>", "<img_00063>"]) == [50257, 50258, 50259, 50322]
    assert tok.pad_token_id == 50256


def test_empty_prompt_context_on_meta_is_shape_only(tiny_clip):
    import open_clip

    clip = open_clip.create_model(tiny_clip, pretrained=None, device="meta")
    state = {k: v for k, v in clip.state_dict().items() if not k.startswith("visual.")}
    assert empty_prompt_context(state, tiny_clip).shape == (77, DIM)


@pytest.mark.fullsize
def test_full_size_release_with_random_weights_converts_and_decodes(official, tmp_path):
    """Convert -> from_pretrained -> one keyframe decoded with 2 DDIM steps, at the released size (CPU)."""
    import resource
    import time

    from diffusers import DDPMScheduler

    from vidtok.pipelines import TextToVideo

    g = torch.Generator().manual_seed(0)
    state = {}
    for k, shape in official["llm"].items():
        if "norm" in k and k.endswith("weight") or k.endswith("ln_1.weight") or k.endswith("ln_2.weight"):
            state[k] = torch.ones(shape)
        else:
            state[k] = 0.02 * torch.randn(shape, generator=g) if shape else torch.zeros(())
    sched = DDPMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, rescale_betas_zero_snr=True
    )
    state["alphas_cumprod"] = sched.alphas_cumprod.clone()
    path = tmp_path / "gpt2_large.pt"
    torch.save(state, path)
    del state
    t0 = time.time()
    out = convert_dicode(tmp_path / "dicode", llm=path)
    t1 = time.time()
    pipe = TextToVideo.from_pretrained(out)
    tokens = pipe.video_tokenizer.encode(torch.zeros(1, 3, 1, 256, 256)).tokens
    frames = pipe.video_tokenizer.decode(tokens, num_inference_steps=2, generator=g, progress=False)
    t2 = time.time()
    assert frames.shape == (1, 3, 1, 256, 256) and torch.isfinite(frames).all()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"full-size conversion {t1 - t0:.0f} s; load + encode + decode {t2 - t1:.0f} s; peak RSS {peak:.1f} GiB")
    os.environ.setdefault("VIDTOK_FULLSIZE_REPORT", f"{t1 - t0:.0f},{t2 - t1:.0f},{peak:.1f}")
