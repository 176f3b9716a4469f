"""Checkpoint folders: atomic writes, ``latest`` resolution, rotation, RNG state and model weights.

A checkpoint is a folder ``<output_dir>/checkpoints/step-00001000/``::

    model/                 the model's own save_pretrained folder (config.json + safetensors)
    ema/                   the EMA weights, same format (if EMA is on)
    optimizer.pt           optimizer state(s) (torch.save; read back with weights_only=True)
    scheduler.pt           learning-rate scheduler state(s)
    rng/rank-00000.pt      python / numpy / torch / CUDA RNG states, one file per process
    accelerate/            accelerate.save_state output, only under FSDP / DeepSpeed (sharded states)
    trainer_state.json     step, stage, samples seen, world size, config
    COMPLETE               marker, written last: a JSON manifest of every other file (size and SHA-256)

Everything is written into a hidden sibling ``.tmp-step-…``, flushed to disk, and renamed into place only when
complete, then the ``latest`` pointer file is replaced atomically. A crash at any moment therefore leaves the
previous checkpoint and the pointer intact.

**Complete and intact.** A folder counts as complete
([`is_complete`][vidtok.training.checkpoint.is_complete]) when its ``COMPLETE`` manifest is readable and every
file it lists is there with the recorded size (a folder holding only the marker is not complete). Resuming
([`resolve_checkpoint`][vidtok.training.checkpoint.resolve_checkpoint]) also checks the SHA-256 digests (unless
``VIDTOK_VERIFY_WEIGHTS=0``), ``trainer_state.json``, and that every ``.pt`` and safetensors file opens, with
[`verify_checkpoint`][vidtok.training.checkpoint.verify_checkpoint]. A damaged checkpoint is a
[`CheckpointError`][vidtok.training.checkpoint.CheckpointError] naming the file, or, with ``fallback=True``
(``TrainingConfig.resume_fallback``), is skipped with a logged warning in favour of the newest intact one before
it. Checkpoints written before the manifest existed (a marker holding only the step) are checked for
``trainer_state.json`` and ``model/`` and the readability of their files.

Nothing is ever unpickled: every ``torch.load`` uses ``weights_only=True``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import pickle
import random
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidtok.modeling_utils import LoadingError, check_safetensors_files, verify_weights_enabled

__all__ = [
    "COMPLETE_MARKER",
    "CheckpointError",
    "begin_checkpoint",
    "capture_rng_state",
    "checkpoint_name",
    "checkpoint_root",
    "commit_checkpoint",
    "is_complete",
    "latest_checkpoint",
    "list_checkpoints",
    "load_torch",
    "model_format",
    "read_model_state",
    "read_trainer_state",
    "remove_stale",
    "resolve_checkpoint",
    "restore_rng_state",
    "rotate_checkpoints",
    "save_model",
    "save_torch",
    "verify_checkpoint",
]

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE"
"""Name of the marker file written last into a finished checkpoint."""

LATEST_POINTER = "latest"
STATE_FILE = "trainer_state.json"
MANIFEST_FORMAT = "vidtok.checkpoint"
_NAME = re.compile(r"^step-(\d+)$")
_FALLBACK_HINT = (
    "resume from an earlier checkpoint folder (resume_from=PATH), or set trainer.resume_fallback=true to skip "
    "damaged checkpoints and resume from the newest intact one"
)


class CheckpointError(LoadingError):
    """A checkpoint folder is damaged or incomplete (a missing, truncated or corrupt file); the message names it."""


# ----------------------------------------------------------------------------------------------------------
# locating checkpoints


def checkpoint_root(output_dir: str | os.PathLike[str]) -> Path:
    """The folder holding a run's checkpoints (``<output_dir>/checkpoints``)."""
    return Path(output_dir) / "checkpoints"


def checkpoint_name(step: int) -> str:
    """Folder name of the checkpoint at ``step``."""
    return f"step-{step:08d}"


