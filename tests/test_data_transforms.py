"""Clip sampling and resize + center crop (vidtok.data.transforms)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidtok.data.transforms import (
    Clip,
    center_crop,
    clip_span,
    parse_size,
    parse_stride,
    resize_center_crop,
    resize_crop_plan,
    sample_clip,
)


def test_parse_stride_and_size():
    assert parse_stride(3) == (3, 3)
    assert parse_stride((1, 6)) == (1, 6)
    for bad in (0, -1, (3, 1), (0, 2), "2", (1.5, 2), True):
        with pytest.raises(ValueError, match="stride"):
            parse_stride(bad)
    assert parse_size(64) == (64, 64)
    assert parse_size((32, 48)) == (32, 48)
    assert parse_size(None) is None
    for bad in (0, (0, 4), "x", (1, 2, 3)):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)


def test_fixed_stride_center_and_first():
    clip = sample_clip(100, num_frames=16, stride=3, start="center")
    assert clip == Clip(start=(100 - 46) // 2, stride=3, num_frames=16)
    assert clip.span == clip_span(16, 3) == 46
    assert sample_clip(100, 16, 3, start="first").indices == list(range(0, 46, 3))


def test_random_stride_stays_in_range_and_covers_it():
    rng = np.random.default_rng(0)
    strides = {sample_clip(200, 16, (1, 6), rng).stride for _ in range(300)}
    assert strides == set(range(1, 7))


def test_short_video_gets_a_smaller_stride_or_a_clear_error():
    rng = np.random.default_rng(0)
    # 31 frames fit 16 frames only at stride <= 2
    assert {sample_clip(31, 16, (1, 6), rng).stride for _ in range(50)} == {1, 2}
    with pytest.raises(ValueError, match="needs 31"):
        sample_clip(30, 16, (2, 6), rng)


def test_random_needs_a_generator():
    with pytest.raises(ValueError, match="rng"):
        sample_clip(100, 4, 1)
    assert sample_clip(4, 4, 1).start == 0  # nothing random: no generator needed


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 300),
    t=st.integers(1, 20),
    lo=st.integers(1, 4),
    extra=st.integers(0, 4),
    seed=st.integers(0, 2**32 - 1),
    start=st.sampled_from(["random", "center", "first"]),
)
def test_sampled_clip_always_fits(n, t, lo, extra, seed, start):
    hi = lo + extra
    if n < clip_span(t, lo):
        with pytest.raises(ValueError):
            sample_clip(n, t, (lo, hi), np.random.default_rng(seed), start)
        return
    clip = sample_clip(n, t, (lo, hi), np.random.default_rng(seed), start)
    assert lo <= clip.stride <= hi
    assert len(clip.indices) == t and clip.indices[0] >= 0 and clip.indices[-1] < n
    # same generator state -> same clip
    assert sample_clip(n, t, (lo, hi), np.random.default_rng(seed), start) == clip


@pytest.mark.parametrize(("h", "w", "size"), [(720, 1280, 256), (144, 176, 64), (40, 60, (32, 16)), (20, 30, 64)])
def test_resize_center_crop_shape_and_plan(h, w, size):
    frames = np.random.default_rng(0).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    out = resize_center_crop(frames, size)
    th, tw = parse_size(size)
    assert out.shape == (2, th, tw, 3) and out.dtype == np.uint8
    plan = resize_crop_plan(h, w, size)
    assert plan.resize[0] >= th and plan.resize[1] >= tw
    assert min(plan.resize[0] - th, plan.resize[1] - tw) == 0  # one side matches exactly: no needless crop


def test_center_crop_takes_the_middle():
    frames = np.zeros((1, 6, 10, 1), np.uint8)
    frames[0, 2:4, 4:6] = 1
    assert center_crop(frames, 2).sum() == 4
    with pytest.raises(ValueError, match="resize first"):
        center_crop(frames, 8)
