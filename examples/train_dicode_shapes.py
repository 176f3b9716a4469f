"""Train ``dicode_tiny`` on Shapes end to end: the embedded default model vidtok ships.

DiCoDe §3.3–3.4 in miniature, with the project's own parts:

1. **Tokenizer**: the shipped Shapes deep tokenizer (``examples/train_deep_tokenizer_shapes.py``), frozen.
2. **Token cache**: Shapes videos sampled at one frame per keyframe interval (1 fps: the tokenizer's
   keyframes are 8 frames apart at 8 fps) — DiCoDe likewise encodes long videos at a reduced frame rate —
   rendered with every motion including ``bounces``, encoded once into ``(S, 16, 64)`` tokens with
   :func:`vidtok.data.token_cache.build_token_cache`.
3. **AR training** through :class:`vidtok.training.Trainer`: the recipe's GPT-2 style backbone and video
   LM with DiCoDe's progressive schedule, first an L2 head then the GMM head (supplementary §6), 5 % text
   dropout for CFG, and prompt augmentation so under-specified prompts are learned: the size word and the
   motion phrase are each dropped with probability 0.2 and the shape word becomes ``shape`` with
   probability 0.1.
4. **Evaluation** on held-out (color, shape) prompts (two seeds each), scored from pixels by
   :mod:`vidtok.shapes.scorer`, and export of the :class:`~vidtok.pipelines.TextToVideo` pipeline.

Reproduce the embedded default (one run, 41 min on one CPU thread; ``docs/results.md`` has the scores)::

    python examples/train_dicode_shapes.py --output-dir runs/dicode_shapes --videos 12000 --steps 3000 \\
        --export runs/dicode_shapes/final

The model learns frame indices 0-4 from 5-keyframe videos, so the export records ``context_keyframes=5``:
longer videos slide a 5-keyframe window and re-index the kept keyframes from 0. (Training on 8-keyframe
videos as well, to use the whole 8-keyframe window, cost motion accuracy: see ``docs/results.md``.)
``--resume`` continues an interrupted run from its last checkpoint.
``--evaluate-only PIPELINE`` scores a saved pipeline without training.

``--video-lm '{"keyframe_residual": true}'`` overrides the video LM's config (here: the head models each
token's change from the previous keyframe). ``--head gaussian`` / ``--num-components 8`` / ``--tokenizer DIR``
run the ablations (``examples/ablate_heads_shapes.py`` drives them).

``--train-only PREFIX`` trains only the parameters whose names start with it, everything else frozen. The
shipped model got its still gate that way, fitted alone on the trained model (9.7 min)::

    python examples/train_dicode_shapes.py --output-dir runs/dicode_shapes_gate --cache-dir CACHE \\
        --videos 24000 --steps 2000 --lr 1e-3 --color-dropout 0.2 --init-from runs/dicode_shapes_3/final \\
        --video-lm '{"still_gate": true}' --train-only video_lm.still_head --export runs/dicode_shapes_gate/final
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

import vidtok
from vidtok.data.token_cache import TokenCacheDataset, build_token_cache
from vidtok.models.video_lm import VideoLMForTraining
from vidtok.pipelines.text_to_video import TextToVideo
from vidtok.recipes.base import build_components
from vidtok.shapes import COLORS, HELDOUT_COMBINATIONS, ShapesDataset, analyze_video, score_video
from vidtok.training import Callback, OptimizerConfig, Stage, Trainer, TrainingConfig

SHAPES = ("circle", "square", "triangle")


def augment_caption(caption: str, generator: torch.Generator | None = None, color_dropout: float = 0.0) -> str:
    """Drop the size word / the motion phrase (p = 0.2 each) and generalize the shape (p = 0.1), per object.

    With ``color_dropout`` > 0 the color word is also dropped with that probability, so the model sees every
    shape without its color: the held-out (color, shape) pairs are otherwise pulled toward the shapes their
    color came with in training (measured: large magenta squares drawn as circles, small yellow circles as
    squares).
    """
    rng = random.Random(int(torch.randint(2**31, (1,), generator=generator)))
    out = []
    for phrase in caption.split(" and "):
        words = phrase.split()
        # Drawn only when enabled, so the default keeps the exact augmentation stream of earlier runs.
        if color_dropout and rng.random() < color_dropout:
            words = [w for w in words if w not in COLORS]
        if words[1] in ("small", "large") and rng.random() < 0.2:
            words.pop(1)
        for motion_start in ("moves", "stays", "bounces"):
            if motion_start in words and rng.random() < 0.2:
                words = words[: words.index(motion_start)]
        if rng.random() < 0.1:
            words = ["shape" if w in SHAPES else w for w in words]
        out.append(" ".join(words))
    return " and ".join(out)


def heldout_prompts() -> list[str]:
    """Every held-out (color, shape) pair with both sizes and every linear motion or staying still."""
    motions = ["moves left", "moves right", "moves up", "moves down", "stays still"]
    return [
        f"a {size} {color} {shape} {motion}"
        for color, shape in HELDOUT_COMBINATIONS
        for size in ("small", "large")
        for motion in motions
    ]


@torch.no_grad()
def evaluate(
    pipe: TextToVideo,
    prompts: list[str],
    *,
    seeds=(0, 1),
    keyframes: int = 3,
    steps: int = 10,
    **sampling,
) -> dict:
    """Shapes scores of generated videos: per attribute, and ``joint`` (every stated attribute right).

    ``sampling`` goes to the pipeline: ``guidance_scale`` (the language model's classifier-free guidance, 1 =
    off) and ``temperature`` (``None``: the model's own).
    """
    scores = []
    for seed in seeds:
        for lo in range(0, len(prompts), 16):
            batch = prompts[lo : lo + 16]
            g = torch.Generator().manual_seed(seed * 1000 + lo)
            out = pipe(
                batch,
                num_keyframes=keyframes,
                num_inference_steps=steps,
                generator=g,
                **sampling,
                progress=False,
            )
            scores += [score_video(v, c) for v, c in zip(out.frames, batch, strict=True)]
    result = {}
    for key in ("color", "shape", "size", "motion", "overall"):
        vals = [s[key] for s in scores if not np.isnan(s[key])]
        result[key] = float(np.mean(vals)) if vals else float("nan")
    result["joint"] = float(np.mean([all(s[k] == 1 for k in ("color", "shape", "size", "motion")) for s in scores]))
    return result


@torch.no_grad()
def validation_nll(model: VideoLMForTraining, data: TokenCacheDataset, batch_size: int = 64) -> float:
    """Mean NLL (nats per token) of the final head on held-out token sequences (NaN without a density)."""
    model.eval()
    total, count = 0.0, 0
    for lo in range(0, len(data), batch_size):
        items = [data[i] for i in range(lo, min(lo + batch_size, len(data)))]
        batch = {
            "tokens": torch.stack([it["tokens"].float() for it in items]),
            "caption": [it["caption"] for it in items],
        }
        ids = model.input_ids(batch)
        out = model.video_lm.loss(model.backbone, model.head, ids, batch["tokens"])
        if "nll" not in out:
            return float("nan")
        total, count = total + out["nll"].item() * len(items), count + len(items)
    model.train()
    return total / count


@torch.no_grad()
def diversity(pipe: TextToVideo, prompt: str = "a red shape", seeds: int = 8, keyframes: int = 3, **sampling) -> dict:
    """Distinct (shape, size, motion) outcomes of the red object over seeds of an under-specified prompt.

    Videos without a red object are counted as ``missing``, not as an outcome.
    """
    outcomes = []
    for seed in range(seeds):
        g = torch.Generator().manual_seed(seed)
        out = pipe(prompt, num_keyframes=keyframes, generator=g, progress=False, **sampling)
        red = analyze_video(out.frames[0], ["red"])["red"]
        outcomes.append((red.shape, red.size, red.motion))
    nothing = (None, None, None)
    return {
        "prompt": prompt,
        "distinct": len({o for o in outcomes if o != nothing}),
        "missing": outcomes.count(nothing),
        "seeds": seeds,
        "outcomes": outcomes,
    }


def sampling(args: argparse.Namespace) -> dict:
    """The pipeline's sampling arguments for the evaluation (``--guidance-scale``, ``--temperature``)."""
    return {"guidance_scale": args.guidance_scale, "temperature": args.temperature}


class EvalCallback(Callback):
    """Evaluate the pipeline on held-out prompts every ``--eval-every`` steps and at the end."""

    def __init__(self, args: argparse.Namespace, parts: dict, log: Path) -> None:
        self.args, self.parts, self.log = args, parts, log
        self.start = time.time()

    def run(self, trainer: Trainer, step: int) -> dict:
        model = trainer.accelerator.unwrap_model(trainer.model)
        pipe = pipeline(model, self.parts)
        t0 = time.time()
        prompts = heldout_prompts()[: self.args.eval_prompts]
        scores = evaluate(
            pipe, prompts, seeds=self.args.eval_seeds, keyframes=self.args.eval_keyframes, **sampling(self.args)
        )
        result = {"step": step, "train_minutes": (t0 - self.start) / 60, **scores}
        result["eval_seconds"] = time.time() - t0
        model.train()
        with self.log.open("a") as f:
            f.write(json.dumps(result) + "\n")
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}), flush=True)
        return result

    def on_step_end(self, trainer: Trainer, step: int) -> None:
        if self.args.eval_every and step % self.args.eval_every == 0 and step != trainer.config.total_steps:
            self.run(trainer, step)


