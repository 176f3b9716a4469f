"""Heads swap by registry name or ``from_config``, and the thesis behind DiCoDe Table 4: learn the distribution.

The bimodal experiment is the one on ``docs/concepts/ablations.md``: a fixed hidden state whose next token
is ``+2`` or ``-2`` in every channel with equal probability. L2 regresses to the middle, a Gaussian covers
both modes with one wide bump, a mixture puts half its samples in each mode.
"""

from __future__ import annotations

import functools

import pytest
import torch

import vidtok
from vidtok.heads import GaussianHead, GMMHead, L2Head

MINE = ["l2", "gaussian", "gmm"]
COMMON = {"hidden_size": 16, "token_dim": 4}


@pytest.mark.parametrize("name", MINE)
def test_every_continuous_head_builds_from_the_same_common_kwargs(name):
    head = vidtok.HEADS.create(name, **COMMON)
    hidden, target = torch.randn(2, 3, 16), torch.randn(2, 3, 4)
    assert head.loss(hidden, target).shape == (2, 3)
    assert head.nll(hidden, target).shape == (2, 3)
    assert head.sample(hidden, generator=torch.Generator().manual_seed(0)).shape == (2, 3, 4)


def test_categorical_takes_the_common_kwargs_plus_a_vocabulary():
    head = vidtok.HEADS.create("categorical", **COMMON, vocab_size=64)
    codes = head.sample(torch.randn(2, 3, 16), generator=torch.Generator().manual_seed(0))
    assert codes.shape == (2, 3) and head.loss(torch.randn(2, 3, 16), codes).shape == (2, 3)


def test_from_config_swaps_keep_the_shared_settings():
    l2 = L2Head(hidden_size=16, token_dim=4, mlp_width=32, mlp_layers=3)
    gmm = GMMHead.from_config(l2.config, num_components=8)
    assert isinstance(gmm, GMMHead)
    assert (gmm.config["hidden_size"], gmm.config["token_dim"], gmm.config["mlp_width"]) == (16, 4, 32)
    assert gmm.config["mlp_layers"] == 3 and gmm.config["num_components"] == 8
    assert gmm.proj.out_features == 2 * 8 * 4 + 8

    smaller = GMMHead.from_config(gmm.config, num_components=2)
    assert smaller.config["num_components"] == 2 and smaller.config["mlp_width"] == 32
    gaussian = GaussianHead.from_config(gmm.config)
    assert gaussian.config["token_dim"] == 4 and gaussian.proj.out_features == 8
    back = L2Head.from_config(gaussian.config)
    assert back.config["hidden_size"] == 16 and back.config["mlp_layers"] == 3


# ------------------------------------------------------------------------------------------- bimodal thesis
@functools.cache
def fit_bimodal(name: str, steps: int = 300, seed: int = 0, **kwargs) -> dict[str, float]:
    """Fit a head to a two-mode next token (±2 in both channels, noise 0.3) from one fixed hidden state.

    Returns statistics of 20k samples (temperature 1) and the held-out NLL in nats per token.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: extra threads only add overhead and contention
    try:
        return _fit_bimodal(name, steps, seed, **kwargs)
    finally:
        torch.set_num_threads(threads)


def _fit_bimodal(name: str, steps: int, seed: int, **kwargs) -> dict[str, float]:
    torch.manual_seed(seed)
    head = vidtok.HEADS.create(name, hidden_size=16, token_dim=2, **kwargs)
    gen = torch.Generator().manual_seed(seed + 1)
    hidden = torch.randn(1, 16, generator=gen)

    def draw(n):
        sign = torch.randint(0, 2, (n, 1), generator=gen) * 2 - 1
        return 2.0 * sign + 0.3 * torch.randn(n, 2, generator=gen)

    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = head.loss(hidden.expand(256, 16), draw(256)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        samples = head.sample(hidden.expand(20_000, 16), generator=torch.Generator().manual_seed(seed + 2))
        held_out = draw(20_000)
        nll = float(head.nll(hidden.expand(20_000, 16), held_out).mean())
    near = lambda mode: ((samples - mode).norm(dim=-1) < 1.0).float().mean().item()  # noqa: E731
    return {
        "mean": samples.mean(0).abs().max().item(),
        "std": samples.std(0).min().item(),
        "plus": near(2.0),
        "minus": near(-2.0),
        "nll": nll,
    }


def test_l2_collapses_to_the_middle():
    stats = fit_bimodal("l2")
    assert stats["mean"] < 0.3 and stats["std"] == 0.0  # a point between the modes, never a real token
    assert stats["plus"] == 0.0 and stats["minus"] == 0.0


def test_gaussian_covers_both_modes_with_one_wide_mode():
    stats = fit_bimodal("gaussian")
    assert stats["mean"] < 0.3 and stats["std"] > 1.5  # centred between the modes, std ≈ the mode distance
    assert stats["plus"] + stats["minus"] < 0.4  # most samples land in the empty middle or beyond


@pytest.mark.parametrize("num_components", [2, 16])
def test_gmm_puts_half_of_its_samples_in_each_mode(num_components):
    stats = fit_bimodal("gmm", num_components=num_components)
    assert 0.35 < stats["plus"] < 0.65 and 0.35 < stats["minus"] < 0.65
    assert stats["plus"] + stats["minus"] > 0.9
    assert stats["nll"] < fit_bimodal("gaussian")["nll"] - 1.0  # a much better density, not just better samples
