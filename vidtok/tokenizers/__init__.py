"""Video tokenizers, one per file, each registered in :data:`TOKENIZERS` under its file's name."""

from vidtok.tokenizers.base import TOKENIZERS, VideoTokenizer, check_video
from vidtok.tokenizers.deep_tokens import DeepTokenizer

__all__ = ["TOKENIZERS", "DeepTokenizer", "VideoTokenizer", "check_video"]
