"""Train a tiny video autoencoder on Shapes with the vidtok trainer, in two stages, then plot its loss curve.

Runs in a minute or two on a laptop CPU:

    python examples/train_tiny_shapes.py --output-dir runs/tiny_shapes
    python examples/train_tiny_shapes.py --output-dir runs/tiny_shapes --resume     # continue an interrupted run

Several processes (GPUs, or CPU processes with ACCELERATE_USE_CPU=true):

    accelerate launch --multi_gpu --num_processes 2 examples/train_tiny_shapes.py --output-dir runs/tiny_ddp

The same run as a config file for ``vidtok train`` is printed with ``--print-config``.
"""

from __future__ import annotations

import argparse

import yaml

from vidtok.training import read_metrics, train_from_config


def run_config(output_dir: str, steps: int) -> dict:
    first = steps // 2
    return {
        "model": {
            "target": "vidtok.training:TinyVideoAutoencoder",
            "kwargs": {"hidden_channels": 32, "latent_channels": 8},
        },
        "data": {
            "train": {
                "name": "shapes",
                "kwargs": {"resolution": 32, "num_frames": 8, "length": 20_000, "antialias": False},
            }
        },
        "trainer": {
            "output_dir": output_dir,
            "batch_size": 16,
            "optimizer": {"lr": 2e-3, "warmup_steps": 20},
            "ema": {"decay": 0.99},
            "stages": [
                {"name": "mse", "steps": first, "options": {"loss": "mse"}},
                {"name": "l1", "steps": steps - first, "options": {"loss": "l1"}},
            ],
            "log_every": 10,
            "save_every": 100,
            "keep_last": 2,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/tiny_shapes")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    parser.add_argument("--print-config", action="store_true", help="print the run config as YAML and exit")
    args = parser.parse_args()
    config = run_config(args.output_dir, args.steps)
    if args.print_config:
        print(yaml.safe_dump(config, sort_keys=False))
        return
    out = train_from_config(config, ["trainer.resume_from=latest"] if args.resume else [])
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    records = read_metrics(args.output_dir)
    print(f"loss {records[0]['mse']:.4f} -> {records[-1]['mse']:.4f} (mse) after {out.global_step} steps")
    print(f"model: {out.model_dir}\nEMA model: {out.ema_dir}")
    try:
        from vidtok.training import plot_metrics

        print(f"curve: {plot_metrics(args.output_dir, f'{args.output_dir}/loss.png', keys=['mse', 'l1'])}")
    except ImportError:
        print("pip install matplotlib to plot the loss curve (or: vidtok plot-log RUN_DIR)")


if __name__ == "__main__":
    main()
