"""NOVA's block-causal temporal transformer: bidirectional inside a frame, causal across frames.

Deng et al. 2024, *Autoregressive Video Generation without Vector Quantization* (NOVA, arXiv:2412.14169),
§3.2 "temporal autoregressive modeling", Eq. 2: every token of frame ``f`` sees the text prompt, the motion
tokens, the begin-of-video (BOV) slots and frames ``< f``, and all tokens of its own frame. Attention runs
through :func:`torch.nn.functional.scaled_dot_product_attention` with a boolean block mask built from block ids,
and a key/value cache holds past frames so generation feeds one frame at a time.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks it up in this module)
from diffusers.configuration_utils import register_to_config
from torch import nn

from vidtok.backbones.base import BACKBONES, Backbone
from vidtok.modeling_utils import Component
from vidtok.outputs import BackboneOutput

__all__ = ["BlockCausalCache", "BlockCausalTransformer", "PostNormBlock", "sincos_embedding"]

_TIME_FEATURES = 256  # sine-cosine features under a learned time embedding (NOVA's VideoPosEmbed: 128 frequencies)


def sincos_embedding(positions: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """Fixed sine-cosine features ``(..., dim)`` of (possibly fractional) positions ``(...)`` (Vaswani et al. 2017).

    Fixed rather than learned so that unseen lengths and resolutions still get distinct, smoothly varying
    features (NOVA §3.2: "convenient for temporal and spatial extrapolation").
    """
    if dim % 2:
        raise ValueError(f"sincos_embedding needs an even dim, got {dim}")
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=positions.device, dtype=torch.float32) * (-math.log(base) / half))
    args = positions.float()[..., None] * freqs
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class BlockCausalCache:
    """Keys and values of the positions a :class:`BlockCausalTransformer` has seen, with their block ids.

    Returned by the backbone with ``use_cache=True`` and passed back as ``past_key_values``; the backbone
    appends to it in place. With ``window`` set, only the first block (the prompt prefix and the BOV slots) and
    the blocks of the last ``window`` ids stay after each call: a sliding window over frames, so memory and time per
    frame stay flat however long the video grows.

    Attributes:
        keys: Per layer ``(B, heads, L, head_dim)`` (``None`` before the first call).
        values: Per layer, like ``keys``.
        block_ids: ``(L,)`` block id of every cached position.
        window: Blocks kept besides the first, or ``None`` to keep everything.
    """

    def __init__(self, num_layers: int, window: int | None = None) -> None:
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.block_ids: torch.Tensor | None = None
        self.window = window

    def get_seq_length(self) -> int:
        """Positions held (the :meth:`~vidtok.backbones.base.Backbone.cache_length` protocol)."""
        return 0 if self.block_ids is None else int(self.block_ids.shape[0])

    @property
    def last_block(self) -> int | None:
        """The highest block id held, or ``None`` when empty."""
        return None if self.block_ids is None or not self.block_ids.numel() else int(self.block_ids.max())

    def _evict(self) -> None:
        if self.window is None or self.block_ids is None:
            return
        # A later block (id > last) attends to the first block and ids >= its own - window > last - window.
        keep = (self.block_ids == self.block_ids.min()) | (self.block_ids > self.block_ids.max() - self.window)
        if bool(keep.all()):
            return
        index = torch.nonzero(keep).squeeze(-1)
        self.block_ids = self.block_ids[index]
        for i, (k, v) in enumerate(zip(self.keys, self.values)):
            if k is not None:
                self.keys[i] = k.index_select(2, index.to(k.device))
                self.values[i] = v.index_select(2, index.to(v.device))


class PostNormBlock(nn.Module):
    """``x + LN(Attn(x))``, then ``x + LN(MLP(x))``: NOVA's "post-norm" branches (§3.3, Fig. 8b).

    Shared by the temporal backbone and NOVA's set-by-set spatial decoder (``vidtok.models.nova``).

    The LayerNorm sits on each residual branch before the add (as in Swin-V2), not on the stream: the paper
    found pre-norm overflowed under mixed precision when training from scratch.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, eps: float) -> None:
        super().__init__()
        from timm.layers import Mlp

        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.norm2 = nn.LayerNorm(dim, eps=eps)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, cache: BlockCausalCache | None, layer: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x', k, v)``: the block's output and the new positions' keys and values (to cache).

        Args:
            x: ``(B, L, D)``.
            mask: A boolean attention mask broadcastable to ``(B, heads, L, past + L)`` (``True``: attend), or
                ``None`` (full attention).
            cache: Keys and values of earlier positions (layer ``layer``), or ``None``.
            layer: This block's index in ``cache``.
        """
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        new_k, new_v = k, v
        if cache is not None and cache.keys[layer] is not None:
            k = torch.cat([cache.keys[layer], k], dim=2)
            v = torch.cat([cache.values[layer], v], dim=2)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.norm1(self.proj(attn.transpose(1, 2).reshape(b, n, d)))
        x = x + self.norm2(self.mlp(x))
        return x, new_k, new_v


class _ScaleShift(nn.Module):
    """The low-rank Scaling and Shift layer (NOVA §3.2, Eq. 3; rank 24 in the paper, Fig. 8a–9)."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, rank, bias=False)
        self.up = nn.Linear(rank, 2 * dim)

    def forward(self, anchor: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        scale, shift = self.up(self.down(F.silu(features))).chunk(2, dim=-1)
        return torch.addcmul(anchor + shift, anchor, scale)


@BACKBONES.register("block_causal")
class BlockCausalTransformer(Component, Backbone):
    """NOVA's temporal transformer: a block-causal encoder over [prompt | BOV | frames] (arXiv:2412.14169 §3.2).

    **Blocks.** Every input position carries a block id (``block_ids``, non-decreasing along the sequence):
    a position attends to every position whose block id is not larger than its own, so attention is
    bidirectional inside a block and causal across blocks. NOVA's layout gives the prompt, the motion tokens
    and the BOV slots block 0 and frame ``f`` block ``f + 1`` (its output predicts frame ``f + 1``). Without
    ``block_ids`` every position is its own block: a plain causal transformer, which is what generic callers
    of the backbone contract get.

    **Positions** (§3.2: "1-D and 2-D sine-cosine embeddings ... for temporal and spatial extrapolation").
    ``position_ids`` ``(B, L)`` are time indices and get 1-D features; ``(B, L, 3)`` are ``(t, y, x)`` and get
    1-D time features plus 2-D spatial ones (half the channels for ``y``, half for ``x``). A row of NaN marks a
    position without one (the prompt). They are added to the inputs; being fixed, they extrapolate to more
    frames and larger grids than seen in training. ``None`` adds nothing.

    With ``time_embedding="mlp"`` the time features are learned instead: ``LayerNorm(MLP(sincos₂₅₆(t)))``, the
    time path of the released NOVA checkpoints (``VideoPosEmbed``); the spatial features stay fixed.

    **Layers.** ``num_layers`` post-norm blocks (``x + LN(f(x))``, §3.3) with SDPA attention and a GELU MLP,
    then a final LayerNorm.

    **Scaling and Shift layer** (§3.2, Eq. 3, ``mixer_rank``; 24 in the paper): :meth:`scale_and_shift`
    re-expresses a frame's features as a channel-wise affine map of the BOV slots' output (the anchor):
    ``anchor · (1 + γ) + β`` with ``(γ, β)`` from a rank-``r`` MLP of the frame's own features. The AR model
    applies it to frames after the first (for which the paper sets γ = 1, β = 0: the anchor itself). The
    anchor is used un-normalized, as NOVA's released code does.

    **Cache and window.** ``use_cache=True`` returns a :class:`BlockCausalCache`; feed the next block with it (its
    block ids must be larger than every cached one). With ``attention_window=w`` a block attends to the first
    block (prompt and BOV) and the ``w`` blocks before its own only, in full passes and cached ones alike, and
    the cache drops every block no later block can see: a sliding window over frames whose time and memory per
    frame stay flat. ``new_cache(window=w)`` applies a window at inference only (to a model trained without one).
    NOVA itself uses no window (every frame sees all earlier ones).

    Args:
        hidden_size: Width ``D`` (NOVA-0.6B: 1024).
        num_layers: Transformer blocks (NOVA: 16).
        num_heads: Attention heads; must divide ``hidden_size``.
        mlp_ratio: MLP expansion (NOVA: 4).
        qkv_bias: Bias on the query/key/value projection (NOVA: yes).
        norm_eps: LayerNorm epsilon.
        mixer_rank: Rank of the Scaling and Shift layer; ``None``: no such layer.
        attention_window: Blocks before its own that a block attends to, besides the first; ``None``: all.
        time_embedding: ``"sincos"`` (fixed features of the time index) or ``"mlp"`` (256 sine-cosine features
            through ``Linear → SiLU → Linear`` and a LayerNorm, as the released NOVA models do).

    Example:
        >>> import torch
        >>> from vidtok.backbones.block_causal import BlockCausalTransformer
        >>> net = BlockCausalTransformer(**BlockCausalTransformer.tiny_config()).eval()
        >>> x = torch.randn(1, 6, net.hidden_size)
        >>> blocks = torch.tensor([0, 0, 1, 1, 2, 2])  # a 2-token prefix, then two 2-token frames
        >>> full = net(x, block_ids=blocks).last_hidden_state
        >>> first = net(x[:, :4], block_ids=blocks[:4], use_cache=True)
        >>> last = net(x[:, 4:], block_ids=blocks[4:], past_key_values=first.past_key_values)
        >>> torch.allclose(last.last_hidden_state, full[:, 4:], atol=1e-5)
        True
    """

    @register_to_config
    def __init__(
        self,
        *,
        hidden_size: int = 1024,
        num_layers: int = 16,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        mixer_rank: int | None = None,
        attention_window: int | None = None,
        time_embedding: str = "sincos",
    ):
        super().__init__()
        for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BlockCausalTransformer: {name} must be a positive int, got {value!r}")
        if hidden_size % num_heads:
            raise ValueError(f"BlockCausalTransformer: num_heads={num_heads} must divide hidden_size={hidden_size}")
        if hidden_size % 4:
            raise ValueError(
                f"BlockCausalTransformer: hidden_size must be a multiple of 4 (2-D sine-cosine positions), "
                f"got {hidden_size}"
            )
        if mixer_rank is not None and (
            isinstance(mixer_rank, bool) or not isinstance(mixer_rank, int) or mixer_rank < 1
        ):
            raise ValueError(f"BlockCausalTransformer: mixer_rank must be a positive int or None, got {mixer_rank!r}")
        if attention_window is not None and (
            isinstance(attention_window, bool) or not isinstance(attention_window, int) or attention_window < 1
        ):
            raise ValueError(
                f"BlockCausalTransformer: attention_window must be a positive int or None, got {attention_window!r}"
            )
        if time_embedding not in ("sincos", "mlp"):
            raise ValueError(
                f"BlockCausalTransformer: time_embedding must be 'sincos' or 'mlp', got {time_embedding!r}"
            )
        if time_embedding == "mlp":
            d = hidden_size
            self.time_mlp = nn.Sequential(nn.Linear(_TIME_FEATURES, d), nn.SiLU(), nn.Linear(d, d))
            self.time_norm = nn.LayerNorm(hidden_size, eps=norm_eps)
        self.layers = nn.ModuleList(
            PostNormBlock(hidden_size, num_heads, mlp_ratio, qkv_bias, norm_eps) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden_size, eps=norm_eps)
        self.mixer = _ScaleShift(hidden_size, mixer_rank) if mixer_rank is not None else None

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """Two 32-wide layers with a rank-4 Scaling and Shift layer."""
        return {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "mixer_rank": 4}

    @property
    def hidden_size(self) -> int:
        """The width ``D``."""
        return int(self.config.hidden_size)

    def new_cache(self, window: int | None = None) -> BlockCausalCache:
        """An empty cache; ``window`` (default ``attention_window``) bands the attention of the calls that use it."""
        return BlockCausalCache(len(self.layers), self.config.attention_window if window is None else window)

    def position_embedding(self, position_ids: torch.Tensor) -> torch.Tensor:
        """Sine-cosine features of ``(..., L)`` time indices or ``(..., L, 3)`` ``(t, y, x)``; NaN rows give 0."""
        d = self.hidden_size
        if position_ids.ndim >= 3 and position_ids.shape[-1] == 3:
            pos = position_ids.float()
            valid = ~torch.isnan(pos).any(-1, keepdim=True)
            pos = torch.nan_to_num(pos)
            emb = self._time_features(pos[..., 0]) + torch.cat(
                [sincos_embedding(pos[..., 1], d // 2), sincos_embedding(pos[..., 2], d // 2)], dim=-1
            )
        else:
            pos = position_ids.float()
            valid = ~torch.isnan(pos)[..., None]
            emb = self._time_features(torch.nan_to_num(pos))
        return emb * valid

    def _time_features(self, t: torch.Tensor) -> torch.Tensor:
        if self.config.get("time_embedding", "sincos") == "mlp":
            weight = self.time_mlp[0].weight
            return self.time_norm(self.time_mlp(sincos_embedding(t, _TIME_FEATURES).to(weight.dtype))).float()
        return sincos_embedding(t, self.hidden_size)

    def scale_and_shift(self, anchor: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """NOVA's Scaling and Shift layer: ``anchor · (1 + γ) + β``, ``(γ, β)`` a rank-``r`` MLP of ``features``.

        Args:
            anchor: The BOV slots' output ``(..., N, D)`` (one per spatial position).
            features: A frame's output ``(..., N, D)``, position for position.

        Raises:
            RuntimeError: If the backbone has no such layer (``mixer_rank=None``).
        """
        if self.mixer is None:
            raise RuntimeError("this BlockCausalTransformer has no Scaling and Shift layer (mixer_rank=None)")
        if anchor.shape != features.shape:
            raise ValueError(
                f"scale_and_shift: anchor {tuple(anchor.shape)} and features {tuple(features.shape)} must match"
            )
        return self.mixer(anchor, features)

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: BlockCausalCache | None = None,
        use_cache: bool = False,
        *,
        block_ids: torch.Tensor | None = None,
        attention_window: int | None = None,
    ) -> BackboneOutput:
        """Hidden states ``(B, L, D)`` of new positions (see :class:`~vidtok.backbones.base.Backbone`).

        Args:
            inputs_embeds: ``(B, L, D)``.
            attention_mask: ``(B, past + L)``: 1 for real positions, 0 for padding (masked as keys).
            position_ids: ``(B, L)`` time indices or ``(B, L, 3)`` ``(t, y, x)`` (NaN rows: no position), or
                ``None``.
            past_key_values: A :class:`BlockCausalCache` from an earlier call, or ``None``.
            use_cache: Append the new keys and values to the cache (a new one if ``None``) and return it.
            block_ids: ``(L,)`` integer block ids, non-decreasing, shared by the batch, all larger than every
                cached block id. ``None``: one block per position, continuing after the cache.
            attention_window: The band of this call (blocks before a query's own it sees, besides the first);
                ``None``: the cache's window, else ``attention_window`` of the config. A full pass with the window
                an inference-only cache uses (``new_cache(window=w)``) reproduces what that cache computes.
        """
        if inputs_embeds.ndim != 3 or inputs_embeds.shape[-1] != self.hidden_size:
            raise ValueError(f"inputs_embeds must be (B, L, {self.hidden_size}), got {tuple(inputs_embeds.shape)}")
        if past_key_values is not None and not isinstance(past_key_values, BlockCausalCache):
            raise TypeError(
                f"past_key_values must be a BlockCausalCache (as returned by this backbone), got "
                f"{type(past_key_values).__name__}"
            )
        b, n, _ = inputs_embeds.shape
        device = inputs_embeds.device
        cache = past_key_values
        past = cache.get_seq_length() if cache is not None else 0
        last = cache.last_block if cache is not None else None
        if block_ids is None:
            start = 0 if last is None else last + 1
            block_ids = torch.arange(start, start + n, device=device)
        block_ids = self._check_block_ids(block_ids, n, last, device)

        x = inputs_embeds
        if position_ids is not None:
            if tuple(position_ids.shape[:2]) not in ((b, n), (1, n)):
                raise ValueError(
                    f"position_ids must be (B, L) or (B, L, 3) with (B, L) = {(b, n)}, got {tuple(position_ids.shape)}"
                )
            x = x + self.position_embedding(position_ids.to(device)).to(x.dtype)

        keys_blocks = block_ids if cache is None or cache.block_ids is None else torch.cat([cache.block_ids, block_ids])
        mask = keys_blocks[None, :] <= block_ids[:, None]  # (L, past + L)
        window = cache.window if cache is not None else self.config.attention_window
        if attention_window is not None:
            if cache is not None and cache.window != attention_window:
                raise ValueError(
                    f"attention_window={attention_window} differs from the cache's window {cache.window}: the cache "
                    "keeps only what its own window can see"
                )
            window = attention_window
        if window is not None:
            # The first block (prompt + BOV) and the `window` blocks before a query's own: the same band with and
            # without the cache, so a windowed cache reproduces a windowed full pass exactly.
            first = keys_blocks.min()
            mask = mask & ((keys_blocks[None, :] == first) | (keys_blocks[None, :] >= block_ids[:, None] - window))
        if attention_mask is not None:
            if tuple(attention_mask.shape) != (b, past + n):
                raise ValueError(
                    f"attention_mask must be (B, past + L) = {(b, past + n)}, got {tuple(attention_mask.shape)}"
                )
            mask = mask[None] & attention_mask.to(device=device, dtype=torch.bool)[:, None, :]
            # A padded query that may attend nothing but padding would produce NaN; let every position see itself.
            own = torch.arange(past + n, device=device)[None, :] == torch.arange(past, past + n, device=device)[:, None]
            mask = mask | own[None]
            mask = mask[:, None]  # (B, 1, L, past + L)

        if use_cache and cache is None:
            cache = self.new_cache()
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, mask, cache, i)
            if use_cache:
                cache.keys[i] = k if cache.keys[i] is None else torch.cat([cache.keys[i], k], dim=2)
                cache.values[i] = v if cache.values[i] is None else torch.cat([cache.values[i], v], dim=2)
        if use_cache:
            cache.block_ids = keys_blocks
            cache._evict()
        return BackboneOutput(last_hidden_state=self.norm(x), past_key_values=cache if use_cache else None)

    @staticmethod
    def _check_block_ids(block_ids: Any, n: int, last: int | None, device: torch.device) -> torch.Tensor:
        block_ids = torch.as_tensor(block_ids, device=device)
        if block_ids.is_floating_point() or block_ids.dtype == torch.bool or tuple(block_ids.shape) != (n,):
            raise ValueError(
                f"block_ids must be integer ids of shape (L,) = ({n},), got {block_ids.dtype} {tuple(block_ids.shape)}"
            )
        block_ids = block_ids.long()
        if n > 1 and bool((block_ids[1:] < block_ids[:-1]).any()):
            raise ValueError(f"block_ids must be non-decreasing along the sequence, got {block_ids.tolist()}")
        if last is not None and n and int(block_ids[0]) <= last:
            raise ValueError(
                f"block_ids must continue after the cache (every id > {last}, the last cached block), got "
                f"{int(block_ids[0])}: a cached block cannot see positions added later"
            )
        return block_ids
