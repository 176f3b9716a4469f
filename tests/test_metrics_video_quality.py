"""PSNR / SSIM / MS-SSIM: laws (identity, monotone in noise), per-video reduction, and agreement with independent
implementations (torchmetrics, scikit-image and pytorch-msssim when installed, and in-test references)."""

from __future__ import annotations

import doctest
import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F

import vidtok.metrics.video_quality as vq
from vidtok.metrics.video_quality import (
    MS_SSIM_BETAS,
    ms_ssim,
    ms_ssim_min_size,
    ms_ssim_per_frame,
    psnr,
    psnr_per_frame,
    ssim,
    ssim_per_frame,
)

NOISE = (0.02, 0.05, 0.1, 0.2)


def _video(b: int, t: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Smooth content (upsampled noise) rather than white noise, closer to frames SSIM was designed for.
    low = torch.rand(b * t, 3, size // 4, size // 4, generator=g, dtype=torch.float64)
    frames = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False) * 2 - 1
    return frames.reshape(b, t, 3, size, size).transpose(1, 2).contiguous()


def _noisy(x: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp(-1, 1)


def _frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B T, C, H, W)."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def test_module_examples_run():
    result = doctest.testmod(vq, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_identity_gives_the_perfect_score():
    x = _video(1, 2, 176)
    assert math.isinf(psnr(x, x))
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim(x, x) == pytest.approx(1.0, abs=1e-6)


def test_scores_fall_monotonically_with_noise():
    x = _video(1, 1, 176)
    noisy = [_noisy(x, s) for s in NOISE]
    for metric in (psnr, ssim, ms_ssim):
        values = [metric(y, x) for y in noisy]
        assert all(a > b for a, b in zip(values, values[1:])), (metric.__name__, values)


def test_per_video_reduction_and_unchanged_defaults():
    x = _video(2, 3, 176)
    y = torch.cat([_noisy(x[:1], 0.05), _noisy(x[1:], 0.2)])
    for metric, per_frame in ((psnr, psnr_per_frame), (ssim, ssim_per_frame), (ms_ssim, ms_ssim_per_frame)):
        frames = per_frame(y, x)
        assert frames.shape == (2, 3)
        videos = metric(y, x, per_video=True)
        assert videos.shape == (2,)
        torch.testing.assert_close(videos, frames.mean(-1))
        assert videos[0] > videos[1]  # the less noisy video scores better
        mean = metric(y, x)
        assert isinstance(mean, float) and mean == pytest.approx(float(frames.mean()))


def test_psnr_matches_torchmetrics_per_frame():
    from torchmetrics.functional.image import peak_signal_noise_ratio

    x = _video(2, 3, 32)
    y = _noisy(x, 0.1)
    # Per frame needs reduction='none' over dims (1, 2, 3): torchmetrics' default pools the MSE over the batch.
    ref = peak_signal_noise_ratio(_frames(y), _frames(x), data_range=2.0, reduction="none", dim=(1, 2, 3))
    assert (psnr_per_frame(y, x).flatten() - ref).abs().max() < 1e-4  # measured 1.2e-6 dB


def test_ssim_matches_torchmetrics():
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    x = _video(2, 3, 32)
    y = _noisy(x, 0.1)
    # Same Gaussian 11/1.5 window; torchmetrics reflect-pads, so its valid region is the full map cropped by 5.
    _, full = tm_ssim(_frames(y) + 1, _frames(x) + 1, data_range=2.0, reduction="none", return_full_image=True)
    ref = full[..., 5:-5, 5:-5].mean((1, 2, 3))
    assert (ssim_per_frame(y, x).flatten() - ref).abs().max() < 1e-8
    # Its own reduction averages the reflect-padded border too: a different convention, not compared (it moves
    # SSIM by ~2e-3 on these smooth 128x128 frames, ~5e-5 on white noise).


@pytest.mark.skipif(importlib.util.find_spec("skimage") is None, reason="scikit-image is not installed")
def test_psnr_and_ssim_match_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio as sk_psnr
    from skimage.metrics import structural_similarity as sk_ssim

    x = _video(1, 2, 32)
    y = _noisy(x, 0.1)
    for i, (a, b) in enumerate(zip(_frames(y).numpy(), _frames(x).numpy())):
        assert psnr_per_frame(y, x).flatten()[i] == pytest.approx(sk_psnr(b, a, data_range=2.0), abs=1e-4)
        ref = sk_ssim(
            b, a, data_range=2.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=0
        )
        assert ssim_per_frame(y, x).flatten()[i] == pytest.approx(ref, abs=1e-4)


def _reference_ms_ssim(a: torch.Tensor, b: torch.Tensor, span: float, *, reflect_last: bool) -> torch.Tensor:
    """Wang et al. MS-SSIM of images (N, C, H, W) >= 0, float64, written out scale by scale.

    ``reflect_last=False``: valid windows at every scale, per channel, channels averaged last (Wang et al.'s
    MATLAB code, pytorch-msssim). ``True``: the coarsest scale's SSIM over the reflect-padded frame and
    channels averaged first (torchmetrics' convention, which :func:`ms_ssim_per_frame` uses).
    """
    coords = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = g / g.sum()
    win = (g[:, None] * g[None, :])[None, None].repeat(a.shape[1], 1, 1, 1)
    c1, c2 = (0.01 * span) ** 2, (0.03 * span) ** 2
    out = torch.ones(a.shape[0], 1 if reflect_last else a.shape[1], dtype=torch.float64)
    for i, beta in enumerate(MS_SSIM_BETAS):
        last = i == len(MS_SSIM_BETAS) - 1
        pa, pb = (
            (F.pad(a, (5,) * 4, mode="reflect"), F.pad(b, (5,) * 4, mode="reflect"))
            if last and reflect_last
            else (a, b)
        )

        def blur(z):
            return F.conv2d(z, win, groups=win.shape[0])

        ma, mb = blur(pa), blur(pb)
        cs = (2 * (blur(pa * pb) - ma * mb) + c2) / (blur(pa * pa) - ma**2 + blur(pb * pb) - mb**2 + c2)
        term = cs * (2 * ma * mb + c1) / (ma**2 + mb**2 + c1) if last else cs
        term = term.flatten(1).mean(-1, keepdim=True) if reflect_last else term.flatten(2).mean(-1)
        out = out * term.clamp(min=0) ** beta
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return out.mean(1)


def test_ms_ssim_matches_written_out_references():
    x = _video(1, 1, 176)
    for sigma in (0.05, 0.1):
        y = _noisy(x, sigma)
        ours = ms_ssim_per_frame(y, x).flatten()
        same = _reference_ms_ssim(_frames(y) + 1, _frames(x) + 1, 2.0, reflect_last=True)
        assert (ours - same).abs().max() < 1e-5  # measured <= 2e-6 (float32 inside torchmetrics)
        valid = _reference_ms_ssim(_frames(y) + 1, _frames(x) + 1, 2.0, reflect_last=False)
        assert (ours - valid).abs().max() < 5e-4  # the border conventions differ (measured 5e-5, 2e-4)


@pytest.mark.skipif(importlib.util.find_spec("pytorch_msssim") is None, reason="pytorch-msssim is not installed")
def test_ms_ssim_matches_pytorch_msssim():
    from pytorch_msssim import ms_ssim as pm_ms_ssim

    x = _video(1, 2, 176)
    y = _noisy(x, 0.05)
    ref = pm_ms_ssim(_frames(y).float() + 1, _frames(x).float() + 1, data_range=2.0, size_average=False)
    # Valid windows at the coarsest scale there, reflect-padded in torchmetrics (see ms_ssim_per_frame).
    assert (ms_ssim_per_frame(y, x).flatten() - ref.double()).abs().max() < 5e-4


def test_ms_ssim_range_conventions_agree():
    x = _video(1, 1, 176)
    y = _noisy(x, 0.1)
    pm = ms_ssim(y, x)
    assert ms_ssim((y + 1) / 2, (x + 1) / 2, data_range=(0.0, 1.0)) == pytest.approx(pm, abs=1e-6)
    assert ms_ssim((y + 1) * 127.5, (x + 1) * 127.5, data_range=(0.0, 255.0)) == pytest.approx(pm, abs=1e-6)


def test_ms_ssim_small_frames_need_explicit_fewer_scales():
    assert ms_ssim_min_size() == 176
    assert [ms_ssim_min_size(n) for n in (1, 2, 3, 4)] == [11, 22, 44, 99]
    small = torch.zeros(1, 3, 2, 64, 64)
    with pytest.raises(ValueError, match=r"at least 176x176, got 64x64; pass betas"):
        ms_ssim(small, small)
    with pytest.raises(ValueError, match=r"at least 176x176, got 175x176"):
        ms_ssim(torch.zeros(1, 3, 175, 176), torch.zeros(1, 3, 175, 176))
    x = _video(1, 2, 64)
    three = (0.2, 0.3, 0.5)  # non-standard: not comparable to 5-scale numbers
    assert ms_ssim(x, x, betas=three) == pytest.approx(1.0, abs=1e-6)
    assert ms_ssim(_noisy(x, 0.05), x, betas=three) > ms_ssim(_noisy(x, 0.2), x, betas=three)
    with pytest.raises(ValueError, match=r"3 scales .* at least 44x44, got 40x40$"):
        ms_ssim(torch.zeros(1, 3, 40, 40), torch.zeros(1, 3, 40, 40), betas=three)
    with pytest.raises(ValueError, match="betas"):
        ms_ssim(x, x, betas=())
    with pytest.raises(ValueError, match="shapes differ"):
        ms_ssim(torch.zeros(1, 3, 176, 176), torch.zeros(1, 3, 176, 177))
