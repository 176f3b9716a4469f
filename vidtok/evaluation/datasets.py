"""Evaluation sets read from the user's local copies: captions files, video folders, MSR-VTT, UCF-101; clip sampling.

Nothing is downloaded: every reader takes a folder or file the user already has and fails with a message that
names the file, row, column or video at fault. Each returns an :class:`EvalSet` — an ordered tuple of
:class:`EvalItem` (a stable ``key``, an optional real ``path``, an optional ``caption``) plus the protocol fields
that describe where it came from (source, split, caption sampling), which the runners copy into eval cards.

Supported sets:

* **Captions file** (:func:`read_captions`): a CSV with a header row naming a ``caption`` column and optionally a
  ``video`` column (paths relative to the CSV's folder, or to ``video_root``); other columns are ignored.
* **Video folder** (:func:`video_folder`): every file that :func:`vidtok.io.read_video` reads as a video
  (``.mp4 .m4v .mov .avi .mkv .webm .gif``), found recursively, plus every sub-folder of frame images (one video
  each), sorted by relative path: the order never depends on the file system.
* **MSR-VTT test** (:func:`msrvtt_test`): the 2,990-video test split (video7010 … video9999) with ONE random
  caption per video from a fixed seed, the zero-shot protocol of DiCoDe Tab. 2 ("the full set of 2990 test
  videos and randomly sample one caption for each video"). Two layouts of the annotations are read:

  - the original release's ``test_videodatainfo.json`` / ``train_val_videodatainfo.json`` /
    ``videodatainfo_2017.json`` / ``MSRVTT_data.json`` (``{"videos": [{"video_id", "split"}], "sentences":
    [{"video_id", "caption", "sen_id"}]}``; videos with ``split == "test"``);
  - the Frozen-in-Time / CLIP4Clip layout ``MSRVTT/annotation/MSR_VTT.json`` (COCO-like ``{"annotations":
    [{"image_id", "caption", "id"}]}``, no split field: the test ids come from
    ``high-quality/structured-symlinks/test_list_full.txt`` when present, else from the official id range
    video7010–video9999);

  with the videos in ``MSRVTT/videos/all/<video_id>.mp4`` (also ``videos/test``, ``videos``, ``TestVideo``).
  The sampled caption of a video depends only on ``(caption_seed, video_id)``, not on which other videos are
  present. DiCoDe does not publish its random draw, so the captions (not the protocol) differ from the paper's.
* **UCF-101** (:func:`ucf101`): ``UCF-101/<Class>/*.avi`` and the official ``ucfTrainTestlist/trainlist0N.txt`` /
  ``testlist0N.txt``. The default is train split 01, the statistics most FVD work on UCF-101 uses (others use
  all 13,320 videos, ``split="all"``; the two do not compare). Class names become prompts: ``ApplyEyeMakeup`` →
  ``"apply eye makeup"`` (:func:`ucf101_prompt`), through ``prompt_template``.

:class:`ClipSampler` turns a real video into the evaluated clip: ``frames`` frames, ``stride`` apart, from frame
``start`` (deterministic: no random start, unlike StyleGAN-V's random clips, so repeated runs agree), resized to
``resolution`` by ``"squash"`` (both sides scaled independently, as the TF FVD original and StyleGAN-V do) or
``"center_crop"`` (scaled to cover, then the centred window, as VideoGPT/TATS do). Resizing is Pillow bilinear
with anti-aliasing (:func:`vidtok.io.resize_frames`), on ``uint8`` frames.

Example:
    >>> ucf101_prompt("ApplyEyeMakeup"), ucf101_prompt("YoYo"), ucf101_prompt("HandstandPushups")
    ('apply eye makeup', 'yo yo', 'handstand pushups')
"""

from __future__ import annotations

import csv
import json
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vidtok.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

__all__ = [
    "MSRVTT_TEST_SIZE",
    "RESIZE_MODES",
    "ClipSampler",
    "EvalItem",
    "EvalSet",
    "as_eval_set",
    "msrvtt_test",
    "read_captions",
    "subset",
    "ucf101",
    "ucf101_prompt",
    "video_folder",
]

#: Resize modes of :class:`ClipSampler`: squash (TF FVD, StyleGAN-V, cd-fvd) or cover + center crop (VideoGPT).
RESIZE_MODES = ("squash", "center_crop")

