"""Diagnostics of deep tokens: what each token carries (DiCoDe Fig. 4), next to the deep-token tokenizer.

DiCoDe zeroes deep tokens out one after another and decodes: entities disappear one by one, showing that
the tokens hold condensed, language-like semantics (§4, Fig. 4). :func:`zero_out_tokens` runs that
experiment for any deep tokenizer and :func:`token_zeroing_grid` lays the results out as one video (rows:
number of zeroed tokens; the original on top) that :func:`vidtok.io.save_video` writes as a GIF or MP4.

Example:
    >>> import torch
    >>> from vidtok.tokenizers.deep_tokens import DeepTokenizer
    >>> tok = DeepTokenizer(**DeepTokenizer.tiny_config())
    >>> video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    >>> videos = zero_out_tokens(tok, video, num_inference_steps=1, progress=False)
    >>> tuple(videos.shape)  # 0, 1, ..., 4 tokens zeroed
    (5, 3, 5, 16, 16)
    >>> tuple(token_zeroing_grid(video, videos).shape)
    (3, 5, 106, 16)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["token_zeroing_grid", "zero_out_tokens"]


@torch.no_grad()
def zero_out_tokens(
    tokenizer: Any,
    video: torch.Tensor,
    *,
    order: Sequence[int] | None = None,
    cumulative: bool = True,
    frame_stride: int | None = None,
    num_inference_steps: int = 25,
    guidance_scale: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """Decode a video with more and more of its deep tokens set to zero (DiCoDe Fig. 4).

    Token ``order[k]`` is zeroed in every keyframe at row ``k + 1``. All rows share the same initial noise,
    so differences come from the tokens alone.

    Args:
        tokenizer: A deep tokenizer (``encode`` → ``(B, S, N, D)``, ``decode`` with diffusion arguments).
        video: One video ``(1, C, T, H, W)`` or ``(C, T, H, W)`` in ``[-1, 1]``.
        order: Token indices in the order they are zeroed (default ``0 .. N - 1``).
        cumulative: Zero tokens cumulatively (row ``k`` has ``k`` tokens zeroed, as in Fig. 4); otherwise
            row ``k`` zeroes token ``order[k - 1]`` alone.
        frame_stride: Keyframe stride (default: the tokenizer's).
        num_inference_steps: Denoising steps.
        guidance_scale: Classifier-free guidance scale.
        seed: Seed of the shared initial noise.
        progress: Show the decoder's progress bar.

    Returns:
        ``(1 + len(order), C, T', H, W)``: row 0 decodes the intact tokens.

    Raises:
        ValueError: If ``video`` is not a single video or ``order`` names a token that does not exist.
    """
    if video.ndim == 4:
        video = video[None]
    if video.ndim != 5 or video.shape[0] != 1:
        raise ValueError(f"zero_out_tokens takes one video (1, C, T, H, W), got {tuple(video.shape)}")
    tokens = tokenizer.encode(video.to(tokenizer.device), frame_stride=frame_stride).tokens
    n = tokens.shape[2]
    order = list(range(n)) if order is None else [int(i) for i in order]
    if any(not 0 <= i < n for i in order):
        raise ValueError(f"order must index the {n} tokens per keyframe, got {order}")
    rows = [tokens[0]]
    for k in range(len(order)):
        row = tokens[0].clone()
        row[:, order[: k + 1] if cumulative else [order[k]]] = 0
        rows.append(row)
    batch = torch.stack(rows)
    # One noise draw, repeated for every row: rows differ by their tokens only.
    h, w = video.shape[-2:]
    f = int(frame_stride or tokenizer.temporal_compression)
    clips = max(tokens.shape[1] - 1, 1)
    frames = f + 1 if tokens.shape[1] > 1 else 1
    channels = tokenizer.denoiser.in_channels
    lh, lw = tokenizer._latent_size(h, w)
    noise = torch.randn(clips, channels, frames, lh, lw, generator=torch.Generator().manual_seed(seed))
    noise = noise.repeat(batch.shape[0], 1, 1, 1, 1)
    return tokenizer.decode(
        batch,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        frame_stride=f,
        height=h,
        width=w,
        latents=noise,
        progress=progress,
    )


def token_zeroing_grid(original: torch.Tensor, decoded: torch.Tensor, *, gap: int = 2) -> torch.Tensor:
    """Stack the original and the rows of :func:`zero_out_tokens` vertically into one video ``(C, T, H', W)``.

    Args:
        original: The input video ``(1, C, T, H, W)`` or ``(C, T, H, W)``; cut to the decoded length.
        decoded: ``(R, C, T', H, W)`` from :func:`zero_out_tokens`.
        gap: White pixels between rows.

    Returns:
        A model-layout video in ``[-1, 1]`` (``vidtok.io.save_video`` writes it).
    """
    if original.ndim == 5:
        original = original[0]
    t = decoded.shape[2]
    rows = [original[:, :t].to(decoded)] + list(decoded)
    c, _, _, w = rows[0].shape
    sep = torch.ones(c, t, gap, w, dtype=decoded.dtype, device=decoded.device)
    parts = []
    for i, row in enumerate(rows):
        if i:
            parts.append(sep)
        parts.append(row)
    return torch.cat(parts, dim=2)
