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


def test_reconstruct_command_writes_side_by_side_and_reports(tmp_path, capsys):
    from vidtok.io import read_video, save_video
    from vidtok.shapes import generate

    videos, _ = generate(1, resolution=32, num_frames=9, seed=5)
    src = save_video(videos[0], tmp_path / "clip.mp4", fps=8, lossless=True)
    out = tmp_path / "side.gif"
    assert main(["reconstruct", str(src), str(out), "--steps", "2", "--quiet"]) == 0
    report = capsys.readouterr().out
    assert "PSNR" in report and "tokens" in report
    frames = read_video(out)
    assert frames.shape[0] == 9 and frames.shape[2] == 2 * frames.shape[1]  # original | reconstruction


def test_reconstruct_command_missing_input_is_a_clear_error(tmp_path, capsys):
    assert main(["reconstruct", str(tmp_path / "nope.mp4"), str(tmp_path / "out.gif")]) == 2
    assert "nope.mp4" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    import torch

    from vidtok.pipelines.text_to_video import TextToVideo

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("t2v") / "pipe"
    TextToVideo.from_recipe(vidtok.RECIPES.create("dicode_tiny", tiny=True)).save_pretrained(path)
    return path


def test_generate_command_writes_a_gif(tiny_pipeline, tmp_path, capsys):
    from vidtok.io import read_video

    out = tmp_path / "red.gif"
    code = main(
        ["generate", "a red circle moves right", "-o", str(out), "--model", str(tiny_pipeline), "--keyframes", "3",
         "--steps", "2", "--seed", "1", "--quiet"]
    )  # fmt: skip
    assert code == 0 and out.exists()
    assert "wrote" in capsys.readouterr().out
    assert len(read_video(out)) == 9  # 3 keyframes, stride 4 in the tiny tokenizer


def test_generate_command_bad_prompt_and_model_are_clear_errors(tiny_pipeline, tmp_path, capsys):
    assert main(["generate", "  ", "-o", str(tmp_path / "x.gif"), "--model", str(tiny_pipeline), "--quiet"]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["generate", "a red circle", "-o", str(tmp_path / "x.gif"), "--model", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
