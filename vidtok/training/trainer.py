"""The vidtok training loop, built on Hugging Face ``accelerate``.

One loop trains every trainable vidtok model: tokenizers (optionally adversarially), AR models, heads. The
model owns its losses; the [`Trainer`][vidtok.training.trainer.Trainer] owns everything else: devices, mixed
precision, gradient accumulation and clipping, multi-process training (DDP, FSDP and DeepSpeed come from
``accelerate config``; there is no home-made distributed engine), AdamW with a warm-up + cosine schedule, EMA,
progressive stages, atomic checkpoints with exact resume, a progress bar and a metrics log.

**The model protocol.** A model is any ``torch.nn.Module`` with:

* ``training_step(batch) -> dict[str, Tensor]`` (required): the named losses of one micro-batch, the total to
  minimise under ``"loss"`` (a scalar, averaged over the batch). Other entries (detached or not) are logged.
  ``batch`` is the collated batch already on the right device (for Shapes: ``{"video": (B, C, T, H, W),
  "caption": [str, ...]}``). If the method accepts a keyword ``step``, it also gets the 0-based global
  optimizer step (e.g. to ramp a loss weight).
* ``configure_stage(stage)`` (optional): called with the [`Stage`][vidtok.training.config.Stage] when it
  begins (and on resume, with the stage being resumed). Switch losses or heads here from ``stage.options``
  (DiCoDe: ``{"loss": "l2"}`` then ``{"loss": "gmm"}``). It must not create or delete parameters (the
  optimizer is built once), and it should depend only on the stage (it is not replayed for earlier stages).
* ``discriminator_parameters()`` and ``discriminator_step(batch) -> dict[str, Tensor]`` (optional, together):
  adversarial training (e.g. a VQGAN-style tokenizer). The discriminator gets its own AdamW
  ([`DiscriminatorConfig`][vidtok.training.config.DiscriminatorConfig]). Each optimizer step first runs the
  generator phase (``training_step`` over the step's micro-batches, discriminator parameters frozen, generator
  optimizer step), then, from ``discriminator.start_step`` on, the discriminator phase (``discriminator_step``
  over the same micro-batches, generator parameters frozen, discriminator optimizer step). ``discriminator_step``
  must compute its own fake samples (under ``torch.no_grad()`` or detached). Its losses are logged with a
  ``disc/`` prefix. Generator parameters are all other trainable parameters.

The model should be a vidtok ``Component`` or a transformers model, so checkpoints are ``save_pretrained``
folders; any other module is checkpointed as ``model.safetensors``.

**What is saved.** Checkpoints (see [`vidtok.training.checkpoint`][vidtok.training.checkpoint]) hold the
model, EMA, optimizer(s), scheduler(s), every process's RNG states, and the step and stage; the data position
follows from the step because batches are a pure function of ``(seed, stage, batch number)``
([`vidtok.training.sampling`][vidtok.training.sampling]). Resuming therefore continues bit for bit.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from vidtok.training import checkpoint as ckpt
from vidtok.training.config import ConfigError, Stage, TrainingConfig
from vidtok.training.ema import EMA
from vidtok.training.sampling import IndexedSources, ShardedBatchSampler, ShardedStream
from vidtok.training.schedules import build_lr_scheduler
from vidtok.training.tracking import METRICS_FILE, MetricsLog

__all__ = ["Callback", "TrainOutput", "Trainer"]

logger = logging.getLogger(__name__)

_SHARDED = ("FSDP", "DEEPSPEED", "MEGATRON_LM")


class Callback:
    """Hooks into the training loop; subclass and override what you need (all are no-ops).

    Callbacks run in every process; guard side effects with ``trainer.accelerator.is_main_process``.
    Raising from a hook stops training (the last complete checkpoint stays valid).
    """

    def on_train_start(self, trainer: Trainer) -> None:
        """After setup (and resume), before the first step."""

    def on_stage_start(self, trainer: Trainer, stage: Stage) -> None:
        """When a stage begins (after ``configure_stage``), also when a run resumes inside it."""

    def on_step_end(self, trainer: Trainer, step: int) -> None:
        """After optimizer step ``step`` (1-based count of steps done), its logging and checkpointing."""

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """With every metrics record (already averaged over processes)."""

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None:
        """After a checkpoint was committed to ``path``."""

    def on_train_end(self, trainer: Trainer) -> None:
        """After the last step and the final export."""


@dataclass
class TrainOutput:
    """What [`Trainer.train`][vidtok.training.trainer.Trainer.train] returns.

    Attributes:
        global_step: Optimizer steps done.
        metrics: The last metrics record.
        checkpoint: The last checkpoint folder (``None`` if none was written).
        model_dir: The exported final model (``<output_dir>/model``).
        ema_dir: The exported EMA model (``<output_dir>/model_ema``), if EMA is on.
    """

    global_step: int
    metrics: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None
    model_dir: Path | None = None
    ema_dir: Path | None = None


class _StepModule(nn.Module):
    """Routes ``training_step``/``discriminator_step`` through ``forward``, so DDP/FSDP hooks and autocast apply."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self._takes_step = {
            name: _accepts_step(getattr(model, name, None)) for name in ("training_step", "discriminator_step")
        }

    def forward(self, batch: Any, phase: str = "training_step", step: int = 0) -> dict[str, torch.Tensor]:
        fn = getattr(self.model, phase)
        out = fn(batch, step=step) if self._takes_step[phase] else fn(batch)
        if not isinstance(out, Mapping) or "loss" not in out:
            raise TypeError(f"{type(self.model).__name__}.{phase} must return a dict of tensors with a 'loss' entry")
        loss = out["loss"]
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TypeError(f"{type(self.model).__name__}.{phase}()['loss'] must be a scalar tensor")
        return dict(out)


