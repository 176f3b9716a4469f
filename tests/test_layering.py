"""Import discipline: no private names across modules, lower layers import nothing above them, no package cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "vidtok"

# Imports still to be switched in files owned by other work (remove entries as they are fixed).
PENDING: set[tuple[str, str, str]] = set()

#: Modules of the bottom layer (ARCHITECTURE §1): they import nothing from other vidtok packages.
LOWER = ("registry", "outputs", "noise", "validation", "assets", "io", "_lazy")
#: The order of the upper layers, bottom to top: a package may import only packages at its level or below.
LAYERS = [
    {"modeling_utils"},
    {"shapes"},
    {"tokenizers", "heads", "backbones", "data", "metrics"},
    {"models"},
    {"recipes"},
    {"pipelines"},
    {"training", "diagnostics", "convert", "evaluation"},
    {"cli"},
]


def _vidtok_imports():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vidtok":
                yield rel, node.module, [a.name for a in node.names]


def test_no_private_names_are_imported_from_other_modules():
    found = {
        (rel, module, name)
        for rel, module, names in _vidtok_imports()
        for name in names
        if name.startswith("_") and name != "__version__"
    }
    assert found <= PENDING, sorted(found - PENDING)


def test_io_is_a_lower_layer():
    bad = [
        (rel, m) for rel, m, _ in _vidtok_imports() if rel.startswith("vidtok/io/") and not m.startswith("vidtok.io")
    ]
    assert not bad, bad


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _edges():
    for rel, module, _ in _vidtok_imports():
        src, dst = _package(rel.removesuffix(".py").replace("/", ".")), _package(module)
        if src not in ("__init__", dst) and dst != "__init__":
            yield src, dst


def test_lower_layers_import_nothing_above_them():
    bad = sorted({(src, dst) for src, dst in _edges() if src in LOWER and dst not in LOWER})
    assert not bad, bad


def test_packages_import_only_downwards():
    level = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}
    level.update({pkg: -1 for pkg in LOWER})
    upward = sorted({(s, d) for s, d in _edges() if level.get(d, 99) > level.get(s, 99)})
    assert not upward, f"imports into a higher layer: {upward}"
    edges = set(_edges())
    cycles = sorted({tuple(sorted((a, b))) for a, b in edges if (b, a) in edges})
    assert not cycles, f"package import cycles: {cycles}"


def test_import_vidtok_stays_torch_free():
    code = "import sys, vidtok, vidtok.io, vidtok.shapes; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
