"""Import cost of ``import vidtok`` against named baselines, each measured in fresh interpreters.

Baselines: a bare interpreter (``python -c pass``) and ``import torch``. The target is that ``import vidtok``
adds well under 0.5 s to a bare interpreter and costs a small fraction of ``import torch``.

    python benchmarks/import_time.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "bare interpreter (baseline)": "pass",
    "import vidtok": "import vidtok",
    "from vidtok import Registry": "from vidtok import Registry",
    "from vidtok import save_video": "from vidtok import save_video",
    "import torch (baseline)": "import torch",
}


def measure(code: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    results = {name: measure(code, args.repeats) for name, code in CASES.items()}
    bare, torch_time = results["bare interpreter (baseline)"], results["import torch (baseline)"]
    print(f"{'case':<34}{'median s':>10}{'added s':>10}{'vs torch':>10}")
    for name, seconds in results.items():
        added = seconds - bare
        print(f"{name:<34}{seconds:>10.3f}{added:>10.3f}{added / (torch_time - bare):>10.3f}")


if __name__ == "__main__":
    main()
