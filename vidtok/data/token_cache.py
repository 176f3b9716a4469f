"""Token caches: encode a dataset once with a tokenizer, then train the AR model on tokens instead of pixels.

DiCoDe trains its AR model on deep tokens precomputed by the frozen tokenizer (DiCoDe §3.3 and supplementary §6:
long videos are sampled at 0.5 fps and every keyframe is encoded once). [`build_token_cache`][
vidtok.data.token_cache.build_token_cache] runs any tokenizer (a
[`VideoTokenizer`][vidtok.tokenizers.base.VideoTokenizer], or any object whose ``encode(video)`` returns a
``TokenizerOutput``, a dict with ``"tokens"``, or a tensor) over a dataset and stores the result;
[`TokenCacheDataset`][vidtok.data.token_cache.TokenCacheDataset] reads it back.

**Layout** of a cache folder::

    cache.json                  manifest: format version, sample count, shards (size, sha256), tokenizer class,
                                registry name, config and weights digest, dataset description, token dtype;
                                written last
    index.jsonl                 one line per sample: caption, shard, token shapes, source path and index, ...
    shard-00000.safetensors     tokens of samples 0 .. shard_size - 1, keys "<i>.tokens" (and "<i>.indices",
    shard-00001.safetensors     "<i>.token_masks"); hierarchical tokenizers store one tensor per level:
                                "<i>.tokens.<level>"

**Token masks** (HiTVideo §4's dynamic token masking): when ``encode`` returns ``token_masks`` (a tokenizer with
``token_masking`` set), they are stored like the indices — bool ``(S, N)`` per sample, one per level — and a
sample's ``"token_masks"`` lists them, so an AR model can learn which codes it may skip. Caches without them
load as before.

**Atomic and resumable.** The cache is built in ``<out_dir>.partial`` and renamed to ``out_dir`` only when
complete, so a folder named ``out_dir`` is always a complete cache. Every finished shard is recorded in
``<out_dir>.partial/progress.json``; running the same build again (same tokenizer class, config and weights,
dataset class and length, shard size and dtype) resumes after the last finished shard. The dataset must return the
same samples for the same indices, which vidtok datasets do for a fixed seed and epoch.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset

__all__ = [
    "CACHE_FORMAT",
    "CACHE_VERSION",
    "TokenCacheDataset",
    "TokenCacheError",
    "build_token_cache",
    "tokenizer_provenance",
    "weights_digest",
]

logger = logging.getLogger(__name__)

CACHE_FORMAT = "vidtok.token_cache"
"""Value of ``format`` in ``cache.json``."""

CACHE_VERSION = 1
"""Version of the cache layout; readers refuse other versions."""

_MANIFEST = "cache.json"
_INDEX = "index.jsonl"
_PROGRESS = "progress.json"


class TokenCacheError(RuntimeError):
    """A token cache is missing, incomplete, corrupt, or does not match what the caller expects."""


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """A JSON-safe copy of a config value (tuples become lists, unknown objects their repr)."""
    return json.loads(json.dumps(value, default=repr, sort_keys=True))


def weights_digest(module: Any) -> str | None:
    """sha256 of a module's ``state_dict`` (names, dtypes, shapes and bytes), or ``None`` if it is no ``nn.Module``."""
    return _digests(module)[0]


def _digests(module: Any, exclude: tuple[str, ...] = ()) -> tuple[str | None, str | None]:
    """:func:`weights_digest` of all weights and of those not under the ``exclude`` prefixes, in one pass."""
    if not isinstance(module, torch.nn.Module):
        return None, None
    full, kept = hashlib.sha256(), hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        parts = (f"{name}|{t.dtype}|{tuple(t.shape)}|".encode(), t.reshape(-1).view(torch.uint8).numpy())
        for digest in (full,) if name.startswith(exclude) else (full, kept):
            for part in parts:
                digest.update(part)
    return full.hexdigest(), kept.hexdigest()


