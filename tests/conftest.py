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