def _accepts_step(fn: Callable[..., Any] | None) -> bool:
    if fn is None:
        return False
    params = inspect.signature(fn).parameters
    return "step" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _is_stream(dataset: Any) -> bool:
    return isinstance(dataset, IterableDataset) or (
        not hasattr(dataset, "__getitem__") and hasattr(dataset, "__iter__")
    )


class Trainer:
    """Trains a model that implements the vidtok training protocol (see the module docs).

    Args:
        model: The model (unwrapped, on any device; it is moved by accelerate). Build it after seeding
            (``accelerate.utils.set_seed(config.seed)``) so every process starts from the same weights.
        config: The [`TrainingConfig`][vidtok.training.config.TrainingConfig].
        train_data: A dataset (map-style or iterable), or a mapping ``name -> dataset`` that stages mix by name
            (``Stage.data``). Map-style datasets are read in a seeded order that resumes exactly. Iterable
            datasets must split themselves across processes and DataLoader workers (as
            [`ShardDataset`][vidtok.data.shards.ShardDataset] does); see
            [`ShardedStream`][vidtok.training.sampling.ShardedStream] for how they are batched and resumed.
        collate_fn: Batch collation (default: ``torch.utils.data.default_collate``).
        callbacks: [`Callback`][vidtok.training.trainer.Callback] objects.

    Example:
        >>> from accelerate.utils import set_seed
        >>> from vidtok.shapes import ShapesDataset
        >>> from vidtok.training import Trainer, TrainingConfig, TinyVideoAutoencoder
        >>> set_seed(0)
        >>> model = TinyVideoAutoencoder(**TinyVideoAutoencoder.tiny_config())
        >>> data = ShapesDataset("train", resolution=16, num_frames=2, length=64)
        >>> import tempfile
        >>> cfg = TrainingConfig(output_dir=tempfile.mkdtemp(), max_steps=2, batch_size=4, progress_bar=False)
        >>> Trainer(model, cfg, data).train().global_step
        2

    Raises:
        TypeError: If the model lacks ``training_step`` or has only half of the discriminator protocol.
        ConfigError: If a stage names a dataset that was not given.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainingConfig,
        train_data: Any,
        *,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

        if not callable(getattr(model, "training_step", None)):
            raise TypeError(f"{type(model).__name__} has no training_step(batch) method (see vidtok.training.trainer)")
        has_params = callable(getattr(model, "discriminator_parameters", None))
        has_step = callable(getattr(model, "discriminator_step", None))
        if has_params != has_step:
            raise TypeError(
                f"{type(model).__name__} must define both discriminator_parameters() and discriminator_step(batch), "
                "or neither"
            )
        self.model = model
        self.config = config
        self.has_discriminator = has_params
        self.datasets = self._normalize_data(train_data)
        self.stages = config.resolved_stages()
        self._check_stages()
        self.collate_fn = collate_fn
        self.callbacks = list(callbacks)
        self.output_dir = Path(config.output_dir)

        ddp = DistributedDataParallelKwargs(find_unused_parameters=config.find_unused_parameters or has_params)
        self.accelerator = Accelerator(
            mixed_precision=config.mixed_precision,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            log_with=list(config.trackers) or None,
            project_config=ProjectConfiguration(project_dir=str(self.output_dir), logging_dir=str(self.output_dir)),
            kwargs_handlers=[ddp],
            step_scheduler_with_optimizer=False,
        )
        self.sharded = self.accelerator.distributed_type.name in _SHARDED
        if self.sharded and (config.ema is not None or self.has_discriminator):
            raise ConfigError(
                f"ema / discriminator: not supported under {self.accelerator.distributed_type.name} by this trainer "
                "(EMA and the second optimizer need unsharded parameters); use DDP (multi-GPU) instead"
            )
        self.global_step = 0
        self.stage: Stage | None = None
        self.ema: EMA | None = None
        self.optimizer: Any = None
        self.lr_scheduler: Any = None
        self.discriminator_optimizer: Any = None
        self.discriminator_lr_scheduler: Any = None
        self.history: list[dict[str, Any]] = []
        self._wrapped: nn.Module | None = None
        self._last_checkpoint: Path | None = None
        self._time_offset = 0.0  # training seconds before a resume
        self._started = time.perf_counter()

    @property
    def samples_per_step(self) -> int:
        """Samples per optimizer step over all processes: ``batch_size × accumulation × processes``."""
        cfg = self.config
        return cfg.batch_size * cfg.gradient_accumulation_steps * self.accelerator.num_processes

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _normalize_data(train_data: Any) -> dict[str, Any]:
        datasets = dict(train_data) if isinstance(train_data, Mapping) else {"train": train_data}
        if not datasets:
            raise ValueError("train_data: no datasets given")
        for name, dataset in datasets.items():
            if not isinstance(name, str):
                raise TypeError(f"train_data: dataset names must be strings, got {name!r}")
            if not _is_stream(dataset) and not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
                raise TypeError(
                    f"train_data[{name!r}]: expected a map-style dataset (__len__/__getitem__) or an iterable "
                    f"dataset, got {type(dataset).__name__}"
                )
        return datasets

    def _check_stages(self) -> None:
        for i, stage in enumerate(self.stages):
            names = list(stage.data) if stage.data else list(self.datasets)
            unknown = [n for n in names if n not in self.datasets]
            if unknown:
                raise ConfigError(
                    f"stages.{i}.data: unknown dataset(s) {unknown} in stage {stage.name!r}; "
                    f"the datasets are {list(self.datasets)}"
                )
            active = [n for n in names if not stage.data or stage.data[n] > 0]
            kinds = {_is_stream(self.datasets[n]) for n in active}
            if len(kinds) > 1:
                raise ConfigError(
                    f"stages.{i}.data: stage {stage.name!r} mixes iterable and map-style datasets; mix one kind"
                )

    def _stage_starts(self) -> list[int]:
        starts, start = [], 0
        for stage in self.stages:
            starts.append(start)
            start += stage.steps
        return starts

    def _stage_index(self, step: int) -> int:
        starts = self._stage_starts()
        return max(i for i, s in enumerate(starts) if s <= step)

    def _split_parameters(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        disc: list[nn.Parameter] = []
        if self.has_discriminator:
            disc = [p for p in self.model.discriminator_parameters() if p.requires_grad]
            if not disc:
                raise ValueError(f"{type(self.model).__name__}.discriminator_parameters() has no trainable parameters")
        disc_ids = {id(p) for p in disc}
        gen = [p for p in self.model.parameters() if p.requires_grad and id(p) not in disc_ids]
        if not gen:
            raise ValueError(f"{type(self.model).__name__} has no trainable (generator) parameters")
        return gen, disc

    def _adamw(self, params: list[nn.Parameter], cfg: Any) -> torch.optim.AdamW:
        return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)

    @property
    def training_seconds(self) -> float:
        """Wall-clock seconds of training so far, the runs before a resume included (the log's ``time``)."""
        return self._time_offset + (time.perf_counter() - self._started)

    def _resolve_resume(self, spec: str | os.PathLike[str] | None) -> Path | None:
        """The verified checkpoint to resume from: checked (and digests hashed) once, on the main process."""
        acc, fallback = self.accelerator, self.config.resume_fallback
        if acc.num_processes == 1:
            return ckpt.resolve_checkpoint(spec, self.output_dir, fallback=fallback)
        from accelerate.utils import broadcast_object_list

        result: list[Any] = [None, None]
        if acc.is_main_process:
            try:
                found = ckpt.resolve_checkpoint(spec, self.output_dir, fallback=fallback)
                result = [None if found is None else os.fspath(found), None]
            except (FileNotFoundError, TypeError, ckpt.CheckpointError) as err:
                result = [None, (type(err).__name__, str(err))]  # every process must raise, not wait
        broadcast_object_list(result)
        if result[1] is not None:
            kind, message = result[1]
            raise {"FileNotFoundError": FileNotFoundError, "TypeError": TypeError}.get(kind, ckpt.CheckpointError)(
                message
            )
        return None if result[0] is None else Path(result[0])

    def _setup(self, resume: Path | None) -> None:
        from accelerate.utils import set_seed

        cfg = self.config
        acc = self.accelerator
        state = ckpt.read_trainer_state(resume) if resume is not None else None
        if resume is not None and not self.sharded:
            # Load weights before prepare(): the wrapped (DDP) model then starts from them on every process.
            self.model.load_state_dict(ckpt.read_model_state(self.model, resume / "model"), strict=True)
        self.model.train()
        gen, disc = self._split_parameters()
        self._generator_params, self._discriminator_params = gen, disc
        total = cfg.total_steps
        optimizer = self._adamw(gen, cfg.optimizer)
        self.lr_scheduler = build_lr_scheduler(optimizer, cfg.optimizer, self.stages, total)
        wrapped = _StepModule(self.model)
        if self.has_discriminator:
            d_opt = self._adamw(disc, cfg.discriminator)
            d_stage = [Stage(name="discriminator", steps=total)]
            self.discriminator_lr_scheduler = build_lr_scheduler(d_opt, cfg.discriminator, d_stage, total)
            self._wrapped, self.optimizer, self.discriminator_optimizer = acc.prepare(wrapped, optimizer, d_opt)
        else:
            self._wrapped, self.optimizer = acc.prepare(wrapped, optimizer)
        if cfg.ema is not None:
            disc_ids = {id(p) for p in disc}
            named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad and id(p) not in disc_ids]
            self.ema = EMA(named, decay=cfg.ema.decay, warmup=cfg.ema.warmup)
        if resume is not None:
            self._load_training_state(resume, state)
        # Training randomness differs per process (noise, dropout), like accelerate's device_specific seeding.
        set_seed(cfg.seed, device_specific=True)
        if state is not None:
            index = self._stage_index(self.global_step)
            if self.global_step > self._stage_starts()[index]:
                # The uninterrupted run configured this stage before the checkpoint: do it before the RNG restore.
                self._enter_stage(index, notify=False)
            rng_file = resume / "rng" / f"rank-{acc.process_index:05d}.pt"
            if not rng_file.is_file():
                raise ckpt.CheckpointError(
                    f"{rng_file}: missing; the checkpoint was written by {state.get('num_processes', '?')} process(es) "
                    f"and this run has {acc.num_processes} (resume with as many processes, or the file was lost)"
                )
            _restore(rng_file, "RNG state", lambda: ckpt.restore_rng_state(ckpt.load_torch(rng_file)))

    def _load_training_state(self, resume: Path, state: dict[str, Any]) -> None:
        cfg = self.config
        acc = self.accelerator
        if self.sharded:
            acc.load_state(str(resume / "accelerate"))
        else:
            optimizers = {"optimizer.pt": self.optimizer, "discriminator_optimizer.pt": self.discriminator_optimizer}
            for name, optimizer in optimizers.items():
                if optimizer is not None:
                    saved = ckpt.load_torch(resume / name)
                    _restore(resume / name, "optimizer state", lambda o=optimizer, v=saved: o.load_state_dict(v))
        schedulers = ckpt.load_torch(resume / "scheduler.pt")
        for key, scheduler in (("model", self.lr_scheduler), ("discriminator", self.discriminator_lr_scheduler)):
            if scheduler is None:
                continue
            if not isinstance(schedulers, dict) or key not in schedulers:
                raise ckpt.CheckpointError(
                    f"{resume / 'scheduler.pt'}: no {key!r} scheduler state (the checkpoint was written for another "
                    "model, or is damaged)"
                )
            saved = schedulers[key]
            _restore(resume / "scheduler.pt", f"{key!r} scheduler", lambda s=scheduler, v=saved: s.load_state_dict(v))
        state_file = resume / ckpt.STATE_FILE
        if self.ema is not None:
            if not (resume / "ema").is_dir():
                raise ckpt.CheckpointError(f"{resume / 'ema'}: EMA is on but the checkpoint has no ema/ folder")
            averaged = ckpt.read_model_state(self.model, resume / "ema")
            saved_ema = _state_value(state, "ema", dict, state_file)
            missing = [n for n in self.ema.shadow if n not in averaged]
            if missing:
                raise ckpt.CheckpointError(f"{resume / 'ema'}: no EMA weights for {missing[:5]}")
            _restore(
                state_file,
                "EMA state",
                lambda: self.ema.load_state_dict({**saved_ema, "shadow": {n: averaged[n] for n in self.ema.shadow}}),
            )
        self.global_step = state["step"]  # an int >= 0: checked by read_trainer_state
        saved_batch = _state_value(state, "global_batch_size", int, state_file)
        saved_accumulation = _state_value(state, "gradient_accumulation_steps", int, state_file)
        if saved_batch != cfg.batch_size * acc.num_processes or saved_accumulation != (cfg.gradient_accumulation_steps):
            logger.warning(
                "resuming with a different global batch (%d×%d now, %d×%d in the checkpoint): the data order "
                "continues approximately, not exactly",
                cfg.batch_size * acc.num_processes,
                cfg.gradient_accumulation_steps,
                saved_batch,
                saved_accumulation,
            )
        stages = state.get("stages", [])
        names = [s.get("name") for s in stages if isinstance(s, Mapping)] if isinstance(stages, list) else None
        if names != [s.name for s in self.stages]:
            logger.warning("resuming with different stages than the checkpoint's: %s", stages)
        self._last_checkpoint = resume
        seconds = state.get("time", 0.0)
        self._time_offset = float(seconds) if isinstance(seconds, (int, float)) and math.isfinite(seconds) else 0.0

    # ------------------------------------------------------------------ data
    def _loader(self, index: int, start_batch: int) -> Iterator[Any]:
        cfg, acc, stage = self.config, self.accelerator, self.stages[index]
        names = [n for n in self.datasets if stage.data is None or stage.data.get(n, 0.0) > 0]
        weights = [1.0 if stage.data is None else stage.data[n] for n in names]
        sources = [self.datasets[n] for n in names]
        common = {
            "batch_size": cfg.batch_size,
            "num_processes": acc.num_processes,
            "process_index": acc.process_index,
            "seed": cfg.seed,
            "stream": index,
            "start_batch": start_batch,
            "mix": stage.mix,
        }
        # An explicit generator keeps DataLoader iterator creation from consuming the global torch RNG.
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + index * 10_007 + start_batch)
        if _is_stream(sources[0]):
            dataset = ShardedStream(sources, weights, resume=cfg.stream_resume, **common)
            loader = DataLoader(
                dataset,
                batch_size=cfg.batch_size,
                num_workers=cfg.num_workers,
                collate_fn=self.collate_fn,
                generator=generator,
            )
            iterator = iter(loader)
            # The stream starts at a multiple of the worker count (so batches keep their worker): drop the extra.
            for _ in range(start_batch - dataset.aligned_start(cfg.num_workers)):
                next(iterator)
            return iterator
        else:
            sampler = ShardedBatchSampler([len(s) for s in sources], weights, shuffle=cfg.shuffle, **common)
            loader = DataLoader(
                IndexedSources(sources),
                batch_sampler=sampler,
                num_workers=cfg.num_workers,
                collate_fn=self.collate_fn,
                generator=generator,
            )
        return iter(loader)

    def _device_batches(self, iterator: Iterator[Any]) -> Iterator[Any]:
        from accelerate.utils import send_to_device

        for batch in iterator:
            yield send_to_device(batch, self.accelerator.device)

    # ------------------------------------------------------------------ steps
    @contextmanager
    def _frozen(self, params: list[nn.Parameter]) -> Iterator[None]:
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    def _phase(self, phase: str, batches: Iterator[Any], step: int) -> dict[str, torch.Tensor]:
        """Accumulate gradients over the step's micro-batches and take one optimizer step."""
        acc, cfg = self.accelerator, self.config
        k = cfg.gradient_accumulation_steps
        if phase == "training_step":
            opt, sched, params, max_norm = self.optimizer, self.lr_scheduler, self._generator_params, cfg.max_grad_norm
            frozen, prefix = self._discriminator_params, ""
        else:
            opt, sched = self.discriminator_optimizer, self.discriminator_lr_scheduler
            params, max_norm = self._discriminator_params, cfg.discriminator.max_grad_norm
            frozen, prefix = self._generator_params, "disc/"
        totals: dict[str, torch.Tensor] = {}
        lr = opt.param_groups[0]["lr"]
        with self._frozen(frozen):
            for i in range(k):
                batch = next(batches)
                with acc.accumulate(self._wrapped):
                    out = self._wrapped(batch, phase=phase, step=step)
                    acc.backward(out["loss"])
                    if acc.sync_gradients != (i == k - 1):
                        raise RuntimeError(
                            "gradient accumulation is out of step: another Accelerator in this process changed the "
                            "shared gradient state; run one Trainer at a time"
                        )
                    if acc.sync_gradients and max_norm is not None:
                        # FSDP replaces the parameters at prepare(); accelerate clips them given the wrapped module's.
                        norm = acc.clip_grad_norm_(self._wrapped.parameters() if self.sharded else params, max_norm)
                        if norm is not None:
                            totals[f"{prefix}grad_norm"] = torch.as_tensor(norm, device=acc.device).detach().float()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                for key, value in out.items():
                    value = torch.as_tensor(value, device=acc.device).detach().float().mean()
                    totals[prefix + key] = totals.get(prefix + key, 0.0) + value / k
        if not opt.step_was_skipped:
            sched.step()
        totals[f"{prefix}lr"] = torch.tensor(float(lr), device=acc.device)
        return totals

    def _train_step(self, batches: Iterator[Any]) -> dict[str, torch.Tensor]:
        step = self.global_step
        if self.has_discriminator and step >= self.config.discriminator.start_step:
            kept: list[Any] = []

            def remember() -> Iterator[Any]:
                while True:
                    kept.append(next(batches))
                    yield kept[-1]

            metrics = self._phase("training_step", remember(), step)
            metrics.update(self._phase("discriminator_step", iter(kept), step))
        else:
            metrics = self._phase("training_step", batches, step)
        if self.ema is not None:
            ema_cfg = self.config.ema
            if step < ema_cfg.start_step:
                self.ema.reset()
            elif (step - ema_cfg.start_step) % ema_cfg.update_every == 0:
                self.ema.update()
        return metrics

    def _enter_stage(self, index: int, *, notify: bool = True) -> None:
        self.stage = self.stages[index]
        configure = getattr(self.model, "configure_stage", None)
        if callable(configure):
            configure(self.stage)
        if notify:
            for cb in self.callbacks:
                cb.on_stage_start(self, self.stage)

    # ------------------------------------------------------------------ the loop
    def train(self, resume_from: str | os.PathLike[str] | None = None) -> TrainOutput:
        """Run (or resume) training until ``config.total_steps``; a Trainer trains once.

        Args:
            resume_from: ``"latest"`` (the newest complete checkpoint of ``output_dir``; a fresh start if there is
                none), a checkpoint folder, or a run folder (its latest checkpoint). ``None``: use
                ``config.resume_from``.

        Returns:
            A [`TrainOutput`][vidtok.training.trainer.TrainOutput].

        Damaged checkpoints (a missing, truncated or corrupt file, see
        [`verify_checkpoint`][vidtok.training.checkpoint.verify_checkpoint]) are refused before anything is
        loaded; with ``config.resume_fallback`` the newest intact earlier checkpoint is used instead, and each one
        skipped is logged as a warning with the reason.

        Raises:
            FileNotFoundError: If ``resume_from`` names a folder without a complete checkpoint.
            vidtok.training.checkpoint.CheckpointError: If the checkpoint to resume from is damaged (the message
                names the file), or with ``resume_fallback`` every checkpoint of the run is.
            RuntimeError: If this Trainer already trained (build a new one to continue a run).
        """
        from tqdm.auto import tqdm

        if self._wrapped is not None:
            raise RuntimeError("Trainer.train() runs once; build a new Trainer (resume_from='latest') to continue")
        cfg, acc = self.config, self.accelerator
        resume = self._resolve_resume(resume_from if resume_from is not None else cfg.resume_from)
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_stale(self.output_dir)
            cfg.to_file(self.output_dir / "training_config.json")
        acc.wait_for_everyone()
        self._setup(resume)
        if resume is not None:
            logger.info("resumed from %s at step %d", resume, self.global_step)
        log = None
        if acc.is_main_process:
            log = MetricsLog(self.output_dir / METRICS_FILE, resume_step=self.global_step if resume else None)
        if cfg.trackers:
            acc.init_trackers("vidtok", config=_flat(cfg.to_dict()))
        total = cfg.total_steps
        bar = tqdm(
            total=total,
            initial=self.global_step,
            disable=not (acc.is_main_process and cfg.progress_bar),
            dynamic_ncols=True,
            unit="step",
        )
        for cb in self.callbacks:
            cb.on_train_start(self)
        starts = self._stage_starts()
        current = None if self.stage is None else self.stages.index(self.stage)
        batches: Iterator[Any] | None = None
        window = _Window()
        tick = self._started = time.perf_counter()
        last: dict[str, Any] = {}
        try:
            while self.global_step < total:
                index = self._stage_index(self.global_step)
                if index != current or batches is None:
                    if index != current:
                        self._enter_stage(index)
                    elif batches is None:
                        for cb in self.callbacks:
                            cb.on_stage_start(self, self.stages[index])
                    current = index
                    bar.set_description(self.stages[index].name)
                    start_batch = (self.global_step - starts[index]) * cfg.gradient_accumulation_steps
                    batches = self._device_batches(self._loader(index, start_batch))
                window.add(self._train_step(batches))
                self.global_step += 1
                step = self.global_step
                stage_end = starts[index] + self.stages[index].steps
                if step % cfg.log_every == 0 or step in (total, stage_end):
                    now = time.perf_counter()
                    last = self._log(window, now - tick, window.steps * self.samples_per_step, now - self._started, log)
                    bar.set_postfix(
                        {"loss": f"{last.get('loss', math.nan):.4g}", "samples/s": f"{last['samples_per_s']:.1f}"}
                    )
                    window, tick = _Window(), now
                if step % cfg.save_every == 0 or step in (total, stage_end):
                    self.save_checkpoint()
                    if window.steps == 0:  # keep the save out of the next throughput measurement
                        tick = time.perf_counter()
                bar.update(1)
                for cb in self.callbacks:
                    cb.on_step_end(self, step)
        finally:
            bar.close()
            if log is not None:
                log.close()
        model_dir, ema_dir = self._export_final()
        if cfg.trackers:
            acc.end_training()
        for cb in self.callbacks:
            cb.on_train_end(self)
        return TrainOutput(self.global_step, last, self._last_checkpoint, model_dir, ema_dir)

    def _log(
        self, window: _Window, seconds: float, samples: int, elapsed: float, log: MetricsLog | None
    ) -> dict[str, Any]:
        acc = self.accelerator
        keys, values = window.means(acc.device)
        values = acc.reduce(values, reduction="mean")  # every process must arrive here with the same keys
        record: dict[str, Any] = {"step": self.global_step, "stage": self.stage.name if self.stage else None}
        record.update({k: float(v) for k, v in zip(keys, values.tolist())})
        record["samples"] = self.global_step * self.samples_per_step
        record["samples_per_s"] = samples / seconds if seconds > 0 else math.nan
        record["time"] = self._time_offset + elapsed
        self.history.append(record)
        if log is not None:
            log.write(record)
        if self.config.trackers:
            acc.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=self.global_step)
        for cb in self.callbacks:
            cb.on_log(self, record)
        return record

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        """Write a checkpoint of the current step (all processes must call this); returns its folder."""
        acc, cfg = self.accelerator, self.config
        step = self.global_step
        tmp = ckpt.checkpoint_root(self.output_dir) / f".tmp-{ckpt.checkpoint_name(step)}"
        if acc.is_main_process:
            ckpt.begin_checkpoint(self.output_dir, step)
        acc.wait_for_everyone()
        (tmp / "rng").mkdir(exist_ok=True)
        ckpt.save_torch(ckpt.capture_rng_state(), tmp / "rng" / f"rank-{acc.process_index:05d}.pt")
        if self.sharded:
            acc.save_state(str(tmp / "accelerate"))
            full = acc.get_state_dict(self._wrapped)  # gathered on the main process
            if acc.is_main_process:
                _save_from_state(self.model, {k.removeprefix("model."): v for k, v in full.items()}, tmp / "model")
        if acc.is_main_process:
            if not self.sharded:
                ckpt.save_model(self.model, tmp / "model")
                ckpt.save_torch(self.optimizer.state_dict(), tmp / "optimizer.pt")
                if self.discriminator_optimizer is not None:
                    ckpt.save_torch(self.discriminator_optimizer.state_dict(), tmp / "discriminator_optimizer.pt")
            schedulers = {"model": self.lr_scheduler.state_dict()}
            if self.discriminator_lr_scheduler is not None:
                schedulers["discriminator"] = self.discriminator_lr_scheduler.state_dict()
            ckpt.save_torch(schedulers, tmp / "scheduler.pt")
            if self.ema is not None:
                self._save_ema(tmp / "ema")
        acc.wait_for_everyone()
        final = ckpt.checkpoint_root(self.output_dir) / ckpt.checkpoint_name(step)
        if acc.is_main_process:
            final = ckpt.commit_checkpoint(tmp, self._trainer_state(), digests=cfg.checkpoint_digests)
            ckpt.rotate_checkpoints(self.output_dir, cfg.keep_last, protect=final)
        acc.wait_for_everyone()
        self._last_checkpoint = final
        for cb in self.callbacks:
            cb.on_checkpoint(self, final)
        return final

    def _save_ema(self, path: Path) -> None:
        if self.ema is None:
            raise ValueError("EMA is not enabled (set TrainingConfig.ema)")
        self.ema.store()
        try:
            self.ema.copy_to()
            ckpt.save_model(self.model, path)
        finally:
            self.ema.restore()

    def _trainer_state(self) -> dict[str, Any]:
        from vidtok import __version__

        cfg, acc = self.config, self.accelerator
        index = self._stage_index(min(self.global_step, cfg.total_steps - 1))
        state: dict[str, Any] = {
            "step": self.global_step,
            "stage_index": index,
            "stage": self.stages[index].name,
            "stages": [{"name": s.name, "steps": s.steps} for s in self.stages],
            "samples": self.global_step * self.samples_per_step,
            # Informational: the data position is recomputed from the step on resume.
            "stage_batches": (self.global_step - self._stage_starts()[index]) * cfg.gradient_accumulation_steps,
            "num_processes": acc.num_processes,
            "global_batch_size": cfg.batch_size * acc.num_processes,
            "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
            "distributed_type": acc.distributed_type.name,
            "time": self._time_offset + time.perf_counter() - self._started,
            "vidtok_version": __version__,
            "config": cfg.to_dict(),
        }
        if self.ema is not None:
            state["ema"] = {"decay": self.ema.decay, "warmup": self.ema.warmup, "num_updates": self.ema.num_updates}
        return state

    def save_model(self, path: str | os.PathLike[str], *, ema: bool = False) -> Path:
        """Export the model (or its EMA weights) as a ``save_pretrained`` folder, atomically; main process only.

        Args:
            path: Target folder (replaced if it exists).
            ema: Write the EMA weights instead of the live ones.
        """
        if ema and self.ema is None:
            raise ValueError("save_model(ema=True): EMA is not enabled (set TrainingConfig.ema)")
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        if ema:
            self._save_ema(tmp)
        else:
            ckpt.save_model(self.model, tmp)
        aside = path.with_name(f".{path.name}.old-{os.getpid()}")
        if path.exists():
            os.replace(path, aside)
        os.replace(tmp, path)
        shutil.rmtree(aside, ignore_errors=True)
        return path

    def _export_final(self) -> tuple[Path | None, Path | None]:
        acc = self.accelerator
        model_dir = self.output_dir / "model"
        ema_dir = self.output_dir / "model_ema" if self.ema is not None else None
        if self.sharded:
            full = acc.get_state_dict(self._wrapped)
            if acc.is_main_process:
                _save_from_state(self.model, {k.removeprefix("model."): v for k, v in full.items()}, model_dir)
        elif acc.is_main_process:
            self.save_model(model_dir)
            if ema_dir is not None:
                self.save_model(ema_dir, ema=True)
        acc.wait_for_everyone()
        return model_dir, ema_dir


