"""Cost of the Shapes world per 64×64×16 clip, against decoding the same clip from an H.264 file.

Baseline: ``vidtok.io.read_video`` of the clip saved as mp4 (what a file-backed dataset pays per sample).
Measured: procedural generation (``render_video``) and pixel scoring (``score_video``). Single thread,
median of repeats.

    python benchmarks/shapes.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> list[tuple[str, float, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)

    from vidtok.io import read_video, save_video
    from vidtok.shapes import generate, score_video

    videos, captions = generate(args.repeats, resolution=64, num_frames=16, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        save_video(videos[0], path, fps=8)
        baseline = median_time(lambda: read_video(path), args.repeats)
    counter = iter(range(10**9))
    cases = {
        "read_video(mp4) (baseline)": baseline,
        "generate one clip": median_time(
            lambda: generate(1, resolution=64, num_frames=16, seed=next(counter)), args.repeats
        ),
        "score_video": median_time(lambda: score_video(videos[1], captions[1]), args.repeats),
    }
    rows = [(name, seconds, seconds / baseline) for name, seconds in cases.items()]
    print(f"{'case (64x64x16 clip)':<30}{'median ms':>11}{'vs baseline':>13}")
    for name, seconds, ratio in rows:
        print(f"{name:<30}{seconds * 1e3:>11.2f}{ratio:>13.2f}")
    return rows


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
