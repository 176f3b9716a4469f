"""Cost per keyframe of video-LM generation as the video grows, with and without the KV cache.

Baseline: the uncached loop (the whole sequence recomputed for every new token, or every new frame for NOVA),
measured in the same run. ``--model dicode_tiny`` (default): ``dicode_tiny``'s language model (GPT-2 style,
4 × 128, GMM head, 16 tokens per keyframe), randomly initialized (timing does not depend on the weights), with
room for 64 keyframes in one context (``max_keyframes=64``, 2048 positions) so the full-context runs never
slide. ``--model nova_tiny``: NOVA's block-causal backbone (4 × 192) with its set-by-set decoder and flow head
(16 tokens per latent frame; ``--set-steps``, ``--head-steps``), whose frame cache needs no position limit; it
also times the ``continuous_vae`` wrapper against calling its diffusers VAE directly (encode + decode of a
17-frame 32 × 32 clip; target ≤ 1.1×). Three runs of 64 keyframes (frames):

* ``cached``: KV cache, full context (one new position per step; attention over a growing cache);
* ``cached, window 8``: KV cache with the sliding window the shipped model uses (8 keyframes; the newest
  half is re-encoded when the window is full), so memory and cost stay flat however long the video;
* ``uncached``: the baseline.

Printed: milliseconds per keyframe at keyframes 4, 8, 16, 32 and 64 (median of the keyframes around each
mark), and the ratio last / first per run — the target is ≤ 1.5 for the cached runs while the uncached
one grows — plus the longest context each run holds (positions) and the size of its keys and values.

    python benchmarks/generate.py [--keyframes 64] [--threads 1] [--model nova_tiny]
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
    layers = cfg.get("num_layers") or cfg.get("num_hidden_layers")
    # Keys and values of every layer for the longest context held (fp32): the memory that grows with length.
    kv_mib = 2 * layers * max(positions) * cfg.hidden_size * 4 / 2**20
    return per, max(positions), kv_mib


def around(per: list[float], k: int) -> float:
    lo, hi = max(0, k - 3), min(len(per), k + 1)
    return statistics.median(per[lo:hi])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keyframes", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", choices=("dicode_tiny", "nova_tiny"), default="dicode_tiny")
    parser.add_argument("--set-steps", type=int, default=None, help="nova_tiny: set-by-set steps per frame")
    parser.add_argument("--head-steps", type=int, default=None, help="nova_tiny: the head's Euler steps")
    parser.add_argument("--repeats", type=int, default=5, help="nova_tiny: repeats of the VAE overhead timing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.model == "nova_tiny":
        model_kwargs = {"set_steps": args.set_steps} if args.set_steps else {}
        head_kwargs = {"num_inference_steps": args.head_steps} if args.head_steps else {}
        recipe = vidtok.RECIPES.create("nova_tiny", model_kwargs=model_kwargs, head_kwargs=head_kwargs)
    else:
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
    print(f"{args.model} generation, {args.keyframes} keyframes x 16 tokens, fp32, {args.threads} thread(s)")
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
    if args.model == "nova_tiny":
        vae_overhead(parts["video_tokenizer"], args.repeats)


def vae_overhead(tokenizer, repeats: int) -> None:
    """The ``continuous_vae`` wrapper against its diffusers VAE called directly: encode + decode, same clip."""
    vae = tokenizer.vae.eval()
    tokenizer.eval()
    video = torch.rand(1, 3, 17, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def direct():
        latents = vae.encode(video).latent_dist.mean
        return vae.decode(latents).sample

    def wrapped():
        return tokenizer.decode(tokenizer.encode(video))

    times = {"diffusers VAE (baseline)": [], "continuous_vae": []}
    with torch.no_grad():
        for _ in range(repeats + 1):  # interleaved; the first round warms up
            for name, fn in (("diffusers VAE (baseline)", direct), ("continuous_vae", wrapped)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t[1:]) * 1000 for name, t in times.items()}
    print(f"{type(vae).__name__} encode + decode, 1 x 3 x 17 x 32 x 32, median of {repeats}:")
    for name, ms in med.items():
        print(f"  {name:<26} {ms:8.1f} ms")
    print(f"  wrapper / direct: {med['continuous_vae'] / med['diffusers VAE (baseline)']:.3f}x")


if __name__ == "__main__":
    main()
