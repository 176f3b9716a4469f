"""The command line: every user error is one line naming the flag or file, exit code 2, no traceback.

``--debug`` shows the traceback instead; ``vidtok list`` answers without importing torch.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import vidtok
from vidtok.cli import main, static_index


@pytest.mark.parametrize("kind", ["tokenizers", "heads", "backbones", "models", "recipes"])
def test_list_reads_exactly_what_the_registries_hold(kind):
    registry = vidtok.REGISTRIES[kind]
    static = static_index(kind)
    assert [name for name, _, _ in static] == registry.list()
    for name, summary, aliases in static:
        entry = registry.get(name)
        assert summary == (entry.__doc__ or "").strip().splitlines()[0]
        assert aliases == sorted(registry.aliases(name))


def test_list_does_not_import_torch():
    code = "import sys; from vidtok.cli import main; main(['list']); assert 'torch' not in sys.modules, 'torch'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "dicode_lm" in out.stdout and "hf_causal_lm" in out.stdout


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["generate", "a red circle", "-o", "/dev/null/x.gif"], "-o/--output /dev/null/x.gif: the folder"),
        (["generate", "a red circle", "-o", "{tmp}/out.png"], "extension must be one of .gif, .mp4"),
        (["generate", "a red circle", "-o", "{tmp}"], "is a folder"),
        (["generate", "a red circle", "-o", "{tmp}/o.gif", "--device", "banana"], "--device 'banana' is not a device"),
        (["generate", "a red circle", "-o", "{tmp}/o.gif", "--model", "{tmp}/missing"], "no pipeline folder"),
        (["generate", "a red circle", "-o", "{tmp}/o.gif", "--model", "org/not-cached"], "--model org/not-cached"),
        (["reconstruct", "{tmp}/missing.mp4", "{tmp}/out.gif"], "missing.mp4"),
        (["reconstruct", "{tmp}/missing.mp4", "{tmp}/out.txt"], "extension"),
    ],
)
def test_user_errors_are_one_line_naming_the_culprit(argv, match, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert match in err, err


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["generate", "x", "-o", "o.gif", "--seconds", "inf"], "--seconds/--duration"),
        (["generate", "x", "-o", "o.gif", "--duration", "-1"], "--seconds/--duration"),
        (["generate", "x", "-o", "o.gif", "--keyframes", "0"], "--keyframes"),
        (["generate", "x", "-o", "o.gif", "--steps", "0"], "--steps"),
        (["generate", "x", "-o", "o.gif", "--guidance", "nan"], "--guidance"),
        (["generate", "x", "-o", "o.gif", "--temperature", "-1"], "--temperature"),
        (["reconstruct", "a.mp4", "b.gif", "--keyframes", "0"], "--keyframes"),
        (["reconstruct", "a.mp4", "b.gif", "--stride", "2.5"], "--stride"),
        (["reconstruct", "a.mp4", "b.gif", "--start", "-3"], "--start"),
    ],
)
def test_bad_flag_values_are_usage_errors_naming_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="extension"):
        main(["--debug", "generate", "x", "-o", str(tmp_path / "o.png")])


def test_duration_is_accepted_as_in_python(tmp_path, capsys):
    # Same name as the pipeline's duration= argument; the plan is printed before generating.
    assert main(["generate", "a large red circle moves right", "-o", str(tmp_path / "a.gif"), "--duration", "1"]) == 0
    out = capsys.readouterr().out
    assert "generating 2 keyframes (9 frames" in out and (tmp_path / "a.gif").is_file()


def test_train_refuses_code_in_a_config_unless_allowed(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VIDTOK_ALLOW_CODE", raising=False)
    config = tmp_path / "run.yaml"
    config.write_text("model: {target: 'subprocess:run', kwargs: {args: ['true']}}\ntrainer: {max_steps: 1}\n")
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "subprocess:run" in err and "Traceback" not in err, err
    from vidtok.cli import build_parser

    args = build_parser().parse_args(["train", str(config), "--allow-code", "--resume-fallback"])
    assert args.allow_code and args.resume_fallback
