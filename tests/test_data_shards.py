"""WebDataset tar shards: writing, streaming, splitting, corrupt data (vidtok.data.shards)."""

from __future__ import annotations

import io
import json
import logging
import tarfile

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vidtok.data.shards import ShardDataset, expand_urls, write_shards
from vidtok.io import save_video, tensor_to_frames
from vidtok.shapes import ShapesDataset


@pytest.fixture(scope="module")
def source():
    return ShapesDataset(resolution=16, num_frames=4, length=10, seed=5)


@pytest.fixture(scope="module")
def lossless_shards(source, tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    paths = write_shards(source, str(d / "train-%04d.tar"), maxcount=3, lossless=True)
    return d, paths


def test_writer_layout(lossless_shards, source):
    d, paths = lossless_shards
    assert [p.name for p in paths] == [f"train-{k:04d}.tar" for k in range(4)]  # 3 + 3 + 3 + 1 samples
    assert not list(d.glob(".*.tmp"))
    with tarfile.open(paths[0]) as tar:
        names = tar.getnames()
        assert names[:3] == ["000000000.mp4", "000000000.txt", "000000000.json"]
        meta = json.loads(tar.extractfile("000000001.json").read())
        assert tar.extractfile("000000001.txt").read().decode() == source[1]["caption"]
    assert meta == {"fps": 8.0, "height": 16, "num_frames": 4, "width": 16}


def test_lossless_round_trip_in_order(lossless_shards, source):
    d, _ = lossless_shards
    ds = ShardDataset(str(d / "train-{0000..0003}.tar"), num_frames=None, size=None, shuffle_shards=False)
    samples = list(ds)
    assert len(samples) == len(source) == 10
    for k, sample in enumerate(samples):
        assert sample["key"] == f"{k:09d}" and sample["caption"] == source[k]["caption"]
        assert np.array_equal(tensor_to_frames(sample["video"]), tensor_to_frames(source[k]["video"]))


def test_h264_round_trip_is_close_and_clips_are_sampled(source, tmp_path):
    paths = write_shards(source, tmp_path / "h264-%02d.tar", maxcount=100)
    assert len(paths) == 1
    sample = next(iter(ShardDataset(paths[0], num_frames=None, size=None, shuffle_shards=False)))
    err = (sample["video"] - source[0]["video"]).abs().mean()
    assert float(err) < 0.05
    clips = list(ShardDataset(paths[0], num_frames=2, stride=(1, 3), size=8))
    assert len(clips) == 10 and all(c["video"].shape == (3, 2, 8, 8) for c in clips)
    assert all(1 <= c["frame_stride"] <= 3 for c in clips)


@pytest.mark.parametrize("num_shards_per_write", [3, 100])  # 4 shards (shard split) and 1 shard (sample split)
def test_two_ranks_get_disjoint_covering_sets(source, tmp_path, num_shards_per_write):
    paths = write_shards(source, tmp_path / "s-%03d.tar", maxcount=num_shards_per_write)
    keys = []
    for rank in (0, 1):
        ds = ShardDataset([str(p) for p in paths], num_frames=4, size=16, rank=rank, world_size=2, seed=1)
        keys.append([s["key"] for s in ds])
    assert keys[0] and keys[1] and not set(keys[0]) & set(keys[1])
    assert sorted(keys[0] + keys[1]) == [f"{k:09d}" for k in range(10)]


def test_dataloader_workers_and_shuffle_buffer(lossless_shards):
    d, _ = lossless_shards
    ds = ShardDataset(str(d / "train-*.tar"), num_frames=4, size=16, shuffle=4, seed=3)
    loaded = [key for batch in DataLoader(ds, batch_size=2, num_workers=2) for key in batch["key"]]
    assert sorted(loaded) == [f"{k:09d}" for k in range(10)]
    order = [s["key"] for s in ds]
    assert order == [s["key"] for s in ds]  # same seed and epoch: same order
    assert sorted(order) == sorted(loaded) and order != sorted(order)
    ds.set_epoch(1)
    assert [s["key"] for s in ds] != order


def test_environment_rank_and_repeat(lossless_shards, monkeypatch):
    d, _ = lossless_shards
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    rank1 = [s["key"] for s in ShardDataset(str(d / "train-*.tar"), num_frames=4, size=16)]
    monkeypatch.setenv("RANK", "0")
    rank0 = [s["key"] for s in ShardDataset(str(d / "train-*.tar"), num_frames=4, size=16)]
    assert sorted(rank0 + rank1) == [f"{k:09d}" for k in range(10)]
    everything = [s["key"] for s in ShardDataset(str(d / "train-*.tar"), num_frames=4, size=16, split="none")]
    assert sorted(everything) == [f"{k:09d}" for k in range(10)]  # no splitting for wrappers that slice
    repeating = iter(ShardDataset(str(d / "train-*.tar"), num_frames=4, size=16, repeat=True))
    assert len([next(repeating) for _ in range(25)]) == 25  # keeps going past one epoch of 5


def test_raw_files_are_stored_byte_for_byte_and_images_work(tmp_path):
    video = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    clip = save_video(video, tmp_path / "clip.mp4", fps=6)
    image = save_video(video[:1], tmp_path / "still.png")
    records = [{"path": str(clip), "caption": "a clip"}, {"path": str(image), "caption": "an image"}]
    (path,) = write_shards(records, tmp_path / "raw-%d.tar")
    with tarfile.open(path) as tar:
        assert tar.extractfile("000000000.mp4").read() == clip.read_bytes()
        assert json.loads(tar.extractfile("000000001.json").read()) == {"path": str(image)}
    samples = list(ShardDataset(path, num_frames=3, stride=2, size=8, shuffle_shards=False))
    assert samples[0]["video"].shape == (3, 3, 8, 8) and samples[0]["path"] == str(clip)
    assert samples[1]["video"].shape == (3, 1, 8, 8) and samples[1]["caption"] == "an image"


def test_corrupt_members_and_truncated_shards_are_skipped_and_counted(lossless_shards, tmp_path, caplog):
    d, paths = lossless_shards
    # a shard whose second sample has random bytes as its video
    with tarfile.open(paths[0]) as src, tarfile.open(tmp_path / "bad-0.tar", "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "000000001.mp4":
                data = np.random.default_rng(0).bytes(len(data))
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    # a shard cut in the middle
    raw = paths[1].read_bytes()
    (tmp_path / "bad-1.tar").write_bytes(raw[: len(raw) // 2])
    ds = ShardDataset(str(tmp_path / "bad-{0..1}.tar"), num_frames=4, size=16, shuffle_shards=False)
    with caplog.at_level(logging.WARNING, logger="vidtok.data.shards"):
        samples = list(ds)
    keys = [s["key"] for s in samples]
    assert keys[:2] == ["000000000", "000000002"] and samples[1]["skipped"] == 1
    assert 3 <= len(samples) <= 4  # the cut shard yields its intact samples
    assert ds.num_skipped == 2 and "truncated" in caplog.text and "000000001" in caplog.text
    assert str(tmp_path / "bad-0.tar") + "#000000001" in ds.skipped_paths


def test_pipe_urls_and_expansion(lossless_shards):
    d, paths = lossless_shards
    assert expand_urls(str(d / "train-{0000..0001}.tar")) == [str(p) for p in paths[:2]]
    assert expand_urls("a-{x,y}.tar::b.tar") == ["a-x.tar", "a-y.tar", "b.tar"]
    with pytest.raises(FileNotFoundError, match="no shard matches"):
        expand_urls(str(d / "nothing-*.tar"))
    ds = ShardDataset(f"pipe:cat {paths[0]}", num_frames=4, size=16, shuffle_shards=False, allow_code=True)
    assert [s["key"] for s in ds] == ["000000000", "000000001", "000000002"]
    with pytest.raises(ValueError, match="unsupported shard URL"):
        list(ShardDataset("s3://bucket/a.tar", num_frames=4))


def test_writer_errors(tmp_path):
    with pytest.raises(ValueError, match="printf field"):
        write_shards([], tmp_path / "no-field.tar")
    with pytest.raises(ValueError, match="no 'caption'"):
        write_shards([{"video": torch.zeros(3, 2, 8, 8)}], tmp_path / "x-%d.tar")
    with pytest.raises(ValueError, match="neither a 'video' nor a 'path'"):
        write_shards([{"caption": "x"}], tmp_path / "x-%d.tar")
    with pytest.raises(ValueError, match="invalid sample key"):
        write_shards([{"caption": "x", "video": torch.zeros(3, 2, 8, 8), "__key__": "a.b"}], tmp_path / "x-%d.tar")
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_official_webdataset_reads_our_shards(lossless_shards, source):
    import webdataset as wds

    d, paths = lossless_shards
    samples = list(wds.WebDataset([str(p) for p in paths], shardshuffle=False))
    assert [s["__key__"] for s in samples] == [f"{k:09d}" for k in range(10)]
    assert samples[3]["txt"].decode() == source[3]["caption"] and json.loads(samples[3]["json"])["num_frames"] == 4
    assert samples[3]["mp4"][4:8] == b"ftyp"
