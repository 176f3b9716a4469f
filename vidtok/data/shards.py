"""WebDataset tar shards: the streaming format for video data that does not fit on one machine.

**Format.** Plain POSIX tar files in the WebDataset layout: the members of one sample share a key (the file name up
to its first dot) and sit next to each other, one member per field: ``000000042.mp4`` (the video bytes),
``000000042.txt`` (the caption, UTF-8) and ``000000042.json`` (metadata: source path, index, fps, frame stride,
frame count and size, ...). Images are stored the same way with their own extension (``.png``, ``.jpg``). The files
are written and read with Python's ``tarfile``, so vidtok needs no extra package, and the official ``webdataset``
library (and any tar tool) reads them as they are.

**Writing.** [`write_shards`][vidtok.data.shards.write_shards] takes any dataset or iterable of sample dicts:
samples with a ``"video"`` tensor or array are encoded to H.264 mp4 (or bit-exact with ``lossless=True``); samples
without one but with a ``"path"`` to a video file (e.g. ``VideoDataset(...).records``) are stored byte for byte, so
raw data is packed without re-encoding. Each shard is written to a temporary file and renamed when complete.

**Reading.** [`ShardDataset`][vidtok.data.shards.ShardDataset] is an ``IterableDataset`` that streams shards (local
paths, ``{000000..000099}`` brace ranges, globs, or, when allowed, ``pipe:COMMAND`` URLs such as
``pipe:aws s3 cp s3://bucket/shard-000001.tar -`` or ``pipe:curl -s https://host/shard-000001.tar``), splits them
between processes (``torch.distributed`` rank and world size, or the ``RANK``/``WORLD_SIZE`` variables that
``torchrun`` and ``accelerate launch`` set) and DataLoader workers, shuffles samples in a buffer, decodes the video
bytes with PyAV through `vidtok.io` and samples clips like
[`VideoDataset`][vidtok.data.video.VideoDataset].

**Shard lists are trusted input.** A ``pipe:COMMAND`` URL runs ``COMMAND`` in a shell, so a shard list (or the run
config naming it) can execute anything. ``pipe:`` URLs are therefore refused unless the caller allows code
explicitly: ``ShardDataset(..., allow_code=True)``, or ``VIDTOK_ALLOW_CODE=1`` in the environment (see
[`code_allowed`][vidtok.data.shards.code_allowed]). Only allow it for shard lists you wrote or trust.
"""

from __future__ import annotations

import glob
import io
import json
import logging
import os
import re
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from vidtok.data.video import SKIPPABLE_ERRORS, load_clip
from vidtok.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, read_video_info, save_video

__all__ = ["ALLOW_CODE_ENV", "ShardDataset", "code_allowed", "expand_urls", "write_shards"]

logger = logging.getLogger(__name__)

_IMAGE_EXTENSIONS = tuple(e.lstrip(".") for e in IMAGE_EXTENSIONS)
_MEDIA_EXTENSIONS = (*(e.lstrip(".") for e in VIDEO_EXTENSIONS), *_IMAGE_EXTENSIONS)
# Sample-dict keys that are not copied into the .json metadata.
_NOT_METADATA = {"video", "caption", "__key__"}

ALLOW_CODE_ENV = "VIDTOK_ALLOW_CODE"
"""Environment variable that, set to ``1``/``true``/``yes``/``on``, allows configuration to run code (``pipe:`` shard
URLs, run-config import paths outside ``vidtok``)."""


