"""Captioned video datasets read from files: a CSV/JSONL list, or a folder of videos with sidecar captions.

Sources (see [`read_records`][vidtok.data.video.read_records]):

* a **CSV** file with a header (columns ``path`` and ``caption`` by default) or a **JSONL** file (one object per
  line with the same keys; a ``.json`` file holding a list of objects also works). Relative paths are resolved
  against ``root``, or the list file's folder. Extra columns are kept: ``height``, ``width``, ``num_frames`` and
  ``fps`` let the filters run without opening the files, ``motion_score`` feeds the motion filter
  ([`build_video_index`][vidtok.data.video.build_video_index] writes all of them);
* a **folder**, scanned recursively (sorted, hidden files skipped), where ``clip.mp4`` is captioned by the text in
  ``clip.txt`` next to it;
* a list of ``{"path": ..., "caption": ...}`` dicts.

[`VideoDataset`][vidtok.data.video.VideoDataset] samples a clip of ``num_frames`` frames per video with a fixed or
random stride, resizes it to cover ``size`` and center-crops it, and returns
``{"video": (3, T, H, W) float32 in [-1, 1], "caption": str, ...}`` -- the sample format every vidtok dataset
shares.

**Filters** (DiCoDe supplementary §6: minimum aspect ratio 0.3333, minimum resolution 200, motion score between
0.5 and 1.38, length between 556 and 4000 frames) run once, when the dataset is built, from the index columns or
from [`read_video_info`][vidtok.io.read_video_info] (container metadata only, no frame is decoded). What each
filter dropped is in ``dataset.filter_stats`` and ``dataset.dropped`` and is logged.

**Determinism.** Sample ``i`` of epoch ``e`` draws its stride and start from
``numpy.random.default_rng([seed, e, i])``, so it is the same in every process, DataLoader worker and resumed run;
call ``set_epoch(e)`` at the start of each epoch to get new clips.

**Unreadable files** (corrupt, truncated, vanished, shorter than their metadata says) never stop an epoch: the
dataset logs a warning, counts it (``num_skipped`` and ``skipped_paths`` in the process that read it) and returns
the next index's sample instead, so ``len(dataset)`` and the epoch length stay fixed. Every sample carries
``"skipped"``: how many files were skipped to produce it. Those counters live in each DataLoader worker's copy of
the dataset, so a trainer sees the total by summing ``batch["skipped"]`` (and all-reducing across ranks).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch.utils.data import Dataset

from vidtok.data.transforms import center_crop, clip_span, parse_size, parse_stride, resize_crop_plan, sample_clip
from vidtok.io import VIDEO_EXTENSIONS, VideoReadError, frames_to_tensor, read_video, read_video_info

__all__ = [
    "DICODE_VIDEO_FILTERS",
    "SKIPPABLE_ERRORS",
    "FileDataset",
    "VideoDataset",
    "build_video_index",
    "load_clip",
    "read_records",
]

logger = logging.getLogger(__name__)

DICODE_VIDEO_FILTERS: dict[str, float] = {"min_aspect_ratio": 0.3333, "min_resolution": 200}
"""DiCoDe's resolution filters (supplementary §6), to pass as ``VideoDataset(..., **DICODE_VIDEO_FILTERS)``."""

MissingCaption = Literal["error", "empty", "drop"]

# Index columns that hold numbers (CSV stores everything as text).
_NUMERIC_COLUMNS = {"height": int, "width": int, "num_frames": int, "fps": float, "duration": float}
# ValueError covers "start past the end" and "video too short" when the container's frame count was wrong.
SKIPPABLE_ERRORS: tuple[type[Exception], ...] = (VideoReadError, OSError, ValueError, EOFError)
"""Per-file errors after which file datasets skip a sample (and draw a replacement) instead of failing the epoch."""


# --------------------------------------------------------------------------------------------------
# Reading the list of files
# --------------------------------------------------------------------------------------------------


