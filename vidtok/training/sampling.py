"""Deterministic, seekable, sharded batching over one dataset or a weighted mix of datasets.

Every global batch is a pure function of ``(seed, stage, batch number)``: which dataset each slot reads and
which sample it gets. Three properties follow, and the trainer relies on all of them:

* **Exact resume.** Resuming at step ``s`` starts the stream at batch ``s × gradient_accumulation_steps``; no
  sampler state needs saving, and DataLoader workers prefetching ahead do not matter.
* **Sharding that equals a bigger batch.** Process ``r`` of ``W`` gets slots ``[r·b, (r+1)·b)`` of each global
  batch of ``W·b``, so two processes with batch ``b`` see exactly what one process with batch ``2b`` sees.
* **Stage mixes.** A stage's dataset weights only change the per-batch (or per-sample) source draws.

Within a dataset, samples are read in epochs: slot position ``p`` (counted over the whole stream) reads
``perm_e[p mod L]`` of the seeded permutation of epoch ``e = p div L`` (datasets above ``2**24`` samples are
read uniformly at random instead, to avoid materializing huge permutations). The draws are those of
[`MixingPlan`][vidtok.data.mixing.MixingPlan], the one implementation of weighted mixing that
[`WeightedMixture`][vidtok.data.mixing.WeightedMixture] uses too, keyed by ``(seed, stream)``. A dataset with
``set_epoch(epoch)`` is told the epoch of each sample it serves, inside the worker that serves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset, IterableDataset, Sampler, get_worker_info

from vidtok.data.mixing import MixingPlan

__all__ = ["IndexedSources", "ShardedBatchSampler", "ShardedStream"]

_PERMUTATION_LIMIT = 2**24


class _Plan:
    """A [`MixingPlan`][vidtok.data.mixing.MixingPlan] keyed by ``(seed, stream)``, drawn per global batch."""

    def __init__(
        self,
        weights: Sequence[float],
        lengths: Sequence[int] | None = None,
        *,
        global_batch: int,
        seed: int,
        stream: int,
        mix: str,
        shuffle: bool,
    ) -> None:
        if mix not in ("batch", "sample"):
            raise ValueError(f"mix must be 'batch' or 'sample', got {mix!r}")
        self.mixing = MixingPlan(
            weights, lengths, key=(seed, stream), shuffle=shuffle, uniform_above=_PERMUTATION_LIMIT
        )
        self.active = self.mixing.active
        self.global_batch = int(global_batch)
        self.mix = mix

    def sources(self, batch: int) -> np.ndarray:
        """Source id of every slot of global batch ``batch``."""
        picks = self.mixing.draw_sources(1 if self.mix == "batch" else self.global_batch, batch)
        return np.broadcast_to(picks, (self.global_batch,)).astype(np.int64)


class ShardedBatchSampler(Sampler[list[tuple[int, int, int]]]):
    """Infinite stream of this process's share of every global batch, over map-style datasets.

    Yields lists of ``(source, index, epoch)`` keys for [`IndexedSources`][vidtok.training.sampling.IndexedSources].

    Args:
        lengths: Length of each source dataset.
        weights: Relative weight of each source (``None``: equal). Zero-weight sources are never read.
        batch_size: Samples per process per batch.
        num_processes: Processes sharing each global batch.
        process_index: This process's rank.
        seed: Base seed.
        stream: Separates independent streams with the same seed (the trainer passes the stage index).
        start_batch: First global batch to yield (resume).
        shuffle: Seeded random order within each source (otherwise index order).
        mix: ``"batch"`` (one source per global batch) or ``"sample"`` (one draw per sample).

    Example:
        >>> s = ShardedBatchSampler([10], batch_size=2, num_processes=2, process_index=1, shuffle=False)
        >>> it = iter(s)
        >>> next(it), next(it)
        ([(0, 2, 0), (0, 3, 0)], [(0, 6, 0), (0, 7, 0)])
    """

    def __init__(
        self,
        lengths: Sequence[int],
        weights: Sequence[float] | None = None,
        *,
        batch_size: int,
        num_processes: int = 1,
        process_index: int = 0,
        seed: int = 0,
        stream: int = 0,
        start_batch: int = 0,
        shuffle: bool = True,
        mix: str = "batch",
    ) -> None:
        if not 0 <= process_index < num_processes:
            raise ValueError(f"need 0 <= process_index < num_processes, got {process_index}, {num_processes}")
        if batch_size < 1 or start_batch < 0:
            raise ValueError(f"batch_size must be >= 1 and start_batch >= 0, got {batch_size}, {start_batch}")
        self.lengths = [int(n) for n in lengths]
        weights = [1.0] * len(self.lengths) if weights is None else list(weights)
        if len(weights) != len(self.lengths):
            raise ValueError(f"{len(weights)} weights for {len(self.lengths)} datasets")
        self.plan = _Plan(
            weights,
            self.lengths,
            global_batch=batch_size * num_processes,
            seed=seed,
            stream=stream,
            mix=mix,
            shuffle=shuffle,
        )
        self.batch_size, self.process_index, self.start_batch = batch_size, process_index, start_batch

    def global_batch(self, batch: int) -> list[tuple[int, int, int]]:
        """All ``(source, index, epoch)`` keys of global batch ``batch`` (every process's share)."""
        g = self.plan.global_batch
        keys = []
        for slot, source in enumerate(self.plan.sources(batch)):
            index, epoch = self.plan.mixing.position(int(source), batch * g + slot)
            keys.append((int(source), index, epoch))
        return keys

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        lo = self.process_index * self.batch_size
        batch = self.start_batch
        while True:
            yield self.global_batch(batch)[lo : lo + self.batch_size]
            batch += 1


class IndexedSources(Dataset):
    """Map-style view of several datasets addressed by ``(source, index, epoch)`` keys.

    Args:
        datasets: The source datasets, in the order the sampler numbers them.
    """

    def __init__(self, datasets: Sequence[Any]) -> None:
        self.datasets = list(datasets)
        self._epochs = [None] * len(self.datasets)

    def __getitem__(self, key: tuple[int, int, int]) -> Any:
        source, index, epoch = key
        dataset = self.datasets[source]
        if self._epochs[source] != epoch and hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)  # runs in the worker that serves the sample, on its own copy
        self._epochs[source] = epoch
        return dataset[index]

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)


