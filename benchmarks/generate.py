"""Cost per keyframe of video-LM generation as the video grows, with and without the KV cache.

Baseline: the uncached loop (the whole sequence recomputed for every new token), measured in the same run.
The model is ``dicode_tiny``'s language model (GPT-2 style, 4 × 128, GMM head, 16 tokens per keyframe),
randomly initialized (timing does not depend on the weights), with room for 64 keyframes in one context
(``max_keyframes=64``, 2048 positions) so the full-context runs never slide. Three runs of 64 keyframes:

* ``cached``: KV cache, full context (one new position per step; attention over a growing cache);
* ``cached, window 8``: KV cache with the sliding window the shipped model uses (8 keyframes; the newest
  half is re-encoded when the window is full), so memory and cost stay flat however long the video;
* ``uncached``: the baseline.

Printed: milliseconds per keyframe at keyframes 4, 8, 16, 32 and 64 (median of the keyframes around each
mark), and the ratio last / first per run — the target is ≤ 1.5 for the cached runs while the uncached
one grows — plus the longest context each run holds (positions) and the size of its keys and values.

    python benchmarks/generate.py [--keyframes 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

import vidtok
from vidtok.recipes.base import build_components


def run(parts: dict, keyframes: int, *, use_cache: bool, window: int | None) -> tuple[list[float], float]:
    lm, backbone, head = parts["model"], parts["backbone"], parts["head"]
    ids = lm.null_text(1)
    positions = []  # sequence length the backbone holds after each call (cache, or the recomputed sequence)

    def hook(module, args, kwargs, output):
        cache = getattr(output, "past_key_values", None)
        embeds = args[0] if args else kwargs["inputs_embeds"]
        positions.append(cache.get_seq_length() if cache is not None else embeds.shape[1])

    handle = backbone.register_forward_hook(hook, with_kwargs=True)
    stamps = [time.perf_counter()]
    lm.generate(
        backbone,
        head,
        ids,
        keyframes,
        use_cache=use_cache,
        context_keyframes=window,
        generator=torch.Generator().manual_seed(0),
        progress=False,
        callback=lambda k, t: stamps.append(time.perf_counter()),
    )
    handle.remove()
    per = [(b - a) * 1000 for a, b in itertools.pairwise(stamps)]
    cfg = backbone.config
    # Keys and values of every layer for the longest context held (fp32): the memory that grows with length.
    kv_mib = 2 * cfg.num_hidden_layers * max(positions) * cfg.hidden_size * 4 / 2**20
    return per, max(positions), kv_mib


def around(per: list[float], k: int) -> float:
    lo, hi = max(0, k - 3), min(len(per), k + 1)
    return statistics.median(per[lo:hi])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keyframes", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    recipe = vidtok.RECIPES.create(
        "dicode_tiny",
        tokenizer_pretrained=None,
        video_lm={"max_keyframes": args.keyframes},
        backbone_overrides={"n_positions": 2048},
    )
    parts = build_components(recipe)
    for m in parts.values():
        if isinstance(m, torch.nn.Module):
            m.eval()
    marks = [k for k in (4, 8, 16, 32, 64) if k <= args.keyframes]
    runs = {
        "cached": {"use_cache": True, "window": None},
        "cached, window 8": {"use_cache": True, "window": 8},
        "uncached (baseline)": {"use_cache": False, "window": None},
    }
    print(f"video LM generation, {args.keyframes} keyframes x 16 tokens, fp32, {args.threads} thread(s)")
    header = " | ".join(f"k={k:>2} ms" for k in marks)
    print(f"{'run':<22} | {header} | last/first | max context | KV MiB")
    results = {}
    with torch.no_grad():
        for name, kw in runs.items():
            per, context, kv = run(parts, args.keyframes, **kw)
            values = [around(per, k - 1) for k in marks]
            results[name] = values
            cells = " | ".join(f"{v:>8.1f}" for v in values)
            print(f"{name:<22} | {cells} | {values[-1] / values[0]:>10.2f} | {context:>11} | {kv:>6.2f}")
    base = results["uncached (baseline)"][-1]
    for name in ("cached", "cached, window 8"):
        print(f"speed-up at keyframe {marks[-1]}, {name} vs uncached: {base / results[name][-1]:.1f}x")


if __name__ == "__main__":
    main()
