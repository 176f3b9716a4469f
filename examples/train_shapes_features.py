"""Train the Shapes feature network behind Shapes FD (``vidtok.metrics.shapes_features``) and ship it.

TF-GAN's classifier metrics (Balaji et al. 2019) measure a generator in the feature space of a classifier
trained on the very data it generates; this script trains that classifier for the Shapes world: a small 3-D
conv network (:class:`~vidtok.metrics.shapes_features.ShapesFeatureNet`, 0.2 M parameters) whose linear
multi-label heads say which colors, shapes, sizes and motions a video shows.

**Data.** Shapes training videos only (``split="train"``: the held-out (color, shape) pairs never appear),
32×32 at 8 fps, one or two objects (60 % / 40 %), rendered once into two pools — 9-frame and 17-frame clips
(the tokenizer's clip and the length of a 3-keyframe generated video) — and cached in ``--output-dir``.
Each step takes a batch from one pool with augmentations that keep the labels true: a random temporal crop
(3 frames up to the whole clip, so features work for any length), a horizontal flip (left ↔ right), time
reversal (left ↔ right, up ↔ down) and Gaussian pixel noise (σ up to 0.05, in [-1, 1] units). Batches are a
pure function of ``(--seed, step)``, so ``--resume`` continues exactly where a run stopped.

**Evaluation.** Held-out accuracy of the heads on one-object videos of the held-out pairs
(``split="heldout"``, never seen), 9 and 17 frames: the arg-max of each head against the object's attribute.
It is a sanity check that the features carry every attribute (color, size and motion should be ≥ 0.95;
shape on unseen (color, shape) pairs is the compositional part).

**Budget.** ``--minutes`` stops after that much training (a checkpoint is saved, and ``--resume`` goes on);
checkpoints every ``--save-every`` steps. When all ``--steps`` are done the network is evaluated, saved in fp16
to ``--export`` (default ``vidtok/assets/shapes_features``, the shipped folder) and evaluated again from there.

Reproduce the shipped network (6,000 steps of 32 clips: 16.8 min of training on one CPU thread of a shared
2-core machine, plus 45 s to render the pools)::

    python examples/train_shapes_features.py --output-dir runs/shapes_features --threads 1

Its heads on 300 one-object videos of the held-out pairs per length (fp32 and the shipped fp16 alike):
9 frames — color 1.00, shape 0.99, size 1.00, motion 1.00; 17 frames — color 1.00, shape 0.99, size 1.00,
motion 1.00 (training-pair videos: 1.00 on every attribute).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidtok.metrics.shapes_features import (
    ATTRIBUTE_CLASSES,
    ShapesFeatureNet,
    attribute_targets,
    load_shapes_features,
)
from vidtok.shapes.dataset import ShapesConfig, generate
from vidtok.shapes.grammar import parse_caption

EXPORT_DEFAULT = Path(__file__).resolve().parents[1] / "vidtok" / "assets" / "shapes_features"
# Label permutations of the motion head under the augmentations (order of MOTION_CLASSES).
_FLIP = {"left": "right", "right": "left"}
_REVERSE = {"left": "right", "right": "left", "up": "down", "down": "up"}


def _permutation(mapping: dict[str, str]) -> list[int]:
    motions = ATTRIBUTE_CLASSES["motion"]
    return [motions.index(mapping.get(m, m)) for m in motions]


def render_pool(path: Path, n: int, num_frames: int, seed: int, split: str, num_objects) -> tuple[np.ndarray, list]:
    """``n`` Shapes clips (``uint8`` ``(n, T, 32, 32, 3)``) and their captions, cached in ``path``."""
    if path.exists():
        data = np.load(path)
        if len(data["videos"]) == n:
            return data["videos"], [str(c) for c in data["captions"]]
    cfg = ShapesConfig(
        resolution=32, num_frames=num_frames, fps=8.0, split=split, num_objects=num_objects, seed=seed, length=n
    )
    videos, captions = generate(n, cfg)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, videos=videos, captions=np.array(captions))
    os.replace(tmp, path)
    return videos, captions


def to_model(videos: np.ndarray) -> torch.Tensor:
    """``uint8`` ``(B, T, H, W, 3)`` → ``(B, 3, T, H, W)`` in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(videos.transpose(0, 4, 1, 2, 3))).float().div(127.5).sub(1.0)


