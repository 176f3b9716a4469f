"""Checkpoint converters: official releases of the papers' models into vidtok folders.

* :func:`~vidtok.convert.dicode.convert_dicode` (``vidtok convert dicode``): DiCoDe's released tokenizer and
  language-model files (Hugging Face ``liyz/DiCoDe``) into a :class:`~vidtok.pipelines.TextToVideo` folder.
* :func:`~vidtok.convert.nova.convert_nova_transformer`: a released NOVA transformer (``BAAI/nova-*``,
  ``transformer/`` folder) into the ``nova`` model, ``block_causal`` backbone and ``diffusion_mlp`` head;
  :func:`~vidtok.convert.nova.convert_nova_head` for its diffusion head alone.

Converters read checkpoints with ``torch.load(weights_only=True)`` (no object is ever unpickled), map every key
explicitly, and write nothing unless every key of the source is used or dropped for a stated reason and every
weight of the target is filled with the right shape.
"""

from __future__ import annotations

__all__ = [
    "ConversionError",
    "NOVAConversion",
    "convert_dicode",
    "convert_nova_head",
    "convert_nova_transformer",
    "nova_head_config",
    "nova_transformer_configs",
]

_MODULES = {name: "nova" for name in __all__ if "nova" in name.lower()}


def __getattr__(name: str):
    # Lazy: importing the package must not import torch.
    if name in __all__:
        import importlib

        return getattr(importlib.import_module(f"vidtok.convert.{_MODULES.get(name, 'dicode')}"), name)
    raise AttributeError(f"module 'vidtok.convert' has no attribute {name!r}")
