"""NOVA's continuous tokens: a diffusers VAE's latents, normalized and cut into ``p × p`` patches.

NOVA (Deng et al., arXiv:2412.14169) generates video autoregressively without vector quantization: a frozen 3D
VAE with 4× temporal and 8 × 8 spatial compression maps frames to continuous latents (§3.2, §4.1), which are
scaled and shifted to unit scale and embedded patch by patch. :class:`ContinuousVAETokenizer` wraps any of the
installed diffusers VAE families behind the tokenizer contract:

* **One adapter per family** (:data:`VAE_ADAPTERS`) knows its spatial and temporal factors and its frame rule.
  Videos whose frame count the VAE cannot take are padded with copies of the last frame up to the next valid
  count and cropped back after decoding, and each family's quirks are handled: ``AutoencoderKL`` runs frame by
  frame; ``AutoencoderVidTok.encode`` lacks the causal front padding that only its ``forward`` adds (without it
  17 frames come back as 13, and fewer than 4 frames crash); ``AutoencoderKLCogVideoX`` decodes an even number
  of latent frames to 4 frames per latent instead of ``1 + 4 (L − 1)``.
* **Normalization** ``tokens = (latent − shift) · scale`` per channel (or one number for all): the VAE's own
  factors by default, or statistics measured on data with :meth:`ContinuousVAETokenizer.estimate_latent_stats`
  and stored in the config.
* **Patchify**: latents ``(B, C, T', h, w)`` become tokens ``(B, T', (h / p)(w / p), C p²)``; with NOVA's 4
  channels and ``p = 2`` a token holds 16 values.

Example:
    >>> import torch
    >>> from vidtok.tokenizers.continuous_vae import ContinuousVAETokenizer
    >>> tok = ContinuousVAETokenizer(**ContinuousVAETokenizer.tiny_config()).eval()
    >>> tok.token_layout(3, 16, 16)
    [TokenLevel(name='latents', steps=3, tokens=16, dim=16, codebook_size=None, frames_per_step=1, grid=(4, 4))]
    >>> with torch.no_grad():
    ...     out = tok.encode(torch.rand(1, 3, 3, 16, 16) * 2 - 1)
    ...     video = tok.decode(out)
    >>> tuple(out.tokens.shape), tuple(video.shape)
    ((1, 3, 16, 16), (1, 3, 3, 16, 16))
"""

from __future__ import annotations

import contextvars
import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from diffusers.configuration_utils import register_to_config
from einops import rearrange
from torch import nn

from vidtok.outputs import TokenizerOutput, TokenLevel
from vidtok.tokenizers.base import TOKENIZERS, VideoTokenizer, check_video

__all__ = ["VAE_ADAPTERS", "ContinuousVAEOutput", "ContinuousVAETokenizer", "VAEAdapter"]

# Set while ``ContinuousVAETokenizer.from_pretrained`` builds the tokenizer: the wrapped VAE is then built from the
# recorded ``vae_config`` and its weights come from the tokenizer's own weights file, never from ``vae_pretrained``.
_LOADING_SAVED: contextvars.ContextVar[bool] = contextvars.ContextVar("continuous_vae_loading", default=False)


def _log2_floor(value: Any) -> int:
    return int(math.log2(int(value))) if value and int(value) >= 1 else 0


def _as_json(value: Any) -> Any:
    """A diffusers config value as plain JSON (tuples become lists), so configs compare and serialize alike."""
    return json.loads(json.dumps(value))


@dataclass
class ContinuousVAEOutput(TokenizerOutput):
    """What :meth:`ContinuousVAETokenizer.encode` returns: :class:`~vidtok.outputs.TokenizerOutput` plus sizes.

    Attributes:
        num_frames: Frames of the encoded video. :meth:`ContinuousVAETokenizer.decode` crops to it when given this
            output, so a frame count the VAE had to pad comes back as it went in.
        grid: ``(h, w)`` of the token grid, so decoding needs no size hint.
    """

    num_frames: int | None = None
    grid: tuple[int, int] | None = None


