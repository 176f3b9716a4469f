"""Recipes: registered factory functions that describe complete models."""

from vidtok.recipes.base import RECIPES

__all__ = ["RECIPES"]
