"""The reconstruction pipeline, reconstruct_file, the compression report and token zeroing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidtok.pipelines import Reconstruct, ReconstructionOutput, compression_report, reconstruct_file
from vidtok.pipelines.reconstruct import vq_token_count
from vidtok.tokenizers.deep_tokens import DeepTokenizer


@pytest.fixture(scope="module")
def tok() -> DeepTokenizer:
    torch.manual_seed(0)
    return DeepTokenizer(**DeepTokenizer.tiny_config()).eval()


def _video(t=5, size=16) -> torch.Tensor:
    return torch.rand(1, 3, t, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_pipeline_output_types(tok):
    pipe = Reconstruct(tok)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    out = pipe(_video(), num_inference_steps=1, generator=g(), progress=False)
    assert isinstance(out, ReconstructionOutput)
    assert out.frames.shape == (1, 5, 16, 16, 3) and out.frames.min() >= 0 and out.frames.max() <= 1
    assert out.tokens.shape == (1, 2, 4, 16) and out.num_frames == 5
    pt = pipe(_video(), num_inference_steps=1, generator=g(), output_type="pt", progress=False).frames
    assert pt.shape == (1, 3, 5, 16, 16)
    assert np.allclose((pt.permute(0, 2, 3, 4, 1).numpy() + 1) / 2, out.frames, atol=1e-6)
    pil = pipe(_video(), num_inference_steps=1, generator=g(), output_type="pil", progress=False).frames
    assert len(pil) == 1 and len(pil[0]) == 5 and pil[0][0].size == (16, 16)
    frames, tokens = pipe(_video(), num_inference_steps=1, generator=g(), return_dict=False, progress=False)
    assert tokens.shape == (1, 2, 4, 16)
    # uint8 user frames (T, H, W, C) are accepted too.
    uint8 = (np.random.default_rng(0).random((5, 16, 16, 3)) * 255).astype(np.uint8)
    assert pipe(uint8, num_inference_steps=1, progress=False).frames.shape == (1, 5, 16, 16, 3)
    with pytest.raises(ValueError, match="output_type"):
        pipe(_video(), output_type="latent")


def test_pipeline_save_load_roundtrip(tok, tmp_path):
    pipe = Reconstruct(tok)
    pipe.save_pretrained(tmp_path / "pipe")
    again = Reconstruct.from_pretrained(tmp_path / "pipe")
    assert isinstance(again.video_tokenizer, DeepTokenizer)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = pipe(_video(), num_inference_steps=1, generator=g(), output_type="pt", progress=False).frames
    b = again(_video(), num_inference_steps=1, generator=g(), output_type="pt", progress=False).frames
    assert torch.equal(a, b)


def test_compression_counts_like_dicode_fig1(tok):
    assert vq_token_count(16, 256, 256) == 16_384
    official = DeepTokenizer.official_config()
    assert official["num_queries"] == 16 and official["token_dim"] == 1024

    class Official:  # the counting needs only the compression attributes
        temporal_compression = 15
        token_dim = 1024

        @staticmethod
        def tokens_per_step(h, w):
            return 16

    report = compression_report(Official(), num_frames=16, height=256, width=256, fps=8, frame_stride=15)
    assert report["tokens_per_clip"] == 16  # one new keyframe per 2 s clip
    assert report["vq_ratio"] == pytest.approx(1024)  # "1000x"
    assert report["tokens_total"] == 32  # both keyframes of the first clip
    assert report["tokens_per_second"] == pytest.approx(8 / 15 * 16)
    tiny = compression_report(tok, num_frames=9, height=16, width=16, fps=8)
    assert tiny["tokens_total"] == 12 and tiny["pixels_per_token"] == pytest.approx(9 * 256 / 12)


def test_reconstruct_file_writes_side_by_side(tok, tmp_path, capsys):
    from vidtok.io import read_video, save_video

    frames = (np.random.default_rng(0).random((11, 24, 20, 3)) * 255).astype(np.uint8)
    src = save_video(frames, tmp_path / "in.mp4", fps=8)
    report = reconstruct_file(src, tmp_path / "out.mp4", model=tok, num_inference_steps=1, progress=False)
    printed = capsys.readouterr().out
    assert "PSNR" in printed and "tokens" in printed and "VQ" in printed
    assert report["num_frames"] == 9 and report["num_keyframes"] == 3  # 11 frames -> keyframes 0, 4, 8
    assert report["tokens_total"] == 12 and np.isfinite(report["psnr"]) and np.isfinite(report["ssim"])
    out = read_video(tmp_path / "out.mp4")
    assert out.shape == (9, 16, 32, 3)  # original | reconstruction at the model's 16x16
    # What was scored, as pictures: a contact sheet (two rows: original, reconstruction) and a GIF grid.
    from PIL import Image

    assert f"wrote {tmp_path / 'out_sheet.png'}" in printed and f"wrote {tmp_path / 'out_grid.gif'}" in printed
    with Image.open(tmp_path / "out_grid.gif") as gif:
        assert gif.n_frames == 9
    with Image.open(tmp_path / "out_sheet.png") as sheet:
        assert sheet.height > sheet.width / 8  # two rows of frames under their captions
    saved = tmp_path / "tok"
    tok.save_pretrained(saved)
    again = reconstruct_file(
        src, tmp_path / "out.gif", model=saved, num_keyframes=2, num_inference_steps=1, progress=False, verbose=False
    )
    assert again["num_frames"] == 5
    with pytest.raises(ValueError, match="keyframes"):
        reconstruct_file(src, tmp_path / "x.mp4", model=tok, num_keyframes=5, progress=False)


def test_token_zeroing(tok, tmp_path):
    from vidtok.io import save_video
    from vidtok.tokenizers.deep_tokens_diagnostics import token_zeroing_grid, zero_out_tokens

    video = _video()
    rows = zero_out_tokens(tok, video, num_inference_steps=1, progress=False)
    assert rows.shape == (5, 3, 5, 16, 16)
    single = zero_out_tokens(tok, video, order=[2], cumulative=False, num_inference_steps=1, progress=False)
    assert torch.equal(single[0], rows[0])  # shared noise: the intact row is the same
    grid = token_zeroing_grid(video, rows)
    assert grid.shape == (3, 5, 6 * 16 + 5 * 2, 16)
    save_video(grid, tmp_path / "grid.gif", fps=4)
    with pytest.raises(ValueError, match="order"):
        zero_out_tokens(tok, video, order=[7], progress=False)
