"""Training configuration: plain dataclasses that round-trip through JSON and YAML.

[`TrainingConfig`][vidtok.training.config.TrainingConfig] holds everything the
[`Trainer`][vidtok.training.trainer.Trainer] needs (optimizer, schedule, stages, EMA, checkpoints, logging).
Loading is strict: an unknown key or a value of the wrong type raises
[`ConfigError`][vidtok.training.config.ConfigError] naming the dotted path of the field (``trainer.optimizer.lr``),
with close matches for misspelled keys.

The defaults of [`OptimizerConfig`][vidtok.training.config.OptimizerConfig] are DiCoDe's (supplementary §6,
"Autoregressive Language Models": learning rate 1e-4, cosine schedule with 1k warm-up steps, AdamW with
β1 = 0.9, β2 = 0.98, ε = 1e-6, weight decay 0.05).

Example:
    >>> cfg = TrainingConfig.from_dict({"max_steps": 100, "optimizer": {"lr": 3e-4}})
    >>> cfg.optimizer.lr, cfg.optimizer.betas
    (0.0003, (0.9, 0.98))
    >>> TrainingConfig.from_dict({"max_stepz": 100})
    Traceback (most recent call last):
    ...
    vidtok.training.config.ConfigError: max_stepz: unknown field (did you mean 'max_steps'?)
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import json
import math
import numbers
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union

__all__ = [
    "ConfigError",
    "DiscriminatorConfig",
    "EMAConfig",
    "OptimizerConfig",
    "Stage",
    "TrainingConfig",
    "apply_overrides",
    "build_config",
    "load_mapping",
]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid; the message starts with the field's dotted path."""


# ----------------------------------------------------------------------------------------------------------
# the dataclasses


@dataclass
class OptimizerConfig:
    """AdamW and learning-rate schedule of the model (the generator, for a GAN).

    Defaults are DiCoDe's AR-model settings (supplementary §6): lr 1e-4, cosine schedule with 1k warm-up
    steps, AdamW with betas (0.9, 0.98), eps 1e-6, weight decay 0.05.

    Args:
        lr: Peak learning rate.
        betas: AdamW ``(β1, β2)``.
        eps: AdamW ε.
        weight_decay: Decoupled weight decay (applied to every trainable parameter, as in the paper).
        scheduler: A ``diffusers.optimization.get_scheduler`` name: ``"cosine"``, ``"linear"``,
            ``"constant"``, ``"constant_with_warmup"``, ``"cosine_with_restarts"``, ``"polynomial"``.
        warmup_steps: Linear warm-up steps at the start of the schedule (of each stage with
            ``schedule_per_stage``).
        schedule_per_stage: Restart the schedule (warm-up included) at every stage, as when each DiCoDe stage
            is its own run; otherwise one schedule spans all steps.
    """

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.05
    scheduler: str = "cosine"
    warmup_steps: int = 1000
    schedule_per_stage: bool = False

    def __post_init__(self) -> None:
        _check_types(self)
        _check_optimizer(self)


