"""The shipped Shapes deep tokenizer (vidtok/assets/dicode_shapes/video_tokenizer): loads offline, reconstructs."""

from __future__ import annotations

import os

import pytest
import torch

from vidtok.tokenizers.deep_tokens import SHAPES_DEFAULT_PATH, DeepTokenizer, load_shapes_default

# Held-out mean PSNR of the shipped weights measured when they were exported (docs/tokenizers/deep_tokens.md),
# minus a margin for the 4 clips used here; a regression guard, not the quality claim.
MIN_PSNR = float(os.environ.get("VIDTOK_DEEP_TOKENS_MIN_PSNR", "27.0"))


def _heldout(n: int) -> tuple[torch.Tensor, list[str]]:
    from vidtok.shapes import ShapesConfig, generate

    videos, captions = generate(n, ShapesConfig(resolution=32, num_frames=9, fps=8.0, split="heldout", seed=123))
    return torch.from_numpy(videos.transpose(0, 4, 1, 2, 3).copy()).float().div(127.5).sub(1), captions


def test_shipped_model_loads_offline_and_is_small():
    tok = load_shapes_default()
    assert isinstance(tok, DeepTokenizer) and not tok.training
    assert tok.sample_size == (32, 32) and tok.temporal_compression == 8
    assert next(tok.parameters()).dtype == torch.float32  # stored in fp16, loaded as fp32
    again = DeepTokenizer.from_pretrained(SHAPES_DEFAULT_PATH)
    assert again.config == tok.config
    size = sum(os.path.getsize(os.path.join(SHAPES_DEFAULT_PATH, f)) for f in os.listdir(SHAPES_DEFAULT_PATH))
    assert size < 10e6


def test_shipped_model_reconstructs_heldout_shapes():
    from vidtok.metrics.video_quality import psnr

    tok = load_shapes_default()
    video, _ = _heldout(4)
    tokens = tok.encode(video).tokens
    assert tokens.shape == (4, 2, 16, 64)
    recon = tok.decode(tokens, num_inference_steps=10, generator=torch.Generator().manual_seed(0), progress=False)
    assert recon.shape == video.shape
    assert psnr(recon, video) > MIN_PSNR


def test_reconstruct_file_defaults_to_the_shipped_model(tmp_path):
    from vidtok.io import save_video
    from vidtok.pipelines.reconstruct import reconstruct_file

    video, _ = _heldout(1)
    src = save_video(video[0], tmp_path / "clip.mp4", fps=8, lossless=True)
    report = reconstruct_file(src, tmp_path / "side.gif", num_inference_steps=5, progress=False, verbose=False)
    assert report["num_frames"] == 9 and report["tokens_total"] == 32
    assert report["tokens_per_second"] == pytest.approx(16.0)  # 8 fps / stride 8 x 16 tokens