# ---------------------------------------------------------------------------------------------------- adapters
class VAEAdapter:
    """How one diffusers VAE family compresses, which frame counts it takes and how to call it on a video.

    The base is the common case of the causal video VAEs: a valid clip has ``1 + f k`` frames (frame 0 alone,
    then ``f`` frames per latent frame), ``vae.encode(x).latent_dist`` gives the posterior and
    ``vae.decode(z).sample`` the video. Subclasses override what their family does differently.

    Args:
        vae: The diffusers VAE instance.
    """

    #: Name of the VAE config key that holds the latent channels.
    channels_key: ClassVar[str] = "latent_channels"

    def __init__(self, vae: nn.Module):
        self.vae = vae

    # ------------------------------------------------------------------ sizes
    @property
    def spatial_factor(self) -> int:
        """Pixels per latent position along height and width."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def temporal_factor(self) -> int:
        """Frames per latent frame after the first (``1`` for image VAEs)."""
        return 4

    @property
    def latent_channels(self) -> int:
        """Channels of the latent."""
        return int(self.vae.config[self.channels_key])

    def latent_frames(self, num_frames: int) -> int:
        """Latent frames of a ``num_frames`` clip once padded to the next valid count: ``1 + ⌈(T − 1) / f⌉``."""
        return 1 + -(-(num_frames - 1) // self.temporal_factor)

    def padded_frames(self, num_frames: int) -> int:
        """The valid frame count a ``num_frames`` clip is padded to (itself if valid)."""
        return 1 + (self.latent_frames(num_frames) - 1) * self.temporal_factor

    # ------------------------------------------------------------------ calls
    def posterior(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance ``(B, C, T', h, w)`` of a video with a valid frame count."""
        dist = self.vae.encode(video).latent_dist
        return dist.mean, dist.logvar

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``(B, C, T', h, w)`` latents → ``(B, 3, 1 + f (T' − 1), H, W)`` video."""
        out = self.vae.decode(latents)
        return out if isinstance(out, torch.Tensor) else out.sample

    def default_stats(self) -> tuple[Any, Any]:
        """``(shift, scale)`` the VAE's config declares, as diffusers pipelines apply them.

        ``latents_mean``/``latents_std`` (per channel) if set, with ``scaling_factor`` on top; else
        ``shift_factor`` and ``scaling_factor``; ``(0, 1)`` for a VAE that declares neither.
        """
        cfg = self.vae.config
        factor = float(cfg.get("scaling_factor") or 1.0)
        mean, std = cfg.get("latents_mean"), cfg.get("latents_std")
        if mean is not None and std is not None:
            return [float(m) for m in mean], [factor / float(s) for s in std]
        return float(cfg.get("shift_factor") or 0.0), factor


class _PerFrameAdapter(VAEAdapter):
    """Image VAEs (``AutoencoderKL``): every frame is encoded alone, so any frame count is valid."""

    @property
    def temporal_factor(self) -> int:
        return 1

    def posterior(self, video):
        b = video.shape[0]
        frames = rearrange(video, "b c t h w -> (b t) c h w")
        mean, logvar = super().posterior(frames)
        return tuple(rearrange(x, "(b t) c h w -> b c t h w", b=b) for x in (mean, logvar))

    def decode(self, latents):
        b = latents.shape[0]
        frames = super().decode(rearrange(latents, "b c t h w -> (b t) c h w"))
        return rearrange(frames, "(b t) c h w -> b c t h w", b=b)


class _CogVideoXAdapter(VAEAdapter):
    """``AutoencoderKLCogVideoX``: causal 3D, ``1 + f k`` frames.

    Its temporal upsampler keeps frame 0 apart only when a decoding batch has an odd number of latent frames, so
    an even count ``L`` decodes to ``4 L`` frames instead of ``1 + 4 (L − 1)``. An even count is therefore decoded
    with a copy of its last latent frame appended, and the extra frames are dropped.
    """

    @property
    def temporal_factor(self):
        # One temporal halving per down block but the last, up to log2(temporal_compression_ratio) of them.
        cfg = self.vae.config
        return 2 ** min(_log2_floor(cfg.temporal_compression_ratio), len(cfg.block_out_channels) - 1)

    def decode(self, latents):
        steps = latents.shape[2]
        if steps % 2 == 0:
            latents = torch.cat([latents, latents[:, :, -1:]], dim=2)
        return super().decode(latents)[:, :, : 1 + (steps - 1) * self.temporal_factor]


class _HunyuanVideoAdapter(VAEAdapter):
    """``AutoencoderKLHunyuanVideo``: causal 3D, ``1 + f k`` frames; factors from its config (capped by depth)."""

    @property
    def spatial_factor(self):
        cfg = self.vae.config
        return 2 ** min(_log2_floor(cfg.spatial_compression_ratio), len(cfg.block_out_channels) - 1)

    @property
    def temporal_factor(self):
        cfg = self.vae.config
        return 2 ** min(_log2_floor(cfg.temporal_compression_ratio), len(cfg.block_out_channels) - 1)


def _straight_through_clamp(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
    """Forward hook (training only): ``output`` clamped into ``(-1, 1)``, with the gradient of the identity.

    Strictly inside the interval (by 1e-6), since ``torch.clamp`` passes no gradient at its bounds either.
    """
    if not module.training:
        return output
    bound = 1.0 - 1e-6
    # (output - output.detach()) is exactly 0: the value is the clamped one without rounding (-50 + 49.000001
    # would round back to -1.0 in float32).
    return output.detach().clamp(-bound, bound) + (output - output.detach())


class _WanAdapter(VAEAdapter):
    """``AutoencoderKLWan``: causal 3D and streaming (frame 0, then chunks of ``f``), ``1 + f k`` frames.

    Its ``encode`` silently drops frames past the last whole chunk (6 frames come back as 5), hence the padding.
    The factors follow the architecture (``dim_mult``, ``temperal_downsample``, ``patch_size``); the
    ``scale_factor_spatial``/``scale_factor_temporal`` config entries do not set them but are what Wan's tiling
    computes tile sizes with, so they must agree (a ÷4 VAE left at the default 8 would tile to a cropped latent).
    In training mode its output clamp gets a straight-through gradient (:func:`_straight_through_clamp`).
    """

    channels_key = "z_dim"

    def __init__(self, vae):
        super().__init__(vae)
        # Wan's decode clamps its output to [-1, 1], which passes no gradient to pixels the decoder overshoots: a
        # Wan VAE trained from scratch then stalls at the all-black frame of Shapes (measured: MSE stuck at the
        # black-frame level for 200 steps while the KL collapsed). In training, the decoder's output is clamped
        # first with a straight-through gradient (values move by at most 1e-6); evaluation is untouched.
        vae.decoder.register_forward_hook(_straight_through_clamp)
        cfg = vae.config
        for key, actual in (
            ("scale_factor_spatial", self.spatial_factor),
            ("scale_factor_temporal", self.temporal_factor),
        ):
            if cfg.get(key) is not None and int(cfg[key]) != actual:
                raise ValueError(
                    f"ContinuousVAETokenizer: vae_config: {key}={cfg[key]} but the AutoencoderKLWan architecture "
                    f"compresses by {actual}; set {key}={actual} (its tiling uses it)"
                )

    @property
    def spatial_factor(self):
        cfg = self.vae.config
        return 2 ** (len(cfg.dim_mult) - 1) * int(cfg.get("patch_size") or 1)

    @property
    def temporal_factor(self):
        return 2 ** sum(bool(d) for d in self.vae.config.temperal_downsample)


class _VidTokAdapter(VAEAdapter):
    """``AutoencoderVidTok`` (causal, KL): ``1 + f k`` frames, with the front padding its ``encode`` forgets.

    VidTok's causal encoder expects ``f − 1`` copies of frame 0 in front of the clip, so that frame 0 fills a
    latent frame on its own; its ``decode`` drops the ``f − 1`` frames this padding produces. Only ``forward``
    adds the padding: calling ``encode`` directly on ``1 + f k`` frames yields ``k`` latent frames instead of
    ``1 + k`` (17 frames decode to 13), and fewer than ``f`` frames crash. The adapter adds it before ``encode``.
    """

    channels_key = "z_channels"

    def __init__(self, vae):
        super().__init__(vae)
        cfg = vae.config
        if not cfg.get("is_causal", True):
            raise ValueError(
                "ContinuousVAETokenizer: vae_config: AutoencoderVidTok with is_causal=False is not supported "
                "(its non-causal mode decodes in fixed 16-frame batches); use is_causal=True"
            )
        if cfg.get("regularizer", "kl") != "kl":
            raise ValueError(
                f"ContinuousVAETokenizer: vae_config: AutoencoderVidTok needs regularizer='kl' for continuous latents, "
                f"got {cfg.get('regularizer')!r}"
            )

    @property
    def spatial_factor(self):
        return 2 ** len(self.vae.encoder.spatial_ds)

    @property
    def temporal_factor(self):
        return int(self.vae.temporal_compression_ratio)

    def posterior(self, video):
        front = video[:, :, :1].expand(-1, -1, self.temporal_factor - 1, -1, -1)
        return super().posterior(torch.cat([front, video], dim=2))


VAE_ADAPTERS: dict[str, type[VAEAdapter]] = {
    "AutoencoderKL": _PerFrameAdapter,
    "AutoencoderKLCogVideoX": _CogVideoXAdapter,
    "AutoencoderKLHunyuanVideo": _HunyuanVideoAdapter,
    "AutoencoderKLWan": _WanAdapter,
    "AutoencoderVidTok": _VidTokAdapter,
}
"""diffusers VAE class name → its :class:`VAEAdapter`: the families :class:`ContinuousVAETokenizer` can wrap."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# -------------------------------------------------------------------------------------------------- tokenizer
@TOKENIZERS.register("continuous_vae")
class ContinuousVAETokenizer(VideoTokenizer):
    """Continuous tokens from a diffusers VAE, as NOVA uses them (arXiv:2412.14169 §3.2, §4.1).

    The wrapped VAE is a submodule (``vae``) built inside ``__init__`` from its class name and either a config
    (random initialization, e.g. to train on Shapes) or a pretrained folder / Hub id. Its weights are part of this
    tokenizer's ``state_dict``, so ``save_pretrained`` stores them and ``from_pretrained`` restores them from the
    tokenizer's own folder — ``vae_pretrained`` is read only when a tokenizer is first built, and its resolved
    config is recorded as ``vae_config`` so a saved tokenizer rebuilds the same architecture.

    **Tokens.** ``encode`` returns one level, ``(B, S, N, D)``: ``S`` latent frames, ``N = (h / p)(w / p)``
    patches of the ``h × w`` latent grid, ``D = C p²`` values per patch (``(c, p, p)`` order, as MAR/NOVA
    patchify), each latent normalized as ``(latent − latent_shift) · latent_scale``. By default ``encode`` uses
    the posterior mean, so tokens are deterministic; NOVA's training instead draws from the posterior
    (``sample_posterior=True``, per call or in the config).

    **Frames.** The family adapter (:data:`VAE_ADAPTERS`) fixes the valid counts, ``1 + f k`` for the causal
    video VAEs (``f = 4``) and any count for per-frame image VAEs. Other counts are padded with copies of the
    last frame; ``decode(encode(video))`` (or ``decode(tokens, num_frames=T)``) crops them off again.

    **Training.** :meth:`training_step` is the VAE objective: reconstruction (MSE and/or L1) of a posterior
    sample plus ``kl_loss_weight`` times the KL to a standard normal (mean per latent element).

    Args:
        vae_class: The diffusers class, one of :data:`VAE_ADAPTERS` (``"AutoencoderKL"`` per frame,
            ``"AutoencoderKLCogVideoX"``, ``"AutoencoderKLHunyuanVideo"``, ``"AutoencoderKLWan"``,
            ``"AutoencoderVidTok"``).
        vae_config: Keyword arguments of ``vae_class`` (random initialization). With ``vae_pretrained`` too, its
            entries must agree with the pretrained config. Recorded in full (defaults filled in).
        vae_pretrained: A local folder or Hub id loaded with ``vae_class.from_pretrained`` when the tokenizer is
            built (kept as a record of where the weights came from).
        vae_subfolder: ``subfolder`` of ``vae_pretrained`` (e.g. ``"vae"`` in a pipeline repository).
        patch_size: ``p``: latent positions per token side.
        latent_scale: ``scale`` of the normalization: one number, one per latent channel, or ``None`` for the
            VAE config's own (``scaling_factor``, or ``scaling_factor / latents_std``; ``1`` if it has none).
        latent_shift: ``shift``: one number, one per channel, or ``None`` for the VAE's (``latents_mean`` or
            ``shift_factor``; ``0`` if it has none).
        sample_posterior: Whether :meth:`encode` draws tokens from the posterior by default (else its mean).
        kl_loss_weight: Weight of the KL term of :meth:`training_step` (mean per latent element).
        l1_loss_weight: Weight of the L1 reconstruction loss.
        l2_loss_weight: Weight of the mean-squared-error reconstruction loss.
        enable_tiling: Turn on the VAE's tiled encoding/decoding: ``True``, or a dict of the family's
            ``enable_tiling`` arguments (tile sizes, overlaps).
        enable_slicing: Turn on the VAE's batch slicing (one sample, or for image VAEs one frame, at a time).
        sample_size: Native frame size (an int or ``[H, W]``), or ``None``.
        training_domain: What the VAE was trained on (e.g. ``"shapes"``), if recorded.

    Raises:
        ValueError: An unknown ``vae_class`` (the message lists the supported ones), a bad ``patch_size``,
            normalization or loss weight, or a ``sample_size`` the VAE and patch size do not divide.
    """

    decode_only_config = frozenset({"kl_loss_weight", "l1_loss_weight", "l2_loss_weight", "enable_slicing"})
    decode_only_modules = ("vae.decoder.", "vae.post_quant_conv.")

    @register_to_config
    def __init__(
        self,
        *,
        vae_class: str,
        vae_config: dict[str, Any] | None = None,
        vae_pretrained: str | None = None,
        vae_subfolder: str | None = None,
        patch_size: int = 2,
        latent_scale: float | list[float] | None = None,
        latent_shift: float | list[float] | None = None,
        sample_posterior: bool = False,
        kl_loss_weight: float = 1e-4,
        l1_loss_weight: float = 0.0,
        l2_loss_weight: float = 1.0,
        enable_tiling: bool | dict[str, Any] = False,
        enable_slicing: bool = False,
        sample_size: int | list[int] | None = None,
        training_domain: str | None = None,
    ):
        super().__init__()
        name = type(self).__name__
        if vae_class not in VAE_ADAPTERS:
            raise ValueError(
                f"{name}: vae_class {vae_class!r} is not supported; supported diffusers VAEs: "
                f"{', '.join(sorted(VAE_ADAPTERS))}"
            )
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
            raise ValueError(f"{name}: patch_size must be a positive int, got {patch_size!r}")
        for key, value in (
            ("kl_loss_weight", kl_loss_weight),
            ("l1_loss_weight", l1_loss_weight),
            ("l2_loss_weight", l2_loss_weight),
        ):
            if not _is_number(value) or value < 0:
                raise ValueError(f"{name}: {key} must be a number >= 0, got {value!r}")
        if vae_config is not None and not isinstance(vae_config, dict):
            raise ValueError(f"{name}: vae_config must be a dict of {vae_class} arguments, got {type(vae_config)}")
        if not isinstance(enable_tiling, (bool, dict)):
            raise ValueError(f"{name}: enable_tiling must be a bool or a dict of enable_tiling arguments")

        self.vae = self._build_vae(vae_class, vae_config, vae_pretrained, vae_subfolder)
        self.adapter = VAE_ADAPTERS[vae_class](self.vae)
        # The full config of the wrapped VAE: a saved tokenizer rebuilds exactly this architecture.
        resolved = {k: _as_json(v) for k, v in self.vae.config.items() if not k.startswith("_")}
        if vae_config is not None and vae_pretrained is not None:
            clash = sorted(k for k, v in vae_config.items() if k in resolved and _as_json(v) != resolved[k])
            if clash:
                raise ValueError(
                    f"{name}: vae_config disagrees with the config of vae_pretrained {vae_pretrained!r} on {clash}"
                )
        self.register_to_config(vae_config=resolved)

        self._scale = self._normalization("latent_scale", latent_scale, self.adapter.default_stats()[1])
        self._shift = self._normalization("latent_shift", latent_shift, self.adapter.default_stats()[0])
        if bool((self._scale == 0).any()):
            raise ValueError(f"{name}: latent_scale must not be 0")
        if sample_size is not None:
            self._check_size(*self._size_pair(sample_size), what="sample_size")
        if enable_tiling:
            self.enable_tiling(**(enable_tiling if isinstance(enable_tiling, dict) else {}))
        if enable_slicing:
            self.vae.enable_slicing()

    # ------------------------------------------------------------------ building
    @staticmethod
    def _build_vae(vae_class, vae_config, vae_pretrained, vae_subfolder) -> nn.Module:
        import diffusers

        cls = getattr(diffusers, vae_class, None)
        if cls is None:
            raise ValueError(f"ContinuousVAETokenizer: the installed diffusers has no {vae_class}; upgrade diffusers")
        # diffusers only logs config keys it does not know; a misspelt key would silently fall back to a default.
        import inspect

        known = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(k for k in (vae_config or {}) if not k.startswith("_") and k not in known)
        if unknown:
            raise ValueError(f"ContinuousVAETokenizer: vae_config keys {unknown} are not arguments of {vae_class}")
        if vae_pretrained is None:
            return cls.from_config(dict(vae_config or {}))
        if _LOADING_SAVED.get():
            # Loading a saved tokenizer: its weights file holds the VAE's weights; only the architecture is needed.
            if vae_config is None:
                vae_config = cls.load_config(vae_pretrained, subfolder=vae_subfolder)
            return cls.from_config(dict(vae_config))
        kwargs = {"subfolder": vae_subfolder} if vae_subfolder else {}
        return cls.from_pretrained(vae_pretrained, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> Any:
        """Load a saved tokenizer, VAE weights included (see :meth:`vidtok.modeling_utils.Component.from_pretrained`).

        The VAE is rebuilt from the recorded ``vae_config`` and its weights come from the tokenizer's own folder:
        ``vae_pretrained`` is not read again (it may no longer exist, or be a Hub id that would be downloaded).
        """
        token = _LOADING_SAVED.set(True)
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        finally:
            _LOADING_SAVED.reset(token)

    def with_decoder_config(self, **changes: Any) -> tuple[VideoTokenizer, list[str]]:
        """A copy with other decoder-side settings (loss weights, slicing); see the base class.

        The copy's VAE is built from the recorded ``vae_config`` and takes this tokenizer's weights, so
        ``vae_pretrained`` is not read again.
        """
        token = _LOADING_SAVED.set(True)
        try:
            return super().with_decoder_config(**changes)
        finally:
            _LOADING_SAVED.reset(token)

    def _normalization(self, key: str, value: Any, default: Any) -> torch.Tensor:
        """``latent_scale`` / ``latent_shift`` as a ``(C,)`` float tensor (validated)."""
        channels = self.adapter.latent_channels
        value = default if value is None else value
        # Explicitly on the CPU: a tokenizer built under ``torch.device("meta")`` (to read its layout) still has
        # real normalization constants.
        if _is_number(value):
            return torch.full((channels,), float(value), device="cpu")
        if isinstance(value, (list, tuple)) and len(value) == channels and all(_is_number(v) for v in value):
            return torch.tensor([float(v) for v in value], device="cpu")
        raise ValueError(
            f"{type(self).__name__}: {key} must be a finite number or a list of {channels} (one per latent "
            f"channel), got {value!r}"
        )

    # ------------------------------------------------------------------ presets
    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """A tiny per-frame ``AutoencoderKL`` (44 k parameters; 16 × 16 frames → 8 × 8 × 4 latents → 16 tokens)."""
        return {
            "vae_class": "AutoencoderKL",
            "vae_config": {
                "block_out_channels": [8, 16],
                "down_block_types": ["DownEncoderBlock2D"] * 2,
                "up_block_types": ["UpDecoderBlock2D"] * 2,
                "latent_channels": 4,
                "norm_num_groups": 4,
                "layers_per_block": 1,
            },
            "patch_size": 2,
            "latent_scale": 1.0,
            "latent_shift": 0.0,
            "sample_size": 16,
        }

    @classmethod
    def shapes_config(cls) -> dict[str, Any]:
        """A small trainable VAE for 32 × 32 Shapes videos: ``AutoencoderKLWan``, 4 channels, ``4 × 4 × 4``.

        2.5 M parameters; 9 frames become 3 latent frames of ``8 × 8 × 4``, 17 frames 5, and with ``p = 2`` each
        latent frame is 16 tokens of 16 values — NOVA's token shape (4 channels, 2 × 2 patches) and its 4× causal
        temporal compression with frame 0 alone (§4.1). Why these choices:

        * **Wan** because it is the one installed video family that is exactly causal in both directions
          (measured: changing frames 5–8 leaves the first two latent frames and the first five decoded frames
          bit-identical; CogVideoX and HunyuanVideo normalize over time, VidTok's decoder interpolates across
          latent frames). A prefix of a video then tokenizes to a prefix of its tokens, which frame-by-frame AR
          generation and video continuation rely on. One training step on 8 × 9 × 32 × 32 took 1.7 s on one
          CPU thread (CogVideoX 1.6 s, HunyuanVideo 1.8 s, VidTok 2.3 s at the same width).
        * **Spatial ÷4** (not NOVA's ÷8) because a 32 × 32 frame at ÷8 leaves a ``4 × 4`` latent, only 4 tokens
          of 2 × 2 patches; ÷4 gives 16 tokens per step, as many as the raw-pixel NOVA probe on Shapes used.
        * MSE reconstruction (L1 stalls at the black background of Shapes, see ``docs/results.md``) and a small
          KL weight; the normalization starts as the identity, to be replaced by :meth:`estimate_latent_stats`
          after training. Wan's output clamp gets a straight-through gradient in training (see the Wan adapter),
          without which training stalled at the all-black frame.
        """
        return {
            "vae_class": "AutoencoderKLWan",
            "vae_config": {
                "base_dim": 32,
                "z_dim": 4,
                "dim_mult": [1, 2, 2],
                "num_res_blocks": 1,
                "temperal_downsample": [True, True],
                "latents_mean": [0.0] * 4,
                "latents_std": [1.0] * 4,
                "scale_factor_spatial": 4,
            },
            "patch_size": 2,
            "latent_scale": 1.0,
            "latent_shift": 0.0,
            "sample_size": 32,
            "training_domain": "shapes",
        }

    # ------------------------------------------------------------------ sizes
    @property
    def in_channels(self) -> int:
        """Video channels the VAE takes."""
        return int(self.vae.config.get("in_channels", 3))

    @property
    def spatial_compression(self) -> int:
        """Pixels per token side: the VAE's spatial factor times ``patch_size``."""
        return self.adapter.spatial_factor * self.config.patch_size

    @property
    def latent_channels(self) -> int:
        """Channels ``C`` of the VAE latent (a token holds ``C p²`` values)."""
        return self.adapter.latent_channels

    @property
    def latent_scale(self) -> torch.Tensor:
        """The per-channel ``scale`` in use, ``(C,)``."""
        return self._scale.clone()

    @property
    def latent_shift(self) -> torch.Tensor:
        """The per-channel ``shift`` in use, ``(C,)``."""
        return self._shift.clone()

    @staticmethod
    def _size_pair(size: Any) -> tuple[int, int]:
        return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def _check_size(self, height: int, width: int, what: str = "video") -> tuple[int, int]:
        step = self.spatial_compression
        if height % step or width % step or height < 1 or width < 1:
            raise ValueError(
                f"{type(self).__name__}: {what} height and width must be positive multiples of {step} (the VAE's "
                f"spatial factor {self.adapter.spatial_factor} × patch_size {self.config.patch_size}), got "
                f"{height}x{width}"
            )
        return height // step, width // step

    def token_layout(self, num_frames: int, height: int, width: int) -> list[TokenLevel]:
        """One level ``"latents"``: steps = latent frames, an ``(H / s p, W / s p)`` grid, ``C p²`` channels.

        A frame count the VAE cannot take is counted as the next valid one (what :meth:`encode` pads to).

        Raises:
            ValueError: If ``num_frames`` is not a positive int or the size is not divisible by the VAE's spatial
                factor times ``patch_size``.
        """
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"{type(self).__name__}: num_frames must be a positive int, got {num_frames!r}")
        grid = self._check_size(height, width)
        p = self.config.patch_size
        return [
            TokenLevel(
                "latents",
                self.adapter.latent_frames(num_frames),
                grid[0] * grid[1],
                self.latent_channels * p * p,
                codebook_size=None,
                frames_per_step=self.adapter.temporal_factor,
                grid=grid,
            )
        ]

    def reference_layout(self) -> list[TokenLevel]:
        """One frame at the native size, or of one token when any size works (the VAE fixes no size)."""
        return self.token_layout(1, *(self.sample_size or (self.spatial_compression,) * 2))

    def valid_num_frames(self, num_frames: int) -> bool:
        """Whether the VAE takes ``num_frames`` as is (``1 + f k``; any count for per-frame VAEs).

        :meth:`encode` takes other counts too, by padding (see the class docstring).
        """
        return (
            isinstance(num_frames, int)
            and not isinstance(num_frames, bool)
            and num_frames >= 1
            and self.adapter.padded_frames(num_frames) == num_frames
        )

    # ------------------------------------------------------------------ latents <-> tokens
    def latents_to_tokens(self, latents: torch.Tensor) -> torch.Tensor:
        """VAE latents ``(B, C, T', h, w)`` → normalized tokens ``(B, T', (h / p)(w / p), C p²)``."""
        p = self.config.patch_size
        scale = self._scale.to(latents).view(1, -1, 1, 1, 1)
        shift = self._shift.to(latents).view(1, -1, 1, 1, 1)
        return rearrange((latents - shift) * scale, "b c t (h p1) (w p2) -> b t (h w) (c p1 p2)", p1=p, p2=p)

    def tokens_to_latents(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """The inverse of :meth:`latents_to_tokens` for a token grid ``(h / p, w / p)``."""
        p = self.config.patch_size
        latents = rearrange(tokens, "b t (h w) (c p1 p2) -> b c t (h p1) (w p2)", h=grid[0], w=grid[1], p1=p, p2=p)
        scale = self._scale.to(latents).view(1, -1, 1, 1, 1)
        shift = self._shift.to(latents).view(1, -1, 1, 1, 1)
        return latents / scale + shift

    # ------------------------------------------------------------------ encode
    def _check_video(self, video: Any) -> torch.Tensor:
        if isinstance(video, torch.Tensor) and video.numel() == 0:
            raise ValueError(f"{type(self).__name__}: video must not be empty, got shape {tuple(video.shape)}")
        video = check_video(video, channels=self.in_channels)
        self._check_size(video.shape[3], video.shape[4])
        return video.to(self.dtype)

    def _pad_frames(self, video: torch.Tensor) -> torch.Tensor:
        """Append copies of the last frame up to the next frame count the VAE takes."""
        extra = self.adapter.padded_frames(video.shape[2]) - video.shape[2]
        if extra == 0:
            return video
        return torch.cat([video, video[:, :, -1:].expand(-1, -1, extra, -1, -1)], dim=2)

    def _posterior(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.adapter.posterior(self._pad_frames(video))

    @staticmethod
    def _sample(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * noise

    @staticmethod
    def _kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL of the diagonal Gaussian posterior to a standard normal, mean per latent element."""
        return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()

    def encode(
        self,
        video: torch.Tensor,
        *,
        sample_posterior: bool | None = None,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> ContinuousVAEOutput:
        """Encode ``(B, C, T, H, W)`` in ``[-1, 1]`` into tokens ``(B, S, N, C p²)`` (see :meth:`token_layout`).

        Args:
            video: The video; any ``T >= 1`` (padded with copies of the last frame to a count the VAE takes).
            sample_posterior: Draw the latents from the posterior instead of taking its mean (default: the
                config's ``sample_posterior``).
            generator: Drives the posterior sample.
            **kwargs: Ignored (options other tokenizers' ``encode`` takes).

        Returns:
            :class:`ContinuousVAEOutput`: ``tokens``, ``aux_losses={"kl": ...}``, ``num_frames = T`` and ``grid``.

        Raises:
            ValueError, TypeError: On a malformed video (named) or a size the VAE and patch size do not divide.
        """
        video = self._check_video(video)
        mean, logvar = self._posterior(video)
        sample = self.config.sample_posterior if sample_posterior is None else sample_posterior
        latents = self._sample(mean, logvar, generator) if sample else mean
        grid = (latents.shape[3] // self.config.patch_size, latents.shape[4] // self.config.patch_size)
        return ContinuousVAEOutput(
            tokens=self.latents_to_tokens(latents),
            aux_losses={"kl": self._kl(mean, logvar)},
            num_frames=int(video.shape[2]),
            grid=grid,
        )

    # ------------------------------------------------------------------ decode
    def _grid(self, tokens: int, grid: Any, height: int | None, width: int | None) -> tuple[int, int]:
        name = type(self).__name__
        if grid is None and height is not None and width is not None:
            grid = self._check_size(int(height), int(width))
        if grid is None and self.sample_size is not None:
            candidate = self._check_size(*self.sample_size, what="sample_size")
            grid = candidate if candidate[0] * candidate[1] == tokens else None
        if grid is None:
            side = math.isqrt(tokens)
            if side * side != tokens:
                raise ValueError(f"{name}: cannot infer the grid of {tokens} tokens per step; pass grid=(h, w)")
            grid = (side, side)
        grid = (int(grid[0]), int(grid[1]))
        if grid[0] * grid[1] != tokens:
            raise ValueError(f"{name}: {tokens} tokens per step do not fill the token grid {grid}")
        return grid

    def decode(
        self,
        tokens: Any,
        *,
        num_frames: int | None = None,
        grid: tuple[int, int] | None = None,
        height: int | None = None,
        width: int | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Decode tokens into a video ``(B, C, T, H, W)`` clamped to ``[-1, 1]``.

        Args:
            tokens: ``(B, S, N, C p²)`` tokens (or a one-element list of them), or the output of :meth:`encode`
                (then ``num_frames`` and ``grid`` come from it).
            num_frames: Frames to return: the ``T`` that was encoded, when it was padded (default: all
                ``num_frames_for(S)`` frames the VAE decodes).
            grid: ``(h, w)`` of the token grid (default: from ``height``/``width``, else ``sample_size``, else
                square).
            height: Frame height, to infer the grid.
            width: Frame width, to infer the grid.
            **kwargs: Ignored (sampler options other tokenizers' ``decode`` takes).

        Raises:
            ValueError, TypeError: On malformed tokens (named), or a ``num_frames`` that ``S`` steps do not decode to.
        """
        name = type(self).__name__
        if isinstance(tokens, TokenizerOutput):
            num_frames = num_frames if num_frames is not None else getattr(tokens, "num_frames", None)
            grid = grid if grid is not None else getattr(tokens, "grid", None)
            tokens = tokens.tokens
        if isinstance(tokens, (list, tuple)) and len(tokens) == 1:
            tokens = tokens[0]
        if not isinstance(tokens, torch.Tensor) or not tokens.is_floating_point():
            got = tokens.dtype if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise TypeError(f"{name}: tokens must be a floating-point tensor (B, S, N, D), got {got}")
        dim = self.latent_channels * self.config.patch_size**2
        if tokens.ndim != 4 or tokens.numel() == 0 or tokens.shape[3] != dim:
            raise ValueError(f"{name}: tokens must be a non-empty (B, S, N, {dim}), got {tuple(tokens.shape)}")
        if not torch.isfinite(tokens).all():
            raise ValueError(f"{name}: tokens contain NaN or inf")
        grid = self._grid(tokens.shape[2], grid, height, width)
        steps = tokens.shape[1]
        full = self.num_frames_for(steps)
        if num_frames is not None:
            if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
                raise ValueError(f"{name}: num_frames must be a positive int, got {num_frames!r}")
            if self.adapter.latent_frames(num_frames) != steps:
                raise ValueError(
                    f"{name}: {steps} token steps decode to {full} frames, which cannot be cropped to "
                    f"num_frames={num_frames} ({num_frames} frames encode to {self.adapter.latent_frames(num_frames)} "
                    f"steps)"
                )
        video = self.adapter.decode(self.tokens_to_latents(tokens.to(self.dtype), grid))
        return video[:, :, : num_frames or full].clamp(-1, 1)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The parameters that make the latents: the VAE's ``encoder`` and its ``quant_conv`` where it has one.

        Freezing them and training the rest fine-tunes the decoder alone: :meth:`encode` gives the same tokens,
        so an AR model trained on them keeps working with the new decoder (``examples/train_nova_vae_shapes.py
        --decoder-only``).

        Raises:
            TypeError: If the wrapped VAE has no ``encoder`` module.
        """
        if not isinstance(getattr(self.vae, "encoder", None), nn.Module):
            raise TypeError(f"{type(self.vae).__name__} has no `encoder` module to tell its encoder parameters")
        modules = [self.vae.encoder, getattr(self.vae, "quant_conv", None)]
        return [p for m in modules if isinstance(m, nn.Module) for p in m.parameters()]

    # ------------------------------------------------------------------ latent statistics
    @torch.no_grad()
    def estimate_latent_stats(
        self,
        videos: Any,
        *,
        per_channel: bool = True,
        max_batches: int | None = None,
        sample_posterior: bool | None = None,
        generator: torch.Generator | None = None,
        apply: bool = True,
    ) -> dict[str, float | list[float]]:
        """Measure the shift and scale that give the tokens zero mean and unit variance (NOVA's scale/shift, §3.2).

        The raw latents (what :meth:`encode` takes: the posterior mean, or a sample with ``sample_posterior``)
        are accumulated in float64; ``shift`` is their mean and ``scale`` one over their standard deviation.

        Args:
            videos: A video tensor ``(B, C, T, H, W)``, or an iterable of them or of batches ``{"video": ...}``
                (e.g. a ``DataLoader``).
            per_channel: One shift and scale per latent channel (default), or one number for all (the Stable
                Diffusion ``scaling_factor`` convention).
            max_batches: Stop after this many batches of the iterable.
            sample_posterior: As in :meth:`encode` (default: the config's).
            generator: Drives posterior samples.
            apply: Store the result in the config (``latent_shift``, ``latent_scale``) and use it from now on, so it
                is saved with the tokenizer.

        Returns:
            ``{"latent_shift": ..., "latent_scale": ...}`` (lists per channel, or floats).

        Raises:
            ValueError: If no video was seen, or a channel is constant (its scale would be infinite).
        """
        batches = [videos] if isinstance(videos, torch.Tensor) else videos
        channels = self.latent_channels
        count = 0
        total = torch.zeros(channels, dtype=torch.float64)
        squares = torch.zeros(channels, dtype=torch.float64)
        sample = self.config.sample_posterior if sample_posterior is None else sample_posterior
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            video = batch["video"] if isinstance(batch, dict) else batch
            mean, logvar = self._posterior(self._check_video(video))
            latents = self._sample(mean, logvar, generator) if sample else mean
            flat = latents.transpose(0, 1).reshape(channels, -1).double().cpu()
            total += flat.sum(1)
            squares += flat.pow(2).sum(1)
            count += flat.shape[1]
        if count == 0:
            raise ValueError(f"{type(self).__name__}: estimate_latent_stats saw no video")
        if not per_channel:
            total, squares, count = total.sum().view(1), squares.sum().view(1), count * channels
        mean = total / count
        std = (squares / count - mean.pow(2)).clamp_min(0).sqrt()
        if bool((std <= 1e-12).any()):
            raise ValueError(f"{type(self).__name__}: a latent channel is constant over the data; cannot scale it")
        shift, scale = mean.tolist(), (1.0 / std).tolist()
        stats = {"latent_shift": shift, "latent_scale": scale}
        if not per_channel:
            stats = {"latent_shift": shift[0], "latent_scale": scale[0]}
        if apply:
            self.set_latent_stats(**stats)
        return stats

    def set_latent_stats(self, *, latent_shift: Any, latent_scale: Any) -> None:
        """Use (and record in the config, so ``save_pretrained`` keeps them) a new normalization.

        Args:
            latent_shift: One number or one per latent channel.
            latent_scale: One number or one per latent channel (non-zero).

        Raises:
            ValueError: On a malformed or zero value (named).
        """
        shift = self._normalization("latent_shift", latent_shift, None)
        scale = self._normalization("latent_scale", latent_scale, None)
        if bool((scale == 0).any()):
            raise ValueError(f"{type(self).__name__}: latent_scale must not be 0")
        self._shift, self._scale = shift, scale
        self.register_to_config(latent_shift=_as_json(latent_shift), latent_scale=_as_json(latent_scale))

    # ------------------------------------------------------------------ tiling and slicing
    def enable_tiling(self, **kwargs: Any) -> None:
        """Turn on the VAE's tiled encoding and decoding now (``kwargs``: its ``enable_tiling`` arguments).

        Not recorded in the config; the ``enable_tiling`` config entry turns it on at construction.

        Raises:
            ValueError: On an option the family's ``enable_tiling`` does not take (the message lists those it takes).
        """
        import inspect

        known = [n for n in inspect.signature(self.vae.enable_tiling).parameters if n not in ("self", "kwargs")]
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: enable_tiling options {unknown} are not taken by "
                f"{type(self.vae).__name__}.enable_tiling (it takes {known or 'no options'})"
            )
        self.vae.enable_tiling(**kwargs)

    def disable_tiling(self) -> None:
        """Turn the VAE's tiling off."""
        self.vae.disable_tiling()

    def enable_slicing(self) -> None:
        """Turn on the VAE's batch slicing now (not recorded in the config)."""
        self.vae.enable_slicing()

    def disable_slicing(self) -> None:
        """Turn the VAE's batch slicing off."""
        self.vae.disable_slicing()

    # ------------------------------------------------------------------ training
    def training_step(
        self, batch: dict[str, Any] | torch.Tensor, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """The VAE objective: reconstruction of a posterior sample + ``kl_loss_weight`` × KL.

        Args:
            batch: ``{"video": (B, C, T, H, W) in [-1, 1], ...}`` or the video itself (any ``T``; padded frames
                are left out of the loss). An optional ``"loss_weight"`` ``(B, 1, T, H, W)`` weights the
                reconstruction per pixel.
            generator: Drives the posterior sample (the step is deterministic for a seeded generator).

        Returns:
            ``{"loss", "l1", "l2", "kl"}`` scalars and ``"reconstruction"``, the unclamped decoded video with its
            graph (for :class:`vidtok.training.losses.AdversarialTraining`).
        """
        video = self._check_video(batch["video"] if isinstance(batch, dict) else batch)
        mean, logvar = self._posterior(video)
        recon = self.adapter.decode(self._sample(mean, logvar, generator))[:, :, : video.shape[2]]
        diff = recon - video
        weight = batch.get("loss_weight") if isinstance(batch, dict) else None
        if weight is None:
            l1, l2 = diff.abs().mean(), diff.pow(2).mean()
        else:
            weight = weight.to(diff).expand_as(diff)
            l1, l2 = (diff.abs() * weight).sum() / weight.sum(), (diff.pow(2) * weight).sum() / weight.sum()
        kl = self._kl(mean, logvar)
        cfg = self.config
        loss = cfg.l1_loss_weight * l1 + cfg.l2_loss_weight * l2 + cfg.kl_loss_weight * kl
        return {"loss": loss, "l1": l1.detach(), "l2": l2.detach(), "kl": kl.detach(), "reconstruction": recon}
