"""Recipes: registered factory functions that describe complete models (``dicode_*``, ``hitvideo_*``, ``nova_*``)."""

from vidtok.recipes import dicode, hitvideo, nova  # noqa: F401  (registers)
from vidtok.recipes.base import RECIPES, ComponentSpec, RecipeConfig, build_components

__all__ = ["RECIPES", "ComponentSpec", "RecipeConfig", "build_components"]
