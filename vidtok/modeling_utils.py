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
* **Verified, atomic files.** ``save_pretrained`` writes into a temporary sibling folder and moves the
  files into place, then records the SHA-256 of every weight file in :data:`WEIGHT_DIGESTS_NAME`;
  ``from_pretrained`` checks ``config.json`` (a JSON object naming this class), the safetensors headers
  and those digests before loading, so a truncated, corrupt or foreign file is a :class:`LoadingError`
  naming it rather than a deep error or silently wrong weights.
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

import hashlib
import inspect
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from diffusers import ConfigMixin, ModelMixin

__all__ = [
    "WEIGHT_DIGESTS_NAME",
    "Component",
    "ConfigVersionError",
    "LoadingError",
    "check_file_digests",
    "check_safetensors_files",
    "read_json_object",
    "save_atomically",
    "verify_weight_digests",
    "verify_weights_enabled",
    "weight_file_digests",
    "write_weight_digests",
]

logger = logging.getLogger(__name__)


def _looks_like_hub_id(path: str) -> bool:
    """``name`` or ``org/name`` (what the Hub accepts), as opposed to a filesystem path."""
    return re.fullmatch(r"(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*", path) is not None


class LoadingError(RuntimeError):
    """A checkpoint cannot be loaded as it is: a missing, unexpected or mis-shaped key, or a broken file.

    The message names the offending keys or file.
    """


class ConfigVersionError(ValueError):
    """A config was written by a newer version of a component than this installation knows."""


# ---------------------------------------------------------------------------------------------- file checks
#: The sidecar file ``save_pretrained`` writes next to the weights: ``{"algorithm": "sha256", "files": {name:
#: {"sha256": hex, "size": bytes}}}``. A separate file rather than a key in ``config.json``: the backbone's
#: ``config.json`` is transformers' own (an unknown key would become a config attribute and be re-saved, stale,
#: by ``model.save_pretrained``), and it is written last, after the weights it describes.
WEIGHT_DIGESTS_NAME = "weights.sha256.json"

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json")
_FALSE = ("0", "false", "no", "off")


def verify_weights_enabled(verify: bool | None = None) -> bool:
    """Whether to check weight digests: ``verify`` if given, else the ``VIDTOK_VERIFY_WEIGHTS`` env var (default on)."""
    if verify is not None:
        return bool(verify)
    return os.environ.get("VIDTOK_VERIFY_WEIGHTS", "1").strip().lower() not in _FALSE


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_weight_digests(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Record the SHA-256 and size of every weight file in ``folder`` in :data:`WEIGHT_DIGESTS_NAME`.

    Returns:
        File name -> ``{"sha256": ..., "size": ...}`` (empty, and no file written, if there are no weights).
    """
    folder = os.fspath(folder)
    files = weight_file_digests(folder)
    if files:
        with open(os.path.join(folder, WEIGHT_DIGESTS_NAME), "w") as f:
            json.dump({"algorithm": "sha256", "files": files}, f, indent=2, sort_keys=True)
            f.write("\n")
    return files


def read_json_object(path: str | os.PathLike, what: str = "file") -> dict[str, Any]:
    """Read a JSON file that must hold an object.

    Raises:
        LoadingError: The file is missing, unreadable, not JSON, or not a JSON object (the message names it).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise LoadingError(f"{path}: {what} is missing")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LoadingError(f"{path}: {what} is not valid JSON ({err})") from err
    if not isinstance(data, dict):
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(data), "number")
        raise LoadingError(f"{path}: {what} must be a JSON object, got a JSON {kind}")
    return data


