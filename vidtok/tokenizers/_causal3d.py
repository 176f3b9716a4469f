"""Causal 3D convolution building blocks for video autoencoders (private to :mod:`vidtok.tokenizers`).

Everything here is *causal in time*: output frame ``t`` depends on input frames ``<= t`` only, so a video's
first frame is encoded alone and an image is a one-frame video (MAGVIT-v2 §3.2; the causal 3D CNN of
magvit2-pytorch and Open-MAGVIT2). Three rules make that hold:

* :class:`CausalConv3d` pads the past side of time only (with copies of the first frame), never the future;
* :class:`CausalGroupNorm` normalizes each frame on its own (a GroupNorm over time would let later frames
  change the statistics of earlier ones);
* temporal resampling keeps the first frame alone: :class:`Downsample3d` with time stride ``s`` maps
  ``1 + s k`` frames to ``1 + k`` (step ``i >= 1`` summarizes frames ``s (i - 1) + 1 … s i``), and
  :class:`Upsample3d` maps ``1 + k`` steps back to ``1 + s k`` frames (depth-to-time, dropping the ``s - 1``
  frames that would precede frame 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CausalConv3d", "CausalGroupNorm", "Downsample3d", "ResBlock3d", "Upsample3d"]


def _triple(value: int | tuple[int, int, int] | list[int]) -> tuple[int, int, int]:
    if isinstance(value, int):
        return (value, value, value)
    return (int(value[0]), int(value[1]), int(value[2]))


class CausalConv3d(nn.Module):
    """A 3D convolution ``(B, C, T, H, W)`` that is causal in time.

    Time is padded on the past side only, by ``kernel_t − 1`` copies of the first frame (so a still video stays
    still at its start), and zero-padded by ``kernel // 2`` in space. With time stride ``s`` output step ``i``
    ends on input frame ``s i``: ``1 + s k`` frames give ``1 + k`` steps and step 0 sees frame 0 alone.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int] = 3,
        stride: int | tuple[int, int, int] = 1,
    ) -> None:
        super().__init__()
        kt, kh, kw = _triple(kernel_size)
        self.time_pad = kt - 1
        self.conv = nn.Conv3d(
            in_channels, out_channels, (kt, kh, kw), stride=_triple(stride), padding=(0, kh // 2, kw // 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve, padding time on the past side only."""
        if self.time_pad:
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1), x], dim=2)
        return self.conv(x)


class CausalGroupNorm(nn.GroupNorm):
    """GroupNorm over ``(C/G, H, W)`` of each frame separately, so no frame's statistics see another frame."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize ``(B, C, T, H, W)`` frame by frame."""
        b, c, t, h, w = x.shape
        y = super().forward(x.transpose(1, 2).reshape(b * t, c, h, w))
        return y.reshape(b, t, c, h, w).transpose(1, 2)


def _groups(channels: int) -> int:
    for groups in (32, 16, 8, 4, 2):
        if channels % groups == 0 and channels >= 2 * groups:
            return groups
    return 1


class ResBlock3d(nn.Module):
    """Pre-activation ResNet block of two causal ``k×3×3`` convolutions (norm → SiLU → conv, twice).

    ``temporal_kernel`` is ``k``: 3 (full 3D, MAGVIT-v2) or 1 (spatial only; time is then mixed only where it
    is resampled).
    """

    def __init__(self, in_channels: int, out_channels: int, temporal_kernel: int = 3) -> None:
        super().__init__()
        kernel = (int(temporal_kernel), 3, 3)
        self.norm1 = CausalGroupNorm(_groups(in_channels), in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, kernel)
        self.norm2 = CausalGroupNorm(_groups(out_channels), out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels, kernel)
        self.skip = nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + f(x)`` (with a ``1×1×1`` projection of ``x`` when the width changes)."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Downsample3d(nn.Module):
    """Strided causal convolution: time stride ``time`` (first frame alone), space stride ``space``.

    ``1 + time k`` frames give ``1 + k`` steps. Other frame counts ``1 + m`` are completed on the *future* side
    with copies of the last frame to ``1 + time ⌈m / time⌉`` (the last step then summarizes a short window;
    nothing earlier changes), so they give ``1 + ⌈m / time⌉`` steps. Height and width must be divisible by
    ``space``. Without time resampling the kernel spans ``temporal_kernel`` frames.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, time: int = 2, space: int = 2, temporal_kernel: int = 3
    ) -> None:
        super().__init__()
        self.time, self.space = int(time), int(space)
        kt = max(3, self.time) if self.time > 1 else int(temporal_kernel)
        self.conv = CausalConv3d(in_channels, out_channels, (kt, 3, 3), stride=(self.time, self.space, self.space))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Downsample ``(B, C, T, H, W)``."""
        extra = (-(x.shape[2] - 1)) % self.time
        if extra:
            x = torch.cat([x, x[:, :, -1:].expand(-1, -1, extra, -1, -1)], dim=2)
        return self.conv(x)


class Upsample3d(nn.Module):
    """Inverse of :class:`Downsample3d`: ``1 + k`` steps → ``1 + time k`` frames, space × ``space``.

    Space: nearest-neighbour upsampling. Time: a causal convolution makes ``time`` frames per step
    (depth-to-time), and the ``time − 1`` frames that step 0 would place before frame 0 are dropped. A causal
    ``k×3×3`` convolution (``k = temporal_kernel``, or 3 where time was upsampled) then mixes the result.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, time: int = 2, space: int = 2, temporal_kernel: int = 3
    ) -> None:
        super().__init__()
        self.time, self.space = int(time), int(space)
        self.to_time = CausalConv3d(in_channels, in_channels * self.time, 3) if self.time > 1 else None
        kt = 3 if self.time > 1 else int(temporal_kernel)
        self.conv = CausalConv3d(in_channels, out_channels, (kt, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample ``(B, C, T, H, W)``."""
        if self.space > 1:
            x = F.interpolate(x, scale_factor=(1, self.space, self.space), mode="nearest")
        if self.to_time is not None:
            b, c, t, h, w = x.shape
            y = self.to_time(x).view(b, c, self.time, t, h, w).permute(0, 1, 3, 2, 4, 5)
            x = y.reshape(b, c, t * self.time, h, w)[:, :, self.time - 1 :]
        return self.conv(x)
