"""The "Add your own component" guide (docs/guides/plugins.md) runs as written.

The page's ```python blocks, in order, are one program: a third-party tokenizer, head, AR model and recipe
registered from outside the package and used through ``TextToVideo``. It is written to a module file and
imported in a fresh interpreter (registrations are global and duplicates raise), from a module name so that
the saved pipeline records classes diffusers can find again when it reloads the folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "guides" / "plugins.md"
MODULE = "my_vidtok_plugin"

# Saves the guide's pipeline and its output, for the reload in a second interpreter.
SAVE = f"""
import sys
import numpy as np
import {MODULE} as guide
guide.pipe.save_pretrained(sys.argv[1])
np.save(sys.argv[2], guide.generate(guide.pipe).frames)
"""

RELOAD = f"""
import sys
import numpy as np
import {MODULE} as guide
from vidtok import TextToVideo
loaded = TextToVideo.from_pretrained(sys.argv[1])
assert np.array_equal(guide.generate(loaded).frames, np.load(sys.argv[2])), "reloaded pipeline differs"
print("reloaded in a fresh interpreter")
"""


def _blocks(fence: str) -> list[str]:
    return re.findall(rf"^```{fence}\n(.*?)^```", PAGE.read_text(), flags=re.S | re.M)


def _run(code: str, folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"the guide's program failed:\n{proc.stdout}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def guide(tmp_path_factory):
    """The guide's program as a module, run once: ``(folder, stdout)``; the pipeline saved under ``folder``."""
    folder = tmp_path_factory.mktemp("plugin_guide")
    (folder / f"{MODULE}.py").write_text("\n\n".join(_blocks("python")))
    proc = _run(SAVE, folder, str(folder / "saved"), str(folder / "frames.npy"))
    return folder, proc.stdout


def test_page_is_one_program_of_several_blocks():
    blocks = _blocks("python")
    assert len(blocks) >= 8
    program = "\n\n".join(blocks)
    compile(program, str(PAGE), "exec")
    for name in ("patch_codes", "scaled_categorical", "step_parallel", "patch_codes_tiny"):
        assert f'.register("{name}")' in program


def test_guide_runs_and_prints_what_it_says(guide):
    _, stdout = guide
    lines = stdout.strip().splitlines()
    assert lines[-1] == "plugin guide: all checks passed"
    assert "frames (1, 9, 16, 16, 3) codes (1, 3, 4)" in lines
    assert f"saved ['{MODULE}', 'PatchCodesTokenizer'] ['{MODULE}', 'StepParallelLM'] " in stdout
    assert any(line.startswith("AR loss") for line in lines)
    # The error the page says it prints is the one it prints.
    (printed,) = _blocks("text")
    assert printed.strip() == lines[-2]
    assert "head models 16 codes, the codebook has 8" in lines[-2] and "head hidden_size 16" in lines[-2]


@pytest.mark.slow
def test_saved_pipeline_reloads_in_a_fresh_interpreter(guide):
    folder, _ = guide
    proc = _run(RELOAD, folder, str(folder / "saved"), str(folder / "frames.npy"))
    assert proc.stdout.strip().endswith("reloaded in a fresh interpreter")