@dataclass
class DiscriminatorConfig:
    """AdamW of the discriminator, used only when the model has one (see the model protocol in the trainer).

    Defaults follow the usual VQGAN-style tokenizer setting (Esser et al., arXiv:2012.09841): betas (0.5, 0.9),
    no weight decay, constant learning rate.

    Args:
        lr: Learning rate.
        betas: AdamW ``(β1, β2)``.
        eps: AdamW ε.
        weight_decay: Decoupled weight decay.
        scheduler: A ``diffusers.optimization.get_scheduler`` name (stepped once per discriminator step).
        warmup_steps: Warm-up steps of that schedule.
        start_step: First global step at which the discriminator is trained; before it only the generator is.
        max_grad_norm: Gradient clipping of the discriminator (``None``: no clipping).
    """

    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    eps: float = 1e-8
    weight_decay: float = 0.0
    scheduler: str = "constant"
    warmup_steps: int = 0
    start_step: int = 0
    max_grad_norm: float | None = 1.0

    def __post_init__(self) -> None:
        _check_types(self)
        _check_optimizer(self)
        if self.start_step < 0:
            raise ConfigError(f"start_step: must be >= 0, got {self.start_step}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ConfigError(f"max_grad_norm: must be > 0 or null, got {self.max_grad_norm}")


@dataclass
class EMAConfig:
    """Exponential moving average of the model's (generator's) trainable parameters.

    After each optimizer step ``shadow ← d·shadow + (1 − d)·param`` with ``d = decay``, or, with ``warmup``,
    ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates (so early averages are not dominated by the
    random initialisation).

    Args:
        decay: Target decay.
        warmup: Use the ``(1 + n) / (10 + n)`` ramp.
        update_every: Update every this many optimizer steps.
        start_step: First global step that updates the average (before it, the shadow copies the weights).
    """

    decay: float = 0.9999
    warmup: bool = True
    update_every: int = 1
    start_step: int = 0

    def __post_init__(self) -> None:
        _check_types(self)
        if not 0.0 <= self.decay < 1.0:
            raise ConfigError(f"decay: must be in [0, 1), got {self.decay}")
        if self.update_every < 1:
            raise ConfigError(f"update_every: must be >= 1, got {self.update_every}")
        if self.start_step < 0:
            raise ConfigError(f"start_step: must be >= 0, got {self.start_step}")


@dataclass
class Stage:
    """One stage of progressive training: its length, data mix and model options.

    DiCoDe trains progressively (supplementary §6): images with the L2 loss, images with the GMM loss,
    images and videos 1:1, then motion-filtered videos. As stages::

        [Stage("image_l2", 100_000, data={"images": 1}, options={"loss": "l2"}),
         Stage("image_gmm", 100_000, data={"images": 1}, options={"loss": "gmm"}),
         Stage("image_video", 100_000, data={"images": 1, "videos": 1}, options={"loss": "gmm"}),
         Stage("motion", 20_000, data={"motion_videos": 1}, options={"loss": "gmm"})]

    Args:
        name: Stage name (logged, stored in checkpoints).
        steps: Optimizer steps of the stage.
        data: Dataset name → relative weight, over the names of the datasets given to the trainer. ``None``
            uses every dataset with equal weight (or the only one).
        mix: ``"batch"``: each global batch comes from one dataset, drawn with the weights (needed when the
            datasets' samples do not stack, e.g. images ``T = 1`` and videos ``T = 16``); ``"sample"``: every
            sample draws its dataset.
        options: Free-form options for the model's ``configure_stage(stage)`` (e.g. ``{"loss": "gmm"}``).
        lr: Peak learning rate of this stage (default: ``optimizer.lr``).
    """

    name: str
    steps: int
    data: dict[str, float] | None = None
    mix: Literal["batch", "sample"] = "batch"
    options: dict[str, Any] = field(default_factory=dict)
    lr: float | None = None

    def __post_init__(self) -> None:
        _check_types(self)
        if not self.name:
            raise ConfigError("name: must be a non-empty string")
        where = f"(stage {self.name!r})"
        if self.steps < 1:
            raise ConfigError(f"steps: must be >= 1 {where}, got {self.steps}")
        if self.data is not None:
            if not self.data:
                raise ConfigError(f"data: must name at least one dataset, or be null {where}")
            if any(v < 0 for v in self.data.values()) or sum(self.data.values()) <= 0:
                raise ConfigError(f"data: weights must be >= 0 with a positive sum {where}, got {self.data}")
        if self.mix not in ("batch", "sample"):
            raise ConfigError(f"mix: must be 'batch' or 'sample' {where}, got {self.mix!r}")
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"lr: must be > 0 {where}, got {self.lr}")


