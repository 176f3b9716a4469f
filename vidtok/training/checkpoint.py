"""Checkpoint folders: atomic writes, ``latest`` resolution, rotation, RNG state and model weights.

A checkpoint is a folder ``<output_dir>/checkpoints/step-00001000/``::

    model/                 the model's own save_pretrained folder (config.json + safetensors)
    ema/                   the EMA weights, same format (if EMA is on)
    optimizer.pt           optimizer state(s) (torch.save; read back with weights_only=True)
    scheduler.pt           learning-rate scheduler state(s)
    rng/rank-00000.pt      python / numpy / torch / CUDA RNG states, one file per process
    accelerate/            accelerate.save_state output, only under FSDP / DeepSpeed (sharded states)
    trainer_state.json     step, stage, samples seen, world size, config
    COMPLETE               marker, written last

Everything is written into a hidden sibling ``.tmp-step-…`` and renamed into place only when complete, then the
``latest`` pointer file is replaced atomically. A crash at any moment therefore leaves the previous checkpoint
and the pointer intact; [`latest_checkpoint`][vidtok.training.checkpoint.latest_checkpoint] only ever returns
folders that carry the ``COMPLETE`` marker. Nothing is ever unpickled: every ``torch.load`` uses
``weights_only=True``.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "COMPLETE_MARKER",
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
]

COMPLETE_MARKER = "COMPLETE"
"""Name of the marker file written last into a finished checkpoint."""

LATEST_POINTER = "latest"
STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^step-(\d+)$")


# ----------------------------------------------------------------------------------------------------------
# locating checkpoints


def checkpoint_root(output_dir: str | os.PathLike[str]) -> Path:
    """The folder holding a run's checkpoints (``<output_dir>/checkpoints``)."""
    return Path(output_dir) / "checkpoints"


def checkpoint_name(step: int) -> str:
    """Folder name of the checkpoint at ``step``."""
    return f"step-{step:08d}"


def is_complete(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a checkpoint folder whose write finished (it has the ``COMPLETE`` marker)."""
    return (Path(path) / COMPLETE_MARKER).is_file()


def list_checkpoints(output_dir: str | os.PathLike[str]) -> list[Path]:
    """Complete checkpoints of a run, oldest step first."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and is_complete(p)]
    return [p for _, p in sorted(found)]


def latest_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The checkpoint named by the run's ``latest`` pointer, if complete; else the newest complete one; else None."""
    root = checkpoint_root(output_dir)
    pointer = root / LATEST_POINTER
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        if _NAME.match(name) and is_complete(root / name):
            return root / name
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def resolve_checkpoint(spec: str | os.PathLike[str] | None, output_dir: str | os.PathLike[str]) -> Path | None:
    """Turn a ``resume_from`` value into a checkpoint folder.

    Args:
        spec: ``None`` (no resume), ``"latest"`` (the run's latest complete checkpoint, or None if there is
            none yet: a fresh start), a checkpoint folder, or a run folder (its latest checkpoint).
        output_dir: The run folder that ``"latest"`` refers to.

    Raises:
        FileNotFoundError: If a given folder does not exist, or holds no complete checkpoint.
    """
    if spec is None:
        return None
    if os.fspath(spec) == "latest":
        return latest_checkpoint(output_dir)
    path = Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(f"resume_from: no such checkpoint folder {os.fspath(spec)!r}")
    if is_complete(path):
        return path
    found = latest_checkpoint(path)
    if found is None:
        raise FileNotFoundError(
            f"resume_from: {os.fspath(spec)!r} is neither a complete checkpoint (no {COMPLETE_MARKER} marker) nor a "
            "run folder with one"
        )
    return found


def read_trainer_state(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``trainer_state.json`` of a checkpoint."""
    with open(Path(checkpoint) / STATE_FILE, encoding="utf-8") as f:
        return json.load(f)


# ----------------------------------------------------------------------------------------------------------
# writing


def _fsync_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def begin_checkpoint(output_dir: str | os.PathLike[str], step: int) -> Path:
    """Create (empty) the temporary folder a checkpoint is written into; main process only."""
    tmp = checkpoint_root(output_dir) / f".tmp-{checkpoint_name(step)}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def commit_checkpoint(tmp: Path, state: dict[str, Any]) -> Path:
    """Finish a checkpoint: write its state and marker, rename it into place, update ``latest``; main only.

    Returns:
        The final checkpoint folder.
    """
    _fsync_write(tmp / STATE_FILE, json.dumps(state, indent=2, sort_keys=True) + "\n")
    _fsync_write(tmp / COMPLETE_MARKER, f"{state['step']}\n")
    root = tmp.parent
    final = root / tmp.name.removeprefix(".tmp-")
    aside = None
    if final.exists():  # the same step saved again (a resumed run re-reaching it): move the old one aside first
        aside = root / f".old-{final.name}"
        if aside.exists():
            shutil.rmtree(aside)
        os.replace(final, aside)
    os.replace(tmp, final)
    _fsync_write(root / LATEST_POINTER, final.name + "\n")
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return final


def rotate_checkpoints(output_dir: str | os.PathLike[str], keep_last: int | None, protect: Path) -> list[Path]:
    """Delete the oldest complete checkpoints beyond ``keep_last`` (never ``protect``); main process only.

    Returns:
        The deleted folders.
    """
    if keep_last is None:
        return []
    found = [p for p in list_checkpoints(output_dir) if p.resolve() != protect.resolve()]
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
    """``torch.load(path, map_location="cpu", weights_only=True)``: never unpickles arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)


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
    from vidtok.modeling_utils import LoadingError

    kind = model_format(model)
    path = os.fspath(path)
    if kind == "safetensors":
        from safetensors.torch import load_model

        twin = copy.deepcopy(model)
        try:
            load_model(twin, os.path.join(path, "model.safetensors"), strict=True)
        except RuntimeError as err:  # safetensors names the missing / unexpected keys
            raise LoadingError(f"{path} does not match {type(model).__name__}: {err}") from err
        return twin.state_dict()
    twin, info = type(model).from_pretrained(path, output_loading_info=True)
    problems = {k: info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")}
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        raise LoadingError(f"{path} does not match {type(model).__name__}: {problems}")
    return twin.state_dict()
