"""Reconstruction metrics: quality means, compression entries from the token layout, the streaming accumulator."""

from __future__ import annotations

import doctest
import math

import pytest
import torch
from toy_codes import ToyCodes

import vidtok.metrics.reconstruction as rec
from vidtok.metrics.lpips import LPIPS
from vidtok.metrics.reconstruction import ReconstructionAccumulator, compression_metrics, reconstruction_metrics
from vidtok.metrics.video_quality import ms_ssim, psnr, ssim
from vidtok.outputs import TokenLevel


class _Continuous:
    """Duck-typed continuous tokenizer: 4 keyframe steps of 16 tokens (no bits_per_pixel method)."""

    def token_layout(self, num_frames, height, width):
        return [TokenLevel("keyframes", (num_frames - 1) // 4 + 1, 16, 8, frames_per_step=4)]


class _Hierarchical:
    """Duck-typed two-level discrete tokenizer without its own bits_per_pixel / tokens_per_second."""

    def token_layout(self, num_frames, height, width):
        steps = (num_frames - 1) // 4 + 1
        return [
            TokenLevel("level0", steps, 4, 8, codebook_size=16, frames_per_step=4),
            TokenLevel("level1", steps, (height // 8) * (width // 8), 8, codebook_size=1024, frames_per_step=4),
        ]


def _video(b=2, t=5, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, size, size, generator=g) * 2 - 1


def _noisy(x, sigma, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def test_module_examples_run():
    result = doctest.testmod(rec, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_quality_entries_match_the_metric_functions():
    x = _video()
    y = _noisy(x, 0.1)
    result = reconstruction_metrics(y, x)
    assert result["psnr"] == pytest.approx(psnr(y, x))
    assert result["ssim"] == pytest.approx(ssim(y, x))
    assert result["ms_ssim"] is None and "at least 176x176, got 16x16" in result["notes"]["ms_ssim"]
    assert result["lpips"] is None and "no LPIPS network" in result["notes"]["lpips"]
    assert result["lpips_protocol"] is None
    assert result["num_videos"] == 2 and result["num_frames"] == 10
    assert "bits_per_pixel" not in result  # no tokenizer: no compression entries
    # Another value range gives the same numbers for the same pictures.
    unit = reconstruction_metrics((y + 1) / 2, (x + 1) / 2, data_range=(0.0, 1.0))
    assert unit["psnr"] == pytest.approx(result["psnr"], abs=1e-4)
    assert unit["ssim"] == pytest.approx(result["ssim"], abs=1e-6)


def test_ms_ssim_and_lpips_when_available():
    x = _video(b=1, t=1, size=176)
    y = _noisy(x, 0.1)
    metric = LPIPS("alex", random_backbone=True)
    result = reconstruction_metrics(y, x, lpips=metric)
    assert result["ms_ssim"] == pytest.approx(ms_ssim(y, x))
    assert "ms_ssim" not in result["notes"]
    assert result["lpips"] > 0
    assert result["lpips_protocol"]["comparable"] is False
    assert "not comparable" in result["notes"]["lpips"]


def test_discrete_tokenizer_uses_its_own_figures():
    tok = ToyCodes(frame_stride=4, sample_size=16)
    x = _video(b=1, t=9)
    result = reconstruction_metrics(x, x, tokenizer=tok, fps=8)
    # 3 steps x 4 tokens x 3 bits over 9 x 16 x 16 pixels.
    assert result["bits_per_pixel"] == pytest.approx(tok.bits_per_pixel(9, 16, 16)) == pytest.approx(36 / 2304)
    assert result["tokens_per_pixel"] == pytest.approx(12 / 2304)
    assert result["tokens_per_second"] == pytest.approx(tok.tokens_per_second(8, 16, 16)) == pytest.approx(8.0)
    assert math.isinf(result["psnr"]) and result["ssim"] == pytest.approx(1.0)

    class Custom(ToyCodes):
        def bits_per_pixel(self, num_frames, height, width):
            return 0.5

        def tokens_per_second(self, fps, height, width):
            return 7.0

    custom = reconstruction_metrics(x, x, tokenizer=Custom(frame_stride=4, sample_size=16), fps=8)
    assert custom["bits_per_pixel"] == 0.5 and custom["tokens_per_second"] == 7.0


def test_hierarchical_codebooks_sum_over_levels():
    got = compression_metrics(_Hierarchical(), 9, 32, 32, fps=24)
    # 3 steps x (4 x log2 16 + 16 x log2 1024) bits over 9 x 32 x 32 pixels.
    assert got["bits_per_pixel"] == pytest.approx(3 * (4 * 4 + 16 * 10) / (9 * 32 * 32))
    assert got["tokens_per_pixel"] == pytest.approx(3 * 20 / (9 * 32 * 32))
    assert got["tokens_per_second"] == pytest.approx(24 / 4 * 20)
    assert got["notes"] == {}


def test_continuous_tokenizer_has_no_bits_per_pixel():
    x = _video(b=1, t=9)
    result = reconstruction_metrics(x, x, tokenizer=_Continuous(), height=64, width=64)
    assert result["bits_per_pixel"] is None
    assert "continuous" in result["notes"]["bits_per_pixel"] and "keyframes" in result["notes"]["bits_per_pixel"]
    assert result["tokens_per_pixel"] == pytest.approx(3 * 16 / (9 * 64 * 64))  # the sizes given win
    assert result["tokens_per_second"] is None and result["notes"]["tokens_per_second"] == "fps not given"
    with pytest.raises(TypeError, match="token_layout"):
        compression_metrics(object(), 9, 16, 16)
    with pytest.raises(ValueError, match="height must be a positive int"):
        compression_metrics(_Continuous(), 9, 0, 16)


def test_accumulator_streams_to_the_same_means():
    x = _video(b=4, t=3)
    y = torch.cat([_noisy(x[:2], 0.05), _noisy(x[2:], 0.2)])
    whole = reconstruction_metrics(y, x, tokenizer=ToyCodes(), fps=8)
    acc = ReconstructionAccumulator(tokenizer=ToyCodes(), fps=8)
    first = acc.update(y[:1], x[:1])
    acc.update(y[1:], x[1:])
    assert first["psnr"].shape == (1,) and set(first) == {"psnr", "ssim"}
    streamed = acc.compute()
    for key in ("psnr", "ssim", "bits_per_pixel", "tokens_per_pixel", "tokens_per_second"):
        assert streamed[key] == pytest.approx(whole[key]), key
    assert streamed["num_videos"] == 4 and streamed["num_frames"] == 12
    acc.reset()
    with pytest.raises(ValueError, match="no videos were added"):
        acc.compute()


def test_accumulator_mixed_sizes():
    acc = ReconstructionAccumulator(tokenizer=ToyCodes())
    big = _video(b=1, t=1, size=176)
    acc.update(big, big)
    assert acc.compute()["ms_ssim"] == pytest.approx(1.0, abs=1e-6)
    small = _video(b=1, t=1, size=16)
    acc.update(small, small)
    result = acc.compute()
    # MS-SSIM of only some videos would not be the mean over all of them.
    assert result["ms_ssim"] is None and "got 16x16" in result["notes"]["ms_ssim"]
    assert result["bits_per_pixel"] is None and "several sizes" in result["notes"]["bits_per_pixel"]
    assert ReconstructionAccumulator(ms_ssim=False).update(big, big).keys() == {"psnr", "ssim"}
    with pytest.raises(ValueError, match="data_range"):
        ReconstructionAccumulator(data_range=(1.0, 1.0))
    with pytest.raises(ValueError, match="shapes differ"):
        acc.update(big, small)