_KIND_NAMES = {int: "an integer", dict: "a JSON object"}


def _state_value(state: Mapping[str, Any], key: str, kind: type, path: Path) -> Any:
    """``state[key]``, which must be a ``kind``: a missing or mistyped entry names the file and key."""
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ckpt.CheckpointError(
            f"{path}: {key!r} must be {_KIND_NAMES.get(kind, kind.__name__)}, got {value!r}; the checkpoint is damaged "
            "or too old"
        )
    return value


def _restore(path: Path, what: str, load: Callable[[], Any]) -> None:
    """Run ``load()``; a saved state that does not fit (wrong structure or sizes) names the file."""
    try:
        load()
    except ckpt.CheckpointError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
        raise ckpt.CheckpointError(
            f"{path}: the {what} does not fit this run ({type(err).__name__}: {err}); was the model or its "
            "trainable parameters changed since the checkpoint, or is it damaged?"
        ) from err


def _save_from_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Write a gathered (FSDP/DeepSpeed) full state dict in the model's save_pretrained format."""
    kind = ckpt.model_format(model)
    if kind == "transformers":
        model.save_pretrained(os.fspath(path), state_dict=state)
    elif kind == "diffusers":
        twin = type(model).from_config(model.config)
        twin.load_state_dict(state, strict=True)
        twin.save_pretrained(os.fspath(path))
    else:
        from safetensors.torch import save_file

        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().clone().contiguous() for k, v in state.items()}, path / "model.safetensors")


class _Window:
    """Metrics of the steps since the last log: losses averaged, learning rates as last seen."""

    def __init__(self) -> None:
        self.steps = 0
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.latest: dict[str, torch.Tensor] = {}

    def add(self, metrics: Mapping[str, torch.Tensor]) -> None:
        self.steps += 1
        for key, value in metrics.items():
            if key == "lr" or key.endswith("/lr"):
                self.latest[key] = value
            else:
                self.sums[key] = self.sums.get(key, 0.0) + value
                self.counts[key] = self.counts.get(key, 0) + 1

    def means(self, device: torch.device) -> tuple[list[str], torch.Tensor]:
        keys = sorted(self.sums) + sorted(self.latest)
        values = [self.sums[k] / self.counts[k] for k in sorted(self.sums)] + [
            self.latest[k] for k in sorted(self.latest)
        ]
        return keys, torch.stack([torch.as_tensor(v, dtype=torch.float32, device=device) for v in values])


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config for trackers (which take scalar hyper-parameters only)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name}."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[name] = value
        else:
            out[name] = str(value)
    return out
