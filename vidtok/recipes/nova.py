"""NOVA recipes: continuous VAE tokens, a block-causal transformer, set-by-set decoding, a diffusion head.

NOVA is Deng et al. 2024, arXiv:2412.14169.

============= =============================== ================================= ====================================
recipe        temporal / spatial / head       tokenizer                         notes
============= =============================== ================================= ====================================
``nova_tiny`` 4 × 192 / 4 × 192 / 3 × 256     Shapes VAE (Wan, 4×4×4, 4 ch.)    trains on a CPU; ``vidtok:nova_shapes``
``nova_0_6b`` 16 × 1024 / 32 × 1024 / 3 × 1280 4-channel causal VAE, 4×8×8     the released T2V model's sizes
============= =============================== ================================= ====================================

Overrides, as for every recipe: ``head_kwargs={...}`` (``diffusion_mlp`` arguments, e.g.
``{"prediction_type": "epsilon"}``), ``model_kwargs={...}`` (``nova`` arguments), ``backbone_kwargs={...}``
(``block_causal`` arguments), ``tokenizer={...}`` (``continuous_vae`` kwargs) or ``tokenizer_pretrained=`` (a
folder), ``text_tokenizer=``, ``text_encoder=``, ``training={...}``, and ``tiny=True`` (every component at
unit-test size).
"""

from __future__ import annotations

import copy
from typing import Any

from vidtok.recipes.base import RECIPES, ComponentSpec, RecipeConfig, check_overrides

__all__ = ["nova_0_6b", "nova_tiny"]

_KNOWN = (
    "head_kwargs",
    "model_kwargs",
    "backbone_kwargs",
    "tokenizer",
    "tokenizer_pretrained",
    "text_tokenizer",
    "text_encoder",
    "training",
    "tiny",
)


def _recipe(
    name: str,
    *,
    tokenizer: dict[str, Any],
    tokenizer_pretrained: str | None,
    backbone: dict[str, Any],
    model: dict[str, Any],
    head: dict[str, Any],
    text_tokenizer: str,
    text_encoder: str | None,
    training: dict[str, Any],
    overrides: dict[str, Any],
) -> RecipeConfig:
    overrides = check_overrides(
        name, overrides, _KNOWN, ("head_kwargs", "model_kwargs", "backbone_kwargs", "tokenizer", "training")
    )
    tokenizer, backbone, model, head = (copy.deepcopy(x) for x in (tokenizer, backbone, model, head))
    if overrides.pop("tiny", False):
        from vidtok.backbones.block_causal import BlockCausalTransformer
        from vidtok.heads.diffusion_mlp import DiffusionMLPHead
        from vidtok.models.nova import NOVAModel
        from vidtok.tokenizers.continuous_vae import ContinuousVAETokenizer

        tokenizer, tokenizer_pretrained = ContinuousVAETokenizer.tiny_config(), None
        backbone = BlockCausalTransformer.tiny_config()
        model = {**NOVAModel.tiny_config(), "text_vocab_size": None, "text_length": 8}
        head = {k: v for k, v in DiffusionMLPHead.tiny_config().items() if k not in ("hidden_size", "token_dim")}
        text_tokenizer, text_encoder = "shapes_words", None
    if "tokenizer" in overrides:
        tokenizer, tokenizer_pretrained = dict(overrides.pop("tokenizer")), None
    tokenizer_pretrained = overrides.pop("tokenizer_pretrained", tokenizer_pretrained)
    backbone.update(overrides.pop("backbone_kwargs", None) or {})
    model.update(overrides.pop("model_kwargs", None) or {})
    head.update(overrides.pop("head_kwargs", None) or {})
    text_tokenizer = overrides.pop("text_tokenizer", text_tokenizer)
    text_encoder = overrides.pop("text_encoder", text_encoder)
    training = {**training, **(overrides.pop("training", None) or {})}

    layout = _layout(tokenizer, tokenizer_pretrained)
    model = {**model, "hidden_size": backbone["hidden_size"], "token_dim": layout.dim, "grid": list(layout.grid)}
    head = {**head, "hidden_size": model["spatial_width"], "token_dim": layout.dim}
    return RecipeConfig(
        name=name,
        video_tokenizer=ComponentSpec("continuous_vae", tokenizer, tokenizer_pretrained),
        backbone=ComponentSpec("block_causal", backbone),
        head=ComponentSpec("diffusion_mlp", head),
        model=ComponentSpec("nova", model),
        text_tokenizer=text_tokenizer,
        text_encoder=text_encoder,
        training=training,
    )


