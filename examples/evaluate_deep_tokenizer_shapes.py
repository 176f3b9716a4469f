"""Measure a Shapes deep tokenizer on held-out videos: the numbers in docs/tokenizers/deep_tokens.md.

64 held-out Shapes videos (``split="heldout"``, seed 123: each has a (color, shape) pair the encoder and the
video LM never saw; ``--split train`` for videos of the training pairs),
32×32, 9 frames, keyframes 0 and 8; deterministic DDIM (``eta = 0``), guidance 1. Prints PSNR/SSIM of the
diffusion decoding and of the token preview, PSNR of keyframes vs in-between frames, the Shapes scores of
reconstructions and originals with their ratio, and the decoding time.

    python examples/evaluate_deep_tokenizer_shapes.py                       # the shipped model
    python examples/evaluate_deep_tokenizer_shapes.py --model runs/deep_tokens_shapes/model --steps 25

The measurement is :func:`vidtok.metrics.shapes_evaluation.reconstruction_report`; this script loads the tokenizer.
"""

from __future__ import annotations

import argparse
import json

import torch

from vidtok.metrics.shapes_evaluation import reconstruction_report
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
    result = reconstruction_report(
        tok.float().eval(),
        videos=args.videos,
        split=args.split,
        seed=args.seed,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        eta=args.eta,
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
