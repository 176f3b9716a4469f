"""HiTVideo's hierarchical tokenizer: a causal 3D VAE with several LFQ codebook levels (HiTVideo §3.2, Tab. 2).

**Encoder.** A causal 3D CNN (MAGVIT-v2 / Open-MAGVIT2 style, built from :mod:`vidtok.tokenizers._causal3d`):
an input convolution, then one stage per entry of ``channel_multipliers`` — ``num_res_blocks`` ResNet blocks and
a strided causal convolution that halves height and width, and halves time where ``temporal_downsample`` says
so — then a ResNet block and an output convolution to ``latent_channels``. Time is causal throughout (past-side
padding, per-frame normalization), so frame 0 is encoded alone and an image is a one-frame video.

**Hierarchy.** The encoder's latent is the finest level. Lightweight causal stages (one ResNet block and one
strided causal convolution each) compress it further, one per coarser level, by the ``(time, space)`` strides
of ``level_strides``. Every level has its own quantizer (LFQ by default) whose code width ``level_bits`` shrinks
with the level; a ``1×1×1`` convolution maps the level's features to its ``bits`` channels.

**Decoder.** Coarse to fine (VQ-VAE-2 style): the coarsest codes are embedded, upsampled by the inverse strides
and added to the embedded codes of the next finer level, and so on down to the finest level; a causal decoder
symmetric to the encoder then reconstructs the video. Every level contributes; in progressive training
(:meth:`HierarchicalLFQTokenizer.configure_stage`) the finer levels not yet trained contribute nothing.

**Frame rule.** With ``f = 2^(number of temporal downsampling stages)`` (8 by default), a video of
``1 + f k`` frames has ``1 + k`` finest steps (frame 0 alone, then one per ``f`` frames). A coarser level
whose cumulative time stride over the finest level is ``r`` has ``1 + ⌈k / r⌉`` steps and advances ``f r``
frames per step (a last, incomplete window is completed with copies of its last step; it never reaches
into later frames). Height and width must be divisible by the coarsest level's spatial factor.

Example:
    >>> import torch
    >>> from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer
    >>> tok = HierarchicalLFQTokenizer(**HierarchicalLFQTokenizer.tiny_config()).eval()
    >>> [(lv.name, lv.steps, lv.grid, lv.codebook_size) for lv in tok.token_layout(5, 16, 16)]
    [('level0', 2, (2, 2), 8), ('level1', 2, (4, 4), 16), ('level2', 3, (4, 4), 64)]
    >>> out = tok.encode(torch.rand(1, 3, 5, 16, 16) * 2 - 1)
    >>> [tuple(codes.shape) for codes in out.indices]
    [(1, 2, 4), (1, 2, 16), (1, 3, 16)]
    >>> tuple(tok.decode_codes(out.indices).shape)
    (1, 3, 5, 16, 16)
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import nn

from vidtok.outputs import TokenizerOutput, TokenLevel
from vidtok.tokenizers._causal3d import CausalConv3d, CausalGroupNorm, Downsample3d, ResBlock3d, Upsample3d
from vidtok.tokenizers.base import TOKENIZERS, VideoTokenizer, check_video
from vidtok.tokenizers.quantizers import QUANTIZERS, indices_to_bits
from vidtok.tokenizers.token_masking import STRATEGIES, apply_token_mask, dynamic_token_mask, tokens_saved

__all__ = ["HierarchicalLFQTokenizer"]


def _groups(channels: int) -> int:
    for groups in (32, 16, 8, 4, 2):
        if channels % groups == 0 and channels >= 2 * groups:
            return groups
    return 1


class _Encoder(nn.Module):
    def __init__(self, in_channels, base_channels, multipliers, num_res_blocks, temporal, latent_channels, kt):
        super().__init__()
        widths = [base_channels * m for m in multipliers]
        self.conv_in = CausalConv3d(in_channels, widths[0], (kt, 3, 3))
        self.stages = nn.ModuleList()
        prev = widths[0]
        for width, down_time in zip(widths, temporal):
            blocks = []
            for _ in range(num_res_blocks):
                blocks.append(ResBlock3d(prev, width, kt))
                prev = width
            stage = nn.Module()
            stage.blocks = nn.Sequential(*blocks)
            stage.down = Downsample3d(width, width, time=2 if down_time else 1, space=2, temporal_kernel=kt)
            self.stages.append(stage)
        self.mid = ResBlock3d(prev, prev, kt)
        self.norm_out = CausalGroupNorm(_groups(prev), prev)
        self.conv_out = CausalConv3d(prev, latent_channels, (kt, 3, 3))

    def forward(self, x):
        x = self.conv_in(x)
        for stage in self.stages:
            x = stage.down(stage.blocks(x))
        return self.conv_out(F.silu(self.norm_out(self.mid(x))))


class _Decoder(nn.Module):
    def __init__(self, out_channels, base_channels, multipliers, num_res_blocks, temporal, latent_channels, kt):
        super().__init__()
        widths = [base_channels * m for m in multipliers]
        self.conv_in = CausalConv3d(latent_channels, widths[-1], (kt, 3, 3))
        self.mid = ResBlock3d(widths[-1], widths[-1], kt)
        self.stages = nn.ModuleList()
        prev = widths[-1]
        for width, up_time in zip(reversed(widths), reversed(temporal)):
            stage = nn.Module()
            stage.up = Upsample3d(prev, width, time=2 if up_time else 1, space=2, temporal_kernel=kt)
            stage.blocks = nn.Sequential(*[ResBlock3d(width, width, kt) for _ in range(num_res_blocks)])
            self.stages.append(stage)
            prev = width
        self.norm_out = CausalGroupNorm(_groups(prev), prev)
        self.conv_out = CausalConv3d(prev, out_channels, (kt, 3, 3))

    def forward(self, z):
        x = self.mid(self.conv_in(z))
        for stage in self.stages:
            x = stage.blocks(stage.up(x))
        return self.conv_out(F.silu(self.norm_out(x)))


@TOKENIZERS.register("hierarchical_lfq")
class HierarchicalLFQTokenizer(VideoTokenizer):
    """HiTVideo's multi-level LFQ causal 3D VAE (HiTVideo §3.2, Tab. 2).

    Levels are listed coarsest first everywhere (config lists, :meth:`token_layout`, :meth:`encode`,
    :meth:`decode`): our ``level0`` is the paper's most compressed layer (its layer 3, 3 bits), our last level
    its densest layer (its layer 0, 18 bits). See the module docstring for the architecture and the frame rule.

    Training (§3.2 "Loss Function"): :meth:`training_step` is the L1 reconstruction loss plus every active
    level's LFQ commitment and MAGVIT-v2 entropy penalty. The paper also trains with LPIPS and a GAN
    discriminator; those are a later step here (their weights are accepted and must be ``0``). Progressive
    training — the coarsest codebooks first, then the denser ones — is :meth:`configure_stage` with
    ``{"levels": n}``.

    Args:
        in_channels: Video channels.
        base_channels: Width of the first encoder stage (and the last decoder stage).
        channel_multipliers: Width multiplier of each encoder stage (reversed in the decoder); one stage each,
            every stage halves height and width.
        temporal_downsample: Per stage, whether it also halves time (the default: the first three of four).
        num_res_blocks: ResNet blocks per stage.
        latent_channels: Channels of the encoder's latent and of every hierarchy stage.
        level_bits: Code width of each level, coarsest first (codebook ``2^bits``; HiTVideo: ``[3, 14, 16, 18]``).
        level_strides: ``[time, space]`` stride of each coarser level over the next finer one, coarsest first
            (``len(level_bits) − 1`` entries).
        quantizer: Registry name of the per-level quantizer (:data:`~vidtok.tokenizers.quantizers.QUANTIZERS`:
            ``"lfq"``, ``"bsq"``).
        quantizer_kwargs: Extra keyword arguments of every level's quantizer (``num_bits`` comes from
            ``level_bits``; ``channel_dim`` is fixed to 1).
        commitment_loss_weight: Weight of the quantizers' commitment loss.
        entropy_loss_weight: Weight of the quantizers' entropy penalty.
        l1_loss_weight: Weight of the L1 reconstruction loss (HiTVideo's).
        l2_loss_weight: Weight of a mean-squared-error reconstruction loss (not in HiTVideo; ``0`` by default).
            On sparse videos such as Shapes (small objects on black) the L1 optimum is the per-pixel *median*,
            the empty background, and training stalls there: measured, a conv autoencoder under L1 stayed at the
            all-black PSNR for 600 steps where the same model under MSE gained 9 dB (``docs/results.md``).
        perceptual_loss_weight: LPIPS weight — not implemented yet, must be ``0``.
        adversarial_loss_weight: GAN weight — not implemented yet, must be ``0``.
        sample_size: Native frame size (an int or ``[H, W]``), or ``None``.
        token_masking: HiTVideo's dynamic token masking (§4, :mod:`vidtok.tokenizers.token_masking`): ``None``
            (off, the default) or the strategy that replaces the redundant tokens, ``"repeat"``, ``"zero"`` or
            ``"learned"`` (then every level has a learned mask token, ``mask_tokens``).
        mask_max_fraction: The masking cap: at most this fraction of each level's tokens is masked (0.85).
        temporal_kernel_size: Frames spanned by every convolution that does not resample time: 3 (full 3D
            kernels, MAGVIT-v2's causal 3D CNN, the default) or 1 (spatial ``1×3×3`` kernels; time is then mixed
            only by the strided convolutions that downsample it and the depth-to-time convolutions that upsample
            it). Not in HiTVideo: measured on Shapes, ``1`` learned far faster — 21.4 dB held-out PSNR after 200
            steps where the full 3D kernels were at 16 dB (``docs/results.md``) — at half the time per step.

    Raises:
        NotImplementedError: If ``perceptual_loss_weight`` or ``adversarial_loss_weight`` is not 0.
        ValueError: On inconsistent level lists.
    """

    decode_only_config = frozenset(
        {"l1_loss_weight", "l2_loss_weight", "perceptual_loss_weight", "adversarial_loss_weight"}
    )
    decode_only_modules = ("decoder.", "post_quant.", "hier_up.")

    @register_to_config
    def __init__(
        self,
        *,
        in_channels: int = 3,
        base_channels: int = 128,
        channel_multipliers: list[int] | tuple[int, ...] = (1, 2, 2, 4),
        temporal_downsample: list[bool] | tuple[bool, ...] = (True, True, True, False),
        num_res_blocks: int = 2,
        latent_channels: int = 256,
        level_bits: list[int] | tuple[int, ...] = (3, 14, 16, 18),
        level_strides: list[list[int]] | tuple[tuple[int, int], ...] = ((2, 2), (2, 1), (2, 2)),
        quantizer: str = "lfq",
        quantizer_kwargs: dict[str, Any] | None = None,
        commitment_loss_weight: float = 0.25,
        entropy_loss_weight: float = 0.1,
        l1_loss_weight: float = 1.0,
        l2_loss_weight: float = 0.0,
        perceptual_loss_weight: float = 0.0,
        adversarial_loss_weight: float = 0.0,
        sample_size: int | list[int] | None = None,
        token_masking: str | None = None,
        mask_max_fraction: float = 0.85,
        temporal_kernel_size: int = 3,
    ):
        super().__init__()
        name = type(self).__name__
        if token_masking is not None and token_masking not in STRATEGIES:
            raise ValueError(
                f"{name}: token_masking must be None or one of {', '.join(STRATEGIES)}, got {token_masking!r}"
            )
        if (
            isinstance(mask_max_fraction, bool)
            or not isinstance(mask_max_fraction, (int, float))
            or not 0 <= mask_max_fraction <= 1
        ):
            raise ValueError(f"{name}: mask_max_fraction must be a number in [0, 1], got {mask_max_fraction!r}")
        if perceptual_loss_weight or adversarial_loss_weight:
            raise NotImplementedError(
                f"{name}: the LPIPS and GAN losses of HiTVideo §3.2 are not implemented inside the tokenizer yet "
                f"(a later step); set perceptual_loss_weight and adversarial_loss_weight to 0 (got "
                f"{perceptual_loss_weight}, {adversarial_loss_weight}), or train the tokenizer wrapped in "
                f"vidtok.training.losses.AdversarialTraining, which adds them from training_step's reconstruction"
            )
        if temporal_kernel_size not in (1, 3) or isinstance(temporal_kernel_size, bool):
            raise ValueError(f"{name}: temporal_kernel_size must be 1 or 3, got {temporal_kernel_size!r}")
        multipliers = [int(m) for m in channel_multipliers]
        temporal = [bool(t) for t in temporal_downsample]
        if not multipliers or len(temporal) != len(multipliers):
            raise ValueError(
                f"{name}: temporal_downsample needs one entry per stage ({len(multipliers)}), got {len(temporal)}"
            )
        bits = [int(b) for b in level_bits]
        strides = [(int(s[0]), int(s[1])) for s in level_strides]
        if not bits:
            raise ValueError(f"{name}: level_bits must list at least one level")
        if len(strides) != len(bits) - 1:
            raise ValueError(
                f"{name}: level_strides needs len(level_bits) - 1 = {len(bits) - 1} [time, space] entries, "
                f"got {len(strides)}"
            )
        if any(s < 1 for pair in strides for s in pair) or any(b < 1 for b in bits):
            raise ValueError(f"{name}: level strides and bits must be positive, got {strides} and {bits}")
        self.num_levels = len(bits)
        kt = temporal_kernel_size
        self.encoder = _Encoder(in_channels, base_channels, multipliers, num_res_blocks, temporal, latent_channels, kt)
        self.decoder = _Decoder(in_channels, base_channels, multipliers, num_res_blocks, temporal, latent_channels, kt)
        # Hierarchy stage i makes level i (coarsest first) from level i + 1; hier_up[i] undoes it.
        self.hier_down = nn.ModuleList()
        self.hier_up = nn.ModuleList()
        for time, space in strides:
            self.hier_down.append(
                nn.Sequential(
                    ResBlock3d(latent_channels, latent_channels, kt),
                    Downsample3d(latent_channels, latent_channels, time=time, space=space, temporal_kernel=kt),
                )
            )
            self.hier_up.append(
                nn.Sequential(
                    Upsample3d(latent_channels, latent_channels, time=time, space=space, temporal_kernel=kt),
                    ResBlock3d(latent_channels, latent_channels, kt),
                )
            )
        self.quant_proj = nn.ModuleList(
            [nn.Sequential(CausalGroupNorm(_groups(latent_channels), latent_channels), nn.SiLU(),
                           CausalConv3d(latent_channels, b, 1)) for b in bits]
        )  # fmt: skip
        self.post_quant = nn.ModuleList([CausalConv3d(b, latent_channels, (kt, 3, 3)) for b in bits])
        kwargs = {
            "commitment_loss_weight": commitment_loss_weight,
            "entropy_loss_weight": entropy_loss_weight,
            **(quantizer_kwargs or {}),
        }
        kwargs.pop("num_bits", None)
        kwargs["channel_dim"] = 1
        self.quantizers = nn.ModuleList([QUANTIZERS.create(quantizer, num_bits=b, **kwargs) for b in bits])
        self._time_factor = 2 ** sum(temporal)
        self._space_factor = 2 ** len(multipliers)
        self._strides = strides
        self._active_levels = self.num_levels
        if token_masking == "learned":
            # One learned mask token per level (HiTVideo §4.1's third strategy), zeros until trained.
            self.mask_tokens = nn.ParameterList([nn.Parameter(torch.zeros(b)) for b in bits])
        self.last_token_masks: list[torch.Tensor] | None = None
        self.last_tokens_saved: list[dict[str, Any]] | None = None

    # ------------------------------------------------------------------ presets
    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """A tiny 3-level tokenizer for unit tests (16×16 frames; bits 3/4/6; time ×2, space ×4 then ×2)."""
        return {
            "base_channels": 8,
            "channel_multipliers": [1, 2],
            "temporal_downsample": [True, False],
            "num_res_blocks": 1,
            "latent_channels": 16,
            "level_bits": [3, 4, 6],
            "level_strides": [[1, 2], [2, 1]],
            "sample_size": 16,
        }

    @classmethod
    def shapes_config(cls) -> dict[str, Any]:
        """A Shapes-sized tokenizer (32×32 frames, ``4×4×4`` compression, 1.97 M parameters; ``hitvideo_tiny``'s).

        Two stages (space ÷2 and time ÷2 in each: 17 frames → 5 finest steps, 9 → 3) to an ``8×8`` latent of 64
        channels, then two hierarchy levels: time ÷2 (``8×8``), then space ÷2 (``4×4``). Bits 4 / 10 / 16,
        coarsest first; a 17-frame clip is ``3×16 + 3×64 + 5×64 = 560`` codes, 7,232 bits (0.42 bits per
        pixel). Choices for CPU training, measured in ``docs/results.md``:

        * spatial ``1×3×3`` kernels except where time is resampled (``temporal_kernel_size=1``): full 3D kernels
          learned several times slower on Shapes;
        * MSE instead of L1 (``l2_loss_weight``): L1 stalls at the black background of Shapes;
        * entropy weight 0.02 with commitment 0.05 (0.01 with 0.25 let the codes collapse).
        """
        return {
            "base_channels": 32,
            "channel_multipliers": [1, 2],
            "temporal_downsample": [True, True],
            "temporal_kernel_size": 1,
            "num_res_blocks": 1,
            "latent_channels": 64,
            "level_bits": [4, 10, 16],
            "level_strides": [[1, 2], [2, 1]],
            "sample_size": 32,
            "l1_loss_weight": 0.0,
            "l2_loss_weight": 1.0,
            "entropy_loss_weight": 0.02,
            "commitment_loss_weight": 0.05,
        }

    @classmethod
    def hitvideo_paper_config(cls) -> dict[str, Any]:
        """HiTVideo's Tab. 2 tokenizer, as far as the paper specifies it.

        What the paper gives (§3.2, §4.1, Tab. 2): a causal 3D VAE after VideoPoet/MAGVIT-v2 whose encoder and
        decoder have four blocks, spatial down/upsampling in all four and temporal in the first three
        (``8×16×16``, "an additional 8× compression" over MAGVIT-v2's ``4×8×8``); 64 frames at 8 fps; LFQ in
        every layer with 18, 16, 14 and 3 bits and 2048, 256, 128 and 16 tokens (layer 0 → 3), the coarsest
        layer spanning all 64 frames; L1 + LPIPS + GAN + entropy losses; progressive training.

        What it leaves out, and what this preset chooses: the resolution (256×256, the one for which
        ``8 × 16 × 16 = 2048`` latent tokens match Tab. 2, and Tab. 4's single-layer 2312 = ``8 × 17²`` tokens
        match "interpolating the spatial dimensions" to 272); the widths and depth (Open-MAGVIT2's video
        tokenizer: base 128, multipliers 1/2/2/4, but 2 ResNet blocks per stage); the latent width (256) and the
        hierarchy strides, chosen so the token counts are Tab. 2's: ``8×16×16 → 4×8×8`` (time and space ÷2,
        256 tokens) ``→ 2×8×8`` (time ÷2, 128 tokens) ``→ 1×4×4`` (both ÷2, 16 tokens). The paper's non-causal
        64-frame counts become, with our causal first frame, ``1 + 8k`` frames: 65 frames give 9 + 5 + 3 + 2
        steps of 256, 64, 64 and 16 tokens. LPIPS and GAN weights are 0 until they are implemented.
        """
        return {
            "base_channels": 128,
            "channel_multipliers": [1, 2, 2, 4],
            "temporal_downsample": [True, True, True, False],
            "num_res_blocks": 2,
            "latent_channels": 256,
            "level_bits": [3, 14, 16, 18],
            "level_strides": [[2, 2], [2, 1], [2, 2]],
            "sample_size": 256,
        }

    # ------------------------------------------------------------------ layout
    def _level_factors(self) -> list[tuple[int, int]]:
        """Per level (coarsest first): cumulative ``(time, space)`` stride over the finest level."""
        factors = [(1, 1)]
        for time, space in reversed(self._strides):
            t, s = factors[0]
            factors.insert(0, (t * time, s * space))
        return factors

    def token_layout(self, num_frames: int, height: int, width: int) -> list[TokenLevel]:
        """Per level, coarsest first: steps ``1 + ⌈k / r⌉``, an ``(H / s, W / s)`` grid, ``2^bits`` codes.

        ``k = (num_frames − 1) / f`` with ``f`` the encoder's temporal factor; ``r`` and ``s`` are the level's
        cumulative strides (``s`` includes the encoder's spatial factor).

        Raises:
            ValueError: If ``num_frames`` is not ``1 + f k`` or the size is not divisible by a level's factor.
        """
        if not self.valid_num_frames(num_frames):
            raise ValueError(
                f"{type(self).__name__}: {num_frames} frames do not tokenize; use 1 + {self._time_factor} k frames"
            )
        k = (num_frames - 1) // self._time_factor
        layout = []
        for i, ((rt, rs), bits) in enumerate(zip(self._level_factors(), self.config.level_bits)):
            space = self._space_factor * rs
            if height % space or width % space:
                raise ValueError(
                    f"{type(self).__name__}: level {i} needs height and width divisible by {space}, "
                    f"got {height}x{width}"
                )
            grid = (height // space, width // space)
            layout.append(
                TokenLevel(
                    f"level{i}",
                    1 + math.ceil(k / rt),
                    grid[0] * grid[1],
                    int(bits),
                    codebook_size=2 ** int(bits),
                    frames_per_step=self._time_factor * rt,
                    grid=grid,
                )
            )
        return layout

    def valid_num_frames(self, num_frames: int) -> bool:
        """Whether ``num_frames`` is ``1 + f k`` (``f`` the finest level's frames per step; coarse levels round up)."""
        return (
            isinstance(num_frames, int)
            and not isinstance(num_frames, bool)
            and num_frames >= 1
            and (num_frames - 1) % self._time_factor == 0
        )

    # ------------------------------------------------------------------ encode
    @staticmethod
    def _to_tokens(x: torch.Tensor) -> torch.Tensor:
        b, d, s, h, w = x.shape
        return x.permute(0, 2, 3, 4, 1).reshape(b, s, h * w, d)

    def _encode_levels(self, video: torch.Tensor) -> list[torch.Tensor]:
        """Continuous level features ``(B, C, S, h, w)``, coarsest first."""
        feats = [self.encoder(video)]
        for down in reversed(self.hier_down):
            feats.insert(0, down(feats[0]))
        return feats

    def encode(self, video: torch.Tensor, **kwargs: Any) -> TokenizerOutput:
        """Encode ``(B, C, T, H, W)`` into per-level tokens and codes, coarsest first.

        Returns:
            :class:`~vidtok.outputs.TokenizerOutput`: ``tokens`` a list of ``(B, S_l, N_l, bits_l)`` quantized
            ``±1`` vectors (straight-through gradients), ``indices`` a list of ``(B, S_l, N_l)`` big-endian codes,
            ``aux_losses`` the summed ``"commitment"`` and ``"entropy"`` of the active levels plus every level's
            own (``"level{i}/commitment"`` …); the losses are zero outside training mode.

            With ``token_masking`` set, the redundant tokens (:meth:`token_masks`) are replaced in ``tokens`` by
            the strategy (so :meth:`decode` sees them masked), are left out of the quantizer losses, and the masks
            are returned as ``token_masks`` (also kept, with the tokens saved, in :attr:`last_token_masks` and
            :attr:`last_tokens_saved`). ``indices`` stay the quantizer's codes everywhere: the masked positions
            are the ones an autoregressive model can skip; ``decode_codes(indices, token_masks=out.token_masks)``
            decodes them masked as ``tokens`` are.

        Raises:
            ValueError: If the video's frame count or size does not tokenize (see :meth:`token_layout`).
        """
        return self._encode(video, generator=kwargs.get("generator"))

    def _check_and_cast(self, video: torch.Tensor) -> torch.Tensor:
        if isinstance(video, torch.Tensor) and video.numel() == 0:
            raise ValueError(f"{type(self).__name__}: video must not be empty, got shape {tuple(video.shape)}")
        video = check_video(video, channels=self.config.in_channels).to(self.dtype)
        self.token_layout(video.shape[2], video.shape[3], video.shape[4])  # validates the shape
        return video

    def _quantizer_inputs(self, video: torch.Tensor) -> list[torch.Tensor]:
        return [proj(feat) for feat, proj in zip(self._encode_levels(video), self.quant_proj)]

    def token_masks(self, video: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """HiTVideo's dynamic token masks (§4) of a video: per level, bool ``(B, S_l, N_l)``, ``True`` = masked.

        Computed from each level's quantizer input (the pre-quantization latents) by
        :func:`~vidtok.tokenizers.token_masking.dynamic_token_mask` with the ``mask_max_fraction`` cap; works
        whether or not ``token_masking`` is set. ``generator`` drives the random unmasking above the cap.
        """
        video = self._check_and_cast(video)
        with torch.no_grad():
            latents = [self._to_tokens(z) for z in self._quantizer_inputs(video)]
        return dynamic_token_mask(latents, max_fraction=self.config.mask_max_fraction, generator=generator)

    def _encode(self, video: torch.Tensor, generator: torch.Generator | None = None) -> TokenizerOutput:
        video = self._check_and_cast(video)
        strategy = self.config.token_masking
        tokens, indices, aux, masks = [], [], {}, []
        commitment = entropy = video.new_zeros(())
        for i, (z, quant) in enumerate(zip(self._quantizer_inputs(video), self.quantizers)):
            if strategy is None:
                out = quant(z)
            else:
                mask = dynamic_token_mask(
                    self._to_tokens(z.detach()), max_fraction=self.config.mask_max_fraction, generator=generator
                )
                masks.append(mask)
                out = quant(z, mask=~mask.reshape(z.shape[0], *z.shape[2:]))
            level_tokens = self._to_tokens(out.quantized)
            if strategy is not None:
                mask_token = self.mask_tokens[i] if strategy == "learned" else None
                level_tokens = apply_token_mask(level_tokens, masks[i], strategy, mask_token)
            tokens.append(level_tokens)
            indices.append(out.indices.flatten(2))
            for key in ("commitment", "entropy"):
                aux[f"level{i}/{key}"] = out.aux_losses[key]
            if i < self._active_levels:
                commitment = commitment + out.aux_losses["commitment"]
                entropy = entropy + out.aux_losses["entropy"]
        aux["commitment"], aux["entropy"] = commitment, entropy
        if strategy is not None:
            self.last_token_masks = masks
            self.last_tokens_saved = tokens_saved(masks)
        return TokenizerOutput(
            tokens=tokens, indices=indices, aux_losses=aux, token_masks=masks if strategy is not None else None
        )

    # ------------------------------------------------------------------ decode
    def codes_to_tokens(self, indices: torch.Tensor, level: int = 0) -> torch.Tensor:
        """Codes ``(B, S, N)`` of ``level`` (coarsest = 0) → its ``±1`` tokens ``(B, S, N, bits)``."""
        if not 0 <= level < self.num_levels:
            raise ValueError(f"{type(self).__name__}: level must be in [0, {self.num_levels}), got {level}")
        quant = self.quantizers[level]
        bits = indices_to_bits(indices, quant.num_bits)
        scale = torch.tensor(quant.code_scale, dtype=self.dtype, device=bits.device)
        return torch.where(bits, scale, -scale)

    def _grids(self, finest_tokens: int, grid: tuple[int, int] | None) -> list[tuple[int, int]]:
        if grid is None:
            if self.sample_size is not None:
                h, w = self.sample_size
                grid = (h // self._space_factor, w // self._space_factor)
            if grid is None or grid[0] * grid[1] != finest_tokens:
                side = math.isqrt(finest_tokens)
                if side * side != finest_tokens:
                    raise ValueError(
                        f"{type(self).__name__}: cannot infer the grid of {finest_tokens} finest tokens; pass grid="
                    )
                grid = (side, side)
        grids = []
        for _, rs in self._level_factors():
            if grid[0] % rs or grid[1] % rs:
                raise ValueError(f"{type(self).__name__}: finest grid {grid} is not divisible by {rs}")
            grids.append((grid[0] // rs, grid[1] // rs))
        return grids

    def decode(
        self,
        tokens: list[torch.Tensor] | tuple[torch.Tensor, ...],
        grid: tuple[int, int] | None = None,
        token_masks: list[torch.Tensor] | tuple[torch.Tensor, ...] | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Reconstruct a video from every level's tokens (coarsest first), clamped to ``[-1, 1]``.

        Args:
            tokens: One ``(B, S_l, N_l, bits_l)`` tensor per level, as :meth:`encode` returns them.
            grid: ``(h, w)`` of the finest level's tokens (default: from ``sample_size``, else square).
            token_masks: Optional per-level bool ``(B, S_l, N_l)`` masks (``True`` = masked; HiTVideo §4's
                dynamic token masking, e.g. what an AR model skipped): the masked tokens are first replaced by
                the configured strategy (:meth:`apply_token_masks`), as :meth:`encode` replaces them.
                ``decode_codes(indices, token_masks=...)`` passes them on.
            **kwargs: Ignored (sampler options other tokenizers' ``decode`` takes).

        Returns:
            ``(B, C, 1 + f (S − 1), H, W)`` with ``S`` the finest level's steps.

        Raises:
            ValueError: On malformed tokens or masks (named by level).
        """
        if token_masks is not None:
            tokens = self.apply_token_masks(tokens, token_masks)
        return self._decode(tokens, grid=grid).clamp(-1, 1)

    def apply_token_masks(
        self,
        tokens: list[torch.Tensor] | tuple[torch.Tensor, ...],
        token_masks: list[torch.Tensor] | tuple[torch.Tensor, ...],
    ) -> list[torch.Tensor]:
        """Replace the masked tokens of every level by the configured strategy (HiTVideo §4.1).

        The strategy is ``token_masking`` (``"repeat"`` when it is ``None``: the codes an AR model repeats);
        ``"learned"`` uses the level's :attr:`mask_tokens`.

        Args:
            tokens: One ``(B, S_l, N_l, bits_l)`` tensor per level, coarsest first.
            token_masks: One bool ``(B, S_l, N_l)`` tensor per level (``True`` = masked).

        Returns:
            The tokens with the masked ones replaced (new tensors; the inputs are not modified).

        Raises:
            ValueError: If the lists do not have one entry per level, a mask is not bool or not shaped like its
                level's tokens, or ``"repeat"`` would mask a first step.
        """
        name, levels = type(self).__name__, self.num_levels
        for what, value in (("tokens", tokens), ("token_masks", token_masks)):
            if not isinstance(value, (list, tuple)) or len(value) != levels:
                got = f"a list of {len(value)}" if isinstance(value, (list, tuple)) else type(value).__name__
                raise ValueError(
                    f"{name}: decode needs {what} as a list of {levels} tensors (one per level), got {got}"
                )
        strategy = self.config.token_masking or "repeat"
        out = []
        for i, (t, m) in enumerate(zip(tokens, token_masks)):
            if not isinstance(t, torch.Tensor) or t.ndim != 4:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"{name}: level {i} tokens must be (B, S, N, D), got {got}")
            if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or m.shape != t.shape[:3]:
                got = (tuple(m.shape), m.dtype) if isinstance(m, torch.Tensor) else type(m).__name__
                raise ValueError(
                    f"{name}: level {i} token_masks must be a bool tensor of shape {tuple(t.shape[:3])}, got {got}"
                )
            m = m.to(t.device)
            if strategy == "repeat" and t.shape[1] and bool(m[:, 0].any()):
                raise ValueError(f"{name}: level {i} token_masks mask a first step, which 'repeat' cannot replace")
            mask_token = self.mask_tokens[i] if strategy == "learned" else None
            out.append(apply_token_mask(t, m, strategy, mask_token))
        return out

    def _decode(self, tokens, grid=None, active: int | None = None) -> torch.Tensor:
        name = type(self).__name__
        if not isinstance(tokens, (list, tuple)) or len(tokens) != self.num_levels:
            got = f"a list of {len(tokens)}" if isinstance(tokens, (list, tuple)) else type(tokens).__name__
            raise ValueError(
                f"{name}: decode needs tokens as a list of {self.num_levels} tensors (one per level, coarsest "
                f"first, as encode returns them), got {got}"
            )
        for i, t in enumerate(tokens):
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
                raise TypeError(f"{name}: level {i} tokens must be a floating-point tensor, got {got}")
            if t.ndim != 4 or t.numel() == 0:
                raise ValueError(f"{name}: level {i} tokens must be a non-empty (B, S, N, D), got {tuple(t.shape)}")
            if not torch.isfinite(t).all():
                raise ValueError(f"{name}: level {i} tokens contain NaN or inf")
            if t.shape[0] != tokens[-1].shape[0]:
                raise ValueError(f"{name}: every level's tokens must have the same batch size, got level {i} {t.shape}")
        active = self.num_levels if active is None else active
        grids = self._grids(tokens[-1].shape[2], grid)
        finest_steps = tokens[-1].shape[1]
        z = None
        for i, (t, (h, w)) in enumerate(zip(tokens, grids)):
            rt = self._level_factors()[i][0]
            steps = 1 + math.ceil((finest_steps - 1) / rt)
            if t.ndim != 4 or t.shape[1] != steps or t.shape[2] != h * w or t.shape[3] != self.config.level_bits[i]:
                raise ValueError(
                    f"{name}: level {i} tokens must be (B, {steps}, {h * w}, {self.config.level_bits[i]}), "
                    f"got {tuple(t.shape)}"
                )
            if i > 0:
                z = self.hier_up[i - 1](z)[:, :, :steps]
            if i < active:
                # contiguous: the convolutions' rounding must not depend on how the caller's tensor is laid out
                x = t.to(self.dtype).reshape(t.shape[0], steps, h, w, -1).permute(0, 4, 1, 2, 3).contiguous()
                e = self.post_quant[i](x)
                z = e if z is None else z + e
        return self.decoder(z)

    # ------------------------------------------------------------------ training
    def configure_stage(self, stage: Any) -> None:
        """Apply a training stage's options (:class:`vidtok.training.Stage`, or its ``options`` dict).

        Options:
            ``levels`` (int, default all): how many levels, from the coarsest, are trained and decoded —
            HiTVideo's progressive training (§3.2) goes ``1, 2, …, L``. The finer levels then contribute nothing
            to the reconstruction and their quantizer losses are left out; their parameters (projection to
            codes and code embedding) get no gradient.

        Raises:
            ValueError: On unknown options or a level count outside ``[1, L]``.
        """
        options = stage if isinstance(stage, dict) else dict(getattr(stage, "options", None) or {})
        unknown = set(options) - {"levels"}
        if unknown:
            raise ValueError(f"unknown {type(self).__name__} stage options {sorted(unknown)}; known: levels")
        levels = options.get("levels", self.num_levels)
        if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= self.num_levels:
            raise ValueError(f"{type(self).__name__}: levels must be an int in [1, {self.num_levels}], got {levels!r}")
        self._active_levels = levels

    @property
    def active_levels(self) -> int:
        """How many levels, from the coarsest, training uses (set by :meth:`configure_stage`)."""
        return self._active_levels

    def training_step(
        self, batch: dict[str, Any] | torch.Tensor, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """L1 reconstruction + the active levels' commitment and entropy losses (HiTVideo §3.2).

        Args:
            batch: ``{"video": (B, C, T, H, W) in [-1, 1], ...}`` or the video itself; ``T`` must be
                ``1 + f k``. An optional ``"loss_weight"`` ``(B, 1, T, H, W)`` weights the L1 per pixel.
            generator: Drives the random unmasking of ``token_masking`` above its cap (otherwise unused: the
                step is deterministic).

        Returns:
            ``{"loss", "l1", "l2", "commitment", "entropy"}`` scalars (``loss`` weighted, the others as logged) and
            ``"reconstruction"``, the unclamped decoded video with its graph: what
            :class:`vidtok.training.losses.AdversarialTraining` reads to add LPIPS and the GAN (HiTVideo's other
            two losses) around this tokenizer.

            With ``token_masking`` set, the masked tokens are left out of the quantizer losses and replaced by the
            strategy before decoding, so a ``"learned"`` mask token is trained by the reconstruction loss.
        """
        video = batch["video"] if isinstance(batch, dict) else batch
        out = self._encode(video, generator=generator)
        recon = self._decode(out.tokens, active=self._active_levels)
        diff = recon - video.to(recon.dtype)
        weight = batch.get("loss_weight") if isinstance(batch, dict) else None
        if weight is None:
            l1, l2 = diff.abs().mean(), diff.pow(2).mean()
        else:  # an optional per-pixel weight (e.g. ClipPool's foreground weight), broadcast over channels
            weight = weight.to(diff).expand_as(diff)
            l1, l2 = (diff.abs() * weight).sum() / weight.sum(), (diff.pow(2) * weight).sum() / weight.sum()
        aux = out.aux_losses
        cfg = self.config
        loss = cfg.l1_loss_weight * l1 + cfg.get("l2_loss_weight", 0.0) * l2 + aux["commitment"] + aux["entropy"]
        return {
            "loss": loss,
            "l1": l1.detach(),
            "l2": l2.detach(),
            "commitment": aux["commitment"],
            "entropy": aux["entropy"],
            "reconstruction": recon,
        }
