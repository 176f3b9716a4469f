"""Losses that are not heads: perceptual (LPIPS) and adversarial (3D patch discriminator, hinge, LeCAM).

These are the training losses of VQGAN-style video tokenizers (MAGVIT-v2, Open-MAGVIT2, VidTok): a reconstruction
term plus

* [`PerceptualLoss`][vidtok.training.losses.PerceptualLoss]: LPIPS per frame, optionally on a random subset of
  each clip's frames;
* [`GANLoss`][vidtok.training.losses.GANLoss]: a [`PatchDiscriminator3D`][vidtok.training.losses.PatchDiscriminator3D]
  trained with the hinge loss ([`hinge_d_loss`][vidtok.training.losses.hinge_d_loss]) and optional
  [`LeCAM`][vidtok.training.losses.LeCAM] regularization, and the generator's adversarial term
  ([`hinge_g_loss`][vidtok.training.losses.hinge_g_loss] or
  [`non_saturating_g_loss`][vidtok.training.losses.non_saturating_g_loss]), weighted by the VQGAN
  [`adaptive_weight`][vidtok.training.losses.adaptive_weight] and zero before a warm-up ``start_step``.

They plug into the [`Trainer`][vidtok.training.trainer.Trainer]'s two-optimizer mode: the model owns a
``GANLoss``, returns ``gan.discriminator.parameters()`` from ``discriminator_parameters()``, adds
``gan.generator_step(...)["loss"]`` to its ``training_step`` loss, and returns ``gan.discriminator_step(...)`` from
``discriminator_step``. Set ``DiscriminatorConfig.start_step`` to the ``GANLoss``'s ``start_step`` so that the
discriminator is not trained before the generator sees it.
[`AdversarialTraining`][vidtok.training.losses.AdversarialTraining] does this wiring for any model whose
``training_step`` also returns its reconstruction; by hand it looks like this (``encode_decode`` and
``last_layer`` stand for the tokenizer's own):

```python
class AdversarialTokenizer(nn.Module):
    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer
        self.perceptual = PerceptualLoss("alex")
        self.gan = GANLoss({"base_channels": 64}, start_step=20_000, lecam_weight=0.005)

    def training_step(self, batch, step):
        video = batch["video"]
        recon = self.tokenizer.encode_decode(video)
        nll = F.l1_loss(recon, video) + self.perceptual(recon, video)
        adv = self.gan.generator_step(recon, nll_loss=nll, last_layer=self.tokenizer.last_layer, step=step)
        return {"loss": nll + adv["loss"], "nll": nll.detach(), **{f"gan/{k}": v for k, v in adv.items()}}

    def discriminator_parameters(self):
        return self.gan.discriminator.parameters()

    def discriminator_step(self, batch, step):
        with torch.no_grad():
            recon = self.tokenizer.encode_decode(batch["video"])
        return self.gan.discriminator_step(batch["video"], recon, step=step)
```

The trainer freezes the discriminator's parameters during the generator phase (the adversarial term still
backpropagates *through* the discriminator into the generator) and the generator's during the discriminator phase.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import nn

from vidtok.metrics.lpips import LPIPS
from vidtok.modeling_utils import Component

__all__ = [
    "AdversarialTraining",
    "GANLoss",
    "LeCAM",
    "PatchDiscriminator3D",
    "PerceptualLoss",
    "adaptive_weight",
    "hinge_d_loss",
    "hinge_g_loss",
    "non_saturating_g_loss",
]


# --------------------------------------------------------------------------------------------------- perceptual
class PerceptualLoss(nn.Module):
    """LPIPS per frame of videos ``(B, C, T, H, W)`` in ``[-1, 1]``, averaged: a training loss.

    Built on [`LPIPS`][vidtok.metrics.lpips.LPIPS] (nothing is downloaded; see there for where the weights come
    from). The network is frozen: its parameters have ``requires_grad=False`` (the trainer's optimizers skip
    them), it stays in eval mode when its owner is put in training mode, and gradients flow only to the input
    ``pred``. Its weights are part of the owner's ``state_dict`` (so a checkpoint of the owner holds them).

    Args:
        net: ``"alex"`` (VidTok and Open-MAGVIT2 use LPIPS; 31 px minimum frame side) or ``"vgg"`` (16 px).
        backbone_weights: A local torchvision checkpoint of the backbone (``None``: torch.hub's cache).
        random_backbone: A random backbone — **for tests only** (the loss is then not perceptual).
        heads_weights: The LPIPS v0.1 linear heads (``None``: torchmetrics' package data).
        frames_per_clip: Compare only this many frames of each clip, drawn at random without replacement (a
            different subset per clip), to save compute; ``None``: every frame. Open-MAGVIT2 style training uses
            all frames, magvit2-pytorch one frame.

    Example:
        >>> loss = PerceptualLoss("alex", random_backbone=True, frames_per_clip=2)  # tests only
        >>> video = torch.rand(2, 3, 4, 32, 32) * 2 - 1
        >>> float(loss(video, video, generator=torch.Generator().manual_seed(0)))
        0.0
    """

    def __init__(
        self,
        net: str = "alex",
        backbone_weights: str | Path | None = None,
        *,
        random_backbone: bool = False,
        heads_weights: str | Path | None = None,
        frames_per_clip: int | None = None,
    ) -> None:
        super().__init__()
        if frames_per_clip is not None and (
            isinstance(frames_per_clip, bool) or not isinstance(frames_per_clip, int) or frames_per_clip < 1
        ):
            raise ValueError(f"frames_per_clip must be a positive int or None, got {frames_per_clip!r}")
        self.lpips = LPIPS(net, backbone_weights, random_backbone=random_backbone, heads_weights=heads_weights)
        self.lpips.requires_grad_(False)
        self.lpips.eval()
        self.frames_per_clip = frames_per_clip

    @property
    def protocol(self) -> dict[str, Any]:
        """The LPIPS network's :attr:`~vidtok.metrics.lpips.LPIPS.protocol` (which weights, comparable or not)."""
        return self.lpips.protocol

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Set the training flag of this module; the LPIPS network always stays in eval mode."""
        super().train(mode)
        self.lpips.eval()
        return self

    def frame_indices(self, batch: int, num_frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The frames compared in each clip, ``(batch, k)`` int64 (sorted per clip); all frames without a subset.

        Args:
            batch: Clips.
            num_frames: Frames per clip.
            generator: A CPU ``torch.Generator`` seeding the draw (``None``: the global RNG).
        """
        k = self.frames_per_clip
        if k is None or k >= num_frames:
            return torch.arange(num_frames).expand(batch, num_frames)
        return torch.stack([torch.randperm(num_frames, generator=generator)[:k].sort().values for _ in range(batch)])

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """LPIPS between ``pred`` and ``target`` over the (selected) frames.

        Args:
            pred: Videos ``(B, 3, T, H, W)`` (or images ``(B, 3, H, W)``) in ``[-1, 1]``; gradients flow to it.
            target: The references, same shape (not differentiated).
            generator: Seeds the frame subset (see :meth:`frame_indices`).
            reduction: ``"mean"``: a scalar; ``"none"``: ``(B, k)``, one value per compared frame.

        Raises:
            ValueError: If the shapes differ or are not 4-D/5-D with 3 channels, the frames are smaller than the
                network accepts, or ``reduction`` is unknown.
        """
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        if pred.shape != target.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        if pred.ndim == 4:
            pred, target = pred.unsqueeze(2), target.unsqueeze(2)
        if pred.ndim != 5 or pred.shape[1] != 3:
            raise ValueError(f"PerceptualLoss takes RGB videos (B, 3, T, H, W), got shape {tuple(pred.shape)}")
        b, c, t, h, w = pred.shape
        index = self.frame_indices(b, t, generator).to(pred.device)
        rows = torch.arange(b, device=pred.device).unsqueeze(1)
        # (B, T, C, H, W)[rows, index] -> (B, k, C, H, W): advanced indexing keeps the graph to pred.
        a = pred.transpose(1, 2)[rows, index].reshape(-1, c, h, w)
        ref = target.detach().transpose(1, 2)[rows, index].reshape(-1, c, h, w)
        values = self.lpips(a, ref).reshape(b, -1).to(pred.dtype)
        return values.mean() if reduction == "mean" else values


# ------------------------------------------------------------------------------------------------ discriminator
def _group_norm(channels: int, num_groups: int) -> nn.GroupNorm:
    groups = max(g for g in range(1, min(num_groups, channels) + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class PatchDiscriminator3D(Component):
    """A 3D convolutional patch discriminator for videos ``(B, C, T, H, W)``: a map of real/fake logits.

    The MAGVIT / Open-MAGVIT2 ``NLayerDiscriminator3D`` pattern (a PatchGAN with 3D convolutions): an input
    convolution, then ``num_layers`` strided blocks that halve the spatial sides (kernel ``(3, 4, 4)``, stride
    ``(s_t, 2, 2)``, padding ``(1, 1, 1)``, where ``s_t = 2`` for the first ``temporal_downsamples`` blocks and 1
    after) and double the width up to ``max_channels``, each followed by a normalization and LeakyReLU(0.2), and a
    3×3×3 convolution to one logit per patch. GroupNorm (per sample, so independent of the batch size and of the
    number of processes), not BatchNorm; ``norm="none"`` drops it.

    **Layout.** The output is ``(B, 1, T', H', W')``: each block maps ``H → ⌊H/2⌋``, ``W → ⌊W/2⌋`` and, if it
    downsamples time, ``T → ⌈T/2⌉`` (so a 1-frame clip, an image, stays 1 frame); see :meth:`patch_grid`. Each
    logit judges one spatio-temporal patch; positive means "real". Frames must be at least ``2**num_layers``
    pixels on each side.

    Args:
        in_channels: Video channels.
        base_channels: Width of the input convolution.
        num_layers: Strided blocks (each halves ``H`` and ``W``).
        max_channels: Cap on the width.
        temporal_downsamples: How many of the first blocks also halve ``T`` (``None``: all).
        norm: ``"group"`` (GroupNorm, up to ``num_groups`` groups) or ``"none"``.
        num_groups: Groups of the GroupNorm (the largest divisor of the width not above it).

    Example:
        >>> disc = PatchDiscriminator3D(**PatchDiscriminator3D.tiny_config())
        >>> disc(torch.zeros(2, 3, 5, 32, 32)).shape
        torch.Size([2, 1, 2, 8, 8])
        >>> disc.patch_grid(5, 32, 32)
        (2, 8, 8)
    """

    @register_to_config
    def __init__(
        self,
        *,
        in_channels: int = 3,
        base_channels: int = 64,
        num_layers: int = 3,
        max_channels: int = 512,
        temporal_downsamples: int | None = None,
        norm: str = "group",
        num_groups: int = 32,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("base_channels", base_channels)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {num_layers}")
        if max_channels < base_channels:
            raise ValueError(f"max_channels ({max_channels}) must be >= base_channels ({base_channels})")
        if temporal_downsamples is not None and not 0 <= temporal_downsamples <= num_layers:
            raise ValueError(
                f"temporal_downsamples must be in [0, num_layers={num_layers}], got {temporal_downsamples}"
            )
        if norm not in ("group", "none"):
            raise ValueError(f"norm must be 'group' or 'none', got {norm!r}")
        if num_groups < 1:
            raise ValueError(f"num_groups must be >= 1, got {num_groups}")
        self.temporal_strides = [
            2 if temporal_downsamples is None or i < temporal_downsamples else 1 for i in range(num_layers)
        ]
        self.stem = nn.Sequential(nn.Conv3d(in_channels, base_channels, 3, padding=1), nn.LeakyReLU(0.2))
        blocks = []
        width = base_channels
        for stride_t in self.temporal_strides:
            out = min(width * 2, max_channels)
            layers: list[nn.Module] = [nn.Conv3d(width, out, (3, 4, 4), (stride_t, 2, 2), (1, 1, 1))]
            if norm == "group":
                layers.append(_group_norm(out, num_groups))
            layers.append(nn.LeakyReLU(0.2))
            blocks.append(nn.Sequential(*layers))
            width = out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv3d(width, 1, 3, padding=1)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """Two blocks of width 8 and 16 (a few thousand parameters)."""
        return {"base_channels": 8, "num_layers": 2, "max_channels": 16, "num_groups": 4}

    @property
    def min_size(self) -> int:
        """Smallest frame side accepted: ``2 ** num_layers``."""
        return 2 ** len(self.blocks)

    def patch_grid(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """``(T', H', W')`` of the logit map for clips of ``num_frames × height × width``."""
        t, h, w = num_frames, height, width
        for stride_t in self.temporal_strides:
            t, h, w = (t + 1) // 2 if stride_t == 2 else t, h // 2, w // 2
        return t, h, w

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Patch logits ``(B, 1, T', H', W')`` of ``video`` ``(B, C, T, H, W)`` (see the class's layout).

        Raises:
            ValueError: If ``video`` is not 5-D with ``in_channels`` channels or a frame side is below
                :attr:`min_size`.
        """
        if video.ndim != 5 or video.shape[1] != self.config.in_channels:
            raise ValueError(
                f"PatchDiscriminator3D takes videos (B, {self.config.in_channels}, T, H, W), "
                f"got shape {tuple(video.shape)}"
            )
        if video.shape[2] < 1 or min(video.shape[-2:]) < self.min_size:
            raise ValueError(
                f"PatchDiscriminator3D with {len(self.blocks)} blocks needs frames of at least "
                f"{self.min_size}x{self.min_size} and T >= 1, got T={video.shape[2]}, "
                f"{video.shape[-2]}x{video.shape[-1]}"
            )
        x = self.stem(video)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


# ------------------------------------------------------------------------------------------------ GAN objectives
def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's hinge loss, ``½·(mean(relu(1 − D(x))) + mean(relu(1 + D(x̂))))``.

    The ½ is VQGAN's (Esser et al. 2021) and Open-MAGVIT2's/VidTok's; the means run over every patch logit.
    """
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's hinge loss, ``−mean(D(x̂))`` (VQGAN's generator term)."""
    return -fake_logits.mean()


def non_saturating_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's non-saturating loss, ``mean(softplus(−D(x̂))) = −mean(log σ(D(x̂)))``.

    What VidTok (``gen_loss_cross_entropy``) and Open-MAGVIT2 pair with the hinge discriminator loss.
    """
    return F.softplus(-fake_logits).mean()


_G_LOSSES = {"hinge": hinge_g_loss, "non_saturating": non_saturating_g_loss}


class LeCAM(nn.Module):
    """LeCAM regularization of the discriminator (Tseng et al. 2021).

    From "Regularizing Generative Adversarial Networks under Limited Data" (CVPR 2021).
    Keeps exponential moving averages ``α_R`` and ``α_F`` of the mean real and fake logits and penalizes

        R = mean(relu(D(x) − α_F)²) + mean(relu(α_R − D(x̂))²)

    (the ReLU form of the authors' code, also Open-MAGVIT2's; the paper writes the squares without the ReLU).
    It keeps the discriminator's predictions close to the anchors, which helps with limited data.

    Calling the module in **training mode** first updates the averages with this batch
    (``α ← d·α + (1 − d)·mean(logits)``; the first update sets them to the batch means), then returns ``R``; in
    eval mode the averages are left alone. Only call it in the discriminator step, so the generator step does
    not move them. The averages are buffers (saved in checkpoints, so a resume continues them).

    Args:
        decay: EMA decay ``d``.

    Example:
        >>> reg = LeCAM(decay=0.9)  # the first update sets the anchors to 0.5 and -0.5
        >>> float(reg(torch.tensor([0.5]), torch.tensor([-0.5])))  # (0.5 + 0.5)² + (0.5 + 0.5)²
        2.0
    """

    def __init__(self, decay: float = 0.99) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.register_buffer("ema_real", torch.zeros(()))
        self.register_buffer("ema_fake", torch.zeros(()))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> None:
        """Move the averages towards the mean real and fake logits of this batch."""
        real, fake = real_logits.detach().float().mean(), fake_logits.detach().float().mean()
        # On the device (no host sync): decay 0 on the first update, so the averages start at the batch means.
        d = torch.where(self.num_updates > 0, self.decay, 0.0).to(self.ema_real.dtype)
        self.ema_real.copy_(d * self.ema_real + (1 - d) * real)
        self.ema_fake.copy_(d * self.ema_fake + (1 - d) * fake)
        self.num_updates.add_(1)

    def regularizer(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """``R`` against the current averages (no update)."""
        ema_real = self.ema_real.to(real_logits.dtype)
        ema_fake = self.ema_fake.to(fake_logits.dtype)
        return F.relu(real_logits - ema_fake).pow(2).mean() + F.relu(ema_real - fake_logits).pow(2).mean()

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Update the averages (training mode only), then return the regularizer ``R``."""
        if self.training:
            self.update(real_logits, fake_logits)
        return self.regularizer(real_logits, fake_logits)

    def extra_repr(self) -> str:
        """The decay, in the module's repr."""
        return f"decay={self.decay}"


def adaptive_weight(
    nll_loss: torch.Tensor,
    g_loss: torch.Tensor,
    last_layer: torch.Tensor,
    *,
    max_weight: float = 1e4,
    eps: float = 1e-4,
) -> torch.Tensor:
    """VQGAN's adaptive weight of the adversarial loss (Esser et al. 2021, eq. 7), detached.

    ``λ = ‖∇_L nll‖ / (‖∇_L g‖ + eps)`` clamped to ``[0, max_weight]``, where ``L`` is the generator's last layer
    (typically the decoder's output convolution weight): it balances the two gradients where they meet the
    output. The graph is kept (``retain_graph``) for the backward pass of the total loss.

    Guards: if ``g_loss`` gives no or a zero (or non-finite) gradient at ``last_layer``, the weight is 0 rather
    than ``max_weight``; so it is when grad mode is off or ``nll_loss`` has no graph (evaluation), and if
    ``nll_loss`` does not reach ``last_layer``.

    Args:
        nll_loss: The reconstruction (+ perceptual) loss, a scalar with a graph to ``last_layer``.
        g_loss: The generator's adversarial loss, a scalar.
        last_layer: The parameter at which the gradient norms are compared.
        max_weight: Upper clamp.
        eps: Added to the adversarial gradient norm.

    Returns:
        A detached scalar tensor.
    """
    zero = torch.zeros((), device=nll_loss.device, dtype=torch.float32)
    if not torch.is_grad_enabled() or not nll_loss.requires_grad or not g_loss.requires_grad:
        return zero
    (nll_grad,) = torch.autograd.grad(nll_loss, last_layer, retain_graph=True, allow_unused=True)
    (g_grad,) = torch.autograd.grad(g_loss, last_layer, retain_graph=True, allow_unused=True)
    if nll_grad is None or g_grad is None:
        return zero
    nll_norm, g_norm = nll_grad.detach().float().norm(), g_grad.detach().float().norm()
    # Decided on the device (no host sync): 0 where the adversarial gradient is zero or either norm non-finite.
    usable = torch.isfinite(g_norm) & torch.isfinite(nll_norm) & (g_norm > 0)
    return torch.where(usable, (nll_norm / (g_norm + eps)).clamp(0.0, max_weight), zero).detach()


class GANLoss(nn.Module):
    """The adversarial part of a tokenizer's training: a discriminator, its loss, and the generator's term.

    Args:
        discriminator: The discriminator: a module, a dict of
            [`PatchDiscriminator3D`][vidtok.training.losses.PatchDiscriminator3D] keyword arguments, or ``None``
            for its defaults. Its output is a logit map (any shape).
        start_step: Warm-up: before this global step the generator's adversarial term is 0 (the discriminator
            is not even run in :meth:`generator_step`), and :meth:`discriminator_step` returns a zero loss and
            leaves LeCAM alone. VidTok starts at 20,001,
            Open-MAGVIT2 at 0. Use the same value as the trainer's ``DiscriminatorConfig.start_step``.
        adversarial_weight: Weight of the generator's adversarial term (VidTok 0.2 with the adaptive weight,
            Open-MAGVIT2 0.3 without).
        adaptive: Multiply by [`adaptive_weight`][vidtok.training.losses.adaptive_weight] when the generator
            step gets ``nll_loss`` and ``last_layer``.
        max_adaptive_weight: Clamp of the adaptive weight.
        generator_loss: ``"hinge"`` ([`hinge_g_loss`][vidtok.training.losses.hinge_g_loss]) or
            ``"non_saturating"`` ([`non_saturating_g_loss`][vidtok.training.losses.non_saturating_g_loss], what
            VidTok and Open-MAGVIT2 use).
        discriminator_weight: Weight of the hinge discriminator loss.
        lecam_weight: Weight of the [`LeCAM`][vidtok.training.losses.LeCAM] regularizer (0: off; VidTok 0.005,
            Open-MAGVIT2 0.05).
        lecam_decay: Decay of LeCAM's averages.

    Example:
        >>> gan = GANLoss(PatchDiscriminator3D.tiny_config(), start_step=0, lecam_weight=0.05)
        >>> real, fake = torch.rand(2, 3, 2, 16, 16), torch.rand(2, 3, 2, 16, 16)
        >>> sorted(gan.discriminator_step(real, fake, step=0))
        ['d_loss', 'lecam', 'logits_fake', 'logits_real', 'loss']
        >>> sorted(gan.generator_step(fake, step=0))
        ['adversarial_weight', 'g_loss', 'logits_fake', 'loss']
    """

    def __init__(
        self,
        discriminator: nn.Module | Mapping[str, Any] | None = None,
        *,
        start_step: int = 0,
        adversarial_weight: float = 0.2,
        adaptive: bool = True,
        max_adaptive_weight: float = 1e4,
        generator_loss: str = "hinge",
        discriminator_weight: float = 1.0,
        lecam_weight: float = 0.0,
        lecam_decay: float = 0.99,
    ) -> None:
        super().__init__()
        if isinstance(discriminator, nn.Module):
            self.discriminator = discriminator
        elif discriminator is None or isinstance(discriminator, Mapping):
            self.discriminator = PatchDiscriminator3D(**dict(discriminator or {}))
        else:
            raise TypeError(
                f"discriminator must be a module, a dict of keyword arguments or None, got {discriminator!r}"
            )
        if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
            raise ValueError(f"start_step must be an int >= 0, got {start_step!r}")
        for name, value in (
            ("adversarial_weight", adversarial_weight),
            ("discriminator_weight", discriminator_weight),
            ("lecam_weight", lecam_weight),
            ("max_adaptive_weight", max_adaptive_weight),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if generator_loss not in _G_LOSSES:
            raise ValueError(f"generator_loss must be one of {sorted(_G_LOSSES)}, got {generator_loss!r}")
        self.start_step = start_step
        self.adversarial_weight = float(adversarial_weight)
        self.adaptive = adaptive
        self.max_adaptive_weight = float(max_adaptive_weight)
        self.generator_loss = generator_loss
        self.discriminator_weight = float(discriminator_weight)
        self.lecam_weight = float(lecam_weight)
        self.lecam = LeCAM(lecam_decay)

    def active(self, step: int | None) -> bool:
        """Whether the adversarial losses are on at global step ``step`` (``None``: yes)."""
        return step is None or step >= self.start_step

    def generator_step(
        self,
        fake: torch.Tensor,
        *,
        nll_loss: torch.Tensor | None = None,
        last_layer: torch.Tensor | None = None,
        step: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """The generator's adversarial term for reconstructions ``fake`` (with their graph).

        Args:
            fake: The generator's output, e.g. ``(B, C, T, H, W)``; gradients flow through the discriminator to it.
            nll_loss: The reconstruction (+ perceptual) loss, for the adaptive weight.
            last_layer: The generator's last-layer weight, for the adaptive weight.
            step: The global step (``None``: past the warm-up).

        Returns:
            ``loss`` (the weighted term to add to the generator's loss), and detached ``g_loss`` (unweighted),
            ``adversarial_weight`` (the total weight applied: fixed × adaptive) and ``logits_fake`` (their mean).
            Before ``start_step`` the discriminator is not run and all four are 0 (``loss`` without a graph).
        """
        if not self.active(step):
            # Warm-up: the discriminator is not run at all (saves its forward and backward).
            zero = torch.zeros((), device=fake.device, dtype=fake.dtype)
            return {"loss": zero, "g_loss": zero, "adversarial_weight": zero.float(), "logits_fake": zero}
        logits = self.discriminator(fake)
        g_loss = _G_LOSSES[self.generator_loss](logits)
        weight = torch.full((), self.adversarial_weight, device=g_loss.device, dtype=torch.float32)
        if self.adaptive and nll_loss is not None and last_layer is not None:
            weight = weight * adaptive_weight(nll_loss, g_loss, last_layer, max_weight=self.max_adaptive_weight)
        return {
            "loss": weight.to(g_loss.dtype) * g_loss,
            "g_loss": g_loss.detach(),
            "adversarial_weight": weight.detach(),
            "logits_fake": logits.detach().mean(),
        }

    def discriminator_step(
        self, real: torch.Tensor, fake: torch.Tensor, *, step: int | None = None
    ) -> dict[str, torch.Tensor]:
        """The discriminator's loss on ``real`` videos and ``fake`` reconstructions (detached here).

        In training mode it updates LeCAM's averages (when ``lecam_weight > 0`` and past the warm-up).

        Returns:
            ``loss`` (``discriminator_weight · hinge + lecam_weight · LeCAM``; 0 with a graph before
            ``start_step``), and detached ``d_loss`` (the hinge loss), ``lecam`` (the regularizer, 0 when off),
            ``logits_real`` and ``logits_fake`` (their means).
        """
        logits_real = self.discriminator(real.detach())
        logits_fake = self.discriminator(fake.detach())
        d_loss = hinge_d_loss(logits_real, logits_fake)
        active = self.active(step)
        lecam = torch.zeros((), device=d_loss.device, dtype=d_loss.dtype)
        if self.lecam_weight > 0 and active:
            lecam = self.lecam(logits_real, logits_fake)
        factor = 1.0 if active else 0.0
        loss = factor * (self.discriminator_weight * d_loss + self.lecam_weight * lecam)
        return {
            "loss": loss,
            "d_loss": d_loss.detach(),
            "lecam": lecam.detach(),
            "logits_real": logits_real.detach().mean(),
            "logits_fake": logits_fake.detach().mean(),
        }

    def extra_repr(self) -> str:
        """The weights and warm-up, in the module's repr."""
        return (
            f"start_step={self.start_step}, adversarial_weight={self.adversarial_weight}, adaptive={self.adaptive}, "
            f"generator_loss={self.generator_loss!r}, lecam_weight={self.lecam_weight}"
        )


# ------------------------------------------------------------------------------------------------ wrapper
def _call_training_step(model: nn.Module, batch: Any, step: int) -> dict[str, Any]:
    fn = model.training_step
    params = inspect.signature(fn).parameters
    takes_step = "step" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    out = fn(batch, step=step) if takes_step else fn(batch)
    if not isinstance(out, Mapping) or "loss" not in out:
        raise TypeError(f"{type(model).__name__}.training_step must return a dict with a 'loss' entry")
    return dict(out)


class AdversarialTraining(nn.Module):
    """Adds LPIPS and a GAN to a reconstruction model, for the trainer's two-optimizer mode.

    The glue between a tokenizer (which, a layer below ``training``, cannot import these losses) and the
    [`Trainer`][vidtok.training.trainer.Trainer]: train ``AdversarialTraining(tokenizer, ...)`` instead of the
    tokenizer. The wrapped model's ``training_step(batch)`` must return, besides its ``"loss"`` (reconstruction,
    quantizer terms, ...), the reconstruction with its graph under ``reconstruction_key``; the target is
    ``batch[target_key]`` (or ``batch`` itself if it is a tensor). Then

    * ``training_step`` returns ``loss = model loss + perceptual_weight · LPIPS + GAN generator term`` (the
      adaptive weight compares the gradients of ``model loss + perceptual_weight · LPIPS`` and of the GAN term at
      the parameter named ``last_layer``), with the model's entries, ``perceptual`` and ``gan/*`` logged;
    * ``discriminator_step`` runs the model's ``training_step`` again under ``torch.no_grad()`` for the fakes (so
      it must not update state as a side effect, e.g. an EMA codebook) and returns the
      [`GANLoss.discriminator_step`][vidtok.training.losses.GANLoss.discriminator_step] losses;
    * ``configure_stage`` is passed on to the model, and ``step`` too if its ``training_step`` takes it.

    Checkpoints of the wrapper (``model.safetensors``) hold the model, the discriminator, LeCAM's averages and the
    frozen LPIPS network; export the tokenizer itself with ``wrapper.model.save_pretrained(...)``.

    Args:
        model: The reconstruction model.
        gan: The [`GANLoss`][vidtok.training.losses.GANLoss] (its ``start_step`` is the warm-up; the trainer's
            ``DiscriminatorConfig.start_step`` should match it).
        perceptual: The [`PerceptualLoss`][vidtok.training.losses.PerceptualLoss] (``None``: none).
        perceptual_weight: Its weight (VidTok and Open-MAGVIT2: 1.0).
        last_layer: Name of the model's parameter for the adaptive weight, as in ``model.named_parameters()``
            (typically the decoder's output convolution weight); ``None``: no adaptive weight.
        reconstruction_key: The entry of the model's ``training_step`` output holding the reconstruction (it is
            removed from what is logged).
        target_key: The batch entry holding the target video.

    Raises:
        ValueError: If ``last_layer`` names no parameter of ``model``, or ``perceptual_weight < 0``.
        TypeError: If ``model`` has no ``training_step`` or ``gan`` is not a ``GANLoss``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        gan: GANLoss,
        perceptual: PerceptualLoss | None = None,
        perceptual_weight: float = 1.0,
        last_layer: str | None = None,
        reconstruction_key: str = "reconstruction",
        target_key: str = "video",
    ) -> None:
        super().__init__()
        if not isinstance(gan, GANLoss):
            raise TypeError(f"gan must be a GANLoss, got {type(gan).__name__}")
        if not callable(getattr(model, "training_step", None)):
            raise TypeError(f"{type(model).__name__} has no training_step(batch)")
        if last_layer is not None and last_layer not in dict(model.named_parameters()):
            raise ValueError(f"last_layer {last_layer!r} is not a parameter of {type(model).__name__}")
        if perceptual_weight < 0:
            raise ValueError(f"perceptual_weight must be >= 0, got {perceptual_weight}")
        self.model = model
        self.gan = gan
        self.perceptual = perceptual
        self.perceptual_weight = float(perceptual_weight)
        self.last_layer = last_layer
        self.reconstruction_key = reconstruction_key
        self.target_key = target_key

    def _run(self, batch: Any, step: int) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
        out = _call_training_step(self.model, batch, step)
        if self.reconstruction_key not in out:
            raise KeyError(
                f"{type(self.model).__name__}.training_step must return the reconstruction under "
                f"{self.reconstruction_key!r} to be trained with AdversarialTraining (got {sorted(out)})"
            )
        recon = out.pop(self.reconstruction_key)
        target = batch[self.target_key] if isinstance(batch, Mapping) else batch
        return out, recon, target.to(recon.dtype)

    def training_step(self, batch: Any, step: int = 0) -> dict[str, torch.Tensor]:
        """The model's losses plus the perceptual and generator adversarial terms (see the class)."""
        out, recon, target = self._run(batch, step)
        nll = out["loss"]
        if self.perceptual is not None and self.perceptual_weight > 0:
            perceptual = self.perceptual(recon, target)
            nll = nll + self.perceptual_weight * perceptual
            out["perceptual"] = perceptual.detach()
        last = dict(self.model.named_parameters())[self.last_layer] if self.last_layer is not None else None
        adv = self.gan.generator_step(recon, nll_loss=nll, last_layer=last, step=step)
        out.update({f"gan/{k}": v.detach() for k, v in adv.items()})
        out["loss"] = nll + adv["loss"]
        return out

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        """The discriminator's parameters (the trainer's second optimizer)."""
        return self.gan.discriminator.parameters()

    def discriminator_step(self, batch: Any, step: int = 0) -> dict[str, torch.Tensor]:
        """The discriminator's losses on ``batch``'s targets and the model's (recomputed, detached) reconstructions."""
        with torch.no_grad():
            _, recon, target = self._run(batch, step)
        return self.gan.discriminator_step(target, recon, step=step)

    def configure_stage(self, stage: Any) -> None:
        """Pass the stage on to the model (if it has ``configure_stage``)."""
        if callable(getattr(self.model, "configure_stage", None)):
            self.model.configure_stage(stage)
