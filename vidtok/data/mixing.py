"""Weighted mixing of datasets (e.g. images and videos 1:1, as DiCoDe trains), whole batches per source.

Images (``T == 1``) and videos (``T == 16``) cannot be stacked into one tensor, so
[`WeightedMixture`][vidtok.data.mixing.WeightedMixture] chooses the source **per batch**: index ``i`` belongs to
batch ``i // batch_size``, and every index of a batch comes from the source drawn for that batch. A plain
``DataLoader(mixture, batch_size=mixture.batch_size, shuffle=False)`` therefore yields batches that never mix
sources (the mixture does its own shuffling, so the loader must not). Over many batches each source's share of
batches converges to its weight.

Everything is a pure function of ``(seed, epoch, index)``: the per-batch source choices are drawn once per epoch
from ``default_rng([seed, epoch])`` and each source is read in a seeded random order, one permutation per pass
over it (so every sample of a source is seen once before any is repeated). The mixture is seekable: resuming at
batch ``b`` means asking for indices from ``b * batch_size`` on (``accelerate``'s ``skip_first_batches`` or
[`batch_sampler(start_batch=b)`][vidtok.data.mixing.WeightedMixture.batch_sampler]).

**Distributed training.** With accelerate, ``accelerator.prepare(DataLoader(mixture, batch_size=...,
shuffle=False))`` hands out whole batches to processes, which keeps batches pure. With a plain
``torch.distributed`` setup, don't use ``DistributedSampler`` (it interleaves single indices and would mix
sources); pass ``batch_sampler=mixture.batch_sampler(rank=rank, world_size=world_size)`` to the DataLoader instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Sampler

__all__ = ["MixingPlan", "MixtureBatchSampler", "WeightedMixture"]

# Tags that keep the independent random draws apart: source choices, per-pass permutations, uniform reads.
_CHOICE, _PERMUTE, _UNIFORM = 0, 1, 2


class MixingPlan:
    """The seeded draws behind weighted source mixing: which source a batch reads, and in which order.

    One implementation serves [`WeightedMixture`][vidtok.data.mixing.WeightedMixture] and the trainer's
    [`ShardedBatchSampler`][vidtok.training.sampling.ShardedBatchSampler] /
    [`ShardedStream`][vidtok.training.sampling.ShardedStream]. Every draw comes from its own generator
    ``default_rng([*key, tag, ...])``, so any draw can be made in any order (seekable, worker-independent):

    * sources: ``default_rng([*key, 0, *keys]).choice(K, size, p=probabilities)``;
    * reading order: source ``k`` is read in passes, position ``p`` reads ``perm[p mod L]`` of the permutation
      ``default_rng([*key, 1, k, p div L])`` of pass ``p div L`` (every sample once before any repeats); sources
      longer than ``uniform_above`` draw each position uniformly from ``default_rng([*key, 2, k, p])`` instead,
      so no huge permutation is built.

    Args:
        weights: Relative weight of each source; normalized. Zero-weight sources are never drawn.
        lengths: Length of each source (needed by [`position`][vidtok.data.mixing.MixingPlan.position]);
            ``None`` for streams, which are read as they come.
        key: The seed words every generator starts with, e.g. ``(seed, epoch)`` or ``(seed, stream)``.
        shuffle: Read each source in seeded random order (otherwise in index order, wrapping around).
        uniform_above: Sources longer than this are read uniformly at random (``None``: never).
        names: Source names for error messages (default: their indices).

    Raises:
        ValueError: If the weights are not finite, non-negative and not all zero, or a source with a positive
            weight is empty.

    Example:
        >>> plan = MixingPlan([1, 3], lengths=[4, 6], key=(0, 0))
        >>> plan.draw_sources(8).tolist()
        [1, 1, 0, 0, 1, 1, 1, 1]
        >>> plan.position(1, 0), plan.position(1, 1), plan.position(1, 6)  # (index, pass); 6 starts pass 1
        ((2, 0), (4, 0), (1, 1))
    """

    def __init__(
        self,
        weights: Sequence[float],
        lengths: Sequence[int] | None = None,
        *,
        key: Sequence[int],
        shuffle: bool = True,
        uniform_above: int | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        w = np.asarray(weights, dtype=np.float64)
        names = list(names) if names is not None else list(range(len(w)))
        if w.ndim != 1 or len(w) == 0 or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            shown = dict(zip(names, w.tolist())) if w.ndim == 1 else list(weights)
            raise ValueError(f"weights must be finite, >= 0 and not all 0, got {shown}")
        self.probabilities = w / w.sum()
        self.active = np.flatnonzero(self.probabilities > 0)
        self.lengths = None if lengths is None else [int(n) for n in lengths]
        if self.lengths is not None:
            if len(self.lengths) != len(w):
                raise ValueError(f"{len(w)} weights for {len(self.lengths)} sources")
            empty = [names[i] for i in self.active if self.lengths[i] == 0]
            if empty:
                raise ValueError(f"sources {empty} are empty but have a positive weight")
        self.key = tuple(int(k) for k in key)
        self.shuffle = bool(shuffle)
        self.uniform_above = uniform_above
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    def rng(self, tag: int, *keys: int) -> np.random.Generator:
        """The generator of one independent draw: ``default_rng([*key, tag, *keys])``."""
        return np.random.default_rng([*self.key, tag, *keys])

    def draw_sources(self, size: int, *keys: int) -> np.ndarray:
        """``size`` source ids drawn with the weights from the generator of ``keys`` (e.g. a batch number)."""
        if len(self.active) == 1:  # the draw's outcome is certain: skip the generator
            return np.full(size, self.active[0], dtype=np.int64)
        return self.rng(_CHOICE, *keys).choice(len(self.probabilities), size=size, p=self.probabilities)

    def position(self, source: int, position: int) -> tuple[int, int]:
        """``(index in the source, pass)`` read at ``position`` of the source's reading order."""
        length = self.lengths[source]
        epoch_pass, offset = divmod(position, length)
        if not self.shuffle:
            return offset, epoch_pass
        if self.uniform_above is not None and length > self.uniform_above:
            return int(self.rng(_UNIFORM, source, position).integers(length)), epoch_pass
        key = (source, epoch_pass)
        perm = self._perms.get(key)
        if perm is None:
            perm = self.rng(_PERMUTE, source, epoch_pass).permutation(length)
            # A batch spans at most two passes of a source: drop older permutations.
            for old in [k for k in self._perms if k[0] == source and k[1] < epoch_pass - 1]:
                del self._perms[old]
            self._perms[key] = perm
        return int(perm[offset]), epoch_pass


