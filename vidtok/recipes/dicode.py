"""DiCoDe recipes: deep tokens + a vanilla language model + a GMM head (DiCoDe §3–4, supplementary §6).

===================== ============================ ================== ===============================
recipe                language model               tokenizer          notes
===================== ============================ ================== ===============================
``dicode_tiny``       GPT-2 style, 4 × 128         shipped Shapes     trains on this CPU; the default
``dicode_gpt2``       GPT-2 (117M)                 ViT-H/14, 16×1024  paper sizes, built from config
``dicode_gpt2_medium`` GPT-2 Medium (345M)          "                  "
``dicode_gpt2_large`` GPT-2 Large (762M)           "                  DiCoDe's released model
``dicode_llama3_2_1b`` Llama-3.2-1B (1.23B)         "                  the paper's default
``dicode_llama3_2_3b`` Llama-3.2-3B (3.3B)          "                  "
===================== ============================ ================== ===============================

Every recipe takes the same overrides, so an ablation is one keyword:

* ``head="gaussian"`` (or ``"l2"``, ``"gmm"``, ``"diffusion_mlp"``, or a :class:`ComponentSpec`) and
  ``head_kwargs={...}``; ``num_components=8`` for the GMM (DiCoDe Table 4);
* ``num_deep_tokens=32`` (tokens per keyframe, DiCoDe Table 3; the tokenizer is then built untrained unless
  ``tokenizer_pretrained`` points at one trained with that many: a folder whose token count differs from
  the recipe's is refused when the components are built);
* ``tokenizer_pretrained=``, ``backbone_pretrained=`` (a transformers folder or hub id), ``text_tokenizer=``;
* ``text_encoder=`` (a transformers encoder folder or hub id; frozen) with ``model_kwargs={"text_embed_dim":
  E}``: the prompt is read as the encoder's hidden states instead of the language model's own embeddings;
* ``backbone_overrides={...}`` (transformers config fields), ``model_kwargs={...}`` (the ``dicode_lm``
  model's arguments; ``video_lm={...}`` is the same override under its earlier name);
* ``tiny=True``: every component at its unit-test size, with the word-level Shapes prompts (builds in well under
  a second). Every registered recipe takes ``tiny``: the recipe contract tests build each one this way.
"""

from __future__ import annotations

import copy
from typing import Any

from vidtok.recipes.base import RECIPES, ComponentSpec, RecipeConfig, shapes_backbone

__all__ = [
    "dicode_gpt2",
    "dicode_gpt2_large",
    "dicode_gpt2_medium",
    "dicode_llama3_2_1b",
    "dicode_llama3_2_3b",
    "dicode_tiny",
]

#: DiCoDe's progressive AR schedule (supplementary §6) as trainer stages: L2 first, then the GMM loss.
PROGRESSIVE_STAGES = [
    {"name": "l2", "options": {"head": "l2"}, "fraction": 0.25},
    {"name": "gmm", "options": {"head": "gmm"}, "fraction": 0.75},
]

_HEAD_DEFAULTS: dict[str, dict[str, Any]] = {
    "gmm": {"num_components": 16},
    "diffusion_mlp": {},
    "gaussian": {},
    "l2": {},
}


def _tiny_parts() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    from vidtok.backbones.hf_causal_lm import HFCausalLM
    from vidtok.models.dicode_lm import DiCoDeLM
    from vidtok.tokenizers.deep_tokens import DeepTokenizer

    tok = DeepTokenizer.tiny_config()
    backbone = HFCausalLM.tiny_config()
    lm = {**DiCoDeLM.tiny_config(), "token_dim": tok["token_dim"], "num_tokens": tok["num_queries"], "text_length": 8}
    return tok, backbone, lm


