"""HiTVideo recipes: a hierarchical LFQ tokenizer + a causal LM + a factorized categorical head (HiTVideo §3).

================== ============================ =========================== ====================================
recipe             language model               tokenizer                   notes
================== ============================ =========================== ====================================
``hitvideo_tiny``  GPT-2 style, 4 × 128         Shapes config, 3 levels     trains on a CPU; ``vidtok:hitvideo_shapes``
``hitvideo_paper`` Llama-3.2-3B (3.2B)          Tab. 2, 4 levels, 208 M     the paper's sizes, built from config
================== ============================ =========================== ====================================

The model (``hitvideo_lm``) reads every level's codes coarsest first; its level layout (bits, grids, time
strides) is taken from the tokenizer's config, so a tokenizer override re-sizes it. The head is the
``categorical`` head factorized over the widest level's bits; each level samples within its own ``2^bits``
codes. Overrides, as for every recipe:

* ``head_kwargs={...}`` (e.g. ``{"bits_per_group": 6}``), ``model_kwargs={...}`` (``hitvideo_lm`` arguments,
  e.g. ``{"level_loss_weights": [2, 1, 1]}``), ``backbone_overrides={...}`` (transformers config fields);
* ``tokenizer=`` (``hierarchical_lfq`` kwargs, replacing the recipe's) or ``tokenizer_pretrained=`` (a folder
  whose config then sizes the model), ``backbone_pretrained=``, ``text_tokenizer=``, ``text_encoder=``;
* ``tiny=True``: every component at unit-test size.
"""

from __future__ import annotations

import copy
from typing import Any

from vidtok.recipes.base import RECIPES, ComponentSpec, RecipeConfig, check_overrides, shapes_backbone

__all__ = ["hitvideo_paper", "hitvideo_tiny"]

_KNOWN = (
    "head_kwargs",
    "model_kwargs",
    "backbone_overrides",
    "tokenizer",
    "tokenizer_pretrained",
    "backbone_pretrained",
    "text_tokenizer",
    "text_encoder",
    "training",
    "tiny",
)


def _tokenizer_config(kwargs: dict[str, Any], pretrained: str | None) -> dict[str, Any]:
    """The tokenizer's constructor kwargs: the recipe's, or a pretrained folder's saved config."""
    if pretrained is None:
        return kwargs
    from vidtok.recipes.base import resolve_weights
    from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer

    try:
        config = HierarchicalLFQTokenizer.load_config(resolve_weights(pretrained))
    except OSError:
        # Not readable now (e.g. a hub id offline): size the model from the recipe's kwargs; building the
        # components then loads the folder and check_compatible names any difference.
        return kwargs
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _layout(tokenizer: dict[str, Any]) -> dict[str, Any]:
    """``hitvideo_lm``'s level layout for a ``hierarchical_lfq`` config (built on the meta device: no memory)."""
    import torch

    from vidtok.models.hitvideo_lm import HiTVideoLM
    from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer

    with torch.device("meta"):
        return HiTVideoLM.layout_kwargs(HierarchicalLFQTokenizer(**tokenizer))


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
        name, overrides, _KNOWN, ("head_kwargs", "model_kwargs", "backbone_overrides", "tokenizer", "training")
    )
    tokenizer, backbone, model, head = (copy.deepcopy(x) for x in (tokenizer, backbone, model, head))
    if overrides.pop("tiny", False):
        from vidtok.backbones.hf_causal_lm import HFCausalLM
        from vidtok.models.hitvideo_lm import HiTVideoLM
        from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer

        tokenizer, tokenizer_pretrained = HierarchicalLFQTokenizer.tiny_config(), None
        backbone = HFCausalLM.tiny_config()
        model = {**HiTVideoLM.tiny_config(), "text_length": 8}
        head = {"num_bits": 6, "bits_per_group": 2}
        text_tokenizer, text_encoder = "shapes_words", None
    if "tokenizer" in overrides:
        tokenizer, tokenizer_pretrained = dict(overrides.pop("tokenizer")), None
    tokenizer_pretrained = overrides.pop("tokenizer_pretrained", tokenizer_pretrained)
    backbone_pretrained = overrides.pop("backbone_pretrained", None)
    if "backbone_overrides" in overrides:
        backbone["overrides"] = {**backbone.get("overrides", {}), **overrides.pop("backbone_overrides")}
    model.update(overrides.pop("model_kwargs", None) or {})
    head.update(overrides.pop("head_kwargs", None) or {})
    text_tokenizer = overrides.pop("text_tokenizer", text_tokenizer)
    text_encoder = overrides.pop("text_encoder", text_encoder)
    training = {**training, **(overrides.pop("training", None) or {})}

    from vidtok.backbones.hf_causal_lm import PRESETS

    cfg = backbone.get("config") or PRESETS[backbone["preset"]]
    over = backbone.get("overrides", {})
    width = int(over.get("n_embd", over.get("hidden_size", cfg.get("n_embd", cfg.get("hidden_size")))))
    layout = _layout(_tokenizer_config(tokenizer, tokenizer_pretrained))
    model = {**model, **layout, "hidden_size": width}
    head = {"num_bits": max(layout["level_bits"]), **head, "hidden_size": width}
    return RecipeConfig(
        name=name,
        video_tokenizer=ComponentSpec("hierarchical_lfq", tokenizer, tokenizer_pretrained),
        backbone=ComponentSpec("hf_causal_lm", backbone, backbone_pretrained),
        head=ComponentSpec("categorical", head),
        model=ComponentSpec("hitvideo_lm", model),
        text_tokenizer=text_tokenizer,
        text_encoder=text_encoder,
        training=training,
    )


