"""Per-frame semantic encoders for deep tokens, chosen by name (DiCoDe §3.1).

DiCoDe encodes each keyframe with a frozen OpenCLIP ViT-H/14 and keeps *all* patch tokens of its last
block (257 × 1280, no ``ln_post``/``proj``; supplementary §6). This module builds that encoder for any
open_clip architecture, a timm ViT, or a small trainable ViT for the Shapes world, behind one interface:
``encoder(images)`` maps ``(B, 3, H, W)`` in ``[-1, 1]`` to patch tokens ``(B, L, C)`` with ``C ==
encoder.out_dim``.

Names:

* ``"small_vit"``: :class:`SmallViT`, trained from scratch (keyword arguments are its constructor's).
* ``"open_clip:<arch>"`` (e.g. ``"open_clip:ViT-H-14"``): :class:`OpenCLIPVisionEncoder`.
* ``"timm:<model>"`` (e.g. ``"timm:vit_small_patch16_224"``): :class:`TimmViTEncoder`.

Pretrained weights come from a local file (``.safetensors`` or a ``torch.load``-able state dict, loaded
with ``weights_only=True``); nothing is ever downloaded here.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "OpenCLIPVisionEncoder",
    "SmallViT",
    "TimmViTEncoder",
    "build_frame_encoder",
    "load_state_dict_file",
    "sincos_2d",
]

# OpenAI CLIP normalization, used by DiCoDe's FrozenOpenCLIPImageEmbedderV2 (supplementary §6).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def sincos_2d(height: int, width: int, dim: int, *, device: Any = None, dtype: Any = None) -> torch.Tensor:
    """Fixed 2-D sine/cosine position embeddings ``(height * width, dim)`` (row-major), as in MAE.

    Half of the channels encode the row, half the column, so any grid size works without interpolation.

    Raises:
        ValueError: If ``dim`` is not a multiple of 4.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embeddings need dim divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    parts = []
    for coord in (ys.flatten(), xs.flatten()):
        angles = coord[:, None] * omega[None]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1).to(device=device, dtype=dtype or torch.float32)


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file (``weights_only=True``, never pickles code).

    Raises:
        FileNotFoundError: If the file does not exist.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"encoder weights file {path!r} does not exist (weights are never downloaded)")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "module"):  # common wrappers of training checkpoints
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return state


