"""Metrics log (JSON lines) of a training run, and loss-curve plots.

The trainer appends one JSON object per logged step to ``<output_dir>/metrics.jsonl``, e.g.
``{"step": 100, "stage": "main", "loss": 0.0123, "lr": 9.9e-05, "grad_norm": 0.41, "samples_per_s": 812.5, ...}``.
Losses are averaged over the steps since the previous record and over all processes. When a run resumes from a
checkpoint, records after the checkpoint's step are dropped first (they are about to be trained again), so
the file always describes one consistent run.

``vidtok plot-log RUN_DIR -o curve.png`` (or [`plot_metrics`][vidtok.training.tracking.plot_metrics]) draws the
curves; it needs matplotlib (``pip install matplotlib``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["METRICS_FILE", "MetricsLog", "plot_metrics", "read_metrics"]

METRICS_FILE = "metrics.jsonl"
"""File name of the metrics log inside a run folder."""

# Keys that are bookkeeping, not curves.
_NOT_CURVES = {"step", "stage", "stage_index", "epoch", "time", "samples", "samples_per_s", "lr", "disc/lr"}


class MetricsLog:
    """Append-only JSON-lines metrics file.

    Args:
        path: The file (created with its folder if missing).
        resume_step: When resuming from a checkpoint at this step, keep only the existing records with
            ``step <= resume_step``. ``None`` starts a new file (an existing one is replaced).
    """

    def __init__(self, path: str | os.PathLike[str], *, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_step is not None and self.path.is_file():
            kept = [r for r in read_metrics(self.path) if int(r.get("step", 0)) <= resume_step]
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            for record in kept:
                f.write(json.dumps(record) + "\n")
        os.replace(tmp, self.path)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record and flush it to disk."""
        self._file.write(json.dumps(dict(record), allow_nan=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        if not self._file.closed:
            self._file.close()


def _log_file(source: str | os.PathLike[str]) -> Path:
    path = Path(source)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no metrics log at {os.fspath(path)!r} (expected a run folder or a .jsonl file)")
    return path


def read_metrics(source: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a metrics log, in file order.

    Args:
        source: A run folder (its ``metrics.jsonl``) or the ``.jsonl`` file itself.

    Raises:
        FileNotFoundError: If there is no log there.
        ValueError: If a line is not JSON (a truncated last line, from a killed run, is skipped).
    """
    path = _log_file(source)
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines):  # the write of the last line was cut short
                break
            raise ValueError(f"{path}:{number}: not a JSON line: {err}") from err
    return records


def _moving_average(values: Sequence[float], window: int) -> list[float]:
    if window <= 1:
        return list(values)
    out, total, queue = [], 0.0, []
    for v in values:
        queue.append(v)
        total += v
        if len(queue) > window:
            total -= queue.pop(0)
        out.append(total / len(queue))
    return out


def plot_metrics(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    keys: Sequence[str] | None = None,
    smooth: int = 1,
    log_y: bool = False,
    title: str | None = None,
) -> Path:
    """Draw metric curves (loss against step) from a metrics log into a PNG.

    Args:
        source: A run folder or its ``metrics.jsonl``.
        output: The image file to write (the format follows its extension; ``.png`` typically).
        keys: Metrics to draw. ``None``: every numeric metric except bookkeeping (step, lr, throughput);
            each of ``lr`` and ``samples_per_s`` can be asked for by name.
        smooth: Moving-average window in records (1: raw).
        log_y: Logarithmic y axis.
        title: Figure title (default: the run folder's name).

    Returns:
        The written path.

    Raises:
        ImportError: If matplotlib is not installed.
        ValueError: If the log has no records or a requested metric never appears.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(
            "plotting a metrics log needs matplotlib: pip install matplotlib (or pip install 'vidtok[train]')"
        ) from err
    path = _log_file(source)
    records = read_metrics(path)
    if not records:
        raise ValueError(f"{path}: the log has no records yet")
    numeric = {k for r in records for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if keys is None:
        keys = sorted(numeric - _NOT_CURVES)
        if not keys:
            raise ValueError(f"{path}: no metrics to plot (numeric keys: {sorted(numeric)})")
    else:
        unknown = [k for k in keys if k not in numeric]
        if unknown:
            raise ValueError(f"{path}: no metric named {unknown}; available: {sorted(numeric)}")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for key in keys:
        pairs = [
            (r["step"], float(r[key]))
            for r in records
            if key in r and "step" in r and isinstance(r[key], (int, float)) and math.isfinite(float(r[key]))
        ]
        if not pairs:
            continue
        steps, values = zip(*pairs)
        ax.plot(steps, _moving_average(values, smooth), label=key, linewidth=1.2)
    # Every stage ends with a record (the trainer logs at stage ends), so a stage starts at the previous record.
    for before, after in zip(records, records[1:]):
        if "stage" in after and after.get("stage") != before.get("stage"):
            boundary = before.get("step", 0)
            ax.axvline(boundary, color="grey", linestyle=":", linewidth=1)
            ax.annotate(
                f" {after['stage']}", (boundary, 0.98), xycoords=("data", "axes fraction"), fontsize=8, va="top"
            )
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("value")
    ax.set_title(title if title is not None else path.parent.name)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output)
    plt.close(fig)
    return output
