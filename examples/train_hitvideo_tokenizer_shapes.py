"""Train a Shapes hierarchical LFQ tokenizer (HiTVideo §3.2), the tokenizer of the ``hitvideo_tiny`` recipe.

``HierarchicalLFQTokenizer.shapes_config()`` (overridable with ``--config``) on 32×32 Shapes clips of 9 frames
(``--frames``) at 8 fps: a causal 3-D CNN with ``4×4×4`` compression and three LFQ levels (coarsest first 4,
10 and 16 bits).
HiTVideo's progressive training is one :class:`vidtok.training.Stage` per level count — ``--level-steps
300,300,1500`` trains the coarsest level alone, then two, then all three — each stage with its own cosine
schedule. The loss is the tokenizer's own: the reconstruction (the Shapes config uses MSE, not HiTVideo's L1:
under L1 the autoencoder stalls at the all-black median of these sparse videos) + commitment + entropy;
``--foreground-weight`` adds weight on the objects, whose edges dominate the held-out PSNR. The paper's LPIPS
and GAN terms (§3.2) come from :class:`vidtok.training.losses.AdversarialTraining` around the tokenizer, in the
trainer's two-optimizer mode: ``--gan-weight W`` adds a hinge GAN with a 3-D patch discriminator (adaptive
weight at the decoder's output layer, from ``--gan-start``), ``--lpips-weights FILE`` (a local torchvision
AlexNet checkpoint; nothing is downloaded) adds LPIPS with ``--perceptual-weight``. The measured Shapes runs go
without them: no LPIPS backbone can be downloaded here, and a GAN trades PSNR — the target here — for texture
the Shapes world does not have.

Every ``--eval-every`` steps held-out clips (the (color, shape) pairs training never saw) are reconstructed
(PSNR/SSIM, Shapes scores) and the weights are exported when the PSNR is the best so far. ``--minutes M``
stops after an evaluation past M minutes with a checkpoint; ``--resume`` continues.

The shipped tokenizer (``vidtok:hitvideo_tokens_shapes``; learning curves in docs/results.md) is run 7, then
its decoder alone fine-tuned twice — ``--decoder-only`` freezes everything that makes the codes, so the language
model trained on them stays valid, and the script checks at the end that the held-out codes did not change::

    python examples/train_hitvideo_tokenizer_shapes.py --output-dir runs/hitvideo_tok \
        --export runs/hitvideo_tok/best --level-steps 50,50,2000 --lr 2e-3 --foreground-weight 1 \
        --threads 2 --minutes 70
    python examples/train_hitvideo_tokenizer_shapes.py --output-dir runs/hitvideo_dec \
        --export runs/hitvideo_dec/best --init-from runs/hitvideo_tok/best --decoder-only \
        --level-steps 0,0,1500 --lr 1e-3 --foreground-weight 1
    python examples/train_hitvideo_tokenizer_shapes.py --output-dir runs/hitvideo_dec17 \
        --export runs/hitvideo_dec17/best --init-from runs/hitvideo_dec/best --decoder-only --frames 17 \
        --level-steps 0,0,300 --lr 5e-4 --warmup 20 --eval-every 50 --train-videos 3000 --foreground-weight 1

The Fig. 4 baseline (one level with about the same codes and bits per clip: time ÷2 instead of ÷4, 13 bits,
576 codes and 7,488 bits per 17 frames against the hierarchy's 560 and 7,232) is the same script with
``--config '{"temporal_downsample": [true, false], "level_bits": [13], "level_strides": []}' --level-steps 2100``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vidtok.data.shapes_training import ClipPool
from vidtok.metrics.shapes_evaluation import evaluate_reconstruction, render_clips, to_model_video
from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer
from vidtok.training import EvaluationCallback, OptimizerConfig, Stage, StopTraining, Trainer, TrainingConfig

RESOLUTION, FPS = 32, 8.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="runs/hitvideo_tok")
    parser.add_argument("--export", default=None, help="folder the best weights (held-out PSNR) are exported to")
    parser.add_argument(
        "--level-steps",
        default="300,300,1500",
        help="steps of each progressive stage, comma-separated: stage i trains the i + 1 coarsest levels",
    )
    parser.add_argument("--config", default=None, help="JSON overrides of HierarchicalLFQTokenizer.shapes_config()")
    parser.add_argument("--init-from", default=None, help="continue training this tokenizer folder")
    parser.add_argument(
        "--decoder-only",
        action="store_true",
        help="with --init-from: train only the decoder (decode_only_modules); the tokens stay bit-identical",
    )
    parser.add_argument("--minutes", type=float, default=None, help="stop (after an evaluation) past this budget")
    parser.add_argument("--frames", type=int, default=9, help="frames per training and held-out clip")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--train-videos", type=int, default=8000, help="pre-rendered training clips")
    parser.add_argument("--train-cache", default=None, help=".npz cache of the training clips")
    parser.add_argument("--train-split", choices=("train", "all"), default="train")
    parser.add_argument("--foreground-weight", type=float, default=0.0, help="extra L1 weight on the objects")
    parser.add_argument("--gan-weight", type=float, default=0.0, help="HiTVideo's GAN term (0: off)")
    parser.add_argument("--gan-start", type=int, default=0, help="first step of the GAN (generator and discriminator)")
    parser.add_argument("--lpips-weights", default=None, metavar="FILE", help="AlexNet checkpoint for LPIPS")
    parser.add_argument("--perceptual-weight", type=float, default=1.0, help="LPIPS weight (with --lpips-weights)")
    parser.add_argument("--eval-videos", type=int, default=32)
    parser.add_argument("--eval-every", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output-dir")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from accelerate.utils import set_seed

    set_seed(args.seed)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_videos, _ = render_clips(
        args.train_split,
        args.train_videos,
        args.seed,
        args.train_cache,
        resolution=RESOLUTION,
        num_frames=args.frames,
        fps=FPS,
    )
    held_videos, held_captions = render_clips(
        "heldout", args.eval_videos, args.seed + 1, None, resolution=RESOLUTION, num_frames=args.frames, fps=FPS
    )
    held = to_model_video(held_videos)
    print(f"training clips {train_videos.shape}, held-out clips {tuple(held.shape)}", flush=True)

    if args.init_from:
        model = HierarchicalLFQTokenizer.from_pretrained(args.init_from).float()
    else:
        kwargs = {**HierarchicalLFQTokenizer.shapes_config(), **(json.loads(args.config) if args.config else {})}
        model = HierarchicalLFQTokenizer(**kwargs)
    frozen_reference = None
    if args.decoder_only:
        if not args.init_from:
            raise SystemExit("--decoder-only fine-tunes a trained tokenizer: it needs --init-from")
        if args.gan_weight > 0 or args.lpips_weights:
            raise SystemExit("--decoder-only trains the reconstruction alone; drop --gan-weight / --lpips-weights")
        # Everything that makes the tokens is frozen, so token caches and AR models trained on the initial
        # tokenizer's codes stay valid with the fine-tuned decoder.
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith(model.decode_only_modules))
        with torch.no_grad():
            frozen_reference = model.eval().encode(held).indices
    steps = [int(s) for s in args.level_steps.split(",")]
    if len(steps) != model.num_levels or min(steps) < 0:
        raise SystemExit(f"--level-steps needs {model.num_levels} non-negative counts, got {args.level_steps!r}")
    print(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M", flush=True)
    stages = [Stage(f"levels{i + 1}", n, options={"levels": i + 1}) for i, n in enumerate(steps) if n]
    trained, discriminator = model, None
    if args.gan_weight > 0 or args.lpips_weights:
        from vidtok.training import DiscriminatorConfig
        from vidtok.training.losses import AdversarialTraining, GANLoss, PerceptualLoss

        if args.gan_weight <= 0:
            raise SystemExit("--lpips-weights trains through AdversarialTraining, which needs --gan-weight > 0")
        trained = AdversarialTraining(
            model,
            gan=GANLoss(start_step=args.gan_start, adversarial_weight=args.gan_weight),
            perceptual=PerceptualLoss("alex", args.lpips_weights) if args.lpips_weights else None,
            perceptual_weight=args.perceptual_weight,
            last_layer="decoder.conv_out.conv.weight",
        )
        discriminator = DiscriminatorConfig(start_step=args.gan_start)
    cfg = TrainingConfig(
        output_dir=str(out),
        stages=stages,
        batch_size=args.batch_size,
        optimizer=OptimizerConfig(
            lr=args.lr,
            betas=(0.9, 0.99),
            weight_decay=0.0,
            scheduler="cosine",
            warmup_steps=args.warmup,
            schedule_per_stage=True,
        ),
        max_grad_norm=1.0,
        log_every=25,
        save_every=150,
        keep_last=1,
        seed=args.seed,
        progress_bar=False,
        resume_from="latest" if args.resume else None,
        **({"discriminator": discriminator} if discriminator is not None else {}),
    )
    callback = EvaluationCallback(
        # The tokenizer itself is evaluated and exported, with or without the adversarial wrapper around it.
        lambda m: evaluate_reconstruction(model, held, held_captions),
        export=lambda m, folder: model.save_pretrained(folder),
        every=args.eval_every,
        select="psnr" if args.export else None,
        export_dir=args.export,
        minutes=args.minutes,
    )
    trainer = Trainer(trained, cfg, ClipPool(train_videos, args.foreground_weight), callbacks=[callback])
    try:
        trainer.train()
    except StopTraining as stop:
        print(f"stopped: {stop}", flush=True)
    minutes = trainer.training_seconds / 60
    print(f"trained {trainer.global_step} steps in {minutes:.1f} min", flush=True)
    if frozen_reference is not None:
        with torch.no_grad():
            codes = model.eval().encode(held).indices
            same = all(torch.equal(a, b) for a, b in zip(codes, frozen_reference, strict=True))
        print(f"decoder-only: held-out codes identical to --init-from's: {same}", flush=True)
        if not same:
            raise SystemExit("decoder-only fine-tuning changed the tokens")
    with (out / "summary.json").open("w") as f:
        json.dump({"steps": trainer.global_step, "minutes": minutes, "args": vars(args)}, f, indent=2)


if __name__ == "__main__":
    main()
