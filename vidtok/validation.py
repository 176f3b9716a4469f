"""Argument checks shared by tokenizers, models and pipelines: every refusal names the argument at fault.

No NaN or inf passes for a number, no bool for a count, no float for an int, and no seed or numpy generator
for a ``torch.Generator``. A lower layer: imports nothing from vidtok (torch only when a check needs it).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["check_count", "check_generator", "check_number"]


def check_number(
    name: str, value: Any, *, low: float = 0.0, high: float = math.inf, optional: bool = False
) -> float | None:
    """``value`` as a finite float in ``[low, high]``: a Python or NumPy real, or a one-element real tensor.

    Raises:
        TypeError: Not a real number (bools, strings, complex numbers, ``None`` unless ``optional``, tensors of
            several elements), naming ``name``.
        ValueError: NaN, inf or out of range, naming ``name``.
    """
    if value is None and optional:
        return None
    if type(value).__module__ == "torch" and getattr(value, "numel", lambda: 0)() == 1:
        if not (value.is_complex() or value.is_floating_point() or value.dtype.is_signed):
            raise TypeError(f"{name} must be a real number, got a {value.dtype} tensor")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or not low <= value <= high:
        bounds = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        raise ValueError(f"{name} must be a finite number {bounds}, got {value!r}")
    return float(value)


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite Python or NumPy real, bools excluded (for checks that collect their own errors)."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)


def check_count(name: str, value: Any, *, low: int = 1, optional: bool = False) -> int | None:
    """``value`` as an int ``>= low`` (a bool or a float is refused, even ``2.0``).

    Raises:
        TypeError: Not an int, naming ``name``.
        ValueError: Below ``low``, naming ``name``.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def check_generator(generator: Any, name: str = "generator") -> None:
    """Refuse anything but ``None`` or a ``torch.Generator`` (TypeError naming ``name``)."""
    import torch

    if generator is not None and not isinstance(generator, torch.Generator):
        hint = " (seeds and numpy generators are not accepted: pass torch.Generator().manual_seed(seed))"
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}{hint}")
