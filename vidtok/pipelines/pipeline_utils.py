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
    for value in entries.values():
        if isinstance(value, list) and value and isinstance(value[0], str) and value[0].startswith("vidtok."):
            importlib.import_module(value[0])


class VidtokPipeline(DiffusionPipeline):
    """Base of vidtok's diffusers pipelines: ``from_pretrained`` works in a fresh interpreter."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> Any:
        """Load a saved pipeline from a local folder or a hub id (diffusers' ``from_pretrained``).

        The vidtok modules the folder's ``model_index.json`` names are imported first.

        Raises:
            FileNotFoundError: A local path that does not exist.
        """
        import_vidtok_components(pretrained_model_name_or_path, kwargs.get("revision"))
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
