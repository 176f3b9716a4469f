"""Generic contract checks that every registered component must pass.

Later issues get these for free by registering components: ``test_contracts.py`` parametrizes over every
entry of every registry. Kind-specific behaviour (what a forward pass is) comes from ``PROBES``: a function
per registry kind that runs a tiny forward pass and returns a scalar to differentiate.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path

import torch

from vidtok.modeling_utils import Component

#: kind -> probe(component, generator) -> scalar tensor that depends on every trainable parameter.
PROBES: dict[str, Callable[[torch.nn.Module, torch.Generator], torch.Tensor]] = {}


def probe(kind: str):
    """Register the forward probe of a registry kind."""

    def deco(fn):
        PROBES[kind] = fn
        return fn

    return deco


@probe("head")
def _probe_head(head, generator):
    cfg = head.config
    hidden = torch.randn(2, 3, cfg["hidden_size"], generator=generator)
    if getattr(head, "is_discrete", False):
        target = head.sample(hidden, generator=generator)
    else:
        target = torch.randn(2, 3, cfg["token_dim"], generator=generator)
    # Heads whose loss is stochastic (diffusion timesteps and noise) take the generator, so the probe is
    # deterministic for a seed.
    extra = {"generator": generator} if "generator" in inspect.signature(head.loss).parameters else {}
    loss = head.loss(hidden, target, **extra)
    assert loss.shape == (2, 3), f"loss must be per token (2, 3), got {tuple(loss.shape)}"
    return loss.mean()


@probe("tokenizer")
def _probe_tokenizer(tokenizer, generator):
    # A clip of one keyframe interval at the tokenizer's own size, then its training loss (which encodes).
    size = getattr(tokenizer, "sample_size", (16, 16))
    channels = tokenizer.config.get("in_channels", 3)
    video = torch.rand(2, channels, tokenizer.temporal_compression + 1, *size, generator=generator) * 2 - 1
    tokens = tokenizer.encode(video).tokens
    assert tokens.ndim == 4 and tokens.shape[0] == 2, f"tokens must be (B, S, N, D), got {tuple(tokens.shape)}"
    extra = {"generator": generator} if "generator" in inspect.signature(tokenizer.training_step).parameters else {}
    return tokenizer.training_step({"video": video}, **extra)["loss"]


def build_tiny(cls: type) -> Component:
    """Instantiate ``cls`` from its ``tiny_config()``, asserting it is a keyword-only JSON config."""
    assert issubclass(cls, Component), f"{cls.__name__} must subclass vidtok.modeling_utils.Component"
    kwargs = cls.tiny_config()
    assert isinstance(kwargs, dict), f"{cls.__name__}.tiny_config() must return a dict"
    json.dumps(kwargs)  # JSON-serializable
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params), f"{cls.__name__}.__init__ not keyword-only"
    torch.manual_seed(0)
    return cls(**kwargs)


def check_config_roundtrip(model: Component) -> None:
    """``from_config(model.config)`` rebuilds an identical config."""
    cls = type(model)
    again = cls.from_config(model.config)
    strip = lambda c: {k: v for k, v in dict(c).items() if not k.startswith("_")}  # noqa: E731
    assert strip(again.config) == strip(model.config)


def check_save_load(model: Component, path: Path) -> Component:
    """save_pretrained → from_pretrained: no missing/unexpected keys, identical tensors and config."""
    cls = type(model)
    model.save_pretrained(path)
    config = json.loads((path / "config.json").read_text())
    assert config["_class_name"] == cls.__name__
    assert config["_config_version"] == cls.config_version
    loaded, info = cls.from_pretrained(path, output_loading_info=True)
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        assert not info.get(key), f"{key}: {info[key]}"
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), f"tensor {key} changed in the round trip"
    return loaded


def check_gradients(model: Component, kind: str) -> None:
    """The kind's probe yields a finite loss whose gradient reaches every trainable parameter."""
    model.train()
    loss = PROBES[kind](model, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss), f"probe loss not a finite scalar: {loss}"
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable, "no trainable parameters"
    no_grad = [n for n, p in trainable if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    bad = [n for n, p in trainable if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad}"


def check_determinism(model: Component, kind: str) -> None:
    """The probe gives identical results twice with the same generator seed (eval mode)."""
    model.eval()
    with torch.no_grad():
        a = PROBES[kind](model, torch.Generator().manual_seed(0))
        b = PROBES[kind](model, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
