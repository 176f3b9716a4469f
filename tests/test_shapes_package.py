"""The vidtok.shapes package: layout, lazy exports, the derived vocabulary, and the old import paths."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import vidtok.shapes as shapes

# The literal list shipped models' "shapes_words" tokenizers were built from (token id = position + 3).
# It must never change order: vocabulary() is derived from the grammar and is checked against it.
SHIPPED_SHAPES_WORDS = (
    "a",
    "and",
    "small",
    "large",
    "red",
    "green",
    "blue",
    "yellow",
    "magenta",
    "cyan",
    "white",
    "circle",
    "square",
    "triangle",
    "shape",
    "moves",
    "left",
    "right",
    "up",
    "down",
    "stays",
    "still",
    "bounces",
)


def test_vocabulary_equals_the_shipped_word_list():
    from vidtok.models.text_tokenizers import SHAPES_WORDS

    assert shapes.vocabulary() == SHIPPED_SHAPES_WORDS
    assert shapes.SHAPES_WORDS == SHIPPED_SHAPES_WORDS
    assert SHAPES_WORDS is shapes.SHAPES_WORDS


def test_every_caption_word_is_in_the_vocabulary():
    _, captions = shapes.generate(50, resolution=16, num_frames=40, num_objects=(1, 2, 3), split="all")
    words = set(shapes.vocabulary())
    assert {w for c in captions for w in c.split()} <= words


def test_lazy_exports_match_module_all():
    for name, module in shapes._LAZY.items():
        mod = importlib.import_module(module)
        assert name in mod.__all__, f"{name} not in {module}.__all__"
        assert getattr(shapes, name) is getattr(mod, name)
    defined = {n for m in set(shapes._LAZY.values()) for n in importlib.import_module(m).__all__}
    assert defined == set(shapes.__all__)


def test_importing_the_grammar_is_light():
    code = (
        "import sys, vidtok.shapes; vidtok.shapes.parse_caption('a red circle'); "
        "assert 'numpy' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("old", "new"),
    [("vidtok.data.shapes", "vidtok.shapes"), ("vidtok.metrics.shapes", "vidtok.shapes")],
)
def test_old_modules_re_export_the_same_objects(old, new):
    old_mod, new_mod = importlib.import_module(old), importlib.import_module(new)
    for name in old_mod.__all__:
        assert getattr(old_mod, name) is getattr(new_mod, name), name


@pytest.mark.parametrize("name", ["vidtok.shapes", "grammar", "render", "dataset", "scorer"])
def test_docstring_examples_run(name):
    import doctest

    module = importlib.import_module(name if "." in name else f"vidtok.shapes.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