def _layout(tokenizer: dict[str, Any], pretrained: str | None) -> Any:
    """The token level of the tokenizer at its sample size (built on the meta device: shapes only)."""
    import torch

    from vidtok.tokenizers.continuous_vae import ContinuousVAETokenizer

    if pretrained is not None:
        from vidtok.recipes.base import resolve_weights

        try:
            config = ContinuousVAETokenizer.load_config(resolve_weights(pretrained))
            # A saved tokenizer records its VAE's full config: never read the VAE's original folder again.
            tokenizer = {k: v for k, v in config.items() if not k.startswith("_") and k != "vae_pretrained"}
        except OSError:
            pass  # not readable now: size the model from the recipe's kwargs; building names any mismatch
    with torch.device("meta"):
        return ContinuousVAETokenizer(**tokenizer).reference_layout()[-1]


@RECIPES.register("nova_tiny")
def nova_tiny(**overrides: Any) -> RecipeConfig:
    """NOVA in miniature on Shapes (arXiv:2412.14169 §3).

    * tokenizer: ``ContinuousVAETokenizer.shapes_config()`` — a small causal ``AutoencoderKLWan`` (4 latent
      channels, ``4 × 4 × 4`` compression), ``2 × 2`` patches: a 32 × 32 frame is 16 tokens of 16 values, a
      17-frame clip 5 latent frames (NOVA's token shape and temporal compression). By default the shipped
      trained one (``vidtok:nova_vae_shapes``, the tokenizer of ``vidtok:nova_shapes``);
      ``tokenizer_pretrained=None`` builds it untrained, ``tokenizer_pretrained=FOLDER`` loads another;
    * temporal: a 4-layer 192-wide ``block_causal`` backbone with the Scaling and Shift layer (rank 24);
    * spatial: a 4-block 192-wide set-by-set decoder, 2 set-by-set steps per frame (on Shapes 1–2 steps scored
      better than 4–8: training masks 70–100 % of a frame, so late steps with few tokens left are unfamiliar);
    * head: ``diffusion_mlp`` with flow matching (3 × 256, Euler, 25 steps);
    * prompts: the Shapes word tokenizer, 16 tokens, a learned table; 10 % prompt dropout for CFG.
    """
    from vidtok.tokenizers.continuous_vae import ContinuousVAETokenizer

    backbone = {"hidden_size": 192, "num_layers": 4, "num_heads": 4, "mixer_rank": 24}
    model = {
        "text_length": 16,
        "text_embed_dim": None,
        "text_dropout": 0.1,
        "fps": 8.0,
        "motion_score": 5.0,
        "spatial_width": 192,
        "spatial_depth": 4,
        "spatial_heads": 4,
        "set_steps": 2,
    }
    head = {
        "width": 256,
        "depth": 3,
        "prediction_type": "flow_prediction",
        "scheduler": "flow_euler",
        "num_inference_steps": 25,
        "num_timesteps_per_token": 4,
    }
    training = {"stages": [{"name": "main", "options": {}, "fraction": 1.0}], "lr": 1e-3, "batch_size": 32,
                "steps_per_sample": 5}  # fmt: skip
    return _recipe(
        "nova_tiny",
        tokenizer=ContinuousVAETokenizer.shapes_config(),
        tokenizer_pretrained="vidtok:nova_vae_shapes",
        backbone=backbone,
        model=model,
        head=head,
        text_tokenizer="shapes_words",
        text_encoder=None,
        training=training,
        overrides=overrides,
    )


