"""Checkpoint converters: official releases of the papers' models into vidtok folders.

* :func:`~vidtok.convert.dicode.convert_dicode` (``vidtok convert dicode``): DiCoDe's released tokenizer and
  language-model files (Hugging Face ``liyz/DiCoDe``) into a :class:`~vidtok.pipelines.TextToVideo` folder.

Converters read checkpoints with ``torch.load(weights_only=True)`` (no object is ever unpickled), map every key
explicitly, and write nothing unless every key of the source is used or dropped for a stated reason and every
weight of the target is filled with the right shape.
"""

from __future__ import annotations

__all__ = ["ConversionError", "convert_dicode"]


def __getattr__(name: str):
    # Lazy: importing the package must not import torch.
    if name in __all__:
        from vidtok.convert import dicode

        return getattr(dicode, name)
    raise AttributeError(f"module 'vidtok.convert' has no attribute {name!r}")