#: Videos in the MSR-VTT test split (video7010 … video9999), the set of DiCoDe Tab. 2.
MSRVTT_TEST_SIZE = 2990
_MSRVTT_TEST_IDS = range(7010, 10000)


@dataclass(frozen=True)
class EvalItem:
    """One entry of an evaluation set.

    Attributes:
        key: Stable identifier, unique in its set (relative path, MSR-VTT ``video_id``, captions row); the
            runners' feature caches are keyed by it.
        path: The real video (absolute), or ``None`` for a prompt without a video.
        caption: The prompt the model generates from (``None`` for a plain video folder).
        label: A class name (UCF-101), else ``None``.
    """

    key: str
    path: str | None = None
    caption: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class EvalSet:
    """An ordered evaluation set and where it came from.

    Attributes:
        items: The entries, in a deterministic order.
        source: ``"captions"``, ``"folder"``, ``"msrvtt"``, ``"ucf101"`` or ``"list"``.
        location: The file or folder read (absolute), or ``None``.
        split: The split (``"test"``, ``"train01"``, ...) or ``None``.
        info: Further protocol fields (annotation file, caption sampling seed, prompt template, subset seed).
    """

    items: tuple[EvalItem, ...]
    source: str
    location: str | None = None
    split: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[EvalItem]:
        return iter(self.items)

    def __getitem__(self, index: int) -> EvalItem:
        return self.items[index]

    @property
    def captions(self) -> list[str]:
        """Every item's caption (raises if an item has none)."""
        return self._every("caption", "caption")

    @property
    def paths(self) -> list[str]:
        """Every item's video path (raises if an item has none)."""
        return self._every("path", "video")

    def _every(self, attr: str, what: str) -> list[str]:
        """Every item's ``attr``; a ``ValueError`` naming the count and the first item without one (a ``what``)."""
        missing = [it.key for it in self.items if not getattr(it, attr)]
        if missing:
            raise ValueError(f"{self.describe()}: {len(missing)} item(s) have no {what}, e.g. {missing[0]!r}")
        return [getattr(it, attr) for it in self.items]

    def describe(self) -> str:
        """A short name for messages: ``"msrvtt test (/data/MSRVTT)"``."""
        text = self.source + (f" {self.split}" if self.split else "")
        return f"{text} ({self.location})" if self.location else text

    def protocol(self, prefix: str) -> dict[str, Any]:
        """The set's protocol fields, each named ``<prefix>_<field>`` (``real_source``, ``real_split``, ...)."""
        out: dict[str, Any] = {f"{prefix}_source": self.source, f"{prefix}_split": self.split}
        out.update({f"{prefix}_{k}": v for k, v in sorted(self.info.items())})
        return out


def subset(items: EvalSet, num: int | None, seed: int) -> EvalSet:
    """The first-class way to evaluate on fewer items: a seeded random subset, kept in the set's order.

    Args:
        items: The set.
        num: Items to keep (``None`` or ``>= len(items)``: all, unchanged).
        seed: Seed of the draw (``numpy.random.default_rng(seed)``), recorded as ``subset_seed``.

    Returns:
        The subset, with ``info["subset_of"]`` (the full size) and ``info["subset_seed"]``.

    Raises:
        ValueError: ``num < 1``.
    """
    if num is None or num >= len(items):
        return items
    if num < 1:
        raise ValueError(f"num_videos must be >= 1, got {num}")
    chosen = np.sort(np.random.default_rng(seed).choice(len(items), size=num, replace=False))
    info = {**items.info, "subset_of": len(items), "subset_seed": int(seed)}
    return replace(items, items=tuple(items.items[i] for i in chosen), info=info)


# ---------------------------------------------------------------------------------------------- captions


