"""A long video from the embedded default model: does the object keep its color, and memory stay flat?

Generates ``--keyframes`` keyframes (default 64: 505 frames, about a minute at 8 fps) for a bouncing
object, with the model's sliding context window, and reports: the fraction of frames in which the
prompt's color forms the object (the Shapes scorer's per-frame detection), the fraction of frames with
any object, the longest context the language model held (positions) against the first window's, and the
time per keyframe. Writes the video when ``--output`` is given.

    python examples/long_video_shapes.py --prompt "a large red circle bounces" --keyframes 64 -o long.mp4
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from vidtok.pipelines.text_to_video import TextToVideo, load_default
from vidtok.shapes import COLORS, analyze_video


def color_presence(frames: np.ndarray, color: str) -> tuple[float, float]:
    """Fraction of frames where ``color`` is detected, and where any color is (per-frame, from pixels)."""
    hits, any_hits = [], []
    for frame in frames:
        found = analyze_video(frame[None], list(COLORS))
        hits.append(found[color].present)
        any_hits.append(any(o.present for o in found.values()))
    return float(np.mean(hits)), float(np.mean(any_hits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", default="a large red circle bounces")
    parser.add_argument("--keyframes", type=int, default=64)
    parser.add_argument("--model", default=None, help="TextToVideo folder (default: the embedded model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=10, help="decoder DDIM steps")
    parser.add_argument("-o", "--output", default=None)
    args = parser.parse_args()
    pipe = load_default() if args.model is None else TextToVideo.from_pretrained(args.model)
    color = next(c for c in COLORS if c in args.prompt.split())
    positions = []

    def hook(module, a, kwargs, output):
        positions.append(output.past_key_values.get_seq_length())

    handle = pipe.backbone.register_forward_hook(hook, with_kwargs=True)
    t0 = time.time()
    out = pipe(
        args.prompt,
        num_keyframes=args.keyframes,
        num_inference_steps=args.steps,
        generator=torch.Generator().manual_seed(args.seed),
        progress=False,
    )
    seconds = time.time() - t0
    handle.remove()
    frames = out.frames[0]
    presence, anything = color_presence(frames, color)
    window = pipe.video_lm.config.text_length + pipe.video_lm.config.max_keyframes * (
        pipe.video_lm.config.num_tokens + 1
    )
    result = {
        "prompt": args.prompt,
        "keyframes": args.keyframes,
        "frames": int(frames.shape[0]),
        "seconds_of_video": frames.shape[0] / out.fps,
        "color_presence": presence,
        "any_object_presence": anything,
        "max_context_positions": max(positions),
        "context_bound": window,
        "generation_seconds": seconds,
    }
    print(json.dumps(result, indent=2))
    if args.output:
        from vidtok.io import save_video

        save_video(frames, args.output, fps=out.fps)


if __name__ == "__main__":
    main()
