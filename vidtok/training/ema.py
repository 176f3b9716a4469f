"""Exponential moving average of model weights, checkpointable and resumable bit for bit."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """Exponential moving average of named parameters.

    After every :meth:`update`, ``shadow ← d·shadow + (1 − d)·param``, where ``d = decay`` or, with
    ``warmup``, ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates (the ramp of diffusers' and
    timm's EMA helpers, so early averages are not dominated by the random initialisation).

    Args:
        named_parameters: ``(name, parameter)`` pairs to average (e.g. ``model.named_parameters()``);
            parameters that do not require gradients are skipped.
        decay: Target decay in ``[0, 1)``.
        warmup: Use the ``(1 + n) / (10 + n)`` ramp.

    Example:
        >>> layer = nn.Linear(2, 2)
        >>> ema = EMA(layer.named_parameters(), decay=0.5, warmup=False)
        >>> with torch.no_grad():
        ...     _ = layer.weight.add_(1.0)
        >>> ema.update()
        >>> ema.num_updates
        1
    """

    def __init__(
        self, named_parameters: Iterable[tuple[str, nn.Parameter]], *, decay: float = 0.9999, warmup: bool = True
    ):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self._params: dict[str, nn.Parameter] = {n: p for n, p in named_parameters if p.requires_grad}
        if not self._params:
            raise ValueError("EMA needs at least one trainable parameter")
        self.shadow: dict[str, torch.Tensor] = {n: p.detach().clone() for n, p in self._params.items()}
        self._backup: dict[str, torch.Tensor] | None = None

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses."""
        if not self.warmup:
            return self.decay
        n = self.num_updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self) -> None:
        """Move the shadow weights towards the current parameters."""
        weight = 1.0 - self.current_decay()
        names = list(self._params)
        shadow = [self.shadow[n] for n in names]
        params = [self._params[n].detach().to(self.shadow[n].dtype) for n in names]
        torch._foreach_lerp_(shadow, params, weight)
        self.num_updates += 1

    @torch.no_grad()
    def reset(self) -> None:
        """Copy the current parameters into the shadow (used before the averaging starts)."""
        for name, param in self._params.items():
            self.shadow[name].copy_(param.detach())

    @torch.no_grad()
    def copy_to(self) -> None:
        """Overwrite the live parameters with the averages (call :meth:`store` first to undo it later)."""
        for name, param in self._params.items():
            param.copy_(self.shadow[name])

    @torch.no_grad()
    def store(self) -> None:
        """Remember the live parameters (before :meth:`copy_to`)."""
        self._backup = {n: p.detach().clone() for n, p in self._params.items()}

    @torch.no_grad()
    def restore(self) -> None:
        """Put back the parameters remembered by :meth:`store`."""
        if self._backup is None:
            raise RuntimeError("EMA.restore() without a previous store()")
        for name, param in self._params.items():
            param.copy_(self._backup[name])
        self._backup = None

    def state_dict(self) -> dict[str, object]:
        """``{"decay", "warmup", "num_updates", "shadow": {name: tensor}}``."""
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates, "shadow": self.shadow}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore a :meth:`state_dict`; the shadow must name exactly the averaged parameters.

        Raises:
            KeyError: If parameter names are missing or unexpected.
            TypeError: If the state has no dict of tensors under ``"shadow"``.
            ValueError: If a shape differs.
        """
        shadow = state["shadow"]
        if not isinstance(shadow, dict):
            raise TypeError(f"EMA state 'shadow' must be a dict of tensors, got {type(shadow).__name__}")
        missing = sorted(set(self._params) - set(shadow))
        unexpected = sorted(set(shadow) - set(self._params))
        if missing or unexpected:
            raise KeyError(f"EMA state does not match the model: missing {missing}, unexpected {unexpected}")
        for name, value in shadow.items():
            if value.shape != self.shadow[name].shape:
                raise ValueError(f"EMA state {name!r}: shape {tuple(value.shape)} != {tuple(self.shadow[name].shape)}")
            self.shadow[name].copy_(value)
        self.decay = float(state["decay"])  # type: ignore[arg-type]
        self.warmup = bool(state["warmup"])
        self.num_updates = int(state["num_updates"])  # type: ignore[call-overload]
