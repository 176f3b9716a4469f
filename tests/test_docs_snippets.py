"""Every code block of the documentation runs as written.

Each page under ``docs/`` is one program: its ```python blocks, ``>>>`` examples (run with doctest) and
```bash blocks (``vidtok`` commands, scripts of the checkout) run in order, in one fresh interpreter, in
an empty folder, with ``HF_HUB_OFFLINE=1`` and one thread. Files a block reads are shipped with the package
or its test extra, or written by an earlier block of the same page; relative paths to ``examples/`` and
``benchmarks/`` resolve (the folder links them). ```text, ```yaml and ```json blocks are not programs and are not run.

A block that needs what a test machine cannot have (local pretrained weights, hours of training, a network
install) carries ``<!-- snippet: skip (reason) -->`` on the line before its fence. Those blocks are listed in
``SKIPPED`` below, reason and all, so that a new one shows up in review. A block marked
``<!-- snippet: slow -->`` (more than about 10 s) runs only in the page's slow test; ``SLOW`` pages are slow
as a whole.

``docs/guides/plugins.md`` is run by ``tests/test_plugin_guide.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Pages run elsewhere, or not (yet) runnable, with the reason.
EXCLUDED = {
    "guides/plugins.md": "run by tests/test_plugin_guide.py",
}

# Pages whose program takes more than ~10 s on one CPU thread.
SLOW = {"api/training.md"}

# Every block marked `<!-- snippet: skip (reason) -->`, in page order: (page, reason).
INSTALL = "creates a virtual environment and installs from the network; CI runs the README's identical command"
SKIPPED = [
    ("concepts/training.md", "hours of CPU training"),
    ("concepts/training.md", "needs several GPUs, and several machines for the last command"),
    ("development.md", "runs the test suite, which runs this page"),
    ("getting-started.md", INSTALL),
    ("getting-started.md", INSTALL),
    ("results.md", "two hours of CPU training; the table below is its output"),
    ("results.md", "about four hours of CPU training; the table below is its output"),
    ("tokenizers/deep_tokens.md", "92 minutes of CPU training; the tables below are its output"),
]

MARKER = re.compile(r"<!--\s*snippet:\s*(?:skip\s*\((?P<reason>.+)\)|(?P<slow>slow))\s*-->")
FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)")
PROGRAM_LANGS = {"python", "pycon", "bash", "sh", "shell"}


@dataclass
class Block:
    page: str  # relative to docs/
    line: int  # 1-based line of the first line of code
    lang: str
    code: str  # dedented
    skip: str | None  # reason, if marked
    slow: bool = False  # marked `<!-- snippet: slow -->`: runs only in the page's slow test

    @property
    def kind(self) -> str:
        if self.lang in ("bash", "sh", "shell"):
            return "bash"
        if self.lang == "pycon" or re.search(r"^>>> ", self.code, flags=re.M):
            return "doctest"
        return "python"


def _blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opened = FENCE_OPEN.match(lines[i])
        if not opened:
            i += 1
            continue
        indent, lang = opened.group("indent"), opened.group("lang")
        end = i + 1
        while not re.match(rf"^{re.escape(indent)}```\s*$", lines[end]):
            end += 1
        previous = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.fullmatch(previous)
        if lang in PROGRAM_LANGS:
            code = textwrap.dedent("\n".join(lines[i + 1 : end])) + "\n"
            page = path.relative_to(DOCS).as_posix()
            reason = marker.group("reason") if marker else None
            blocks.append(Block(page, i + 2, lang, code, reason, bool(marker and marker.group("slow"))))
        i = end + 1
    return blocks


def _commands(code: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            commands.append(line)
    return commands


def _pages() -> list[str]:
    return sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


def _run_blocks(page: str, *, slow: bool) -> list[Block]:
    """The blocks the page's test runs: unmarked ones, plus those marked slow in the slow run."""
    return [b for b in _blocks(DOCS / page) if b.skip is None and (slow or not b.slow)]