class _Block(nn.Module):
    """Pre-norm transformer block (self-attention + MLP)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class SmallViT(nn.Module):
    """A small trainable ViT returning every patch token (the Shapes stand-in for OpenCLIP, DiCoDe §3.1).

    Patch tokens get fixed 2-D sin-cos positions plus a learned per-position offset (when the grid matches
    ``image_size``), so the tokens keep the frame's spatial layout — what lets the resampler's queries bind
    to places and the decoder put objects back where they were.

    Args:
        image_size: Expected input size (the learned position offsets are sized for it; other sizes use
            the sin-cos positions only).
        patch_size: Side of a patch in pixels.
        dim: Token width (multiple of 4).
        depth: Transformer blocks.
        heads: Attention heads.
        mlp_ratio: MLP hidden width over ``dim``.
        in_channels: Image channels.
    """

    def __init__(
        self,
        *,
        image_size: int = 32,
        patch_size: int = 4,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.grid = image_size // patch_size
        self.out_dim = dim
        self.patch = nn.Conv2d(in_channels, dim, patch_size, patch_size)
        self.pos = nn.Parameter(torch.zeros(1, self.grid * self.grid, dim))
        self.blocks = nn.ModuleList([_Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"small_vit: frame size {h}x{w} is not a multiple of patch_size={self.patch_size}")
        x = self.patch(images).flatten(2).transpose(1, 2)
        gh, gw = h // self.patch_size, w // self.patch_size
        x = x + sincos_2d(gh, gw, x.shape[-1], device=x.device, dtype=x.dtype)
        # Other sizes use the sin-cos positions only (the learned offsets stay in the graph, with zero weight).
        x = x + self.pos if gh == gw == self.grid else x + 0.0 * self.pos.sum()
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class OpenCLIPVisionEncoder(nn.Module):
    """An open_clip vision tower returning all tokens of one transformer block (DiCoDe supplementary §6).

    Matches DiCoDe's ``FrozenOpenCLIPImageEmbedderV2``: resize to the tower's input size (bicubic, no
    crop), map ``[-1, 1]`` to CLIP-normalized pixels, then ``conv1`` → prepend CLS → positions →
    ``ln_pre`` → the transformer blocks; ``ln_post`` and ``proj`` are *not* applied. For ViT-H/14 at 224²
    the output is ``(B, 257, 1280)``.

    Args:
        arch: An open_clip model name (``open_clip.list_models()``), e.g. ``"ViT-H-14"``.
        pretrained: Local checkpoint of the whole CLIP model or of its ``visual`` tower, or ``None`` for
            random weights.
        layer: Index of the block whose output is returned (``-1``: the last, as in DiCoDe).
    """

    def __init__(self, *, arch: str, pretrained: str | None = None, layer: int = -1) -> None:
        super().__init__()
        import open_clip

        self.visual = _open_clip_visual(open_clip, arch)
        for attr in ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer"):
            if not hasattr(self.visual, attr):
                raise ValueError(f"open_clip:{arch} is not a ViT vision tower (no {attr!r}); use a ViT architecture")
        blocks = self.visual.transformer.resblocks
        self.num_blocks = len(blocks) + layer + 1 if layer < 0 else layer + 1
        if not 1 <= self.num_blocks <= len(blocks):
            raise ValueError(f"layer={layer} out of range for {len(blocks)} blocks of open_clip:{arch}")
        # Blocks after the chosen one and the output head are never used: drop them (saves memory/weights).
        self.visual.transformer.resblocks = blocks[: self.num_blocks]
        for attr in ("ln_post", "proj", "attn_pool", "head"):
            if hasattr(self.visual, attr):
                setattr(self.visual, attr, None)
        size = self.visual.image_size
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        self.out_dim = self.visual.conv1.out_channels
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        if pretrained is not None:
            state = load_state_dict_file(pretrained)
            if any(k.startswith("visual.") for k in state):
                state = {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
            wanted = self.visual.state_dict().keys()
            missing = [k for k in wanted if k not in state]
            if missing:
                raise KeyError(f"open_clip:{arch} checkpoint {pretrained!r} lacks vision keys {missing[:8]}")
            self.visual.load_state_dict({k: state[k] for k in wanted})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        v = self.visual
        x = F.interpolate(images, size=self.image_size, mode="bicubic", align_corners=True, antialias=True)
        x = ((x + 1) / 2 - self.mean) / self.std
        x = v.conv1(x).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        x = v.ln_pre(v.patch_dropout(x) if hasattr(v, "patch_dropout") else x)
        for block in v.transformer.resblocks:
            x = block(x)
        return x


def _open_clip_visual(open_clip: Any, arch: str) -> nn.Module:
    """Build only the vision tower of ``arch`` (no text tower, no download)."""
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ValueError(f"unknown open_clip architecture {arch!r}; see open_clip.list_models()")
    try:  # the vision builder alone skips the (large) text tower
        from open_clip.model import _build_vision_tower

        return _build_vision_tower(cfg["embed_dim"], cfg["vision_cfg"], quick_gelu=cfg.get("quick_gelu", False))
    except (ImportError, TypeError, KeyError):  # pragma: no cover - depends on the open_clip version
        return open_clip.create_model(arch, pretrained=None).visual


class TimmViTEncoder(nn.Module):
    """A timm ViT returning all tokens after its final norm (``forward_features``).

    Args:
        model_name: A timm model name, e.g. ``"vit_small_patch16_224"`` (built with ``pretrained=False``).
        pretrained: Local checkpoint file or ``None``.
        num_blocks: Keep only the first blocks (``None``: all).
        **kwargs: Passed to ``timm.create_model`` (``img_size``, ``patch_size``, ...).
    """

    def __init__(
        self, *, model_name: str, pretrained: str | None = None, num_blocks: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__()
        import timm

        self.model = timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)
        if pretrained is not None:
            state = load_state_dict_file(pretrained)
            state = {k: v for k, v in state.items() if not k.startswith("head.")}
            self.model.load_state_dict(state, strict=True)
        if num_blocks is not None:
            self.model.blocks = self.model.blocks[:num_blocks]
        self.out_dim = self.model.num_features
        cfg = self.model.pretrained_cfg or {}
        size = cfg.get("input_size", (3, 224, 224))[-2:]
        self.image_size = tuple(getattr(self.model.patch_embed, "img_size", size))
        self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.5,) * 3)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", (0.5,) * 3)).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=self.image_size, mode="bicubic", align_corners=False, antialias=True)
        x = ((x + 1) / 2 - self.mean) / self.std
        return self.model.forward_features(x)


def build_frame_encoder(name: str, kwargs: dict[str, Any] | None = None, pretrained: str | None = None) -> nn.Module:
    """Build a frame encoder by name (see the module docstring).

    Args:
        name: ``"small_vit"``, ``"open_clip:<arch>"`` or ``"timm:<model>"``.
        kwargs: Constructor keyword arguments (``layer`` for open_clip; timm's ``create_model`` arguments).
        pretrained: Local weights file, or ``None``.

    Returns:
        A module mapping ``(B, 3, H, W)`` in ``[-1, 1]`` to ``(B, L, out_dim)``.

    Raises:
        ValueError: On an unknown name.
    """
    kwargs = dict(kwargs or {})
    if name == "small_vit":
        encoder = SmallViT(**kwargs)
        if pretrained is not None:
            encoder.load_state_dict(load_state_dict_file(pretrained))
        return encoder
    if name.startswith("open_clip:"):
        return OpenCLIPVisionEncoder(arch=name.split(":", 1)[1], pretrained=pretrained, **kwargs)
    if name.startswith("timm:"):
        return TimmViTEncoder(model_name=name.split(":", 1)[1], pretrained=pretrained, **kwargs)
    raise ValueError(f"unknown frame encoder {name!r}; expected 'small_vit', 'open_clip:<arch>' or 'timm:<model>'")