def _marker(path: Path) -> dict[str, Any] | None:
    """The parsed ``COMPLETE`` manifest; ``None`` for an old-style marker (the step only).

    Raises:
        CheckpointError: The marker is missing, unreadable, or JSON of the wrong form.
    """
    marker = path / COMPLETE_MARKER
    try:
        text = marker.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{marker}: completion marker is missing (the checkpoint was not finished)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{marker}: unreadable completion marker ({err}); the checkpoint is damaged") from err
    if re.fullmatch(r"\s*\d+\s*", text):
        return None  # written before the manifest existed
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{marker}: completion marker is not JSON ({err}); the checkpoint is damaged") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("files"), dict):
        raise CheckpointError(
            f"{marker}: not a vidtok checkpoint manifest (needs 'format': {MANIFEST_FORMAT!r} and a 'files' object); "
            "the checkpoint is damaged"
        )
    return data


def _listed_file(folder: Path, name: Any, marker: Path) -> Path:
    """The file a manifest entry names, refusing names that leave the checkpoint folder."""
    if not isinstance(name, str) or not name or name.startswith(("/", "\\")) or ".." in Path(name).parts:
        raise CheckpointError(f"{marker}: file entry {name!r} is not a relative path inside the checkpoint")
    return folder / name


def _check_listed(folder: Path, manifest: dict[str, Any], digests: bool) -> None:
    marker = folder / COMPLETE_MARKER
    for name, entry in sorted(manifest["files"].items()):
        path = _listed_file(folder, name, marker)
        if not isinstance(entry, dict) or not isinstance(entry.get("size"), int):
            raise CheckpointError(f"{marker}: malformed entry for {name!r} (needs an integer 'size')")
        if not path.is_file():
            raise CheckpointError(f"{path}: missing (listed in {COMPLETE_MARKER}); the checkpoint is damaged")
        size = path.stat().st_size
        if size != entry["size"]:
            raise CheckpointError(
                f"{path}: {size} bytes, {entry['size']} were written (truncated or replaced); the checkpoint is damaged"
            )
        if digests and isinstance(entry.get("sha256"), str) and _sha256(path) != entry["sha256"]:
            raise CheckpointError(
                f"{path}: SHA-256 differs from the one recorded when it was written (corrupt); the checkpoint is "
                "damaged (VIDTOK_VERIFY_WEIGHTS=0 skips the digest check)"
            )


def is_complete(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a finished checkpoint.

    Its ``COMPLETE`` manifest must be readable and list files that all exist with their recorded sizes (old-style
    markers: ``trainer_state.json`` and ``model/`` must exist). Only file sizes are compared (no hashing);
    [`verify_checkpoint`][vidtok.training.checkpoint.verify_checkpoint] checks everything.
    """
    path = Path(path)
    try:
        manifest = _marker(path)
        if manifest is None:
            return (path / STATE_FILE).is_file() and (path / "model").is_dir()
        _check_listed(path, manifest, digests=False)
    except CheckpointError:
        return False
    return True


def _marked(output_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """Checkpoint folders of a run that carry a marker (complete or damaged), oldest step first."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and (p / COMPLETE_MARKER).is_file()
    ]
    return sorted(found)


def list_checkpoints(output_dir: str | os.PathLike[str]) -> list[Path]:
    """Complete checkpoints of a run (see [`is_complete`][vidtok.training.checkpoint.is_complete]), oldest first."""
    return [p for _, p in _marked(output_dir) if is_complete(p)]


def _pointed(output_dir: str | os.PathLike[str]) -> Path | None:
    """The checkpoint folder named by the run's ``latest`` pointer, if it names a marked one."""
    root = checkpoint_root(output_dir)
    pointer = root / LATEST_POINTER
    try:
        name = pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else ""
    except (OSError, UnicodeDecodeError) as err:
        logger.warning("ignoring the unreadable checkpoint pointer %s: %s", pointer, err)
        return None
    if _NAME.match(name) and (root / name / COMPLETE_MARKER).is_file():
        return root / name
    return None


