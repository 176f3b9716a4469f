"""Eval cards: every reported number with the protocol that produced it, and comparisons that check protocols.

Video metrics do not compare across protocols. FVD moves with the number of videos (Fréchet distances are
biased upward by about d/N: two sets of 64 videos drawn from one distribution score ≈ 53 in I3D's 400-d space,
2,048 score ≈ 2.3), with the resize mode (squashed to 224² as in the TF original and StyleGAN-V, or shorter
side + center crop as in VideoGPT), with the covariance normalization (÷N or ÷(N − 1)) and above all with the
feature network (the same videos score 1064.6 with VideoMAE features and 3384.0 with I3D, ``cd-fvd`` #2); LPIPS
differs between AlexNet and VGG; UCF-101 statistics are sometimes taken from train+test. An :class:`EvalCard`
records all of this next to the value, and :func:`compare_cards` refuses to compare two cards whose protocols
differ unless asked.

Example:
    >>> from vidtok.metrics.eval_card import EvalCard, compare_cards
    >>> a = EvalCard(metric="fvd", value=310.0, protocol={"feature_network": "i3d", "num_videos": 2048})
    >>> b = EvalCard(metric="fvd", value=295.0, protocol={"feature_network": "i3d", "num_videos": 2048})
    >>> compare_cards(a, b)["difference"]
    -15.0
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "MINIMUM_SAMPLES",
    "EvalCard",
    "ProtocolMismatchError",
    "SmallSampleWarning",
    "check_sample_count",
    "compare_cards",
    "file_digest",
]

#: The sample counts below which a metric's value is mostly noise or bias (a warning, not an error):
#: FVD/FD need at least 256 videos per set (2,048 is the convention; "FVD-2048"); CLIPSIM is a plain mean.
MINIMUM_SAMPLES: dict[str, int] = {"fvd": 256, "shapes_fd": 256, "clipsim": 100}


class SmallSampleWarning(UserWarning):
    """A metric computed on fewer samples than its protocol needs to be comparable (see :data:`MINIMUM_SAMPLES`)."""


class ProtocolMismatchError(ValueError):
    """Two eval cards were compared whose protocols differ (the message lists every differing field)."""


def check_sample_count(metric: str, count: int, minimum: int | None = None) -> bool:
    """Warn (:class:`SmallSampleWarning`) when ``count`` samples are fewer than the metric needs.

    Args:
        metric: Metric name (a key of :data:`MINIMUM_SAMPLES`).
        count: Samples in the smaller set.
        minimum: Override of the minimum.

    Returns:
        Whether the count is enough.
    """
    need = minimum if minimum is not None else MINIMUM_SAMPLES.get(metric)
    if need is None or count >= need:
        return True
    warnings.warn(
        f"{metric} on {count} samples: below the {need} its value needs to be comparable (Fréchet distances are "
        "biased upward by about dim/N; report the sample count with the number, and use 2,048 for FVD)",
        SmallSampleWarning,
        stacklevel=2,
    )
    return False


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a weights file (hex), to record which feature network weights produced a number."""
    import hashlib

    h = hashlib.sha256()
    with open(os.fspath(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _version() -> str:
    from vidtok import __version__

    return __version__


@dataclass
class EvalCard:
    """One metric's value and the protocol that produced it (written as JSON next to every reported number).

    Args:
        metric: ``"fvd"``, ``"clipsim"``, ``"psnr"``, ``"shapes"``, ...
        value: The number (or a dict of numbers for multi-part metrics such as the Shapes benchmark).
        protocol: Everything two values must share to be compared: feature network, weights digest, numbers
            of real and generated videos, frames and frame stride, resolution and resize mode, value range,
            covariance normalization, real-set source and split, caption sampling, decoder settings, ...
        model: Where the evaluated model came from (folder, hub id, ``vidtok:default``).
        seed: Seed of the generation and of any sampling of the data.
        details: Anything else worth keeping (per-attribute numbers, timings); not part of the protocol.
        vidtok_version: Filled in automatically.
        created: ISO time, filled in automatically.
    """

    metric: str
    value: Any
    protocol: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    seed: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    vidtok_version: str = field(default_factory=_version)
    created: str = field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    )

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"metric must be a non-empty string, got {self.metric!r}")
        if not isinstance(self.protocol, Mapping):
            raise TypeError(f"protocol must be a dict, got {type(self.protocol).__name__}")
        self.protocol = _jsonable(dict(self.protocol), "protocol")
        self.details = _jsonable(dict(self.details), "details")
        self.value = _jsonable(self.value, "value")

    def to_dict(self) -> dict[str, Any]:
        """The card as a JSON-ready dict."""
        return asdict(self)

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the card as JSON, atomically (a temporary file moved into place). Returns the path."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".eval-card-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f, indent=2, sort_keys=True)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EvalCard:
        """Read a card written by :meth:`save`.

        Raises:
            FileNotFoundError: The file does not exist.
            ValueError: It is not an eval card (naming the file and the missing fields).
        """
        path = os.fspath(path)
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: not JSON ({err})") from None
        if not isinstance(data, dict) or not {"metric", "value", "protocol"} <= set(data):
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{path}: not an eval card (needs metric, value, protocol; has {got})")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def _jsonable(value: Any, name: str) -> Any:
    """``value`` with numpy scalars/arrays and tuples turned into JSON types; raises naming what is not."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        np = None
    if np is not None and isinstance(value, np.generic):
        return value.item()
    if np is not None and isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"{name} must be JSON data (numbers, strings, lists, dicts), got {type(value).__name__}")


def compare_cards(a: EvalCard, b: EvalCard, *, allow_protocol_mismatch: bool = False) -> dict[str, Any]:
    """Compare two cards of the same metric: ``b.value - a.value``, refusing different protocols.

    Args:
        a: The reference card.
        b: The card compared with it.
        allow_protocol_mismatch: Return the comparison even when protocols differ (the differences are listed
            in the result, so they travel with the number).

    Returns:
        ``{"metric", "a", "b", "difference", "protocol_differences"}``; ``difference`` is ``None`` for
        non-numeric values.

    Raises:
        ProtocolMismatchError: The metrics or protocols differ and ``allow_protocol_mismatch`` is false.
    """
    differences = {
        key: (a.protocol.get(key, "<absent>"), b.protocol.get(key, "<absent>"))
        for key in sorted(set(a.protocol) | set(b.protocol))
        if a.protocol.get(key, "<absent>") != b.protocol.get(key, "<absent>")
    }
    if a.metric != b.metric:
        raise ProtocolMismatchError(f"cards of different metrics: {a.metric!r} and {b.metric!r}")
    if differences and not allow_protocol_mismatch:
        listed = "; ".join(f"{k}: {x!r} vs {y!r}" for k, (x, y) in differences.items())
        raise ProtocolMismatchError(
            f"{a.metric} values under different protocols do not compare ({listed}); pass "
            "allow_protocol_mismatch=True to compare anyway, with the differences recorded"
        )
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a.value, b.value))
    return {
        "metric": a.metric,
        "a": a.value,
        "b": b.value,
        "difference": (b.value - a.value) if numeric else None,
        "protocol_differences": {k: list(v) for k, v in differences.items()},
    }
