"""The shared base class of every vidtok ``nn`` component.

:class:`Component` is diffusers' ``ModelMixin`` + ``ConfigMixin`` with the conventions vidtok relies on:

* **Config = keyword-only init arguments.** ``__init__`` is decorated with ``@register_to_config`` and takes
  keyword-only, JSON-serializable arguments. Positional arguments are refused at class-definition time
  because diffusers' ``register_to_config`` records them as "defaults used" and ``from_config`` would
  silently revert them (diffusers issue #14460). Sub-modules are chosen by registry name plus a kwargs
  dict, never by passing module objects, so every config is self-describing JSON.
* **Strict loading.** diffusers only *warns* when checkpoint keys are missing or unexpected, which leaves
  weights silently random. :meth:`Component.from_pretrained` raises :class:`LoadingError` naming every
  such key unless the caller explicitly allows them.
* **Versioned configs.** ``config.json`` records ``_config_version`` (the class's
  :attr:`Component.config_version`) and the vidtok version; loading an older config runs
  :meth:`Component.migrate_config`, loading a newer one raises.
* ``tiny_config()``: every component class returns kwargs for a model small enough for a CPU unit test.

Example:
    >>> import torch
    >>> from diffusers.configuration_utils import register_to_config
    >>> from vidtok.modeling_utils import Component
    >>> class Scale(Component):
    ...     '''Multiplies by a learned scalar.'''
    ...
    ...     @register_to_config
    ...     def __init__(self, *, init: float = 1.0):
    ...         super().__init__()
    ...         self.weight = torch.nn.Parameter(torch.tensor(init))
    ...
    ...     @classmethod
    ...     def tiny_config(cls):
    ...         return {"init": 2.0}
    >>> Scale(**Scale.tiny_config()).config["init"]
    2.0
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import shutil
import tempfile
from typing import Any, ClassVar

from diffusers import ConfigMixin, ModelMixin

__all__ = ["Component", "LoadingError", "ConfigVersionError"]

logger = logging.getLogger(__name__)


def _looks_like_hub_id(path: str) -> bool:
    """``name`` or ``org/name`` (what the Hub accepts), as opposed to a filesystem path."""
    return re.fullmatch(r"(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*", path) is not None


class LoadingError(RuntimeError):
    """A checkpoint does not match the model it is loaded into (missing, unexpected or mismatched keys)."""


class ConfigVersionError(ValueError):
    """A config was written by a newer version of a component than this installation knows."""


class Component(ModelMixin, ConfigMixin):
    """Base class of every vidtok ``nn`` component (tokenizers, heads, transformers, composite models).

    Subclasses define a keyword-only ``__init__`` decorated with
    ``diffusers.configuration_utils.register_to_config`` and a ``tiny_config()`` classmethod. Saving
    writes ``config.json`` (with ``_class_name``) and ``diffusion_pytorch_model.safetensors`` through
    diffusers; loading is strict (see :meth:`from_pretrained`).

    Attributes:
        config_version: Version of this class's config schema. Bump it when an argument is renamed or its
            meaning changes, and teach :meth:`migrate_config` to upgrade older configs.
        registry_name: The name under which the class is registered (set by the registry).
    """

    config_name = "config.json"
    config_version: ClassVar[int] = 1
    registry_name: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        # register_to_config wraps __init__ with functools.wraps, so the signature is the user's.
        params = list(inspect.signature(init).parameters.values())[1:]
        positional = [
            p.name
            for p in params
            if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]
        if positional:
            raise TypeError(
                f"{cls.__qualname__}.__init__ must take keyword-only arguments (put '*' first); positional "
                f"arguments {positional} would be silently reset by from_config (diffusers #14460)"
            )

    # ------------------------------------------------------------------ configs
    def register_to_config(self, **kwargs: Any) -> None:
        """Record init arguments as the config, refusing values that are not JSON-serializable."""
        for key, value in kwargs.items():
            if key.startswith("_"):
                continue
            try:
                json.dumps(value)
            except TypeError:
                raise TypeError(
                    f"{type(self).__name__}: config argument {key!r} must be JSON-serializable (numbers, strings, "
                    f"lists, dicts), got {type(value).__name__}; choose sub-modules by registry name and kwargs"
                ) from None
        super().register_to_config(**kwargs)

    def to_json_string(self) -> str:
        """Serialize the config, adding ``_config_version`` and ``_vidtok_version``."""
        from vidtok import __version__

        data = json.loads(super().to_json_string())
        data["_config_version"] = type(self).config_version
        data["_vidtok_version"] = __version__
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def extract_init_dict(cls, config_dict: dict[str, Any], **kwargs: Any):
        """Upgrade an older config with :meth:`migrate_config`, then defer to diffusers."""
        config_dict = dict(config_dict)
        version = int(config_dict.get("_config_version", cls.config_version))
        if version > cls.config_version:
            raise ConfigVersionError(
                f"{cls.__name__} config has _config_version={version} but this vidtok supports up to "
                f"{cls.config_version} (written by vidtok {config_dict.get('_vidtok_version', '?')}); upgrade vidtok"
            )
        if version < cls.config_version:
            config_dict = cls.migrate_config(config_dict, version)
            config_dict["_config_version"] = cls.config_version
        return super().extract_init_dict(config_dict, **kwargs)

    @classmethod
    def migrate_config(cls, config: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Upgrade a config dict written with ``_config_version == from_version`` to the current schema.

        The default knows no older schema and raises; classes that bump :attr:`config_version` override it.

        Args:
            config: The stored config (a copy; modify and return it).
            from_version: Its ``_config_version``.

        Returns:
            The upgraded config.
        """
        raise ConfigVersionError(
            f"{cls.__name__} cannot migrate a config from version {from_version} to {cls.config_version}"
        )

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """Keyword arguments for a tiny instance (CPU unit tests in well under a second).

        Every registered component class overrides this.
        """
        raise NotImplementedError(f"{cls.__name__} does not define tiny_config()")

    # ------------------------------------------------------------------ saving and loading
    def save_pretrained(self, save_directory: Any, **kwargs: Any) -> None:
        """Save config and weights to ``save_directory`` without ever leaving a half-written checkpoint.

        Everything is first written to a temporary sibling folder. A new folder is then renamed into place
        in one step; into an existing folder the files are moved one by one with atomic renames, so a crash
        leaves each file either old or new, never truncated. Other files in the folder are kept. Keyword
        arguments are those of diffusers' ``ModelMixin.save_pretrained`` (``safe_serialization``,
        ``variant``, ``max_shard_size``, ``push_to_hub``, ...).
        """
        target = os.path.abspath(os.fspath(save_directory))
        if os.path.isfile(target):
            raise FileExistsError(f"save_pretrained: {target!r} is a file, expected a folder")
        parent = os.path.dirname(target)
        os.makedirs(parent, exist_ok=True)
        if kwargs.get("push_to_hub"):
            kwargs.setdefault("repo_id", os.path.basename(target))  # diffusers derives it from the folder name
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.tmp-", dir=parent)
        try:
            super().save_pretrained(tmp, **kwargs)
            if not os.path.exists(target):
                os.replace(tmp, target)
                return
            new_files = set(os.listdir(tmp))
            for name in os.listdir(target):  # stale weight shards of an earlier save would shadow the new ones
                if name.startswith("diffusion_pytorch_model") and name not in new_files:
                    os.remove(os.path.join(target, name))
            for name in new_files:
                destination = os.path.join(target, name)
                if os.path.isdir(destination) and not os.path.islink(destination):
                    shutil.rmtree(destination)
                os.replace(os.path.join(tmp, name), destination)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: Any,
        *,
        allow_missing_keys: bool = False,
        allow_unexpected_keys: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Load a component saved with ``save_pretrained`` from a local folder or a Hub id.

        Loading is strict: a checkpoint whose keys do not match the model raises instead of leaving
        weights randomly initialised. All other keyword arguments (``subfolder``, ``torch_dtype``,
        ``variant``, ``local_files_only``, ``output_loading_info``, ...) are those of diffusers'
        ``ModelMixin.from_pretrained``.

        Args:
            pretrained_model_name_or_path: A folder written by ``save_pretrained`` or a Hub repo id.
            allow_missing_keys: Accept parameters absent from the checkpoint (they keep their fresh
                initialisation); they are still logged.
            allow_unexpected_keys: Accept checkpoint entries the model has no parameter for.
            **kwargs: Forwarded to diffusers.

        Returns:
            The model (in eval mode), or ``(model, loading_info)`` if ``output_loading_info=True``.

        Raises:
            LoadingError: On missing, unexpected or shape-mismatched keys that were not allowed.
            FileNotFoundError: If a local folder is given that does not exist.
        """
        path = os.fspath(pretrained_model_name_or_path)
        if not os.path.exists(path) and not _looks_like_hub_id(path):
            raise FileNotFoundError(f"{cls.__name__}.from_pretrained: no such folder {path!r}")
        want_info = bool(kwargs.pop("output_loading_info", False))
        try:
            model, info = super().from_pretrained(pretrained_model_name_or_path, output_loading_info=True, **kwargs)
        except OSError as err:
            offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
            if os.path.exists(path) or not offline:
                raise
            raise OSError(
                f"{cls.__name__}.from_pretrained({path!r}): not a local folder, and HF_HUB_OFFLINE is set, so the "
                f"Hub is not asked (and the local Hub cache has no complete copy): {err}"
            ) from err
        problems = []
        if info.get("missing_keys") and not allow_missing_keys:
            problems.append(f"missing keys (would stay randomly initialised): {sorted(info['missing_keys'])}")
        if info.get("unexpected_keys") and not allow_unexpected_keys:
            problems.append(f"unexpected keys (no such parameter): {sorted(info['unexpected_keys'])}")
        if info.get("mismatched_keys"):
            problems.append(
                f"shape-mismatched keys: {[k[0] if isinstance(k, tuple) else k for k in info['mismatched_keys']]}"
            )
        if info.get("error_msgs"):
            problems.append(f"errors: {info['error_msgs']}")
        if allow_missing_keys and info.get("missing_keys"):
            logger.warning("%s: keeping fresh initialisation for missing keys %s", cls.__name__, info["missing_keys"])
        if allow_unexpected_keys and info.get("unexpected_keys"):
            logger.warning("%s: ignoring unexpected checkpoint keys %s", cls.__name__, info["unexpected_keys"])
        if problems:
            raise LoadingError(
                f"{cls.__name__}.from_pretrained({path!r}) does not match the checkpoint: "
                + "; ".join(problems)
                + ". Pass allow_missing_keys=True / allow_unexpected_keys=True to accept this deliberately."
            )
        return (model, info) if want_info else model