def _sidecar_caption(path: Path) -> str | None:
    txt = path.with_suffix(".txt")
    if not txt.is_file():
        return None
    return txt.read_text(encoding="utf-8").strip()


def _scan_folder(folder: Path, extensions: Sequence[str]) -> list[dict[str, Any]]:
    exts = {e.lower() for e in extensions}
    records = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or path.suffix.lower() not in exts:
                continue
            records.append({"path": str(path), "caption": _sidecar_caption(path)})
    return records


def _convert_numbers(record: dict[str, Any], motion_column: str | None) -> None:
    for key, kind in _NUMERIC_COLUMNS.items():
        value = record.get(key)
        if isinstance(value, str):
            record[key] = kind(float(value)) if value.strip() else None
    if motion_column and isinstance(record.get(motion_column), str):
        value = record[motion_column].strip()
        record[motion_column] = float(value) if value else None


def _read_list_file(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                raise ValueError(f"{path} is empty: expected a CSV header row (e.g. 'path,caption')")
            return [dict(row) for row in reader]
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                rows.append(row)
        return rows
    if suffix == ".json":
        rows = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"{path}: expected a JSON list of objects")
        return rows
    raise ValueError(f"unsupported list file {path}: expected .csv, .jsonl or .json (or pass a folder)")


def read_records(
    source: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
    *,
    root: str | os.PathLike[str] | None = None,
    path_column: str = "path",
    caption_column: str = "caption",
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
    motion_column: str | None = "motion_score",
) -> list[dict[str, Any]]:
    """Read a list of captioned files from a CSV/JSONL file, a folder with sidecar ``.txt`` captions, or dicts.

    Args:
        source: A ``.csv``/``.jsonl``/``.json`` file, a folder, or an iterable of dicts.
        root: Folder that relative paths are resolved against (default: the list file's folder, or the current
            directory for dicts).
        path_column: Column holding the file path.
        caption_column: Column holding the caption.
        extensions: File extensions collected when scanning a folder.
        motion_column: Column parsed as a float when present (CSV stores text).

    Returns:
        One dict per file with at least ``"path"`` (absolute or ``root``-joined string) and ``"caption"`` (the
        caption, or ``None`` when the file has none: no sidecar ``.txt``, no caption column, or a null value),
        plus the other columns; ``height``, ``width``, ``num_frames``, ``fps`` and ``duration`` are numbers.

    Raises:
        FileNotFoundError: If ``source`` does not exist.
        ValueError: For an unsupported list format, malformed rows or a missing path column.

    Example:
        >>> read_records([{"path": "/data/a.mp4", "caption": "a cat"}])
        [{'path': '/data/a.mp4', 'caption': 'a cat'}]
    """
    if isinstance(source, (str, os.PathLike)):
        source = Path(source)
        if not source.exists():
            raise FileNotFoundError(f"dataset source not found: {source}")
        if source.is_dir():
            return _scan_folder(source, extensions)
        rows = _read_list_file(source)
        base = Path(root) if root is not None else source.parent
        where = str(source)
    else:
        rows = [dict(r) for r in source]
        base = Path(root) if root is not None else None
        where = "the given records"
    records = []
    for k, row in enumerate(rows):
        if path_column not in row or row[path_column] in (None, ""):
            columns = ", ".join(sorted(row)) or "none"
            raise ValueError(
                f"row {k} of {where} has no {path_column!r} value (columns: {columns}); pass path_column= to choose"
            )
        record = {key: value for key, value in row.items() if key not in (path_column, caption_column)}
        path = Path(str(row[path_column]))
        if not path.is_absolute() and base is not None:
            path = base / path
        record["path"] = str(path)
        caption = row.get(caption_column)
        record["caption"] = None if caption is None else str(caption)
        _convert_numbers(record, motion_column)
        records.append({"path": record.pop("path"), "caption": record.pop("caption"), **record})
    return records


