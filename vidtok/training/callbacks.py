"""Trainer callbacks: periodic held-out evaluation, best-checkpoint export, a time budget.

[`EvaluationCallback`][vidtok.training.callbacks.EvaluationCallback] runs any evaluator every ``every`` steps
(and at the last step), appends each result to ``<output_dir>/eval.jsonl``, and exports the model whenever a
named held-out score is the best so far — so an interrupted run is usable and the export is the best point
of the curve, not the last one (the lesson of the Shapes runs: keep the best checkpoint by a held-out score
and report the curve). With ``minutes`` it stops a run after an evaluation past the budget, with a checkpoint
that ``resume_from="latest"`` continues from: a run longer than a session is spread over several.

A resumed run continues from its checkpoint, so evaluations logged after that checkpoint (or all of them,
when the run restarts from scratch) belong to a discarded run: they are dropped from the log before the best
is taken. Every export records its step and scores in ``<export_dir>/evaluation.json``; an export of a
discarded run is replaced by the model the run resumes with when that is the best kept evaluation, and
otherwise by the next evaluation.

Example:
    >>> import tempfile
    >>> from accelerate.utils import set_seed
    >>> from vidtok.shapes import ShapesDataset
    >>> from vidtok.training import Trainer, TrainingConfig, TinyVideoAutoencoder
    >>> from vidtok.training.callbacks import EvaluationCallback
    >>> set_seed(0)
    >>> model = TinyVideoAutoencoder(**TinyVideoAutoencoder.tiny_config())
    >>> data = ShapesDataset("train", resolution=16, num_frames=2, length=16)
    >>> run = tempfile.mkdtemp()
    >>> cfg = TrainingConfig(output_dir=run, max_steps=4, batch_size=4, progress_bar=False)
    >>> score = lambda m: {"score": -float(sum(p.detach().abs().sum() for p in m.parameters()))}
    >>> callback = EvaluationCallback(score, every=2, select="score", export_dir=f"{run}/best", verbose=False)
    >>> _ = Trainer(model, cfg, data, callbacks=[callback]).train()
    >>> [r["step"] for r in callback.records], callback.best_step in (2, 4)
    ([2, 4], True)
    >>> type(TinyVideoAutoencoder.from_pretrained(f"{run}/best")).__name__
    'TinyVideoAutoencoder'
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vidtok.training.trainer import Callback, Trainer

__all__ = ["EVAL_LOG", "EXPORT_RECORD", "EvaluationCallback", "StopTraining", "atomic_export", "read_evaluations"]

EVAL_LOG = "eval.jsonl"
"""File name of the evaluation log inside the run folder."""

EXPORT_RECORD = "evaluation.json"
"""File inside an export folder with the evaluation record (step, scores, selected value) of the export."""


class StopTraining(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """Raised by a callback to end training early (after saving a checkpoint); catch it around ``train()``."""


def read_evaluations(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of an evaluation log (a run folder or its ``eval.jsonl``); ``[]`` when there is none."""
    path = Path(path)
    if path.is_dir():
        path = path / EVAL_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def atomic_export(export: Callable[[Any, Path], None], model: Any, path: Path) -> None:
    """Run ``export(model, tmp)`` and replace ``path`` with ``tmp``, so ``path`` is always a complete export."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    aside = path.with_name(f".{path.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    export(model, tmp)
    if path.exists():
        os.replace(path, aside)
    os.replace(tmp, path)
    shutil.rmtree(aside, ignore_errors=True)


class EvaluationCallback(Callback):
    """Evaluate every ``every`` steps, log to ``eval.jsonl``, export the best model by a held-out score.

    Each evaluation runs on the main process with the model in eval mode (its mode is restored after) and
    appends ``{"step", "train_minutes", "eval_seconds", **scores}`` to the log (``train_minutes``: training
    time so far, runs before a resume included). If ``select`` names a score and the evaluation beats the best
    so far, ``export(model, folder)`` writes the model to ``export_dir`` (atomically: the folder is always a
    complete export).

    Args:
        evaluate: ``f(model) -> dict`` of scores (JSON values) for the model being trained (the unwrapped
            ``trainer.model``).
        every: Evaluate after every ``every`` optimizer steps (0: only at the end).
        at_end: Also evaluate after the last step.
        select: The score to keep the best of (a key of ``evaluate``'s dict), or ``f(record) -> float``;
            ``None``: no export during training.
        mode: ``"max"`` (higher is better) or ``"min"``.
        export: ``f(model, folder)`` writing the model to a folder (e.g. ``model.save_pretrained``); default:
            ``model.save_pretrained(folder)``.
        export_dir: Where the best model is exported (needed with ``select``).
        log_file: The log (default: ``<output_dir>/eval.jsonl``).
        minutes: Time budget: after the first step past ``minutes`` of training (this run's), evaluate, save a
            checkpoint and raise [`StopTraining`][vidtok.training.callbacks.StopTraining]; ``None``: no budget.
        verbose: Print each record (rounded) as one JSON line.

    Attributes:
        records: This run's evaluations (and the kept ones of the runs it resumes).
        best: The best selected value so far (``None`` before any).
        best_step: The step of the best evaluation.
        last: The newest record (``None`` before any).
    """

    def __init__(
        self,
        evaluate: Callable[[Any], Mapping[str, Any]],
        *,
        every: int = 0,
        at_end: bool = True,
        select: str | Callable[[Mapping[str, Any]], float] | None = None,
        mode: str = "max",
        export: Callable[[Any, Path], None] | None = None,
        export_dir: str | os.PathLike[str] | None = None,
        log_file: str | os.PathLike[str] | None = None,
        minutes: float | None = None,
        verbose: bool = True,
    ) -> None:
        if every < 0:
            raise ValueError(f"every must be >= 0, got {every}")
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if select is not None and export_dir is None:
            raise ValueError("select needs export_dir: the folder the best model is exported to")
        if minutes is not None and minutes < 0:
            raise ValueError(f"minutes must be >= 0, got {minutes}")
        self.evaluate = evaluate
        self.every = int(every)
        self.at_end = at_end
        self.select = select
        self.mode = mode
        self.export = export or (lambda model, folder: model.save_pretrained(folder))
        self.export_dir = None if export_dir is None else Path(export_dir)
        self.log_file = None if log_file is None else Path(log_file)
        self.minutes = minutes
        self.verbose = verbose
        self.records: list[dict[str, Any]] = []
        self.best: float | None = None
        self.best_step: int | None = None
        self.last: dict[str, Any] | None = None
        self._start = time.time()

    # ------------------------------------------------------------------ selection
    def value(self, record: Mapping[str, Any]) -> float:
        """The selected score of a record (NaN when it is not a number).

        Raises:
            KeyError: If ``select`` names no key of the record.
        """
        if self.select is None:
            return math.nan
        if callable(self.select):
            return float(self.select(record))
        if self.select not in record:
            # A misspelt score would otherwise never beat anything, and nothing would ever be exported.
            scores = ", ".join(sorted(k for k, v in record.items() if isinstance(v, (int, float))))
            raise KeyError(f"select={self.select!r} is not a score of the evaluation; it returned: {scores}")
        value = record.get(self.select)
        return float(value) if isinstance(value, (int, float)) else math.nan

    def _better(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def _log_path(self, trainer: Trainer) -> Path:
        return self.log_file or Path(trainer.config.output_dir) / EVAL_LOG

    # ------------------------------------------------------------------ hooks
    def on_train_start(self, trainer: Trainer) -> None:
        """Drop evaluations logged after the checkpoint the run starts from; the best of the rest is the bar."""
        self._start = time.time()
        self.records, self.best, self.best_step = [], None, None
        path = self._log_path(trainer)
        kept = [r for r in read_evaluations(path) if r.get("step", math.inf) <= trainer.global_step]
        if trainer.accelerator.is_main_process and path.exists():
            path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        for record in kept:
            self.records.append(record)
            if self._better(self.value(record)):
                self.best, self.best_step = self.value(record), record["step"]
        self.last = kept[-1] if kept else None
        exported = self._export_record()
        if exported is not None and exported.get("step", -1) > trainer.global_step:
            # The export holds a model of the discarded run. The model resumed from is the best kept one when
            # it was evaluated at the checkpoint's step: export it again; otherwise let the next evaluation
            # replace the stale export.
            best = next((r for r in kept if r["step"] == self.best_step), None)
            if best is not None and self.best_step == trainer.global_step:
                if trainer.accelerator.is_main_process:
                    self._export(trainer.model, best, self.best)
            else:
                self.best, self.best_step = None, None

    def _export_record(self) -> dict[str, Any] | None:
        if self.export_dir is None or not (self.export_dir / EXPORT_RECORD).exists():
            return None
        return json.loads((self.export_dir / EXPORT_RECORD).read_text())

    def _export(self, model: Any, record: Mapping[str, Any], value: float) -> None:
        assert self.export_dir is not None

        def write(m: Any, folder: Path) -> None:
            self.export(m, folder)
            marker = {"step": record["step"], "select": None if callable(self.select) else self.select}
            (Path(folder) / EXPORT_RECORD).write_text(json.dumps({**marker, "value": value, "record": dict(record)}))

        was_training = model.training
        model.eval()
        try:
            atomic_export(write, model, self.export_dir)
        finally:
            model.train(was_training)

    def on_step_end(self, trainer: Trainer, step: int) -> None:
        """Evaluate when due; past the time budget, also checkpoint and stop."""
        total = trainer.config.total_steps
        over = self._over_budget(trainer)
        if (self.every and step % self.every == 0) or over or (self.at_end and step == total):
            self.run(trainer, step)
        if over and step < total:  # at the last step the trainer finishes as usual
            from vidtok.training.checkpoint import checkpoint_name, latest_checkpoint

            latest = latest_checkpoint(trainer.output_dir)
            if latest is None or latest.name != checkpoint_name(step):
                trainer.save_checkpoint()  # so that resume_from="latest" continues from here
            raise StopTraining(f"time budget of {self.minutes} minutes reached at step {step}")

    def _over_budget(self, trainer: Trainer) -> bool:
        if self.minutes is None:
            return False
        over = time.time() - self._start > self.minutes * 60
        if trainer.accelerator.num_processes > 1:  # every process must stop at the same step
            from accelerate.utils import broadcast_object_list

            over = broadcast_object_list([over])[0]
        return bool(over)

    def run(self, trainer: Trainer, step: int | None = None) -> dict[str, Any] | None:
        """Evaluate now (main process; others return ``None``), log, and export if it is the best.

        Args:
            trainer: The trainer.
            step: The step to record (default: ``trainer.global_step``).

        Returns:
            The record.
        """
        step = trainer.global_step if step is None else step
        if not trainer.accelerator.is_main_process:
            return None
        model = trainer.accelerator.unwrap_model(trainer.model)
        was_training = model.training
        t0 = time.time()
        model.eval()
        try:
            scores = dict(self.evaluate(model))
        finally:
            model.train(was_training)
        record = {"step": step, "train_minutes": trainer.training_seconds / 60, **scores}
        record["eval_seconds"] = time.time() - t0
        path = self._log_path(trainer)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.verbose:
            rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}
            print(json.dumps(rounded), flush=True)
        self.records.append(record)
        self.last = record
        value = self.value(record)
        if self.export_dir is not None and self._better(value):
            self.best, self.best_step = value, step
            self._export(model, record, value)
        return record
