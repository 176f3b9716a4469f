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

The work is library code: this script turns its flags into a recipe run and calls
:func:`vidtok.training.recipe.train_recipe` (what ``vidtok train examples/configs/dicode_tiny.yaml`` runs);
the evaluation is :mod:`vidtok.metrics.shapes_evaluation`, the caption augmentation
:func:`vidtok.data.shapes_training.augment_caption`. ``--select joint`` exports the best checkpoint by a
held-out score instead of the last one.

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
shipped model got its still gate that way, fitted alone on the trained model (9.7 min; ``video_lm.`` is the
AR model's earlier prefix, ``model.`` today)::

    python examples/train_dicode_shapes.py --output-dir runs/dicode_shapes_gate --cache-dir CACHE \\
        --videos 24000 --steps 2000 --lr 1e-3 --color-dropout 0.2 --init-from runs/dicode_shapes_3/final \\
        --video-lm '{"still_gate": true}' --train-only video_lm.still_head --export runs/dicode_shapes_gate/final
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from vidtok.training.recipe import EvaluationConfig, evaluate_pipeline, train_recipe


def evaluation(args: argparse.Namespace) -> dict:
    """The ``evaluation`` section of the recipe run from the flags."""
    return {
        "every": args.eval_every,
        "prompts": args.eval_prompts,
        "seeds": list(args.eval_seeds),
        "keyframes": args.eval_keyframes,
        "guidance_scale": args.guidance_scale,
        "temperature": args.temperature,
        "diversity_seeds": args.diversity_seeds,
        "select": args.select,
    }


def recipe_run(args: argparse.Namespace) -> dict:
    """The recipe run (see ``vidtok.training.recipe``) that these flags describe."""
    overrides: dict = {"head": args.head}
    if args.num_components is not None:
        overrides["num_components"] = args.num_components
    if args.video_lm:
        overrides["model_kwargs"] = json.loads(args.video_lm)  # the recipe checks it is an object
    if args.tokenizer:
        overrides["tokenizer_pretrained"] = os.path.abspath(args.tokenizer)
        # Size the video LM for the folder's token count (Table 3 runs 8 and 32).
        config = json.loads((Path(args.tokenizer) / "config.json").read_text())
        overrides["num_deep_tokens"] = int(config["num_queries"])
    # DiCoDe's progressive schedule (supplementary §6): the L2 head first, then the final head. A run that
    # continues a trained model (--init-from) starts with the final head.
    l2_fraction = 0.0 if args.init_from else args.l2_fraction
    l2_steps = int(round(args.steps * l2_fraction)) if args.head != "l2" else 0
    stages = [{"name": args.head, "steps": args.steps - l2_steps, "options": {"head": args.head}}]
    if l2_steps:
        stages.insert(0, {"name": "l2", "steps": l2_steps, "options": {"head": "l2"}})
    return {
        "recipe": "dicode_tiny",
        "overrides": overrides,
        "data": {
            "videos": args.videos,
            "steps_per_sample": args.keyframes,
            "val_videos": args.val_videos,
            "cache_dir": args.cache_dir,
            "color_dropout": args.color_dropout,
        },
        "evaluation": evaluation(args),
        "trainer": {
            "output_dir": args.output_dir,
            "stages": stages,
            "batch_size": args.batch_size,
            "optimizer": {
                "lr": args.lr, "weight_decay": 0.01, "scheduler": "cosine", "warmup_steps": min(100, args.steps // 10),
            },
            "max_grad_norm": 1.0,
            "log_every": 50,
            "save_every": 1000,
            "keep_last": 1,
            "seed": args.seed,
            "progress_bar": False,
            "resume_from": "latest" if args.resume else None,
        },
        "export": args.export or False,
        "init_from": args.init_from,
        "init_fresh": ["model.still_head."] if args.init_from else [],
        "train_only": args.train_only,
    }  # fmt: skip


def check_still_gate(saved, components: dict) -> None:
    """A gated model continued without ``--video-lm still_gate`` would lose its gate: refuse with a hint."""
    if saved.model.still_head is not None and components["model"].still_head is None:
        raise ValueError("--init-from has a still gate: add --video-lm '{\"still_gate\": true}'")


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
        help="train only the parameters whose names start with these (e.g. model.still_head); freeze the rest",
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
    parser.add_argument(
        "--select",
        default=None,
        choices=("color", "shape", "size", "motion", "overall", "joint"),
        help="export the best checkpoint by this held-out score (evaluated every --eval-every steps), not the last",
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
    if args.evaluate_only:
        from accelerate.utils import set_seed

        from vidtok.pipelines.text_to_video import TextToVideo

        set_seed(args.seed)
        cfg = EvaluationConfig(**evaluation(args))
        result = evaluate_pipeline(TextToVideo.from_pretrained(args.evaluate_only), cfg)
        diversity = result.pop("diversity", None)
        result.update(cfg.sampling, keyframes=args.eval_keyframes, seeds=args.eval_seeds)
        if diversity is not None:
            result["diversity"] = diversity
        print(json.dumps(result), flush=True)
        return
    train_recipe(recipe_run(args), summary_extra={"args": vars(args)}, check_init=check_still_gate)


if __name__ == "__main__":
    main()
