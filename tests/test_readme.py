"""The README's set-up commands are the ones CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quickstart_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    return [line.strip() for line in block.strip().splitlines()]


def test_readme_has_two_setup_commands():
    main_cmd, test_cmd = _quickstart_commands()
    assert main_cmd.endswith("vidtok list") or "vidtok generate" in main_cmd
    assert "pytest" in test_cmd and "HF_HUB_OFFLINE=1" in test_cmd


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    main_cmd, test_cmd = _quickstart_commands()
    install_main = re.search(r"(pip install .*?) &&", main_cmd.split("activate && ", 1)[1]).group(1)
    install_test = re.search(r"(pip install .*?) &&", test_cmd.split("activate && ", 1)[1]).group(1)
    run_tests = test_cmd.rsplit("&& ", 1)[1]
    run_main = main_cmd.rsplit("&& ", 1)[1]
    for command in (install_main, run_main, install_test, run_tests):
        assert command in ci, f"CI does not run the README command {command!r}"


def _python_blocks():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_blocks_run_as_written(tmp_path):
    """Each README code block runs on its own, in a fresh interpreter, in an empty folder (files it reads it
    writes first)."""
    import os
    import subprocess
    import sys

    blocks = _python_blocks()
    assert len(blocks) >= 2
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for i, block in enumerate(blocks):
        out = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, f"README python block {i} failed:\n{block}\n{out.stderr[-2000:]}"


def test_readme_training_command_runs_as_written(tmp_path):
    """The README's `vidtok train` smoke command trains the example config and exports a pipeline."""
    import os
    import shlex
    import subprocess

    text = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S) if "vidtok train examples/" in b)
    command = " ".join(line.split("#", 1)[0].rstrip().removesuffix("\\") for line in block.strip().splitlines())
    argv = [a.replace("examples/configs", str(ROOT / "examples" / "configs")) for a in shlex.split(command)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "runs" / "dicode_tiny" / "pipeline" / "model_index.json").is_file()