def verify_weight_digests(folder: str | os.PathLike, verify: bool | None = None) -> bool:
    """Check the weight files of ``folder`` against the digests recorded by ``save_pretrained``.

    Folders without :data:`WEIGHT_DIGESTS_NAME` (older saves, shipped assets, third-party checkpoints) pass
    unchecked.

    Args:
        folder: A component folder.
        verify: Force the check on or off; ``None`` reads ``VIDTOK_VERIFY_WEIGHTS`` (``0`` turns it off).

    Returns:
        Whether digests were found and checked.

    Raises:
        LoadingError: A listed file is missing, has another size or another SHA-256 (the message names it).
    """
    folder = os.fspath(folder)
    sidecar = os.path.join(folder, WEIGHT_DIGESTS_NAME)
    if not verify_weights_enabled(verify) or not os.path.isfile(sidecar):
        return False
    hint = (
        f"(if the file was replaced on purpose, delete {WEIGHT_DIGESTS_NAME}; VIDTOK_VERIFY_WEIGHTS=0 or "
        "verify=False skips the check)"
    )
    check_file_digests(folder, read_json_object(sidecar, "weight digest file").get("files"), sidecar, hint)
    return True


def check_file_digests(folder: str | os.PathLike, files: Any, recorded_in: str, hint: str = "") -> None:
    """Check files of ``folder`` against ``{name: {"sha256": ..., "size": ...}}`` recorded in ``recorded_in``.

    Raises:
        LoadingError: ``files`` is not such a mapping, or a listed file is missing, has another size or another
            SHA-256 (the message names the file and where its digest was recorded).
    """
    folder = os.fspath(folder)
    if not isinstance(files, dict):
        raise LoadingError(f"{recorded_in}: has no 'files' object of weight digests")
    hint = f" {hint}" if hint else ""
    for name, entry in sorted(files.items()):
        path = os.path.join(folder, name)
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise LoadingError(f"{recorded_in}: malformed entry for {name!r}")
        if not os.path.isfile(path):
            raise LoadingError(f"{path}: weight file is missing (listed in {recorded_in})")
        size = os.path.getsize(path)  # a truncated file is caught without hashing it
        if entry.get("size") is not None and size != entry["size"]:
            raise LoadingError(
                f"{path}: weight file is {size} bytes, {entry['size']} were recorded in {recorded_in} "
                f"(truncated or replaced){hint}"
            )
        if _sha256(path) != entry["sha256"]:
            raise LoadingError(f"{path}: weight file is corrupt or replaced (SHA-256 differs from {recorded_in}){hint}")


