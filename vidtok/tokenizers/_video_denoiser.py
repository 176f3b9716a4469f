"""The video diffusion denoiser that decodes deep tokens (DiCoDe §3.2, Eq. 1).

A factorized spatial/temporal UNet: per-frame 2-D ResNet blocks (diffusers ``ResnetBlock2D``), spatial
transformers whose cross-attention reads the *keyframe tokens assigned to that frame*, and temporal
self-attention across the frames of the clip. diffusers has no UNet that takes a different context per
frame, so this one is written here from diffusers parts (``Timesteps``, ``TimestepEmbedding``,
``BasicTransformerBlock``, ``Attention``).

Which tokens condition which frame (``context_mode``):

* ``"half"`` (DiCoDe's ``headrear``): frames in the first half of the clip attend to the head tokens,
  the others to the rear tokens (supplementary §6). Temporal attention carries the rest.
* ``"interpolate"``: frame at position ``a = t / (T - 1)`` attends to ``(1 - a) * head + a * rear``.
* ``"both"``: every frame attends to the head and the rear tokens (with learned head/rear embeddings).

Every frame also knows its position ``a`` in the clip (an embedding added to the timestep embedding) and
the keyframe stride. Optionally (``spatial_condition``), a small transformer decodes the head and rear
tokens into a feature map and an RGB preview for each frame position, which are concatenated to the
noisy input: this is still a function of the deep tokens only, but hands the UNet the spatial layout
directly, which is what small models struggle to learn through cross-attention alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from vidtok.tokenizers._frame_encoders import sincos_2d
from vidtok.tokenizers._resampler import query_grid

__all__ = ["CONTEXT_MODES", "SpatialTokenDecoder", "VideoDenoiser", "frame_positions"]

CONTEXT_MODES = ("half", "interpolate", "both")


def frame_positions(num_frames: int, *, device: torch.device | None = None) -> torch.Tensor:
    """Relative positions ``t / (T - 1)`` of the frames of a clip (``[0.]`` for a single frame)."""
    if num_frames == 1:
        return torch.zeros(1, device=device)
    return torch.arange(num_frames, device=device, dtype=torch.float32) / (num_frames - 1)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class _SpatialTransformer(nn.Module):
    """GroupNorm → project → one ``BasicTransformerBlock`` (self + cross-attention + FF) → project back."""

    def __init__(self, channels: int, context_dim: int, head_dim: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.block = BasicTransformerBlock(
            channels, max(1, channels // head_dim), min(head_dim, channels), cross_attention_dim=context_dim
        )
        self.proj_out = _zero(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        y = self.proj_in(self.norm(x).flatten(2).transpose(1, 2))
        y = self.proj_out(self.block(y, encoder_hidden_states=context))
        return x + y.transpose(1, 2).reshape(n, c, h, w)


class _TemporalAttention(nn.Module):
    """Self-attention across the frames at every spatial position, with sinusoidal relative frame positions."""

    def __init__(self, channels: int, head_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.pos = Timesteps(channels, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.attn = Attention(query_dim=channels, heads=max(1, channels // head_dim), dim_head=min(head_dim, channels))
        _zero(self.attn.to_out[0])

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        bt, c, h, w = x.shape
        num_frames = positions.shape[0]
        b = bt // num_frames
        y = x.reshape(b, num_frames, c, h * w).permute(0, 3, 1, 2).reshape(b * h * w, num_frames, c)
        # Positions are relative (t / (T - 1)), so a model trained on frame subsets sees the true spacing.
        pos = self.pos(positions * 1000).to(x.dtype)
        y = self.attn(self.norm(y) + pos)
        y = y.reshape(b, h * w, num_frames, c).permute(0, 2, 3, 1).reshape(bt, c, h, w)
        return x + y


class _Level(nn.Module):
    """ResNet blocks, each optionally followed by a spatial transformer and temporal attention."""

    def __init__(
        self,
        cin: int,
        cout: int,
        *,
        num: int,
        temb: int,
        context_dim: int,
        attn: bool,
        temporal: bool,
        head_dim: int,
        groups: int,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            [
                ResnetBlock2D(in_channels=cin if i == 0 else cout, out_channels=cout, temb_channels=temb, groups=groups)
                for i in range(num)
            ]
        )
        self.attns = nn.ModuleList(
            [_SpatialTransformer(cout, context_dim, head_dim, groups) if attn else nn.Identity() for _ in range(num)]
        )
        self.temporals = nn.ModuleList(
            [_TemporalAttention(cout, head_dim) if temporal else nn.Identity() for _ in range(num)]
        )

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        for res, attn, temporal in zip(self.resnets, self.attns, self.temporals, strict=True):
            x = res(x, temb)
            if not isinstance(attn, nn.Identity):
                x = attn(x, context)
            if not isinstance(temporal, nn.Identity):
                x = temporal(x, positions)
        return x


class _PlainResnet(nn.Module):
    """A diffusers ``ResnetBlock2D`` without a time embedding, usable inside ``nn.Sequential``."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.block = ResnetBlock2D(in_channels=channels, out_channels=channels, temb_channels=None, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, None)


