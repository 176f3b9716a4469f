"""HiTVideo's tokenizer studies in miniature on Shapes: Fig. 7 (dynamic token masking) and Fig. 4 (levels).

**Masking (Fig. 7).** For each strategy of HiTVideo §4 — none, ``repeat``, ``zero``, ``learned`` — a copy of a
trained hierarchical tokenizer with ``token_masking`` set is fine-tuned for the same number of steps
(``--steps``; the paper reports "the same training iterations"; the ``learned`` mask tokens start at zero and
are only learned here), then reconstructs held-out clips: PSNR/SSIM and the fraction of tokens masked, per
level and in all. ``--steps 0`` measures the strategies on the trained weights as they are (``learned`` then
equals ``zero``).

**Levels (Fig. 4).** ``--compare DIR`` adds another tokenizer (e.g. a single-level one trained by
``examples/train_hitvideo_tokenizer_shapes.py --config '{"level_bits": [18], "level_strides": []}'``) to the
reconstruction table, with its tokens and bits per clip.

Held-out clips are 17 frames (5 finest steps with the Shapes config, so masking has steps to skip) and 9
frames (what the tokenizer was trained on), of the (color, shape) pairs training never saw. Writes ``--out``
(JSON) and prints a table::

    python examples/hitvideo_tokenizer_studies_shapes.py --tokenizer runs/hitvideo_tok/best \
        --steps 100 --out runs/hitvideo_studies.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from vidtok.data.shapes_training import ClipPool
from vidtok.metrics.shapes_evaluation import render_clips, to_model_video
from vidtok.metrics.video_quality import psnr, ssim
from vidtok.recipes.base import resolve_weights
from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer
from vidtok.tokenizers.token_masking import tokens_saved


def reconstruct(tok: HierarchicalLFQTokenizer, videos: torch.Tensor) -> dict[str, float]:
    """Held-out PSNR/SSIM and, with masking, the fraction of tokens masked (per level and in all)."""
    tok.eval()
    with torch.no_grad():
        out = tok.encode(videos, generator=torch.Generator().manual_seed(0))
        recon = tok.decode(out.tokens)
    result = {"psnr": psnr(recon, videos), "ssim": ssim(recon, videos)}
    layout = tok.token_layout(*videos.shape[2:])
    result["tokens"] = sum(lv.steps * lv.tokens for lv in layout)
    result["bits"] = sum(lv.steps * lv.tokens * (lv.codebook_size.bit_length() - 1) for lv in layout)
    if out.token_masks is not None:
        saved = tokens_saved(out.token_masks)
        result["masked_per_level"] = [round(r["fraction"], 4) for r in saved]
        result["masked"] = sum(r["masked"] for r in saved) / sum(r["total"] for r in saved)
    return result


def fine_tune(tok: HierarchicalLFQTokenizer, clips: ClipPool, steps: int, lr: float, seed: int) -> None:
    """``steps`` Adam steps of the tokenizer's own loss on training clips (batch 16)."""
    if steps == 0:
        return
    tok.train()
    opt = torch.optim.Adam([p for p in tok.parameters() if p.requires_grad], lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(clips), (16,), generator=g).tolist()
        items = [clips[i] for i in idx]
        batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
        loss = tok.training_step(batch, generator=g)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", required=True, help="a trained hierarchical_lfq folder")
    parser.add_argument("--compare", action="append", default=[], help="more tokenizer folders (Fig. 4)")
    parser.add_argument("--steps", type=int, default=100, help="fine-tuning steps per masking strategy")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--videos", type=int, default=64, help="held-out clips")
    parser.add_argument("--train-videos", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    held = {
        frames: to_model_video(render_clips("heldout", args.videos, 123, resolution=32, num_frames=frames)[0])
        for frames in (17, 9)
    }
    train = ClipPool(render_clips("train", args.train_videos, 7, resolution=32, num_frames=17)[0])
    path = resolve_weights(args.tokenizer)
    report: dict = {"tokenizer": args.tokenizer, "steps": args.steps, "masking": {}, "levels": {}}
    for strategy in (None, "repeat", "zero", "learned"):
        t0 = time.time()
        # The learned mask tokens are new parameters (zeros): the only keys allowed to be missing.
        extra = {"allow_missing_keys": True} if strategy == "learned" else {}
        tok = HierarchicalLFQTokenizer.from_pretrained(path, token_masking=strategy, **extra).float()
        if strategy == "learned":
            assert all(float(t.detach().abs().sum()) == 0 for t in tok.mask_tokens)
        fine_tune(tok, train, args.steps, args.lr, seed=0)
        row = {f"{f}f": reconstruct(tok, v) for f, v in held.items()}
        row["seconds"] = round(time.time() - t0, 1)
        report["masking"][strategy or "none"] = row
        print(strategy or "none", json.dumps(row), flush=True)
    for folder in [args.tokenizer, *args.compare]:
        tok = HierarchicalLFQTokenizer.from_pretrained(resolve_weights(folder)).float()
        report["levels"][folder] = {
            "levels": tok.num_levels,
            "level_bits": list(tok.config.level_bits),
            **{f"{f}f": reconstruct(tok, v) for f, v in held.items()},
        }
        print(folder, json.dumps(report["levels"][folder]), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
