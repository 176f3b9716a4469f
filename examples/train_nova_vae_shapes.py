"""Train the Shapes continuous VAE of the ``nova_tiny`` recipe (NOVA §4.1's role: a frozen VAE under the AR model).

``ContinuousVAETokenizer.shapes_config()`` (overridable with ``--config``): a small causal ``AutoencoderKLWan``
with 4 latent channels and ``4 × 4 × 4`` compression, on 32×32 Shapes clips of 9 frames (``--frames``) at 8 fps;
``2 × 2`` patches make a latent frame 16 tokens of 16 values. The loss is the tokenizer's own
(:meth:`~vidtok.tokenizers.continuous_vae.ContinuousVAETokenizer.training_step`: MSE of a posterior sample plus a
small KL), with ``--foreground-weight`` extra weight on the objects (a plain MSE is dominated by the black
background).

Every ``--eval-every`` steps held-out clips (the (color, shape) pairs training never saw) are reconstructed
(PSNR/SSIM, Shapes scores); the best weights (held-out PSNR) are exported to ``--export`` with the latent
statistics NOVA normalizes by (``estimate_latent_stats`` on training clips, stored in the config).
``--minutes M`` stops after an evaluation past M minutes with a checkpoint; ``--resume`` continues.

A causal VAE trained on short clips does not reconstruct longer ones (the 9-frame VAE loses the object past
frame 9; docs/results.md, NOVA): the shipped VAE (``vidtok:nova_vae_shapes``) continues the 9-frame run's best
export on 17-frame, then 33-frame clips (``--init-from``; being causal, it stays right on every shorter prefix;
the shipped one took the 17-frame run's step-100 export, that run stopped after step 150), and its decoder alone
was then fine-tuned on 17-frame clips, selected on the reconstructions' shape score (``--decoder-only``: the
encoder, the latent statistics and so the AR model's tokens stay as they were; the last command, step 450
exported, shipped with ``examples/export_nova_shapes.py --tokenizer``)::

    python examples/train_nova_vae_shapes.py --output-dir runs/nova_vae --export runs/nova_vae/best \\
        --steps 3000 --lr 1e-3 --foreground-weight 1 --threads 2 --minutes 60
    python examples/train_nova_vae_shapes.py --output-dir runs/nova_vae17 --export runs/nova_vae17/best \\
        --init-from runs/nova_vae/best --frames 17 --steps 400 --lr 3e-4 --warmup 20 --batch-size 8 \\
        --train-videos 3000 --foreground-weight 1 --eval-every 50 --threads 2
    python examples/train_nova_vae_shapes.py --output-dir runs/nova_vae33 --export runs/nova_vae33/best \\
        --init-from runs/nova_vae17/best --frames 33 --steps 200 --lr 2e-4 --warmup 10 --batch-size 8 \\
        --train-videos 1600 --foreground-weight 1 --eval-every 40 --threads 2 --minutes 13
    python examples/train_nova_vae_shapes.py --output-dir runs/nova_dec --export runs/nova_dec/best \\
        --decoder-only --init-from runs/nova_vae33/best --select score_shape --frames 17 --steps 600 --lr 1e-4 \\
        --warmup 20 --batch-size 8 --train-videos 2000 --foreground-weight 2 --eval-every 30 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

from vidtok.data.shapes_training import ClipPool
from vidtok.metrics.shapes_evaluation import evaluate_reconstruction, render_clips, to_model_video
from vidtok.tokenizers.continuous_vae import ContinuousVAETokenizer
from vidtok.training import EvaluationCallback, OptimizerConfig, Stage, StopTraining, Trainer, TrainingConfig

RESOLUTION, FPS = 32, 8.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="runs/nova_vae")
    parser.add_argument("--export", default=None, help="folder the best weights (held-out PSNR) are exported to")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument(
        "--config", default=None, help="JSON overrides of ContinuousVAETokenizer.shapes_config() (dicts are merged)"
    )
    parser.add_argument("--init-from", default=None, help="continue training this tokenizer folder")
    parser.add_argument("--minutes", type=float, default=None, help="stop (after an evaluation) past this budget")
    parser.add_argument("--frames", type=int, default=9, help="frames per training and held-out clip")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--train-videos", type=int, default=8000, help="pre-rendered training clips")
    parser.add_argument("--train-cache", default=None, help=".npz cache of the training clips")
    parser.add_argument("--foreground-weight", type=float, default=0.0, help="extra loss weight on the objects")
    parser.add_argument("--stats-videos", type=int, default=512, help="training clips for the latent statistics")
    parser.add_argument("--eval-videos", type=int, default=32)
    parser.add_argument("--eval-every", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output-dir")
    parser.add_argument(
        "--decoder-only",
        action="store_true",
        help="train only the decoder of --init-from: the encoder, its latents and their statistics stay as they "
        "are, so an AR model trained on that VAE's tokens keeps working with the new decoder",
    )
    parser.add_argument(
        "--select", default="psnr", help="held-out score that picks the exported weights (psnr, ssim, score_shape, ...)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from accelerate.utils import set_seed

    set_seed(args.seed)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_videos, _ = render_clips(
        "train", args.train_videos, args.seed, args.train_cache, resolution=RESOLUTION, num_frames=args.frames, fps=FPS
    )
    held_videos, held_captions = render_clips(
        "heldout", args.eval_videos, args.seed + 1, None, resolution=RESOLUTION, num_frames=args.frames, fps=FPS
    )
    held = to_model_video(held_videos)
    print(f"training clips {train_videos.shape}, held-out clips {tuple(held.shape)}", flush=True)

    if args.init_from:
        model = ContinuousVAETokenizer.from_pretrained(args.init_from).float()
    else:
        kwargs = ContinuousVAETokenizer.shapes_config()
        for key, value in (json.loads(args.config) if args.config else {}).items():
            # A dict (e.g. vae_config) updates the recipe's dict rather than replacing it.
            kwargs[key] = (
                {**kwargs[key], **value} if isinstance(value, dict) and isinstance(kwargs.get(key), dict) else value
            )
        model = ContinuousVAETokenizer(**kwargs)
    if args.decoder_only:
        if not args.init_from:
            parser.error("--decoder-only fine-tunes the decoder of a trained VAE: give --init-from")
        frozen = model.encoder_parameters()
        for p in frozen:
            p.requires_grad_(False)
        print(f"decoder only: {sum(p.numel() for p in frozen) / 1e6:.2f} M encoder parameters frozen", flush=True)
    print(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M", flush=True)
    stats_clips = to_model_video(train_videos[: args.stats_videos])

    def export(folder: str) -> None:
        # NOVA normalizes latents by data statistics: measured on training clips with the weights being exported,
        # on a copy (the model in training keeps its own normalization).
        exported = copy.deepcopy(model).eval()
        if not args.decoder_only:  # a frozen encoder keeps the statistics its tokens were normalized by
            with torch.no_grad():
                exported.estimate_latent_stats(stats_clips.split(32))
        exported.save_pretrained(folder)

    cfg = TrainingConfig(
        output_dir=str(out),
        stages=[Stage("vae", args.steps)],
        batch_size=args.batch_size,
        optimizer=OptimizerConfig(
            lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0, scheduler="cosine", warmup_steps=args.warmup
        ),
        max_grad_norm=1.0,
        log_every=25,
        save_every=150,
        keep_last=1,
        seed=args.seed,
        progress_bar=False,
        resume_from="latest" if args.resume else None,
    )
    callback = EvaluationCallback(
        lambda m: evaluate_reconstruction(model, held, held_captions),
        export=lambda m, folder: export(folder),
        every=args.eval_every,
        select=args.select if args.export else None,
        export_dir=args.export,
        minutes=args.minutes,
    )
    trainer = Trainer(model, cfg, ClipPool(train_videos, args.foreground_weight), callbacks=[callback])
    try:
        trainer.train()
    except StopTraining as stop:
        print(f"stopped: {stop}", flush=True)
    minutes = trainer.training_seconds / 60
    print(f"trained {trainer.global_step} steps in {minutes:.1f} min", flush=True)
    with (out / "summary.json").open("w") as f:
        json.dump({"steps": trainer.global_step, "minutes": minutes, "args": vars(args)}, f, indent=2)


if __name__ == "__main__":
    main()