def _recipe(
    name: str,
    *,
    tokenizer: dict[str, Any],
    tokenizer_pretrained: str | None,
    backbone: dict[str, Any],
    video_lm: dict[str, Any],
    text_tokenizer: str,
    training: dict[str, Any],
    overrides: dict[str, Any],
    head_defaults: dict[str, dict[str, Any]] | None = None,
) -> RecipeConfig:
    """Apply the shared overrides and wire the sizes (hidden width, token width, tokens per keyframe)."""
    overrides = dict(overrides)
    if "model_kwargs" in overrides:
        if "video_lm" in overrides:
            raise TypeError(f"{name}: give model_kwargs or its old name video_lm, not both")
        overrides["video_lm"] = overrides.pop("model_kwargs")
    for key in ("head_kwargs", "backbone_overrides", "video_lm", "training"):
        if overrides.get(key) is not None and not isinstance(overrides[key], dict):
            raise TypeError(f"{name}: the {key} override must be a dict, got {type(overrides[key]).__name__}")
    tiny = bool(overrides.pop("tiny", False))
    if tiny:
        tokenizer, backbone, video_lm = _tiny_parts()
        tokenizer_pretrained = None
        text_tokenizer = "shapes_words"  # fits the tiny backbone's 64-entry vocabulary (GPT-2's BPE would not)
    tokenizer, backbone, video_lm = copy.deepcopy(tokenizer), copy.deepcopy(backbone), copy.deepcopy(video_lm)
    head = overrides.pop("head", "gmm")
    head_kwargs = dict(overrides.pop("head_kwargs", {}) or {})
    if "num_components" in overrides:
        head_kwargs["num_components"] = int(overrides.pop("num_components"))
    if isinstance(head, ComponentSpec):
        head_name, head_kwargs = head.name, {**head.kwargs, **head_kwargs}
    elif isinstance(head, str):
        head_name = head
        recipe_defaults = {} if tiny else (head_defaults or {}).get(head, {})  # tiny: unit-test sizes below
        head_kwargs = {**_HEAD_DEFAULTS.get(head, {}), **recipe_defaults, **head_kwargs}
    else:
        raise TypeError(f"head must be a registry name or a ComponentSpec, got {type(head).__name__}")
    from vidtok.heads.base import HEADS

    head_name = HEADS.canonical_name(head_name)  # an unknown name fails here (KeyError listing the heads), not later
    if "num_components" in head_kwargs and head_name != "gmm":
        raise ValueError(f"num_components applies to the gmm head, not {head_name!r}")
    if "num_deep_tokens" in overrides:
        n = int(overrides.pop("num_deep_tokens"))
        if n != tokenizer.get("num_queries", 16):
            tokenizer["num_queries"] = n
            tokenizer_pretrained = None  # the shipped tokenizer has a fixed token count
        video_lm["num_tokens"] = n
    if "tokenizer_pretrained" in overrides:
        tokenizer_pretrained = overrides.pop("tokenizer_pretrained")
    backbone_pretrained = overrides.pop("backbone_pretrained", None)
    if "backbone_overrides" in overrides:
        backbone["overrides"] = {**backbone.get("overrides", {}), **overrides.pop("backbone_overrides")}
    video_lm.update(overrides.pop("video_lm", {}) or {})
    text_tokenizer = overrides.pop("text_tokenizer", text_tokenizer)
    text_encoder = overrides.pop("text_encoder", None)
    if text_encoder is not None and not isinstance(text_encoder, str):
        raise TypeError(f"{name}: text_encoder must be a folder or hub id, got {type(text_encoder).__name__}")
    training = {**training, **(overrides.pop("training", {}) or {})}
    if overrides:
        raise TypeError(
            f"{name}: unknown overrides {sorted(overrides)}; known: head, head_kwargs, num_components, "
            "num_deep_tokens, tokenizer_pretrained, backbone_pretrained, backbone_overrides, model_kwargs "
            "(or video_lm), text_tokenizer, text_encoder, training, tiny"
        )
    from vidtok.backbones.hf_causal_lm import PRESETS

    cfg = backbone.get("config") or PRESETS[backbone["preset"]]
    over = backbone.get("overrides", {})
    width = int(over.get("n_embd", over.get("hidden_size", cfg.get("n_embd", cfg.get("hidden_size")))))
    video_lm["hidden_size"] = width
    video_lm["token_dim"] = int(tokenizer["token_dim"])
    video_lm.setdefault("num_tokens", int(tokenizer.get("num_queries", 16)))
    head_kwargs.update(hidden_size=video_lm.get("head_hidden_size") or width, token_dim=int(tokenizer["token_dim"]))
    if head_name == "diffusion_mlp" and tiny:
        head_kwargs.setdefault("width", 32)
        head_kwargs.setdefault("depth", 1)
    if head_name != "gmm" and training.get("stages") == PROGRESSIVE_STAGES:
        training = {**training, "stages": [{"name": "main", "options": {"head": head_name}, "fraction": 1.0}]}
    return RecipeConfig(
        name=name,
        video_tokenizer=ComponentSpec("deep_tokens", tokenizer, tokenizer_pretrained),
        backbone=ComponentSpec("hf_causal_lm", backbone, backbone_pretrained),
        head=ComponentSpec(head_name, head_kwargs),
        model=ComponentSpec("dicode_lm", video_lm),
        text_tokenizer=text_tokenizer,
        text_encoder=text_encoder,
        training=training,
    )


