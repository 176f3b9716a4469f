"""Shared fixtures: offline Hugging Face hub, deterministic seeds, markers."""

from __future__ import annotations

import os
import random

# Tests never touch the network: set before anything imports huggingface_hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def seed() -> int:
    """Seed Python, NumPy and (if imported) torch; returns the seed."""
    value = 1234
    random.seed(value)
    np.random.seed(value)
    try:
        import torch

        torch.manual_seed(value)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return value


@pytest.fixture
def rng(seed: int) -> np.random.Generator:
    """A seeded NumPy generator."""
    return np.random.default_rng(seed)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``fullsize`` tests (a released model at full size on CPU: minutes and tens of GB of disk) run only when
    selected by name (``-m fullsize``); every other run skips them, saying why."""
    if "fullsize" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="full-size release test: run with -m fullsize (minutes, ~25 GB of disk)")
    for item in items:
        if "fullsize" in item.keywords:
            item.add_marker(skip)
