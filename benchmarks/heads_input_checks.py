"""Cost of the heads' NaN/inf input check (``vidtok.heads.base.CHECK_FINITE``) on GMM head calls.

``TokenHead.check_inputs`` refuses NaN/inf hidden states and targets with one ``isfinite().all()`` reduction
per tensor and one host sync. This script times the same head call with the check on and off (the named
baseline: ``CHECK_FINITE = False``, i.e. the heads before the check existed), interleaved round-robin so
that load from other processes hits both alike, and reports the median over ``--repeats`` rounds after one
warm-up round. fp32, one intra-op thread, CPU.

Cases:

* ``loss fwd+bwd, DiCoDe scale``: ``GMMHead(hidden_size=1024, token_dim=1024, num_components=16)``, 1024 tokens
  (DiCoDe §3.4 / §4: 16 keyframes x 16 tokens x batch 4), ``loss(hidden, target).mean().backward()``: what
  a training step spends in the head (``benchmarks/heads_gmm.py`` times the density alone).
* ``loss fwd+bwd, shipped``: the shipped Shapes model's head (``hidden_size=128``, ``token_dim=64``, K = 16),
  1024 tokens.
* ``sample, shipped``: one AR step of the shipped model: ``sample(hidden (2, 16, 128), temperature=0.1)``
  with guidance (2 x 16 rows), where the fixed per-call cost of the check weighs most.

    python benchmarks/heads_input_checks.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import vidtok.heads.base as heads_base
from vidtok.heads import GMMHead


def _cases(gen: torch.Generator) -> dict[str, Callable[[], object]]:
    big = GMMHead(hidden_size=1024, token_dim=1024, num_components=16)
    hidden_big = torch.randn(1024, 1024, generator=gen)
    target_big = torch.randn(1024, 1024, generator=gen)
    shipped = GMMHead(hidden_size=128, token_dim=64, num_components=16)
    hidden = torch.randn(1024, 128, generator=gen)
    target = torch.randn(1024, 64, generator=gen)
    step_hidden, step_uncond = torch.randn(2, 16, 128, generator=gen), torch.randn(2, 16, 128, generator=gen)

    def loss(head: GMMHead, h: torch.Tensor, t: torch.Tensor) -> Callable[[], object]:
        def run() -> object:
            head.zero_grad(set_to_none=True)
            head.loss(h, t).mean().backward()

        return run

    def sample() -> object:
        with torch.no_grad():
            return shipped.sample(
                step_hidden,
                temperature=0.1,
                generator=torch.Generator().manual_seed(0),
                guidance_scale=3.0,
                uncond_hidden=step_uncond,
            )

    return {
        "loss fwd+bwd, DiCoDe scale": loss(big, hidden_big, target_big),
        "loss fwd+bwd, shipped": loss(shipped, hidden, target),
        "sample, shipped (guided)": sample,
    }


def main(argv: list[str] | None = None) -> list[dict[str, float | str]]:
    """Run the benchmark, print a table and return its rows."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--inner", type=int, default=20, help="calls per timing of the (fast) sample case")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = _cases(torch.Generator().manual_seed(0))
    saved = heads_base.CHECK_FINITE
    times: dict[tuple[str, bool], list[float]] = {(name, on): [] for name in cases for on in (False, True)}
    try:
        for round_index in range(args.repeats + 1):
            for name, fn in cases.items():
                inner = args.inner if name.startswith("sample") else 1
                for on in (False, True):
                    heads_base.CHECK_FINITE = on
                    start = time.perf_counter()
                    for _ in range(inner):
                        fn()
                    if round_index:  # round 0 warms up
                        times[name, on].append((time.perf_counter() - start) / inner)
    finally:
        heads_base.CHECK_FINITE = saved

    print(f"GMM head with/without the finite check: fp32, {args.threads} thread(s), median of {args.repeats}")
    print(f"| {'case':<28} | {'no check (baseline)':>19} | {'with check':>12} | {'overhead':>8} |")
    print(f"|{'-' * 30}|{'-' * 21}|{'-' * 14}|{'-' * 10}|")
    rows = []
    for name in cases:
        off, on = statistics.median(times[name, False]), statistics.median(times[name, True])
        rows.append({"case": name, "baseline_ms": 1e3 * off, "check_ms": 1e3 * on, "ratio": on / off})
        print(f"| {name:<28} | {1e3 * off:>16.3f} ms | {1e3 * on:>9.3f} ms | {on / off:>7.3f}x |")
    print("overhead = time with the check / time without (1.000x = free).")
    return rows


if __name__ == "__main__":
    main()
