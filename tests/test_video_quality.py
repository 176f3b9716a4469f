"""PSNR / SSIM against closed forms and an independent per-window reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidtok.metrics.video_quality import psnr, psnr_per_frame, ssim, ssim_per_frame


def _reference_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Wang et al. SSIM of one single-channel image, window by window (11×11 Gaussian σ=1.5, valid)."""
    coords = np.arange(11) - 5.0
    g = np.exp(-(coords**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            values.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_psnr_closed_form_and_ranges():
    x = torch.zeros(2, 3, 4, 8, 8)
    assert psnr(x, x + 0.2) == pytest.approx(20.0)  # MSE 0.04, peak 2 -> 10 log10(4 / 0.04)
    assert psnr(x, x + 0.1, data_range=(0.0, 1.0)) == pytest.approx(20.0)
    assert psnr(x, x + 25.5, data_range=(0.0, 255.0)) == pytest.approx(20.0)
    assert math.isinf(psnr(x, x))


def test_psnr_averages_per_frame_not_pooled():
    x = torch.zeros(1, 1, 2, 4, 4)
    y = x.clone()
    y[:, :, 0] = 0.2  # frame 0: 20 dB
    y[:, :, 1] = 0.02  # frame 1: 40 dB
    per = psnr_per_frame(y, x)
    assert per.shape == (1, 2)
    assert per[0].tolist() == pytest.approx([20.0, 40.0])
    assert psnr(y, x) == pytest.approx(30.0)  # pooled MSE would give ~23 dB


def test_ssim_identity_and_constant_images():
    x = torch.rand(2, 3, 2, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert ssim(x, x) == pytest.approx(1.0)
    a, b = 0.3, 0.6  # constant frames in [0, 1]: only the luminance term remains
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * a * b + c1) / (a**2 + b**2 + c1)
    got = ssim(torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b), data_range=(0.0, 1.0))
    assert got == pytest.approx(expected, rel=1e-9)


def test_ssim_matches_window_by_window_reference():
    rng = np.random.default_rng(0)
    a = rng.random((3, 20, 24))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    expected = np.mean([_reference_ssim(a[c], b[c], 1.0) for c in range(3)])
    got = ssim(torch.from_numpy(b)[None], torch.from_numpy(a)[None], data_range=(0.0, 1.0))
    assert got == pytest.approx(expected, rel=1e-9)
    # The [-1, 1] convention gives the same number for the same images.
    got_pm = ssim(torch.from_numpy(b * 2 - 1)[None], torch.from_numpy(a * 2 - 1)[None])
    assert got_pm == pytest.approx(expected, rel=1e-9)


def test_ssim_per_frame_shape_and_errors():
    x = torch.zeros(2, 3, 5, 12, 12)
    assert ssim_per_frame(x, x).shape == (2, 5)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=(1.0, 0.0))
    with pytest.raises(TypeError):
        psnr(np.zeros((1, 3, 8, 8)), x)