def weight_file_digests(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """SHA-256 and size of every weight file in ``folder``, as :func:`write_weight_digests` records them."""
    folder = os.fspath(folder)
    return {
        name: {"sha256": _sha256(os.path.join(folder, name)), "size": os.path.getsize(os.path.join(folder, name))}
        for name in sorted(os.listdir(folder))
        if name.endswith(_WEIGHT_SUFFIXES) and os.path.isfile(os.path.join(folder, name))
    }


def check_safetensors_files(paths: Iterable[str | os.PathLike]) -> None:
    """Open each safetensors file's header: a truncated file or a damaged header is caught before loading.

    Only the header is read (the tensors are not), so this costs well under a millisecond per file.

    Raises:
        LoadingError: A file that safetensors cannot open (the message names it).
    """
    from safetensors import safe_open

    for path in paths:
        path = os.fspath(path)
        try:
            with safe_open(path, framework="pt"):
                pass
        except Exception as err:  # noqa: BLE001  (safetensors raises its own error type or OSError)
            raise LoadingError(f"{path}: not a readable safetensors file, truncated or damaged ({err})") from err


def save_atomically(
    save_directory: Any, write: Callable[[str], None], *, stale: Callable[[str], bool] = lambda name: False
) -> str:
    """Run ``write(tmp)`` into a temporary sibling folder, record weight digests, then move the result into place.

    A new folder is renamed into place in one step; into an existing folder the files are moved one by one
    with atomic renames, so a crash leaves each file either old or new, never truncated, and a failing
    ``write`` leaves the folder untouched. Other files in the folder are kept, except those ``stale(name)``
    selects that the new save did not write (weight shards of an earlier save that would shadow the new ones).

    Returns:
        The absolute target folder.
    """
    target = os.path.abspath(os.fspath(save_directory))
    if os.path.isfile(target):
        raise FileExistsError(f"save_pretrained: {target!r} is a file, expected a folder")
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.tmp-", dir=parent)
    try:
        write(tmp)
        write_weight_digests(tmp)
        if not os.path.exists(target):
            os.replace(tmp, target)
            return target
        new_files = set(os.listdir(tmp))
        for name in os.listdir(target):
            if (stale(name) or name == WEIGHT_DIGESTS_NAME) and name not in new_files:
                os.remove(os.path.join(target, name))
        # Weights first, the digests last: a crash in between leaves digests that flag the mix, not hide it.
        for name in sorted(new_files, key=lambda n: n == WEIGHT_DIGESTS_NAME):
            destination = os.path.join(target, name)
            if os.path.isdir(destination) and not os.path.islink(destination):
                shutil.rmtree(destination)
            os.replace(os.path.join(tmp, name), destination)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _related_class_names(cls: type) -> set[str]:
    """Names a config's ``_class_name`` may carry to load as ``cls``.

    Its own, its bases' and its subclasses' names, and the earlier names of all of them
    (:attr:`Component.former_class_names`).
    """
    related = [c for c in cls.__mro__ if c not in (Component, ModelMixin, ConfigMixin, object)]
    todo = [cls]
    while todo:
        for sub in todo.pop().__subclasses__():
            related.append(sub)
            todo.append(sub)
    return {c.__name__ for c in related} | {n for c in related for n in getattr(c, "former_class_names", ())}


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
        former_class_names: Names the class was saved under before a rename (their folders load as it).
    """

    config_name = "config.json"
    config_version: ClassVar[int] = 1
    registry_name: ClassVar[str | None] = None
    #: Names the class was saved under before a rename; their folders (``_class_name``) load as this class.
    former_class_names: ClassVar[tuple[str, ...]] = ()

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
        """Record init arguments as the config, refusing missing required ones and values that are not JSON.

        diffusers' ``@register_to_config`` fills an omitted keyword-only argument with ``inspect.Parameter.empty``
        and records the config before ``__init__`` runs: without the first check the error would complain that
        the class ``empty`` is not JSON-serializable instead of naming the missing argument.
        """
        missing = [key for key, value in kwargs.items() if value is inspect.Parameter.empty]
        if missing:
            names = ", ".join(repr(key) for key in missing)
            raise TypeError(f"{type(self).__name__}: missing required argument(s) {names}")
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

        Everything is first written to a temporary sibling folder (:func:`save_atomically`): a new folder is
        then renamed into place in one step; into an existing folder the files are moved one by one with
        atomic renames, so a crash leaves each file either old or new, never truncated. Other files in the
        folder are kept. The SHA-256 of each weight file is recorded in :data:`WEIGHT_DIGESTS_NAME` and
        checked by :meth:`from_pretrained`. Keyword arguments are those of diffusers'
        ``ModelMixin.save_pretrained`` (``safe_serialization``, ``variant``, ``max_shard_size``,
        ``push_to_hub``, ...; a push uploads the files diffusers writes, without the digest file).
        """
        target = os.path.abspath(os.fspath(save_directory))
        if kwargs.get("push_to_hub"):
            kwargs.setdefault("repo_id", os.path.basename(target))  # diffusers derives it from the folder name
        save_atomically(
            target,
            lambda tmp: super(Component, self).save_pretrained(tmp, **kwargs),
            stale=lambda name: name.startswith("diffusion_pytorch_model"),
        )

    @classmethod
    def check_folder(cls, folder: str | os.PathLike, *, verify: bool | None = None) -> dict[str, Any]:
        """Check a local component folder before its weights are read (``from_pretrained`` calls this).

        ``config.json`` must be a JSON object whose ``_class_name`` is this class, a base or subclass of it,
        or an alias of one (``VideoLM`` for ``DiCoDeLM``); there must be a weights file, every safetensors
        header must be readable, and the weights must match the digests recorded at saving time.

        Args:
            folder: The component folder (with ``subfolder`` already joined).
            verify: Check the weight digests (``None``: unless ``VIDTOK_VERIFY_WEIGHTS=0``).

        Returns:
            The config.

        Raises:
            LoadingError: Naming the file (or the two classes) at fault.
        """
        folder = os.fspath(folder)
        config = read_json_object(os.path.join(folder, cls.config_name), "component config")
        stored = config.get("_class_name")
        if stored is not None and stored != cls.__name__:
            if not isinstance(stored, str):
                raise LoadingError(f"{os.path.join(folder, cls.config_name)}: _class_name must be a string")
            if stored not in _related_class_names(cls):
                raise LoadingError(
                    f"{folder} holds a {stored} (_class_name in {cls.config_name}), which cannot be loaded as "
                    f"{cls.__name__}; load it with {stored}.from_pretrained (or import the module defining {stored})"
                )
        weights = sorted(
            name
            for name in os.listdir(folder)
            if name.startswith("diffusion_pytorch_model") and name.endswith(_WEIGHT_SUFFIXES)
        )
        verify_weight_digests(folder, verify)  # first: it names a listed file that is missing
        if not weights:
            raise LoadingError(f"{folder}: no weights file (diffusion_pytorch_model.safetensors) in the folder")
        check_safetensors_files(os.path.join(folder, name) for name in weights if name.endswith(".safetensors"))
        return config

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: Any,
        *,
        allow_missing_keys: bool = False,
        allow_unexpected_keys: bool = False,
        verify: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Load a component saved with ``save_pretrained`` from a local folder or a Hub id.

        Loading is strict: a checkpoint whose keys do not match the model raises instead of leaving
        weights randomly initialised, and a local folder is checked first (:meth:`check_folder`: its
        ``config.json``, class, safetensors headers and weight digests). All other keyword arguments
        (``subfolder``, ``torch_dtype``, ``variant``, ``local_files_only``, ``output_loading_info``, ...) are
        those of diffusers' ``ModelMixin.from_pretrained``.

        Args:
            pretrained_model_name_or_path: A folder written by ``save_pretrained``, a Hub repo id, or
                ``"vidtok:<name>"`` for weights shipped inside the package (:mod:`vidtok.assets`).
            allow_missing_keys: Accept parameters absent from the checkpoint (they keep their fresh
                initialisation); they are still logged.
            allow_unexpected_keys: Accept checkpoint entries the model has no parameter for.
            verify: Check the weight files against the SHA-256 digests recorded by ``save_pretrained``
                (``None``: yes, unless the environment sets ``VIDTOK_VERIFY_WEIGHTS=0``). Folders without
                digests load unchecked.
            **kwargs: Forwarded to diffusers.

        Returns:
            The model (in eval mode), or ``(model, loading_info)`` if ``output_loading_info=True``.

        Raises:
            LoadingError: On missing, unexpected or shape-mismatched keys that were not allowed, or a broken
                ``config.json``, class name, weights file or digest (the message names the file or keys).
            FileNotFoundError: If a local folder is given that does not exist, or shipped weights are not installed.
            KeyError: An unknown ``vidtok:`` name (the message lists the shipped ones).
        """
        from vidtok.assets import resolve_weights

        pretrained_model_name_or_path = resolve_weights(pretrained_model_name_or_path)
        path = os.fspath(pretrained_model_name_or_path)
        if not os.path.exists(path) and not _looks_like_hub_id(path):
            raise FileNotFoundError(f"{cls.__name__}.from_pretrained: no such folder {path!r}")
        if os.path.isdir(path):
            subfolder = kwargs.get("subfolder")
            cls.check_folder(os.path.join(path, subfolder) if subfolder else path, verify=verify)
        want_info = bool(kwargs.pop("output_loading_info", False))
        if allow_missing_keys:
            # diffusers' low-memory path builds the model on the meta device and leaves keys the checkpoint lacks
            # there; the promised fresh initialisation needs a model built normally.
            kwargs.setdefault("low_cpu_mem_usage", False)
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
        except ValueError as err:
            # diffusers refuses a mis-shaped tensor with a ValueError naming it; report it like the other keys.
            found = re.search(r"because (\S+) expected shape (.+?\)), but got (.+?\))", str(err))
            if found is None:
                raise
            raise LoadingError(
                f"{cls.__name__}.from_pretrained({path!r}) does not match the checkpoint: shape-mismatched keys: "
                f"[{found[1]!r}] (checkpoint {found[3]}, model {found[2]})"
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