@dataclass
class TrainingConfig:
    """Everything the [`Trainer`][vidtok.training.trainer.Trainer] needs; JSON/YAML round-trippable.

    Batch sizes are per process (the usual accelerate convention): a step sees
    ``batch_size × gradient_accumulation_steps × num_processes`` samples. DiCoDe's global batch of 256
    (§4.1) is e.g. ``batch_size=32`` on 8 GPUs.

    Args:
        output_dir: Run folder: checkpoints, ``metrics.jsonl``, final model, trackers.
        max_steps: Optimizer steps to train. ``None``: the sum of the stages' steps. With stages it may be
            smaller than that sum (to stop early, e.g. a smoke test of a recipe), never larger.
        stages: Progressive stages, in order (empty: one stage named ``"main"`` of ``max_steps``).
        batch_size: Samples per process per micro-batch.
        gradient_accumulation_steps: Micro-batches per optimizer step.
        max_grad_norm: Clip the global gradient norm of the model to this (``None``: no clipping).
        mixed_precision: ``"no"``, ``"fp16"`` or ``"bf16"`` (autocast through accelerate; weights stay fp32).
        optimizer: The model's optimizer and schedule.
        discriminator: The discriminator's optimizer (only used if the model has a discriminator).
        ema: Keep an exponential moving average of the weights (``None``: off).
        num_workers: DataLoader worker processes (map-style datasets).
        seed: Seed of the initialisation, data order and training randomness.
        shuffle: Read datasets in seeded random order (otherwise in index order).
        log_every: Log averaged metrics every this many steps.
        save_every: Save a checkpoint every this many steps (also at the end of every stage and of training).
        keep_last: Keep only the newest this many checkpoints (``None``: keep all).
        resume_from: ``"latest"`` (the newest complete checkpoint in ``output_dir``, or a fresh start if there
            is none), a checkpoint folder, or ``None`` (fresh start).
        resume_fallback: When the checkpoint ``resume_from="latest"`` (or a run folder) picks is damaged (a
            missing, truncated or corrupt file), skip it, with a logged warning naming it and why, and resume from
            the newest intact one before it. Off: a damaged checkpoint raises ``CheckpointError`` naming the file.
        checkpoint_digests: Record the SHA-256 of every checkpoint file (checked on resume unless
            ``VIDTOK_VERIFY_WEIGHTS=0``). Sizes are always recorded; turn this off only if hashing each save is too
            slow for very large checkpoints.
        trackers: Extra accelerate trackers, e.g. ``["tensorboard"]`` (metrics always go to
            ``metrics.jsonl``).
        progress_bar: Show a tqdm progress bar (main process only).
        find_unused_parameters: Passed to DDP; needed when some parameters get no gradient in a step (set
            automatically for models with a discriminator).
        stream_resume: How iterable (streaming) datasets resume: ``"replay"`` reads and discards the samples
            consumed before the checkpoint (exact for deterministic streams, costs reading them);
            ``"reshuffle"`` restarts them at a fresh epoch (instant, statistically equivalent). Map-style datasets
            always resume exactly and instantly.
    """

    output_dir: str = "runs/vidtok"
    max_steps: int | None = None
    stages: list[Stage] = field(default_factory=list)
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = 1.0
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    ema: EMAConfig | None = None
    num_workers: int = 0
    seed: int = 0
    shuffle: bool = True
    log_every: int = 10
    save_every: int = 1000
    keep_last: int | None = 3
    resume_from: str | None = None
    resume_fallback: bool = False
    checkpoint_digests: bool = True
    trackers: list[str] = field(default_factory=list)
    progress_bar: bool = True
    find_unused_parameters: bool = False
    stream_resume: Literal["replay", "reshuffle"] = "replay"

    def __post_init__(self) -> None:
        _check_types(self)
        positive = ("batch_size", "gradient_accumulation_steps", "log_every", "save_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("num_workers", "seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.keep_last is not None and self.keep_last < 1:
            raise ConfigError(f"keep_last: must be >= 1 or null, got {self.keep_last}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ConfigError(f"max_grad_norm: must be > 0 or null, got {self.max_grad_norm}")
        if self.stream_resume not in ("replay", "reshuffle"):
            raise ConfigError(f"stream_resume: must be 'replay' or 'reshuffle', got {self.stream_resume!r}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ConfigError(f"mixed_precision: must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ConfigError(f"stages: stage names must be unique, got {names}")
        if not self.stages and self.max_steps is None:
            raise ConfigError("max_steps: required when no stages are given")
        if self.max_steps is not None:
            if self.max_steps < 1:
                raise ConfigError(f"max_steps: must be >= 1, got {self.max_steps}")
            planned = sum(s.steps for s in self.stages)
            if self.stages and self.max_steps > planned:
                raise ConfigError(
                    f"max_steps: {self.max_steps} exceeds the {planned} steps of the stages; lengthen a stage instead"
                )

    # ------------------------------------------------------------------ derived values
    @property
    def total_steps(self) -> int:
        """Optimizer steps this run trains: ``max_steps``, or the stages' total."""
        return self.max_steps if self.max_steps is not None else sum(s.steps for s in self.stages)

    def resolved_stages(self) -> list[Stage]:
        """The stages actually trained (one implicit ``"main"`` stage when none are configured)."""
        if self.stages:
            return list(self.stages)
        return [Stage(name="main", steps=self.total_steps)]

    # ------------------------------------------------------------------ serialization
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, prefix: str = "") -> TrainingConfig:
        """Build a config from a mapping, strictly.

        Args:
            data: Field name → value (nested mappings for nested configs, a list of mappings for stages).
            prefix: Dotted path prepended to field names in error messages (e.g. ``"trainer"``).

        Raises:
            ConfigError: On an unknown field, a value of the wrong type, or an invalid value; the message
                starts with the field's dotted path.
        """
        return _build(cls, data, prefix)

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-compatible values (tuples become lists)."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrainingConfig:
        """Load a ``.json``, ``.yaml`` or ``.yml`` file.

        The file is either a trainer config or a run config with a ``trainer`` section (as used by
        ``vidtok train``, a recipe run's included), in which case that section is read as written (a recipe
        run's defaults from its recipe are filled by [`load_recipe_run`][vidtok.training.recipe.load_recipe_run]).
        """
        data = load_mapping(path)
        if "trainer" in data and (set(data) <= {"model", "data", "trainer"} or "recipe" in data):
            return cls.from_dict(data["trainer"] or {}, prefix="trainer")
        return cls.from_dict(data)

    def to_file(self, path: str | os.PathLike[str]) -> None:
        """Write the config as JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
        path = os.fspath(path)
        text = _dump(self.to_dict(), path)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------------------
# files and overrides


def load_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON or YAML file whose top level is a mapping.

    Raises:
        FileNotFoundError: If the file does not exist.
        ConfigError: If it cannot be parsed or is not a mapping.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ConfigError(f"{path}: is a folder, expected a .json, .yaml or .yml config file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such config file: {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 text file ({err})") from None
    if path.endswith(".json"):
        parse = json.loads
    elif path.endswith((".yaml", ".yml")):
        import yaml

        parse = yaml.safe_load
    else:
        raise ConfigError(f"{path}: unknown config format (use .json, .yaml or .yml)")
    try:
        data = parse(text)
    except Exception as err:  # json.JSONDecodeError or yaml.YAMLError
        raise ConfigError(f"{path}: cannot parse: {err}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def load_run_mapping(source: Any, overrides: Sequence[str], known: Sequence[str], what: str) -> dict[str, Any]:
    """A run file (or mapping) with ``--set`` overrides applied, its top-level keys checked against ``known``.

    Raises:
        ConfigError: A top-level key not in ``known`` (with the closest known one), or a bad override.
    """
    import copy
    import difflib

    data = copy.deepcopy(dict(source)) if isinstance(source, Mapping) else load_mapping(source)
    apply_overrides(data, overrides)
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
            raise ConfigError(f"{key}: unknown {what}{hint}")
    return data


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.sub.key=value`` overrides to a nested mapping, in place, and return it.

    Values are parsed as YAML (``100`` → int, ``true`` → bool, ``[1, 2]`` → list, ``null`` → None; anything
    else stays a string). Integer path parts index lists (``trainer.stages.0.steps=10``). Missing mapping
    keys are created; whether they are valid is checked when the config is built.

    Example:
        >>> apply_overrides({"trainer": {"max_steps": 10}}, ["trainer.max_steps=100", "model.kwargs.hidden=32"])
        {'trainer': {'max_steps': 100}, 'model': {'kwargs': {'hidden': 32}}}

    Raises:
        ConfigError: If an override is not ``key=value`` or its path runs through a non-container.
    """
    import yaml

    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r}: expected dotted.key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parts = key.split(".")
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
                    raise ConfigError(f"{where}: no item {part!r} in a list of {len(node)}")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    node = node[part]
            else:
                raise ConfigError(f"{where}: cannot set a key inside a {type(node).__name__} value")
    return data


# ----------------------------------------------------------------------------------------------------------
# strict building


def _check_optimizer(cfg: Any) -> None:
    if cfg.lr <= 0:
        raise ConfigError(f"lr: must be > 0, got {cfg.lr}")
    if len(cfg.betas) != 2 or not all(0.0 <= b < 1.0 for b in cfg.betas):
        raise ConfigError(f"betas: must be two values in [0, 1), got {list(cfg.betas)}")
    for name, ok in (
        ("eps", cfg.eps > 0),
        ("weight_decay", cfg.weight_decay >= 0),
        ("warmup_steps", cfg.warmup_steps >= 0),
    ):
        if not ok:
            raise ConfigError(f"{name}: must be {'> 0' if name == 'eps' else '>= 0'}, got {getattr(cfg, name)}")
    from diffusers.optimization import SchedulerType

    known = [s.value for s in SchedulerType if s.value != "piecewise_constant"]
    if cfg.scheduler not in known:
        close = difflib.get_close_matches(cfg.scheduler, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"scheduler: unknown schedule {cfg.scheduler!r}{hint}; choose one of {known}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_types(config: Any) -> None:
    """Type-check (and normalise, as ``from_dict`` does) the fields of a config dataclass built in Python.

    Without it ``TrainingConfig(batch_size="8")`` would fail later with an error naming no field.
    """
    hints = _hints(type(config))
    for f in dataclasses.fields(config):
        setattr(config, f.name, _coerce(hints[f.name], getattr(config, f.name), f.name))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def build_config(cls: type, data: Any, prefix: str = "") -> Any:
    """Build any config dataclass from a mapping, strictly (as ``TrainingConfig.from_dict`` does).

    Args:
        cls: A dataclass whose fields are JSON-like types (``int``, ``float``, ``str``, ``bool``, lists, dicts,
            optionals, literals, nested dataclasses).
        data: Field name → value (an instance of ``cls`` is returned as is).
        prefix: Dotted path prepended to field names in error messages.

    Raises:
        ConfigError: On an unknown field (with close matches), a value of the wrong type or a missing required
            field; the message starts with the field's dotted path.
    """
    return _build(cls, data, prefix)


def _build(cls: type, data: Any, prefix: str) -> Any:
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known fields: {', '.join(fields)})"
            raise ConfigError(f"{_join(prefix, str(key))}: unknown field{hint}")
        kwargs[key] = _coerce(hints[key], value, _join(prefix, key))
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{_join(prefix, missing[0])}: required field is missing")
    try:
        return cls(**kwargs)
    except ConfigError as err:
        # __post_init__ messages start with the field name; make it the full dotted path.
        if prefix:
            raise ConfigError(f"{prefix}.{err}") from None
        raise


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Union or origin is types.UnionType:
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{path}: must not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: must be one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{path}: expected an integer, got {type(value).__name__} {value!r}")
        return int(value)
    if tp is float:
        number = value
        # PyYAML reads "1e-4" (no dot) as a string; accept numeric strings for float fields.
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value)
        if isinstance(number, bool) or not isinstance(number, numbers.Real):
            raise ConfigError(f"{path}: expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(number):  # a NaN would pass every "> 0" check below and train on NaNs
            raise ConfigError(f"{path}: must be a finite number, got {value!r}")
        return float(number)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(a, v, f"{path}.{i}") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{path}.{i}") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        key_tp, value_tp = args if args else (Any, Any)
        return {_coerce(key_tp, k, path): _coerce(value_tp, v, f"{path}.{k}") for k, v in value.items()}
    raise TypeError(f"{path}: unsupported config type {tp!r}")  # a programming error, not a user one


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _dump(data: Mapping[str, Any], path: str) -> str:
    if path.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_dump(dict(data), sort_keys=False)
    return json.dumps(data, indent=2) + "\n"