def make_batch(pools: list, targets: list, step: int, args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmented batch of ``step`` (a pure function of the seed and the step)."""
    g = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    k = int(torch.randint(len(pools), (1,), generator=g))
    videos, target = pools[k], targets[k]
    idx = torch.randint(len(videos), (args.batch_size,), generator=g).numpy()
    x = to_model(videos[idx])
    y = target[idx].clone()
    t = x.shape[2]
    length = int(torch.randint(3, t + 1, (1,), generator=g))
    start = int(torch.randint(0, t - length + 1, (1,), generator=g))
    x = x[:, :, start : start + length]
    motion = slice(len(y[0]) - len(ATTRIBUTE_CLASSES["motion"]), None)
    flip = torch.rand(args.batch_size, generator=g) < 0.5
    x[flip] = x[flip].flip(-1)
    y[flip, motion] = y[flip, motion][:, _permutation(_FLIP)]
    reverse = torch.rand(args.batch_size, generator=g) < 0.5
    x[reverse] = x[reverse].flip(2)
    y[reverse, motion] = y[reverse, motion][:, _permutation(_REVERSE)]
    sigma = torch.rand(args.batch_size, 1, 1, 1, 1, generator=g) * args.noise
    x = (x + sigma * torch.randn(x.shape, generator=g)).clamp(-1.0, 1.0)
    return x, y


@torch.no_grad()
def heldout_accuracy(net: ShapesFeatureNet, sets: dict[str, tuple[np.ndarray, list[str]]]) -> dict[str, dict]:
    """Per attribute, the arg-max accuracy of the heads on one-object videos (per evaluation set, and overall)."""
    net.eval()
    result: dict[str, dict] = {}
    hits: dict[str, list[bool]] = {attr: [] for attr in ATTRIBUTE_CLASSES}
    for name, (videos, captions) in sets.items():
        preds = net.classify(to_model(videos))
        truth = [parse_caption(c)[0] for c in captions]
        acc = {}
        for attr in ATTRIBUTE_CLASSES:
            ok = [p[attr] == getattr(o, attr) for p, o in zip(preds, truth, strict=True)]
            hits[attr] += ok
            acc[attr] = float(np.mean(ok))
        acc["joint"] = float(
            np.mean([all(p[a] == getattr(o, a) for a in ATTRIBUTE_CLASSES) for p, o in zip(preds, truth)])
        )
        result[name] = acc
    result["all"] = {attr: float(np.mean(v)) for attr, v in hits.items()}
    return result


def save_checkpoint(path: Path, state: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint.", dir=path.parent)
    os.close(fd)
    torch.save(state, tmp)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="runs/shapes_features")
    parser.add_argument("--export", default=str(EXPORT_DEFAULT), help="where the fp16 network is saved at the end")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--noise", type=float, default=0.05, help="largest pixel-noise sigma of the augmentation")
    parser.add_argument("--videos", type=int, default=12000, help="training clips per pool (9 and 17 frames)")
    parser.add_argument("--eval-videos", type=int, default=300, help="held-out one-object clips per length")
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=None, help="stop (with a checkpoint) after this long")
    parser.add_argument("--resume", action="store_true", help="continue from --output-dir/checkpoint.pt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "log.jsonl", "a")  # noqa: SIM115  (open for the whole run)

    def record(**entry) -> None:
        print(json.dumps(entry), flush=True)
        log.write(json.dumps(entry) + "\n")
        log.flush()

    t0 = time.time()
    mix = {1: 0.6, 2: 0.4}
    pools, targets = [], []
    for k, frames in enumerate((9, 17)):
        videos, captions = render_pool(
            out / f"train_{frames}.npz", args.videos, frames, 100 + args.seed * 10 + k, "train", mix
        )
        pools.append(videos)
        targets.append(attribute_targets([parse_caption(c) for c in captions]))
    evals = {
        f"heldout_{frames}f": render_pool(
            out / f"heldout_{frames}.npz", args.eval_videos, frames, 900 + k, "heldout", 1
        )
        for k, frames in enumerate((9, 17))
    }
    evals["train_9f"] = render_pool(out / "trainval_9.npz", args.eval_videos, 9, 950, "train", 1)
    record(event="data", seconds=round(time.time() - t0, 1), train=[len(p) for p in pools])

    torch.manual_seed(args.seed)
    net = ShapesFeatureNet()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    warmup = min(200, args.steps // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, args.steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    step, trained_seconds = 0, 0.0
    ckpt = out / "checkpoint.pt"
    if args.resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, trained_seconds = state["step"], state["trained_seconds"]
        record(event="resume", step=step, trained_seconds=round(trained_seconds, 1))

    def checkpoint() -> None:
        state = {
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "step": step,
            "trained_seconds": trained_seconds,
        }
        save_checkpoint(ckpt, state)

    session = time.time()
    running = []
    while step < args.steps:
        net.train()
        tick = time.time()
        x, y = make_batch(pools, targets, step, args)
        loss = F.binary_cross_entropy_with_logits(net(x)["logits"], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        trained_seconds += time.time() - tick
        running.append(loss.item())
        if step % 100 == 0:
            record(
                step=step,
                loss=round(float(np.mean(running)), 5),
                lr=sched.get_last_lr()[0],
                minutes=round(trained_seconds / 60, 2),
            )
            running = []
        if step % args.eval_every == 0 or step == args.steps:
            record(step=step, eval=heldout_accuracy(net, evals))
        if step % args.save_every == 0 or step == args.steps:
            checkpoint()
        if args.minutes is not None and time.time() - session > args.minutes * 60 and step < args.steps:
            checkpoint()
            record(event="stopped", step=step, note="time budget reached: rerun with --resume")
            return

    final = heldout_accuracy(net, evals)
    export = Path(args.export)
    net.half().save_pretrained(export)
    shipped = heldout_accuracy(load_shapes_features(export), evals)
    summary = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "training_minutes": round(trained_seconds / 60, 1),
        "threads": args.threads,
        "parameters": sum(p.numel() for p in net.parameters()),
        "heldout_accuracy_fp32": final,
        "heldout_accuracy_fp16": shipped,
        "args": vars(args),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    record(event="exported", folder=str(export), **{k: v for k, v in summary.items() if k != "args"})


if __name__ == "__main__":
    main()
