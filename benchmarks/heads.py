"""All head benchmarks of issue 3 in one run: GMM loss vs torch.distributions, diffusion-MLP vs a plain loop.

Each section prints its own table of absolute times, peak memory and ratios against its named baseline:

* ``benchmarks/heads_gmm.py`` — GMM loss forward + backward at DiCoDe scale (K = 16, d = 1024, 1024 tokens)
  against ``torch.distributions.MixtureSameFamily``; target ≥ 1.5× faster and no more peak memory.
* ``benchmarks/heads_diffusion_mlp.py`` — one training step (1024 tokens × 4 timesteps) and 100-step sampling
  of 256 tokens against a plain per-step loop with diffusers' ``DDPMScheduler``; target ≥ 1.3× faster sampling.

    python benchmarks/heads.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import heads_diffusion_mlp  # noqa: E402
import heads_gmm  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run, not for reporting)")
    args = parser.parse_args(argv)
    print("== GMM head loss (fp32, 1 thread)")
    heads_gmm.main(["--repeats", "2"] if args.quick else [])
    print("\n== Diffusion-MLP head (fp32, 1 thread)")
    heads_diffusion_mlp.main(["--repeats", "2"] if args.quick else [])


if __name__ == "__main__":
    main()
