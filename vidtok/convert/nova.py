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

:func:`convert_nova_transformer` converts a whole released ``transformer/`` folder (its ``config.json`` and
tensors) into the three vidtok components — ``nova`` model, ``block_causal`` backbone, ``diffusion_mlp`` head —
with the options that give them the released function (a learned time embedding on a rescaled time grid,
``(x, y)`` position order, indicators read without a projection, LayerNorm ε 1e-5, a stored table of prompt pad
states):

======================================================= ============================================================
released                                                vidtok
======================================================= ============================================================
``video_encoder.blocks.i.attn.qkv`` / ``attn.proj``     backbone ``layers.i.qkv`` / ``layers.i.proj``
``video_encoder.blocks.i.norm1`` / ``norm2`` / ``mlp``  backbone ``layers.i.norm1`` / ``norm2`` / ``mlp``
``video_encoder.norm``                                  backbone ``norm``
``video_encoder.mixer.lora`` / ``mixer.proj``           backbone ``mixer.down`` / ``mixer.up`` (Scaling and Shift)
``video_pos_embed.time_proj.0`` / ``.2``, ``.norm``     backbone ``time_mlp.0`` / ``.2``, ``time_norm``
``video_encoder.patch_embed.proj`` (``C → D``, 2p × 2p)  model ``frame_proj``: the kernel flattened in slot order
                                                        ``(row, column, c, p1, p2)`` of the 2 × 2 tokens it covers
``image_encoder.blocks.i.…`` / ``image_encoder.norm``   model ``spatial.blocks.i.…`` / ``spatial.norm``
``image_encoder.patch_embed.proj`` (``C → W``, p × p)   model ``spatial.token_proj`` (``(c, p1, p2)`` order)
``mask_embed.bos_token`` / ``mask_embed.mask_token``    model ``bov`` / ``spatial.mask_token``
``text_embed.proj`` / ``text_embed.norm``               model ``text_proj`` / ``text_norm``
``text_embed.weight`` (512 pad states, a buffer)        model ``text_pad_states``: the first ``text_token_len`` rows
                                                        (the only ones a prompt of that length reads)
``motion_embed.flow_proj`` / ``fps_proj``               model ``motion_embed.mlp`` / ``fps_embed.mlp``
``image_decoder.…``                                     head (:func:`convert_nova_head`)
======================================================= ============================================================

What it does not convert: the VAE (Open-Sora-Plan's ``AutoencoderKLOpenSora``, which diffusers does not ship, for
the T2V model; the SDXL ``AutoencoderKL`` of the T2I models loads with diffusers as it is) and Phi-2 (a
``transformers`` ``PhiModel``); class-conditional (``label_embed``) and RoPE (``rotary_pos_embed``) variants are
refused by name. Sampling differs in one documented way: the released pipeline draws one set-by-set order per
video and reuses it for every frame, vidtok draws one per frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from vidtok.convert.dicode import ConversionError

__all__ = [
    "NOVAConversion",
    "convert_nova_head",
    "convert_nova_transformer",
    "nova_head_config",
    "nova_transformer_configs",
]


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


