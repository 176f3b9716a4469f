"""A discrete-code toy tokenizer for the contract tests (importable by name, so saved pipelines reload it).

Each keyframe (every ``frame_stride``-th frame) is cut into a 2 × 2 grid of patches; a patch's code is the
sign pattern of its mean color (3 bits: codebook 8). Not a useful tokenizer: it exists to prove that integer
codes flow through ``dicode_lm`` + the ``categorical`` head + ``TextToVideo`` before HiTVideo relies on it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers import ModelMixin  # noqa: F401  (diffusers' loader looks it up here)
from diffusers.configuration_utils import register_to_config

from vidtok.outputs import TokenizerOutput, TokenLevel
from vidtok.tokenizers.base import VideoTokenizer, check_video


class ToyCodes(VideoTokenizer):
    """2 × 2 patch sign codes (codebook 8) per keyframe; decodes by painting the patches (a test fixture)."""

    @register_to_config
    def __init__(self, *, frame_stride: int = 4, sample_size: int = 16):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(()))  # something to train and to save

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {"frame_stride": 4, "sample_size": 16}

    def token_layout(self, num_frames: int, height: int, width: int) -> list[TokenLevel]:
        f = self.config.frame_stride
        return [TokenLevel("patches", (num_frames - 1) // f + 1, 4, 3, codebook_size=8, frames_per_step=f, grid=(2, 2))]

    def encode(self, video: torch.Tensor, **kwargs: Any) -> TokenizerOutput:
        video = check_video(video)
        keys = video[:, :, :: self.config.frame_stride]  # (B, 3, S, H, W)
        means = F.adaptive_avg_pool2d(keys.transpose(1, 2).flatten(0, 1), 2)  # (B S, 3, 2, 2)
        bits = (means > 0).long().flatten(2).transpose(1, 2)  # (B S, 4, 3), MSB = red
        codes = (bits * torch.tensor([4, 2, 1])).sum(-1).view(video.shape[0], -1, 4)
        return TokenizerOutput(tokens=self.codes_to_tokens(codes), indices=codes)

    def codes_to_tokens(self, indices: torch.Tensor, level: int = 0) -> torch.Tensor:
        bits = (indices.long().unsqueeze(-1) >> torch.tensor([2, 1, 0], device=indices.device)) & 1
        return bits.float() * 2 - 1  # (B, S, 4, 3) in {-1, 1}

    def decode(self, tokens: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        b, s = tokens.shape[:2]
        h, w = self.sample_size
        grid = tokens.view(b, s, 2, 2, 3).permute(0, 4, 1, 2, 3).float() * 0.8 * self.gain  # (B, 3, S, 2, 2)
        frames = F.interpolate(grid.flatten(1, 2), size=(h, w), mode="nearest").view(b, 3, s, h, w)
        if s == 1:
            return frames.clamp(-1, 1)
        f = self.config.frame_stride
        video = frames.repeat_interleave(f, dim=2)[:, :, : (s - 1) * f + 1]
        return video.clamp(-1, 1)

    def training_step(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        video = batch["video"]
        out = self.decode(self.encode(video).tokens)
        return {"loss": (out - video[:, :, : out.shape[2]]).square().mean()}
