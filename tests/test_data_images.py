"""Captioned images as 1-frame videos (vidtok.data.images)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from vidtok.data.images import ImageTextDataset
from vidtok.io import save_video


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for k, (h, w) in enumerate([(40, 60), (64, 64), (20, 80), (30, 30)]):
        save_video(rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8), tmp_path / f"img{k}.png")
        (tmp_path / f"img{k}.txt").write_text(f"image {k}")
    return tmp_path


def test_images_are_one_frame_videos(folder):
    ds = ImageTextDataset(folder, size=32)
    assert len(ds) == 4
    item = ds[0]
    assert item["video"].shape == (3, 1, 32, 32) and item["video"].dtype == torch.float32
    assert item["caption"] == "image 0" and item["frame_stride"] == 1 and item["skipped"] == 0
    assert ImageTextDataset(folder, size=(16, 24))[2]["video"].shape == (3, 1, 16, 24)


def test_center_crop_keeps_the_middle(tmp_path):
    image = np.zeros((1, 20, 60, 3), np.uint8)
    image[:, :, 20:40] = 255  # white middle third
    save_video(image, tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("a")
    video = ImageTextDataset(tmp_path, size=20)[0]["video"]
    assert float(video.mean()) > 0.95  # only the white middle survives the crop


def test_jsonl_captions_and_filters(folder, tmp_path, caplog):
    lines = [json.dumps({"path": str(folder / f"img{k}.png"), "caption": f"from jsonl {k}"}) for k in range(4)]
    (tmp_path / "list.jsonl").write_text("\n".join(lines))
    with caplog.at_level(logging.INFO, logger="vidtok.data.video"):
        ds = ImageTextDataset(tmp_path / "list.jsonl", size=16, min_resolution=30, min_aspect_ratio=0.5)
    # img2 is 20x80 (too small, aspect 0.25); 30x30 and 40x60 and 64x64 pass
    assert [r["caption"] for r in ds.records] == ["from jsonl 0", "from jsonl 1", "from jsonl 3"]
    assert ds.filter_stats == {"total": 4, "too_small": 1, "kept": 3}
    assert "kept 3 of 4" in caplog.text


def test_unreadable_image_is_skipped_and_counted(folder):
    (folder / "img1.png").write_bytes(b"\x89PNG broken")
    ds = ImageTextDataset(folder, size=16)
    item = ds[1]
    assert item["caption"] == "image 2" and item["skipped"] == 1 and ds.num_skipped == 1
