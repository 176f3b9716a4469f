"""Video tokenizers, one per file, each registered in :data:`TOKENIZERS` under its file's name."""

from vidtok.tokenizers.base import TOKENIZERS, VideoTokenizer, check_video

__all__ = ["TOKENIZERS", "VideoTokenizer", "check_video"]
