"""The query transformer that compresses a frame's patch tokens into a few deep tokens (DiCoDe §3.1).

DiCoDe uses IP-Adapter's Perceiver-style resampler (supplementary §6): ``num_queries`` learned latents
attend to the concatenation of the projected frame tokens and themselves over ``depth`` layers (attention
+ feed-forward, each residual), followed by an output projection and a final LayerNorm. The official
size is 4 layers, 12 heads × 64, 16 queries, 1280 → 1024 (width 1024).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import nn

__all__ = ["PerceiverResampler"]


class _FeedForward(nn.Sequential):
    def __init__(self, dim: int, mult: int) -> None:
        super().__init__(
            nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(), nn.Linear(dim * mult, dim, bias=False)
        )


class _PerceiverLayer(nn.Module):
    """Latents attend to ``cat(frame tokens, latents)``, then a feed-forward; both residual."""

    def __init__(self, dim: int, heads: int, dim_head: int, ff_mult: int) -> None:
        super().__init__()
        self.norm_x = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.attn = Attention(query_dim=dim, heads=heads, dim_head=dim_head, bias=False, out_bias=False)
        self.ff = _FeedForward(dim, ff_mult)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        q = self.norm_latents(latents)
        kv = torch.cat([self.norm_x(x), q], dim=1)
        latents = latents + self.attn(q, encoder_hidden_states=kv)
        return latents + self.ff(latents)


def query_grid(num_queries: int) -> tuple[int, int]:
    """The ``(rows, cols)`` layout of ``num_queries`` tokens: the most square factorization, rows <= cols.

    >>> query_grid(16), query_grid(8), query_grid(32)
    ((4, 4), (2, 4), (4, 8))
    """
    rows = max(d for d in range(1, math.isqrt(num_queries) + 1) if num_queries % d == 0)
    return rows, num_queries // rows


def _grid_pool(x: torch.Tensor, num_queries: int) -> torch.Tensor:
    """Average-pool a square patch grid ``(B, [1 +] g*g, C)`` to ``(B, num_queries, C)`` (row-major cells)."""
    b, n, c = x.shape
    g = math.isqrt(n)
    if g * g != n:  # a leading CLS token
        x, g = x[:, 1:], math.isqrt(n - 1)
        if g * g != n - 1:
            raise ValueError(f"pooled_queries needs a square grid of patch tokens, got {n} tokens")
    grid = x.transpose(1, 2).reshape(b, c, g, g)
    return F.adaptive_avg_pool2d(grid, query_grid(num_queries)).flatten(2).transpose(1, 2)


class PerceiverResampler(nn.Module):
    """``num_queries`` learned queries attending to a frame's tokens (DiCoDe §3.1, supplementary §6).

    Args:
        input_dim: Width of the frame encoder's tokens (1280 for ViT-H/14).
        dim: Internal width (1024 in DiCoDe).
        depth: Perceiver layers (4).
        heads: Attention heads (12).
        dim_head: Width per head (64).
        num_queries: Deep tokens per frame ``N`` (16; 8/16/32 in Table 3).
        output_dim: Deep token width ``D`` (1024).
        ff_mult: Feed-forward expansion (4).
        pooled_queries: Add to each query the average of one cell of the frame's patch grid (a
            :func:`query_grid` layout: 4 × 4 cells for 16 queries, 2 × 4 for 8, 4 × 8 for 32). DiCoDe's
            queries are purely learned (``False``); starting them on a spatial
            layout lets small models trained from scratch keep *where* things are from the first step
            (the attention layers then refine what each token carries).
    """

    def __init__(
        self,
        *,
        input_dim: int,
        dim: int,
        depth: int,
        heads: int,
        dim_head: int,
        num_queries: int,
        output_dim: int,
        ff_mult: int = 4,
        pooled_queries: bool = False,
    ) -> None:
        super().__init__()
        self.pooled_queries = pooled_queries
        self.latents = nn.Parameter(torch.randn(1, num_queries, dim) / dim**0.5)
        self.proj_in = nn.Linear(input_dim, dim)
        self.layers = nn.ModuleList([_PerceiverLayer(dim, heads, dim_head, ff_mult) for _ in range(depth)])
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Map frame tokens ``(B, L, input_dim)`` to deep tokens ``(B, num_queries, output_dim)``."""
        x = self.proj_in(tokens)
        latents = self.latents.expand(x.shape[0], -1, -1)
        if self.pooled_queries:
            latents = latents + _grid_pool(x, self.latents.shape[1])
        for layer in self.layers:
            latents = layer(x, latents)
        return self.norm_out(self.proj_out(latents))