class WeightedMixture(Dataset):
    """Map-style mixture of named datasets; every batch of ``batch_size`` consecutive indices has one source.

    DiCoDe trains its AR model on images and videos at a 1:1 ratio (supplementary §6, "Autoregressive Language
    Models"): ``WeightedMixture({"images": images, "videos": videos}, weights={"images": 1, "videos": 1},
    batch_size=256)``. See the module docs for how batches are formed and how to load it with a DataLoader.

    Args:
        datasets: Named map-style datasets (``__len__``/``__getitem__`` returning dicts).
        weights: Relative weight of each source (normalized; missing names get 0). ``None``: equal weights.
        batch_size: Batch size of the DataLoader; the source is chosen per block of this many indices.
        length: Number of samples per epoch, rounded down to a multiple of ``batch_size``. ``None``: the sum of
            the source lengths (rounded the same way).
        seed: Base seed of the source draws and permutations.
        shuffle: Read each source in a seeded random order (otherwise in index order, wrapping around).

    Samples are the source's sample dict plus ``"source"`` (its name).

    Attributes:
        names: Source names, in the order of ``datasets``.
        probabilities: Normalized weights, aligned with ``names``.

    Example:
        >>> from vidtok.shapes import ShapesDataset
        >>> images = ShapesDataset(mode="image", resolution=16, length=10)
        >>> videos = ShapesDataset(resolution=16, num_frames=4, length=10)
        >>> mix = WeightedMixture({"images": images, "videos": videos}, batch_size=4, length=16, seed=0)
        >>> [mix.source_of(b * 4) for b in range(4)]  # one source per batch of 4 indices
        ['videos', 'images', 'images', 'images']
    """

    def __init__(
        self,
        datasets: Mapping[str, Any],
        weights: Mapping[str, float] | None = None,
        *,
        batch_size: int = 1,
        length: int | None = None,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        if not datasets:
            raise ValueError("datasets must name at least one dataset")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.datasets = dict(datasets)
        self.names = list(self.datasets)
        if weights is None:
            weights = {name: 1.0 for name in self.names}
        unknown = sorted(set(weights) - set(self.names))
        if unknown:
            raise ValueError(f"weights name unknown sources {unknown}; sources are {self.names}")
        self._weights = [float(weights.get(name, 0.0)) for name in self.names]
        self._lengths = [len(self.datasets[name]) for name in self.names]
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.epoch = 0
        self._plan()  # validates the weights
        self.probabilities = self._mixing.probabilities
        total = sum(self._lengths) if length is None else int(length)
        self.num_batches = total // self.batch_size
        if self.num_batches < 1:
            raise ValueError(f"length {total} is smaller than one batch of {self.batch_size}")
        self._draw()

    def _plan(self) -> None:
        self._mixing = MixingPlan(
            self._weights, self._lengths, key=(self.seed, self.epoch), shuffle=self.shuffle, names=self.names
        )

    def _draw(self) -> None:
        self._choices = self._mixing.draw_sources(self.num_batches)
        # How many earlier batches of the epoch drew the same source: the batch's position in that source.
        self._ordinal = np.zeros(self.num_batches, dtype=np.int64)
        for k in range(len(self.names)):
            mask = self._choices == k
            self._ordinal[mask] = np.arange(int(mask.sum()))

    def __len__(self) -> int:
        return self.num_batches * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Redraw the batch sources and orders for ``epoch`` and pass the epoch on to sources that take it."""
        self.epoch = int(epoch)
        self._plan()
        self._draw()
        for ds in self.datasets.values():
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)

    def source_of(self, index: int) -> str:
        """Name of the source that sample ``index`` comes from."""
        return self.names[int(self._choices[self._check(index) // self.batch_size])]

    def batch_counts(self) -> dict[str, int]:
        """Number of batches drawn from each source in the current epoch."""
        counts = np.bincount(self._choices, minlength=len(self.names))
        return {name: int(c) for name, c in zip(self.names, counts)}

    def _check(self, index: int) -> int:
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {type(index).__name__}")
        index = int(index) + (n if index < 0 else 0)
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a mixture of length {n}")
        return index

    def locate(self, index: int) -> tuple[str, int]:
        """``(source name, index in that source)`` of mixture sample ``index``."""
        index = self._check(index)
        b, r = divmod(index, self.batch_size)
        k = int(self._choices[b])
        return self.names[k], self._mixing.position(k, int(self._ordinal[b]) * self.batch_size + r)[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        """The sample at ``index``: the chosen source's sample dict plus ``"source"``."""
        name, source_index = self.locate(index)
        sample = dict(self.datasets[name][source_index])
        sample["source"] = name
        return sample

    def batch_sampler(self, rank: int = 0, world_size: int = 1, start_batch: int = 0) -> MixtureBatchSampler:
        """Batch sampler of the mixture's batches for one process (``DataLoader(batch_sampler=...)``).

        Args:
            rank: This process's rank.
            world_size: Number of processes; process ``rank`` gets batches ``rank, rank + world_size, ...``.
            start_batch: First global batch to yield (to resume mid-epoch).
        """
        return MixtureBatchSampler(self, rank=rank, world_size=world_size, start_batch=start_batch)

    def __repr__(self) -> str:
        weights = ", ".join(f"{n}={p:.3g}" for n, p in zip(self.names, self.probabilities))
        return f"{type(self).__name__}({weights}; len={len(self)}, batch_size={self.batch_size}, seed={self.seed})"


class MixtureBatchSampler(Sampler[list[int]]):
    """Yields the index lists of a [`WeightedMixture`][vidtok.data.mixing.WeightedMixture]'s batches.

    Each list is one whole batch (one source). Batches are dealt round-robin to ``world_size`` processes, so
    processes never share a batch; pass it as ``DataLoader(mixture, batch_sampler=...)``.

    Args:
        mixture: The mixture.
        rank: This process's rank.
        world_size: Number of processes.
        start_batch: First global batch index to yield (resume).
    """

    def __init__(self, mixture: WeightedMixture, *, rank: int = 0, world_size: int = 1, start_batch: int = 0):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if start_batch < 0:
            raise ValueError(f"start_batch must be >= 0, got {start_batch}")
        self.mixture, self.rank, self.world_size, self.start_batch = mixture, rank, world_size, start_batch

    def _batches(self) -> range:
        first = self.start_batch + (self.rank - self.start_batch) % self.world_size
        return range(first, self.mixture.num_batches, self.world_size)

    def __iter__(self) -> Iterator[list[int]]:
        bs = self.mixture.batch_size
        for b in self._batches():
            yield list(range(b * bs, (b + 1) * bs))

    def __len__(self) -> int:
        return len(self._batches())
