"""The video-diffusion UNet of the released DiCoDe code (DynamiCrafter's 3D UNet), decoding deep tokens.

A 2-D latent-diffusion UNet run on every frame of a clip, with temporal layers between its 2-D layers:

* every ResNet block ends with a stack of four ``(3, 1, 1)`` temporal convolutions (``temporal_conv``);
* every attention level has a spatial transformer followed by a temporal transformer (self-attention over
  the frames at each pixel, no positional encoding: frame order is known only through the convolutions);
* one more temporal transformer (``init_attn``) runs right after the input convolution.

Conditioning is by cross-attention only. Each frame's spatial transformers attend to the constant context
of the empty prompt (stored here as the ``text_context`` buffer, so no text encoder is needed) and, through
a second pair of key/value projections, to the deep tokens of the keyframe assigned to that frame: the head
keyframe for the first half of the clip, the rear keyframe for the second. The two attention outputs are
summed, the image part weighted by ``tanh(alpha) + 1`` with a learned ``alpha``.

Parameter names follow the released checkpoint (``model.diffusion_model.*``) so it converts by stripping
that prefix, except ``temopral_conv`` which is spelled ``temporal_conv`` here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from einops import rearrange
from torch import nn

__all__ = ["DiCoDeUNet"]

CONTEXT_MODES = ("half",)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _sinusoidal(values: torch.Tensor, dim: int) -> torch.Tensor:
    """LDM timestep embedding: ``[cos | sin]`` of ``value * 10000^(-i / (dim / 2))``, in float32."""
    return get_timestep_embedding(values.flatten().float(), dim, flip_sin_to_cos=True, downscale_freq_shift=0)


class _Cond(NamedTuple):
    """What the layers of a block may need besides their input."""

    emb: torch.Tensor  # (B*T, E) timestep (+ frame-stride) embedding per frame
    context: tuple[torch.Tensor, torch.Tensor]  # text (1, L, D) and per-frame image tokens (B*T, N, D)
    frames: int  # T, to fold the batch axis (B*T) back into clips for the temporal layers


class _Layer(nn.Module):
    """A layer of a UNet block that reads the conditioning."""

    def forward(self, x: torch.Tensor, cond: _Cond) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError(f"{type(self).__name__} must define forward(x, cond)")


class _Block(nn.ModuleList):
    """A UNet block: its layers in order; conditioned layers also get the conditioning."""

    def forward(self, x: torch.Tensor, cond: _Cond) -> torch.Tensor:
        for layer in self:
            x = layer(x, cond) if isinstance(layer, _Layer) else layer(x)
        return x


class _GroupNorm32(nn.GroupNorm):
    """GroupNorm evaluated in float32 (as the original's ResNet and output norms), returned in the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).to(x.dtype)


# ---------------------------------------------------------------------------------------------- attention
class _Attention(nn.Module):
    """Multi-head attention; self-attention without a context.

    With ``image_context`` it takes ``(text, image)`` context tokens and attends to each with its own key/value
    projections (IP-Adapter style decoupled cross-attention): ``attn(text) + attn(image) * (tanh(alpha) + 1)``.
    """

    def __init__(
        self, query_dim: int, heads: int, head_dim: int, context_dim: int | None = None, image_context: bool = False
    ) -> None:
        super().__init__()
        inner = heads * head_dim
        kv_dim = context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(kv_dim, inner, bias=False)
        self.to_v = nn.Linear(kv_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim))
        self.image_context = image_context
        if image_context:
            self.to_k_ip = nn.Linear(kv_dim, inner, bias=False)
            self.to_v_ip = nn.Linear(kv_dim, inner, bias=False)
            self.alpha = nn.Parameter(torch.zeros(()))  # image weight tanh(0) + 1 = 1 at initialisation

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # The text context is shared by every frame: its keys/values are computed once and broadcast.
        k, v = (t.expand(q.shape[0], -1, -1) for t in (k, v))
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        return rearrange(F.scaled_dot_product_attention(q, k, v), "b h n d -> b n (h d)")

    def forward(self, x: torch.Tensor, context: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        q = self.to_q(x)
        if context is None:
            out = self._attend(q, self.to_k(x), self.to_v(x))
        else:
            text, image = context
            out = self._attend(q, self.to_k(text), self.to_v(text))
            if self.image_context:
                out_image = self._attend(q, self.to_k_ip(image), self.to_v_ip(image))
                out = out + out_image * (torch.tanh(self.alpha) + 1)
        return self.to_out(out)


class _GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class _FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        # Index 1 is a (rate 0) dropout in the original; kept so that the output projection is ``net.2``.
        self.net = nn.Sequential(_GEGLU(dim, mult * dim), nn.Dropout(0.0), nn.Linear(mult * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _TransformerBlock(nn.Module):
    """Pre-norm self-attention, second attention (cross with a context, else self) and GEGLU feed-forward."""

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int | None = None) -> None:
        super().__init__()
        self.attn1 = _Attention(dim, heads, head_dim)
        self.ff = _FeedForward(dim)
        self.attn2 = _Attention(dim, heads, head_dim, context_dim, image_context=context_dim is not None)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


def _project(layer: nn.Linear | nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """Apply a Linear or a kernel-1 Conv1d to the last axis of ``x`` (the same map, stored either way)."""
    return F.linear(x, layer.weight.flatten(1), layer.bias)


class _SpatialTransformer(_Layer):
    """Attention over the pixels of each frame, cross-attending to that frame's context; zero-init output."""

    def __init__(self, channels: int, heads: int, head_dim: int, depth: int, context_dim: int, groups: int) -> None:
        super().__init__()
        inner = heads * head_dim
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            [_TransformerBlock(inner, heads, head_dim, context_dim) for _ in range(depth)]
        )
        self.proj_out = _zero(nn.Linear(inner, channels))

    def forward(self, x: torch.Tensor, cond: _Cond) -> torch.Tensor:
        height, width = x.shape[-2:]
        y = self.proj_in(rearrange(self.norm(x), "n c h w -> n (h w) c"))
        for block in self.transformer_blocks:
            y = block(y, cond.context)
        y = rearrange(self.proj_out(y), "n (h w) c -> n c h w", h=height, w=width)
        return x + y


class _TemporalTransformer(_Layer):
    """Self-attention over the frames at each pixel; zero-init output.

    The GroupNorm normalises each clip as a whole (statistics over frames and pixels). ``conv`` stores the
    projections as kernel-1 Conv1d weights, as the original's ``init_attn`` does (the same map as Linear).
    """

    def __init__(self, channels: int, heads: int, head_dim: int, depth: int, groups: int, conv: bool = False) -> None:
        super().__init__()
        inner = heads * head_dim
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv1d(channels, inner, 1) if conv else nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList([_TransformerBlock(inner, heads, head_dim) for _ in range(depth)])
        self.proj_out = _zero(nn.Conv1d(inner, channels, 1) if conv else nn.Linear(inner, channels))

    def forward(self, x: torch.Tensor, cond: _Cond) -> torch.Tensor:
        height, width = x.shape[-2:]
        clip = rearrange(x, "(b t) c h w -> b c t h w", t=cond.frames)
        y = _project(self.proj_in, rearrange(self.norm(clip), "b c t h w -> (b h w) t c"))
        for block in self.transformer_blocks:
            y = block(y)
        y = _project(self.proj_out, y)
        return x + rearrange(y, "(b h w) t c -> (b t) c h w", h=height, w=width)


class _TemporalConv(nn.Module):
    """Four GroupNorm → SiLU (→ Dropout) → ``(3, 1, 1)`` Conv3d layers over the frames, residual, zero-init last."""

    def __init__(self, channels: int, groups: int, dropout: float) -> None:
        super().__init__()

        def conv() -> nn.Conv3d:
            return nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))

        self.conv1 = nn.Sequential(nn.GroupNorm(groups, channels), nn.SiLU(), conv())
        self.conv2 = nn.Sequential(nn.GroupNorm(groups, channels), nn.SiLU(), nn.Dropout(dropout), conv())
        self.conv3 = nn.Sequential(nn.GroupNorm(groups, channels), nn.SiLU(), nn.Dropout(dropout), conv())
        self.conv4 = nn.Sequential(nn.GroupNorm(groups, channels), nn.SiLU(), nn.Dropout(dropout), _zero(conv()))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        clip = rearrange(x, "(b t) c h w -> b c t h w", t=frames)
        clip = clip + self.conv4(self.conv3(self.conv2(self.conv1(clip))))
        return rearrange(clip, "b c t h w -> (b t) c h w")


