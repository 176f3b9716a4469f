"""Run configs: one YAML/JSON file naming the model, the data and the trainer settings (``vidtok train``).

A run config has three sections::

    model:
      target: vidtok.training:TinyVideoAutoencoder   # import path "module:Class" or "module:function", or
      # name: deep_tokens                            # a registered name (TOKENIZERS, HEADS, BACKBONES)
      # registry: tokenizers                         # (optional) which registry to look the name up in
      kwargs: {hidden_channels: 32}
      # pretrained: path/or/hub-id                   # (optional) start from Class.from_pretrained(...)
    data:
      train: {name: shapes, kwargs: {resolution: 32, num_frames: 8}}   # one dataset, or named datasets:
      # train:
      #   images: {name: shapes, kwargs: {mode: image}}
      #   videos: {target: my_pkg.data:WebVid, kwargs: {root: /data/webvid}}
      # collate: my_pkg.data:collate                 # (optional) collate function
    trainer:                                         # a TrainingConfig
      output_dir: runs/tiny
      max_steps: 200
      stages: [...]

``data`` defaults to the Shapes world (``{"train": {"name": "shapes"}}``). Dataset names known without an import
path: ``shapes`` ([`ShapesDataset`][vidtok.shapes.dataset.ShapesDataset]), ``video``
([`VideoDataset`][vidtok.data.video.VideoDataset]), ``images``
([`ImageTextDataset`][vidtok.data.images.ImageTextDataset]), ``shards``
([`ShardDataset`][vidtok.data.shards.ShardDataset], WebDataset tar shards, streaming) and ``token_cache``
([`TokenCacheDataset`][vidtok.data.token_cache.TokenCacheDataset], precomputed tokens). Anything else is given
by import path (any class or function returning a torch ``Dataset`` or ``IterableDataset``).

A file whose top level names a ``recipe`` (``recipe: dicode_tiny`` + ``overrides``) is a recipe run instead: see
[`vidtok.training.recipe`][vidtok.training.recipe].

**Run configs are trusted input: they are code.** An import path runs the module it imports and calls what it
names (``target: subprocess:run`` would run a command), and a shard URL ``pipe:COMMAND`` runs a shell command.
So by default only import paths inside the ``vidtok`` package (to classes and functions defined there) are
accepted, and ``pipe:`` shards are refused; ``allow_code=True`` (``train_from_config``, ``build_model``,
``build_datasets``), ``VIDTOK_ALLOW_CODE=1`` in the environment, or ``vidtok train --allow-code`` lifts both
limits, for configs you wrote or trust. A config cannot grant this to itself: an ``allow_code`` key in its
``kwargs`` is refused. ``trust_remote_code`` is always refused.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from vidtok.training.config import ConfigError, TrainingConfig, load_run_mapping

__all__ = ["DATASET_NAMES", "build_datasets", "build_model", "load_run_config", "train_from_config"]

DATASET_NAMES: dict[str, str] = {
    "shapes": "vidtok.shapes.dataset:ShapesDataset",
    "video": "vidtok.data.video:VideoDataset",
    "images": "vidtok.data.images:ImageTextDataset",
    "shards": "vidtok.data.shards:ShardDataset",
    "token_cache": "vidtok.data.token_cache:TokenCacheDataset",
}
"""Dataset names usable in ``data`` specs instead of an import path."""

#: The registries a ``model`` spec looks names up in (keys of :data:`vidtok.registry.REGISTRIES`).
_REGISTRIES = ("tokenizers", "heads", "backbones", "models")
_SECTIONS = ("model", "data", "trainer")
_MODEL_KEYS = ("name", "registry", "target", "kwargs", "pretrained")
_DATASET_KEYS = ("name", "target", "kwargs")


def _in_vidtok(name: Any) -> bool:
    return isinstance(name, str) and (name == "vidtok" or name.startswith("vidtok."))


def import_object(path: str, *, where: str, allow_code: bool | None = None) -> Any:
    """Import ``"package.module:attr"`` (or ``"package.module.attr"``).

    Args:
        path: The import path.
        where: Dotted config path of the value, for error messages.
        allow_code: Allow paths outside the ``vidtok`` package (``None``: only if ``VIDTOK_ALLOW_CODE=1``).
            Without it the module must be in ``vidtok`` and the object a class or function defined there (not,
            say, ``vidtok.data.shards:subprocess.run``).

    Raises:
        ConfigError: If the module or attribute does not exist, or the path leaves ``vidtok`` while code is not
            allowed; the message starts with ``where``.
    """
    from vidtok.data.shards import ALLOW_CODE_ENV, code_allowed

    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where}: expected an import path 'module:attr', got {path!r}")
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{where}: expected an import path 'module:attr', got {path!r}")
    trusted = code_allowed(allow_code)
    refusal = (
        f"{where}: {path!r} is outside the vidtok package; run configs are code, so import paths outside vidtok "
        f"are refused unless allowed (allow_code=True, {ALLOW_CODE_ENV}=1, or vidtok train --allow-code) for "
        "configs you trust"
    )
    if not trusted and not _in_vidtok(module_name):
        raise ConfigError(refusal)  # before the import: importing a module runs its code
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"{where}: cannot import module {module_name!r}: {err}") from err
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{where}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
        if not trusted and inspect.ismodule(obj) and not _in_vidtok(obj.__name__):
            raise ConfigError(refusal)
    if not trusted and not (
        (inspect.isclass(obj) or inspect.isroutine(obj)) and _in_vidtok(getattr(obj, "__module__", None))
    ):
        raise ConfigError(
            f"{where}: {path!r} is not a class or function defined in vidtok (it comes from "
            f"{getattr(obj, '__module__', None) or type(obj).__name__!r}); allow code to use it"
        )
    return obj


def _check_keys(spec: Any, allowed: Sequence[str], where: str) -> Mapping[str, Any]:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(spec).__name__} {spec!r}")
    for key in spec:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(allowed)})"
            raise ConfigError(f"{where}.{key}: unknown key{hint}")
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"{where}.kwargs: expected a mapping, got {type(kwargs).__name__}")
    return spec


#: Keyword arguments a config may not pass: the permission to run code comes from the caller, never the config.
_GUARDED_KWARGS = ("allow_code", "trust_remote_code")


def _guard_kwargs(kwargs: Mapping[str, Any], where: str) -> None:
    for key in _GUARDED_KWARGS:
        if key in kwargs:
            raise ConfigError(
                f"{where}.kwargs.{key}: not accepted from a config (a config cannot grant itself the right to run "
                "code); allow code from the caller instead (allow_code=True or VIDTOK_ALLOW_CODE=1"
                + (")" if key == "allow_code" else "; trust_remote_code is never passed)")
            )


def _call(factory: Any, kwargs: Mapping[str, Any], where: str, allow_code: bool = False) -> Any:
    name = getattr(factory, "__qualname__", factory)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # no signature available (builtins): let the call itself complain
        params = None
    if allow_code and params is not None and "allow_code" in params:
        kwargs = {**kwargs, "allow_code": True}  # e.g. ShardDataset's pipe: URLs, allowed by the caller
    if params is not None:
        try:
            inspect.signature(factory).bind(**kwargs)
        except TypeError as err:
            raise ConfigError(f"{where}.kwargs: {err} (calling {name!r})") from err
    try:
        return factory(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError, PermissionError) as err:
        # The constructor refused a value of the config: say which section it came from.
        raise ConfigError(f"{where}.kwargs: {name} refused the arguments: {type(err).__name__}: {err}") from err


def build_model(spec: Mapping[str, Any], *, where: str = "model", allow_code: bool | None = None) -> Any:
    """Build the model named by a run config's ``model`` section.

    Args:
        spec: ``{"name" | "target": ..., "registry": ..., "kwargs": {...}, "pretrained": ...}`` (see the
            module docs).
        where: Dotted path of the section, for error messages.
        allow_code: Allow a ``target`` outside the ``vidtok`` package (``None``: only if ``VIDTOK_ALLOW_CODE=1``);
            see the module docs.

    Raises:
        ConfigError: On unknown keys, an unknown name or import path, a ``target`` outside vidtok while code is
            not allowed, or arguments the model does not take or refuses.
    """
    from vidtok.data.shards import code_allowed
    from vidtok.registry import REGISTRIES

    trusted = code_allowed(allow_code)
    spec = _check_keys(spec, _MODEL_KEYS, where)
    spec = {k: v for k, v in spec.items() if v is not None}  # "--set model.target=null" removes a key
    kwargs = dict(spec.get("kwargs") or {})
    _guard_kwargs(kwargs, where)
    if ("name" in spec) == ("target" in spec):
        raise ConfigError(f"{where}: give exactly one of 'name' (a registered component) or 'target' (an import path)")
    if "target" in spec:
        factory = import_object(spec["target"], where=f"{where}.target", allow_code=trusted)
    else:
        name = spec["name"]
        if not isinstance(name, str):
            raise ConfigError(f"{where}.name: expected a registered name (a string), got {type(name).__name__}")
        kinds = [spec["registry"]] if "registry" in spec else list(_REGISTRIES)
        unknown = [k for k in kinds if k not in _REGISTRIES]
        if unknown:
            raise ConfigError(f"{where}.registry: unknown registry {unknown[0]!r}; choose one of {list(_REGISTRIES)}")
        found = [REGISTRIES[k] for k in kinds if name in REGISTRIES[k]]
        if not found:
            names = sorted(n for k in kinds for n in REGISTRIES[k].list())
            close = difflib.get_close_matches(str(name), names, n=3)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise ConfigError(f"{where}.name: no registered component {name!r} in {kinds}{hint}")
        if len(found) > 1:
            raise ConfigError(f"{where}.name: {name!r} is registered in several registries; set {where}.registry")
        factory = found[0].get(name)
    if "pretrained" in spec:
        if not (inspect.isclass(factory) and hasattr(factory, "from_pretrained")):
            raise ConfigError(f"{where}.pretrained: {factory!r} has no from_pretrained")
        if not isinstance(spec["pretrained"], (str, os.PathLike)):
            raise ConfigError(
                f"{where}.pretrained: expected a folder or hub id (a string), got {type(spec['pretrained']).__name__}"
            )
        return factory.from_pretrained(spec["pretrained"], **kwargs)
    return _call(factory, kwargs, where, trusted)


def _build_dataset(spec: Any, where: str, allow_code: bool) -> Any:
    spec = _check_keys(spec, _DATASET_KEYS, where)
    spec = {k: v for k, v in spec.items() if v is not None}
    _guard_kwargs(spec.get("kwargs") or {}, where)
    if ("name" in spec) == ("target" in spec):
        raise ConfigError(
            f"{where}: give exactly one of 'name' ({', '.join(DATASET_NAMES)}) or 'target' (an import path)"
        )
    if "name" in spec:
        if spec["name"] not in DATASET_NAMES:
            close = difflib.get_close_matches(str(spec["name"]), list(DATASET_NAMES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{where}.name: unknown dataset {spec['name']!r}{hint}; known: {list(DATASET_NAMES)}, "
                "or give 'target: module:Class'"
            )
        factory = import_object(DATASET_NAMES[spec["name"]], where=f"{where}.name")
    else:
        factory = import_object(spec["target"], where=f"{where}.target", allow_code=allow_code)
    return _call(factory, dict(spec.get("kwargs") or {}), where, allow_code)


def _is_single_spec(spec: Mapping[str, Any]) -> bool:
    return any(isinstance(spec.get(key), str) for key in ("name", "target"))


def build_datasets(
    spec: Mapping[str, Any] | None, *, where: str = "data", allow_code: bool | None = None
) -> tuple[Any, Any]:
    """Build the training data of a run config's ``data`` section.

    Args:
        spec: ``{"train": dataset_spec | {name: dataset_spec, ...}, "collate": "module:function"}``; ``None``
            means the default Shapes dataset.
        where: Dotted path of the section, for error messages.
        allow_code: Allow ``target``/``collate`` import paths outside vidtok and ``pipe:`` shard URLs (``None``:
            only if ``VIDTOK_ALLOW_CODE=1``); see the module docs.

    Returns:
        ``(train_data, collate_fn)``: one dataset or a dict of named datasets, and the collate function
        (``None``: the default).
    """
    from vidtok.data.shards import code_allowed

    trusted = code_allowed(allow_code)
    spec = {"train": {"name": "shapes"}} if spec is None else spec
    spec = _check_keys(spec, ("train", "collate"), where)
    train = spec.get("train") or {"name": "shapes"}
    if not isinstance(train, Mapping):
        raise ConfigError(f"{where}.train: expected a dataset spec or a mapping of named specs")
    if _is_single_spec(train):
        data: Any = _build_dataset(train, f"{where}.train", trusted)
    else:
        data = {str(name): _build_dataset(sub, f"{where}.train.{name}", trusted) for name, sub in train.items()}
        if not data:
            raise ConfigError(f"{where}.train: no datasets")
    collate = None
    if spec.get("collate"):
        collate = import_object(spec["collate"], where=f"{where}.collate", allow_code=trusted)
        if not callable(collate):
            raise ConfigError(f"{where}.collate: {spec['collate']!r} is not callable")
    return data, collate


def load_run_config(
    source: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Sequence[str] = (),
    *,
    stages: Sequence[str] | None = None,
) -> tuple[dict[str, Any], TrainingConfig]:
    """Read a run config, apply ``--set`` overrides and validate the trainer section.

    Args:
        source: A ``.yaml``/``.yml``/``.json`` file or an already loaded mapping.
        overrides: ``dotted.key=value`` strings (see [`apply_overrides`][vidtok.training.config.apply_overrides]).
        stages: Train only these stages of ``trainer.stages`` (by name, kept in config order), e.g. one stage of
            a recipe, starting from the previous stage's weights with ``model.pretrained``.

    Returns:
        ``(run_config, training_config)``: the full mapping after overrides, and its parsed ``trainer`` section.

    Raises:
        ConfigError: On unknown sections or invalid trainer fields (named by dotted path).
    """
    data = load_run_mapping(source, overrides, _SECTIONS, "section")
    if "model" not in data:
        raise ConfigError("model: required section is missing (name or target of the model to train)")
    if stages:
        data["trainer"] = trainer_section = dict(data.get("trainer") or {})
        known = [s.get("name") for s in trainer_section.get("stages") or [] if isinstance(s, Mapping)]
        unknown = [name for name in stages if name not in known]
        if unknown:
            raise ConfigError(f"trainer.stages: no stage named {unknown}; the stages are {known}")
        trainer_section["stages"] = [s for s in trainer_section["stages"] if s.get("name") in stages]
    trainer = TrainingConfig.from_dict(data.get("trainer") or {}, prefix="trainer")
    return data, trainer


def train_from_config(
    source: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Sequence[str] = (),
    *,
    stages: Sequence[str] | None = None,
    callbacks: Sequence[Any] = (),
    allow_code: bool | None = None,
) -> Any:
    """Build everything a run config names and train; what ``vidtok train`` does.

    The model is built after seeding with ``trainer.seed``, so every process starts from the same weights. The
    resolved config (after overrides) is written to ``<output_dir>/run_config.json``.

    Args:
        source: The run config (file or mapping).
        overrides: ``dotted.key=value`` overrides.
        stages: Train only these named stages (see [`load_run_config`][vidtok.training.run.load_run_config]).
        callbacks: [`Callback`][vidtok.training.trainer.Callback]s for the trainer.
        allow_code: Allow import paths outside vidtok and ``pipe:`` shard URLs (``None``: only if
            ``VIDTOK_ALLOW_CODE=1``). Run configs are code: allow it only for configs you trust.

    Returns:
        The [`TrainOutput`][vidtok.training.trainer.TrainOutput].
    """
    from accelerate.utils import set_seed

    from vidtok.training.trainer import Trainer

    data, config = load_run_config(source, overrides, stages=stages)
    set_seed(config.seed)  # identical initial weights in every process
    model = build_model(data["model"], allow_code=allow_code)
    if not callable(getattr(model, "training_step", None)):
        raise ConfigError(
            f"model: {type(model).__name__} does not implement training_step(batch) -> dict of losses, so the "
            "trainer cannot train it (see vidtok.training.trainer for the protocol)"
        )
    train_data, collate = build_datasets(data.get("data"), allow_code=allow_code)
    trainer = Trainer(model, config, train_data, collate_fn=collate, callbacks=callbacks)
    if trainer.accelerator.is_main_process:
        os.makedirs(config.output_dir, exist_ok=True)
        resolved = {**data, "trainer": config.to_dict()}
        path = os.path.join(config.output_dir, "run_config.json")
        with open(f"{path}.tmp", "w", encoding="utf-8") as f:
            json.dump(resolved, f, indent=2)
        os.replace(f"{path}.tmp", path)
    return trainer.train()