class ShardedStream(IterableDataset):
    """This process's batches from iterable datasets (streams) that split themselves across processes and workers.

    Streaming datasets such as [`ShardDataset`][vidtok.data.shards.ShardDataset] (or webdataset's
    ``split_by_node``/``split_by_worker``, or Hugging Face ``split_dataset_by_node``) already give every process,
    and every DataLoader worker in it, its own part of the data. This wrapper reads them as they are and only
    decides which stream each slot of a batch comes from, with the same seeded plan as
    [`ShardedBatchSampler`][vidtok.training.sampling.ShardedBatchSampler] (so with ``mix="batch"`` all processes
    draw the same source for a step). DataLoader worker ``w`` of ``W`` produces global batches ``n ≡ w (mod W)``;
    the DataLoader returns workers' batches round-robin, hence in order. A stream that ends is restarted after
    ``set_epoch(epoch + 1)`` (if it has that method).

    Resuming at batch ``start_batch``: the stream starts at ``aligned_start(num_workers)`` (the start rounded down
    to a multiple of the worker count, so that every batch keeps its worker), and the caller drops the first
    ``start_batch - aligned_start`` batches. With ``resume="replay"`` every worker first reads, and discards, the
    samples its streams gave to earlier batches: exact for deterministic streams with the same processes and
    workers, at the cost of reading them. With ``resume="reshuffle"`` nothing is read; streams restart with
    ``set_epoch`` at a new epoch number derived from the start (statistically equivalent, instant).

    Args:
        streams: The iterable datasets.
        weights: Relative weight of each stream (``None``: equal).
        batch_size: Samples per process per batch.
        num_processes: Number of processes (sets the global batch the source plan is drawn for).
        process_index: This process's rank (its slots in ``mix="sample"`` plans).
        seed: Base seed of the source draws.
        stream: Separates independent plans with the same seed (the trainer passes the stage index).
        start_batch: First global batch of this run (resume).
        mix: ``"batch"`` or ``"sample"`` (see [`ShardedBatchSampler`][vidtok.training.sampling.ShardedBatchSampler]).
        resume: ``"replay"`` or ``"reshuffle"`` (see above).
    """

    def __init__(
        self,
        streams: Sequence[Iterable[Any]],
        weights: Sequence[float] | None = None,
        *,
        batch_size: int,
        num_processes: int = 1,
        process_index: int = 0,
        seed: int = 0,
        stream: int = 0,
        start_batch: int = 0,
        mix: str = "batch",
        resume: str = "replay",
    ) -> None:
        if not 0 <= process_index < num_processes:
            raise ValueError(f"need 0 <= process_index < num_processes, got {process_index}, {num_processes}")
        if resume not in ("replay", "reshuffle"):
            raise ValueError(f"resume must be 'replay' or 'reshuffle', got {resume!r}")
        self.streams = list(streams)
        weights = [1.0] * len(self.streams) if weights is None else list(weights)
        if len(weights) != len(self.streams):
            raise ValueError(f"{len(weights)} weights for {len(self.streams)} streams")
        self.plan = _Plan(
            weights, global_batch=batch_size * num_processes, seed=seed, stream=stream, mix=mix, shuffle=False
        )
        self.batch_size, self.process_index, self.start_batch, self.resume = (
            batch_size,
            process_index,
            start_batch,
            resume,
        )

    def aligned_start(self, num_workers: int) -> int:
        """The batch the stream actually starts at: ``start_batch`` rounded down to a multiple of the workers."""
        workers = max(1, num_workers)
        return self.start_batch - self.start_batch % workers

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        first = self.aligned_start(workers)
        replay = self.resume == "replay"
        # Reshuffled restarts use epochs no fresh run reaches early: 1 + first * 1000 + pass.
        base_epoch = 0 if replay or first == 0 else 1 + first * 1000
        iterators: dict[int, Iterator[Any]] = {}
        epochs: dict[int, int] = {}

        def pull(source: int) -> Any:
            for _attempt in range(2):
                if source not in iterators:
                    epochs[source] = epochs.get(source, base_epoch - 1) + 1
                    stream = self.streams[source]
                    if epochs[source] > 0 and hasattr(stream, "set_epoch"):
                        stream.set_epoch(epochs[source])
                    iterators[source] = iter(stream)
                try:
                    return next(iterators[source])
                except StopIteration:
                    del iterators[source]
            raise ValueError(f"stream {source} yields no samples")

        lo = self.process_index * self.batch_size
        batch = worker if replay else first + worker
        while True:
            sources = self.plan.sources(batch)[lo : lo + self.batch_size]
            samples = [pull(int(s)) for s in sources]
            if batch >= first:
                yield from samples
            batch += workers