# --------------------------------------------------------------------------------------------------
# Shared dataset machinery (also used by ImageTextDataset)
# --------------------------------------------------------------------------------------------------


class FileDataset(Dataset):
    """Base of the file datasets: index building, filtering, per-index generators and skip-and-replace.

    [`VideoDataset`][vidtok.data.video.VideoDataset] and [`ImageTextDataset`][vidtok.data.images.ImageTextDataset]
    subclass it; a subclass sets ``_default_extensions`` and ``_metadata_keys`` and implements ``_load(record, rng)``.
    """

    _default_extensions: tuple[str, ...] = VIDEO_EXTENSIONS
    # Index columns the filters need; when all are present the file is not opened.
    _metadata_keys: tuple[str, ...] = ("height", "width", "num_frames")

    def __init__(
        self,
        source: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
        *,
        size: int | Sequence[int] | None,
        min_resolution: int | None,
        min_aspect_ratio: float | None,
        root: str | os.PathLike[str] | None,
        path_column: str,
        caption_column: str,
        missing_caption: MissingCaption,
        extensions: Sequence[str] | None,
        seed: int,
        max_retries: int,
    ) -> None:
        if missing_caption not in ("error", "empty", "drop"):
            raise ValueError(f"missing_caption must be 'error', 'empty' or 'drop', got {missing_caption!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if min_aspect_ratio is not None and not 0 < min_aspect_ratio <= 1:
            raise ValueError(f"min_aspect_ratio is shorter side / longer side, in (0, 1]; got {min_aspect_ratio}")
        self.size = parse_size(size)
        self.min_resolution = min_resolution
        self.min_aspect_ratio = min_aspect_ratio
        self.missing_caption = missing_caption
        self.seed = int(seed)
        self.epoch = 0
        self.max_retries = int(max_retries)
        self.num_skipped = 0
        self.skipped_paths: dict[str, str] = {}
        self.dropped: list[tuple[str, str]] = []
        records = read_records(
            source,
            root=root,
            path_column=path_column,
            caption_column=caption_column,
            extensions=tuple(extensions) if extensions is not None else self._default_extensions,
            motion_column=getattr(self, "motion_column", None),
        )
        self.filter_stats: dict[str, int] = {"total": len(records)}
        self.records = self._filter(self._captions(records))
        self.filter_stats["kept"] = len(self.records)
        dropped = self.filter_stats["total"] - self.filter_stats["kept"]
        if dropped:
            reasons = ", ".join(f"{k}={v}" for k, v in self.filter_stats.items() if k not in ("total", "kept") and v)
            logger.info("%s: kept %d of %d files (%s)", type(self).__name__, len(self.records), len(records), reasons)

    # -- index building ---------------------------------------------------------------------------

    def _drop(self, record: Mapping[str, Any], reason: str) -> None:
        self.filter_stats[reason] = self.filter_stats.get(reason, 0) + 1
        self.dropped.append((record["path"], reason))

    def _captions(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        missing = [r for r in records if r["caption"] is None]
        if missing and self.missing_caption == "error":
            examples = ", ".join(r["path"] for r in missing[:3])
            raise ValueError(
                f"{len(missing)} of {len(records)} files have no caption (e.g. {examples}): add sidecar .txt files "
                "or a caption column, or pass missing_caption='empty' (train with empty captions) or 'drop'"
            )
        kept = []
        for r in records:
            if r["caption"] is None:
                if self.missing_caption == "drop":
                    self._drop(r, "missing_caption")
                    continue
                r["caption"] = ""
            kept.append(r)
        return kept

    def _needs_metadata(self) -> bool:
        return self.min_resolution is not None or self.min_aspect_ratio is not None

    def _metadata(self, record: dict[str, Any]) -> bool:
        """Fill height/width/num_frames/fps from the file's metadata; False if unreadable."""
        try:
            info = read_video_info(record["path"])
        except SKIPPABLE_ERRORS as e:
            logger.warning("dropping unreadable file %s: %s", record["path"], e)
            return False
        record.update(height=info.height, width=info.width, num_frames=info.num_frames, fps=info.fps)
        return True

    def _check(self, record: dict[str, Any]) -> str | None:
        """Return the reason to drop a record whose metadata is known, or None to keep it."""
        h, w = record["height"], record["width"]
        if self.min_resolution is not None and min(h, w) < self.min_resolution:
            return "too_small"
        if self.min_aspect_ratio is not None and min(h, w) / max(h, w) < self.min_aspect_ratio:
            return "aspect_ratio"
        return None

    def _filter(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        needs = self._needs_metadata()
        kept = []
        for r in records:
            known = all(r.get(k) is not None for k in self._metadata_keys)
            if needs and not known and not self._metadata(r):
                self._drop(r, "unreadable")
                continue
            reason = self._check(r) if needs or known else None
            if reason is not None:
                self._drop(r, reason)
                continue
            kept.append(r)
        return kept

    # -- sampling ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random clips are drawn (call before each epoch's iteration)."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The generator that draws sample ``index`` of the current epoch: ``default_rng([seed, epoch, index])``."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def _plan(self, height: int, width: int):
        return None if self.size is None else resize_crop_plan(height, width, self.size)

    def _load(self, record: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample ``index``; an unreadable file is skipped (logged, counted) and the next index is used instead."""
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {type(index).__name__}")
        index = int(index) + (n if index < 0 else 0)
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of length {n}")
        j, errors = index, []
        for attempt in range(min(self.max_retries, n - 1) + 1):
            record = self.records[j]
            try:
                sample = self._load(record, self.rng(j))
            except SKIPPABLE_ERRORS as e:
                reason = f"{type(e).__name__}: {e}"
                self.num_skipped += 1
                self.skipped_paths[record["path"]] = reason
                errors.append(reason)
                nxt = (j + 1) % n
                logger.warning("skipping unreadable sample %d (%s): %s; using index %d", j, record["path"], e, nxt)
                j = nxt
                continue
            sample.update(path=record["path"], index=j, skipped=attempt)
            return sample
        raise RuntimeError(
            f"{len(errors)} consecutive samples from index {index} could not be read (max_retries="
            f"{self.max_retries}); last error: {errors[-1]}. Check the dataset files."
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(len={len(self)}, size={self.size}, seed={self.seed}, epoch={self.epoch})"


# --------------------------------------------------------------------------------------------------
# Video dataset
# --------------------------------------------------------------------------------------------------


class VideoDataset(FileDataset):
    """Captioned video clips from a CSV/JSONL list or a folder with sidecar captions.

    Each sample is a clip of ``num_frames`` frames, ``stride`` source frames apart (fixed, or drawn per sample
    from an inclusive range: DiCoDe samples strides 1 to 6 and 16 frames, supplementary §6 "Video Diffusion
    Models"), starting at a random or centered frame, resized to cover ``size`` and center-cropped (DiCoDe:
    256x256). Frames are decoded with PyAV through [`vidtok.io.read_video`][vidtok.io.read_video], resized while
    decoding. See the module docs for sources, filters, determinism and skipping.

    Args:
        source: CSV/JSONL/JSON list file, folder with sidecar ``.txt`` captions, or an iterable of dicts.
        num_frames: Frames per clip ``T``.
        stride: Fixed frame stride, or an inclusive ``(low, high)`` range drawn per sample among the strides
            for which the clip fits the video.
        size: Output ``(height, width)`` or an int for square frames; ``None`` keeps the source size (then
            batches need equally sized videos).
        clip_start: ``"random"`` (uniform over positions where the clip fits), ``"center"`` or ``"first"``.
        min_resolution: Drop videos whose shorter side is below this (DiCoDe: 200).
        min_aspect_ratio: Drop videos whose shorter side / longer side is below this (DiCoDe: 0.3333, i.e.
            nothing wider or taller than 3:1).
        min_frames: Drop videos with fewer frames (DiCoDe's motion subset: 556).
        max_frames: Drop videos with more frames (DiCoDe's motion subset: 4000).
        min_motion: Drop videos whose motion score is below this
            (see [`motion_score`][vidtok.data.motion.motion_score]; DiCoDe: 0.5).
        max_motion: Drop videos whose motion score is above this (DiCoDe: 1.38).
        motion_column: Index column holding precomputed motion scores. Without it, scores are computed with
            ``motion_score``'s defaults (1 fps, 128 px shorter side) while the dataset is built (slow for large
            sets: precompute them with [`build_video_index`][vidtok.data.video.build_video_index]). Videos without
            a score are dropped as ``no_motion_score``.
        root: Folder that relative paths in a list file are resolved against.
        path_column: Column of the list file holding paths.
        caption_column: Column of the list file holding captions.
        missing_caption: What to do with files without a caption: ``"error"``, ``"empty"`` (use ``""``) or
            ``"drop"`` (counted in ``filter_stats``).
        extensions: File extensions collected from folders (default: ``vidtok.io.VIDEO_EXTENSIONS``).
        seed: Base seed of the per-sample generators.
        max_retries: How many following samples to try when files are unreadable before raising.

    Whenever metadata is read for the filters (or is in the index), videos too short for one clip at the
    smallest stride are dropped too (``filter_stats["too_short"]``); otherwise they are skipped when read.

    Samples are dicts with ``"video"`` (``(3, T, H, W)`` float32 in ``[-1, 1]``), ``"caption"``, ``"path"``,
    ``"index"`` (the record actually read), ``"frame_stride"``, ``"fps"`` (source fps / stride; 0.0 if
    unknown) and ``"skipped"``.

    Attributes:
        records: The kept index rows (dicts with ``path``, ``caption`` and any metadata).
        filter_stats: Counts per drop reason, plus ``total`` and ``kept``.
        dropped: ``(path, reason)`` for each file dropped while building the index.
        num_skipped: Unreadable samples skipped by this process (DataLoader workers hold their own copies).
        skipped_paths: ``{path: reason}`` of the files skipped by this process.

    Example:
        >>> import tempfile, numpy as np
        >>> from pathlib import Path
        >>> from vidtok.io import save_video
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = save_video(np.zeros((24, 48, 64, 3), np.uint8), d / "clip.mp4", fps=8)
        >>> _ = (d / "clip.txt").write_text("a black screen")
        >>> ds = VideoDataset(d, num_frames=8, stride=(1, 3), size=32)
        >>> item = ds[0]
        >>> tuple(item["video"].shape), item["caption"]
        ((3, 8, 32, 32), 'a black screen')
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
        *,
        num_frames: int = 16,
        stride: int | Sequence[int] = 1,
        size: int | Sequence[int] | None = 256,
        clip_start: Literal["random", "center", "first"] = "random",
        min_resolution: int | None = None,
        min_aspect_ratio: float | None = None,
        min_frames: int | None = None,
        max_frames: int | None = None,
        min_motion: float | None = None,
        max_motion: float | None = None,
        motion_column: str = "motion_score",
        root: str | os.PathLike[str] | None = None,
        path_column: str = "path",
        caption_column: str = "caption",
        missing_caption: MissingCaption = "error",
        extensions: Sequence[str] | None = None,
        seed: int = 0,
        max_retries: int = 16,
    ) -> None:
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
            raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
        if clip_start not in ("random", "center", "first"):
            raise ValueError(f"clip_start must be 'random', 'center' or 'first', got {clip_start!r}")
        self.num_frames = int(num_frames)
        self.stride = parse_stride(stride)
        self.clip_start = clip_start
        self.min_frames, self.max_frames = min_frames, max_frames
        self.min_motion, self.max_motion = min_motion, max_motion
        self.motion_column = motion_column
        super().__init__(
            source,
            size=size,
            min_resolution=min_resolution,
            min_aspect_ratio=min_aspect_ratio,
            root=root,
            path_column=path_column,
            caption_column=caption_column,
            missing_caption=missing_caption,
            extensions=extensions,
            seed=seed,
            max_retries=max_retries,
        )

    def _needs_metadata(self) -> bool:
        return super()._needs_metadata() or self.min_frames is not None or self.max_frames is not None

    def _check(self, record: dict[str, Any]) -> str | None:
        reason = super()._check(record)
        if reason is not None:
            return reason
        frames = record["num_frames"]
        if frames < clip_span(self.num_frames, self.stride[0]):
            return "too_short"
        if self.min_frames is not None and frames < self.min_frames:
            return "too_short"
        if self.max_frames is not None and frames > self.max_frames:
            return "too_long"
        return None

    def _filter(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records = super()._filter(records)
        if self.min_motion is None and self.max_motion is None:
            return records
        missing = [r for r in records if r.get(self.motion_column) is None]
        if missing:
            from vidtok.data.motion import motion_score

            logger.info(
                "computing motion scores of %d videos (precompute them with build_video_index for large sets)",
                len(missing),
            )
            for r in missing:
                try:
                    r[self.motion_column] = motion_score(r["path"])
                except SKIPPABLE_ERRORS as e:
                    logger.warning("no motion score for %s: %s", r["path"], e)
        kept = []
        for r in records:
            score = r.get(self.motion_column)
            if score is None or not np.isfinite(score):
                self._drop(r, "no_motion_score")  # unreadable, or too short for two sampled frames
            elif (self.min_motion is not None and score < self.min_motion) or (
                self.max_motion is not None and score > self.max_motion
            ):
                self._drop(r, "motion")
            else:
                kept.append(r)
        return kept

    def _load(self, record: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        sample = load_clip(
            record["path"],
            num_frames=self.num_frames,
            stride=self.stride,
            size=self.size,
            clip_start=self.clip_start,
            rng=rng,
        )
        sample["caption"] = record["caption"]
        return sample


def load_clip(
    path: str | os.PathLike[str],
    *,
    num_frames: int | None,
    stride: int | Sequence[int] = 1,
    size: int | Sequence[int] | None = None,
    clip_start: Literal["random", "center", "first"] = "random",
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """Decode one clip of a video file: sample frames, resize to cover ``size`` while decoding, center-crop.

    This is what [`VideoDataset`][vidtok.data.video.VideoDataset] and
    [`ShardDataset`][vidtok.data.shards.ShardDataset] do per sample (see
    [`sample_clip`][vidtok.data.transforms.sample_clip] for how stride and start are drawn).

    Args:
        path: Video file (or image, GIF, folder of frames: anything ``vidtok.io.read_video`` reads).
        num_frames: Frames in the clip, or ``None`` for every ``stride``-th frame of the whole video (a stride
            range is then drawn from uniformly).
        stride: Fixed stride or inclusive ``(low, high)`` range.
        size: Output size (int or ``(height, width)``), or ``None`` to keep the source size.
        clip_start: ``"random"``, ``"center"`` or ``"first"``.
        rng: Generator for the random draws.

    Returns:
        ``{"video": (3, T, H, W) float32 in [-1, 1], "frame_stride": int, "fps": float}`` (``fps`` is the source
        rate divided by the stride, 0.0 when the source has none).

    Raises:
        vidtok.io.VideoReadError: If the file cannot be decoded or yields fewer frames than its metadata says.
        ValueError: If the video is too short for the clip.
    """
    info = read_video_info(path)
    lo, hi = parse_stride(stride)
    if num_frames is None:
        if hi > lo and rng is None:
            raise ValueError("a stride range needs rng (a numpy Generator) to draw from")
        chosen = lo if hi == lo else int(rng.integers(lo, hi + 1))  # type: ignore[union-attr]
        start, count = 0, None
    else:
        clip = sample_clip(info.num_frames, num_frames, (lo, hi), rng, clip_start)
        chosen, start, count = clip.stride, clip.start, clip.num_frames
    plan = None if size is None else resize_crop_plan(info.height, info.width, size)
    frames = read_video(path, start=start, num_frames=count, stride=chosen, size=None if plan is None else plan.resize)
    if count is not None and len(frames) < count:
        raise VideoReadError(path, f"decoded only {len(frames)} of {count} clip frames")
    if plan is not None:
        frames = center_crop(frames, plan.size)
    return {
        "video": frames_to_tensor(np.ascontiguousarray(frames)),
        "frame_stride": chosen,
        "fps": float(info.fps / chosen) if info.fps else 0.0,
    }


# --------------------------------------------------------------------------------------------------
# Index building
# --------------------------------------------------------------------------------------------------


def _probe(args: tuple[dict[str, Any], bool, dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    record, motion, motion_kwargs = args
    try:
        info = read_video_info(record["path"])
        record.update(
            height=info.height, width=info.width, num_frames=info.num_frames, fps=info.fps, duration=info.duration
        )
        if motion:
            from vidtok.data.motion import motion_score

            record["motion_score"] = motion_score(record["path"], **motion_kwargs)
    except SKIPPABLE_ERRORS as e:
        return record, f"{type(e).__name__}: {e}"
    return record, None


def build_video_index(
    source: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
    output: str | os.PathLike[str],
    *,
    motion: bool = False,
    motion_kwargs: Mapping[str, Any] | None = None,
    num_workers: int = 0,
    root: str | os.PathLike[str] | None = None,
    path_column: str = "path",
    caption_column: str = "caption",
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> dict[str, Any]:
    """Probe every file of a source once and write a JSONL index with metadata (and motion scores).

    The index has one line per readable file with ``path`` (absolute), ``caption`` (``null`` if none), ``height``,
    ``width``, ``num_frames``, ``fps``, ``duration`` and, with ``motion=True``, ``motion_score``. Passing it to
    [`VideoDataset`][vidtok.data.video.VideoDataset] makes every filter (resolution, aspect ratio, length,
    motion) run without opening a file. Unreadable files are left out, logged and reported. The file is written
    to a temporary name and renamed, so an interrupted run leaves no partial index.

    Args:
        source: Anything [`read_records`][vidtok.data.video.read_records] accepts.
        output: Path of the ``.jsonl`` index to write.
        motion: Also compute [`motion_score`][vidtok.data.motion.motion_score] (needs ``vidtok[motion]``).
        motion_kwargs: Keyword arguments for ``motion_score`` (``resolution``, ``sample_fps``, ...).
        num_workers: Processes used to probe files (0: in this process).
        root: See ``read_records``.
        path_column: See ``read_records``.
        caption_column: See ``read_records``.
        extensions: See ``read_records``.

    Returns:
        ``{"total": n, "written": k, "unreadable": [(path, reason), ...], "output": path}``.
    """
    records = read_records(
        source, root=root, path_column=path_column, caption_column=caption_column, extensions=extensions
    )
    for r in records:
        r["path"] = str(Path(r["path"]).resolve())
    jobs = [(r, motion, dict(motion_kwargs or {})) for r in records]
    if motion:
        from vidtok.data.motion import require_cv2

        require_cv2()
    if num_workers > 0:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(num_workers) as pool:
            results = list(pool.map(_probe, jobs, chunksize=16))
    else:
        results = [_probe(job) for job in jobs]
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    unreadable = []
    with open(tmp, "w", encoding="utf-8") as f:
        for record, error in results:
            if error is not None:
                logger.warning("leaving unreadable file %s out of the index: %s", record["path"], error)
                unreadable.append((record["path"], error))
                continue
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, output)
    return {
        "total": len(records),
        "written": len(records) - len(unreadable),
        "unreadable": unreadable,
        "output": output,
    }
