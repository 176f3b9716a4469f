import json
import subprocess
import sys

import pytest

import vidtok


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_vidtok_does_not_import_heavy_libraries():
    result = _run(
        "import sys, json, vidtok; "
        "print(json.dumps({m: m in sys.modules for m in ('torch', 'diffusers', 'transformers', 'numpy', 'av')}))"
    )
    assert result == {"torch": False, "diffusers": False, "transformers": False, "numpy": False, "av": False}


@pytest.mark.parametrize(
    ("statement", "must_not_import"),
    [
        ("from vidtok import Registry", ["torch", "diffusers"]),
        ("from vidtok import RegistryError", ["torch", "diffusers"]),
        ("from vidtok import read_video, save_video", ["torch", "diffusers"]),
        ("from vidtok import HEADS", ["vidtok.tokenizers", "vidtok.backbones", "vidtok.recipes"]),
        ("from vidtok import TOKENIZERS", ["vidtok.heads", "vidtok.backbones"]),
        ("import vidtok.cli", ["torch"]),
    ],
)
def test_from_vidtok_imports_only_what_is_needed(statement, must_not_import):
    result = _run(
        f"import sys, json; {statement}; print(json.dumps([m for m in {must_not_import!r} if m in sys.modules]))"
    )
    assert result == []


def test_lazy_table_and_all_agree():
    assert set(vidtok._LAZY) | {"__version__"} == set(vidtok.__all__)
    assert len(vidtok.__all__) == len(set(vidtok.__all__))


@pytest.mark.parametrize("name", sorted(vidtok._LAZY))
def test_every_lazy_name_resolves_to_its_module(name):
    obj = getattr(vidtok, name)
    module = vidtok._LAZY[name]
    assert getattr(sys.modules[module], name) is obj


def test_submodules_are_attributes_and_unknown_names_fail():
    assert vidtok.registry.Registry is vidtok.Registry
    assert "io" in dir(vidtok)
    with pytest.raises(AttributeError, match="no attribute 'NotAThing'"):
        vidtok.NotAThing  # noqa: B018


def test_version_matches_package_metadata():
    from importlib.metadata import version

    assert version("vidtok") == vidtok.__version__