class _Reader:
    """Reads released tensors by name, remembering which were read and which were missing."""

    def __init__(self, source: Mapping[str, torch.Tensor], shown_prefix: str = "") -> None:
        self.source, self.shown_prefix = source, shown_prefix
        self.used: set[str] = set()
        self.problems: list[str] = []

    def __call__(self, key: str) -> torch.Tensor:
        if key not in self.source:
            self.problems.append(f"missing {self.shown_prefix}{key}")
            return torch.empty(0)
        self.used.add(key)
        return self.source[key]

    def unmapped(self) -> list[str]:
        """One problem per source tensor that was never read."""
        return [f"unmapped {self.shown_prefix}{k}" for k in sorted(set(self.source) - self.used)]


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
    take = _Reader({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, prefix)
    problems = take.problems
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
    problems += take.unmapped()
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


# The released registries (diffnext ``transformer_nova.py``): name -> (depth, width, heads).
_RELEASED_VITS = {
    f"vit_d{depth}w{width}": (depth, width, 12 if width == 768 else 16)
    for depth in (16, 32)
    for width in (768, 1024, 1536)
}
_RELEASED_EPS = 1e-5  # nn.LayerNorm's default, which every released block and norm uses


def _patch_size(image_stride: int) -> int:
    """The released rule for the spatial patch: 2 for an 8× VAE, 1 for 16× and 32× (the video patch is twice it)."""
    return 15 // int(image_stride) + 1


def _component_classes() -> dict[str, type]:
    from vidtok.backbones.block_causal import BlockCausalTransformer
    from vidtok.heads.diffusion_mlp import DiffusionMLPHead
    from vidtok.models.nova import NOVAModel

    return {"model": NOVAModel, "backbone": BlockCausalTransformer, "head": DiffusionMLPHead}


def _vit(name: str, role: str, arch: Mapping[str, tuple[int, int, int]] | None) -> tuple[int, int, int]:
    known = {**_RELEASED_VITS, **(arch or {})}
    if name not in known:
        raise ConversionError(f"unknown {role} arch {name!r}: known are {sorted(known)} (pass arch= for others)")
    return tuple(int(v) for v in known[name])  # type: ignore[return-value]


def nova_transformer_configs(
    config: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
    arch: Mapping[str, tuple[int, int, int]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The ``model``, ``backbone`` and ``head`` keyword arguments of a released ``NOVATransformer3DModel``.

    Args:
        config: The released ``transformer/config.json`` (``image_dim``, ``image_size``, ``image_stride``,
            ``text_token_dim``, ``text_token_len``, ``video_base_size``, ``image_base_size``,
            ``video_mixer_rank``, ``rotary_pos_embed``, ``arch``).
        state: Its tensors (the head's sizes are read from them).
        arch: Sizes ``name -> (depth, width, heads)`` of transformer arch names beyond the released
            ``vit_d{16,32}w{768,1024,1536}`` (a fork's registry; heads cannot be read from tensors).

    Raises:
        ConversionError: A variant vidtok cannot express (class-conditional, RoPE, a full-rank mixer, position
            grids that differ from the token grid) or an unknown arch, named.
    """
    missing = [k for k in ("image_dim", "image_size", "image_stride", "video_base_size", "image_base_size", "arch")
               if config.get(k) is None]  # fmt: skip
    if missing:
        raise ConversionError(f"the transformer config lacks {missing}: not a NOVATransformer3DModel config")
    if config.get("rotary_pos_embed"):
        raise ConversionError(
            "rotary_pos_embed=True (3-D RoPE) is not supported: the released models use absolute positions"
        )
    if not config.get("text_token_dim"):
        raise ConversionError("a class-conditional NOVA (label_embed, no text_token_dim) is not supported")
    video_arch, image_arch, _ = config["arch"]
    depth, width, heads = _vit(video_arch, "video encoder", arch)
    spatial_depth, spatial_width, spatial_heads = _vit(image_arch, "image encoder", arch)
    if spatial_width != width:
        raise ConversionError(f"video width {width} != image width {spatial_width}: indicators are read unprojected")
    size = config["image_size"]
    size = (size, size) if isinstance(size, int) else tuple(size)
    stride, channels = int(config["image_stride"]), int(config["image_dim"])
    patch = _patch_size(stride)
    grid = [s // stride // patch for s in size]
    base_t, *video_grid = (int(v) for v in config["video_base_size"])
    if list(config["image_base_size"]) != grid or video_grid != [g // 2 for g in grid]:
        raise ConversionError(
            f"position grids image_base_size={list(config['image_base_size'])}, video_base_size[1:]={video_grid} "
            f"differ from the token grid {grid} (and its halves): vidtok computes positions on the actual grid"
        )
    rank = config.get("video_mixer_rank")
    if rank is not None and rank < 0:
        raise ConversionError(f"video_mixer_rank={rank} (a full-rank AdaLN mixer) is not supported; use a rank > 0")
    backbone = {
        "hidden_size": width,
        "num_layers": depth,
        "num_heads": heads,
        "mlp_ratio": 4.0,
        "qkv_bias": True,
        "norm_eps": _RELEASED_EPS,
        "mixer_rank": int(rank) if rank else None,
        "time_embedding": "mlp",
    }
    model = {
        "hidden_size": width,
        "token_dim": channels * patch * patch,
        "grid": grid,
        "text_length": int(config["text_token_len"]),
        "text_embed_dim": int(config["text_token_dim"]),
        "text_vocab_size": None,
        "motion_tokens": base_t > 1,
        "motion_score": 5.0,  # MotionEmbed's base_flow and base_fps
        "fps": 12.0,
        "spatial_width": spatial_width,
        "spatial_depth": spatial_depth,
        "spatial_heads": spatial_heads,
        "mlp_ratio": 4.0,
        "temporal_patch": 2,
        "time_rescale": float(base_t),
        "position_axes": "xy",
        "indicator_proj": False,
        "spatial_norm_eps": _RELEASED_EPS,
        "text_pad_table": True,
    }
    return {"model": model, "backbone": backbone, "head": nova_head_config(state)}


@dataclasses.dataclass
class NOVAConversion:
    """A released NOVA transformer as vidtok's three components: their configs and (complete) state dicts.

    Attributes:
        configs: ``{"model", "backbone", "head"}`` keyword arguments of ``nova``, ``block_causal``,
            ``diffusion_mlp``.
        states: The matching state dicts, every key of each component.
        dropped: Released keys deliberately not carried over, each with its reason.
    """

    configs: dict[str, dict[str, Any]]
    states: dict[str, dict[str, torch.Tensor]]
    dropped: dict[str, str]

    def build(self, head_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The three components built from the configs and loaded strictly: ``{"model", "backbone", "head"}``.

        Args:
            head_kwargs: Sampling settings of the head that the transformer folder does not hold (the released
                T2V model's ``{"prediction_type": "epsilon"}``; T2I models predict a flow, the head's default).
        """
        configs = {**self.configs, "head": {**self.configs["head"], **(head_kwargs or {})}}
        parts = {name: cls(**configs[name]) for name, cls in _component_classes().items()}
        for name, module in parts.items():
            module.load_state_dict(self.states[name], strict=True)
        return parts


def convert_nova_transformer(
    config: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
    arch: Mapping[str, tuple[int, int, int]] | None = None,
) -> NOVAConversion:
    """Convert a released NOVA ``transformer/`` (``config.json`` + tensors) into vidtok's three components.

    Every released key is mapped (see the module docstring) or dropped for a stated reason; a key that maps
    nowhere, a missing key or a shape that does not fit raises, listing all of them.

    Args:
        config: The released ``transformer/config.json``.
        state: Its tensors (``torch.load(weights_only=True)`` or safetensors); meta tensors work (shapes only).
        arch: Sizes of arch names beyond the released ones (see :func:`nova_transformer_configs`).

    Returns:
        A :class:`NOVAConversion`; ``.build()`` gives the loaded modules.

    Raises:
        ConversionError: See :func:`nova_transformer_configs`, plus unmapped, missing or misshapen tensors.
    """
    configs = nova_transformer_configs(config, state, arch)
    mcfg, bcfg = configs["model"], configs["backbone"]
    width, patch = mcfg["hidden_size"], _patch_size(config["image_stride"])
    channels = int(config["image_dim"])
    take = _Reader(state)

    def block(src: str, dst: str, out: dict[str, torch.Tensor]) -> None:
        for ours, theirs in (("qkv", "attn.qkv"), ("proj", "attn.proj"), ("norm1", "norm1"), ("norm2", "norm2"),
                             ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")):  # fmt: skip
            for kind in ("weight", "bias"):
                out[f"{dst}.{ours}.{kind}"] = take(f"{src}.{theirs}.{kind}")

    def pair(src: str, dst: str, out: dict[str, torch.Tensor]) -> None:
        for kind in ("weight", "bias"):
            out[f"{dst}.{kind}"] = take(f"{src}.{kind}")

    backbone: dict[str, torch.Tensor] = {}
    for i in range(bcfg["num_layers"]):
        block(f"video_encoder.blocks.{i}", f"layers.{i}", backbone)
    pair("video_encoder.norm", "norm", backbone)
    if bcfg["mixer_rank"]:
        backbone["mixer.down.weight"] = take("video_encoder.mixer.lora.weight")
        pair("video_encoder.mixer.proj", "mixer.up", backbone)
    pair("video_pos_embed.time_proj.0", "time_mlp.0", backbone)
    pair("video_pos_embed.time_proj.2", "time_mlp.2", backbone)
    pair("video_pos_embed.norm", "time_norm", backbone)

    model: dict[str, torch.Tensor] = {}
    for i in range(mcfg["spatial_depth"]):
        block(f"image_encoder.blocks.{i}", f"spatial.blocks.{i}", model)
    pair("image_encoder.norm", "spatial.norm", model)
    spatial_kernel = take("image_encoder.patch_embed.proj.weight")
    model["spatial.token_proj.bias"] = take("image_encoder.patch_embed.proj.bias")
    video_kernel = take("video_encoder.patch_embed.proj.weight")
    model["frame_proj.bias"] = take("video_encoder.patch_embed.proj.bias")
    model["bov"] = take("mask_embed.bos_token")
    model["spatial.mask_token"] = take("mask_embed.mask_token")
    pair("text_embed.proj", "text_proj", model)
    pair("text_embed.norm", "text_norm", model)
    pad_table = take("text_embed.weight")
    if mcfg["motion_tokens"]:
        for ours, theirs in (("motion_embed", "flow_proj"), ("fps_embed", "fps_proj")):
            for index in (0, 2):
                pair(f"motion_embed.{theirs}.{index}", f"{ours}.mlp.{index}", model)

    head_state = {k: v for k, v in state.items() if k.startswith("image_decoder.")}
    take.used.update(head_state)
    problems = take.problems + take.unmapped()
    if problems:
        raise ConversionError("NOVA transformer does not convert: " + "; ".join(problems))
    head = convert_nova_head(head_state)
    for key, kernel, side in (
        ("video_encoder.patch_embed.proj.weight", video_kernel, 2 * patch),
        ("image_encoder.patch_embed.proj.weight", spatial_kernel, patch),
    ):
        if tuple(kernel.shape) != (width, channels, side, side):
            raise ConversionError(
                f"{key}: {tuple(kernel.shape)}, expected {(width, channels, side, side)} from the config "
                f"(image_dim={channels}, image_stride={config['image_stride']}, width {width})"
            )

    model["bov"] = model["bov"].reshape(-1)
    model["spatial.mask_token"] = model["spatial.mask_token"].reshape(-1)
    model["spatial.token_proj.weight"] = spatial_kernel.reshape(spatial_kernel.shape[0], -1)  # (c, p1, p2)
    # A 2p × 2p video patch covers 2 × 2 tokens; the model's slot vector is (row, column, c, p1, p2).
    k = video_kernel.reshape(width, channels, 2, patch, 2, patch).permute(0, 2, 4, 1, 3, 5)
    model["frame_proj.weight"] = k.reshape(width, -1)
    length = mcfg["text_length"]
    if pad_table.shape[0] < length:
        raise ConversionError(f"text_embed.weight has {pad_table.shape[0]} rows, fewer than text_token_len={length}")
    model["text_pad_states"] = pad_table[:length]
    dropped = {}
    if pad_table.shape[0] > length:
        dropped["text_embed.weight"] = (
            f"rows {length}..{pad_table.shape[0] - 1}: a prompt is padded or cut to text_token_len={length} "
            "positions, so later rows are never read"
        )
    _check_shapes(configs, {"model": model, "backbone": backbone, "head": head})
    return NOVAConversion(configs=configs, states={"model": model, "backbone": backbone, "head": head}, dropped=dropped)


def _check_shapes(configs: dict[str, dict[str, Any]], states: dict[str, dict[str, torch.Tensor]]) -> None:
    """Build the components on the meta device and compare every key and shape (one error listing all)."""
    problems = []
    for name, cls in _component_classes().items():
        with torch.device("meta"):
            expected = cls(**configs[name]).state_dict()
        got = states[name]
        problems += [f"{name}: no released tensor for {k}" for k in sorted(set(expected) - set(got))]
        problems += [f"{name}: {k} is not a parameter" for k in sorted(set(got) - set(expected))]
        problems += [f"{name}.{k}: {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in got.items()
                     if k in expected and tuple(v.shape) != tuple(expected[k].shape)]  # fmt: skip
    if problems:
        raise ConversionError("the released tensors do not fit the converted configs: " + "; ".join(problems))
