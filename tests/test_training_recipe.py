"""``vidtok train`` on a recipe run file: a tiny dicode_tiny trains, logs, evaluates and exports a pipeline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from vidtok.cli import main
from vidtok.training import read_metrics
from vidtok.training.recipe import load_recipe_run, resolve_stages

ROOT = Path(__file__).resolve().parents[1]

# Everything at unit-test size: the tiny recipe (16x16 frames, a 2-layer 32-wide GPT-2, 4 tokens per keyframe),
# 16 training videos of 3 keyframes, two held-out prompts with one seed and 2 decoder steps.
TINY = {
    "recipe": "dicode_tiny",
    "overrides": {"tiny": True},
    "data": {"videos": 16, "steps_per_sample": 3, "val_videos": 4},
    "evaluation": {
        "every": 6, "prompts": 2, "seeds": [0], "keyframes": 2, "num_inference_steps": 2, "diversity_seeds": 2,
    },
    "trainer": {"max_steps": 12, "batch_size": 8, "log_every": 1, "save_every": 6, "progress_bar": False,
                "optimizer": {"lr": 0.005}},
}  # fmt: skip


def write(tmp_path, run=TINY, name="tiny.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(run))
    return path


def test_train_a_tiny_recipe_logs_evaluates_and_exports_a_pipeline(tmp_path, capsys):
    from vidtok.pipelines.text_to_video import TextToVideo

    out = tmp_path / "run"
    assert main(["train", str(write(tmp_path)), "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "trained 12 steps" in printed and f"pipeline exported to {out / 'pipeline'}" in printed

    # DiCoDe's progressive schedule from the recipe (supplementary §6): 3 L2 steps, then 9 GMM steps.
    records = read_metrics(out)
    assert [r["stage"] for r in records] == ["l2"] * 3 + ["gmm"] * 9
    losses = [r["loss"] for r in records]
    assert all(math.isfinite(v) for v in losses)
    gmm = losses[3:]
    assert gmm[-1] < gmm[0]  # learning: the GMM loss falls over the stage
    assert sum(gmm[-3:]) < sum(gmm[:3])

    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [6, 12]
    summary = json.loads((out / "summary.json").read_text())
    final = summary["final"]
    assert summary["steps"] == 12 and final["step"] == 12
    for key in ("color", "shape", "size", "motion", "joint"):
        assert 0.0 <= final[key] <= 1.0
    assert math.isfinite(final["validation_nll"]) and final["diversity"]["seeds"] == 2
    assert summary["config"]["recipe"] == "dicode_tiny"
    assert json.loads((out / "run_config.json").read_text())["trainer"]["max_steps"] == 12

    pipe = TextToVideo.from_pretrained(out / "pipeline")
    assert type(pipe.model).__name__ == "DiCoDeLM" and type(pipe.head).__name__ == "GMMHead"
    assert pipe.model.config.context_keyframes == 3  # trained on 3-keyframe sequences
    assert (out / "pipeline" / "model").is_dir() and not (out / "pipeline" / "video_lm").exists()
    video = pipe("a red circle moves right", num_keyframes=2, num_inference_steps=1, output_type="np",
                 generator=torch.Generator().manual_seed(0), progress=False).frames  # fmt: skip
    assert video.shape[:2] == (1, 5) and video.shape[-1] == 3
    # The exported weights are the trained ones (the final stage's head).
    from safetensors.torch import load_file

    state = load_file(out / "model" / "model.safetensors")
    head = {k.removeprefix("heads.gmm."): v for k, v in state.items() if k.startswith("heads.gmm.")}
    assert head and all(torch.equal(pipe.head.state_dict()[k], v) for k, v in head.items())


def test_set_overrides_swap_the_head_and_resize_the_run(tmp_path):
    from vidtok.pipelines.text_to_video import TextToVideo

    out = tmp_path / "run"
    args = ["overrides.head=gaussian", "trainer.max_steps=4", "data.videos=8", "evaluation.enabled=false"]
    args += ["data.val_videos=0", f"export={tmp_path / 'exported'}"]
    assert main(["train", str(write(tmp_path)), "--output-dir", str(out), "--set", *args]) == 0
    records = read_metrics(out)
    # A head other than the GMM trains in one stage (the recipe's L2 -> GMM schedule is for the GMM head).
    assert [r["stage"] for r in records] == ["main"] * 4
    assert len(list((out / "token_cache").glob("shard-*.safetensors"))) == 1
    final = json.loads((out / "summary.json").read_text())["final"]
    assert not (out / "eval.jsonl").exists() and set(final) == {"train_minutes_total"}
    pipe = TextToVideo.from_pretrained(tmp_path / "exported")
    assert type(pipe.head).__name__ == "GaussianHead"


def test_select_exports_the_best_checkpoint_and_resume_continues(tmp_path):
    out, export = tmp_path / "run", tmp_path / "best"
    cfg = write(tmp_path)
    args = ["evaluation.select=overall", f"export={export}", "evaluation.diversity_seeds=0", "data.val_videos=0"]
    assert main(["train", str(cfg), "--output-dir", str(out), "--set", *args, "trainer.max_steps=6"]) == 0
    record = json.loads((export / "evaluation.json").read_text())
    assert record["step"] == 6 and record["select"] == "overall"
    # Continue the run to 12 steps: the evaluation at 6 is kept, the export is replaced only by a better one.
    assert main(["train", str(cfg), "--output-dir", str(out), "--set", *args, "--resume"]) == 0
    steps = [json.loads(line)["step"] for line in (out / "eval.jsonl").read_text().splitlines()]
    assert steps == [6, 12]
    evals = [json.loads(line)["overall"] for line in (out / "eval.jsonl").read_text().splitlines()]
    best = json.loads((export / "evaluation.json").read_text())
    assert best["step"] == (12 if evals[1] > evals[0] else 6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluation.evrey=3"], "evaluation.evrey: unknown field (did you mean 'every'?)"),
        (["dataa.videos=3"], "dataa: unknown key of a recipe run (did you mean 'data'?)"),
        (["overrides.nope=1"], "overrides: dicode_tiny: unknown overrides ['nope']"),
        (["recipe=dicode_tinyy"], "recipe: unknown recipe 'dicode_tinyy'"),
        (["trainer.max_stepz=3"], "trainer.max_stepz: unknown field (did you mean 'max_steps'?)"),
        (["data.videos=0"], "data.videos: must be >= 1, got 0"),
        (["evaluation.select=jiont"], "evaluation.select: unknown score 'jiont' (did you mean 'joint'?)"),
        (["trainer.max_steps=null"], "fraction: stages given as fractions need trainer.max_steps"),
        (["overrides.head=nope"], "unknown head 'nope'"),
        (["overrides.head=nope"], "overrides: recipe dicode_tiny: "),
    ],
)
def test_bad_keys_are_clear_errors_naming_the_key(tmp_path, capsys, args, message):
    assert main(["train", str(write(tmp_path)), "--output-dir", str(tmp_path / "run"), "--set", *args]) == 2
    err = capsys.readouterr().err
    assert message in err, err


def test_stage_selection_and_unknown_stage(tmp_path, capsys):
    run = load_recipe_run(write(tmp_path), stages=["gmm"])
    assert [(s.name, s.steps) for s in run.training.stages] == [("gmm", 9)]
    assert main(["train", str(write(tmp_path)), "--stage", "third"]) == 2
    assert "no stage named ['third']; the stages are ['l2', 'gmm']" in capsys.readouterr().err


def test_resolve_stages_rounds_fractions_cumulatively():
    stages = [{"name": "a", "fraction": 1 / 3}, {"name": "b", "fraction": 1 / 3}, {"name": "c", "fraction": 1 / 3}]
    assert [s["steps"] for s in resolve_stages(stages, 10)] == [3, 4, 3]
    assert resolve_stages([{"name": "a", "fraction": 0.01}, {"name": "b", "steps": 5}], 10) == [
        {"name": "b", "steps": 5}
    ]


def test_the_example_config_loads():
    run = load_recipe_run(ROOT / "examples" / "configs" / "dicode_tiny.yaml")
    assert [(s.name, s.steps) for s in run.training.stages] == [("l2", 750), ("gmm", 2250)]
    assert run.config.head.name == "gmm" and run.evaluation.select == "joint"
    assert run.training.optimizer.lr == run.config.training.lr


def test_the_training_module_reads_captions_through_a_recipes_frozen_text_encoder(tmp_path):
    """A recipe with a frozen text encoder (a tiny local BERT standing in for NOVA's Phi-2): its stages' heads
    are built, the captions are encoded by the encoder, only the trained parts get gradients."""
    from transformers import BertConfig, BertModel

    import vidtok
    from vidtok.recipes.base import build_components
    from vidtok.training.recipe import build_training_module, pipeline_of

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=64, hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(cfg).save_pretrained(tmp_path / "encoder")
    recipe = vidtok.RECIPES.create("dicode_tiny", tiny=True, model_kwargs={"text_embed_dim": 24})
    recipe = vidtok.RecipeConfig.from_dict({**recipe.to_dict(), "text_encoder": str(tmp_path / "encoder")})
    parts = build_components(recipe)
    run = load_recipe_run({"recipe": "dicode_tiny", "overrides": {"tiny": True}, "trainer": {"max_steps": 4}})
    module = build_training_module(parts, recipe, run.training.stages)
    assert list(module.heads) == ["l2", "gmm"] and module.text_encoder is parts["text_encoder"]
    n, d = parts["model"].config.num_tokens, parts["model"].config.token_dim
    batch = {"tokens": torch.randn(2, 2, n, d), "caption": ["a red circle moves right", "a blue square"]}
    loss = module.training_step(batch, generator=torch.Generator().manual_seed(0))["loss"]
    loss.backward()
    assert torch.isfinite(loss) and parts["model"].text_proj.weight.grad is not None
    assert all(p.grad is None for p in parts["text_encoder"].parameters())
    assert pipeline_of(module, parts).text_encoder is parts["text_encoder"]


def test_the_export_keeps_a_discrete_tokenizer_in_fp32_unless_fp16_rounds_exactly():
    """fp16 rounding flips some of a discrete tokenizer's codes (0.13-0.23 % for the HiTVideo Shapes one), so a
    run's export stores it in fp16 only when that rounding is exact or the config asks for it."""
    from vidtok.tokenizers.continuous_vae import ContinuousVAETokenizer
    from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer
    from vidtok.training.recipe import export_tokenizer_in_fp16

    torch.manual_seed(0)
    lfq = HierarchicalLFQTokenizer(**HierarchicalLFQTokenizer.tiny_config())
    vae = ContinuousVAETokenizer(**ContinuousVAETokenizer.tiny_config())
    assert lfq.is_discrete and not export_tokenizer_in_fp16(lfq)
    assert export_tokenizer_in_fp16(lfq, True) and not export_tokenizer_in_fp16(vae, False)
    assert export_tokenizer_in_fp16(vae)  # continuous: fp16 as shipped
    lfq.half().float()  # as loaded from fp16 storage: rounding again changes nothing
    assert export_tokenizer_in_fp16(lfq)
    with pytest.raises(Exception, match="export_fp16_tokenizer: expected true, false or null"):
        load_recipe_run({**TINY, "export_fp16_tokenizer": "yes"})
