"""The Shapes example scripts run end to end at toy sizes (they produce the shipped model and the docs' tables)."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(*args: str, cwd: Path) -> str:
    cmd = [sys.executable, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_train_dicode_shapes_trains_evaluates_exports_and_rescores(tmp_path):
    """Progressive L2 -> Gaussian training on a tiny token cache, the held-out evaluation, the export, and
    ``--evaluate-only`` on the export with language-model guidance, a temperature and another length."""
    run = tmp_path / "run"
    _run(
        str(EXAMPLES / "train_dicode_shapes.py"),
        *("--output-dir", str(run), "--export", str(tmp_path / "export")),
        *("--head", "gaussian", "--videos", "8", "--keyframes", "3", "--steps", "4", "--batch-size", "4"),
        *("--eval-prompts", "2", "--diversity-seeds", "2", "--val-videos", "4", "--threads", "1"),
        cwd=tmp_path,
    )
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 4
    final = summary["final"]
    for key in ("color", "shape", "size", "motion", "joint"):
        assert 0.0 <= final[key] <= 1.0
    assert math.isfinite(final["validation_nll"])  # the Gaussian head defines a density
    div = final["diversity"]
    assert div["seeds"] == 2 and 0 <= div["missing"] <= 2 and div["distinct"] <= 2 - div["missing"]
    assert div["distinct"] >= 1 or div["missing"] == 2  # a video without the red object is no outcome
    stages = [json.loads(line)["stage"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert set(stages) <= {"l2", "gaussian"}
    assert not (tmp_path / "export" / "video_lm").exists()  # the AR model's folder is named after the component
    lm_config = json.loads((tmp_path / "export" / "model" / "config.json").read_text())
    assert lm_config["context_keyframes"] == 3  # trained on 3-keyframe sequences

    out = _run(
        str(EXAMPLES / "train_dicode_shapes.py"),
        *("--evaluate-only", str(tmp_path / "export"), "--eval-prompts", "2", "--diversity-seeds", "1"),
        *("--guidance-scale", "1.5", "--temperature", "0.5", "--eval-keyframes", "2", "--eval-seeds", "3"),
        *("--threads", "1"),
        cwd=tmp_path,
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["guidance_scale"] == 1.5 and result["temperature"] == 0.5 and result["keyframes"] == 2
    assert result["seeds"] == [3] and 0.0 <= result["joint"] <= 1.0 and result["diversity"]["seeds"] == 1

    # A still gate added to the exported model and trained alone: everything else stays as it was.
    gate = [
        str(EXAMPLES / "train_dicode_shapes.py"),
        *("--output-dir", str(tmp_path / "gate"), "--cache-dir", str(run / "token_cache")),
        *("--init-from", str(tmp_path / "export"), "--video-lm", '{"still_gate": true}'),
        *("--head", "gaussian", "--videos", "8", "--keyframes", "3", "--steps", "2", "--batch-size", "4"),
        *("--eval-prompts", "1", "--diversity-seeds", "1", "--val-videos", "4", "--threads", "1"),
    ]
    bad = subprocess.run([sys.executable, *gate, "--train-only", "nope"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode != 0 and "train_only: ['nope'] matches no parameter" in bad.stderr
    _run(*gate, "--train-only", "video_lm.still_head", "--export", str(tmp_path / "gated"), cwd=tmp_path)
    # Continuing a gated model without asking for the gate would drop it: a clear error instead.
    plain = [a if a != str(tmp_path / "export") else str(tmp_path / "gated") for a in gate]
    plain = plain[: plain.index("--video-lm")] + plain[plain.index("--video-lm") + 2 :]
    bad = subprocess.run([sys.executable, *plain], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode != 0 and "has a still gate: add --video-lm" in bad.stderr
    from vidtok.pipelines.text_to_video import TextToVideo

    before, after = TextToVideo.from_pretrained(tmp_path / "export"), TextToVideo.from_pretrained(tmp_path / "gated")
    assert after.model.config.still_gate and after.model.still_head is not None
    for name in ("backbone", "model", "head"):
        old, new = before.components[name].state_dict(), after.components[name].state_dict()
        assert set(new) - set(old) == ({k for k in new if k.startswith("still_head.")} if name == "model" else set())
        for key, value in old.items():
            assert torch.equal(new[key], value), (name, key)


@pytest.mark.slow
def test_train_deep_tokenizer_shapes_then_a_new_decoder_on_its_tokens(tmp_path):
    """A toy run of the tokenizer script, then ``--init-from --freeze-tokens --config``: a new decoder (here a
    full-resolution refinement) trained on the first run's tokens, which stay bit-identical."""
    import torch

    from vidtok.tokenizers.deep_tokens import DeepTokenizer

    common = ("--train-videos", "4", "--eval-videos", "2", "--batch-size", "2", "--eval-steps", "1")
    common += ("--eval-every", "1", "--threads", "1")
    script = str(EXAMPLES / "train_deep_tokenizer_shapes.py")
    base, new = tmp_path / "base", tmp_path / "new"
    _run(script, "--output-dir", str(tmp_path / "run0"), "--export", str(base), "--preview-steps", "1",
         "--steps", "1", *common, cwd=tmp_path)  # fmt: skip
    refine = '{"denoiser_kwargs": {"spatial_refine_channels": 8}, "preview_loss": "l1"}'
    cache = tmp_path / "all.npz"
    out = _run(script, "--output-dir", str(tmp_path / "run1"), "--export", str(new), "--init-from", str(base),
               "--freeze-tokens", "--config", refine, "--preview-steps", "2", "--steps", "0", *common,
               "--train-split", "all", "--train-cache", str(cache), cwd=tmp_path)  # fmt: skip
    assert "newly initialized" in out
    # --train-split all renders from the split with the held-out (color, shape) pairs.
    from vidtok.shapes import ShapesConfig, generate

    expected = generate(4, ShapesConfig(resolution=32, num_frames=9, fps=8.0, split="all", seed=0))[1]
    assert [str(c) for c in np.load(cache)["captions"]] == expected
    # --minutes stops after an evaluation with a checkpoint; --resume finishes the same run from it.
    stopped = ("--output-dir", str(tmp_path / "run2"), "--export", str(tmp_path / "run2_best"), "--init-from",
               str(base), "--preview-steps", "3", "--steps", "0", *common)  # fmt: skip
    out = _run(script, *stopped, "--minutes", "0", cwd=tmp_path)
    assert "time budget of 0.0 minutes reached at step 1" in out
    # An evaluation logged after the checkpoint (as a crash would leave it) belongs to a discarded run.
    with (tmp_path / "run2" / "eval.jsonl").open("a") as f:
        f.write(json.dumps({"step": 2, "psnr": 99.0, "score_overall": 1.0}) + "\n")
    _run(script, *stopped, "--resume", cwd=tmp_path)
    assert json.loads((tmp_path / "run2" / "summary.json").read_text())["steps"] == 3
    log = (tmp_path / "run2" / "eval.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [1, 2, 3] and json.loads(log[1])["psnr"] < 99
    a, b = DeepTokenizer.from_pretrained(base).eval(), DeepTokenizer.from_pretrained(new).eval()
    assert b.config.denoiser_kwargs["spatial_refine_channels"] == 8 and b.config.preview_loss == "l1"
    video = torch.rand(1, 3, 9, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.equal(a.encode(video).tokens, b.encode(video).tokens)
    # A new decoder needs frozen tokens, and only decoder keys may change.
    for extra, message in (((), "needs --freeze-tokens"), (("--freeze-tokens",), "could change the tokens")):
        config = refine if not extra else '{"num_queries": 8}'
        cmd = [sys.executable, script, "--output-dir", str(tmp_path / "bad"), "--init-from", str(base)]
        cmd += ["--config", config, *extra, *common]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
        assert res.returncode != 0 and message in res.stderr, res.stderr[-2000:]


def test_augment_caption_color_dropout():
    import torch

    from vidtok.data.shapes_training import augment_caption
    from vidtok.shapes import COLORS

    caption = "a large magenta square moves left and a small red circle stays still"
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    gen_a, gen_b, gen_c = g(), g(), g()
    plain = [augment_caption(caption, gen_a) for _ in range(50)]
    # Off by default, and off draws nothing: the augmentation stream of earlier runs is unchanged.
    assert plain == [augment_caption(caption, gen_b, color_dropout=0.0) for _ in range(50)]
    assert all("magenta" in c and "red" in c for c in plain)
    dropped = [augment_caption(caption, gen_c, color_dropout=1.0) for _ in range(50)]
    assert not any(w in COLORS for c in dropped for w in c.split())
    assert all(" and " in c and c.startswith("a ") for c in dropped)


@pytest.mark.slow
def test_ablate_token_counts_with_a_tokenizer_trained_for_8_tokens(tmp_path):
    """Table 3 at toy size: a tokenizer trained with 8 deep tokens, then the ablation script trains and scores
    a video LM sized for them next to the 16-token row; 32 without a tokenizer is reported as not run."""
    tok8 = tmp_path / "tok8"
    _run(str(EXAMPLES / "train_deep_tokenizer_shapes.py"), "--output-dir", str(tmp_path / "t"), "--export",
         str(tok8), "--config", '{"num_queries": 8}', "--preview-steps", "1", "--steps", "1", "--train-videos",
         "4", "--eval-videos", "2", "--batch-size", "2", "--eval-steps", "1", "--eval-every", "1", "--threads",
         "1", cwd=tmp_path)  # fmt: skip
    out = _run(str(EXAMPLES / "ablate_heads_shapes.py"), "--output-dir", str(tmp_path / "ab"), "--heads",
               "--tokenizers", f"8={tok8}", "--steps", "2", "--videos", "8", "--threads", "1",
               "--keyframes", "3", "--batch-size", "4", "--eval-prompts", "2", "--diversity-seeds", "2",
               "--val-videos", "4", cwd=tmp_path)  # fmt: skip
    lm = json.loads((tmp_path / "ab" / "tokens_8" / "summary.json").read_text())
    assert lm["steps"] == 2 and math.isfinite(lm["final"]["validation_nll"])
    table = (tmp_path / "ab" / "results.md").read_text()
    assert "Heads" not in table and "| 32 | not run" in table
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert rows["8"].count("|") == rows["16"].count("|") == 10 and "not run" not in rows["8"] + rows["16"]
    assert "deep tokens 32: not run" in out


@pytest.mark.slow
def test_hitvideo_tokenizer_training_then_the_masking_and_level_studies(tmp_path):
    """The HiTVideo tokenizer script trains its progressive stages and exports; the studies script fine-tunes a
    copy per masking strategy and reports PSNR and tokens masked, then compares tokenizers."""
    config = json.dumps(
        {**{"base_channels": 8, "latent_channels": 16}, "level_bits": [3, 6], "level_strides": [[1, 2]]}
    )
    _run(
        str(EXAMPLES / "train_hitvideo_tokenizer_shapes.py"),
        *("--output-dir", str(tmp_path / "run"), "--export", str(tmp_path / "best"), "--config", config),
        *("--level-steps", "2,2", "--batch-size", "2", "--train-videos", "8", "--eval-videos", "2"),
        *("--eval-every", "2", "--threads", "1"),
        cwd=tmp_path,
    )
    stages = [json.loads(line)["stage"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert stages[0] == "levels1" and stages[-1] == "levels2"
    assert (tmp_path / "best" / "config.json").is_file()
    _run(
        str(EXAMPLES / "hitvideo_tokenizer_studies_shapes.py"),
        *("--tokenizer", str(tmp_path / "best"), "--compare", str(tmp_path / "best"), "--steps", "1"),
        *("--videos", "2", "--train-videos", "4", "--threads", "1", "--out", str(tmp_path / "studies.json")),
        cwd=tmp_path,
    )
    report = json.loads((tmp_path / "studies.json").read_text())
    assert set(report["masking"]) == {"none", "repeat", "zero", "learned"}
    for name, row in report["masking"].items():
        assert math.isfinite(row["17f"]["psnr"]) and row["17f"]["tokens"] > 0
        if name != "none":
            assert 0 < row["17f"]["masked"] <= 0.85  # the cap holds
    assert report["levels"][str(tmp_path / "best")]["levels"] == 2


@pytest.mark.slow
def test_hitvideo_tokenizer_script_adds_the_gan_in_the_two_optimizer_mode(tmp_path):
    """--gan-weight trains the tokenizer inside AdversarialTraining (HiTVideo §3.2's GAN term); the tokenizer
    itself is evaluated and exported."""
    config = json.dumps({"base_channels": 8, "latent_channels": 16, "level_bits": [3, 6], "level_strides": [[1, 2]]})
    _run(
        str(EXAMPLES / "train_hitvideo_tokenizer_shapes.py"),
        *("--output-dir", str(tmp_path / "run"), "--export", str(tmp_path / "best"), "--config", config),
        *("--level-steps", "1,3", "--batch-size", "2", "--train-videos", "8", "--eval-videos", "2"),
        *("--eval-every", "2", "--threads", "1", "--gan-weight", "0.1", "--gan-start", "1"),
        cwd=tmp_path,
    )
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    assert any(k.startswith("gan/") for k in keys), sorted(keys)
    assert all(math.isfinite(v) for row in rows for k, v in row.items() if isinstance(v, float)), rows
    from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer

    tok = HierarchicalLFQTokenizer.from_pretrained(tmp_path / "best")  # the tokenizer alone, not the wrapper
    assert tok.num_levels == 2


@pytest.mark.slow
def test_nova_vae_script_trains_evaluates_and_exports_with_latent_stats(tmp_path):
    """The nova_tiny VAE script trains the continuous VAE, scores held-out reconstructions and exports the best
    weights with the latent statistics measured on training clips (NOVA's scale/shift)."""
    from vidtok.tokenizers.continuous_vae import ContinuousVAETokenizer

    config = json.dumps({"vae_config": {"base_dim": 8}})
    _run(
        str(EXAMPLES / "train_nova_vae_shapes.py"),
        *("--output-dir", str(tmp_path / "run"), "--export", str(tmp_path / "best"), "--config", config),
        *("--steps", "2", "--batch-size", "2", "--train-videos", "8", "--eval-videos", "2", "--stats-videos", "4"),
        *("--eval-every", "2", "--threads", "1"),
        cwd=tmp_path,
    )
    evals = [json.loads(line) for line in (tmp_path / "run" / "eval.jsonl").read_text().splitlines()]
    assert evals and math.isfinite(evals[-1]["psnr"])
    tok = ContinuousVAETokenizer.from_pretrained(tmp_path / "best")
    assert len(tok.config["latent_scale"]) == len(tok.config["latent_shift"]) == 4
    assert all(math.isfinite(v) and v > 0 for v in tok.config["latent_scale"])


@pytest.mark.slow
def test_evaluate_nova_shapes_reports_every_protocol(tmp_path):
    """The NOVA evaluation script on a tiny random pipeline: held-out prompts, diversity, image-to-video and
    extrapolation, in one JSON document."""
    import vidtok
    from vidtok.pipelines import TextToVideo

    torch.manual_seed(0)
    TextToVideo.from_recipe(vidtok.RECIPES.create("nova_tiny", tiny=True)).save_pretrained(tmp_path / "pipe")
    _run(
        str(EXAMPLES / "evaluate_nova_shapes.py"),
        *("--model", str(tmp_path / "pipe"), "--keyframes", "2", "--prompts", "2", "--seeds", "0"),
        *("--i2v-clips", "4", "--head-steps", "2", "--set-steps", "1", "--guidance-scale", "2"),
        *("--threads", "1", "--out", str(tmp_path / "eval.json"), "--recon-frames", "5,9", "--recon-clips", "2"),
        cwd=tmp_path,
    )
    report = json.loads((tmp_path / "eval.json").read_text())
    assert set(report) >= {"text_to_video", "diversity", "image_to_video", "extrapolation", "reconstruction"}
    assert set(report["reconstruction"]) == {"5", "9"}
    assert all(
        math.isfinite(r["psnr"]) and math.isfinite(r["psnr_last_frame"]) for r in report["reconstruction"].values()
    )
    _run(
        str(EXAMPLES / "evaluate_nova_shapes.py"),
        *("--tokenizer", str(tmp_path / "pipe" / "video_tokenizer"), "--recon-frames", "5", "--recon-clips", "2"),
        *("--out", str(tmp_path / "vae.json")),
        cwd=tmp_path,
    )
    assert set(json.loads((tmp_path / "vae.json").read_text())) == {"tokenizer", "reconstruction"}
    assert 0 <= report["text_to_video"]["color"] <= 1 and report["diversity"]["seeds"] == 8
    assert report["image_to_video"]["frames"] > 0 and 0 <= report["image_to_video"]["kept"] <= 1
    ceiling = report["image_to_video"]["tokenizer_ceiling"]  # the same frames judged on the VAE's reconstructions
    assert ceiling["frames"] == report["image_to_video"]["frames"] and 0 <= ceiling["kept"] <= 1
    assert report["extrapolation"]["keyframes"] == 4 and len(report["extrapolation"]["color"]) == 4
    # --i2v-clips 0 and --extrapolate 0 leave those reports out (the prompt protocol alone, e.g. for more seeds).
    _run(
        str(EXAMPLES / "evaluate_nova_shapes.py"),
        *("--model", str(tmp_path / "pipe"), "--keyframes", "2", "--prompts", "2", "--seeds", "0,1"),
        *("--i2v-clips", "0", "--extrapolate", "0", "--recon-frames", "", "--head-steps", "2", "--set-steps", "1"),
        *("--out", str(tmp_path / "t2v.json")),
        cwd=tmp_path,
    )
    assert set(json.loads((tmp_path / "t2v.json").read_text())) == {
        "model", "keyframes", "sampling", "text_to_video", "diversity"
    }  # fmt: skip


def test_text_encoder_probe_reads_a_locally_saved_encoder(tmp_path):
    """The MiniLM probe runs on any local BERT folder (here a tiny random one with a Shapes word vocabulary):
    every row and column is there and the one-hot word table reads every fact."""
    _tiny_bert_with_shapes_words(tmp_path / "bert")
    _run(
        str(EXAMPLES / "probe_text_encoder_shapes.py"),
        *("--model-path", str(tmp_path / "bert"), "--json", str(tmp_path / "probe.json")),
        cwd=tmp_path,
    )
    report = json.loads((tmp_path / "probe.json").read_text())
    assert report["train_prompts"] == 180 and report["heldout_prompts"] == 30
    table = report["accuracy"]
    assert set(table) == {"minilm_tokens", "minilm_pooled", "word_table"}
    columns = {"motion", "color", "shape", "size", "motion_nn", "2obj_first", "2obj_second"}
    assert all(set(row) == columns and all(0 <= v <= 1 for v in row.values()) for row in table.values())
    assert all(v == 1.0 for v in table["word_table"].values())


def test_export_nova_shapes_stores_fp16_and_checks_generation(tmp_path):
    """The shipped-folder export: fp16 on disk (about half the bytes), fp32 when loaded, no training-machine
    paths, the evaluated guidance saved as the model's default, and it refuses to write when the rounding moves
    generation past --tolerance."""
    import vidtok
    from vidtok.pipelines import TextToVideo

    torch.manual_seed(0)
    pipe = TextToVideo.from_recipe(vidtok.RECIPES.create("nova_tiny", tiny=True))
    with torch.no_grad():  # an untrained head predicts zero velocity: give generation something to round
        for param in pipe.head.parameters():
            param.normal_(0, 0.3)
    pipe.save_pretrained(tmp_path / "pipe")
    args = ("--pipeline", str(tmp_path / "pipe"), "--keyframes", "2")
    out = _run(
        str(EXAMPLES / "export_nova_shapes.py"), *args, "--out", str(tmp_path / "shipped"), "--guidance-scale", "2.5",
        cwd=tmp_path,
    )  # fmt: skip
    assert "mean |Δpixel|" in out
    size = lambda d: sum(p.stat().st_size for p in d.rglob("*.safetensors"))  # noqa: E731
    assert size(tmp_path / "shipped") < 0.6 * size(tmp_path / "pipe")
    assert not any("_name_or_path" in p.read_text() for p in (tmp_path / "shipped").rglob("*.json"))
    shipped = TextToVideo.from_pretrained(tmp_path / "shipped")
    assert {p.dtype for p in shipped.head.parameters()} == {torch.float32}
    assert shipped.model.default_guidance_scale == 2.5 and pipe.model.default_guidance_scale == 1.0
    cmd = [sys.executable, str(EXAMPLES / "export_nova_shapes.py"), *args, "--out", str(tmp_path / "strict"),
           "--tolerance", "0"]  # fmt: skip
    strict = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert strict.returncode != 0 and "--tolerance" in strict.stderr
    assert not (tmp_path / "strict").exists() and not (tmp_path / "strict.partial").exists()


def test_export_nova_shapes_swaps_in_a_decoder_fine_tune_only(tmp_path):
    """--tokenizer ships a VAE whose decoder changed (the AR model's tokens are the same) and refuses one whose
    encoder changed, before writing anything."""
    import vidtok
    from vidtok.pipelines import TextToVideo

    torch.manual_seed(0)
    pipe = TextToVideo.from_recipe(vidtok.RECIPES.create("nova_tiny", tiny=True))
    pipe.save_pretrained(tmp_path / "pipe")
    vae = pipe.video_tokenizer
    encoder = {id(p) for p in vae.encoder_parameters()}
    with torch.no_grad():
        decoder = [p for p in vae.parameters() if id(p) not in encoder]
        for param in decoder:
            param.add_(0.01)
    vae.save_pretrained(tmp_path / "decoder_tuned")
    with torch.no_grad():
        vae.encoder_parameters()[0].add_(0.01)
    vae.save_pretrained(tmp_path / "encoder_tuned")
    args = ("--pipeline", str(tmp_path / "pipe"), "--keyframes", "2", "--fp32")
    out = _run(
        str(EXAMPLES / "export_nova_shapes.py"), *args, "--out", str(tmp_path / "shipped"),
        "--tokenizer", str(tmp_path / "decoder_tuned"), cwd=tmp_path,
    )  # fmt: skip
    assert "makes the pipeline's tokens" in out
    shipped = TextToVideo.from_pretrained(tmp_path / "shipped").video_tokenizer.state_dict()
    tuned = type(vae).from_pretrained(tmp_path / "decoder_tuned").state_dict()
    assert shipped.keys() == tuned.keys() and all(torch.equal(shipped[k], tuned[k]) for k in tuned)
    cmd = [sys.executable, str(EXAMPLES / "export_nova_shapes.py"), *args, "--out", str(tmp_path / "refused"),
           "--tokenizer", str(tmp_path / "encoder_tuned")]  # fmt: skip
    refused = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert refused.returncode != 0 and "other encoder weights" in refused.stderr
    assert not (tmp_path / "refused").exists() and not (tmp_path / "refused.partial").exists()


def _tiny_bert_with_shapes_words(folder: Path, width: int = 16) -> str:
    """A tiny random BERT whose word-piece vocabulary splits two Shapes words (``mage ##nta``, ``bounce ##s``)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from vidtok.shapes.grammar import vocabulary

    words = [w for w in vocabulary() if w not in ("magenta", "bounces")]
    vocab = folder.parent / f"{folder.name}-vocab.txt"
    vocab.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, "mage", "##nta", "bounce", "##s"])
    )
    BertTokenizerFast(vocab=str(vocab)).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=9 + len(words), hidden_size=width, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)  # fmt: skip
    BertModel(config).save_pretrained(folder)
    return str(folder)


def test_retarget_text_encoder_maps_a_word_table_model_onto_an_encoder(tmp_path):
    """A word-table nova model moves onto a frozen encoder: every other weight is kept, ``text_proj`` is the
    least-squares map to the table's rows (word pieces split, the null prompt fitted), and the result loads,
    reads encoder states and generates."""
    import vidtok
    from vidtok.pipelines import TextToVideo

    torch.manual_seed(0)
    pipe = TextToVideo.from_recipe(vidtok.RECIPES.create("nova_tiny", tiny=True))
    pipe.save_pretrained(tmp_path / "pipe")
    bert = _tiny_bert_with_shapes_words(tmp_path / "bert", width=64)  # wide enough for an exact linear read-out
    from vidtok.data.token_cache import build_token_cache

    cache = tmp_path / "cache"
    captions = ["a small magenta circle bounces", "a large red square moves left", "a blue triangle",
                "a small magenta triangle bounces and a large cyan circle moves up"]  # fmt: skip
    videos = [{"video": torch.rand(3, 5, 16, 16) * 2 - 1, "caption": c} for c in captions]
    build_token_cache(pipe.video_tokenizer, videos, cache)
    out = _run(
        str(EXAMPLES / "retarget_text_encoder_nova.py"), "--model", str(tmp_path / "pipe"), "--text-encoder", bert,
        "--captions", str(cache), "--text-length", "20", "--ridge", "1e-6", "--out", str(tmp_path / "moved"),
        cwd=tmp_path,
    )  # fmt: skip
    assert "fitted on 4 captions (100 positions): nearest-row accuracy 1.0000" in out
    moved = TextToVideo.from_pretrained(tmp_path / "moved")
    assert moved.model.reads_text_states and moved.model.config.text_length == 20
    assert moved.model.config.text_embed_dim == 64 and moved.text_encoder is not None
    kept = {k: v for k, v in pipe.model.state_dict().items() if not k.startswith("text_embedding.")}
    now = moved.model.state_dict()
    assert set(now) == set(kept) | {"text_proj.weight", "text_proj.bias"}
    assert all(torch.equal(now[k], v) for k, v in kept.items())
    for name in ("backbone", "head", "video_tokenizer"):
        a, b = getattr(pipe, name).state_dict(), getattr(moved, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    # The map sends a prompt's word pieces to its words' rows: as a multiset, the same rows as the table.
    from vidtok.models.base import encode_text
    from vidtok.models.text_tokenizers import encode_prompts

    prompt = "a small magenta circle bounces"
    ids = encode_prompts(moved.text_tokenizer, [prompt], length=20)
    mapped = moved.model.text_proj(encode_text(moved.text_encoder, ids, moved.text_tokenizer.pad_token_id))[0]
    table = pipe.model.text_embedding.weight
    rows = torch.cdist(mapped, table).argmin(1)
    words = encode_prompts(pipe.text_tokenizer, [prompt], length=20)[0]
    assert sorted(rows.tolist()) == sorted(words.tolist())
    kw = {"num_keyframes": 2, "output_type": "latent", "progress": False}
    tokens = moved(prompt, generator=torch.Generator().manual_seed(0), **kw).tokens
    assert tokens.shape[1] == 2 and torch.isfinite(tokens).all()
    cmd = [sys.executable, str(EXAMPLES / "retarget_text_encoder_nova.py"), "--model", str(tmp_path / "moved"),
           "--text-encoder", bert, "--captions", str(cache), "--out", str(tmp_path / "again")]  # fmt: skip
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert again.returncode != 0 and "already reads text-encoder states" in again.stderr


def test_export_nova_shapes_links_components_stored_elsewhere(tmp_path):
    """--link stores the frozen text encoder and the VAE as links to the same weights (an fp32 encoder; an fp16
    copy of the VAE, as the shipped VAE is stored), the linked folder generates as the copy does, and a VAE whose
    values differ from the link target is refused before anything is written."""
    import vidtok
    from vidtok.pipelines import TextToVideo

    bert = _tiny_bert_with_shapes_words(tmp_path / "bert")
    kwargs = {"text_embed_dim": 16, "text_vocab_size": None}
    torch.manual_seed(0)
    pipe = TextToVideo.from_recipe(
        vidtok.RECIPES.create("nova_tiny", tiny=True, text_encoder=bert, text_tokenizer=bert, model_kwargs=kwargs)
    )
    pipe.video_tokenizer.half().float()  # as a VAE loaded from fp16 storage: values a fp16 copy keeps exactly
    pipe.save_pretrained(tmp_path / "pipe")
    copy.deepcopy(pipe.video_tokenizer).half().save_pretrained(tmp_path / "vae16")
    with torch.no_grad():
        next(iter(pipe.video_tokenizer.parameters())).add_(0.01)
    pipe.video_tokenizer.save_pretrained(tmp_path / "vae_other")
    args = ("--pipeline", str(tmp_path / "pipe"), "--keyframes", "2", "--link", f"text_encoder={bert}")
    out = _run(
        str(EXAMPLES / "export_nova_shapes.py"), *args, "--out", str(tmp_path / "shipped"),
        "--link", f"video_tokenizer={tmp_path / 'vae16'}", "--link-hint", "text_encoder=pip install it", cwd=tmp_path,
    )  # fmt: skip
    assert "text_encoder: linked to" in out and "video_tokenizer: linked to" in out
    for name in ("text_encoder", "video_tokenizer"):
        assert [p.name for p in (tmp_path / "shipped" / name).iterdir()] == ["component_link.json"]
    assert (
        json.loads((tmp_path / "shipped" / "text_encoder" / "component_link.json").read_text())["hint"]
        == "pip install it"
    )
    shipped = TextToVideo.from_pretrained(tmp_path / "shipped")
    assert shipped.model.reads_text_states and shipped.text_encoder is not None
    cmd = [sys.executable, str(EXAMPLES / "export_nova_shapes.py"), *args, "--out", str(tmp_path / "refused"),
           "--link", f"video_tokenizer={tmp_path / 'vae_other'}"]  # fmt: skip
    refused = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert refused.returncode != 0 and "tensors differ" in refused.stderr
    assert not (tmp_path / "refused").exists()