@RECIPES.register("nova_0_6b")
def nova_0_6b(**overrides: Any) -> RecipeConfig:
    """NOVA's released text-to-video model at its sizes (``BAAI/nova-d48w1024-osp480``), built from config.

    * temporal: ``block_causal`` 16 layers × 1024, 16 heads, Scaling and Shift rank 24 (§4.1, Fig. 8–9);
    * spatial: 32 blocks × 1024 (16 encoder + 16 decoder), 16 heads; a frame of 480 × 768 is a
      ``60 × 96`` latent → 1,440 tokens of ``2 × 2 × 4`` (``30 × 48``), read by the temporal transformer as
      360 slots of ``4 × 4`` latents (``temporal_patch=2``); 64 set-by-set steps by default (NOVA: 64–128);
    * head: ``diffusion_mlp`` with NOVA's architecture (``adaln="nova"``), 3 × 1280 on the 1024-wide spatial
      output: 32.84 M parameters, the released ``mlp_d3w1280``; it predicts ε under the cosine DDPM schedule
      (the T2V model's scheduler), 4 timestep draws per token (``loss_repeat``);
    * text: Phi-2's hidden states (2560 wide, 256 tokens, ``text_encoder="microsoft/phi-2"``, a local folder
      offline); motion-score and fps tokens; 12 fps;
    * tokenizer: a 4-channel causal VAE with NOVA's compression (temporal ×4, spatial ×8). The released model
      uses Open-Sora-Plan's ``AutoencoderKLOpenSora``, which diffusers does not ship; this recipe builds an
      ``AutoencoderKLWan`` with 4 latent channels as a stand-in of the same token shape (``tokenizer_pretrained=``
      or ``tokenizer=`` replaces it).

    * the released function where vidtok's small models choose otherwise: a learned time embedding
      (``time_embedding="mlp"``: ``LayerNorm(MLP(sincos(t)))``) on a time grid rescaled to the video's length
      (``time_rescale=16``: frame slot ``f`` of ``T`` at ``16 f / T``), 2-D positions in ``(x, y)`` order,
      indicators read by the spatial transformer without a projection, LayerNorm ε 1e-5, and a stored table of
      prompt pad states (``text_pad_table``: every prompt padded to 256 positions with it; the null prompt is
      the table).

    So the released transformer loads by a key mapping: :func:`vidtok.convert.convert_nova_transformer` turns
    ``BAAI/nova-d48w1024-osp480``'s ``transformer/`` into exactly this recipe's model, backbone and head
    (``tests/test_convert_nova.py`` checks every key and shape, and the function on a small configuration).
    The repository's YAML sets no Scaling and Shift layer; ``backbone_kwargs={"mixer_rank": None}`` matches a
    checkpoint without one.
    """
    backbone = {
        "hidden_size": 1024,
        "num_layers": 16,
        "num_heads": 16,
        "mixer_rank": 24,
        "norm_eps": 1e-5,
        "time_embedding": "mlp",
    }
    model = {
        "text_length": 256,
        "text_embed_dim": 2560,
        "text_dropout": 0.1,
        "fps": 12.0,
        "motion_score": 5.0,
        "spatial_width": 1024,
        "spatial_depth": 32,
        "spatial_heads": 16,
        "set_steps": 64,
        "temporal_patch": 2,
        "time_rescale": 16.0,
        "position_axes": "xy",
        "indicator_proj": False,
        "spatial_norm_eps": 1e-5,
        "text_pad_table": True,
    }
    head = {"width": 1280, "depth": 3, "adaln": "nova", "prediction_type": "epsilon", "num_timesteps_per_token": 4}
    tokenizer = {
        "vae_class": "AutoencoderKLWan",
        "vae_config": {"z_dim": 4, "base_dim": 96},
        "patch_size": 2,
        "latent_scale": 1.0,  # Wan's default per-channel statistics are for its 16 channels: measure them instead
        "latent_shift": 0.0,
        "sample_size": [480, 768],
    }
    training = {"stages": [{"name": "main", "options": {}, "fraction": 1.0}], "lr": 1e-4, "batch_size": 512,
                "steps_per_sample": 9}  # fmt: skip
    return _recipe(
        "nova_0_6b",
        tokenizer=tokenizer,
        tokenizer_pretrained=None,
        backbone=backbone,
        model=model,
        head=head,
        text_tokenizer="microsoft/phi-2",
        text_encoder="microsoft/phi-2",
        training=training,
        overrides=overrides,
    )
