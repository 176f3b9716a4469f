"""The ``RECIPES`` registry of factory functions.

A recipe is a function, registered timm-style under a name such as ``dicode_tiny``, that returns a
complete, JSON-serializable description of a model (tokenizer, backbone, head and their kwargs) with
keyword overrides for ablations: ``RECIPES.create("dicode_tiny", head="gaussian")``.
"""

from __future__ import annotations

from vidtok.registry import Registry

__all__ = ["RECIPES"]

RECIPES: Registry = Registry("recipe", package="vidtok.recipes", callable_only=True)
