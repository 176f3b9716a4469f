"""DiCoDe Tables 3 and 4 in miniature on Shapes: AR heads and deep-token counts, equal budgets.

Every run is ``examples/train_dicode_shapes.py`` with one thing changed (same data, steps, batch, seed):

* heads (Table 4): ``l2``, ``gaussian``, ``gmm`` (k = 16), ``diffusion_mlp`` — the non-L2 heads follow the
  progressive schedule (L2 first, then the head), as the default recipe does;
* deep tokens per keyframe (Table 3): 8 / 16 / 32 — each needs a tokenizer trained with that many tokens
  (``examples/train_deep_tokenizer_shapes.py --config '{"num_queries": 8}'``), given as
  ``--tokenizers 8=DIR 32=DIR``; 16 is the shipped one unless ``16=DIR`` is given too (DiCoDe trains the
  three tokenizers with the same settings). A count without a tokenizer is reported as not run.

Reported per run: held-out prompt-following (Shapes scorer on the held-out (color, shape) pairs, two seeds
each: color, shape, size, motion, joint), diversity on the under-specified prompt ``"a red shape"`` (distinct
(shape, size, motion) outcomes over 8 seeds; L2 samples deterministically, so it should give one), and the
validation NLL where the head defines a density. The table goes to ``OUTPUT/results.md``.

The table in ``docs/results.md`` (about 40 min per head on one thread; two heads at a time on two cores)::

    python examples/ablate_heads_shapes.py --output-dir runs/ablate --steps 3000 --videos 12000 \\
        --heads gmm l2 --threads 1 &
    python examples/ablate_heads_shapes.py --output-dir runs/ablate --steps 3000 --videos 12000 \\
        --heads gaussian diffusion_mlp --threads 1
    python examples/ablate_heads_shapes.py --output-dir runs/ablate --steps 3000 --videos 12000  # the table

Start the second command once the first has built ``runs/ablate/token_cache_16`` (both would build it).

The token-count table in ``docs/results.md``: three tokenizers trained with the same settings (about 40 min
each on one thread), then 1,500 AR steps on each one's tokens::

    for n in 8 16 32; do
        python examples/train_deep_tokenizer_shapes.py --output-dir runs/tok$n --config "{\\"num_queries\\": $n}" \\
            --train-videos 10000 --preview-steps 1500 --steps 300 --eval-every 600 --eval-videos 16 --threads 1
    done
    python examples/ablate_heads_shapes.py --output-dir runs/table3 --heads --steps 1500 --videos 12000 \\
        --threads 1 --tokenizers 8=runs/tok8/model 16=runs/tok16/model 32=runs/tok32/model

With tokenizers for 8 and 32 tokens: ``--heads gmm --tokenizers 8=runs/tok8/export 32=runs/tok32/export``;
``--heads`` with no name runs only the token counts. Other options (``--keyframes 3``, ``--batch-size 16``, ...)
are passed to every ``train_dicode_shapes.py`` run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(name: str, out: Path, extra: list[str], args: argparse.Namespace) -> dict | None:
    """Train one configuration (skipped when its summary exists) and return its summary."""
    run_dir = out / name
    summary = run_dir / "summary.json"
    if not summary.exists():
        cmd = [
            sys.executable,
            str(HERE / "train_dicode_shapes.py"),
            "--output-dir",
            str(run_dir),
            "--steps",
            str(args.steps),
            "--videos",
            str(args.videos),
            "--seed",
            str(args.seed),
            "--resume",  # an interrupted run continues from its last checkpoint
            *extra,
            *args.passthrough,
        ]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return json.loads(summary.read_text())


def row(name: str, summary: dict | None) -> str:
    if summary is None:
        return f"| {name} | not run | | | | | | | |"
    f = summary["final"]
    nll = f.get("validation_nll", float("nan"))
    nll_text = "—" if nll != nll else f"{nll:.1f}"
    div = f["diversity"]
    missing = div.get("missing", 0)
    div_text = f"{div['distinct']}/{div['seeds']}" + (f" ({missing} without the object)" if missing else "")
    return (
        f"| {name} | {f['color']:.2f} | {f['shape']:.2f} | {f['size']:.2f} | {f['motion']:.2f} | {f['joint']:.2f} | "
        f"{div_text} | {nll_text} | {summary['minutes']:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="runs/ablate")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--videos", type=int, default=20000)
    parser.add_argument("--heads", nargs="*", default=["l2", "gaussian", "gmm", "diffusion_mlp"])
    parser.add_argument("--tokenizers", nargs="*", default=[], metavar="N=DIR", help="tokenizers for 8/16/32 tokens")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args, args.passthrough = parser.parse_known_args()  # the rest goes to every train_dicode_shapes.py run
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    shared_cache = ["--cache-dir", str(out / "token_cache_16")]

    lines = []
    if args.heads:
        lines += [
            f"Heads (DiCoDe Table 4), {args.steps} steps each, dicode_tiny, 16 deep tokens:",
            "",
            "| head | color | shape | size | motion | joint | diversity | val. NLL (nats/token) | minutes |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
    for head in args.heads:
        lines.append(row(head, run(f"head_{head}", out, ["--head", head, *shared_cache], args)))

    tokenizers = dict(item.split("=", 1) for item in args.tokenizers)
    if set(tokenizers) - {"8", "16", "32"}:
        parser.error(f"--tokenizers takes 8=DIR, 16=DIR and 32=DIR, got {sorted(tokenizers)}")
    lines += [
        "",
        f"Deep tokens per keyframe (DiCoDe Table 3), gmm head, {args.steps} steps each:",
        "",
        "| tokens | color | shape | size | motion | joint | diversity | val. NLL (nats/token) | minutes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in ("8", "16", "32"):
        if n == "16" and n not in tokenizers:
            summary = run("head_gmm", out, ["--head", "gmm", *shared_cache], args)
        elif n in tokenizers:
            extra = ["--tokenizer", os.path.abspath(tokenizers[n]), "--cache-dir", str(out / f"token_cache_{n}")]
            summary = run(f"tokens_{n}", out, extra, args)
        else:
            print(f"deep tokens {n}: not run — pass --tokenizers {n}=DIR (a tokenizer trained with {n} tokens)")
            summary = None
        lines.append(row(n, summary))
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
