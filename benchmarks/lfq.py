"""LFQ entropy penalty, forward + backward at d = 18, against vector-quantize-pytorch's ``LFQ`` (the named baseline).

Setting: a 2^18 codebook (MAGVIT-v2, HiTVideo's densest layer), 1024 and 2048 tokens ``z ~ N(0, 1)`` (the same
seeded leaf tensor for both cases), fp32 inputs, one thread. Both cases compute MAGVIT-v2's entropy penalty
(§3.1, Eq. 5) ``H_sample − γ·H_batch`` with the reference's conventions: ``inv_temperature = 100`` (``τ = 0.01``),
``γ = 1``, entropy weight 1, no commitment loss, and backpropagate it to the leaf.

* ``vector-quantize-pytorch LFQ`` (baseline): ``LFQ(dim=18, codebook_size=2**18, entropy_loss_weight=1,
  commitment_loss_weight=0, diversity_gamma=1)`` in training mode, ``forward(z, inv_temperature=100)``; its aux
  loss builds the ``N × 2^18`` distance, probability and log-probability matrices.
* ``vidtok LFQ``: :class:`vidtok.tokenizers.quantizers.LFQ` with the same settings; the exact factorized entropy
  (per-bit binary entropies + one ``512 × N × 512`` GEMM, float64).

Each measurement runs in a **fresh subprocess** (``--worker``), so neither case inherits the other's heap:

* time: wall clock of forward + backward. The baseline runs **once** (cold: ~100 s per 1024 tokens on one core);
  vidtok runs one warm-up call and then ``--repeats`` timed calls, reported as the median (its cold first call is
  reported too).
* memory: **peak RSS growth** of the subprocess, ``getrusage(RUSAGE_SELF).ru_maxrss`` after the runs minus the
  RSS (``/proc/self/statm``) just before the first forward, with the inputs, the module and torch already loaded.

The baseline at 2048 tokens needs about twice its 1024-token peak; it is skipped (with a note) when that estimate
exceeds ``--reference-max-gib`` or the memory available now. ``--skip-reference`` times vidtok alone.

Values: the per-sample and batch entropies of both cases side by side, and the largest gradient difference. The
baseline clamps probabilities at ``1e-5`` inside its logs (``log(clamp(p, 1e-5))``) over 2^18 mostly tiny
probabilities, which lowers both of its entropies slightly; vidtok's values are exact. To show that the batch
distributions themselves agree, vidtok's exact ``p̄`` is also run through the baseline's clamped formula. The clamp
also changes the baseline's *gradient*: where tokens sit on distinct codes the exact gradients of the two entropies
cancel (``H(p̄) = log N + mean H(q_n)`` for disjoint supports), the clamped ones do not. So the exactness of both
is checked against a float64 brute force over all 2^18 codes, on ``--exact-tokens`` tokens (128: the brute force
itself holds several ``128 × 2^18`` float64 tensors, ~2 GiB) drawn from ``N(0, 0.05²)``, where assignments are
soft and the exact gradient is far from zero.

    python benchmarks/lfq.py [--tokens 1024 2048] [--bits 18] [--repeats 5] [--threads 1] [--skip-reference]

Needs ``pip install vector-quantize-pytorch`` (1.32.0 was measured) for the baseline. Target from the HiTVideo
issue: vidtok at least 100× faster and at most 1/20 of the baseline's memory, with the same values.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE = "vector-quantize-pytorch LFQ (baseline)"
OURS = "vidtok LFQ"
INV_TEMPERATURE = 100.0
GAMMA = 1.0
REFERENCE_CLAMP = 1e-5  # vector-quantize-pytorch's log(t.clamp(min=1e-5))
SEED = 0


# ---------------------------------------------------------------------------------------------- worker side
def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _inputs(tokens: int, bits: int):
    import torch

    return torch.randn(tokens, bits, generator=torch.Generator().manual_seed(SEED))


def _exactness(tokens: int, bits: int, out_dir: Path) -> None:
    """Both implementations against a float64 brute force over all 2^bits codes (values and gradients)."""
    import torch

    z0 = 0.05 * torch.randn(tokens, bits, generator=torch.Generator().manual_seed(SEED + 1))
    shifts = torch.arange(bits - 1, -1, -1)
    corners = (((torch.arange(2**bits).unsqueeze(-1) >> shifts) & 1) * 2 - 1).double()
    z = z0.double().requires_grad_(True)
    # q(c | z) = softmax_c(-||z - c||^2 / tau) = softmax_c(2 z.c / tau): the definition, over every code.
    log_p = torch.log_softmax(2.0 * INV_TEMPERATURE * z @ corners.T, dim=-1)
    p = log_p.exp()
    per_sample = -(p * log_p).sum(-1).mean()
    mean = p.mean(0)
    batch = -(mean * mean.clamp_min(torch.finfo(torch.float64).tiny).log()).sum()
    (per_sample - GAMMA * batch).backward()
    truth = {"per_sample": float(per_sample), "batch": float(batch), "grad": z.grad}
    del log_p, p, mean
    result = {"tokens": tokens, "grad_max": float(z.grad.abs().max())}
    from vidtok.tokenizers.quantizers import LFQ

    cases = {"ours": None}
    try:
        from vector_quantize_pytorch import LFQ as ReferenceLFQ

        cases["reference"] = ReferenceLFQ
    except ImportError:
        pass
    for case, reference_class in cases.items():
        z = z0.clone().requires_grad_(True)
        if reference_class is None:
            module = LFQ(
                num_bits=bits, inv_temperature=INV_TEMPERATURE, diversity_gamma=GAMMA, commitment_loss_weight=0.0
            )
            aux = module.train()(z).aux_losses
            values = aux["per_sample_entropy"], aux["batch_entropy"]
        else:
            module = reference_class(
                dim=bits, codebook_size=2**bits, entropy_loss_weight=1.0, commitment_loss_weight=0.0
            ).train()
            _, breakdown = module(z.unsqueeze(0), inv_temperature=INV_TEMPERATURE, return_loss_breakdown=True)
            values = breakdown.per_sample_entropy, breakdown.batch_entropy
        (values[0] - GAMMA * values[1]).backward()
        result[case] = {
            "per_sample_error": abs(float(values[0]) - truth["per_sample"]),
            "batch_error": abs(float(values[1]) - truth["batch"]),
            "grad_error": float((z.grad.double() - truth["grad"]).abs().max()),
        }
    (out_dir / f"exact_{tokens}.json").write_text(json.dumps(result))


def _worker(case: str, tokens: int, bits: int, repeats: int, threads: int, out_dir: Path) -> None:
    import torch

    torch.set_num_threads(threads)
    z0 = _inputs(tokens, bits)
    if case == "reference":
        try:
            from vector_quantize_pytorch import LFQ as ReferenceLFQ
        except ImportError:
            print("vector-quantize-pytorch is not installed: pip install vector-quantize-pytorch==1.32.0")
            sys.exit(3)
        module = ReferenceLFQ(
            dim=bits, codebook_size=2**bits, entropy_loss_weight=1.0, commitment_loss_weight=0.0, diversity_gamma=GAMMA
        ).train()

        def step(z):
            output, breakdown = module(z.unsqueeze(0), inv_temperature=INV_TEMPERATURE, return_loss_breakdown=True)
            loss = output[2]
            loss.backward()
            return loss, breakdown.per_sample_entropy, breakdown.batch_entropy

    else:
        from vidtok.tokenizers.quantizers import LFQ

        module = LFQ(
            num_bits=bits,
            inv_temperature=INV_TEMPERATURE,
            diversity_gamma=GAMMA,
            entropy_loss_weight=1.0,
            commitment_loss_weight=0.0,
        ).train()

        def step(z):
            out = module(z)
            out.loss.backward()
            return out.loss, out.aux_losses["per_sample_entropy"], out.aux_losses["batch_entropy"]

    rss_before, max_rss_before = _rss_bytes(), _max_rss_bytes()
    times = []
    for _ in range(1 if case == "reference" else repeats + 1):
        z = z0.clone().requires_grad_(True)
        start = time.perf_counter()
        loss, per_sample, batch = step(z)
        times.append(time.perf_counter() - start)
    max_rss_after = _max_rss_bytes()
    result = {
        "times": times,
        "rss_before": rss_before,
        "max_rss_before": max_rss_before,
        "peak_growth": max_rss_after - rss_before,
        "new_peak": max_rss_after > max_rss_before,
        "loss": float(loss),
        "per_sample": float(per_sample),
        "batch": float(batch),
    }
    if case == "ours":
        from vidtok.tokenizers.quantizers import mean_code_distribution

        with torch.no_grad():
            mean = mean_code_distribution(4.0 * INV_TEMPERATURE * z0)
            result["batch_clamped"] = float(-(mean * mean.clamp_min(REFERENCE_CLAMP).log()).sum())
    torch.save(z.grad, out_dir / f"{case}_{tokens}_grad.pt")
    (out_dir / f"{case}_{tokens}.json").write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------- driver side
def _spawn(case: str, tokens: int, args: argparse.Namespace, out_dir: Path) -> dict | None:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    command = [sys.executable, __file__, "--worker", case, "--tokens", str(tokens), "--bits", str(args.bits)]
    command += ["--repeats", str(args.repeats), "--threads", str(args.threads), "--out-dir", str(out_dir)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode == 3:
        print(done.stdout.strip())
        return None
    if done.returncode:
        raise RuntimeError(f"{case} worker at {tokens} tokens failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads((out_dir / f"{case}_{tokens}.json").read_text())


def _available_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark, print a table and return its rows."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--bits", type=int, default=18)
    parser.add_argument("--repeats", type=int, default=5, help="timed vidtok calls (the baseline runs once)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--reference-max-gib", type=float, default=12.0)
    parser.add_argument("--exact-tokens", type=int, default=128, help="tokens of the brute-force check (0: skip)")
    parser.add_argument("--worker", choices=["ours", "reference", "exact"], help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "exact":
        _exactness(args.tokens[0], args.bits, args.out_dir)
        return []
    if args.worker:
        _worker(args.worker, args.tokens[0], args.bits, args.repeats, args.threads, args.out_dir)
        return []

    import torch

    rows, notes = [], []
    reference_bytes_per_token = None
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        for tokens in args.tokens:
            ours = _spawn("ours", tokens, args, out_dir)
            reference = None
            if args.skip_reference:
                notes.append(f"{tokens} tokens: baseline skipped (--skip-reference)")
            else:
                estimate = reference_bytes_per_token * tokens if reference_bytes_per_token else None
                limit = min(args.reference_max_gib * 2**30, _available_bytes() - 2 * 2**30)
                if estimate is not None and estimate > limit:
                    notes.append(
                        f"{tokens} tokens: baseline skipped, it would need ~{estimate / 2**30:.1f} GiB "
                        f"(limit {limit / 2**30:.1f} GiB: --reference-max-gib or the memory available now)"
                    )
                else:
                    reference = _spawn("reference", tokens, args, out_dir)
                    if reference is not None:
                        reference_bytes_per_token = reference["peak_growth"] / tokens
            ours_time = statistics.median(ours["times"][1:])
            row = {"tokens": tokens, "case": OURS, "time_s": ours_time, "cold_time_s": ours["times"][0]}
            row.update({key: ours[key] for key in ("peak_growth", "per_sample", "batch", "batch_clamped", "loss")})
            if reference is not None:
                grad_ours = torch.load(out_dir / f"ours_{tokens}_grad.pt")
                grad_ref = torch.load(out_dir / f"reference_{tokens}_grad.pt")
                row["speedup"] = reference["times"][0] / ours_time
                row["speedup_cold"] = reference["times"][0] / ours["times"][0]
                row["memory_ratio"] = ours["peak_growth"] / reference["peak_growth"]
                row["grad_max_abs_diff"] = float((grad_ours - grad_ref).abs().max())
                row["grad_max_abs_ref"] = float(grad_ref.abs().max())
                rows.append(
                    {
                        "tokens": tokens,
                        "case": BASELINE,
                        "time_s": reference["times"][0],
                        "cold_time_s": reference["times"][0],
                        **{key: reference[key] for key in ("peak_growth", "per_sample", "batch", "loss")},
                    }
                )
            rows.append(row)
        exact = _spawn("exact", args.exact_tokens, args, out_dir) if args.exact_tokens else None

    print(
        f"LFQ entropy penalty forward+backward: d={args.bits} (2^{args.bits} codes), inv_temperature="
        f"{INV_TEMPERATURE:g}, gamma={GAMMA:g}, fp32 inputs N(0,1) seed {SEED}, {args.threads} thread(s); "
        f"torch {torch.__version__}"
    )
    print("time: baseline one cold run; vidtok median of", args.repeats, "warm runs (cold first call in brackets)")
    print("memory: peak RSS growth of a fresh subprocess (ru_maxrss after - RSS before the first forward)\n")
    header = (
        f"{'tokens':>6}  {'case':<40} {'time s':>16} {'peak MiB':>9} {'speedup':>8} {'mem ratio':>9}  "
        f"{'H_sample':>10} {'H_batch':>10} {'loss':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        speed = f"{row['speedup']:.0f}x" if "speedup" in row else ("1x" if row["case"] == BASELINE else "-")
        memory = f"{row['memory_ratio']:.4f}" if "memory_ratio" in row else ("1" if row["case"] == BASELINE else "-")
        time_text = f"{row['time_s']:.3f}" + (f" [{row['cold_time_s']:.3f}]" if row["case"] == OURS else "")
        print(
            f"{row['tokens']:>6}  {row['case']:<40} {time_text:>16} {row['peak_growth'] / 2**20:>9.1f} {speed:>8} "
            f"{memory:>9}  {row['per_sample']:>10.6f} {row['batch']:>10.6f} {row['loss']:>10.6f}"
        )
    print()
    for row in rows:
        if row["case"] != OURS:
            continue
        line = f"{row['tokens']} tokens: vidtok batch entropy through the baseline's clamp = {row['batch_clamped']:.6f}"
        if "grad_max_abs_diff" in row:
            line += (
                f"; max |grad diff| = {row['grad_max_abs_diff']:.3g} (max |grad| {row['grad_max_abs_ref']:.3g}); "
                f"speedup vs the baseline's cold run = {row['speedup_cold']:.0f}x"
            )
        print(line)
    if exact is not None:
        print(
            f"\nexactness vs a float64 brute force over all 2^{args.bits} codes, {exact['tokens']} tokens "
            f"z ~ N(0, 0.05^2) (max |grad| {exact['grad_max']:.3g}):"
        )
        for case, name in (("ours", OURS), ("reference", BASELINE)):
            if case in exact:
                errors = exact[case]
                print(
                    f"  {name:<40} |dH_sample| {errors['per_sample_error']:.2e}  |dH_batch| "
                    f"{errors['batch_error']:.2e}  max |d grad| {errors['grad_error']:.2e}"
                )
    for note in notes:
        print(note)
    return rows


if __name__ == "__main__":
    main()