def latest_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The checkpoint named by the run's ``latest`` pointer, if complete; else the newest complete one; else None."""
    pointed = _pointed(output_dir)
    if pointed is not None and is_complete(pointed):
        return pointed
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def _candidates(output_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Marked checkpoints newest first, starting at the one the ``latest`` pointer names.

    A run resumed from an older checkpoint moves the pointer back: newer folders of the abandoned branch are not
    candidates then.
    """
    marked = _marked(output_dir)
    pointed = _pointed(output_dir)
    if pointed is not None:
        step = int(_NAME.match(pointed.name).group(1))  # type: ignore[union-attr]
        yield pointed
        yield from (p for s, p in reversed(marked) if s < step)
    else:
        yield from (p for _, p in reversed(marked))


def verify_checkpoint(path: str | os.PathLike[str], *, digests: bool | None = None) -> dict[str, Any]:
    """Check that a checkpoint folder is complete and intact, before anything is loaded from it.

    Checks the ``COMPLETE`` manifest and every file it lists (present, recorded size, SHA-256), that
    ``trainer_state.json`` is a JSON object with an integer ``step``, that ``model/`` exists, that every ``.pt``
    file is a readable ``torch.save`` archive and that every safetensors header opens. Old-style checkpoints
    (no manifest) get all but the size and digest checks.

    Args:
        path: The checkpoint folder.
        digests: Compare SHA-256 digests (``None``: unless ``VIDTOK_VERIFY_WEIGHTS=0``).

    Returns:
        The trainer state.

    Raises:
        CheckpointError: Naming the first file found missing, truncated, corrupt or malformed.
    """
    path = Path(path)
    manifest = _marker(path)
    if manifest is not None:
        _check_listed(path, manifest, verify_weights_enabled(digests))
    state = read_trainer_state(path)
    if not (path / "model").is_dir():
        raise CheckpointError(f"{path / 'model'}: model folder is missing; the checkpoint is damaged")
    for pt in sorted([*path.glob("*.pt"), *path.glob("rng/*.pt")]):
        try:
            with zipfile.ZipFile(pt):  # reads the archive's directory at its end: a cut file fails here
                pass
        except (OSError, zipfile.BadZipFile) as err:
            raise CheckpointError(f"{pt}: not a readable torch.save file ({err}); the checkpoint is damaged") from err
    try:
        check_safetensors_files(sorted([*path.glob("model/*.safetensors"), *path.glob("ema/*.safetensors")]))
    except LoadingError as err:
        raise CheckpointError(f"{err}; the checkpoint is damaged") from err
    return state


def resolve_checkpoint(
    spec: str | os.PathLike[str] | None,
    output_dir: str | os.PathLike[str],
    *,
    fallback: bool = False,
    digests: bool | None = None,
) -> Path | None:
    """Turn a ``resume_from`` value into a verified checkpoint folder.

    Args:
        spec: ``None`` (no resume), ``"latest"`` (the run's latest checkpoint, or None if there is none yet: a
            fresh start), a checkpoint folder, or a run folder (its latest checkpoint).
        output_dir: The run folder that ``"latest"`` refers to.
        fallback: For ``"latest"`` and run folders: skip damaged checkpoints (each is logged as a warning naming
            it and the reason) and return the newest intact one. Without it, a damaged latest checkpoint raises.
            A checkpoint folder named explicitly is never replaced by another.
        digests: Compare SHA-256 digests (``None``: unless ``VIDTOK_VERIFY_WEIGHTS=0``).

    Raises:
        FileNotFoundError: If a given folder does not exist, or holds no checkpoint.
        CheckpointError: If the checkpoint is damaged (see
            [`verify_checkpoint`][vidtok.training.checkpoint.verify_checkpoint]), or, with ``fallback``, every one is.
    """
    if spec is None:
        return None
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"resume_from: expected 'latest' or a folder path, got {type(spec).__name__} {spec!r}")
    if os.fspath(spec) == "latest":
        return _newest_intact(output_dir, fallback, digests)
    path = Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(f"resume_from: no such checkpoint folder {os.fspath(spec)!r}")
    if (path / COMPLETE_MARKER).is_file():
        verify_checkpoint(path, digests=digests)
        return path
    found = _newest_intact(path, fallback, digests)
    if found is None:
        raise FileNotFoundError(
            f"resume_from: {os.fspath(spec)!r} is neither a complete checkpoint (no {COMPLETE_MARKER} marker) nor a "
            "run folder with one"
        )
    return found


def _newest_intact(output_dir: str | os.PathLike[str], fallback: bool, digests: bool | None) -> Path | None:
    skipped: list[str] = []
    for path in _candidates(output_dir):
        try:
            verify_checkpoint(path, digests=digests)
        except CheckpointError as err:
            if not fallback:
                raise CheckpointError(f"{err}. To continue, {_FALLBACK_HINT}") from err
            logger.warning("resume: skipping damaged checkpoint %s: %s", path, err)
            skipped.append(f"{path.name}: {err}")
            continue
        if skipped:
            logger.warning("resume: falling back to %s (skipped %d damaged newer checkpoint(s))", path, len(skipped))
        return path
    if skipped:
        raise CheckpointError(
            f"resume: no intact checkpoint in {checkpoint_root(output_dir)}; skipped " + "; ".join(skipped)
        )
    return None


def read_trainer_state(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``trainer_state.json`` of a checkpoint.

    Raises:
        CheckpointError: The file is missing, not a JSON object, or has no integer ``step`` (the message names it).
    """
    from vidtok.modeling_utils import read_json_object

    path = Path(checkpoint) / STATE_FILE
    try:
        state = read_json_object(path, "trainer state")
    except LoadingError as err:
        raise CheckpointError(f"{err}; the checkpoint is damaged") from err
    step = state.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path}: 'step' must be an integer >= 0, got {step!r}; the checkpoint is damaged")
    return state


