"""Backbones, one per file, each registered in :data:`BACKBONES` under its file's name."""

from vidtok.backbones import block_causal, hf_causal_lm  # noqa: F401  (registers)
from vidtok.backbones.base import BACKBONES

__all__ = ["BACKBONES"]
