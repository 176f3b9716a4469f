"""What every vidtok pipeline shares: loading saved pipelines whose components are vidtok classes.

diffusers' ``DiffusionPipeline.from_pretrained`` only loads a component from a module that is already
imported (it will not import a module just because ``model_index.json`` names it), so in a fresh
interpreter a saved vidtok pipeline would not load. [`VidtokPipeline`][vidtok.pipelines.pipeline_utils.VidtokPipeline]
imports the ``vidtok.*`` modules the index names — only those, never other packages — then defers to
diffusers.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

from diffusers import DiffusionPipeline

__all__ = ["VidtokPipeline", "import_vidtok_components"]


def import_vidtok_components(path_or_id: Any, revision: str | None = None) -> None:
    """Import the ``vidtok.*`` modules a saved pipeline's ``model_index.json`` names.

    Args:
        path_or_id: A pipeline folder or a hub id (its index is read from the local cache when
            ``HF_HUB_OFFLINE`` is set).
        revision: Hub revision.

    Raises:
        FileNotFoundError: A local-looking path that does not exist.
    """
    path = os.fspath(path_or_id)
    if os.path.isdir(path):
        index = os.path.join(path, "model_index.json")
    elif path.startswith((".", "/", "~")) or os.sep + os.sep in path:
        raise FileNotFoundError(f"no pipeline folder at {path}")
    else:
        from huggingface_hub import hf_hub_download

        try:  # a hub id: its index only
            index = hf_hub_download(path, "model_index.json", revision=revision)
        except Exception:  # noqa: BLE001  (diffusers reports the real loading error next)
            return
    if not os.path.isfile(index):
        return
    with open(index) as f:
        entries = json.load(f)
    for value in migrate_index(entries).values():
        if isinstance(value, list) and value and isinstance(value[0], str) and value[0].startswith("vidtok."):
            importlib.import_module(value[0])


#: Components renamed since pipelines were first saved: old ``model_index.json`` key -> the current one.
LEGACY_COMPONENTS = {"video_lm": "model"}


def _local_folder(path_or_id: Any, revision: str | None) -> str | None:
    path = os.fspath(path_or_id)
    if os.path.isdir(path):
        return path
    try:  # a hub id: its files from the cache (or the hub, when online)
        from huggingface_hub import snapshot_download

        return snapshot_download(path, revision=revision)
    except Exception:  # noqa: BLE001  (diffusers reports the real loading error next)
        return None


def migrate_index(index: dict[str, Any]) -> dict[str, Any]:
    """An older ``model_index.json`` as the current pipelines read it (the folder on disk is not changed).

    * a component renamed since (``video_lm`` → ``model``, :data:`LEGACY_COMPONENTS`) is listed under its new
      name (its weights stay in the old sub-folder; :func:`legacy_components` loads them);
    * a ``backbone`` saved as a bare transformers model (``["transformers", "GPT2Model"]``) is read through
      :class:`~vidtok.backbones.hf_causal_lm.HFCausalLM` — same folder layout — which adapts it to the
      backbone contract and loads it strictly (transformers alone only warns about missing weights).
    """
    index = dict(index)
    for old, new in LEGACY_COMPONENTS.items():
        if old in index and new not in index:
            index[new] = index.pop(old)
    entry = index.get("backbone")
    if isinstance(entry, list) and entry and entry[0] == "transformers":
        index["backbone"] = ["vidtok.backbones.hf_causal_lm", "HFCausalLM"]
    return index


def legacy_components(path_or_id: Any, passed: dict[str, Any], **load_kwargs: Any) -> dict[str, Any]:
    """Load the components an older folder keeps under their old sub-folder name (see :func:`migrate_index`).

    Returns:
        Current component name -> loaded object, for the renamed components the caller did not pass.
    """
    folder = _local_folder(path_or_id, load_kwargs.get("revision"))
    index_path = os.path.join(folder, "model_index.json") if folder else None
    if index_path is None or not os.path.isfile(index_path):
        return {}
    with open(index_path) as f:
        index = json.load(f)
    dtype = load_kwargs.get("torch_dtype")
    out: dict[str, Any] = {}
    for old, new in LEGACY_COMPONENTS.items():
        entry = index.get(old)
        if new not in index and new not in passed and isinstance(entry, list) and entry and entry[0]:
            cls = getattr(importlib.import_module(entry[0]), entry[1])
            out[new] = cls.from_pretrained(os.path.join(folder, old), **({"torch_dtype": dtype} if dtype else {}))
    return out


class VidtokPipeline(DiffusionPipeline):
    """Base of vidtok's diffusers pipelines: ``from_pretrained`` works in a fresh interpreter and on old folders."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> Any:
        """Load a saved pipeline from a local folder or a hub id (diffusers' ``from_pretrained``).

        The vidtok modules the folder's ``model_index.json`` names are imported first; components saved under
        an earlier name or layout are loaded by :func:`legacy_components`, so old folders need no re-export.

        Raises:
            FileNotFoundError: A local path that does not exist.
        """
        import_vidtok_components(pretrained_model_name_or_path, kwargs.get("revision"))
        kwargs.update(legacy_components(pretrained_model_name_or_path, kwargs, **kwargs))
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def load_config(cls, *args: Any, **kwargs: Any) -> Any:
        """Diffusers' ``load_config``, with an older pipeline index migrated (:func:`migrate_index`)."""
        out = super().load_config(*args, **kwargs)
        if isinstance(out, tuple):
            return (migrate_index(out[0]), *out[1:])
        return migrate_index(out)
