"""Meta-tests: every registered entry is documented, has a tiny config and a docstring citing its source."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import vidtok
from vidtok.modeling_utils import Component

ROOT = Path(__file__).resolve().parents[1]
API_PAGES = {
    "TOKENIZERS": "docs/api/tokenizers.md",
    "HEADS": "docs/api/heads.md",
    "BACKBONES": "docs/api/backbones.md",
    "MODELS": "docs/api/models.md",
    "RECIPES": "docs/api/recipes.md",
}
CITATION = re.compile(r"§|Sec\.|Section|arXiv|Alg\.|Eq\.")


@pytest.mark.parametrize("registry_name", sorted(API_PAGES))
def test_registered_entries_are_documented_and_testable(registry_name):
    registry = getattr(vidtok, registry_name)
    page = ROOT / API_PAGES[registry_name]
    assert page.exists(), f"missing API page {page}"
    text = page.read_text()
    problems = []
    for name in registry.list():
        entry = registry.get(name)
        path = f"{entry.__module__}.{entry.__qualname__}"
        if f"::: {path}" not in text:
            problems.append(f"{name}: no '::: {path}' on {API_PAGES[registry_name]}")
        doc = entry.__doc__ or ""
        if not doc.strip():
            problems.append(f"{name}: no docstring")
        elif not CITATION.search(doc):
            problems.append(f"{name}: docstring cites no paper section (§, Sec., Eq., Alg., arXiv)")
        if isinstance(entry, type):
            tiny = getattr(entry, "tiny_config", None)
            if tiny is None or (issubclass(entry, Component) and tiny.__func__ is Component.tiny_config.__func__):
                problems.append(f"{name}: no tiny_config()")
        if entry.__module__.rsplit(".", 1)[-1] != name and registry_name != "RECIPES":
            problems.append(f"{name}: defined in {entry.__module__}, expected a file named after it ({name}.py)")
    assert not problems, "\n".join(problems)


def test_every_api_page_directive_resolves():
    """Each '::: dotted.path' on an API page names an importable object (mkdocs would fail later otherwise)."""
    import importlib

    missing = []
    for page in sorted((ROOT / "docs" / "api").glob("*.md")):
        for path in re.findall(r"^::: ([\w.]+)", page.read_text(), flags=re.M):
            module, _, attr = path.rpartition(".")
            try:
                obj = importlib.import_module(path)
            except ImportError:
                try:
                    obj = getattr(importlib.import_module(module), attr)
                except (ImportError, AttributeError):
                    obj = None
            if obj is None:
                missing.append(f"{page.name}: {path}")
    assert not missing, missing


def test_public_names_appear_in_the_docs():
    docs = "\n".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))
    undocumented = [n for n in vidtok.__all__ if n != "__version__" and n not in docs]
    assert not undocumented, f"public names never mentioned in docs/: {undocumented}"