def pipeline(model: VideoLMForTraining, parts: dict) -> TextToVideo:
    """The TextToVideo pipeline of the trained model (the current stage's head), in eval mode."""
    pipe = TextToVideo(
        video_tokenizer=parts["video_tokenizer"],
        backbone=model.backbone,
        video_lm=model.video_lm,
        head=model.head,
        text_tokenizer=parts["text_tokenizer"],
    )
    for m in (model.backbone, model.video_lm, *model.heads.values()):
        m.eval()
    return pipe


def token_cache(
    args: argparse.Namespace, tokenizer, split: str = "train", length: int | None = None
) -> TokenCacheDataset:
    """Render and encode an AR data set once (reused when it exists and matches the tokenizer)."""
    path = Path(args.cache_dir) if split == "train" else Path(args.cache_dir + f"_{split}")
    length = length or args.videos
    if not path.exists():
        data = ShapesDataset(
            split,
            resolution=32,
            num_frames=args.keyframes,
            fps=8.0 / tokenizer.temporal_compression,  # one frame per keyframe interval
            motions=("left", "right", "up", "down", "still", "bounces"),
            num_objects=(1, 1, 2),
            seed=args.seed + (split != "train"),
            length=length,
        )
        t0 = time.time()
        build_token_cache(tokenizer, data, path, batch_size=64, encode_kwargs={"frame_stride": 1})
        print(f"{split} token cache of {length} videos built in {time.time() - t0:.0f} s", flush=True)
    return TokenCacheDataset(path, tokenizer=tokenizer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="runs/dicode_shapes")
    parser.add_argument("--export", default=None, help="save the trained TextToVideo pipeline here")
    parser.add_argument("--tokenizer", default=None, help="deep tokenizer folder (default: the shipped one)")
    parser.add_argument("--cache-dir", default=None, help="token cache folder (default: OUTPUT_DIR/token_cache)")
    parser.add_argument("--videos", type=int, default=20000, help="training videos in the token cache")
    parser.add_argument("--keyframes", type=int, default=5, help="keyframes per training video")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--head", default="gmm", help="final head: gmm, gaussian, l2, diffusion_mlp")
    parser.add_argument("--num-components", type=int, default=None)
    parser.add_argument("--l2-fraction", type=float, default=0.25, help="share of steps with the L2 head first")
    parser.add_argument(
        "--color-dropout", type=float, default=0.0, help="drop the color word of a training caption (per object)"
    )
    parser.add_argument(
        "--video-lm",
        default=None,
        metavar="JSON",
        help="video LM config overrides, e.g. '{\"keyframe_residual\": true}'",
    )
    parser.add_argument("--init-from", default=None, help="continue from a saved TextToVideo pipeline's weights")
    parser.add_argument(
        "--train-only",
        nargs="+",
        default=None,
        metavar="PREFIX",
        help="train only the parameters whose names start with these (e.g. video_lm.still_head); freeze the rest",
    )
    parser.add_argument(
        "--evaluate-only",
        default=None,
        metavar="PIPELINE",
        help="no training: score this saved TextToVideo pipeline (held-out prompts, diversity) and exit",
    )
    parser.add_argument("--eval-every", type=int, default=0)
    parser.add_argument("--eval-prompts", type=int, default=None, help="only the first N held-out prompts")
    parser.add_argument("--diversity-seeds", type=int, default=8)
    parser.add_argument("--eval-keyframes", type=int, default=3, help="keyframes of each evaluated video")
    parser.add_argument("--eval-seeds", type=int, nargs="+", default=[0, 1], help="seeds of the held-out evaluation")
    parser.add_argument(
        "--guidance-scale", type=float, default=1.0, help="language-model CFG in the evaluation (1 = off)"
    )
    parser.add_argument(
        "--temperature", type=float, default=None, help="sampling temperature in the evaluation (default: the model's)"
    )
    parser.add_argument("--val-videos", type=int, default=512, help="held-out videos for the validation NLL")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in --output-dir (if any)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from accelerate.utils import set_seed

    set_seed(args.seed)
    if args.evaluate_only:
        pipe = TextToVideo.from_pretrained(args.evaluate_only)
        prompts = heldout_prompts()[: args.eval_prompts]
        result = evaluate(pipe, prompts, seeds=args.eval_seeds, keyframes=args.eval_keyframes, **sampling(args))
        result.update(sampling(args), keyframes=args.eval_keyframes, seeds=args.eval_seeds)
        result["diversity"] = diversity(
            pipe, seeds=args.diversity_seeds, keyframes=args.eval_keyframes, **sampling(args)
        )
        print(json.dumps(result), flush=True)
        return
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    args.cache_dir = args.cache_dir or str(out / "token_cache")

    overrides = {"head": args.head}
    if args.num_components is not None:
        overrides["num_components"] = args.num_components
    if args.video_lm:
        overrides["video_lm"] = json.loads(args.video_lm)  # the recipe checks it is an object
    if args.tokenizer:
        overrides["tokenizer_pretrained"] = os.path.abspath(args.tokenizer)
        # Size the video LM for the folder's token count (Table 3 runs 8 and 32).
        config = json.loads((Path(args.tokenizer) / "config.json").read_text())
        overrides["num_deep_tokens"] = int(config["num_queries"])
    recipe = vidtok.RECIPES.create("dicode_tiny", **overrides)
    parts = build_components(recipe)
    tokenizer = parts["video_tokenizer"].float().eval().requires_grad_(False)
    data = token_cache(args, tokenizer)

    if args.init_from:
        # Continue training a saved pipeline: its language model, video LM and head weights, this recipe's
        # configs (e.g. the head's sampler settings), the same tokenizer.
        saved = TextToVideo.from_pretrained(args.init_from)
        gate_saved, gate_new = saved.video_lm.still_head is not None, parts["video_lm"].still_head is not None
        if gate_saved and not gate_new:
            hint = "add --video-lm '{\"still_gate\": true}'"
            raise ValueError(f"--init-from {args.init_from} has a still gate: {hint}")
        for name in ("backbone", "video_lm", "head"):
            state = getattr(saved, name).state_dict()
            if name == "video_lm" and gate_new and not gate_saved:
                # The one part this run adds (--video-lm still_gate on a model saved without it) keeps its
                # fresh initialization; every other tensor must come from the saved model (strict load).
                fresh = {k: v for k, v in parts[name].state_dict().items() if k.startswith("still_head.")}
                state = {**fresh, **state}
                print(f"video_lm: {len(fresh)} tensors of the still gate start fresh", flush=True)
            parts[name].load_state_dict(state)
        args.l2_fraction = 0.0
    # Generation windows stay within the frame indices training has reached (past them, the video LM slides).
    video_lm = parts["video_lm"]
    trained = args.keyframes
    if args.init_from:
        saved_cfg = saved.video_lm.config
        trained = max(trained, saved_cfg.get("context_keyframes") or saved_cfg.max_keyframes)
    video_lm.register_to_config(context_keyframes=min(trained, video_lm.config.max_keyframes))
    heads = {}
    l2_steps = int(round(args.steps * args.l2_fraction)) if args.head != "l2" else 0
    if l2_steps:
        heads["l2"] = vidtok.HEADS.create("l2", hidden_size=recipe.head.kwargs["hidden_size"], token_dim=64)
    heads[args.head] = parts["head"]
    model = VideoLMForTraining(
        parts["backbone"].train(),
        parts["video_lm"].train(),
        heads,
        text_tokenizer=parts["text_tokenizer"],
        caption_transform=functools.partial(augment_caption, color_dropout=args.color_dropout),
    )
    stages = [Stage(args.head, args.steps - l2_steps, options={"head": args.head})]
    if l2_steps:
        stages.insert(0, Stage("l2", l2_steps, options={"head": "l2"}))
    if args.train_only:
        # E.g. "video_lm.still_head": fit a new part on a trained model without changing the rest.
        chosen = [n for n, _ in model.named_parameters() if n.startswith(tuple(args.train_only))]
        if not chosen:
            raise ValueError(f"--train-only {args.train_only} matches no parameter of the model")
        for name, param in model.named_parameters():
            param.requires_grad_(name in chosen)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"recipe {recipe.name}, head {args.head}: {n_params / 1e6:.2f} M trainable parameters", flush=True)
    cfg = TrainingConfig(
        output_dir=str(out),
        stages=stages,
        batch_size=args.batch_size,
        optimizer=OptimizerConfig(
            lr=args.lr, weight_decay=0.01, scheduler="cosine", warmup_steps=min(100, args.steps // 10)
        ),
        max_grad_norm=1.0,
        log_every=50,
        save_every=1000,
        keep_last=1,
        seed=args.seed,
        progress_bar=False,
        resume_from="latest" if args.resume else None,
    )
    callback = EvalCallback(args, parts, out / "eval.jsonl")
    trainer = Trainer(model, cfg, data, callbacks=[callback])
    trainer.train()
    minutes = trainer.training_seconds / 60  # the runs before a --resume included
    final = callback.run(trainer, trainer.global_step)
    final["diversity"] = diversity(
        pipeline(model, parts), seeds=args.diversity_seeds, keyframes=args.eval_keyframes,
        **sampling(args),
    )  # fmt: skip
    final["validation_nll"] = validation_nll(model, token_cache(args, tokenizer, "heldout", args.val_videos))
    print(f"validation NLL {final['validation_nll']:.3f} nats/token", flush=True)
    final["train_minutes_total"] = minutes
    print(json.dumps(final["diversity"]), flush=True)
    with (out / "summary.json").open("w") as f:
        json.dump({"steps": trainer.global_step, "minutes": minutes, "final": final, "args": vars(args)}, f, indent=2)
    if args.export:
        pipeline(model, parts).save_pretrained(args.export)
        # As shipped: the tokenizer's weights stored in fp16 (half the size; loaded back as fp32).
        copy.deepcopy(parts["video_tokenizer"]).half().save_pretrained(os.path.join(args.export, "video_tokenizer"))
        print(f"exported the pipeline to {args.export}", flush=True)


if __name__ == "__main__":
    main()