def code_allowed(allow_code: bool | None = None) -> bool:
    """Whether configuration may run code: ``allow_code`` if given, else the ``VIDTOK_ALLOW_CODE`` env var (off).

    Example:
        >>> code_allowed(True), code_allowed(False)
        (True, False)
    """
    if allow_code is not None:
        if not isinstance(allow_code, bool):
            raise TypeError(f"allow_code must be True, False or None, got {type(allow_code).__name__} {allow_code!r}")
        return allow_code
    return os.environ.get(ALLOW_CODE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _check_int(name: str, value: Any, minimum: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{' or None' if optional else ''}, got {value!r}")


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _iterate(samples: Any) -> Iterator[dict[str, Any]]:
    from torch.utils.data import IterableDataset as _Iterable

    if hasattr(samples, "__len__") and hasattr(samples, "__getitem__") and not isinstance(samples, _Iterable):
        if isinstance(samples, Mapping):
            raise TypeError("samples must be a dataset or an iterable of sample dicts, not a single dict")
        return (samples[i] for i in range(len(samples)))
    return iter(samples)


def _json_scalar(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "ndim") and getattr(value, "ndim", 1) == 0 and hasattr(value, "item"):
        return value.item()  # 0-d torch tensor
    return _SKIP


_SKIP = object()


def _encode_video(video: Any, fps: float, lossless: bool, crf: int | None, tmpdir: str | None) -> tuple[bytes, dict]:
    with tempfile.TemporaryDirectory(dir=tmpdir) as d:
        path = save_video(video, Path(d) / "clip.mp4", fps=fps, lossless=lossless, crf=crf)
        info = read_video_info(path)
        return path.read_bytes(), {"num_frames": info.num_frames, "height": info.height, "width": info.width}


def _check_key(key: str) -> str:
    if not key or "." in key or "/" in key or key.startswith("_"):
        raise ValueError(f"invalid sample key {key!r}: WebDataset keys may not be empty or contain '.' or '/'")
    return key


def write_shards(
    samples: Any,
    pattern: str | os.PathLike[str],
    *,
    maxcount: int = 1000,
    maxsize: int | None = None,
    fps: float = 8.0,
    lossless: bool = False,
    crf: int | None = None,
    start_shard: int = 0,
    tmpdir: str | None = None,
) -> list[Path]:
    """Write samples to WebDataset tar shards (``.mp4``/image bytes + ``.txt`` caption + ``.json`` metadata).

    Args:
        samples: A map-style dataset (read ``0 .. len - 1``) or an iterable of sample dicts. Each needs a
            ``"caption"`` and either a ``"video"`` (model layout ``(3, T, H, W)`` in ``[-1, 1]`` or frames
            ``(T, H, W, 3)``, encoded to mp4) or a ``"path"`` to a video/image file (its bytes are stored
            unchanged). Other JSON-scalar entries (``path``, ``index``, ``fps``, ``frame_stride``, ...) go into
            the metadata. An optional ``"__key__"`` sets the sample key (default: the running sample number).
        pattern: Shard path with a printf field for the shard number, e.g. ``"out/videos-%06d.tar"``.
        maxcount: Samples per shard.
        maxsize: Start a new shard before one would exceed this many bytes (``None``: no limit).
        fps: Frame rate for encoded videos whose sample has no positive ``"fps"``.
        lossless: Encode bit-exact (RGB H.264, bigger files) instead of H.264 yuv420p ``crf`` 18.
        crf: H.264 quality when not lossless (lower is better; ``None``: 18).
        start_shard: Number of the first shard (to append to an existing set).
        tmpdir: Folder for temporary encoding files.

    Returns:
        Paths of the shards written, in order.

    Raises:
        ValueError: For a pattern without a shard-number field, a sample without caption or video/path, or an
            invalid key.

    Example:
        >>> import tempfile
        >>> from vidtok.shapes import ShapesDataset
        >>> d = tempfile.mkdtemp()
        >>> paths = write_shards(ShapesDataset(resolution=16, num_frames=4, length=5), f"{d}/s-%03d.tar", maxcount=2)
        >>> len(paths), paths[0].name
        (3, 's-000.tar')
    """
    pattern = str(pattern)
    try:
        distinct = pattern % 0 != pattern % 1
    except TypeError:
        distinct = False
    if not distinct:
        raise ValueError(
            f"pattern needs one printf field for the shard number, e.g. 'shards-%06d.tar'; got {pattern!r}"
        )
    _check_int("maxcount", maxcount, 1)
    _check_int("maxsize", maxsize, 1, optional=True)
    _check_int("start_shard", start_shard, 0)
    _check_int("crf", crf, 0, optional=True)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < float("inf"):
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    sink = _ShardSink(pattern, start_shard)
    try:
        for n, sample in enumerate(_iterate(samples)):
            members = _sample_members(n, sample, fps, lossless, crf, tmpdir)
            size = sum(len(d) + 1024 for _, d in members)  # + tar headers and padding (upper bound)
            if sink.count >= maxcount or (maxsize is not None and sink.count and sink.bytes + size > maxsize):
                sink.close()
            sink.add(members, size)
        sink.close()
    except BaseException:
        sink.abort()
        raise
    return sink.written


class _ShardSink:
    """Writes samples into numbered tar shards, each to a temporary file renamed when complete."""

    def __init__(self, pattern: str, shard: int) -> None:
        self.pattern, self.shard = pattern, shard
        self.tar: tarfile.TarFile | None = None
        self.tmp: Path | None = None
        self.count = self.bytes = 0
        self.written: list[Path] = []

    def add(self, members: list[tuple[str, bytes]], size: int) -> None:
        if self.tar is None:
            final = Path(self.pattern % self.shard)
            final.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = final.with_name(f".{final.name}.tmp")
            self.tar = tarfile.open(self.tmp, "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115 - closed in close()
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o444, 0  # mtime 0: identical input, identical bytes
            self.tar.addfile(info, io.BytesIO(data))
        self.count += 1
        self.bytes += size

    def close(self) -> None:
        if self.tar is None:
            return
        self.tar.close()
        final = Path(self.pattern % self.shard)
        os.replace(self.tmp, final)  # type: ignore[arg-type]
        self.written.append(final)
        self.tar, self.tmp, self.count, self.bytes, self.shard = None, None, 0, 0, self.shard + 1

    def abort(self) -> None:
        if self.tar is not None:
            self.tar.close()
            Path(self.tmp).unlink(missing_ok=True)  # type: ignore[arg-type]
            self.tar = None


def _sample_members(
    n: int, sample: Any, fps: float, lossless: bool, crf: int | None, tmpdir: str | None
) -> list[tuple[str, bytes]]:
    """The tar members (name, bytes) of one sample: media, caption and metadata."""
    if not isinstance(sample, Mapping):
        raise ValueError(f"sample {n} is a {type(sample).__name__}, expected a dict")
    key = _check_key(str(sample.get("__key__", f"{n:09d}")))
    caption = sample.get("caption")
    if caption is None:
        raise ValueError(f"sample {n} has no 'caption'")
    meta = {k: _json_scalar(v) for k, v in sample.items() if k not in _NOT_METADATA}
    meta = {k: v for k, v in meta.items() if v is not _SKIP}
    if sample.get("video") is not None:
        rate = meta.get("fps")
        rate = float(rate) if isinstance(rate, (int, float)) and rate > 0 else fps
        media, shape = _encode_video(sample["video"], rate, lossless, crf, tmpdir)
        meta.update(shape, fps=rate)
        ext = "mp4"
    elif sample.get("path"):
        source = Path(sample["path"])
        ext = source.suffix.lower().lstrip(".")
        if ext not in _MEDIA_EXTENSIONS:
            raise ValueError(f"sample {n}: {source} is not a video or image file (extension {ext!r})")
        media = source.read_bytes()
    else:
        raise ValueError(f"sample {n} has neither a 'video' nor a 'path' to store")
    return [
        (f"{key}.{ext}", media),
        (f"{key}.txt", str(caption).encode("utf-8")),
        (f"{key}.json", json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8")),
    ]


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------

_BRACE = re.compile(r"\{([^{}]*)\}")


def _expand_braces(text: str) -> list[str]:
    match = _BRACE.search(text)
    if match is None:
        return [text]
    body, head, tail = match.group(1), text[: match.start()], text[match.end() :]
    numeric = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numeric:
        a, b = numeric.groups()
        width = len(a) if a.startswith("0") or len(a) == len(b) else 0
        step = 1 if int(b) >= int(a) else -1
        options = [str(i).zfill(width) for i in range(int(a), int(b) + step, step)]
    else:
        options = body.split(",")
    return [head + opt + rest for opt in options for rest in _expand_braces(tail)]


def expand_urls(urls: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """Expand shard URLs: brace ranges (``shard-{000..009}.tar``), lists (``{a,b}``) and local globs.

    Args:
        urls: One URL/pattern or a list of them; a string may also hold several separated by ``::``.

    Returns:
        The shard URLs, in order.

    Example:
        >>> expand_urls("data/shard-{00..02}.tar")
        ['data/shard-00.tar', 'data/shard-01.tar', 'data/shard-02.tar']
    """
    if not isinstance(urls, (str, os.PathLike, Sequence)):
        raise TypeError(f"urls must be a string, a path or a list of them, got {type(urls).__name__}")
    items = [urls] if isinstance(urls, (str, os.PathLike)) else list(urls)
    out: list[str] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"shard URL must be a string or a path, got {type(item).__name__} {item!r}")
        for part in os.fspath(item).split("::"):
            if not part.strip():
                raise ValueError(f"empty shard URL in {urls!r}")
            for url in _expand_braces(part):
                if not url.startswith("pipe:") and glob.has_magic(url):
                    matches = sorted(glob.glob(url))
                    if not matches:
                        raise FileNotFoundError(f"no shard matches {url!r}")
                    out.extend(matches)
                else:
                    out.append(url)
    if not out:
        raise ValueError("no shard URLs given")
    return out


def _open_url(url: str) -> tuple[IO[bytes], subprocess.Popen | None]:
    if url.startswith("pipe:"):
        proc = subprocess.Popen(url[5:], shell=True, stdout=subprocess.PIPE)  # the user's own command
        return proc.stdout, proc  # type: ignore[return-value]
    if url.startswith("file://"):
        url = url[7:]
    elif re.match(r"^[a-z][a-z0-9+.-]*://", url):
        raise ValueError(
            f"unsupported shard URL {url!r}: use a local path, file://, or pipe:COMMAND that writes the tar to "
            "stdout (e.g. 'pipe:curl -s URL' or 'pipe:aws s3 cp s3://bucket/shard.tar -')"
        )
    return open(url, "rb"), None


def _split_key(name: str) -> tuple[str, str] | None:
    directory, _, base = name.rpartition("/")
    if "." not in base:
        return None
    stem, ext = base.split(".", 1)
    return (f"{directory}/{stem}" if directory else stem), ext.lower()


def _dist_info(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:  # pragma: no cover
        pass
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class ShardDataset(IterableDataset):
    """Stream captioned videos (or images) from WebDataset tar shards, split across processes and workers.

    Splitting: the shard list (shuffled per epoch with ``default_rng([seed, epoch])`` when ``shuffle_shards``;
    identical on every process) is dealt round-robin to the ``world_size * num_workers`` readers
    (``split="shard"``), so every sample is read exactly once per epoch by exactly one reader. With fewer shards
    than readers (``split="auto"`` switches then, or ``split="sample"``), every reader walks all shards and keeps
    every ``world_size * num_workers``-th sample. Ranks may get different sample counts (shards differ in size):
    train for a number of steps with ``repeat=True`` rather than "one epoch per rank".

    Samples pass a shuffle buffer of ``shuffle`` samples (seeded by ``(seed, epoch, reader)``), then are decoded
    and clipped like [`VideoDataset`][vidtok.data.video.VideoDataset]'s (stride and start drawn from
    ``default_rng([seed, epoch, crc32(shard name + key)])``, so a sample gets the same clip whichever reader reads
    it). Corrupt members, samples without video or caption and unreadable shards are skipped with a logged warning
    and counted (``num_skipped`` and ``skipped_paths``, ``{"shard#key" or shard: reason}``, in the reading
    process); the next sample yielded carries the count in ``"skipped"``, so summing ``batch["skipped"]`` gives the
    total across workers (skips after a reader's last sample are only logged and in ``num_skipped``). A truncated
    shard counts once, however many samples it lost.

    Args:
        urls: Shard URLs (see [`expand_urls`][vidtok.data.shards.expand_urls]; ``pipe:`` commands allowed).
        num_frames: Frames per clip, or ``None`` for every ``stride``-th frame of the stored video (for shards of
            already clipped videos).
        stride: Fixed stride or inclusive ``(low, high)`` range.
        size: Output size (int or ``(height, width)``) after resize + center crop; ``None`` keeps the stored size.
        clip_start: ``"random"``, ``"center"`` or ``"first"``.
        shuffle: Shuffle buffer size in samples (0: read in shard order).
        shuffle_shards: Shuffle the shard order every epoch.
        split: ``"auto"``, ``"shard"``, ``"sample"`` (see above), or ``"none"``: every process and worker reads
            every sample in the same order (for a wrapper that slices the stream itself).
        rank: This process's rank (default: from ``torch.distributed`` or ``RANK``).
        world_size: Number of processes (default: from ``torch.distributed`` or ``WORLD_SIZE``).
        repeat: Loop over epochs forever (the epoch increases by one per pass).
        seed: Base seed.
        tmpdir: Folder for the temporary files videos are decoded from.
        allow_code: Allow ``pipe:COMMAND`` URLs, which run ``COMMAND`` in a shell (``None``: only if
            ``VIDTOK_ALLOW_CODE=1``). Shard lists that use them are trusted input.

    Raises:
        PermissionError: For a ``pipe:`` URL when code is not allowed (the message names it).
        ValueError: For invalid arguments (named), or, with ``repeat=True``, when an epoch finds no readable
            sample at all (instead of looping forever).

    Samples are dicts with ``"video"`` (``(3, T, H, W)`` float32 in ``[-1, 1]``), ``"caption"``, ``"key"``,
    ``"path"`` (the original path from the metadata, else ``shard#key``), ``"frame_stride"``, ``"fps"`` and
    ``"skipped"``.

    Example:
        >>> import tempfile
        >>> from vidtok.shapes import ShapesDataset
        >>> d = tempfile.mkdtemp()
        >>> _ = write_shards(ShapesDataset(resolution=16, num_frames=4, length=4), f"{d}/s-%03d.tar", maxcount=2)
        >>> ds = ShardDataset(f"{d}/s-{{000..001}}.tar", num_frames=4, size=16)
        >>> shapes = [tuple(s["video"].shape) for s in ds]
        >>> len(shapes), shapes[0]
        (4, (3, 4, 16, 16))
    """

    def __init__(
        self,
        urls: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        num_frames: int | None = 16,
        stride: int | Sequence[int] = 1,
        size: int | Sequence[int] | None = 256,
        clip_start: Literal["random", "center", "first"] = "random",
        shuffle: int = 0,
        shuffle_shards: bool = True,
        split: Literal["auto", "shard", "sample", "none"] = "auto",
        rank: int | None = None,
        world_size: int | None = None,
        repeat: bool = False,
        seed: int = 0,
        tmpdir: str | None = None,
        allow_code: bool | None = None,
    ) -> None:
        from vidtok.data.transforms import parse_size, parse_stride

        self.urls = expand_urls(urls)
        pipes = [u for u in self.urls if u.startswith("pipe:")]
        if pipes and not code_allowed(allow_code):
            raise PermissionError(
                f"shard URL {pipes[0]!r} runs a shell command; pipe: URLs are refused unless code is allowed "
                f"(ShardDataset(..., allow_code=True), {ALLOW_CODE_ENV}=1, or vidtok train --allow-code) for shard "
                "lists you trust"
            )
        self.allow_code = bool(pipes)  # the pipes (if any) were allowed just above
        if num_frames is not None:
            _check_int("num_frames", num_frames, 1)
        if clip_start not in ("random", "center", "first"):
            raise ValueError(f"clip_start must be 'random', 'center' or 'first', got {clip_start!r}")
        _check_int("shuffle (the buffer size)", shuffle, 0)
        _check_int("seed", seed, 0)
        for name, flag in (("shuffle_shards", shuffle_shards), ("repeat", repeat)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be True or False, got {flag!r}")
        if split not in ("auto", "shard", "sample", "none"):
            raise ValueError(f"split must be 'auto', 'shard', 'sample' or 'none', got {split!r}")
        if (rank is None) != (world_size is None):
            raise ValueError("pass both rank and world_size, or neither")
        if world_size is not None:
            _check_int("world_size", world_size, 1)
            _check_int("rank", rank, 0)
            if not rank < world_size:  # type: ignore[operator]
                raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.num_frames, self.stride, self.size = num_frames, parse_stride(stride), parse_size(size)
        self.clip_start, self.shuffle, self.shuffle_shards, self.split = clip_start, shuffle, shuffle_shards, split
        self.rank, self.world_size, self.repeat, self.seed, self.tmpdir = rank, world_size, repeat, seed, tmpdir
        self.epoch = 0
        self.num_skipped = 0
        self.skipped_paths: dict[str, str] = {}
        self._pending_skips = 0  # skips not yet reported in a sample's "skipped"

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (shard order, shuffle and clip draws); call before iterating."""
        self.epoch = int(epoch)

    def reader_shards(self, epoch: int | None = None, reader: int = 0, num_readers: int = 1) -> tuple[list[str], bool]:
        """Shards one reader walks in ``epoch`` and whether it keeps only every ``num_readers``-th sample."""
        epoch = self.epoch if epoch is None else epoch
        if self.split == "none":
            reader, num_readers = 0, 1
        urls = list(self.urls)
        if self.shuffle_shards:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(urls))
            urls = [urls[i] for i in order]
        by_sample = self.split == "sample" or (self.split == "auto" and len(urls) < num_readers)
        if by_sample or num_readers == 1:
            return urls, by_sample and num_readers > 1
        return urls[reader::num_readers], False

    def _skip(self, where: str, reason: str) -> None:
        self.num_skipped += 1
        self._pending_skips += 1
        self.skipped_paths[where] = reason
        logger.warning("skipping %s: %s", where, reason)

    def _raw_samples(self, urls: list[str]) -> Iterator[dict[str, Any]]:
        for url in urls:
            current: dict[str, Any] | None = None
            if url.startswith("pipe:") and not self.allow_code:  # self.urls edited after the check in __init__
                raise PermissionError(f"shard URL {url!r} runs a shell command and code is not allowed (allow_code)")
            try:
                stream, proc = _open_url(url)
            except OSError as e:  # a missing or unreadable shard; an unsupported URL (ValueError) is a setup error
                self._skip(url, f"cannot open shard: {e}")
                continue
            try:
                with tarfile.open(fileobj=stream, mode="r|*") as tar:
                    for member in tar:
                        if not member.isfile():
                            continue
                        parts = _split_key(member.name)
                        if parts is None:
                            continue
                        key, ext = parts
                        if current is not None and current["__key__"] != key:
                            yield current
                            current = None
                        if current is None:
                            current = {"__key__": key, "__url__": url}
                        current[ext] = tar.extractfile(member).read()  # type: ignore[union-attr]
            except (tarfile.TarError, OSError, EOFError) as e:
                self._skip(
                    url, f"shard is truncated or corrupt after {current['__key__'] if current else 'start'}: {e}"
                )
                current = None  # its members may be incomplete
            finally:
                stream.close()
                if proc is not None and proc.wait() != 0:
                    # A failing command may still have written a valid (partial) tar: say so, never stay quiet.
                    logger.warning("shard command %r exited with status %d", url[5:], proc.returncode)
            if current is not None:
                yield current

    def _decode(self, raw: dict[str, Any], epoch: int) -> dict[str, Any]:
        where = f"{raw['__url__']}#{raw['__key__']}"
        ext = next((e for e in _MEDIA_EXTENSIONS if e in raw), None)
        if ext is None:
            raise ValueError(f"sample has no video or image member (members: {sorted(k for k in raw if k[0] != '_')})")
        meta = json.loads(raw["json"]) if "json" in raw else {}
        if not isinstance(meta, dict):
            raise ValueError(f"the .json member must hold a JSON object, got {type(meta).__name__}")
        if "txt" in raw:
            caption = raw["txt"].decode("utf-8")
        elif isinstance(meta.get("caption"), str):
            caption = meta["caption"]
        else:
            raise ValueError("sample has no caption (.txt member)")
        name = f"{Path(raw['__url__']).name}/{raw['__key__']}"
        rng = np.random.default_rng([self.seed, epoch, zlib.crc32(name.encode())])
        with tempfile.NamedTemporaryFile(suffix=f".{ext}", dir=self.tmpdir) as f:
            f.write(raw[ext])
            f.flush()
            image = ext in _IMAGE_EXTENSIONS
            sample = load_clip(
                f.name,
                num_frames=1 if image else self.num_frames,
                stride=1 if image else self.stride,
                size=self.size,
                clip_start=self.clip_start,
                rng=rng,
            )
        sample.update(caption=caption, key=raw["__key__"], path=str(meta.get("path") or where))
        return sample

    def _epoch(self, epoch: int, reader: int, num_readers: int) -> Iterator[dict[str, Any]]:
        urls, by_sample = self.reader_shards(epoch, reader, num_readers)
        raw: Iterable[dict[str, Any]] = self._raw_samples(urls)
        if by_sample:
            raw = (s for n, s in enumerate(raw) if n % num_readers == reader)
        if self.shuffle > 1:
            raw = _shuffled(raw, self.shuffle, np.random.default_rng([self.seed, epoch, reader, 1]))
        for item in raw:
            try:
                sample = self._decode(item, epoch)
            except SKIPPABLE_ERRORS as e:
                self._skip(f"{item['__url__']}#{item['__key__']}", f"{type(e).__name__}: {e}")
                continue
            sample["skipped"], self._pending_skips = self._pending_skips, 0
            yield sample

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world = _dist_info(self.rank, self.world_size)
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        reader, num_readers = rank * workers + worker, world * workers
        if self.split == "none":
            reader, num_readers = 0, 1  # also seeds the shuffle buffer identically everywhere
        epoch = self.epoch
        while True:
            count = 0
            for sample in self._epoch(epoch, reader, num_readers):
                count += 1
                yield sample
            if not self.repeat:
                return
            if count == 0:  # repeating an epoch that yields nothing would spin forever without a word
                shards, _ = self.reader_shards(epoch, reader, num_readers)
                reasons = "; ".join(f"{k}: {v}" for k, v in list(self.skipped_paths.items())[-3:])
                raise ValueError(
                    f"reader {reader} of {num_readers} found no readable sample in its {len(shards)} shard(s) "
                    f"{shards[:3]}{' ...' if len(shards) > 3 else ''} in epoch {epoch}"
                    + (f" (last skipped: {reasons})" if reasons else " (too few shards for the readers?)")
                )
            epoch += 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.urls)} shards, num_frames={self.num_frames}, size={self.size})"


def _shuffled(items: Iterable[Any], buffer: int, rng: np.random.Generator) -> Iterator[Any]:
    """Buffer shuffle: keep ``buffer`` items, emit a random one as each new item arrives."""
    pool: list[Any] = []
    for item in items:
        if len(pool) < buffer:
            pool.append(item)
            continue
        k = int(rng.integers(len(pool)))
        pool[k], item = item, pool[k]
        yield item
    order = rng.permutation(len(pool))
    for k in order:
        yield pool[k]
