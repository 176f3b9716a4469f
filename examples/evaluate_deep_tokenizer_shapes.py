"""Measure a Shapes deep tokenizer on held-out videos: the numbers in docs/tokenizers/deep_tokens.md.

64 held-out Shapes videos (``split="heldout"``, seed 123: each has a (color, shape) pair the encoder and the
video LM never saw; ``--split train`` for videos of the training pairs),
32×32, 9 frames, keyframes 0 and 8; deterministic DDIM (``eta = 0``), guidance 1. Prints PSNR/SSIM of the
diffusion decoding and of the token preview, PSNR of keyframes vs in-between frames, the Shapes scores of
reconstructions and originals with their ratio, and the decoding time.

    python examples/evaluate_deep_tokenizer_shapes.py                       # the shipped model
    python examples/evaluate_deep_tokenizer_shapes.py --model runs/deep_tokens_shapes/model --steps 25
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vidtok.metrics.video_quality import psnr, psnr_per_frame, ssim
from vidtok.shapes import ShapesConfig, generate, score_videos
from vidtok.tokenizers.deep_tokens import DeepTokenizer, load_shapes_default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="tokenizer folder (default: the shipped one)")
    parser.add_argument("--videos", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument(
        "--split",
        choices=("heldout", "train", "all"),
        default="heldout",
        help="Shapes split of the videos: 'heldout' has a held-out (color, shape) pair in every video",
    )
    parser.add_argument("--guidance", type=float, default=1.0, help="decoder classifier-free guidance")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tok = load_shapes_default() if args.model is None else DeepTokenizer.from_pretrained(args.model)
    tok = tok.float().eval()
    cfg = ShapesConfig(resolution=32, num_frames=9, fps=8.0, split=args.split, seed=args.seed)
    videos, captions = generate(args.videos, cfg)
    video = torch.from_numpy(videos.transpose(0, 4, 1, 2, 3).copy()).float().div(127.5).sub(1)
    with torch.no_grad():
        tokens = tok.encode(video).tokens
        t0 = time.time()
        recon = tok.decode(
            tokens,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            eta=args.eta,
            generator=torch.Generator().manual_seed(0),
            progress=False,
        )
        seconds = time.time() - t0
        preview = tok.preview(tokens) if tok.denoiser.spatial is not None else None
    per_frame = psnr_per_frame(recon, video).reshape(args.videos, -1)
    ours, ref = score_videos(recon, captions), score_videos(video, captions)
    result = {
        "videos": args.videos,
        "split": args.split,
        "ddim_steps": args.steps,
        "guidance": args.guidance,
        "eta": args.eta,
        "psnr": psnr(recon, video),
        "ssim": ssim(recon, video),
        "psnr_keyframes": float(per_frame[:, [0, -1]].mean()),
        "psnr_inbetween": float(per_frame[:, 1:-1].mean()),
        "psnr_preview": psnr(preview, video) if preview is not None else None,
        "black_psnr": psnr(torch.full_like(video, -1), video),
        "scores": {k: round(ours[k], 4) for k in ours},
        "scores_original": {k: round(ref[k], 4) for k in ref},
        "score_ratio": {k: round(ours[k] / ref[k], 4) for k in ours if ref[k] == ref[k] and ref[k] > 0},
        "decode_seconds": seconds,
        "decode_seconds_per_clip": seconds / args.videos,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
