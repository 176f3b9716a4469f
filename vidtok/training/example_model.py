"""A tiny video autoencoder that implements the training protocol: the reference for your own models."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import nn

from vidtok.modeling_utils import Component
from vidtok.training.config import Stage

__all__ = ["TinyVideoAutoencoder"]


class TinyVideoAutoencoder(Component):
    """Per-frame convolutional autoencoder for videos ``(B, C, T, H, W)``, trained by reconstruction.

    Not a tokenizer of the library: it exists to show, test and smoke-test the
    [`Trainer`][vidtok.training.trainer.Trainer] protocol on Shapes in seconds on a CPU. It implements
    ``training_step`` (the reconstruction loss under ``"loss"``) and ``configure_stage`` (a stage may switch the
    loss with ``options={"loss": "l1"}``, the way DiCoDe switches from the L2 to the GMM loss between stages,
    supplementary §6). Every layer is deterministic (no dropout or normalization statistics), so runs on one
    or several processes agree up to float rounding; ``dropout > 0`` adds randomness for resume tests.

    Args:
        in_channels: Video channels.
        hidden_channels: Width of the convolutions.
        latent_channels: Channels of the bottleneck (at 1/4 of the resolution).
        loss: Default reconstruction loss, ``"mse"`` or ``"l1"``.
        dropout: Dropout on the bottleneck during training.

    Example:
        >>> model = TinyVideoAutoencoder(**TinyVideoAutoencoder.tiny_config())
        >>> video = torch.zeros(2, 3, 4, 16, 16)
        >>> model(video).shape
        torch.Size([2, 3, 4, 16, 16])
        >>> sorted(model.training_step({"video": video}))
        ['l1', 'loss', 'mse']
    """

    @register_to_config
    def __init__(
        self,
        *,
        in_channels: int = 3,
        hidden_channels: int = 32,
        latent_channels: int = 8,
        loss: str = "mse",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if loss not in ("mse", "l1"):
            raise ValueError(f"loss must be 'mse' or 'l1', got {loss!r}")
        k, s, p = (1, 4, 4), (1, 2, 2), (0, 1, 1)  # per frame: 4x4 kernels, stride 2 in space only
        self.encoder = nn.Sequential(
            nn.Conv3d(in_channels, hidden_channels, k, s, p),
            nn.SiLU(),
            nn.Conv3d(hidden_channels, latent_channels, k, s, p),
        )
        self.latent_dropout = nn.Dropout(dropout)
        self.decoder = nn.Sequential(
            nn.ConvTranspose3d(latent_channels, hidden_channels, k, s, p),
            nn.SiLU(),
            nn.ConvTranspose3d(hidden_channels, in_channels, k, s, p),
        )
        self.loss_type = loss

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """A few thousand parameters."""
        return {"hidden_channels": 16, "latent_channels": 4}

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``video`` (``H`` and ``W`` divisible by 4)."""
        return self.decoder(self.latent_dropout(self.encoder(video)))

    def training_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Reconstruction losses of a batch ``{"video": (B, C, T, H, W), ...}``; the active one is ``"loss"``."""
        video = batch["video"]
        recon = self(video)
        mse = F.mse_loss(recon, video)
        l1 = F.l1_loss(recon, video)
        return {"loss": mse if self.loss_type == "mse" else l1, "mse": mse.detach(), "l1": l1.detach()}

    def configure_stage(self, stage: Stage) -> None:
        """Use ``stage.options["loss"]`` (``"mse"``/``"l1"``) if given, else the configured loss."""
        loss = stage.options.get("loss", self.config.loss)
        if loss not in ("mse", "l1"):
            raise ValueError(f"stage {stage.name!r}: options.loss must be 'mse' or 'l1', got {loss!r}")
        self.loss_type = loss
