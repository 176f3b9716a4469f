"""Weighted mixing of image and video datasets, whole batches per source (vidtok.data.mixing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from vidtok.data.mixing import WeightedMixture
from vidtok.shapes import ShapesDataset


class Tagged(Dataset):
    """Tiny dataset: sample i is a (3, T, 2, 2) video filled with i."""

    def __init__(self, n: int, frames: int):
        self.n, self.frames = n, frames
        self.epoch = None

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return {"video": torch.full((3, self.frames, 2, 2), float(i)), "caption": f"{self.frames}:{i}"}

    def set_epoch(self, epoch):
        self.epoch = epoch


def test_ratios_follow_weights():
    mix = WeightedMixture({"a": Tagged(10, 1), "b": Tagged(10, 4)}, {"a": 1, "b": 3}, batch_size=2, length=8000)
    counts = mix.batch_counts()
    assert counts["a"] + counts["b"] == 4000
    assert counts["b"] / 4000 == pytest.approx(0.75, abs=0.03)
    equal = WeightedMixture({"a": Tagged(10, 1), "b": Tagged(10, 4)}, batch_size=4, length=8000, seed=1)
    assert equal.batch_counts()["a"] / 2000 == pytest.approx(0.5, abs=0.04)


def test_dataloader_batches_never_mix_frame_counts():
    images = ShapesDataset(mode="image", resolution=16, length=12)
    videos = ShapesDataset(resolution=16, num_frames=4, length=12)
    mix = WeightedMixture({"images": images, "videos": videos}, batch_size=3, length=30, seed=0)
    loader = DataLoader(mix, batch_size=mix.batch_size, shuffle=False, num_workers=0)
    seen = set()
    for batch in loader:
        assert len(set(batch["source"])) == 1
        assert batch["video"].shape[2] == (1 if batch["source"][0] == "images" else 4)
        seen.add(batch["source"][0])
    assert seen == {"images", "videos"}


def test_each_source_is_read_without_repeats_within_a_pass():
    mix = WeightedMixture({"a": Tagged(7, 1), "b": Tagged(5, 2)}, batch_size=1, length=200, seed=2)
    taken = {"a": [], "b": []}
    for i in range(len(mix)):
        name, j = mix.locate(i)
        taken[name].append(j)
    for name, n in (("a", 7), ("b", 5)):
        seq = taken[name]
        full = len(seq) // n * n
        for p in range(0, full, n):
            assert sorted(seq[p : p + n]) == list(range(n))  # a permutation per pass


def test_deterministic_seekable_and_epoch_dependent():
    def make(seed=0):
        return WeightedMixture({"a": Tagged(20, 1), "b": Tagged(20, 2)}, batch_size=4, length=64, seed=seed)

    a, b = make(), make()
    order = [a[i]["caption"] for i in range(len(a))]
    assert order == [b[i]["caption"] for i in range(len(b))]
    assert [b[i]["caption"] for i in range(40, 64)] == order[40:]  # resume at any position
    assert order != [make(seed=1)[i]["caption"] for i in range(64)]
    a.set_epoch(1)
    assert order != [a[i]["caption"] for i in range(64)]
    assert all(ds.epoch == 1 for ds in a.datasets.values())  # the epoch reaches the sources


def test_workers_and_batch_sampler_shards():
    mix = WeightedMixture({"a": Tagged(9, 1), "b": Tagged(9, 3)}, batch_size=2, length=20, seed=4)
    serial = [b["caption"] for b in DataLoader(mix, batch_size=2, shuffle=False)]
    parallel = [b["caption"] for b in DataLoader(mix, batch_size=2, shuffle=False, num_workers=2)]
    assert serial == parallel
    per_rank = [
        [b["caption"] for b in DataLoader(mix, batch_sampler=mix.batch_sampler(rank=r, world_size=2))] for r in (0, 1)
    ]
    assert per_rank[0] == serial[0::2] and per_rank[1] == serial[1::2]
    resumed = [b["caption"] for b in DataLoader(mix, batch_sampler=mix.batch_sampler(start_batch=7))]
    assert resumed == serial[7:]


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown sources"):
        WeightedMixture({"a": Tagged(2, 1)}, {"b": 1})
    with pytest.raises(ValueError, match="not all 0"):
        WeightedMixture({"a": Tagged(2, 1)}, {"a": 0})
    with pytest.raises(ValueError, match="empty"):
        WeightedMixture({"a": Tagged(0, 1)})
    with pytest.raises(ValueError, match="smaller than one batch"):
        WeightedMixture({"a": Tagged(2, 1)}, batch_size=4)
    with pytest.raises(IndexError):
        WeightedMixture({"a": Tagged(2, 1)})[2]
    assert np.isclose(WeightedMixture({"a": Tagged(2, 1), "b": Tagged(2, 1)}, {"a": 2}).probabilities, [1, 0]).all()
