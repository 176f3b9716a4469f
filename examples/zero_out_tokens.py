"""Zero out deep tokens one by one and watch what disappears (DiCoDe Fig. 4).

Encodes a Shapes clip (or any video file) with the shipped Shapes deep tokenizer (or a saved one), then
decodes it with 0, 1, 2, ... tokens per keyframe set to zero, and writes a GIF grid: the original on top,
then one row per number of zeroed tokens.

    python examples/zero_out_tokens.py --output zeroing.gif
    python examples/zero_out_tokens.py --video clip.mp4 --model path/to/tokenizer --output zeroing.gif
"""

from __future__ import annotations

import argparse

import torch

from vidtok.io import read_video, save_video
from vidtok.tokenizers.deep_tokens import DeepTokenizer, load_shapes_default
from vidtok.tokenizers.deep_tokens_diagnostics import token_zeroing_grid, zero_out_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="zeroing.gif")
    parser.add_argument("--model", default=None, help="a folder saved with save_pretrained (default: shipped)")
    parser.add_argument("--video", default=None, help="a video file (default: a held-out Shapes clip)")
    parser.add_argument("--caption", default="a large red circle moves right and a small cyan square moves up")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps")
    parser.add_argument("--every", type=int, default=2, help="zero this many more tokens per row")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tok = load_shapes_default() if args.model is None else DeepTokenizer.from_pretrained(args.model)
    h, w = tok.sample_size
    f = tok.temporal_compression
    if args.video is None:
        from vidtok.shapes import render_video

        frames = render_video(args.caption, num_frames=f + 1, resolution=(h, w), seed=args.seed)
        video = torch.from_numpy(frames).permute(3, 0, 1, 2).float().div(127.5).sub(1)
    else:
        video = read_video(args.video, output_type="pt", num_frames=f + 1, size=(h, w))
    n = tok.config.num_queries
    decoded = zero_out_tokens(tok, video, num_inference_steps=args.steps, seed=args.seed)
    rows = decoded[:: args.every] if args.every > 1 else decoded
    save_video(token_zeroing_grid(video, rows), args.output, fps=4)
    print(f"wrote {args.output}: original, then 0, {args.every}, ... of {n} tokens zeroed per keyframe")


if __name__ == "__main__":
    main()