def _page_params() -> list:
    """(page, with the slow blocks): every page once without its slow blocks (marked slow if in SLOW), and
    pages with slow blocks once more in full, marked slow."""
    params = []
    for page in _pages():
        if page in EXCLUDED:
            continue
        quick, full = _run_blocks(page, slow=False), _run_blocks(page, slow=True)
        if quick:
            params.append(pytest.param(page, False, marks=[pytest.mark.slow] if page in SLOW else [], id=page))
        if len(full) > len(quick):
            params.append(pytest.param(page, True, marks=[pytest.mark.slow], id=f"{page}+slow-blocks"))
    return params


# Runs one page's blocks in order in one namespace. argv: the JSON list of blocks.
DRIVER = r"""
import doctest, json, os, subprocess, sys
blocks = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for block in blocks:
    where = f"{block['path']}:{block['line']}"
    print(f"--- {where} ({block['kind']})", flush=True)
    if block["kind"] == "python":
        # Padding maps traceback line numbers to the markdown file's.
        exec(compile("\n" * (block["line"] - 1) + block["code"], block["path"], "exec"), namespace)
    elif block["kind"] == "doctest":
        test = doctest.DocTestParser().get_doctest(block["code"], namespace, where, block["path"], block["line"] - 1)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        runner.run(test, clear_globs=False)
        namespace.update(test.globs)
        if runner.failures:
            sys.exit(f"{where}: {runner.failures} doctest example(s) failed")
    else:  # -x echoes each command before it runs
        done = subprocess.run(["bash", "-e", "-x", "-o", "pipefail", "-c", block["code"]])
        if done.returncode:
            sys.exit(f"{where}: the bash block exited with {done.returncode}")
"""


def _run_page(page: str, folder: Path, *, slow: bool = False, timeout: int = 600) -> subprocess.CompletedProcess:
    payload = [
        {"path": str(DOCS / b.page), "line": b.line, "kind": b.kind, "code": b.code}
        for b in _run_blocks(page, slow=slow)
    ]
    (folder / "blocks.json").write_text(json.dumps(payload))
    (folder / "driver.py").write_text(DRIVER)
    for name in ("examples", "benchmarks"):
        (folder / name).symlink_to(ROOT / name)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "MPLBACKEND": "Agg",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "driver.py", "blocks.json"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(("page", "slow"), _page_params())
def test_page_runs_as_written(page, slow, tmp_path):
    out = _run_page(page, tmp_path, slow=slow)
    assert out.returncode == 0, f"docs/{page} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"


def test_skipped_blocks_are_listed_with_their_reasons():
    found = [(b.page, b.skip) for p in _pages() if p not in EXCLUDED for b in _blocks(DOCS / p) if b.skip is not None]
    assert found == SKIPPED, "update SKIPPED (and keep it short: rewrite a snippet so that it runs)"
    assert len(SKIPPED) <= 8


def test_every_skip_marker_precedes_a_program_block():
    for page in _pages():
        markers = sum(bool(MARKER.fullmatch(line.strip())) for line in (DOCS / page).read_text().splitlines())
        marked = sum(b.skip is not None or b.slow for b in _blocks(DOCS / page))
        assert markers == marked, f"docs/{page}: a snippet marker that is not on the line before a code fence"


def test_getting_started_installs_as_the_readme():
    """The install commands the test skips are the README's quick start, which CI runs."""
    readme = (ROOT / "README.md").read_text().split("## Quick start", 1)[1]
    quick_start = _commands(re.search(r"```bash\n(.*?)```", readme, flags=re.S).group(1))
    installs = [c for b in _blocks(DOCS / "getting-started.md") if b.skip for c in _commands(b.code)]
    assert installs == quick_start


def test_excluded_pages_exist():
    for page in EXCLUDED:
        assert (DOCS / page).is_file(), page
