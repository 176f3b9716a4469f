"""Time and peak memory of ``vidtok convert dicode`` at the released size, against reading the file officially.

The released DiCoDe files cannot be downloaded here, so the script first writes a language-model checkpoint
with exactly the official keys and shapes (``tests/data/dicode_official_keys.json.gz``: 3,033 tensors, 3.7 G
values, the tokenizer's keys included, as in the release) filled with small random values and the release's
noise schedule. Each measured step then runs in a fresh process, with a sampler thread recording the peak
resident memory (all of it, and the anonymous part: what the process itself allocated, as opposed to file
pages the kernel can drop):

* ``baseline: torch.load`` — reading the checkpoint the way the official loader does (``torch.load``, no
  memory map): every tensor materialized;
* ``convert`` — ``convert_dicode`` (memory-mapped read, every key checked, empty-prompt context computed, the
  ``TextToVideo`` folder written as float32 safetensors with digests);
* ``load + decode`` — ``TextToVideo.from_pretrained`` of the result (digests verified), one keyframe encoded and
  decoded with 2 DDIM steps at 256² (CFG 7.5: two UNet passes per step).

Printed: seconds and peak memory per step, and peak memory as a ratio to one copy of the weights (the bytes
of the converted float32 weights). Needs ~30 GB of free disk in ``--dir``.

    python benchmarks/convert_dicode.py [--dir runs/dicode-bench] [--threads 2] [--keep]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SAMPLER = textwrap.dedent(
    """
    import json, threading, time
    peak = {"rss": 0, "anon": 0}
    def _sample():
        while True:
            with open("/proc/self/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            kb = lambda k: int(fields.get(k, "0 kB").split()[0])
            peak["rss"] = max(peak["rss"], kb("VmRSS")); peak["anon"] = max(peak["anon"], kb("RssAnon"))
            time.sleep(0.02)
    threading.Thread(target=_sample, daemon=True).start()
    t0 = time.time()
    """
)
REPORT = (
    'print(json.dumps({"seconds": time.time() - t0, "rss_gib": peak["rss"] / 2**20, "anon_gib": peak["anon"] / 2**20}))'
)

WRITE = """
import gzip, json, torch
from diffusers import DDPMScheduler
shapes = json.load(gzip.open({keys!r}, "rt"))["llm"]
g = torch.Generator().manual_seed(0)
state = {{}}
for k, s in shapes.items():
    norm = ("norm" in k or ".ln_" in k or k.split(".")[-2:-1] == ["ln_f"]) and k.endswith("weight")
    state[k] = torch.ones(s) if norm else (0.02 * torch.randn(s, generator=g) if s else torch.zeros(()))
sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, rescale_betas_zero_snr=True)
state["alphas_cumprod"] = sched.alphas_cumprod.clone()
torch.save(state, {path!r})
print(sum(t.numel() for t in state.values()))
"""

STEPS = {
    "baseline: torch.load": "import torch\nstate = torch.load({llm!r}, map_location='cpu', weights_only=True)\n",
    "convert": (
        "from vidtok.convert.dicode import convert_dicode\nconvert_dicode({out!r}, llm={llm!r}, overwrite=True)\n"
    ),
    "load + decode": textwrap.dedent(
        """
        import torch
        from vidtok.pipelines import TextToVideo
        pipe = TextToVideo.from_pretrained({out!r})
        tok = pipe.video_tokenizer
        tokens = tok.encode(torch.zeros(1, 3, 1, 256, 256)).tokens
        frames = tok.decode(tokens, num_inference_steps=2, generator=torch.Generator().manual_seed(0), progress=False)
        assert frames.shape == (1, 3, 1, 256, 256) and torch.isfinite(frames).all()
        """
    ),
}


def _run(code: str, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    program = SAMPLER + code + REPORT
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="runs/dicode-bench", help="scratch folder (~30 GB)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the files")
    args = parser.parse_args()
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    llm, out = str(work / "gpt2_large.pt"), str(work / "converted")
    keys = str(ROOT / "tests" / "data" / "dicode_official_keys.json.gz")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    written = subprocess.run(
        [sys.executable, "-c", WRITE.format(keys=keys, path=llm)], capture_output=True, text=True, env=env, check=True
    )
    values = int(written.stdout.strip().splitlines()[-1])
    print(f"official-layout LM checkpoint: {values / 1e9:.2f} G values, {os.path.getsize(llm) / 2**30:.1f} GiB")
    results = {name: _run(code.format(llm=llm, out=out), args.threads) for name, code in STEPS.items()}
    weights = sum(f.stat().st_size for f in Path(out).rglob("*.safetensors")) / 2**30
    print(f"converted float32 weights: {weights:.1f} GiB (one copy)\n")
    cols = ("seconds", "peak RSS GiB", "/ one copy", "peak anon GiB", "/ one copy")
    print(f"{'step':<22} " + " ".join(f"{c:>{w}}" for c, w in zip(cols, (8, 13, 11, 14, 11), strict=True)))
    for name, r in results.items():
        print(
            f"{name:<22} {r['seconds']:>8.1f} {r['rss_gib']:>13.1f} {r['rss_gib'] / weights:>11.2f} "
            f"{r['anon_gib']:>14.1f} {r['anon_gib'] / weights:>11.2f}"
        )
    with gzip.open(keys, "rt") as f:
        assert len(json.load(f)["llm"]) == 3033
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