class _ResBlock(_Layer):
    """Per-frame ResNet block with the timestep embedding added after the first conv, then the temporal convs."""

    def __init__(
        self, channels: int, out_channels: int, emb_dim: int, *, dropout: float, temporal_dropout: float, groups: int
    ) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(
            _GroupNorm32(groups, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_channels))
        self.out_layers = nn.Sequential(
            _GroupNorm32(groups, out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip_connection = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)
        self.temporal_conv = _TemporalConv(out_channels, groups, temporal_dropout)

    def forward(self, x: torch.Tensor, cond: _Cond) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_layers(cond.emb).to(x.dtype)[:, :, None, None]
        h = self.skip_connection(x) + self.out_layers(h)
        return self.temporal_conv(h, cond.frames)


class _Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class _Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


# ---------------------------------------------------------------------------------------------- the UNet
class DiCoDeUNet(nn.Module):
    """The video diffusion UNet that decodes DiCoDe deep tokens into a clip.

    DiCoDe §3.2 and supplementary; the decoder of the released code is DynamiCrafter's (Xing et al. 2024) 3D
    UNet, configured as released: 4 latent channels in and out (no image-latent concatenation), widths
    320·(1, 2, 4, 4), two ResNet blocks per level, spatial and temporal transformers at the first three
    levels and in the middle, heads of 64 channels, 1,024-d context, image cross-attention with a learned
    scale, an extra temporal transformer after the input conv and a frame-stride embedding. The defaults are
    that full size (1,438.8 M parameters). Parameter names match the checkpoint's ``model.diffusion_model.*``
    (see the module docstring), plus the buffer ``text_context``: the empty-prompt context that DiCoDe always
    conditions on, filled by the checkpoint converter.

    Args:
        in_channels: Latent channels of the noisy input.
        out_channels: Channels of the prediction.
        model_channels: Width of the first level; the timestep embedding has ``4 * model_channels`` dims.
        channel_mult: Width multiplier of each level (one downsampling between consecutive levels).
        num_res_blocks: ResNet blocks per level on the way down (one more on the way up).
        attention_resolutions: Downsampling factors (1, 2, 4, …) of the levels with transformers.
        num_head_channels: Channels per attention head (heads = width / this).
        transformer_depth: Transformer blocks in each spatial and temporal transformer.
        context_dim: Width of the deep tokens and of the text context.
        text_context_len: Tokens of the text context (77 for OpenCLIP).
        addition_attention: Add the temporal transformer ``init_attn`` after the input conv.
        init_attn_heads: Heads of ``init_attn`` (of ``num_head_channels`` each).
        fs_condition: Add the frame-stride embedding ``fps_embedding`` to the timestep embedding.
        fs: The frame-stride value embedded when ``fs_condition`` (DiCoDe's demos use 6); an attribute that
            may be changed after construction.
        norm_groups: Groups of every GroupNorm.
        context_mode: Which keyframe's tokens condition which frame; only ``"half"`` (DiCoDe's: frames in
            the first half of the clip read the head tokens, the others the rear tokens).
        dropout: Dropout rate inside the ResNet blocks.
        temporal_dropout: Dropout rate inside the temporal convolutions (fixed at 0.1 in the original).
    """

    def __init__(
        self,
        *,
        in_channels: int = 4,
        out_channels: int = 4,
        model_channels: int = 320,
        channel_mult: Sequence[int] = (1, 2, 4, 4),
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (4, 2, 1),
        num_head_channels: int = 64,
        transformer_depth: int = 1,
        context_dim: int = 1024,
        text_context_len: int = 77,
        addition_attention: bool = True,
        init_attn_heads: int = 8,
        fs_condition: bool = True,
        fs: int = 6,
        norm_groups: int = 32,
        context_mode: str = "half",
        dropout: float = 0.0,
        temporal_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if context_mode not in CONTEXT_MODES:
            raise ValueError(f"DiCoDeUNet supports context_mode {CONTEXT_MODES}, got {context_mode!r}")
        channel_mult = tuple(channel_mult)
        attention_resolutions = tuple(attention_resolutions)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.model_channels = model_channels
        self.context_dim = context_dim
        self.context_mode = context_mode
        self.fs = fs
        self.spatial = None  # no token-decoded spatial condition (the deep tokenizer checks this)
        self.downsample_factor = 2 ** (len(channel_mult) - 1)
        emb_dim = 4 * model_channels

        def res(cin: int, cout: int) -> _ResBlock:
            return _ResBlock(cin, cout, emb_dim, dropout=dropout, temporal_dropout=temporal_dropout, groups=norm_groups)

        def transformers(ch: int) -> list[nn.Module]:
            heads = ch // num_head_channels
            return [
                _SpatialTransformer(ch, heads, num_head_channels, transformer_depth, context_dim, norm_groups),
                _TemporalTransformer(ch, heads, num_head_channels, transformer_depth, norm_groups),
            ]

        def embedding() -> nn.Sequential:
            return nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        self.time_embed = embedding()
        self.fps_embedding = None
        if fs_condition:
            self.fps_embedding = embedding()
            _zero(self.fps_embedding[2])

        self.input_blocks = nn.ModuleList([_Block([nn.Conv2d(in_channels, model_channels, 3, padding=1)])])
        self.init_attn = None
        if addition_attention:
            self.init_attn = _Block(
                [
                    _TemporalTransformer(
                        model_channels, init_attn_heads, num_head_channels, transformer_depth, norm_groups, conv=True
                    )
                ]
            )
        skip_channels = [model_channels]
        ch, ds = model_channels, 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res(ch, mult * model_channels)]
                ch = mult * model_channels
                if ds in attention_resolutions:
                    layers += transformers(ch)
                self.input_blocks.append(_Block(layers))
                skip_channels.append(ch)
            if level < len(channel_mult) - 1:
                self.input_blocks.append(_Block([_Downsample(ch)]))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = _Block([res(ch, ch), *transformers(ch), res(ch, ch)])

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skip_channels.pop(), mult * model_channels)]
                ch = mult * model_channels
                if ds in attention_resolutions:
                    layers += transformers(ch)
                if level > 0 and i == num_res_blocks:
                    layers.append(_Upsample(ch))
                    ds //= 2
                self.output_blocks.append(_Block(layers))

        self.out = nn.Sequential(
            _GroupNorm32(norm_groups, ch), nn.SiLU(), _zero(nn.Conv2d(model_channels, out_channels, 3, padding=1))
        )
        self.register_buffer("text_context", torch.zeros(text_context_len, context_dim))

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """Keyword arguments of a tiny model (a CPU forward in milliseconds), for tests."""
        return {
            "model_channels": 32,
            "channel_mult": (1, 2),
            "num_res_blocks": 1,
            "attention_resolutions": (1,),
            "num_head_channels": 16,
            "norm_groups": 8,
            "context_dim": 16,
            "text_context_len": 4,
            "init_attn_heads": 2,
        }

    def _embedding(self, timestep: torch.Tensor, batch: int, frames: int, dtype: torch.dtype) -> torch.Tensor:
        """Timestep (+ frame-stride) embedding, one row per frame ``(B * T, E)``."""
        emb = self.time_embed(_sinusoidal(timestep, self.model_channels).to(dtype))
        if self.fps_embedding is not None:
            fs = torch.full((batch,), self.fs, device=timestep.device)
            emb = emb + self.fps_embedding(_sinusoidal(fs, self.model_channels).to(dtype))
        return emb.repeat_interleave(frames, dim=0)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        head: torch.Tensor,
        rear: torch.Tensor,
        stride: torch.Tensor | None = None,
        spatial: Any = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the diffusion target of a noisy clip.

        Args:
            sample: Noisy latent clip ``(B, C, T, H, W)``; ``H`` and ``W`` divisible by ``downsample_factor``.
            timestep: ``(B,)`` diffusion timesteps (ints or floats; a scalar applies to the whole batch).
            head: Deep tokens of the clip's first keyframe ``(B, N, context_dim)``.
            rear: Deep tokens of the clip's last keyframe, same shape as ``head``.
            stride: This library's keyframe stride (frames from head to rear). Ignored: DynamiCrafter's
                frame-stride condition says how far apart in the source video the clip's frames were sampled,
                another quantity; DiCoDe decodes with a constant one (6 in its demos), :attr:`fs`.
            spatial: Must be ``None`` (this denoiser has no token-decoded spatial condition).
            positions: Relative positions ``(T,)`` in ``[0, 1]`` of the frames in their clip (default
                ``linspace(0, 1, T)``, ``[0]`` for one frame); frames before 0.5 read ``head``, the others ``rear``.

        Returns:
            The prediction ``(B, out_channels, T, H, W)`` in the dtype of ``sample``.

        Raises:
            ValueError: On a spatial condition or on inputs of the wrong shape.
        """
        if spatial is not None:
            raise ValueError("DiCoDeUNet takes no spatial condition (spatial must be None)")
        if sample.ndim != 5 or sample.shape[1] != self.in_channels:
            raise ValueError(f"sample must have shape (B, {self.in_channels}, T, H, W), got {tuple(sample.shape)}")
        b, _, t, height, width = sample.shape
        if height % self.downsample_factor or width % self.downsample_factor:
            raise ValueError(f"frame size {height}x{width} must be divisible by {self.downsample_factor} (UNet levels)")
        if head.ndim != 3 or head.shape[0] != b or head.shape[2] != self.context_dim:
            raise ValueError(
                f"head must have shape (B, N, context_dim) = ({b}, N, {self.context_dim}), got {tuple(head.shape)}"
            )
        if rear.shape != head.shape:
            raise ValueError(f"rear must have the shape of head {tuple(head.shape)}, got {tuple(rear.shape)}")
        timestep = torch.as_tensor(timestep, device=sample.device)
        if timestep.numel() == 1:
            timestep = timestep.reshape(1).expand(b)
        elif timestep.shape != (b,):
            raise ValueError(f"timestep must have shape ({b},), got {tuple(timestep.shape)}")
        if positions is None:
            positions = torch.linspace(0, 1, t, device=sample.device) if t > 1 else torch.zeros(1, device=sample.device)
        elif positions.shape != (t,):
            raise ValueError(f"positions must have shape ({t},), got {tuple(positions.shape)}")

        dtype = self.time_embed[0].weight.dtype
        first_half = (positions.to(sample.device) < 0.5).view(1, t, 1, 1)
        image = torch.where(first_half, head[:, None], rear[:, None]).to(dtype)
        context = (self.text_context.to(dtype)[None], rearrange(image, "b t n d -> (b t) n d"))
        cond = _Cond(self._embedding(timestep, b, t, dtype), context, t)

        h = rearrange(sample.to(dtype), "b c t h w -> (b t) c h w")
        skips = []
        for i, block in enumerate(self.input_blocks):
            h = block(h, cond)
            if i == 0 and self.init_attn is not None:
                h = self.init_attn(h, cond)
            skips.append(h)
        h = self.middle_block(h, cond)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), cond)
        return rearrange(self.out(h), "(b t) c h w -> b c t h w", t=t).to(sample.dtype)
