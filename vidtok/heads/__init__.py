"""AR heads, one per file, each registered in :data:`HEADS` under its file's name.

Importing this package registers every built-in head.
"""

from vidtok.heads.base import HEADS, TokenHead

# --- one import per head file (registration happens on import) ---
from vidtok.heads.categorical import CategoricalHead
from vidtok.heads.diffusion_mlp import DiffusionMLPHead
from vidtok.heads.gaussian import GaussianHead
from vidtok.heads.gmm import GMMHead
from vidtok.heads.l2 import L2Head

# --- end of head imports ---

__all__ = ["HEADS", "TokenHead", "DiffusionMLPHead", "CategoricalHead", "GMMHead", "GaussianHead", "L2Head"]
