"""Name → class registries, one per kind of component.

A :class:`Registry` maps ``lower_snake_case`` names to classes (tokenizers, heads, backbones) or
factory functions (recipes). Registration is a decorator, so a plugin registers its own component by
importing a registry and decorating a class; nothing else is needed:

>>> from vidtok.registry import Registry
>>> class Head: ...
>>> HEADS = Registry("head", base=Head)
>>> @HEADS.register("tiny_mlp", aliases=("mlp",))
... class TinyMLPHead(Head):
...     pass
>>> HEADS.get("mlp") is TinyMLPHead
True
>>> HEADS.list("tiny_*")
['tiny_mlp']

Design choices (see the concepts page on registries):

* Duplicate names **raise**. A registry that only warns lets two packages silently overwrite each
  other's entries.
* An unknown name raises :class:`KeyError` that lists the closest registered names.
* ``list()`` takes :mod:`fnmatch` wildcards, like ``timm.list_models``.
* The five library registries (``TOKENIZERS``, ``HEADS``, ``BACKBONES``, ``MODELS``, ``RECIPES``) are *lazy*: each
  knows the package that defines its entries and imports it on first use, so ``import vidtok`` stays
  cheap while ``vidtok.HEADS.list()`` is always complete.

This module does not import torch.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import importlib
import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["REGISTRIES", "Registry", "RegistryError"]

T = TypeVar("T")

_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")


class RegistryError(ValueError):
    """Raised for an invalid registration: a bad name, a duplicate, or an object of the wrong kind."""


class Registry(Generic[T]):
    """A registry of named components of one kind.

    Args:
        kind: Human-readable kind used in error messages (``"head"``, ``"tokenizer"``, ...).
        base: If given, every registered class must subclass it (checked at registration). For
            registries of factory functions (recipes) leave it ``None`` and set ``callable_only``.
        package: Dotted module path that, once imported, has registered every built-in entry. It is
            imported lazily on the first lookup so that constructing the registry costs nothing.
        callable_only: Accept plain callables (functions) instead of classes.

    Example:
        >>> reg = Registry("widget")
        >>> @reg.register("blue_widget")
        ... class BlueWidget:
        ...     pass
        >>> reg.create("blue_widget").__class__.__name__
        'BlueWidget'
    """

    def __init__(
        self,
        kind: str,
        base: type | None = None,
        *,
        package: str | None = None,
        callable_only: bool = False,
    ) -> None:
        self.kind = kind
        self._base = base
        self._package = package
        self._callable_only = callable_only
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._loaded = package is None

    # ------------------------------------------------------------------ registration
    def register(self, name: str, *, aliases: tuple[str, ...] | list[str] = ()) -> Callable[[T], T]:
        """Decorator that registers a class (or factory function) under ``name``.

        Args:
            name: The canonical ``lower_snake_case`` name.
            aliases: Extra names that resolve to the same entry (not listed by :meth:`list`).

        Returns:
            The decorator; it returns the object unchanged after setting ``obj.registry_name``.

        Raises:
            RegistryError: If a name is not ``lower_snake_case``, is already taken (as a name or an
                alias), or if the object is not of the registry's base class.
        """
        keys = (name, *aliases)
        for key in keys:
            if not isinstance(key, str) or not _NAME_RE.match(key):
                raise RegistryError(
                    f"invalid {self.kind} name {key!r}: names are lower_snake_case (letters, digits, single '_')"
                )
        if len(set(keys)) != len(keys):
            raise RegistryError(f"{self.kind} {name!r}: aliases repeat a name: {list(keys)}")

        def decorator(obj: T) -> T:
            self._check_kind(name, obj)
            for key in keys:
                if key in self._entries or key in self._aliases:
                    owner = self._entries.get(key) or self._entries[self._aliases[key]]
                    raise RegistryError(
                        f"{self.kind} {key!r} is already registered to {_qualname(owner)}; "
                        f"cannot register {_qualname(obj)} under the same name"
                    )
            self._entries[name] = obj
            for alias in aliases:
                self._aliases[alias] = name
            with contextlib.suppress(AttributeError, TypeError):  # some callables refuse new attributes
                obj.registry_name = name  # type: ignore[attr-defined]
            return obj

        return decorator

    def unregister(self, name: str) -> T:
        """Remove an entry and its aliases (mainly for tests and interactive sessions).

        Args:
            name: Canonical name of the entry.

        Returns:
            The removed object.
        """
        self._ensure_loaded()
        canonical = self._resolve(name)
        obj = self._entries.pop(canonical)
        self._aliases = {a: n for a, n in self._aliases.items() if n != canonical}
        return obj

    # ------------------------------------------------------------------ lookup
    def get(self, name: str) -> T:
        """Return the class (or function) registered under ``name`` or one of its aliases.

        Raises:
            KeyError: If ``name`` is unknown; the message lists the closest registered names.
        """
        self._ensure_loaded()
        return self._entries[self._resolve(name)]

    def create(self, name: str, **kwargs: Any) -> Any:
        """Instantiate (or call) the entry ``name`` with keyword arguments.

        ``None`` values are dropped before the call (as ``timm.create_model`` does), so callers can pass
        optional overrides that only some entries accept.
        """
        entry = self.get(name)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        return entry(**kwargs)  # type: ignore[operator]

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted canonical names matching an :mod:`fnmatch` wildcard (aliases are not listed).

        Args:
            pattern: A wildcard such as ``"dicode_*"``; ``"*"`` lists everything.
        """
        self._ensure_loaded()
        return sorted(fnmatch.filter(self._entries, pattern))

    def aliases(self, name: str | None = None) -> dict[str, str]:
        """Alias → canonical name, optionally only the aliases of ``name``."""
        self._ensure_loaded()
        if name is None:
            return dict(self._aliases)
        canonical = self._resolve(name)
        return {a: n for a, n in self._aliases.items() if n == canonical}

    def canonical_name(self, name: str) -> str:
        """Resolve an alias to its canonical name (a canonical name maps to itself)."""
        self._ensure_loaded()
        return self._resolve(name)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return isinstance(name, str) and (name in self._entries or name in self._aliases)

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._entries)

    def __repr__(self) -> str:
        names = ", ".join(self.list()) if self._loaded else "<not loaded>"
        return f"Registry({self.kind!r}: [{names}])"

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs in name order."""
        return [(n, self._entries[n]) for n in self.list()]

    # ------------------------------------------------------------------ internals
    def _resolve(self, name: str) -> str:
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a str, got {type(name).__name__}")
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        choices = list(self._entries) + list(self._aliases)
        close = difflib.get_close_matches(name, choices, n=5, cutoff=0.5)
        close += [c for c in choices if name in c and c not in close][: max(0, 5 - len(close))]
        hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(sorted(self._entries)) or "(none registered)"
        raise KeyError(f"unknown {self.kind} {name!r}.{hint} Registered {self.kind}s: {known}")

    def _check_kind(self, name: str, obj: Any) -> None:
        if self._callable_only:
            if not callable(obj):
                raise RegistryError(f"{self.kind} {name!r} must be callable, got {type(obj).__name__}")
            return
        if not inspect.isclass(obj):
            raise RegistryError(f"{self.kind} {name!r} must be a class, got {type(obj).__name__}")
        if self._base is not None and not issubclass(obj, self._base):
            raise RegistryError(f"{self.kind} {name!r}: {_qualname(obj)} must subclass {_qualname(self._base)}")

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            # Set first: the package's own @register calls re-enter this registry while importing.
            self._loaded = True
            try:
                importlib.import_module(self._package)  # type: ignore[arg-type]
            except BaseException:
                self._loaded = False
                raise


class _RegistryMap(Mapping):
    """Kind (``"tokenizers"``, ``"heads"``, …) → the library's registry, each imported on first access."""

    _WHERE = {
        "tokenizers": ("vidtok.tokenizers.base", "TOKENIZERS"),
        "heads": ("vidtok.heads.base", "HEADS"),
        "backbones": ("vidtok.backbones.base", "BACKBONES"),
        "models": ("vidtok.models.base", "MODELS"),
        "recipes": ("vidtok.recipes.base", "RECIPES"),
    }

    def __getitem__(self, kind: str) -> Registry:
        if kind not in self._WHERE:
            raise KeyError(f"unknown registry kind {kind!r}; known: {', '.join(self._WHERE)}")
        module, attr = self._WHERE[kind]
        return getattr(importlib.import_module(module), attr)

    def __iter__(self) -> Iterator[str]:
        return iter(self._WHERE)

    def __len__(self) -> int:
        return len(self._WHERE)

    def __repr__(self) -> str:
        return f"REGISTRIES({', '.join(self._WHERE)})"


REGISTRIES: Mapping[str, Registry] = _RegistryMap()
"""The one kind → registry map (``REGISTRIES["heads"] is vidtok.HEADS``) the CLI, the trainer and the tests share."""


def _qualname(obj: Any) -> str:
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
    return f"{module}.{name}" if module else name
