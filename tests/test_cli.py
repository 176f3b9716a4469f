import subprocess
import sys

import pytest

import vidtok
from vidtok.cli import main


def test_list_prints_every_kind(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind in ("tokenizers", "heads", "backbones", "recipes"):
        assert f"{kind} (" in out
    for name in vidtok.HEADS.list():
        assert name in out


def test_list_one_kind_with_pattern(capsys):
    assert main(["list", "heads", "zzz*"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("heads (0):")
    assert "none match 'zzz*'" in out


def test_unknown_kind_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as err:
        main(["list", "widgets"])
    assert err.value.code == 2
    assert "invalid choice: 'widgets'" in capsys.readouterr().err


def test_console_script_version_and_help():
    out = subprocess.run([sys.executable, "-m", "vidtok.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"vidtok {vidtok.__version__}"
    out = subprocess.run([sys.executable, "-m", "vidtok.cli"], capture_output=True, text=True, check=True)
    assert "list" in out.stdout
