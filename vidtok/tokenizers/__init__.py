"""Video tokenizers, one per file, each registered in :data:`TOKENIZERS` under its file's name."""

from vidtok.tokenizers import quantizers
from vidtok.tokenizers.base import TOKENIZERS, VideoTokenizer, check_video
from vidtok.tokenizers.continuous_vae import ContinuousVAETokenizer
from vidtok.tokenizers.deep_tokens import DeepTokenizer
from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer

__all__ = [
    "TOKENIZERS",
    "ContinuousVAETokenizer",
    "DeepTokenizer",
    "HierarchicalLFQTokenizer",
    "VideoTokenizer",
    "check_video",
    "quantizers",
]
