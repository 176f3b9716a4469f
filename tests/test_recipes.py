"""DiCoDe recipes: registered, JSON round trip, ablation swaps build the expected classes, paper sizes."""

from __future__ import annotations

import json

import pytest
import torch

import vidtok
from vidtok.heads.diffusion_mlp import DiffusionMLPHead
from vidtok.heads.gaussian import GaussianHead
from vidtok.heads.gmm import GMMHead
from vidtok.heads.l2 import L2Head
from vidtok.recipes.base import ComponentSpec, RecipeConfig, build_components

DICODE = [
    "dicode_gpt2",
    "dicode_gpt2_large",
    "dicode_gpt2_medium",
    "dicode_llama3_2_1b",
    "dicode_llama3_2_3b",
    "dicode_tiny",
]


def test_all_dicode_recipes_are_registered():
    assert vidtok.RECIPES.list("dicode_*") == DICODE


@pytest.mark.parametrize("name", DICODE)
def test_recipe_json_round_trip(name):
    cfg = vidtok.RECIPES.create(name)
    assert isinstance(cfg, RecipeConfig) and cfg.name == name
    again = RecipeConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    # Sizes are wired: head width = video LM output, token width = tokenizer token width.
    assert cfg.head.kwargs["hidden_size"] == cfg.video_lm["hidden_size"]
    assert cfg.head.kwargs["token_dim"] == cfg.video_tokenizer.kwargs["token_dim"] == cfg.video_lm["token_dim"]


@pytest.mark.parametrize(
    ("head", "cls"), [("l2", L2Head), ("gaussian", GaussianHead), ("gmm", GMMHead), ("diffusion_mlp", DiffusionMLPHead)]
)
def test_head_swap_builds_the_expected_class(head, cls):
    parts = build_components(vidtok.RECIPES.create("dicode_tiny", head=head, tiny=True))
    assert type(parts["head"]) is cls
    assert parts["head"].config["hidden_size"] == parts["model"].config.hidden_size


def test_ablation_overrides():
    cfg = vidtok.RECIPES.create("dicode_tiny", num_components=8)
    assert cfg.head.name == "gmm" and cfg.head.kwargs["num_components"] == 8
    more = vidtok.RECIPES.create("dicode_tiny", num_deep_tokens=32)
    assert more.video_tokenizer.kwargs["num_queries"] == 32 and more.video_lm["num_tokens"] == 32
    assert more.video_tokenizer.pretrained is None  # the shipped tokenizer has 16 tokens
    assert vidtok.RECIPES.create("dicode_tiny").video_tokenizer.pretrained == "vidtok:deep_tokens_shapes"
    spec = vidtok.RECIPES.create("dicode_tiny", head=ComponentSpec("gmm", {"num_components": 4})).head
    assert spec.kwargs["num_components"] == 4
    diffusion = vidtok.RECIPES.create("dicode_tiny", head="diffusion_mlp").head.kwargs  # sized for the 128-wide LM
    assert (diffusion["width"], diffusion["depth"], diffusion["num_timesteps_per_token"]) == (128, 3, 2)
    assert vidtok.RECIPES.create("dicode_tiny", head="diffusion_mlp", tiny=True).head.kwargs["width"] == 32
    l2 = vidtok.RECIPES.create("dicode_tiny", head="l2")
    assert [s["options"]["head"] for s in l2.training["stages"]] == ["l2"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"hed": "l2"}, TypeError, "unknown overrides"),
        ({"head": "l2", "num_components": 4}, ValueError, "num_components"),
        ({"head": 3}, TypeError, "head must be"),
        ({"video_lm": [["keyframe_residual", True]]}, TypeError, "video_lm override must be a dict"),
    ],
)
def test_bad_overrides(kwargs, error, match):
    with pytest.raises(error, match=match):
        vidtok.RECIPES.create("dicode_tiny", **kwargs)


def test_unknown_head_name_lists_the_heads():
    # Refused when the recipe is created, not only when it is built.
    with pytest.raises(KeyError, match="unknown head 'gmn'.*gmm"):
        vidtok.RECIPES.create("dicode_tiny", head="gmn", tiny=True)


def test_tiny_recipe_with_the_shipped_tokenizer_builds():
    parts = build_components(vidtok.RECIPES.create("dicode_tiny"))
    tok = parts["video_tokenizer"]
    assert tok.token_dim == 64 and tok.tokens_per_step(32, 32) == 16
    assert len(parts["text_tokenizer"]) <= parts["backbone"].get_input_embeddings().num_embeddings


def test_pretrained_tokenizer_with_another_token_count(tmp_path):
    from vidtok.tokenizers.deep_tokens import DeepTokenizer

    DeepTokenizer(**{**DeepTokenizer.tiny_config(), "num_queries": 8}).save_pretrained(tmp_path)
    # The folder's 8 tokens win over the recipe's 16: the video LM must be sized for them.
    cfg = vidtok.RECIPES.create("dicode_tiny", tiny=True, tokenizer_pretrained=str(tmp_path))
    with pytest.raises(
        ValueError, match=r"tokenizer gives 8 tokens per keyframe, the model expects 4.*num_deep_tokens"
    ):
        build_components(cfg)
    cfg = vidtok.RECIPES.create("dicode_tiny", tiny=True, tokenizer_pretrained=str(tmp_path), num_deep_tokens=8)
    parts = build_components(cfg)
    assert parts["video_tokenizer"].tokens_per_step(32, 32) == parts["model"].config.num_tokens == 8


@pytest.mark.parametrize(
    ("name", "width", "params"),
    [
        ("dicode_gpt2", 768, 124.4e6),
        ("dicode_gpt2_medium", 1024, 354.8e6),
        ("dicode_gpt2_large", 1280, 774.0e6),
        ("dicode_llama3_2_1b", 2048, 1235.8e6),
        ("dicode_llama3_2_3b", 3072, 3212.7e6),
    ],
)
def test_paper_recipes_have_the_paper_sizes(name, width, params):
    cfg = vidtok.RECIPES.create(name)
    backbone = vidtok.BACKBONES.create(cfg.backbone.name, **cfg.backbone.kwargs, device="meta")
    assert abs(sum(p.numel() for p in backbone.parameters()) - params) < 0.1e6
    assert cfg.video_lm["hidden_size"] == width and cfg.video_lm["text_length"] == 80
    assert cfg.video_tokenizer.kwargs["num_queries"] == 16 and cfg.video_tokenizer.kwargs["token_dim"] == 1024
    # DiCoDe §4.1: the GMM head predicts 16 x 1024 x 2 + 16 = 32784 numbers per token.
    with torch.device("meta"):
        head = vidtok.HEADS.create(cfg.head.name, **cfg.head.kwargs)
    outputs = [m.out_features for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert outputs == 32784