@RECIPES.register("hitvideo_tiny")
def hitvideo_tiny(**overrides: Any) -> RecipeConfig:
    """HiTVideo in miniature on Shapes (§3.2–3.3).

    The 32×32 hierarchical tokenizer of ``HierarchicalLFQTokenizer.shapes_config()`` (bits 4 / 10 / 16, coarsest
    first; 560 codes per 17-frame clip), a 4-layer 128-wide GPT-2 from scratch (the Shapes backbone with 1,024
    positions: 16 prompt tokens + [BOV] + 993 codes of a 33-frame video), a categorical head factorized in
    16-way groups (4 bits), word-level prompts of 16 tokens, 10 % prompt dropout for CFG. The tokenizer is the
    shipped trained one (``vidtok:hitvideo_tokens_shapes``, the tokenizer of ``vidtok:hitvideo_shapes``);
    ``tokenizer_pretrained=`` another folder trained by ``examples/train_hitvideo_tokenizer_shapes.py``, or
    ``tokenizer={...}`` (built untrained), replaces it.
    """
    from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer

    backbone = shapes_backbone()
    backbone["config"]["n_positions"] = 1024
    model = {"text_length": 16, "text_dropout": 0.1, "max_steps": 9, "fps": 8.0, "temperature": 1.0}
    training = {
        "stages": [{"name": "main", "options": {}, "fraction": 1.0}],
        "lr": 1e-3,
        "batch_size": 32,
        "steps_per_sample": 5,
    }
    return _recipe(
        "hitvideo_tiny",
        tokenizer=HierarchicalLFQTokenizer.shapes_config(),
        tokenizer_pretrained="vidtok:hitvideo_tokens_shapes",
        backbone=backbone,
        model=model,
        head={"bits_per_group": 4},
        text_tokenizer="shapes_words",
        text_encoder=None,
        training=training,
        overrides=overrides,
    )


@RECIPES.register("hitvideo_paper")
def hitvideo_paper(**overrides: Any) -> RecipeConfig:
    """HiTVideo at the paper's sizes (§3.3, §4.1), built from config (no released weights exist).

    * tokenizer: ``HierarchicalLFQTokenizer.hitvideo_paper_config()`` (Tab. 2: bits 3 / 14 / 16 / 18, 208 M
      parameters, 256×256);
    * language model: Llama-3.2-3B (the paper's "Llama-3B"), from scratch unless ``backbone_pretrained``;
    * text: frozen Flan-T5-XL hidden states (``text_encoder="google/flan-t5-xl"``, 2048 wide) projected into the
      LM, prompts of 80 tokens; a learned null prompt for CFG;
    * head: categorical factorized over 18 bits in two 512-way groups (Open-MAGVIT2's AR split);
    * 65-frame videos (the causal form of the paper's 64): 9 finest steps, 2,240 codes.

    Loading Flan-T5 needs its files locally (``text_encoder=``/``text_tokenizer=`` a folder).
    """
    from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer

    model = {"text_length": 80, "text_dropout": 0.1, "max_steps": 9, "fps": 8.0, "text_embed_dim": 2048}
    training = {"stages": [{"name": "main", "options": {}, "fraction": 1.0}], "lr": 1e-4, "steps_per_sample": 9}
    return _recipe(
        "hitvideo_paper",
        tokenizer=HierarchicalLFQTokenizer.hitvideo_paper_config(),
        tokenizer_pretrained=None,
        backbone={"preset": "llama3_2_3b"},
        model=model,
        head={"bits_per_group": 9},
        text_tokenizer="google/flan-t5-xl",
        text_encoder="google/flan-t5-xl",
        training=training,
        overrides=overrides,
    )