# ----------------------------------------------------------------------------------------------------------
# writing


def _sha256(path: Path, sync: bool = False) -> str:
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        if sync:
            os.fsync(f.fileno())
    return digest


def _fsync_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def begin_checkpoint(output_dir: str | os.PathLike[str], step: int) -> Path:
    """Create (empty) the temporary folder a checkpoint is written into; main process only."""
    tmp = checkpoint_root(output_dir) / f".tmp-{checkpoint_name(step)}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _manifest(folder: Path, step: int, digests: bool) -> dict[str, Any]:
    """Size (and SHA-256) of every file under ``folder``; each is flushed to disk while it is read."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name == COMPLETE_MARKER:
            continue
        entry: dict[str, Any] = {"size": path.stat().st_size}
        if digests:
            entry["sha256"] = _sha256(path, sync=True)
        else:
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        files[name] = entry
    return {"format": MANIFEST_FORMAT, "step": step, "algorithm": "sha256" if digests else None, "files": files}


def commit_checkpoint(tmp: Path, state: dict[str, Any], *, digests: bool = True) -> Path:
    """Finish a checkpoint: write its state and manifest marker, rename it into place, update ``latest``; main only.

    Args:
        tmp: The folder from [`begin_checkpoint`][vidtok.training.checkpoint.begin_checkpoint], with every file
            written.
        state: The trainer state (``trainer_state.json``; needs ``"step"``).
        digests: Record the SHA-256 of every file in the marker (sizes are always recorded).

    Returns:
        The final checkpoint folder.
    """
    _fsync_write(tmp / STATE_FILE, json.dumps(state, indent=2, sort_keys=True) + "\n")
    manifest = _manifest(tmp, int(state["step"]), digests)
    _fsync_write(tmp / COMPLETE_MARKER, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    root = tmp.parent
    final = root / tmp.name.removeprefix(".tmp-")
    aside = None
    if final.exists():  # the same step saved again (a resumed run re-reaching it): move the old one aside first
        aside = root / f".old-{final.name}"
        if aside.exists():
            shutil.rmtree(aside)
        os.replace(final, aside)
    os.replace(tmp, final)
    _fsync_dir(root)
    _fsync_write(root / LATEST_POINTER, final.name + "\n")
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return final


def rotate_checkpoints(output_dir: str | os.PathLike[str], keep_last: int | None, protect: Path) -> list[Path]:
    """Delete the oldest checkpoints beyond ``keep_last`` (never ``protect``); main process only.

    Damaged checkpoints (a marker but missing or cut files) are rotated like complete ones.

    Returns:
        The deleted folders.
    """
    if keep_last is None:
        return []
    found = [p for _, p in _marked(output_dir) if p.resolve() != protect.resolve()]
    doomed = found[: max(0, len(found) - (keep_last - 1))]
    for path in doomed:
        # Remove the marker first: a crash mid-delete must not leave a "complete" but partial folder.
        (path / COMPLETE_MARKER).unlink(missing_ok=True)
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def remove_stale(output_dir: str | os.PathLike[str]) -> None:
    """Delete leftovers of interrupted saves (``.tmp-*``/``.old-*`` folders); main process only."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return
    for path in root.iterdir():
        if path.is_dir() and path.name.startswith((".tmp-step-", ".old-step-")):
            shutil.rmtree(path, ignore_errors=True)


