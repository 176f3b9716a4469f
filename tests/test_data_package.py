"""The vidtok.data package: lazy exports and runnable docstring examples."""

from __future__ import annotations

import doctest
import importlib
import json
import subprocess
import sys

import pytest

import vidtok.data

MODULES = ["images", "mixing", "motion", "shapes", "shards", "token_cache", "transforms", "video"]


def test_exports_match_each_module():
    assert sorted(vidtok.data.__all__) == sorted(vidtok.data._LAZY)
    for name in MODULES:
        module = importlib.import_module(f"vidtok.data.{name}")
        exported = {k for k, v in vidtok.data._LAZY.items() if v == module.__name__}
        assert exported == set(module.__all__), name
    for name, module in vidtok.data._LAZY.items():
        assert getattr(vidtok.data, name) is getattr(importlib.import_module(module), name)
    assert vidtok.data.video is importlib.import_module("vidtok.data.video")
    with pytest.raises(AttributeError, match="NotAThing"):
        vidtok.data.NotAThing  # noqa: B018


def test_importing_the_package_and_shapes_stays_light():
    code = (
        "import sys, json, vidtok, vidtok.data; from vidtok.data import ShapesDataset, sample_clip; "
        "print(json.dumps([m for m in ('torch', 'cv2', 'safetensors') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("name", ["images", "mixing", "motion", "shards", "transforms", "video"])
def test_docstring_examples_run(name):
    module = importlib.import_module(f"vidtok.data.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
