"""The Shapes example scripts run end to end at toy sizes (they produce the shipped model and the docs' tables)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(*args: str, cwd: Path) -> str:
    cmd = [sys.executable, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_train_dicode_shapes_trains_evaluates_exports_and_rescores(tmp_path):
    """Progressive L2 -> Gaussian training on a tiny token cache, the held-out evaluation, the export, and
    ``--evaluate-only`` on the export with language-model guidance, a temperature and another length."""
    run = tmp_path / "run"
    _run(
        str(EXAMPLES / "train_dicode_shapes.py"),
        *("--output-dir", str(run), "--export", str(tmp_path / "export")),
        *("--head", "gaussian", "--videos", "8", "--keyframes", "3", "--steps", "4", "--batch-size", "4"),
        *("--eval-prompts", "2", "--diversity-seeds", "2", "--val-videos", "4", "--threads", "1"),
        cwd=tmp_path,
    )
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 4
    final = summary["final"]
    for key in ("color", "shape", "size", "motion", "joint"):
        assert 0.0 <= final[key] <= 1.0
    assert math.isfinite(final["validation_nll"])  # the Gaussian head defines a density
    assert final["diversity"]["seeds"] == 2 and 1 <= final["diversity"]["distinct"] <= 2
    stages = [json.loads(line)["stage"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert set(stages) <= {"l2", "gaussian"}
    lm_config = json.loads((tmp_path / "export" / "video_lm" / "config.json").read_text())
    assert lm_config["context_keyframes"] == 3  # trained on 3-keyframe sequences

    out = _run(
        str(EXAMPLES / "train_dicode_shapes.py"),
        *("--evaluate-only", str(tmp_path / "export"), "--eval-prompts", "2", "--diversity-seeds", "1"),
        *("--guidance-scale", "1.5", "--temperature", "0.5", "--eval-keyframes", "2", "--eval-seeds", "3"),
        *("--threads", "1"),
        cwd=tmp_path,
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["guidance_scale"] == 1.5 and result["temperature"] == 0.5 and result["keyframes"] == 2
    assert result["seeds"] == [3] and 0.0 <= result["joint"] <= 1.0 and result["diversity"]["seeds"] == 1
