"""AR heads, one per file, each registered in :data:`HEADS` under its file's name."""

from vidtok.heads.base import HEADS, TokenHead

__all__ = ["HEADS", "TokenHead"]
