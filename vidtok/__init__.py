"""vidtok: autoregressive video generation with compressed video tokens.

The top level is lazy (PEP 562): ``import vidtok`` imports neither torch nor diffusers; each public name
imports only the module that defines it on first access, so ``from vidtok import GMMHead`` loads the heads
and nothing else.

>>> import vidtok
>>> sorted(vidtok.HEADS.list())  # doctest: +SKIP
['categorical', 'diffusion_mlp', 'gaussian', 'gmm', 'l2']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

# Public name -> module that defines it. Keep in sync with __all__ (a test checks both directions).
_LAZY: dict[str, str] = {
    # registries and the component base
    "Registry": "vidtok.registry",
    "RegistryError": "vidtok.registry",
    "TOKENIZERS": "vidtok.tokenizers.base",
    "HEADS": "vidtok.heads.base",
    "BACKBONES": "vidtok.backbones.base",
    "RECIPES": "vidtok.recipes.base",
    "MODELS": "vidtok.models.base",
    "REGISTRIES": "vidtok.registry",
    "Component": "vidtok.modeling_utils",
    "LoadingError": "vidtok.modeling_utils",
    # kind bases
    "VideoTokenizer": "vidtok.tokenizers.base",
    "TokenHead": "vidtok.heads.base",
    "Backbone": "vidtok.backbones.base",
    "VideoARModel": "vidtok.models.base",
    # heads
    "L2Head": "vidtok.heads.l2",
    "GaussianHead": "vidtok.heads.gaussian",
    "GMMHead": "vidtok.heads.gmm",
    "DiffusionMLPHead": "vidtok.heads.diffusion_mlp",
    "CategoricalHead": "vidtok.heads.categorical",
    # tokenizers and pipelines
    "DeepTokenizer": "vidtok.tokenizers.deep_tokens",
    "ContinuousVAETokenizer": "vidtok.tokenizers.continuous_vae",
    "HierarchicalLFQTokenizer": "vidtok.tokenizers.hierarchical_lfq",
    "Reconstruct": "vidtok.pipelines.reconstruct",
    "reconstruct_file": "vidtok.pipelines.reconstruct",
    "TextToVideo": "vidtok.pipelines.text_to_video",
    "ImageToVideo": "vidtok.pipelines.image_to_video",
    # backbones, models and recipes
    "HFCausalLM": "vidtok.backbones.hf_causal_lm",
    "BlockCausalTransformer": "vidtok.backbones.block_causal",
    "VideoLM": "vidtok.models.video_lm",
    "DiCoDeLM": "vidtok.models.dicode_lm",
    "HiTVideoLM": "vidtok.models.hitvideo_lm",
    "NOVAModel": "vidtok.models.nova",
    "RecipeConfig": "vidtok.recipes.base",
    "ComponentSpec": "vidtok.recipes.base",
    # outputs
    "TokenizerOutput": "vidtok.outputs",
    "TokenLevel": "vidtok.outputs",
    "BackboneOutput": "vidtok.outputs",
    # training
    "Trainer": "vidtok.training",
    "TrainingConfig": "vidtok.training",
    # video I/O
    "read_video": "vidtok.io",
    "read_video_info": "vidtok.io",
    "save_video": "vidtok.io",
    "frames_to_tensor": "vidtok.io",
    "tensor_to_frames": "vidtok.io",
    "VideoReadError": "vidtok.io",
}

# Sub-packages reachable as attributes (``vidtok.io.save_video``) without importing them eagerly.
_SUBMODULES = (
    "backbones",
    "cli",
    "convert",
    "data",
    "diagnostics",
    "evaluation",
    "heads",
    "io",
    "metrics",
    "modeling_utils",
    "models",
    "outputs",
    "pipelines",
    "recipes",
    "registry",
    "tokenizers",
    "training",
)

__all__ = [
    "BACKBONES",
    "HEADS",
    "MODELS",
    "RECIPES",
    "REGISTRIES",
    "TOKENIZERS",
    "Backbone",
    "BackboneOutput",
    "BlockCausalTransformer",
    "DiCoDeLM",
    "TokenLevel",
    "VideoARModel",
    "CategoricalHead",
    "Component",
    "ComponentSpec",
    "ContinuousVAETokenizer",
    "DeepTokenizer",
    "DiffusionMLPHead",
    "GMMHead",
    "GaussianHead",
    "HFCausalLM",
    "HiTVideoLM",
    "HierarchicalLFQTokenizer",
    "ImageToVideo",
    "L2Head",
    "LoadingError",
    "NOVAModel",
    "Registry",
    "RecipeConfig",
    "Reconstruct",
    "RegistryError",
    "TextToVideo",
    "TokenHead",
    "TokenizerOutput",
    "Trainer",
    "TrainingConfig",
    "VideoLM",
    "VideoReadError",
    "VideoTokenizer",
    "__version__",
    "frames_to_tensor",
    "read_video",
    "read_video_info",
    "reconstruct_file",
    "save_video",
    "tensor_to_frames",
]

if TYPE_CHECKING:  # real imports for IDEs, type checkers and the docs' static analysis
    from .backbones.base import BACKBONES, Backbone
    from .backbones.block_causal import BlockCausalTransformer
    from .backbones.hf_causal_lm import HFCausalLM
    from .heads.base import HEADS, TokenHead
    from .heads.categorical import CategoricalHead
    from .heads.diffusion_mlp import DiffusionMLPHead
    from .heads.gaussian import GaussianHead
    from .heads.gmm import GMMHead
    from .heads.l2 import L2Head
    from .io import VideoReadError, frames_to_tensor, read_video, read_video_info, save_video, tensor_to_frames
    from .modeling_utils import Component, LoadingError
    from .models.base import MODELS, VideoARModel
    from .models.dicode_lm import DiCoDeLM
    from .models.hitvideo_lm import HiTVideoLM
    from .models.nova import NOVAModel
    from .models.video_lm import VideoLM
    from .outputs import BackboneOutput, TokenizerOutput, TokenLevel
    from .pipelines.image_to_video import ImageToVideo
    from .pipelines.reconstruct import Reconstruct, reconstruct_file
    from .pipelines.text_to_video import TextToVideo
    from .recipes.base import RECIPES, ComponentSpec, RecipeConfig
    from .registry import REGISTRIES, Registry, RegistryError
    from .tokenizers.base import TOKENIZERS, VideoTokenizer
    from .tokenizers.continuous_vae import ContinuousVAETokenizer
    from .tokenizers.deep_tokens import DeepTokenizer
    from .tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer
    from .training import Trainer, TrainingConfig


def __getattr__(name: str) -> Any:
    module_path = _LAZY.get(name)
    if module_path is not None:
        value = getattr(importlib.import_module(module_path), name)
        globals()[name] = value  # cache: the next access is a plain attribute lookup
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'vidtok' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