class SpatialTokenDecoder(nn.Module):
    """Decode head/rear deep tokens into a feature map and an RGB preview per frame position.

    A grid of queries (2-D sin-cos positions plus the frame-position embedding, plus — with ``dense`` — a
    dense map from all head and rear tokens and the frame position to every cell) goes through ``depth``
    transformer blocks that cross-attend to the tokens, then is upsampled by convolutions from ``H /
    2**upsample`` to the frame size. The preview is trained to match the frame (an auxiliary loss), so the
    token → layout mapping is learned by direct regression; the denoiser receives both as extra input
    channels. Measured on Shapes: with the dense path alone (``depth = 0``) a from-scratch model leaves the
    "mean image" plateau within a few hundred steps, while attention-only variants stayed on it.
    """

    def __init__(
        self,
        *,
        context_dim: int,
        dim: int,
        depth: int,
        head_dim: int,
        upsample: int,
        out_features: int,
        out_channels: int,
        emb_dim: int,
        dense: int = 0,
        num_tokens: int = 0,
        grid: int = 8,
        cell_channels: int = 32,
        res_blocks: int = 0,
        groups: int = 8,
        token_grid: bool = False,
        refine_channels: int = 0,
        refine_blocks: int = 2,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.cell_channels = cell_channels
        self.upsample = upsample
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_proj = nn.Linear(dim, dim)
        self.emb_proj = nn.Linear(emb_dim, dim)
        # Optional dense path: all tokens -> (hidden + frame position) -> a grid of features added to the
        # queries. A linear map reaches every grid cell from every token at once, which small models learn
        # much faster than routing by attention (the attention blocks then refine).
        self.grid = grid
        self.dense = None
        if dense:
            self.dense = nn.ModuleDict(
                {
                    "inp": nn.Linear(num_tokens * context_dim, dense),
                    "emb": nn.Linear(emb_dim, dense),
                    "out": nn.Linear(dense, grid * grid * cell_channels),  # a few channels per cell keeps it small
                    "cell": nn.Linear(cell_channels, dim),
                }
            )
        # Optional token-grid path: the N tokens of a keyframe laid out on the query_grid(N) cells (the
        # layout of the resampler's pooled queries), head and rear stacked as channels, convolved and
        # upsampled onto the query grid. Local, so it learns where things are much faster than a dense map.
        self.token_grid = None
        if token_grid:
            if num_tokens < 2 or num_tokens % 2:
                raise ValueError(f"token_grid reads head and rear tokens (an even count), got {num_tokens}")
            self.token_grid = nn.Sequential(
                nn.Conv2d(2 * context_dim, dim, 1), nn.SiLU(), nn.Conv2d(dim, dim, 3, padding=1)
            )
        self.blocks = nn.ModuleList(
            [
                BasicTransformerBlock(dim, max(1, dim // head_dim), min(head_dim, dim), cross_attention_dim=context_dim)
                for _ in range(depth)
            ]
        )
        self.norm = nn.LayerNorm(dim)
        # Upsampling: optional ResNet blocks at every resolution (``res_blocks``) turn the coarse grid into
        # sharp edges; without them a 32-pixel frame is drawn from an 8x8 grid by two convolutions.
        res = lambda c: _PlainResnet(c, groups)  # noqa: E731
        layers: list[nn.Module] = []
        ch = dim
        for i in range(upsample):
            layers += [res(ch) for _ in range(res_blocks)]
            nxt = max(out_features, dim // 2 ** (i + 1))
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, nxt, 3, padding=1), nn.SiLU()]
            ch = nxt
        layers += [res(ch) for _ in range(res_blocks)]
        layers += [nn.Conv2d(ch, out_features, 3, padding=1), nn.SiLU()]
        self.up = nn.Sequential(*layers)
        # Optional full-resolution refinement: a wider residual branch at the frame size whose output layer
        # starts at zero, so it can be added to a trained decoder without changing its output. Measured on
        # Shapes: the upsampler's last stage (32 channels at 32x32) draws 5-pixel circles and squares alike.
        self.refine = None
        if refine_channels:
            self.refine = nn.Sequential(
                nn.Conv2d(out_features, refine_channels, 3, padding=1),
                *[res(refine_channels) for _ in range(refine_blocks)],
                nn.SiLU(),
                _zero(nn.Conv2d(refine_channels, out_features, 3, padding=1)),
            )
        self.preview = nn.Conv2d(out_features, out_channels, 1)

    def forward(
        self, context: torch.Tensor, frame_emb: torch.Tensor, height: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``context`` (F, L, D), ``frame_emb`` (F, E) → features (F, C, H, W), preview (F, out, H, W)."""
        scale = 2**self.upsample
        if height % scale or width % scale:
            raise ValueError(f"spatial condition: frame size {height}x{width} must be divisible by {scale}")
        gh, gw = height // scale, width // scale
        pos = self.pos_proj(sincos_2d(gh, gw, self.dim, device=context.device, dtype=context.dtype))
        q = self.query + pos[None] + self.emb_proj(frame_emb)[:, None]
        if self.dense is not None:
            if (gh, gw) != (self.grid, self.grid):
                raise ValueError(
                    f"the dense spatial condition was built for a {self.grid}x{self.grid} grid, got {gh}x{gw}"
                )
            hidden = F.silu(self.dense["inp"](context.flatten(1)) + self.dense["emb"](frame_emb))
            cells = self.dense["out"](hidden).view(q.shape[0], gh * gw, self.cell_channels)
            q = q + self.dense["cell"](cells)
        if self.token_grid is not None:
            f_, n2, d = context.shape
            rows, cols = query_grid(n2 // 2)
            cells = context.reshape(f_, 2, rows, cols, d).permute(0, 1, 4, 2, 3).reshape(f_, 2 * d, rows, cols)
            cells = F.interpolate(self.token_grid(cells), size=(gh, gw), mode="nearest")
            q = q + cells.flatten(2).transpose(1, 2)
        for block in self.blocks:
            q = block(q, encoder_hidden_states=context)
        grid = self.norm(q).transpose(1, 2).reshape(q.shape[0], self.dim, gh, gw)
        features = self.up(grid)
        if self.refine is not None:
            features = features + self.refine(features)
        return features, self.preview(features)


class VideoDenoiser(nn.Module):
    """Factorized spatial/temporal UNet predicting the diffusion target of a clip (DiCoDe §3.2, Eq. 1).

    Args:
        in_channels: Channels of the (pixel or latent) frames.
        context_dim: Deep token width ``D``.
        block_channels: Channels per resolution level (each level but the last halves the resolution).
        layers_per_block: ResNet blocks per level on the way down (one more on the way up).
        attention_levels: Per level, whether spatial transformers (cross-attention to the tokens) are used.
        temporal_levels: Per level, whether temporal attention is used.
        head_dim: Width of an attention head.
        norm_groups: GroupNorm groups.
        context_mode: ``"half"``, ``"interpolate"`` or ``"both"`` (module docstring).
        spatial_condition: Concatenate the :class:`SpatialTokenDecoder` features and preview to the input.
        spatial_dim: Width of the spatial token decoder.
        spatial_depth: Its transformer blocks.
        spatial_upsample: Its grid is ``H / 2**spatial_upsample``.
        spatial_features: Feature channels it hands to the UNet.
        spatial_dense: Hidden width of its dense path from all head and rear tokens to the grid (0: off).
        spatial_tokens: Head + rear tokens (``2 N``) the dense path reads (set by the tokenizer).
        spatial_grid: Grid side the dense path produces (frames of ``spatial_grid * 2**spatial_upsample``).
        spatial_cell_channels: Channels per grid cell the dense path produces.
        spatial_res_blocks: ResNet blocks at every resolution of the spatial decoder's upsampler.
        spatial_token_grid: Also read the tokens as a ``query_grid(N)`` grid through convolutions (for
            resamplers with ``pooled_queries``, whose tokens keep the frame layout).
        spatial_refine_channels: Width of a full-resolution residual refinement of the spatial decoder's
            features (0: none); its output layer starts at zero, so adding it to a trained decoder
            (:meth:`~vidtok.tokenizers.base.VideoTokenizer.with_decoder_config`) keeps the output.
        spatial_refine_blocks: ResNet blocks of that refinement.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        context_dim: int,
        block_channels: Sequence[int] = (32, 64, 128),
        layers_per_block: int = 1,
        attention_levels: Sequence[bool] = (False, True, True),
        temporal_levels: Sequence[bool] = (False, True, True),
        head_dim: int = 32,
        norm_groups: int = 8,
        context_mode: str = "half",
        spatial_condition: bool = True,
        spatial_dim: int = 128,
        spatial_depth: int = 2,
        spatial_upsample: int = 2,
        spatial_features: int = 16,
        spatial_dense: int = 0,
        spatial_tokens: int = 0,
        spatial_grid: int = 8,
        spatial_cell_channels: int = 32,
        spatial_res_blocks: int = 0,
        spatial_token_grid: bool = False,
        spatial_refine_channels: int = 0,
        spatial_refine_blocks: int = 2,
    ) -> None:
        super().__init__()
        if context_mode not in CONTEXT_MODES:
            raise ValueError(f"context_mode must be one of {CONTEXT_MODES}, got {context_mode!r}")
        levels = len(block_channels)
        if len(attention_levels) != levels or len(temporal_levels) != levels:
            raise ValueError("attention_levels and temporal_levels need one entry per block_channels level")
        self.context_mode = context_mode
        self.in_channels = in_channels
        self.downsample_factor = 2 ** (levels - 1)
        base = block_channels[0]
        emb = base * 4
        self.time_proj = Timesteps(base, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(base, emb)
        self.position_embedding = TimestepEmbedding(base, emb)  # frame position a in [0, 1], scaled by 1000
        self.stride_embedding = TimestepEmbedding(base, emb)  # keyframe stride (DiCoDe's fs condition)
        # Head / rear tags, only where both token sets are read together (a dead parameter otherwise).
        needs_tags = context_mode == "both" or spatial_condition
        self.keyframe_embedding = nn.Parameter(torch.zeros(2, context_dim)) if needs_tags else None
        self.spatial = None
        extra = 0
        if spatial_condition:
            self.spatial = SpatialTokenDecoder(
                context_dim=context_dim,
                dim=spatial_dim,
                depth=spatial_depth,
                head_dim=head_dim,
                upsample=spatial_upsample,
                out_features=spatial_features,
                out_channels=in_channels,
                emb_dim=emb,
                dense=spatial_dense,
                num_tokens=spatial_tokens,
                grid=spatial_grid,
                cell_channels=spatial_cell_channels,
                res_blocks=spatial_res_blocks,
                groups=norm_groups,
                token_grid=spatial_token_grid,
                refine_channels=spatial_refine_channels,
                refine_blocks=spatial_refine_blocks,
            )
            extra = spatial_features + in_channels
        self.conv_in = nn.Conv2d(in_channels + extra, base, 3, padding=1)
        common = {"temb": emb, "context_dim": context_dim, "head_dim": head_dim, "groups": norm_groups}
        self.down = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        ch = base
        for i, c in enumerate(block_channels):
            self.down.append(
                _Level(ch, c, num=layers_per_block, attn=attention_levels[i], temporal=temporal_levels[i], **common)
            )
            self.downsamplers.append(nn.Conv2d(c, c, 3, stride=2, padding=1) if i < levels - 1 else nn.Identity())
            ch = c
        self.mid = _Level(ch, ch, num=1, attn=attention_levels[-1], temporal=temporal_levels[-1], **common)
        self.up = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for i in reversed(range(levels)):
            c = block_channels[i]
            self.upsamplers.append(nn.Conv2d(ch, ch, 3, padding=1) if i < levels - 1 else nn.Identity())
            self.up.append(
                _Level(
                    ch + c, c, num=layers_per_block + 1, attn=attention_levels[i], temporal=temporal_levels[i], **common
                )
            )
            ch = c
        self.norm_out = nn.GroupNorm(norm_groups, ch, eps=1e-6)
        self.conv_out = _zero(nn.Conv2d(ch, in_channels, 3, padding=1))

    # ------------------------------------------------------------------ conditioning
    def frame_context(self, head: torch.Tensor, rear: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Per-frame cross-attention context ``(B * T, L, D)`` for the given ``context_mode``."""
        b, t = head.shape[0], positions.shape[0]
        if self.context_mode == "half":
            first = (positions < 0.5).view(1, t, 1, 1)
            ctx = torch.where(first, head[:, None], rear[:, None])
        elif self.context_mode == "interpolate":
            a = positions.view(1, t, 1, 1).to(head.dtype)
            ctx = (1 - a) * head[:, None] + a * rear[:, None]
        else:
            ctx = self.both_context(head, rear)[:, None].expand(b, t, -1, -1)
        return ctx.reshape(b * t, *ctx.shape[2:])

    def both_context(self, head: torch.Tensor, rear: torch.Tensor) -> torch.Tensor:
        """Head and rear tokens side by side, tagged with learned keyframe embeddings ``(B, 2N, D)``."""
        return torch.cat([head + self.keyframe_embedding[0], rear + self.keyframe_embedding[1]], dim=1)

    def frame_embedding(self, timestep: torch.Tensor, positions: torch.Tensor, stride: torch.Tensor) -> torch.Tensor:
        """Timestep + frame-position + stride embedding per frame ``(B * T, E)``."""
        b, t = timestep.shape[0], positions.shape[0]
        proj = lambda v: self.time_proj(v.flatten()).to(self.conv_in.weight.dtype)  # noqa: E731
        temb = self.time_embedding(proj(timestep))
        pemb = self.position_embedding(proj(positions * 1000))
        semb = self.stride_embedding(proj(stride.float()))
        return ((temb + semb)[:, None] + pemb[None]).reshape(b * t, -1)

    def spatial_condition(
        self,
        head: torch.Tensor,
        rear: torch.Tensor,
        positions: torch.Tensor,
        stride: torch.Tensor,
        height: int,
        width: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The token-decoded features ``(B*T, C, H, W)`` and preview ``(B, C_in, T, H, W)`` of every frame."""
        if self.spatial is None:
            raise RuntimeError("this denoiser was built with spatial_condition=False")
        b, t = head.shape[0], positions.shape[0]
        emb = self.frame_embedding(torch.zeros(b, device=head.device), positions, stride)
        ctx = self.both_context(head, rear)[:, None].expand(b, t, -1, -1).reshape(b * t, -1, head.shape[-1])
        features, preview = self.spatial(ctx, emb, height, width)
        return features, preview.reshape(b, t, *preview.shape[1:]).transpose(1, 2)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        head: torch.Tensor,
        rear: torch.Tensor,
        stride: torch.Tensor,
        spatial: tuple[torch.Tensor, torch.Tensor] | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the diffusion target.

        Args:
            sample: Noisy clip ``(B, C, T, H, W)``.
            timestep: ``(B,)`` diffusion timesteps.
            head: Head keyframe tokens ``(B, N, D)``.
            rear: Rear keyframe tokens ``(B, N, D)``.
            stride: ``(B,)`` keyframe stride of the clip.
            spatial: Precomputed :meth:`spatial_condition` (it does not depend on the noise level).
            positions: Relative positions ``(T,)`` in ``[0, 1]`` of the given frames within their clip
                (default: ``t / (T - 1)``, a whole clip); training may pass a subset of a clip's frames.

        Returns:
            The prediction ``(B, C, T, H, W)``.
        """
        b, c, t, h, w = sample.shape
        if h % self.downsample_factor or w % self.downsample_factor:
            raise ValueError(f"frame size {h}x{w} must be divisible by {self.downsample_factor} (UNet levels)")
        if positions is None:
            positions = frame_positions(t, device=sample.device)
        elif positions.shape != (t,):
            raise ValueError(f"positions must have shape ({t},), got {tuple(positions.shape)}")
        emb = self.frame_embedding(timestep, positions, stride)
        context = self.frame_context(head, rear, positions)
        x = sample.transpose(1, 2).reshape(b * t, c, h, w)
        if self.spatial is not None:
            if spatial is None:
                spatial = self.spatial_condition(head, rear, positions, stride, h, w)
            features, preview = spatial
            x = torch.cat([x, features, preview.transpose(1, 2).reshape(b * t, c, h, w)], dim=1)
        x = self.conv_in(x)
        skips = []
        for level, down in zip(self.down, self.downsamplers, strict=True):
            x = level(x, emb, context, positions)
            skips.append(x)
            x = down(x)
        x = self.mid(x, emb, context, positions)
        for level, up in zip(self.up, self.upsamplers, strict=True):
            if not isinstance(up, nn.Identity):
                x = up(F.interpolate(x, scale_factor=2.0, mode="nearest"))
            x = level(torch.cat([x, skips.pop()], dim=1), emb, context, positions)
        x = self.conv_out(F.silu(self.norm_out(x)))
        return x.reshape(b, t, c, h, w).transpose(1, 2)