def save_torch(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` of tensors and plain containers (what ``weights_only=True`` can read back)."""
    torch.save(obj, path)


def load_torch(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``: never unpickles arbitrary objects.

    Raises:
        CheckpointError: The file is missing, empty, truncated, corrupt, or holds objects other than tensors and
            plain containers (the message names it).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: missing from the checkpoint; the checkpoint is damaged")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused to load ({err}); only tensors and plain containers are read from checkpoints"
        ) from err
    except (OSError, EOFError, RuntimeError, ValueError, zipfile.BadZipFile) as err:
        message = f"{path}: cannot be read ({type(err).__name__}: {err}); the checkpoint is damaged"
        raise CheckpointError(message) from err


# ----------------------------------------------------------------------------------------------------------
# RNG state


def capture_rng_state() -> dict[str, Any]:
    """This process's python, numpy, torch (and CUDA) RNG states as tensors and plain values."""
    version, py_state, gauss = random.getstate()
    kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore the states captured by [`capture_rng_state`][vidtok.training.checkpoint.capture_rng_state]."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state(
        (nps["kind"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"], nps["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------------------
# model weights


def model_format(model: nn.Module) -> str:
    """How a model is checkpointed: ``"diffusers"``, ``"transformers"`` (their save_pretrained) or ``"safetensors"``."""
    try:
        from diffusers import ModelMixin

        if isinstance(model, ModelMixin):
            return "diffusers"
    except ImportError:  # pragma: no cover - diffusers is a dependency
        pass
    try:
        from transformers import PreTrainedModel

        if isinstance(model, PreTrainedModel):
            return "transformers"
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    return "safetensors"


def save_model(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Write ``model`` to the folder ``path`` in its own ``save_pretrained`` format.

    diffusers models (vidtok ``Component``s) and transformers models use their ``save_pretrained``; any other
    module is written as ``model.safetensors`` (``safetensors.torch.save_model``, which handles tied weights).
    """
    kind = model_format(model)
    if kind == "safetensors":
        from safetensors.torch import save_model as save_safetensors

        os.makedirs(path, exist_ok=True)
        save_safetensors(model, os.path.join(path, "model.safetensors"))
    else:
        model.save_pretrained(os.fspath(path))


def read_model_state(model: nn.Module, path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The full state dict stored by [`save_model`][vidtok.training.checkpoint.save_model] for ``model``'s class.

    The folder is loaded into a separate instance of the class (strictly: missing, unexpected or
    shape-mismatched keys raise), whose ``state_dict()`` is returned; ``model`` is not modified.

    Raises:
        vidtok.LoadingError: If the stored weights do not match the model.
    """
    kind = model_format(model)
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise CheckpointError(f"{path}: model folder is missing; the checkpoint is damaged")
    if kind == "safetensors":
        from safetensors.torch import load_model

        file = os.path.join(path, "model.safetensors")
        if not os.path.isfile(file):
            raise CheckpointError(f"{file}: missing; the checkpoint is damaged")
        check_safetensors_files([file])  # a cut file is a LoadingError naming it, not a safetensors error
        twin = copy.deepcopy(model)
        try:
            load_model(twin, file, strict=True)
        except RuntimeError as err:  # safetensors names the missing / unexpected keys
            raise LoadingError(f"{path} does not match {type(model).__name__}: {err}") from err
        return twin.state_dict()
    twin, info = type(model).from_pretrained(path, output_loading_info=True)
    problems = {k: info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")}
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        raise LoadingError(f"{path} does not match {type(model).__name__}: {problems}")
    return twin.state_dict()