def tokenizer_provenance(tokenizer: Any, name: str | None = None, *, weights: bool = False) -> dict[str, Any]:
    """Describe a tokenizer for a cache manifest: class path, registry name, config (and weights digest).

    Args:
        tokenizer: The tokenizer.
        name: Explicit name or checkpoint id to record (default: its registry name, if registered).
        weights: Also record ``weights_sha256``, the [`weights_digest`][vidtok.data.token_cache.weights_digest]
            of its parameters and buffers (reads every weight once), and ``token_weights_sha256``, the digest of
            the weights that determine the tokens (without the tokenizer's ``decode_only_modules``).

    Returns:
        ``{"class": "module.Class", "name": ..., "config": {...}}`` (plus the digests); ``config`` is the
        diffusers config of vidtok components (without private ``_`` keys), or ``None``.
    """
    cls = type(tokenizer)
    config = getattr(tokenizer, "config", None)
    if isinstance(config, Mapping):
        config = _jsonable({k: v for k, v in config.items() if not str(k).startswith("_")})
    else:
        config = None
    if name is None:
        base = sys.modules.get("vidtok.tokenizers.base")  # only look it up if tokenizers are already loaded
        if base is not None:
            registry = base.TOKENIZERS
            name = next((n for n in registry.list() if registry.get(n) is cls), None)
    info = {"class": f"{cls.__module__}.{cls.__qualname__}", "name": name, "config": config}
    if weights:
        exclude = tuple(getattr(tokenizer, "decode_only_modules", ()))
        info["weights_sha256"], info["token_weights_sha256"] = _digests(tokenizer, exclude)
    return info


def _dataset_description(dataset: Any) -> dict[str, Any]:
    return {
        "class": f"{type(dataset).__module__}.{type(dataset).__qualname__}",
        "length": len(dataset),
        "repr": repr(dataset)[:1000],
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def _as_levels(value: Any) -> list[torch.Tensor] | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, torch.Tensor) for v in value):
        return list(value)
    raise TypeError(f"tokens/indices/token_masks must be a tensor or a list of tensors, got {type(value).__name__}")


