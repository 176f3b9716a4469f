"""``vidtok train`` / ``vidtok plot-log`` end to end, a real SIGKILL + resume, and 2-process training (CPU, gloo)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from vidtok.cli import main
from vidtok.training import TinyVideoAutoencoder, read_metrics, train_from_config
from vidtok.training import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[1]

RUN = {
    "model": {
        "target": "vidtok.training:TinyVideoAutoencoder",
        "kwargs": {"hidden_channels": 16, "latent_channels": 4},
    },
    "data": {
        "train": {"name": "shapes", "kwargs": {"resolution": 16, "num_frames": 4, "length": 256, "num_objects": 1}}
    },
    "trainer": {
        "max_steps": 8,
        "batch_size": 4,
        "log_every": 1,
        "save_every": 4,
        "progress_bar": False,
        "optimizer": {"lr": 3e-3, "warmup_steps": 2},
    },
}


def write_config(tmp_path, run=RUN, name="run.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(run))
    return path


def subprocess_env(tmp_path):
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf_home"),  # no user accelerate default_config.yaml can interfere
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
    )
    # Same thread count as this process: CPU kernels sum in a thread-dependent order, so bit-exact
    # comparisons with in-process runs need it.
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    return env


def test_train_command_end_to_end(tmp_path, capsys):
    cfg = write_config(tmp_path)
    out_dir = tmp_path / "run"
    code = main(
        [
            "train",
            str(cfg),
            "--set",
            "trainer.max_steps=4",
            "model.kwargs.hidden_channels=8",
            "--output-dir",
            str(out_dir),
        ]
    )
    assert code == 0
    assert "trained 4 steps" in capsys.readouterr().out
    resolved = json.loads((out_dir / "run_config.json").read_text())
    assert resolved["trainer"]["max_steps"] == 4 and resolved["model"]["kwargs"]["hidden_channels"] == 8
    assert TinyVideoAutoencoder.from_pretrained(out_dir / "model").config["hidden_channels"] == 8
    assert [p.name for p in ckpt.list_checkpoints(out_dir)] == ["step-00000004"]
    assert len(read_metrics(out_dir)) == 4

    import matplotlib  # noqa: F401  (the test extra installs vidtok[train])

    assert main(["plot-log", str(out_dir), "-o", str(tmp_path / "curve.png"), "--smooth", "2"]) == 0
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["plot-log", str(out_dir / "metrics.jsonl")]) == 0
    assert (out_dir / "metrics.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "trainer.max_stepz=3"], "trainer.max_stepz: unknown field (did you mean 'max_steps'?)"),
        (["--set", "trainer.batch_size=four"], "trainer.batch_size: expected an integer"),
        (["--set", "model.target=vidtok.training:NoSuchModel"], "model.target: module 'vidtok.training' has no"),
        (["--set", "model.kwargs.hidden=3"], "model.kwargs: got an unexpected keyword argument 'hidden'"),
        (["--set", "data.train.name=shapez"], "data.train.name: unknown dataset 'shapez' (did you mean 'shapes'?)"),
        (["--set", "trainr.max_steps=3"], "trainr: unknown section (did you mean 'trainer'?)"),
        (["--set", "model.name=gmn", "model.target=null"], "model.name: no registered component 'gmn'"),
        (
            ["--set", "model.name=l2", "model.target=null", "model.kwargs={hidden_size: 8, token_dim: 4}"],
            "model: L2Head does not implement training_step",
        ),
        (["--resume", "/no/such/checkpoint"], "resume_from: no such checkpoint folder"),
    ],
)
def test_train_command_reports_bad_configs(tmp_path, capsys, args, message):
    cfg = write_config(tmp_path)
    assert main(["train", str(cfg), "--output-dir", str(tmp_path / "run"), *args]) == 2
    assert message in capsys.readouterr().err


def test_train_one_stage_of_a_recipe_from_earlier_weights(tmp_path, capsys):
    run = {
        **RUN,
        "trainer": {
            **RUN["trainer"],
            "max_steps": None,
            "stages": [{"name": "first", "steps": 2}, {"name": "second", "steps": 3, "options": {"loss": "l1"}}],
        },
    }
    cfg = write_config(tmp_path, run)
    assert main(["train", str(cfg), "--stage", "first", "--output-dir", str(tmp_path / "a")]) == 0
    args = ["--stage", "second", "--set", f"model.pretrained={tmp_path / 'a' / 'model'}", "--output-dir"]
    assert main(["train", str(cfg), *args, str(tmp_path / "b")]) == 0
    assert "trained 3 steps" in capsys.readouterr().out
    assert {r["stage"] for r in read_metrics(tmp_path / "b")} == {"second"}
    assert main(["train", str(cfg), "--stage", "third"]) == 2
    assert "trainer.stages: no stage named ['third']; the stages are ['first', 'second']" in capsys.readouterr().err


def test_plot_log_without_matplotlib_is_a_clear_error(tmp_path, capsys, monkeypatch):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["plot-log", str(tmp_path)]) == 2
    assert "needs matplotlib: pip install matplotlib" in capsys.readouterr().err


def test_sigkill_during_training_then_resume_is_bit_exact(tmp_path):
    """A process killed with SIGKILL after its step-4 checkpoint resumes to the same weights as a straight run."""
    cfg = write_config(tmp_path)
    killed_dir = tmp_path / "killed"
    script = textwrap.dedent(
        f"""
        import os, signal
        from vidtok.training import Callback, train_from_config

        class Kill(Callback):
            def on_step_end(self, trainer, step):
                if step == 6:
                    os.kill(os.getpid(), signal.SIGKILL)

        train_from_config({str(cfg)!r}, ["trainer.output_dir={killed_dir}"], callbacks=[Kill()])
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], env=subprocess_env(tmp_path), capture_output=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert ckpt.latest_checkpoint(killed_dir).name == "step-00000004"
    assert len(read_metrics(killed_dir)) == 6  # steps 5 and 6 were logged before the kill

    assert main(["train", str(cfg), "--output-dir", str(killed_dir), "--resume"]) == 0
    straight = train_from_config(cfg, [f"trainer.output_dir={tmp_path / 'straight'}"])
    a = TinyVideoAutoencoder.from_pretrained(straight.model_dir).state_dict()
    b = TinyVideoAutoencoder.from_pretrained(killed_dir / "model").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in read_metrics(killed_dir)] == [r["loss"] for r in read_metrics(tmp_path / "straight")]


