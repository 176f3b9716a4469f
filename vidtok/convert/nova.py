"""NOVA's released per-token diffusion head (``DiffusionMLP``) into a ``diffusion_mlp`` head with ``adaln="nova"``.

NOVA (Deng et al. 2024, arXiv:2412.14169 §3.4) denoises every token with a small AdaLN MLP. Its released
checkpoints (``BAAI/nova-*``, ``transformer/`` folder, keys under ``image_decoder.``) store the head as the
official ``diffnext`` code names it; :class:`~vidtok.heads.DiffusionMLPHead` with ``adaln="nova"`` has the same
parameters in a different arrangement. :func:`convert_nova_head` maps one onto the other, key by key:

===================================================== ==============================================================
released (``image_decoder.`` + …)                     ``DiffusionMLPHead(adaln="nova")``
===================================================== ==============================================================
``patch_embed.proj`` (Conv2d ``C → D``, ``p × p``)    ``input_proj``: the kernel flattened in ``(c, p1, p2)`` order,
                                                      the order of ``continuous_vae`` tokens
``time_cond_embed.timestep_proj.fc1`` / ``fc2``       ``time_embed.0`` / ``time_embed.2`` (256 sine-cosine features,
                                                      ``[cos, sin]``, period 10⁴: the same embedding)
``time_cond_embed.condition_proj.fc1`` / ``fc2``      ``cond_embed.0`` / ``cond_embed.2``
``blocks.i.norm1.proj`` (``scale, shift, gate``)      rows ``3i … 3i + 2`` of ``modulation`` as ``shift, scale, gate``
``blocks.i.proj.fc1`` / ``fc2``                       ``blocks.i.fc1`` / ``fc2``
``blocks.i.norm2``                                    ``blocks.i.post_norm``
``norm.proj`` (``scale, shift``)                      the last two row blocks of ``modulation`` as ``shift, scale``
``head`` (``D → p²·C`` in ``(p1, p2, c)`` order)      ``output``, rows reordered to ``(c, p1, p2)``
===================================================== ==============================================================

The rest of a NOVA checkpoint (the temporal and spatial transformers) has no converter yet: see
``docs/results.md`` (NOVA) for what its key map needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from vidtok.convert.dicode import ConversionError

__all__ = ["convert_nova_head", "nova_head_config"]


def nova_head_config(state: Mapping[str, torch.Tensor], prefix: str = "image_decoder.") -> dict[str, Any]:
    """The ``DiffusionMLPHead`` keyword arguments that hold a released ``DiffusionMLP`` state dict.

    Reads the sizes from the tensors (depth, width, condition width, patch and channels); the sampling
    settings (prediction type, scheduler, steps) are the pipeline's and are left at the head's defaults.

    Raises:
        ConversionError: ``state`` has no ``{prefix}patch_embed.proj.weight`` or no blocks.
    """
    key = f"{prefix}patch_embed.proj.weight"
    if key not in state:
        raise ConversionError(f"not a NOVA DiffusionMLP state dict: no {key!r} (prefix={prefix!r})")
    width, channels, patch, _ = state[key].shape
    depth = 0
    while f"{prefix}blocks.{depth}.norm1.proj.weight" in state:
        depth += 1
    if depth == 0:
        raise ConversionError(f"no {prefix}blocks.0.norm1.proj.weight: not a NOVA DiffusionMLP state dict")
    return {
        "adaln": "nova",
        "width": int(width),
        "depth": depth,
        "hidden_size": int(state[f"{prefix}time_cond_embed.condition_proj.fc1.weight"].shape[1]),
        "token_dim": int(channels * patch * patch),
        "timestep_embedding_dim": int(state[f"{prefix}time_cond_embed.timestep_proj.fc1.weight"].shape[1]),
    }


def _swap_halves(t: torch.Tensor, width: int) -> torch.Tensor:
    # AdaLayerNormZero's stats are (scale, shift[, gate]); the head's modulation chunks are (shift, scale[, gate]).
    chunks = list(t.split(width, dim=0))
    chunks[0], chunks[1] = chunks[1], chunks[0]
    return torch.cat(chunks, dim=0)


def convert_nova_head(
    state: Mapping[str, torch.Tensor], *, prefix: str = "image_decoder.", head: Any = None
) -> dict[str, torch.Tensor]:
    """A ``DiffusionMLPHead(adaln="nova")`` state dict from a released NOVA ``DiffusionMLP`` one.

    Args:
        state: The released tensors (the whole transformer checkpoint is fine: only keys under ``prefix`` are
            read).
        prefix: Where the head lives in ``state`` (``"image_decoder."`` in NOVA's transformer; ``""`` for a bare
            ``DiffusionMLP``).
        head: Optionally the head to fill (``load_state_dict(..., strict=True)`` is run on it, so nothing is
            left at its initialization); its config must be ``adaln="nova"`` with the released sizes.

    Returns:
        The converted state dict (every key of the head, no other).

    Raises:
        ConversionError: A released key that maps nowhere, a missing key or a shape that does not fit; the
            message lists all of them.
    """
    config = nova_head_config(state, prefix)
    width, depth = config["width"], config["depth"]
    patch_key = f"{prefix}patch_embed.proj.weight"
    channels, patch = state[patch_key].shape[1], state[patch_key].shape[2]
    source = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    used: set[str] = set()
    problems: list[str] = []

    def take(key: str) -> torch.Tensor:
        if key not in source:
            problems.append(f"missing {prefix}{key}")
            return torch.empty(0)
        used.add(key)
        return source[key]

    out: dict[str, torch.Tensor] = {
        "input_proj.weight": take("patch_embed.proj.weight").reshape(width, -1),
        "input_proj.bias": take("patch_embed.proj.bias"),
    }
    for ours, theirs in (("time_embed", "timestep_proj"), ("cond_embed", "condition_proj")):
        for index, layer in ((0, "fc1"), (2, "fc2")):
            for kind in ("weight", "bias"):
                out[f"{ours}.{index}.{kind}"] = take(f"time_cond_embed.{theirs}.{layer}.{kind}")
    weights, biases = [], []
    for i in range(depth):
        weights.append(_swap_halves(take(f"blocks.{i}.norm1.proj.weight"), width))
        biases.append(_swap_halves(take(f"blocks.{i}.norm1.proj.bias"), width))
        for layer in ("fc1", "fc2"):
            for kind in ("weight", "bias"):
                out[f"blocks.{i}.{layer}.{kind}"] = take(f"blocks.{i}.proj.{layer}.{kind}")
        for kind in ("weight", "bias"):
            out[f"blocks.{i}.post_norm.{kind}"] = take(f"blocks.{i}.norm2.{kind}")
    weights.append(_swap_halves(take("norm.proj.weight"), width))
    biases.append(_swap_halves(take("norm.proj.bias"), width))
    head_weight, head_bias = take("head.weight"), take("head.bias")
    if not problems:
        out["modulation.weight"] = torch.cat(weights, dim=0)
        out["modulation.bias"] = torch.cat(biases, dim=0)
        # The head's rows come in (p1, p2, c) order (NOVA's patchify); continuous_vae tokens are (c, p1, p2).
        order = torch.arange(channels * patch * patch).reshape(patch, patch, channels).permute(2, 0, 1).reshape(-1)
        out["output.weight"] = head_weight[order]
        out["output.bias"] = head_bias[order]
    unused = sorted(set(source) - used)
    problems += [f"unmapped {prefix}{k}" for k in unused]
    if problems:
        raise ConversionError("NOVA head does not convert: " + "; ".join(problems))
    if head is not None:
        if head.config.adaln != "nova":
            raise ConversionError(f"the head must be built with adaln='nova', got adaln={head.config.adaln!r}")
        expected = head.state_dict()
        wrong = [f"{k}: {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in out.items()
                 if k in expected and v.shape != expected[k].shape]  # fmt: skip
        if wrong or set(expected) != set(out):
            missing = sorted(set(expected) - set(out))
            raise ConversionError(f"the head's config does not fit the released tensors: {wrong + missing}")
        head.load_state_dict(out, strict=True)
    return out
