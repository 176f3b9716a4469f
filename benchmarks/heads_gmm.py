"""GMM head loss, forward + backward, at DiCoDe scale against ``torch.distributions`` (the named baseline).

Setting (DiCoDe §3.4 / §4 defaults): K = 16 components, d = 1024 channels, 16 keyframes x 16 tokens x batch 4
= 1024 tokens, fp32, one intra-op thread. Every case starts from the SAME leaf tensor: the raw projection
output ``(1024, 2·K·d + K) = (1024, 32784)`` in DiCoDe's layout, and computes DiCoDe's training loss
``mean over tokens of -log p(x) / d`` from it, then backpropagates to that leaf. The projection itself is
left out (it is the same matmul for every case and would only dilute the difference).

Cases:

* ``torch.distributions`` (baseline): split the leaf into means / raw variances / logits (views), variance
  ``clamp(softplus(raw), 1e-5)``, then ``-MixtureSameFamily(Categorical(logits), Independent(Normal(μ, σ), 1))
  .log_prob(x)``: the official DiCoDe code.
* ``logsumexp, autograd``: the same density hand-written with tensor ops (per-component log-density summed
  over d, ``logsumexp`` with ``log_softmax`` weights), differentiated by autograd: the obvious rewrite.
* ``vidtok diagonal_gmm_nll``: what :class:`vidtok.heads.GMMHead` runs (``vidtok/heads/_layers.py``): one
  autograd function with a hand-written backward that recomputes the variance instead of storing it and
  writes the gradient into a single buffer shaped like the leaf.

Time: wall clock (``time.perf_counter``) and process CPU time of forward + backward, cases interleaved
round-robin so that load from other processes hits all of them alike; the median over ``--repeats`` rounds
(after one warm-up round) is reported.

Peak memory: the CPU allocator's own record. ``torch.profiler.profile(profile_memory=True)`` logs every
allocation and free of the c10 CPU allocator with its byte count; the running sum of those events, from
the start of the forward to the end of the backward, is the live tensor memory the case allocated, and its
maximum is the peak. Inputs (the leaf and the targets) exist before and are not counted; the gradient of the
leaf is counted (every case must produce it). It is measured in a separate, untimed run. RSS was rejected
because glibc keeps freed blocks mapped, so RSS deltas depend on allocation history, not on the case.

    python benchmarks/heads_gmm.py [--tokens 1024] [--components 16] [--token-dim 1024] [--repeats 7]

The target set in issue 3: vidtok at least 1.5x faster than the baseline, with no more peak memory.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import time
from collections.abc import Callable

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # silence the profiler's "no GPU" chatter

import torch  # noqa: E402
import torch.distributions as D  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from vidtok.heads._layers import diagonal_gmm_nll  # noqa: E402

FLOOR = 1e-5
BASELINE = "torch.distributions (baseline)"


def _split(params: torch.Tensor, k: int, d: int):
    n = params.shape[0]
    means = params[:, : k * d].view(n, k, d)
    variances = F.softplus(params[:, k * d : 2 * k * d].view(n, k, d)).clamp(min=FLOOR)
    return means, variances, params[:, 2 * k * d :]


def loss_torch_distributions(params: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    d = target.shape[-1]
    means, variances, logits = _split(params, k, d)
    mixture = D.MixtureSameFamily(D.Categorical(logits=logits), D.Independent(D.Normal(means, variances.sqrt()), 1))
    return (-mixture.log_prob(target) / d).mean()


def loss_logsumexp_autograd(params: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    d = target.shape[-1]
    means, variances, logits = _split(params, k, d)
    quad = ((target.unsqueeze(1) - means).square() / variances + variances.log()).sum(-1)
    log_comp = -0.5 * quad - 0.5 * d * math.log(2 * math.pi)
    nll = -torch.logsumexp(log_comp + torch.log_softmax(logits, -1), -1)
    return (nll / d).mean()


def loss_vidtok(params: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    return (diagonal_gmm_nll(params, target, num_components=k, variance_floor=FLOOR) / target.shape[-1]).mean()


CASES: dict[str, Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]] = {
    BASELINE: loss_torch_distributions,
    "logsumexp, autograd": loss_logsumexp_autograd,
    "vidtok diagonal_gmm_nll": loss_vidtok,
}


def _run(fn, params0: torch.Tensor, target: torch.Tensor, k: int) -> tuple[float, float, torch.Tensor]:
    params = params0.detach().clone().requires_grad_(True)
    wall, cpu = time.perf_counter(), time.process_time()
    loss = fn(params, target, k)
    loss.backward()
    return time.perf_counter() - wall, time.process_time() - cpu, loss.detach()


@contextlib.contextmanager
def _quiet_stderr():
    """Mute file descriptor 2 (the profiler's C++ start/stop lines) for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def peak_bytes(fn, params0: torch.Tensor, target: torch.Tensor, k: int) -> int:
    """Peak of live CPU-allocator bytes during one forward + backward (see the module docstring)."""
    from torch.profiler import ProfilerActivity, profile

    params = params0.detach().clone().requires_grad_(True)
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(params, target, k).backward()
    events = sorted(
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]"
    )
    if not events:
        raise RuntimeError("torch.profiler recorded no memory events; cannot measure peak memory")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def main(argv: list[str] | None = None) -> list[dict[str, float | str]]:
    """Run the benchmark, print a table and return its rows (for runner scripts)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=1024, help="tokens per batch (DiCoDe: 16 x 16 x batch 4)")
    parser.add_argument("--components", type=int, default=16)
    parser.add_argument("--token-dim", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    k, d, n = args.components, args.token_dim, args.tokens
    gen = torch.Generator().manual_seed(0)
    # Raw parameters N(0, 0.5²): variances softplus(raw) ≈ 0.4 .. 1.2, as after DiCoDe's init.
    params0 = torch.randn(n, 2 * k * d + k, generator=gen) * 0.5
    target = torch.randn(n, d, generator=gen)

    # Same numbers first: loss and gradient of every case against the baseline.
    reference_loss = reference_grad = None
    agreement = {}
    for name, fn in CASES.items():
        params = params0.clone().requires_grad_(True)
        loss = fn(params, target, k)
        loss.backward()
        if reference_loss is None:
            reference_loss, reference_grad = loss.detach(), params.grad
        scale = reference_grad.abs().max()
        agreement[name] = (
            abs(float(loss.detach() - reference_loss)),
            float((params.grad - reference_grad).abs().max() / scale),
        )
        del params

    walls: dict[str, list[float]] = {name: [] for name in CASES}
    cpus: dict[str, list[float]] = {name: [] for name in CASES}
    for round_index in range(args.repeats + 1):
        for name, fn in CASES.items():
            wall, cpu, _ = _run(fn, params0, target, k)
            if round_index:  # round 0 warms up
                walls[name].append(wall)
                cpus[name].append(cpu)
    peaks = {name: peak_bytes(fn, params0, target, k) for name, fn in CASES.items()}

    rows = []
    base_wall, base_cpu = statistics.median(walls[BASELINE]), statistics.median(cpus[BASELINE])
    for name in CASES:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        rows.append(
            {
                "case": name,
                "wall_ms": 1e3 * wall,
                "cpu_ms": 1e3 * cpu,
                "peak_mib": peaks[name] / 2**20,
                "speedup_wall": base_wall / wall,
                "speedup_cpu": base_cpu / cpu,
                "memory_ratio": peaks[name] / peaks[BASELINE],
                "loss_abs_diff": agreement[name][0],
                "grad_rel_diff": agreement[name][1],
            }
        )

    print(
        f"GMM loss forward+backward: {n} tokens, K={k}, d={d}, params {tuple(params0.shape)} fp32, "
        f"{args.threads} thread(s), median of {args.repeats}; torch {torch.__version__}"
    )
    header = (
        f"| {'case':<31} | {'wall ms':>8} | {'CPU ms':>8} | {'peak MiB':>8} | {'speed (wall)':>12} | "
        f"{'speed (CPU)':>11} | {'memory':>7} | {'Δloss':>8} | {'Δgrad rel':>9} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
    for row in rows:
        print(
            f"| {row['case']:<31} | {row['wall_ms']:>8.1f} | {row['cpu_ms']:>8.1f} | {row['peak_mib']:>8.1f} | "
            f"{row['speedup_wall']:>11.2f}x | {row['speedup_cpu']:>10.2f}x | {row['memory_ratio']:>6.2f}x | "
            f"{row['loss_abs_diff']:>8.1e} | {row['grad_rel_diff']:>9.1e} |"
        )
    print("speed = baseline time / case time (higher is faster); memory = case peak / baseline peak.")
    return rows


if __name__ == "__main__":
    main()