def read_captions(path: str | os.PathLike[str], *, video_root: str | os.PathLike[str] | None = None) -> EvalSet:
    """Read a captions CSV: a header row with a ``caption`` column and optionally a ``video`` column.

    Column names are matched without regard to case or surrounding spaces; other columns are ignored. Rows are
    kept in file order; keys are ``row<N>`` (N = the data row, 1-based), so a cache stays valid only for the
    same file. A ``video`` column names each row's real video, relative to ``video_root`` (default: the CSV's
    folder) or absolute.

    Args:
        path: The CSV file (UTF-8, a BOM is fine).
        video_root: Folder the ``video`` paths are relative to.

    Returns:
        The set (``source="captions"``).

    Raises:
        FileNotFoundError: No such file, or a ``video`` cell naming a missing file (file, row and path named).
        ValueError: No header with a ``caption`` column, an empty caption or video cell, a row with too few
            cells, or no rows (file, row and column named).
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"captions file {path} does not exist")
    root = Path(video_root).expanduser().resolve() if video_root is not None else path.parent
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        rows, lines = [], []  # each row and the file line it ends on (quoted cells may span lines)
        try:
            for row in reader:
                rows.append(row)
                lines.append(reader.line_num)
        except (csv.Error, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not a readable UTF-8 CSV file ({err})") from None
    if not rows:
        raise ValueError(f"{path} is empty: expected a header row with a 'caption' column (and optionally 'video')")
    header = [h.strip().lower() for h in rows[0]]
    if "caption" not in header:
        raise ValueError(
            f"{path}: the first row must be a header naming a 'caption' column (and optionally 'video'), "
            f"got {rows[0]!r}"
        )
    c_col = header.index("caption")
    v_col = header.index("video") if "video" in header else None
    items = []
    for n, row in enumerate(rows[1:], start=1):
        if not any(cell.strip() for cell in row):
            continue  # blank lines are not rows
        line = lines[n]
        need = max(c_col, v_col if v_col is not None else -1) + 1
        if len(row) < need:
            raise ValueError(f"{path} line {line}: {len(row)} cell(s), the header has {len(header)}")
        caption = row[c_col].strip()
        if not caption:
            raise ValueError(f"{path} line {line}: empty 'caption'")
        video = None
        if v_col is not None:
            cell = row[v_col].strip()
            if not cell:
                raise ValueError(f"{path} line {line}: empty 'video' (every row needs one when the column exists)")
            video_path = (root / cell).expanduser()
            if not video_path.exists():
                raise FileNotFoundError(f"{path} line {line}: 'video' {cell} does not exist (looked in {root})")
            video = str(video_path.resolve())
        items.append(EvalItem(key=f"row{n}", path=video, caption=caption))
    if not items:
        raise ValueError(f"{path}: a header but no caption rows")
    return EvalSet(tuple(items), "captions", str(path), None, {})


# ---------------------------------------------------------------------------------------------- folders


def _visible(name: str) -> bool:
    return not name.startswith((".", "_"))


def video_folder(folder: str | os.PathLike[str], *, recursive: bool = True) -> EvalSet:
    """Every video in a folder: video files and sub-folders of frame images, sorted by relative path.

    A file counts when :func:`vidtok.io.read_video` reads it as a video (``VIDEO_EXTENSIONS``); a sub-folder
    that directly holds images (``IMAGE_EXTENSIONS``) is one video whose frames are those images. Hidden names
    (``.x``, ``_x``) are skipped. Keys are the POSIX relative paths, so the order and the cache keys do not
    depend on the file system.

    Args:
        folder: The folder.
        recursive: Look into sub-folders (default).

    Returns:
        The set (``source="folder"``).

    Raises:
        FileNotFoundError: No such folder.
        NotADirectoryError: ``folder`` is a file.
        ValueError: No video found, or images directly in ``folder`` (put each video's frames in a sub-folder).
    """
    root = Path(folder).expanduser().resolve()
    if not root.exists():
        raise FileNotFoundError(f"video folder {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder of videos")
    found: list[str] = []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if _visible(d)) if recursive else []
        here_path = Path(here)
        files = [f for f in files if _visible(f)]
        images = [f for f in files if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
        if images:
            if here_path == root:
                raise ValueError(
                    f"{root} holds images directly ({images[0]}, ...): put each video's frames in its own sub-folder"
                )
            found.append(here_path.relative_to(root).as_posix())
        found += [
            (here_path / f).relative_to(root).as_posix()
            for f in files
            if os.path.splitext(f)[1].lower() in VIDEO_EXTENSIONS
        ]
    if not found:
        raise ValueError(f"no videos in {root} (looked for {', '.join(VIDEO_EXTENSIONS)} files and frame folders)")
    items = tuple(EvalItem(key=rel, path=str(root / rel)) for rel in sorted(found))
    return EvalSet(items, "folder", str(root), None, {})


# ---------------------------------------------------------------------------------------------- MSR-VTT

_MSRVTT_ANNOTATIONS = (
    "annotation/MSR_VTT.json",
    "annotations/MSR_VTT.json",
    "MSR_VTT.json",
    "test_videodatainfo.json",
    "annotation/test_videodatainfo.json",
    "videodatainfo_2017.json",
    "annotation/videodatainfo_2017.json",
    "train_val_videodatainfo.json",
    "MSRVTT_data.json",
    "msrvtt_data/MSRVTT_data.json",
)
_MSRVTT_VIDEO_DIRS = ("videos/all", "videos/test", "videos", "TestVideo", "test_videos", "all")
_MSRVTT_TEST_LIST = "high-quality/structured-symlinks/test_list_full.txt"


def _msrvtt_root(root: Path) -> Path:
    if (root / "MSRVTT").is_dir():
        return root / "MSRVTT"
    return root


def _read_json(path: Path, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {path} is not JSON ({err})") from None


def _msrvtt_captions(data: Any, path: Path, root: Path) -> tuple[dict[str, list[str]], list[str], str]:
    """``{video_id: captions}``, the test video ids and how the split was decided, from either layout."""
    if not isinstance(data, dict) or not ({"sentences", "annotations"} & set(data)):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"MSR-VTT annotation {path}: expected 'sentences' (test_videodatainfo.json layout) or 'annotations' "
            f"(MSR_VTT.json layout), found {got}"
        )
    captions: dict[str, list[tuple[Any, str]]] = {}
    entries = data.get("sentences") if "sentences" in data else data["annotations"]
    id_field, order_field = ("video_id", "sen_id") if "sentences" in data else ("image_id", "id")
    if not isinstance(entries, list):
        raise ValueError(
            f"MSR-VTT annotation {path}: {'sentences' if 'sentences' in data else 'annotations'} must be a list"
        )
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or id_field not in entry or "caption" not in entry:
            raise ValueError(f"MSR-VTT annotation {path}: caption entry {i} lacks '{id_field}' or 'caption'")
        order = entry.get(order_field, i)
        captions.setdefault(str(entry[id_field]), []).append((order if isinstance(order, int) else i, entry["caption"]))
    by_video = {vid: [c.strip() for _, c in sorted(caps, key=lambda x: x[0])] for vid, caps in captions.items()}
    videos = data.get("videos")
    if isinstance(videos, list) and videos and all(isinstance(v, dict) and "split" in v for v in videos):
        test = [str(v["video_id"]) for v in videos if v["split"] == "test"]
        how = "split field == 'test'"
    elif (root / _MSRVTT_TEST_LIST).is_file():
        lines = (root / _MSRVTT_TEST_LIST).read_text(encoding="utf-8").split()
        test, how = [x.strip() for x in lines if x.strip()], _MSRVTT_TEST_LIST
    else:
        test = [f"video{i}" for i in _MSRVTT_TEST_IDS if f"video{i}" in by_video]
        how = "official id range video7010-video9999"
    test = sorted(set(test), key=lambda v: (int(re.sub(r"\D", "", v) or -1), v))
    return by_video, test, how


def _pick_caption(captions: list[str], video_id: str, seed: int) -> str:
    # Seeded by (seed, video id) alone: a video's caption does not change with which other videos are present.
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(video_id.encode("utf-8"))])
    return captions[int(rng.integers(len(captions)))]


def msrvtt_test(
    root: str | os.PathLike[str],
    *,
    caption_seed: int = 0,
    annotation: str | os.PathLike[str] | None = None,
    videos: str | os.PathLike[str] | None = None,
    missing: str = "error",
) -> EvalSet:
    """The MSR-VTT test split with one random caption per video (DiCoDe Tab. 2 zero-shot protocol).

    Args:
        root: The local ``MSRVTT`` folder, or the folder holding it.
        caption_seed: Seed of the caption draw; each video's caption depends only on ``(caption_seed,
            video_id)``.
        annotation: The annotation JSON (default: the first of ``annotation/MSR_VTT.json``,
            ``test_videodatainfo.json``, ``videodatainfo_2017.json``, ``train_val_videodatainfo.json``,
            ``MSRVTT_data.json`` found under ``root``).
        videos: Folder of ``<video_id>.mp4`` (default: ``videos/all``, ``videos/test``, ``videos`` or
            ``TestVideo`` under ``root``, the first holding a test video).
        missing: ``"error"`` (default) when a test video or its captions are missing, or ``"skip"`` to drop them
            (recorded as ``missing_videos`` in the set's info; the number is then not the full-test-set one).

    Returns:
        The set (``source="msrvtt"``, ``split="test"``), keys = video ids in id order; ``info`` holds
        ``annotation``, ``caption_seed``, ``captions_per_video=1``, ``test_split_from`` and ``num_test_videos``.

    Raises:
        FileNotFoundError: No annotation file or video folder (the places looked at are listed), or missing
            test videos with ``missing="error"`` (how many, and the first ones).
        ValueError: An annotation file of neither layout, or a bad ``missing``.
    """
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    base = _msrvtt_root(Path(root).expanduser().resolve())
    if not base.is_dir():
        raise FileNotFoundError(f"MSR-VTT folder {base} does not exist")
    if annotation is not None:
        ann = Path(annotation).expanduser().resolve()
        if not ann.is_file():
            raise FileNotFoundError(f"MSR-VTT annotation {ann} does not exist")
    else:
        found = [base / rel for rel in _MSRVTT_ANNOTATIONS if (base / rel).is_file()]
        if not found:
            raise FileNotFoundError(
                f"no MSR-VTT annotation under {base}: looked for {', '.join(_MSRVTT_ANNOTATIONS)} (pass annotation=)"
            )
        ann = found[0]
    by_video, test, how = _msrvtt_captions(_read_json(ann, "MSR-VTT annotation"), ann, base)
    if not test:
        raise ValueError(f"MSR-VTT annotation {ann}: no test videos (split decided by {how})")
    if videos is not None:
        video_dir = Path(videos).expanduser().resolve()
        if not video_dir.is_dir():
            raise FileNotFoundError(f"MSR-VTT video folder {video_dir} does not exist")
    else:
        candidates = [base / d for d in _MSRVTT_VIDEO_DIRS if (base / d).is_dir()]
        with_test = [d for d in candidates if any(_msrvtt_file(d, v) for v in test[:50])]
        if not with_test:
            raise FileNotFoundError(
                f"no MSR-VTT test videos under {base}: looked for <video_id>.mp4 in "
                f"{', '.join(_MSRVTT_VIDEO_DIRS)} (pass videos=)"
            )
        video_dir = with_test[0]
    items, absent = [], []
    for vid in test:
        file = _msrvtt_file(video_dir, vid)
        if file is None or not by_video.get(vid):
            absent.append(vid)
            continue
        items.append(EvalItem(key=vid, path=str(file), caption=_pick_caption(by_video[vid], vid, caption_seed)))
    if absent and missing == "error":
        raise FileNotFoundError(
            f"{len(absent)} of {len(test)} MSR-VTT test videos lack a file in {video_dir} or captions in {ann} "
            f"(first: {', '.join(absent[:5])}); pass missing='skip' (--missing skip) to evaluate without them"
        )
    info = {
        "annotation": ann.name,
        "caption_seed": int(caption_seed),
        "captions_per_video": 1,
        "test_split_from": how,
        "num_test_videos": len(test),
    }
    if absent:
        info["missing_videos"] = len(absent)
    return EvalSet(tuple(items), "msrvtt", str(base), "test", info)


def _msrvtt_file(folder: Path, video_id: str) -> Path | None:
    for ext in (".mp4", ".avi", ".webm", ".mkv"):
        if (folder / f"{video_id}{ext}").is_file():
            return folder / f"{video_id}{ext}"
    return None


# ---------------------------------------------------------------------------------------------- UCF-101

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d)")


def ucf101_prompt(class_name: str, template: str = "{}") -> str:
    """A UCF-101 class name as a prompt: CamelCase split into lower-case words, put into ``template``.

    >>> ucf101_prompt("PlayingDaf", "a person {}")
    'a person playing daf'
    """
    words = " ".join(_CAMEL.sub(" ", class_name.replace("_", " ")).split()).lower()
    return template.format(words)


def _ucf_dirs(root: Path, splits_dir: Path | None) -> tuple[Path, Path | None]:
    """The class-folder root (``UCF-101``) and the split-list folder (``ucfTrainTestlist``), if found."""
    video_root = root / "UCF-101" if (root / "UCF-101").is_dir() else root
    if splits_dir is not None:
        return video_root, splits_dir
    for cand in (root / "ucfTrainTestlist", video_root / "ucfTrainTestlist", root.parent / "ucfTrainTestlist"):
        if cand.is_dir():
            return video_root, cand
    return video_root, None


def ucf101(
    root: str | os.PathLike[str],
    *,
    split: str = "train",
    fold: int = 1,
    splits_dir: str | os.PathLike[str] | None = None,
    prompt_template: str = "{}",
    missing: str = "error",
) -> EvalSet:
    """UCF-101 videos of one official split, each with its class name as the prompt.

    Train split 01 (``trainlist01.txt``, 9,537 videos) is the default, the statistics most FVD work on UCF-101
    uses; ``split="test"`` reads ``testlist0N.txt`` and ``split="all"`` every video in the class folders (13,320;
    some papers' choice — the numbers do not compare with train-split ones).

    Args:
        root: Folder holding ``UCF-101/`` (and ``ucfTrainTestlist/``), or ``UCF-101`` itself.
        split: ``"train"``, ``"test"`` or ``"all"``.
        fold: Official split 1, 2 or 3.
        splits_dir: The ``ucfTrainTestlist`` folder (default: found beside or inside ``root``).
        prompt_template: ``str.format`` template of the prompt (``"{}"`` → ``"apply eye makeup"``).
        missing: ``"error"`` (default) when a listed video is absent, or ``"skip"`` (recorded).

    Returns:
        The set (``source="ucf101"``, ``split="train01"``/``"test01"``/``"all"``), keys = list paths
        (``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi``), labels = class names.

    Raises:
        FileNotFoundError: No class folders, no split list, or absent videos with ``missing="error"``.
        ValueError: Bad ``split``, ``fold``, ``missing`` or ``prompt_template``, or a malformed list line.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    if fold not in (1, 2, 3):
        raise ValueError(f"fold must be 1, 2 or 3 (the official UCF-101 splits), got {fold!r}")
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    if "{}" not in prompt_template:
        raise ValueError(f"prompt_template must contain '{{}}' for the class name, got {prompt_template!r}")
    base = Path(root).expanduser().resolve()
    if not base.is_dir():
        raise FileNotFoundError(f"UCF-101 folder {base} does not exist")
    video_root, lists = _ucf_dirs(base, Path(splits_dir).expanduser().resolve() if splits_dir else None)
    info: dict[str, Any] = {"prompt_template": prompt_template}
    if split == "all":
        rels = sorted(
            p.relative_to(video_root).as_posix() for p in video_root.glob("*/*.avi") if _visible(p.parent.name)
        )
        if not rels:
            raise FileNotFoundError(f"no UCF-101 videos (<Class>/*.avi) under {video_root}")
        name = "all"
    else:
        list_name = f"{split}list0{fold}.txt"
        if lists is None or not (lists / list_name).is_file():
            where = lists if lists is not None else f"{base}/ucfTrainTestlist"
            raise FileNotFoundError(
                f"UCF-101 split list {list_name} not found in {where}: unpack the official "
                "UCF101TrainTestSplits-RecognitionTask.zip beside UCF-101/ (or pass splits_dir=)"
            )
        rels = []
        for i, line in enumerate((lists / list_name).read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            rel = line.split()[0].replace("\\", "/")
            if "/" not in rel:
                raise ValueError(f"{lists / list_name} line {i}: expected <Class>/<file>.avi, got {line.strip()!r}")
            rels.append(rel)
        name = f"{split}0{fold}"
        info["split_list"] = list_name
    items, absent = [], []
    for rel in rels:
        file = video_root / rel
        if not file.is_file():
            absent.append(rel)
            continue
        label = rel.split("/")[0]
        items.append(EvalItem(key=rel, path=str(file), caption=ucf101_prompt(label, prompt_template), label=label))
    if absent and missing == "error":
        raise FileNotFoundError(
            f"{len(absent)} of {len(rels)} UCF-101 videos of {name} are missing under {video_root} "
            f"(first: {', '.join(absent[:3])}); pass missing='skip' to evaluate without them"
        )
    if absent:
        info["missing_videos"] = len(absent)
    if not items:
        raise FileNotFoundError(f"no UCF-101 videos of {name} found under {video_root}")
    return EvalSet(tuple(items), "ucf101", str(base), name, info)


def as_eval_set(value: Any, *, what: str) -> EvalSet:
    """An :class:`EvalSet` from a set, a folder (videos), a ``.csv`` file (captions) or a list of strings.

    A list of strings is a list of captions (``what="captions"``) or of video files (``what="real"``).
    """
    if isinstance(value, EvalSet):
        return value
    if isinstance(value, (str, os.PathLike)):
        path = Path(value).expanduser()
        if path.is_dir():
            return video_folder(path)
        if path.suffix.lower() == ".csv":
            return read_captions(path)
        if not path.exists():
            raise FileNotFoundError(f"{what}: {path} does not exist")
        raise ValueError(f"{what}: {path} is neither a folder of videos nor a .csv captions file")
    if isinstance(value, Sequence) and value and all(isinstance(v, str) for v in value):
        if what == "captions":
            items = tuple(EvalItem(key=f"item{i}", caption=v) for i, v in enumerate(value, start=1))
        else:
            paths = [str(Path(v).expanduser().resolve()) for v in value]
            items = tuple(EvalItem(key=p, path=p) for p in paths)  # keyed by path: stable cache keys
        return EvalSet(items, "list")
    raise TypeError(f"{what} must be an EvalSet, a folder, a .csv file or a non-empty list of strings, got {value!r}")


# ---------------------------------------------------------------------------------------------- clips


@dataclass(frozen=True)
class ClipSampler:
    """How a real video becomes an evaluated clip: frames, stride, start, resolution, resize mode.

    Args:
        frames: Frames per clip (16 for FVD-16).
        stride: Step between the frames taken (``stride=8`` with 16 frames: StyleGAN-V's "subsample8f").
        resolution: ``(height, width)`` the frames are resized to (the generated videos' size, so that real and
            generated clips reach the feature network at the same input resolution).
        resize: ``"squash"`` (scale each side to the target) or ``"center_crop"`` (scale to cover, keep the
            centred window).
        start: First frame (deterministic; default 0).

    Example:
        >>> ClipSampler(16, 2, (64, 64)).protocol()["clip_span"]
        31
    """

    frames: int = 16
    stride: int = 1
    resolution: tuple[int, int] = (224, 224)
    resize: str = "squash"
    start: int = 0

    def __post_init__(self) -> None:
        for name in ("frames", "stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 0:
            raise ValueError(f"start must be an int >= 0, got {self.start!r}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        res = self.resolution
        if isinstance(res, int):
            res = (res, res)
        try:
            h, w = (int(v) for v in res)
        except (TypeError, ValueError):
            raise ValueError(f"resolution must be (height, width) or an int, got {self.resolution!r}") from None
        if h < 1 or w < 1:
            raise ValueError(f"resolution must be positive, got {self.resolution!r}")
        object.__setattr__(self, "resolution", (h, w))

    @property
    def span(self) -> int:
        """Frames of the source a clip covers: ``(frames - 1) * stride + 1``."""
        return (self.frames - 1) * self.stride + 1

    def protocol(self) -> dict[str, Any]:
        """The clip fields of an eval card's protocol."""
        return {
            "num_frames": self.frames,
            "frame_stride": self.stride,
            "clip_start": self.start,
            "clip_span": self.span,
            "resolution": list(self.resolution),
            "resize": self.resize,
        }

    def resize_frames(self, frames: np.ndarray) -> np.ndarray:
        """``uint8`` frames ``(T, H, W, 3)`` resized to :attr:`resolution` by :attr:`resize`."""
        from vidtok.io import resize_frames

        if self.resize == "squash":
            return np.ascontiguousarray(resize_frames(frames, self.resolution))
        from vidtok.data.transforms import resize_center_crop

        return resize_center_crop(frames, self.resolution)

    def load(self, path: str | os.PathLike[str]) -> np.ndarray | None:
        """The clip of a video as ``uint8`` ``(frames, H, W, 3)``, or ``None`` when the video is too short.

        Raises:
            FileNotFoundError: No such file.
            VideoReadError: The file does not decode.
        """
        from vidtok.io import read_video

        try:
            video = read_video(path, start=self.start, num_frames=self.frames, stride=self.stride)
        except ValueError as err:
            if "past the end" in str(err):
                return None
            raise
        if video.shape[0] < self.frames:
            return None
        return self.resize_frames(video)
