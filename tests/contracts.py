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
    # Every head's loss takes the generator (the stochastic ones draw timesteps and noise from it), so the probe
    # is deterministic for a seed.
    loss = head.loss(hidden, target, generator=generator)
    assert loss.shape == (2, 3), f"loss must be per token (2, 3), got {tuple(loss.shape)}"
    return loss.mean()


@probe("tokenizer")
def _probe_tokenizer(tokenizer, generator):
    # A clip of one step interval at the tokenizer's own size; what encode returns must be what token_layout
    # says, level by level; then its training loss (which encodes).
    size = tokenizer.sample_size or (16, 16)
    channels = tokenizer.config.get("in_channels", 3)
    frames = tokenizer.num_frames_for(2)
    assert tokenizer.valid_num_frames(frames)
    video = torch.rand(2, channels, frames, *size, generator=generator) * 2 - 1
    out = tokenizer.encode(video)
    layout = tokenizer.token_layout(frames, *size)
    tokens = out.tokens if isinstance(out.tokens, (list, tuple)) else [out.tokens]
    assert len(tokens) == len(layout), f"{len(tokens)} token levels, token_layout lists {len(layout)}"
    for level, t in zip(layout, tokens):
        assert tuple(t.shape) == (2, level.steps, level.tokens, level.dim), (level, tuple(t.shape))
    if tokenizer.is_discrete:
        codes = out.indices if isinstance(out.indices, (list, tuple)) else [out.indices]
        for level, c in zip(layout, codes):
            assert tuple(c.shape) == (2, level.steps, level.tokens) and not c.is_floating_point()
            assert int(c.min()) >= 0 and int(c.max()) < level.codebook_size
    return tokenizer.training_step({"video": video}, generator=generator)["loss"]


@probe("model")
def _probe_model(model, generator):
    # The model's training loss with its tiny companions (a backbone and a head that fit its tiny config).
    import vidtok

    parts = {}
    for role, (name, kwargs) in model.tiny_companions().items():
        torch.manual_seed(0)
        parts[role] = vidtok.REGISTRIES[
            {"video_tokenizer": "tokenizers", "backbone": "backbones", "head": "heads"}[role]
        ].create(name, **kwargs)
    tok = parts["video_tokenizer"]
    levels = tok.token_layout(tok.num_frames_for(2), 16, 16)
    level = levels[-1]
    text = torch.randint(1, 30, (2, model.text_length), generator=generator)
    if len(levels) > 1:  # a model over every level of a hierarchical tokenizer: one code tensor per level
        tokens = [torch.randint(0, lv.codebook_size, (2, lv.steps, lv.tokens), generator=generator) for lv in levels]
    elif model.generates_codes:
        tokens = torch.randint(0, level.codebook_size, (2, 2, level.tokens), generator=generator)
    else:
        tokens = torch.randn(2, 2, level.tokens, level.dim, generator=generator)
    return model.loss(parts["backbone"].eval(), parts["head"].eval(), text, tokens, generator=generator)["loss"]


@probe("backbone")
def _probe_backbone(backbone, generator):
    # Native backbones (HF language models are not Components): a prefix block and two frames of 4 tokens with
    # (t, y, x) positions; a backbone with NOVA's Scaling and Shift layer also maps the last frame onto the first.
    d = backbone.hidden_size
    x = torch.randn(2, 10, d, generator=generator)
    blocks = torch.tensor([0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    grid = torch.tensor([[0.0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1]])
    prefix = torch.full((2, 3), float("nan"))
    positions = torch.cat([prefix, grid, grid + torch.tensor([1.0, 0, 0])])[None].expand(2, -1, -1)
    out = backbone(x, position_ids=positions, block_ids=blocks).last_hidden_state
    assert out.shape == (2, 10, d)
    if getattr(backbone, "mixer", None) is not None:
        out = torch.cat([out, backbone.scale_and_shift(out[:, 2:6], out[:, 6:])], dim=1)
    return out.square().mean()


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