@RECIPES.register("dicode_tiny")
def dicode_tiny(**overrides: Any) -> RecipeConfig:
    """DiCoDe in miniature on Shapes (DiCoDe §3–4), the recipe of the embedded default model.

    The shipped 32×32 deep tokenizer (2 keyframes per 9-frame clip, 16 × 64 tokens), a 4-layer 128-wide GPT-2
    from scratch, a 16-component GMM head, word-level prompts
    of 16 tokens, L2 → GMM progressive training. The embedded default model is this recipe trained by
    ``examples/train_dicode_shapes.py``.
    """
    from vidtok.tokenizers.deep_tokens import DeepTokenizer

    backbone = shapes_backbone()
    # Sampling at temperature 0.1 (component choice sharpened, std x 0.1): measured on held-out prompts,
    # DiCoDe's released sampler (untempered component choice, variance x 0.01) gave color 0.67 / motion
    # 0.07 against 1.0 / 0.87 here — independent component draws per token break a keyframe's coherence.
    video_lm = {
        "max_keyframes": 8,
        "text_length": 16,
        "text_dropout": 0.05,
        "mlp_layers": 2,
        "fps": 8.0,
        "temperature": 0.1,
    }
    training = {"stages": PROGRESSIVE_STAGES, "lr": 1e-3, "batch_size": 32, "steps_per_sample": 4}
    return _recipe(
        "dicode_tiny",
        tokenizer=DeepTokenizer.shapes_config(),
        tokenizer_pretrained="vidtok:deep_tokens_shapes",
        backbone=backbone,
        video_lm=video_lm,
        text_tokenizer="shapes_words",
        training=training,
        overrides=overrides,
        # The diffusion head at the LM's width with MAR's depth; MAR's 1024-wide default costs 21 s per
        # training step here, and 2 timestep draws per token (MAR: 4) keep a step within 2x of the GMM's.
        head_defaults={"diffusion_mlp": {"width": 128, "depth": 3, "num_timesteps_per_token": 2}},
    )


def _paper(name: str, preset: str, text_tokenizer: str, overrides: dict[str, Any]) -> RecipeConfig:
    from vidtok.tokenizers.deep_tokens import DeepTokenizer

    video_lm = {"max_keyframes": 32, "text_length": 80, "text_dropout": 0.05, "mlp_layers": 3, "fps": 8.0}
    training = {"stages": PROGRESSIVE_STAGES, "lr": 1e-4}
    return _recipe(
        name,
        tokenizer=DeepTokenizer.official_config(),
        tokenizer_pretrained=None,
        backbone={"preset": preset},
        video_lm=video_lm,
        text_tokenizer=text_tokenizer,
        training=training,
        overrides=overrides,
        # DiCoDe's released sampler: untempered component weights, variance x 0.01.
        head_defaults={"gmm": {"sample_variance_scale": 0.01, "temper_logits": False}},
    )


@RECIPES.register("dicode_gpt2")
def dicode_gpt2(**overrides: Any) -> RecipeConfig:
    """DiCoDe with GPT-2 (117M) (DiCoDe §4.1, Fig. 8 scaling).

    Official-size tokenizer, GMM k = 16, 80-token prompts with GPT-2's BPE.
    """
    return _paper("dicode_gpt2", "gpt2", "gpt2_bpe", overrides)


@RECIPES.register("dicode_gpt2_medium")
def dicode_gpt2_medium(**overrides: Any) -> RecipeConfig:
    """DiCoDe with GPT-2 Medium (345M) (DiCoDe §4.1, Fig. 8 scaling)."""
    return _paper("dicode_gpt2_medium", "gpt2_medium", "gpt2_bpe", overrides)


@RECIPES.register("dicode_gpt2_large")
def dicode_gpt2_large(**overrides: Any) -> RecipeConfig:
    """DiCoDe with GPT-2 Large (762M) (DiCoDe §4.1; the size of the released checkpoint)."""
    return _paper("dicode_gpt2_large", "gpt2_large", "gpt2_bpe", overrides)


@RECIPES.register("dicode_llama3_2_1b")
def dicode_llama3_2_1b(**overrides: Any) -> RecipeConfig:
    """DiCoDe with Llama-3.2-1B (1.23B), the paper's default model (DiCoDe §4.1).

    Llama's tokenizer is not shipped anywhere offline: pass ``text_tokenizer=<folder>`` (default: the hub id,
    offline cache only).
    """
    return _paper("dicode_llama3_2_1b", "llama3_2_1b", "meta-llama/Llama-3.2-1B", overrides)


@RECIPES.register("dicode_llama3_2_3b")
def dicode_llama3_2_3b(**overrides: Any) -> RecipeConfig:
    """DiCoDe with Llama-3.2-3B (3.3B) (DiCoDe §4.1, Fig. 8 scaling)."""
    return _paper("dicode_llama3_2_3b", "llama3_2_3b", "meta-llama/Llama-3.2-3B", overrides)
