"""Train the Shapes deep tokenizer that vidtok ships (the embedded pipeline's ``video_tokenizer``).

DiCoDe §3.1–3.2 on the Shapes world: 32×32 videos of 9 frames at 8 fps, keyframes 0 and 8 (stride 8,
i.e. 2 keyframes × 16 deep tokens per clip). Two stages through :class:`vidtok.training.Trainer`, each with
its own cosine schedule: ``preview`` trains the encoder, the query transformer and the token-decoded
preview alone (cheap: no denoiser pass), then ``diffusion`` trains everything with the diffusion loss of
Eq. 1 (x0-prediction of a residual on the preview) plus the preview regression. Every ``--eval-every``
steps a callback measures held-out reconstruction (PSNR/SSIM with deterministic DDIM, ``eta = 0``,
guidance 1, ``--eval-steps`` steps; the preview PSNR; Shapes scores) and exports the weights when the
held-out PSNR is the best so far, so an interrupted run is usable.

Reproduce the shipped weights — 59 minutes on the 2-core CPU for the base model (3,000 preview steps +
1,000 diffusion steps of batch 16; stopped at step 4,000 of the planned 4,200), then two decoder-only
fine-tunes (``--freeze-tokens``: the tokens stay bit-identical) with a 20× loss weight on the objects and
the preview gradient loss: 12 minutes on the training split (its step-900 export, kept by ``--select
score``, is the start of the next), then 20 minutes on videos of every (color, shape) pair (``--train-split
all``: a decoder trained without the held-out pairs draws a small yellow circle as a square, though the
tokens tell them apart), whose step-1,200 export ships, stored in fp16 by
``DeepTokenizer.from_pretrained(dir).half().save_pretrained(dir)``::

    python examples/train_deep_tokenizer_shapes.py --output-dir runs/deep_tokens_shapes \
        --train-videos 10000 --preview-steps 3000 --steps 1200 --eval-every 500 --eval-videos 16 \
        --threads 2 --export runs/deep_tokens_shapes/best
    python examples/train_deep_tokenizer_shapes.py --output-dir runs/deep_tokens_shapes_ft \
        --init-from runs/deep_tokens_shapes/best --freeze-tokens --foreground-weight 20 --gradient-weight 1.0 \
        --lr 5e-4 --warmup 50 --preview-steps 2400 --steps 500 --eval-every 300 --eval-videos 32 \
        --select score --train-videos 10000 --threads 1 --export runs/deep_tokens_shapes_ft/best
    python examples/train_deep_tokenizer_shapes.py --output-dir runs/deep_tokens_shapes_all \
        --init-from runs/deep_tokens_shapes_ft/best --freeze-tokens --train-split all --foreground-weight 20 \
        --gradient-weight 1.0 --lr 2e-4 --warmup 50 --preview-steps 1800 --steps 0 --eval-every 300 \
        --eval-videos 32 --select score --train-videos 10000 --threads 1 --export runs/deep_tokens_shapes_all/best

``--minutes M`` stops a run after an evaluation past M minutes and saves a checkpoint; the same command with
``--resume`` continues it (schedules, data order and the export's best included), so a long run can be
spread over several sessions.

The evaluation, the export of the best weights and the time budget are library code
(:class:`vidtok.training.callbacks.EvaluationCallback` with
:func:`vidtok.metrics.shapes_evaluation.evaluate_reconstruction`; the clips in memory are
:class:`vidtok.data.shapes_training.ClipPool`); this script sets them up from its flags.

(The shipped runs read their 10,000 training clips from two caches rendered with seeds 100 and 101 — seeds
200 and 201 for the last run; the commands render them with ``--seed``.) Measure the result with
``examples/evaluate_deep_tokenizer_shapes.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vidtok.data.shapes_training import ClipPool
from vidtok.metrics.shapes_evaluation import evaluate_reconstruction, render_clips, to_model_video
from vidtok.tokenizers.deep_tokens import DeepTokenizer
from vidtok.training import EvaluationCallback, OptimizerConfig, Stage, StopTraining, Trainer, TrainingConfig

RESOLUTION, FRAMES, FPS, STRIDE = 32, 9, 8.0, 8


def render(split: str, n: int, seed: int, cache: str | None) -> tuple[np.ndarray, list[str]]:
    """Render (or load from ``cache``) ``n`` clips of a split (32×32, 9 frames at 8 fps)."""
    return render_clips(split, n, seed, cache, resolution=RESOLUTION, num_frames=FRAMES, fps=FPS)


def selection(select: str):
    """What ``--export`` keeps the best of: held-out PSNR of the full decoding, or its Shapes score."""
    if select == "psnr":
        return "psnr"
    return lambda record: record["score_overall"] + 1e-3 * record["psnr"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="runs/deep_tokens_shapes")
    parser.add_argument("--export", default=None, help="folder the latest weights are saved to at every evaluation")
    parser.add_argument("--preview-steps", type=int, default=4000, help="stage 1: encoder + preview only")
    parser.add_argument("--steps", type=int, default=1500, help="stage 2: the full diffusion decoder")
    parser.add_argument("--minutes", type=float, default=None, help="stop (after an evaluation) past this budget")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--train-videos", type=int, default=8000, help="pre-rendered training clips")
    parser.add_argument("--train-cache", default=None, help=".npz cache of the training clips")
    parser.add_argument(
        "--train-split",
        choices=("train", "all"),
        default="train",
        help="Shapes split of the training clips: 'all' includes the held-out (color, shape) pairs",
    )
    parser.add_argument("--eval-videos", type=int, default=32)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-steps", type=int, default=10, help="DDIM steps of the evaluation")
    parser.add_argument(
        "--config",
        default=None,
        help="JSON overrides of DeepTokenizer.shapes_config(); with --init-from and --freeze-tokens, decoder keys "
        "of the saved config (a new decoder on the same tokens)",
    )
    parser.add_argument("--init-from", default=None, help="fine-tune this tokenizer folder instead of a new one")
    parser.add_argument(
        "--freeze-tokens", action="store_true", help="train the decoder only: the tokens (and AR models) stay valid"
    )
    parser.add_argument("--foreground-weight", type=float, default=0.0, help="extra loss weight on objects")
    parser.add_argument("--gradient-weight", type=float, default=None, help="preview gradient difference loss")
    parser.add_argument("--select", choices=("psnr", "score"), default="psnr", help="what --export keeps the best of")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint in --output-dir (same arguments; --export keeps its best)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from accelerate.utils import set_seed

    set_seed(args.seed)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    caches = args.train_cache.split(",") if args.train_cache else [None]
    parts = [render(args.train_split, args.train_videos, args.seed, c)[0] for c in caches]
    train_videos = np.concatenate(parts)[: args.train_videos]
    held_videos, held_captions = render("heldout", args.eval_videos, args.seed + 1, None)
    held = to_model_video(held_videos)
    print(f"training clips {train_videos.shape}, held-out clips {tuple(held.shape)}", flush=True)

    overrides = json.loads(args.config) if args.config else {}
    if args.init_from:
        model = DeepTokenizer.from_pretrained(args.init_from).float()
        if overrides:
            # A new decoder on the saved tokens: only decoder keys may change, the token weights carry over.
            if not args.freeze_tokens:
                raise SystemExit("--config with --init-from builds a new decoder: it needs --freeze-tokens")
            try:
                model, fresh = model.with_decoder_config(**overrides)
            except ValueError as err:
                raise SystemExit(str(err)) from err
            print(f"new decoder: {len(fresh)} tensors newly initialized", flush=True)
    else:
        kwargs = DeepTokenizer.shapes_config()
        if "denoiser_kwargs" in overrides:
            kwargs["denoiser_kwargs"] = {**kwargs["denoiser_kwargs"], **overrides.pop("denoiser_kwargs")}
        kwargs.update(overrides)
        model = DeepTokenizer(**kwargs)
    if args.gradient_weight is not None:
        if args.gradient_weight < 0:
            raise SystemExit(f"--gradient-weight must be >= 0, got {args.gradient_weight}")
        model.register_to_config(preview_gradient_weight=args.gradient_weight)
    print(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M", flush=True)
    cfg = TrainingConfig(
        output_dir=str(out),
        stages=[
            Stage(name, steps, options={"diffusion": name == "diffusion", "freeze_tokens": args.freeze_tokens})
            for name, steps in (("preview", args.preview_steps), ("diffusion", args.steps))
            if steps
        ],
        batch_size=args.batch_size,
        optimizer=OptimizerConfig(
            lr=args.lr,
            betas=(0.9, 0.99),
            eps=1e-8,
            weight_decay=0.0,
            scheduler="cosine",
            warmup_steps=args.warmup,
            schedule_per_stage=True,
        ),
        max_grad_norm=1.0,
        log_every=25,
        save_every=500,
        keep_last=1,
        seed=args.seed,
        progress_bar=False,
        resume_from="latest" if args.resume else None,
    )
    callback = EvaluationCallback(
        lambda tokenizer: evaluate_reconstruction(
            tokenizer, held, held_captions, num_inference_steps=args.eval_steps, frame_stride=STRIDE
        ),
        every=args.eval_every,
        select=selection(args.select) if args.export else None,
        export_dir=args.export,
        minutes=args.minutes,
    )
    trainer = Trainer(model, cfg, ClipPool(train_videos, args.foreground_weight), callbacks=[callback])
    try:
        trainer.train()
    except StopTraining as stop:
        print(f"stopped: {stop}", flush=True)
    minutes = trainer.training_seconds / 60  # the runs before a --resume included
    print(f"trained {trainer.global_step} steps in {minutes:.1f} min", flush=True)
    with (out / "summary.json").open("w") as f:
        json.dump({"steps": trainer.global_step, "minutes": minutes, "args": vars(args)}, f, indent=2)


if __name__ == "__main__":
    main()
