"""EvaluationCallback: periodic evaluation, export of the best model by a named score, resume, time budget."""

from __future__ import annotations

import json
import math

import pytest
import torch
from accelerate.utils import set_seed

from vidtok.shapes import ShapesDataset
from vidtok.training import Callback, TinyVideoAutoencoder, Trainer, TrainingConfig
from vidtok.training import checkpoint as ckpt
from vidtok.training.callbacks import EXPORT_RECORD, EvaluationCallback, StopTraining, read_evaluations


class Crash(Callback):
    """Stands in for a crash after the evaluation of ``step`` (the last checkpoint is older)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer, step):
        if step == self.step:
            raise RuntimeError("crash")


def scripted(scores):
    """An evaluator returning the given scores in turn (and the model's weight sum, to check exports)."""
    scores = list(scores)

    def evaluate(model):
        return {"score": scores.pop(0), "weights": float(sum(p.detach().double().sum() for p in model.parameters()))}

    return evaluate


def trainer(out, callbacks, resume=None, max_steps=8):
    set_seed(0)
    model = TinyVideoAutoencoder(**TinyVideoAutoencoder.tiny_config())
    data = ShapesDataset("train", resolution=16, num_frames=2, length=32)
    cfg = TrainingConfig(
        output_dir=str(out), max_steps=max_steps, batch_size=4, save_every=4, keep_last=None,
        progress_bar=False, resume_from=resume,
    )  # fmt: skip
    return Trainer(model, cfg, data, callbacks=callbacks)


def weights(folder):
    model = TinyVideoAutoencoder.from_pretrained(folder)
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_exports_the_best_by_score_and_logs_every_evaluation(tmp_path):
    export = tmp_path / "best"
    cb = EvaluationCallback(scripted([0.5, 0.9, 0.3, 0.7]), every=2, select="score", export_dir=export, verbose=False)
    trainer(tmp_path / "run", [cb]).train()
    log = read_evaluations(tmp_path / "run")
    assert [r["step"] for r in log] == [2, 4, 6, 8] and [r["score"] for r in log] == [0.5, 0.9, 0.3, 0.7]
    assert all(r["train_minutes"] >= 0 and r["eval_seconds"] >= 0 for r in log)
    assert (cb.best, cb.best_step) == (0.9, 4)
    # The export is the step-4 model (the checkpoint of that step), not the last one.
    assert same(weights(export), weights(tmp_path / "run" / "checkpoints" / "step-00000004" / "model"))
    assert not same(weights(export), weights(tmp_path / "run" / "model"))
    assert json.loads((export / EXPORT_RECORD).read_text())["step"] == 4


def test_mode_min_and_a_callable_select(tmp_path):
    cb = EvaluationCallback(
        scripted([3.0, 1.0, 2.0, 4.0]), every=2, select=lambda r: r["score"], mode="min",
        export_dir=tmp_path / "best", verbose=False,
    )  # fmt: skip
    trainer(tmp_path / "run", [cb]).train()
    assert (cb.best, cb.best_step) == (1.0, 4)


def test_a_resumed_run_drops_evaluations_after_its_checkpoint_and_beats_the_kept_best(tmp_path):
    run, export = tmp_path / "run", tmp_path / "best"
    first = EvaluationCallback(scripted([0.5, 0.9, 0.95]), every=2, select="score", export_dir=export, verbose=False)
    with pytest.raises(RuntimeError, match="crash"):
        trainer(run, [first, Crash(6)]).train()
    assert ckpt.latest_checkpoint(run).name == "step-00000004"
    assert [r["step"] for r in read_evaluations(run)] == [2, 4, 6]  # step 6: logged, then the crash

    second = EvaluationCallback(scripted([0.6, 0.92]), every=2, select="score", export_dir=export, verbose=False)
    trainer(run, [second], resume="latest").train()
    log = read_evaluations(run)
    assert [r["step"] for r in log] == [2, 4, 6, 8]
    assert [r["score"] for r in log] == [0.5, 0.9, 0.6, 0.92]  # the discarded run's 0.95 is gone
    assert (second.best, second.best_step) == (0.92, 8)
    assert same(weights(export), weights(run / "model"))


def test_an_export_of_the_discarded_run_is_replaced_by_the_kept_best(tmp_path):
    """The crashed run exported its step-6 model (0.95); resumed at step 4, whose 0.9 is the kept best, the
    export becomes the step-4 model again and stays it when nothing later beats 0.9."""
    run, export = tmp_path / "run", tmp_path / "best"
    first = EvaluationCallback(scripted([0.5, 0.9, 0.95]), every=2, select="score", export_dir=export, verbose=False)
    with pytest.raises(RuntimeError, match="crash"):
        trainer(run, [first, Crash(6)]).train()
    assert json.loads((export / EXPORT_RECORD).read_text())["step"] == 6
    second = EvaluationCallback(scripted([0.6, 0.7]), every=2, select="score", export_dir=export, verbose=False)
    trainer(run, [second], resume="latest").train()
    assert (second.best, second.best_step) == (0.9, 4)
    assert json.loads((export / EXPORT_RECORD).read_text())["step"] == 4
    assert same(weights(export), weights(run / "checkpoints" / "step-00000004" / "model"))


def test_time_budget_stops_with_a_checkpoint_and_resume_finishes(tmp_path, capsys):
    run = tmp_path / "run"
    cb = EvaluationCallback(scripted([0.1, 0.2]), every=100, minutes=0.0, verbose=True)
    with pytest.raises(StopTraining, match=r"time budget of 0.0 minutes reached at step 1"):
        trainer(run, [cb]).train()
    assert ckpt.latest_checkpoint(run).name == "step-00000001"
    assert [r["step"] for r in read_evaluations(run)] == [1]
    assert '"step": 1' in capsys.readouterr().out  # each evaluation is printed as a JSON line
    done = EvaluationCallback(scripted([0.3]), every=100, verbose=False)
    assert trainer(run, [done], resume="latest").train().global_step == 8
    assert [r["step"] for r in read_evaluations(run)] == [1, 8]  # the end is always evaluated


def test_a_select_that_names_no_score_fails_at_the_first_evaluation(tmp_path):
    """A misspelt score would never beat anything and nothing would be exported: it is an error, not a no-op."""
    cb = EvaluationCallback(scripted([0.5, 0.9]), every=2, select="scor", export_dir=tmp_path / "best", verbose=False)
    with pytest.raises(KeyError, match=r"select='scor' is not a score.*: .*score, .*weights"):
        trainer(tmp_path / "run", [cb], max_steps=4).train()
    assert not (tmp_path / "best").exists()
    assert math.isnan(EvaluationCallback(lambda m: {}).value({"score": 1.0}))  # no select: nothing is compared
    assert math.isnan(cb.value({"scor": None, "step": 2}))  # present but not a number: never the best


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="select needs export_dir"):
        EvaluationCallback(lambda m: {}, select="score")
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
        EvaluationCallback(lambda m: {}, mode="best")


@pytest.mark.parametrize(
    "name",
    [
        "vidtok.training.callbacks",
        "vidtok.training.recipe",
        "vidtok.metrics.shapes_evaluation",
        "vidtok.data.shapes_training",
    ],
)
def test_docstring_examples_run(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