def test_two_processes_match_one_process_with_the_doubled_batch(tmp_path):
    """``accelerate launch`` with 2 CPU processes (gloo, batch 4 each) == 1 process with batch 8."""
    cfg = write_config(tmp_path)
    two = tmp_path / "two"
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--num_cpu_threads_per_process",
        "1",
        "--main_process_port",
        "0",
        "-m",
        "vidtok.cli",
        "train",
        str(cfg),
        "--output-dir",
        str(two),
    ]
    env = {**subprocess_env(tmp_path), "ACCELERATE_USE_CPU": "true"}
    proc = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = ckpt.read_trainer_state(ckpt.latest_checkpoint(two))
    assert state["num_processes"] == 2 and state["distributed_type"] == "MULTI_CPU"
    assert proc.stdout.count("trained 8 steps") == 1  # only the main process reports

    one = train_from_config(cfg, [f"trainer.output_dir={tmp_path / 'one'}", "trainer.batch_size=8"])
    curve_one = [r["loss"] for r in read_metrics(one.model_dir.parent)]
    curve_two = [r["loss"] for r in read_metrics(two)]
    assert len(curve_two) == 8
    assert curve_two == pytest.approx(curve_one, rel=1e-5, abs=1e-6)
    a = TinyVideoAutoencoder.from_pretrained(one.model_dir).state_dict()
    b = TinyVideoAutoencoder.from_pretrained(two / "model").state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