def _encode(tokenizer: Any, video: torch.Tensor, kwargs: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """``(tokens, indices, token_masks)`` of one batch (``None`` for what the tokenizer does not return)."""
    out = tokenizer.encode(video, **kwargs)
    if isinstance(out, torch.Tensor):
        return out, None, None
    if isinstance(out, Mapping):
        return out["tokens"], out.get("indices"), out.get("token_masks")
    if hasattr(out, "tokens"):
        return out.tokens, getattr(out, "indices", None), getattr(out, "token_masks", None)
    raise TypeError(
        f"tokenizer.encode returned {type(out).__name__}; expected a TokenizerOutput, a dict with 'tokens' or a tensor"
    )


def _shape(levels: list[torch.Tensor], hierarchical: bool) -> Any:
    shapes = [list(t.shape) for t in levels]
    return shapes if hierarchical else shapes[0]


def _shard_index(shard_file: str) -> str:
    """Name of the per-shard index lines kept while building (merged into index.jsonl at the end)."""
    return shard_file.removesuffix(".safetensors") + ".jsonl"


_RECORD_KEYS = ("path", "index", "frame_stride", "fps", "source", "key")


class _ShardBuffer:
    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self.records: list[dict[str, Any]] = []


# --------------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------------


def build_token_cache(
    tokenizer: Any,
    dataset: Any,
    out_dir: str | os.PathLike[str],
    *,
    batch_size: int = 8,
    shard_size: int = 1024,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    num_workers: int = 0,
    overwrite: bool = False,
    resume: bool = True,
    tokenizer_name: str | None = None,
    encode_kwargs: Mapping[str, Any] | None = None,
) -> Path:
    """Encode every sample of ``dataset`` with ``tokenizer`` and store the tokens as a token cache.

    Samples are read in index order (``dataset[0], dataset[1], ...``, decoded by ``num_workers`` DataLoader
    workers), grouped into batches of up to ``batch_size`` samples whose videos have the same shape (so images and
    videos may be mixed), and encoded with ``tokenizer.encode(video)`` under ``torch.no_grad()`` in eval mode. See
    the module docs for the layout, atomicity and resuming.

    Args:
        tokenizer: A ``VideoTokenizer`` or any object with ``encode(video (B, C, T, H, W)) -> TokenizerOutput`` (or
            a dict with ``"tokens"``/``"indices"``/``"token_masks"``, or a tensor). An ``nn.Module`` is moved to
            ``device``; its training mode is restored afterwards. ``token_masks`` (bool, one per level of
            ``tokens``) are stored when ``encode`` returns them.
        dataset: Map-style dataset of dicts with ``"video"`` ``(C, T, H, W)`` and ``"caption"`` (other scalar
            entries such as ``path``, ``index``, ``frame_stride``, ``fps`` are recorded in the index).
        out_dir: Folder of the cache (must not exist unless ``overwrite``).
        batch_size: Samples per ``encode`` call.
        shard_size: Samples per safetensors shard.
        device: Device the videos (and the tokenizer) are put on.
        dtype: Storage dtype for continuous tokens (e.g. ``torch.float16``); ``None`` keeps the tokenizer's.
            Integer indices are stored as they come.
        num_workers: DataLoader workers decoding samples.
        overwrite: Replace an existing cache at ``out_dir`` (atomically, once the new one is complete).
        resume: Continue an interrupted build of the same tokenizer/dataset from ``<out_dir>.partial``;
            ``False`` starts over.
        tokenizer_name: Name or checkpoint id recorded as the tokenizer's provenance (default: registry name).
        encode_kwargs: Extra keyword arguments for ``encode``.

    Returns:
        ``out_dir`` as a ``Path``.

    Raises:
        FileExistsError: If ``out_dir`` exists and ``overwrite`` is false.
        TypeError: If ``encode`` returns something unsupported, or a sample has no video/caption.
    """
    out_dir = Path(out_dir)
    for name, value, least in (
        ("batch_size", batch_size, 1),
        ("shard_size", shard_size, 1),
        ("num_workers", num_workers, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.float16, or None, got {dtype!r}")
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise TypeError(f"dataset must be a map-style dataset (__len__ and __getitem__), got {type(dataset).__name__}")
    if out_dir.exists() and not overwrite:
        what = "a token cache" if (out_dir / _MANIFEST).exists() else "a folder"
        raise FileExistsError(f"{out_dir} already exists ({what}); pass overwrite=True to replace it")
    partial = out_dir.with_name(out_dir.name + ".partial")
    # What must match for a partial build to be resumed (the dataset's repr may hold memory addresses: not compared).
    fingerprint = {
        "tokenizer": tokenizer_provenance(tokenizer, tokenizer_name, weights=True),
        "dataset": {k: v for k, v in _dataset_description(dataset).items() if k != "repr"},
        "shard_size": shard_size,
        "dtype": None if dtype is None else str(dtype),
    }
    progress = _start(partial, fingerprint, resume)
    progress["dataset"] = _dataset_description(dataset)
    start = sum(s["num_samples"] for s in progress["shards"])
    n = len(dataset)

    is_module = isinstance(tokenizer, torch.nn.Module)
    was_training = is_module and tokenizer.training
    if is_module:
        tokenizer.to(device).eval()
    try:
        buffer = _ShardBuffer()
        pending: list[tuple[int, dict[str, Any]]] = []
        for i, sample in _ordered(dataset, start, n, num_workers):
            if not isinstance(sample, Mapping) or "video" not in sample or "caption" not in sample:
                got = sorted(sample) if isinstance(sample, Mapping) else type(sample).__name__
                raise TypeError(f"sample {i} must be a dict with 'video' and 'caption' entries, got {got}")
            if pending and (len(pending) >= batch_size or sample["video"].shape != pending[0][1]["video"].shape):
                _encode_batch(tokenizer, pending, buffer, device, dtype, encode_kwargs or {}, progress)
                pending = []
            pending.append((i, sample))
            if len(buffer.records) + len(pending) >= shard_size:
                _encode_batch(tokenizer, pending, buffer, device, dtype, encode_kwargs or {}, progress)
                pending = []
                _flush(partial, buffer, progress)
                buffer = _ShardBuffer()
        if pending:
            _encode_batch(tokenizer, pending, buffer, device, dtype, encode_kwargs or {}, progress)
        if buffer.records:
            _flush(partial, buffer, progress)
    finally:
        if is_module and was_training:
            tokenizer.train()
    _finish(partial, out_dir, progress, n)
    return out_dir


def _start(partial: Path, fingerprint: dict[str, Any], resume: bool) -> dict[str, Any]:
    """Open (or resume) the partial build folder and return its progress record."""
    progress_path = partial / _PROGRESS
    if partial.exists() and resume and progress_path.exists():
        try:
            progress = json.loads(progress_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            logger.warning("%s is corrupt (%s); starting the build over", progress_path, e)
            progress = None
        if progress is not None and not _valid_progress(progress, partial):
            logger.warning("%s lists shards that are missing or malformed; starting the build over", progress_path)
            progress = None
        if progress is not None and progress.get("fingerprint") == _jsonable(fingerprint):
            listed = {s["file"] for s in progress["shards"]} | {_shard_index(s["file"]) for s in progress["shards"]}
            for leftover in partial.iterdir():  # a shard interrupted mid-write is redone
                if leftover.name not in listed and leftover.name != _PROGRESS:
                    leftover.unlink()
            done = sum(s["num_samples"] for s in progress["shards"])
            logger.info("resuming the token cache build in %s after %d samples", partial, done)
            return progress
        elif progress is not None:
            logger.warning("%s holds a build for another tokenizer/dataset; starting over", partial)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    progress = {
        "fingerprint": _jsonable(fingerprint),
        "shards": [],
        "skipped": 0,
        "discrete": None,
        "levels": None,
        "token_masks": None,
    }
    _write_json(progress_path, progress)
    return progress


def _valid_progress(progress: Any, partial: Path) -> bool:
    """Whether a ``progress.json`` has the form ``_start`` writes and its finished shards are all there."""
    shards = progress.get("shards") if isinstance(progress, dict) else None
    if not isinstance(shards, list) or not isinstance(progress.get("skipped"), int):
        return False
    for shard in shards:
        if not isinstance(shard, dict) or not _is_count(shard.get("num_samples")) or not _is_count(shard.get("bytes")):
            return False
        try:
            path = _inside(partial, shard.get("file"), str(partial / _PROGRESS))
        except TokenCacheError:
            return False
        if not path.is_file() or path.stat().st_size != shard["bytes"]:
            return False
        if not (partial / _shard_index(shard["file"])).is_file():
            return False
    return True


def _ordered(dataset: Any, start: int, stop: int, num_workers: int):
    """Yield ``(index, sample)`` for ``start <= index < stop`` in order, decoded by DataLoader workers."""
    if start >= stop:
        return
    from torch.utils.data import DataLoader, Subset

    indices = list(range(start, stop))
    loader = DataLoader(Subset(dataset, indices), batch_size=None, shuffle=False, num_workers=num_workers)
    yield from zip(indices, loader)


def _encode_batch(
    tokenizer: Any,
    pending: list[tuple[int, dict[str, Any]]],
    buffer: _ShardBuffer,
    device: str | torch.device,
    dtype: torch.dtype | None,
    encode_kwargs: Mapping[str, Any],
    progress: dict[str, Any],
) -> None:
    video = torch.stack([s["video"] for _, s in pending]).to(device)
    with torch.no_grad():
        tokens, indices, masks = _encode(tokenizer, video, encode_kwargs)
    tokens, indices, masks = _as_levels(tokens), _as_levels(indices), _as_levels(masks)
    hierarchical = len(tokens) > 1 or (indices is not None and len(indices) > 1)
    discrete = indices is not None
    if progress["discrete"] is None:
        progress["discrete"], progress["levels"] = discrete, len(tokens) if hierarchical else None
    elif progress["discrete"] != discrete:
        raise TypeError("the tokenizer returned indices for some batches and not for others")
    if masks is not None:
        _check_built_masks(masks, tokens)
    if progress.get("token_masks") is None:
        progress["token_masks"] = masks is not None
    elif progress["token_masks"] != (masks is not None):
        raise TypeError("the tokenizer returned token_masks for some batches and not for others")
    for b, (i, sample) in enumerate(pending):
        record: dict[str, Any] = {"i": i, "caption": str(sample["caption"])}
        for name, levels in (("tokens", tokens), ("indices", indices), ("token_masks", masks)):
            if levels is None:
                continue
            per_sample = []
            for level, t in enumerate(levels):
                if t.shape[0] != len(pending):
                    raise ValueError(f"encode returned {name} with batch size {t.shape[0]}, expected {len(pending)}")
                x = t[b].detach().to("cpu").clone()  # own storage: views of one batch cannot be saved
                if dtype is not None and name == "tokens" and x.is_floating_point():
                    x = x.to(dtype)
                key = f"{i}.{name}.{level}" if hierarchical else f"{i}.{name}"
                buffer.tensors[key] = x.contiguous()
                per_sample.append(x)
            record[f"{name}_shape"] = _shape(per_sample, hierarchical)
        record["video_shape"] = list(sample["video"].shape)
        for key in _RECORD_KEYS:
            value = sample.get(key)
            if isinstance(value, torch.Tensor) and value.ndim == 0:
                value = value.item()
            if isinstance(value, (str, int, float, bool)):
                record[key] = value
        progress["skipped"] += int(sample.get("skipped", 0) or 0)
        buffer.records.append(record)


def _check_built_masks(masks: list[torch.Tensor], tokens: list[torch.Tensor]) -> None:
    """The token masks ``encode`` returned: one bool ``(B, S, N)`` per level of ``tokens``."""
    if len(masks) != len(tokens):
        raise ValueError(f"encode returned token_masks for {len(masks)} levels and tokens for {len(tokens)}")
    for level, (m, t) in enumerate(zip(masks, tokens)):
        if m.dtype != torch.bool or m.shape != t.shape[:3]:
            raise TypeError(
                f"encode returned level {level} token_masks of dtype {m.dtype} and shape {tuple(m.shape)}; they must "
                f"be bool of shape {tuple(t.shape[:3])} (True = masked)"
            )


def _flush(partial: Path, buffer: _ShardBuffer, progress: dict[str, Any]) -> None:
    """Write one finished shard (tensors, then its index lines), then record it in progress.json."""
    number = len(progress["shards"])
    name = f"shard-{number:05d}.safetensors"
    tmp = partial / f".{name}.tmp"
    save_file(buffer.tensors, str(tmp), metadata={"format": CACHE_FORMAT, "version": str(CACHE_VERSION)})
    os.replace(tmp, partial / name)
    lines = "".join(json.dumps({**r, "shard": name}, ensure_ascii=False) + "\n" for r in buffer.records)
    index_tmp = partial / f".{_shard_index(name)}.tmp"
    index_tmp.write_text(lines, encoding="utf-8")
    os.replace(index_tmp, partial / _shard_index(name))
    path = partial / name
    progress["shards"].append(
        {"file": name, "num_samples": len(buffer.records), "bytes": path.stat().st_size, "sha256": _sha256(path)}
    )
    _write_json(partial / _PROGRESS, progress)


def _finish(partial: Path, out_dir: Path, progress: dict[str, Any], n: int) -> None:
    """Merge the shard indexes, write the manifest last, and move the cache into place."""
    total = sum(s["num_samples"] for s in progress["shards"])
    if total != n:
        raise TokenCacheError(f"built {total} samples but the dataset has {n}; the build was not completed")
    with open(partial / f".{_INDEX}.tmp", "w", encoding="utf-8") as out:
        for shard in progress["shards"]:
            out.write((partial / _shard_index(shard["file"])).read_text(encoding="utf-8"))
    os.replace(partial / f".{_INDEX}.tmp", partial / _INDEX)
    for shard in progress["shards"]:
        (partial / _shard_index(shard["file"])).unlink()
    fp = progress["fingerprint"]
    manifest = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "num_samples": total,
        "shards": progress["shards"],
        "tokenizer": fp["tokenizer"],
        "dataset": progress.get("dataset", fp["dataset"]),
        "dtype": fp["dtype"],
        "discrete": bool(progress["discrete"]),
        "levels": progress["levels"],
        "token_masks": bool(progress.get("token_masks")),
        "skipped": progress["skipped"],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    (partial / _PROGRESS).unlink()
    _write_json(partial / _MANIFEST, manifest)
    if out_dir.exists():  # overwrite: swap in the new cache, then delete the old one
        old = out_dir.with_name(out_dir.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out_dir, old)
        os.replace(partial, out_dir)
        shutil.rmtree(old)
    else:
        os.replace(partial, out_dir)
    logger.info("token cache with %d samples in %d shards written to %s", total, len(progress["shards"]), out_dir)


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _inside(folder: Path, name: Any, where: str) -> Path:
    """``folder / name`` for a plain file name; anything that could leave the folder is refused."""
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or Path(name).is_absolute()
    ):
        raise TokenCacheError(
            f"{where}: {name!r} is not a file name inside the cache folder (a path or '..' is refused); the cache "
            "is corrupt or was tampered with: rebuild it"
        )
    return folder / name


def _is_shape(value: Any) -> bool:
    return isinstance(value, list) and all(_is_count(v) for v in value)


def _check_record(record: Any, where: str, shards: set[str], folder: Path) -> None:
    """One ``index.jsonl`` line: the keys the reader uses, and a shard listed in the manifest."""
    if not isinstance(record, dict):
        raise TokenCacheError(f"{where} must be a JSON object, got {type(record).__name__}; rebuild the cache")
    if not _is_count(record.get("i")):
        raise TokenCacheError(f"{where}: key 'i' must be the sample number, got {record.get('i', 'missing')!r}")
    if not isinstance(record.get("caption"), str):
        raise TokenCacheError(f"{where}: key 'caption' must be a string, got {record.get('caption', 'missing')!r}")
    _inside(folder, record.get("shard"), f"{where}: key 'shard'")
    if record["shard"] not in shards:
        raise TokenCacheError(
            f"{where}: key 'shard' names {record['shard']!r}, which {_MANIFEST} does not list; rebuild the cache"
        )
    names = [n for n in ("tokens", "indices") if f"{n}_shape" in record]
    if not names:
        raise TokenCacheError(f"{where}: no 'tokens_shape' (or 'indices_shape'): the sample has no tokens")
    if "token_masks_shape" in record:
        names.append("token_masks")
    for name in names:
        shape = record[f"{name}_shape"]
        if not (_is_shape(shape) or (isinstance(shape, list) and shape and all(_is_shape(s) for s in shape))):
            raise TokenCacheError(f"{where}: key '{name}_shape' must be a list of sizes, got {shape!r}")


class TokenCacheDataset(Dataset):
    """Map-style dataset over a token cache written by [`build_token_cache`][vidtok.data.token_cache.build_token_cache].

    Opening checks the manifest (format, version), the index (one line per sample) and every shard's size;
    ``verify=True`` also checks the shards' sha256. Shards are memory-mapped and read lazily per sample. Any
    problem raises [`TokenCacheError`][vidtok.data.token_cache.TokenCacheError] naming the file and what to do.

    Args:
        cache_dir: The cache folder.
        tokenizer: If given, the cache must have been built by a tokenizer of the same class and config.
        check_weights: With ``tokenizer``, also require the same weights (hashes them once).
        verify: Check the sha256 of every shard when opening (reads all bytes once).

    Samples are dicts with ``"tokens"`` (``(S, N, D)``; a list of tensors for hierarchical tokenizers),
    ``"indices"`` (for discrete tokenizers), ``"caption"``, ``"index"`` and, when recorded, ``"path"`` and
    ``"token_masks"`` (bool ``(S, N)``, ``True`` = masked by HiTVideo §4's dynamic token masking; a list per
    level for hierarchical tokenizers). A DataLoader's default collation batches a list of per-level tensors
    into a list of per-level batches, the masks as the indices.

    Attributes:
        manifest: The parsed ``cache.json`` (tokenizer provenance, dataset, shards, ...).
        records: The parsed ``index.jsonl`` lines.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        *,
        tokenizer: Any = None,
        check_weights: bool = False,
        verify: bool = False,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        manifest_path = self.cache_dir / _MANIFEST
        if not manifest_path.exists():
            partial = self.cache_dir.with_name(self.cache_dir.name + ".partial")
            hint = (
                f"; an interrupted build left {partial}: rerun build_token_cache to resume it"
                if partial.exists()
                else ""
            )
            if not self.cache_dir.exists():
                raise TokenCacheError(f"token cache {self.cache_dir} does not exist{hint}")
            raise TokenCacheError(f"{self.cache_dir} is not a complete token cache (no {_MANIFEST}){hint}")
        try:
            self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise TokenCacheError(f"{manifest_path} is corrupt ({e}); rebuild the cache") from None
        if not isinstance(self.manifest, dict):
            raise TokenCacheError(
                f"{manifest_path} must hold a JSON object, got {type(self.manifest).__name__}; rebuild the cache"
            )
        if self.manifest.get("format") != CACHE_FORMAT or self.manifest.get("version") != CACHE_VERSION:
            raise TokenCacheError(
                f"{manifest_path}: unsupported cache format {self.manifest.get('format')!r} version "
                f"{self.manifest.get('version')!r} (this vidtok reads {CACHE_FORMAT!r} version {CACHE_VERSION}); "
                "rebuild the cache"
            )
        self._check_manifest(manifest_path)
        self.records = self._read_index()
        self._check_shards(verify)
        if tokenizer is not None:
            self.check_tokenizer(tokenizer, weights=check_weights)
        self._handles: dict[str, Any] = {}

    def _check_manifest(self, path: Path) -> None:
        """Every key the reader uses, with its type; shard files must be plain names inside the cache folder."""
        m = self.manifest

        def bad(key: str, want: str) -> TokenCacheError:
            got = m.get(key, "missing") if "." not in key else "invalid"
            return TokenCacheError(f"{path}: key {key!r} must be {want}, got {got!r}; rebuild the cache")

        if not _is_count(m.get("num_samples")):
            raise bad("num_samples", "an integer >= 0")
        if not isinstance(m.get("shards"), list):
            raise bad("shards", "a list of shard entries")
        levels = m.get("levels")
        if levels is not None and not (_is_count(levels) and levels >= 1):
            raise bad("levels", "null or an integer >= 1")
        if m.get("dtype") is not None and not isinstance(m["dtype"], str):
            raise bad("dtype", "null or a dtype name such as 'torch.float16'")
        tokenizer = m.get("tokenizer")
        if not isinstance(tokenizer, dict) or not isinstance(tokenizer.get("class"), str):
            raise TokenCacheError(
                f"{path}: key 'tokenizer' must be an object with a 'class' string (the build's provenance); "
                "rebuild the cache"
            )
        for k, shard in enumerate(m["shards"]):
            where = f"{path}: shards[{k}]"
            if not isinstance(shard, dict):
                raise TokenCacheError(f"{where} must be an object, got {type(shard).__name__}; rebuild the cache")
            _inside(self.cache_dir, shard.get("file"), f"{where}.file")
            if not _is_count(shard.get("bytes")):
                raise TokenCacheError(f"{where}.bytes must be an integer >= 0, got {shard.get('bytes')!r}")
            if not isinstance(shard.get("sha256"), str):
                raise TokenCacheError(f"{where}.sha256 must be a hex string, got {shard.get('sha256')!r}")

    def _read_index(self) -> list[dict[str, Any]]:
        path = self.cache_dir / _INDEX
        if not path.exists():
            raise TokenCacheError(f"{path} is missing; rebuild the cache")
        shards = {s["file"] for s in self.manifest["shards"]}
        records = []
        try:
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        raise TokenCacheError(f"{path}:{lineno} is corrupt; rebuild the cache") from None
                    _check_record(record, f"{path}:{lineno}", shards, self.cache_dir)
                    records.append(record)
        except (OSError, UnicodeDecodeError) as e:
            raise TokenCacheError(f"{path} cannot be read ({e}); rebuild the cache") from e
        expected = self.manifest["num_samples"]
        if len(records) != expected or any(r["i"] != k for k, r in enumerate(records)):
            raise TokenCacheError(
                f"{path} lists {len(records)} samples out of order or incomplete, but {_MANIFEST} says {expected}; "
                "the cache is inconsistent: rebuild it"
            )
        return records

    def _check_shards(self, verify: bool) -> None:
        for shard in self.manifest["shards"]:
            path = self.cache_dir / shard["file"]
            if not path.is_file():
                raise TokenCacheError(f"shard {path} is missing; rebuild the cache")
            size = path.stat().st_size
            if size != shard["bytes"]:
                raise TokenCacheError(
                    f"shard {path} has {size} bytes but {_MANIFEST} records {shard['bytes']}: it is truncated or was "
                    "replaced; rebuild the cache"
                )
            if verify and _sha256(path) != shard["sha256"]:
                raise TokenCacheError(f"shard {path} fails its sha256 check (corrupt); rebuild the cache")

    def check_tokenizer(self, tokenizer: Any, *, weights: bool = False) -> None:
        """Raise [`TokenCacheError`][vidtok.data.token_cache.TokenCacheError] unless ``tokenizer`` matches the cache's.

        Only what determines the tokens is compared: the class, the config (the ``config`` of vidtok components)
        without the tokenizer's ``decode_only_config`` keys, and with ``weights=True`` the digest of the weights
        without its ``decode_only_modules`` (a fine-tuned encoder has the same config but different weights).
        So a cache stays valid for a tokenizer whose decoder was fine-tuned with frozen tokens. Caches written
        before ``token_weights_sha256`` existed are compared on the digest of all weights.
        """
        want, have = tokenizer_provenance(tokenizer, weights=weights), self.manifest["tokenizer"]
        if want["class"] != have["class"]:
            raise TokenCacheError(
                f"{self.cache_dir} was built with {have['class']}, not {want['class']}; rebuild it with this tokenizer"
            )
        ignored = set(getattr(tokenizer, "decode_only_config", ()))
        a, b = want["config"] or {}, have.get("config") or {}
        diff = sorted(k for k in set(a) | set(b) if k not in ignored and a.get(k) != b.get(k))
        if diff or (want["config"] is None) != (have.get("config") is None):
            raise TokenCacheError(
                f"{self.cache_dir} was built with a different {have['class']} config (differs in {diff}); "
                "rebuild the cache with this tokenizer"
            )
        if weights:
            key = "token_weights_sha256" if "token_weights_sha256" in have else "weights_sha256"
            if want[key] != have.get(key):
                raise TokenCacheError(
                    f"{self.cache_dir} was built with other weights of {have['class']} (same config, different "
                    f"{key}); rebuild the cache with this tokenizer"
                )

    @property
    def tokenizer_info(self) -> dict[str, Any]:
        """The tokenizer's provenance recorded at build time (class, registry name, config)."""
        return self.manifest["tokenizer"]

    def __len__(self) -> int:
        return len(self.records)

    def _open(self, name: str) -> Any:
        handle = self._handles.get(name)
        if handle is None:
            path = self.cache_dir / name
            try:
                handle = safe_open(str(path), framework="pt")
            except Exception as e:  # SafetensorError, OSError: report as a cache problem
                raise TokenCacheError(f"shard {path} is corrupt or unreadable ({e}); rebuild the cache") from e
            self._handles[name] = handle
        return handle

    def _get(self, handle: Any, shard: str, key: str) -> torch.Tensor:
        try:
            value = handle.get_tensor(key)
        except Exception as e:  # a missing key or unreadable data
            raise TokenCacheError(
                f"shard {self.cache_dir / shard} has no readable tensor {key!r} ({e}); rebuild the cache"
            ) from e
        name = key.split(".")[1]
        problem = None
        if name == "indices" and (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
            problem = "indices must be integers"
        elif name == "token_masks" and value.dtype != torch.bool:
            problem = "token masks must be bool (True = masked)"
        elif name == "tokens" and (value.is_complex() or value.dtype == torch.bool):
            problem = "tokens must be real numbers"
        elif (
            name == "tokens"
            and value.is_floating_point()
            and self.manifest.get("dtype") not in (None, str(value.dtype))
        ):
            problem = f"{_MANIFEST} says the tokens are stored as {self.manifest['dtype']}"
        if problem is not None:
            raise TokenCacheError(
                f"shard {self.cache_dir / shard}: tensor {key!r} has dtype {value.dtype}, but {problem}; the cache is "
                "inconsistent: rebuild it"
            )
        return value

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Tokens, indices (if discrete), caption and provenance of sample ``index``."""
        if (
            isinstance(index, bool)
            or not isinstance(index, (int, np.integer))
            and not (isinstance(index, torch.Tensor) and index.numel() == 1 and not index.is_floating_point())
        ):
            raise TypeError(f"token cache index must be an integer, got {type(index).__name__} {index!r}")
        n = len(self)
        index = int(index)
        index += n if index < 0 else 0
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a token cache of {n} samples")
        record = self.records[index]
        handle = self._open(record["shard"])
        levels = self.manifest.get("levels")
        sample: dict[str, Any] = {"caption": record["caption"], "index": index}
        for name in ("tokens", "indices", "token_masks"):
            if f"{name}_shape" not in record:
                continue
            if levels:
                value: Any = [self._get(handle, record["shard"], f"{index}.{name}.{k}") for k in range(levels)]
                shapes = [list(v.shape) for v in value]
            else:
                value = self._get(handle, record["shard"], f"{index}.{name}")
                shapes = list(value.shape)
            if shapes != record[f"{name}_shape"]:
                raise TokenCacheError(
                    f"sample {index}: {name} in {self.cache_dir / record['shard']} have shape {shapes}, {_INDEX} says "
                    f"{record[f'{name}_shape']}; the cache is inconsistent: rebuild it"
                )
            sample[name] = value
        if "path" in record:
            sample["path"] = record["path"]
        return sample

    def __getstate__(self) -> dict[str, Any]:  # open shard handles are not picklable (DataLoader workers)
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state

    def __repr__(self) -> str:
        tok = self.manifest["tokenizer"]
        return (
            f"{type(self).__name__}({self.cache_dir}, {len(self)} samples, tokenizer={tok.get('name') or tok['class']})"
        )
