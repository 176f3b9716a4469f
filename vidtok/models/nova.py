"""NOVA: autoregressive video generation without vector quantization (Deng et al. 2024, arXiv:2412.14169).

Frames are generated one after another (temporal AR, §3.2) and each frame set by set in a random order
(spatial AR, §3.3); every token is drawn by a per-token diffusion head (§3.4, MAR's Diffusion Loss). The
temporal part is the ``block_causal`` backbone; this model adds what NOVA puts around it and the head:

* the **prompt block**: the prompt (ids through a learned table, or a frozen text encoder's states through a
  linear layer, NOVA's Phi-2 way), then a motion-score and an fps token (sine-cosine features through an MLP),
  then the begin-of-video (BOV) slots, one per token position of a frame; block 0 of the backbone;
* the **frames**: frame ``f``'s tokens, projected to the backbone width, fill block ``f + 1`` at time ``f + 1``;
  the backbone output at block ``f`` is the *indicator* of frame ``f`` — after the first frame mapped onto the
  BOV output by the backbone's Scaling and Shift layer (Eq. 3) when it has one;
* the **set-by-set spatial decoder**: MAR's encoder (visible tokens and the frame's indicators) and decoder
  (every position, undecided ones as a mask token), post-norm blocks like the backbone's, trained with a random
  order and a masking ratio in ``[mask_ratio_min, 1]``; at inference a cosine schedule
  (:func:`~vidtok.models.generation.set_by_set_schedule`) says how many tokens each step decides. Its output at
  a position is the condition ``z`` the head denoises that token from.

Example:
    >>> import torch, vidtok
    >>> from vidtok.models.nova import NOVAModel
    >>> model = NOVAModel(**NOVAModel.tiny_config())
    >>> parts = {k: vidtok.REGISTRIES[r].create(n, **kw) for (k, (n, kw)), r in zip(
    ...     model.tiny_companions().items(), ["tokenizers", "backbones", "heads"])}
    >>> text = torch.randint(1, 30, (2, model.text_length))
    >>> video = model.generate(parts["backbone"], parts["head"], text, 2, progress=False,
    ...                        generator=torch.Generator().manual_seed(0))
    >>> tuple(video.shape)
    (2, 2, 16, 16)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks it up in this module)
from diffusers.configuration_utils import register_to_config
from torch import nn

from vidtok.backbones.block_causal import BlockCausalTransformer, PostNormBlock, sincos_embedding
from vidtok.models.base import MODELS, VideoARModel
from vidtok.models.generation import BackboneContext, Guidance, set_by_set_schedule
from vidtok.noise import rand
from vidtok.validation import is_finite_number

__all__ = ["NOVAModel", "SetBySetDecoder"]


class SetBySetDecoder(nn.Module):
    """MAR's bidirectional encoder/decoder over one frame's tokens (MAR §4.1; NOVA §3.3, "spatial AR").

    The encoder reads the frame's indicator features and its *visible* (already decided) tokens only; the decoder
    reads the indicators, the encoded visible tokens scattered back into the grid and a mask token at every other
    position, each with its 2-D sine-cosine position; a final LayerNorm. Its output at a position conditions the
    head's draw of that token.

    Args:
        token_dim: Channels of a token.
        cond_dim: Width of the indicator features (the temporal backbone's).
        width: Width of the decoder (and of the condition handed to the head).
        depth: Blocks in all; the first half (rounded down) is the encoder.
        num_heads: Attention heads.
        mlp_ratio: MLP expansion.
        cond_proj: Project the indicators to ``width`` (``False``: read them as they are, as released NOVA
            models do; needs ``cond_dim == width``).
        eps: LayerNorm epsilon of the blocks and the final norm.
        axes: Which grid axis fills the first half of the 2-D position features (``"yx"`` or ``"xy"``).
    """

    def __init__(
        self,
        token_dim: int,
        cond_dim: int,
        width: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        *,
        cond_proj: bool = True,
        eps: float = 1e-6,
        axes: str = "yx",
    ) -> None:
        super().__init__()
        if not cond_proj and cond_dim != width:
            raise ValueError(f"without cond_proj the indicator width {cond_dim} must equal the decoder width {width}")
        self.width, self.axes = width, axes
        self.token_proj = nn.Linear(token_dim, width)
        self.cond_proj = nn.Linear(cond_dim, width) if cond_proj else nn.Identity()
        self.mask_token = nn.Parameter(torch.zeros(width))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.num_encoder = depth // 2
        self.blocks = nn.ModuleList(PostNormBlock(width, num_heads, mlp_ratio, True, eps) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=eps)

    def positions(self, grid: tuple[int, int], device: torch.device) -> torch.Tensor:
        """2-D sine-cosine features ``(h·w, width)`` of the token grid.

        Half the channels for each axis, the first half for y (``axes="yx"``) or for x (``"xy"``).
        """
        h, w = grid
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        half = self.width // 2
        first, second = (ys, xs) if self.axes == "yx" else (xs, ys)
        return torch.cat([sincos_embedding(first.flatten(), half), sincos_embedding(second.flatten(), half)], dim=-1)

    def forward(
        self, cond: torch.Tensor, tokens: torch.Tensor, visible: torch.Tensor, grid: tuple[int, int]
    ) -> torch.Tensor:
        """Conditions ``(R, N, width)`` for every position of ``R`` frames.

        Args:
            cond: Indicator features ``(R, M, cond_dim)`` (prepended to the sequence, as MAR's buffer tokens).
            tokens: The frames' tokens ``(R, N, token_dim)`` (only the visible ones are read).
            visible: Indices ``(R, k)`` of the visible positions (the same count ``k`` in every row; may be 0).
            grid: ``(h, w)`` with ``h·w = N``.
        """
        r, n, _ = tokens.shape
        m = cond.shape[1]  # indicator tokens: one per temporal slot (fewer than N with a temporal patch)
        pos = self.positions(grid, tokens.device).to(tokens.dtype)
        c = self.cond_proj(cond)
        k = visible.shape[1]
        x = self.token_proj(tokens) + pos
        index = visible[..., None].expand(r, k, self.width)
        seq = torch.cat([c, x.gather(1, index)], dim=1)
        for block in self.blocks[: self.num_encoder]:
            seq = block(seq, None, None, 0)[0]
        c, seen = seq[:, :m], seq[:, m:]
        full = (self.mask_token + pos).expand(r, n, self.width).scatter(1, index, seen)
        seq = torch.cat([c, full], dim=1)
        for block in self.blocks[self.num_encoder :]:
            seq = block(seq, None, None, 0)[0]
        return self.norm(seq[:, m:])


class _ScalarEmbed(nn.Module):
    """A scalar (motion score, fps) as one token: sine-cosine features, then ``Linear → SiLU → Linear`` (NOVA §3.2)."""

    def __init__(self, dim: int, features: int = 256) -> None:
        super().__init__()
        self.features = features
        self.mlp = nn.Sequential(nn.Linear(features, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return self.mlp(sincos_embedding(value, self.features).to(self.mlp[0].weight.dtype))


@MODELS.register("nova")
class NOVAModel(VideoARModel):
    """What NOVA adds around its block-causal backbone and per-token diffusion head (arXiv:2412.14169 §3).

    **Training** (:meth:`loss`): the prompt block and frames ``0 … S−2`` go through the backbone once (teacher
    forcing); frame ``f``'s indicators come from block ``f``; every frame then hides a random subset of its
    tokens — a ratio ``r`` from a normal of std ``mask_ratio_std`` folded at 1 and truncated to
    ``[mask_ratio_min, 1]``, one per batch, a random order per frame (MAR) — and the head's loss is averaged over
    the hidden tokens. The prompt is replaced by the null prompt with probability ``text_dropout`` (for CFG).
    NOVA's two loss terms, ``first_frame`` (text-to-image) and ``later_frames`` (image-to-video), are reported
    apart and summed (``frame_weighting="nova"``, the official code's weighting) or averaged per frame.

    **Generation** (:meth:`generate`): the prompt block once, then per frame: its indicators, ``set_steps``
    set-by-set steps (a random order, the cosine schedule), each drawing the tokens of its set from the head
    (guided against the null prompt, which runs as extra rows of the same batch), then the frame is fed to the
    backbone (with its key/value cache) for the next one. A ``prefix`` (image-to-video) is fed instead of being
    drawn. Positions are fixed sine-cosine features, so more frames than trained on can be generated
    (extrapolation); ``context_keyframes`` windows the backbone's cache.

    Args:
        hidden_size: The backbone width.
        token_dim: Channels of a token (NOVA: 2 × 2 latent patches of 4 channels, 16).
        grid: ``[h, w]`` tokens per frame.
        text_length: Prompt length in text tokens, padded or cut.
        pad_token_id: Pad id of the prompt ids; the all-pad prompt is the null prompt.
        text_vocab_size: Size of the learned prompt-id table (when no ``text_embed_dim``).
        text_embed_dim: Read the prompt as a frozen text encoder's states of this width (NOVA: Phi-2, 2560)
            through a linear layer, instead of ids.
        text_dropout: Probability of training on the null prompt (NOVA: 10 %).
        motion_tokens: Add NOVA's motion-score and fps tokens to the prompt block.
        motion_score: The motion score used in training and by default in generation (NOVA: optical-flow
            score, default 5).
        fps: Frame rate of the decoded videos (also the fps token's value).
        spatial_width: Width of the set-by-set decoder and of the condition handed to the head.
        spatial_depth: Blocks of the set-by-set decoder (half encoder, half decoder; NOVA: 32).
        spatial_heads: Its attention heads.
        mlp_ratio: MLP expansion of the set-by-set decoder.
        mask_ratio_min: Lowest training masking ratio (NOVA/MAR: 0.7).
        mask_ratio_std: Std of the folded normal the ratio is drawn from (MAR: 0.25).
        set_steps: Set-by-set steps per frame when the caller gives none (NOVA: 64–128 over 1,440 tokens).
        temperature: The sampling temperature pipelines use when the caller gives none.
        guidance_scale: The classifier-free guidance pipelines use when the caller gives none (1: off; the
            shipped ``vidtok:nova_shapes`` saves 3, the setting it was evaluated with).
        context_keyframes: The backbone cache window in frames when the caller gives none (``None``: all).
        temporal_patch: Tokens per side grouped into one temporal slot (NOVA: 2, its video patch of 4 × 4
            latents against the spatial 2 × 2): the backbone reads ``N / temporal_patch²`` slots per frame.
        trained_frames: Frames (token steps) per training sequence, recorded by the trainer (informative).
        frame_weighting: How the frames' losses are combined. ``"nova"`` (default): the first frame's mean
            (text-to-image) plus the later frames' mean (image-to-video), so frame 0 weighs as much as all later
            frames together — the official code's ``loss_t2i + loss_i2i``; ``"uniform"``: the mean over frames.
        time_rescale: ``None``: frame slot ``f`` sits at time ``f``; a number ``T₀``: at ``f · T₀ / T`` for a
            sequence of ``T`` frames (training clips, or the video being generated), the released models' time
            grid (``video_base_size[0]``, 16 for the T2V model) — every length spans ``[0, T₀)``.
        position_axes: Which grid axis fills the first half of the 2-D position features, in the backbone and
            the set-by-set decoder: ``"yx"`` (vidtok's models) or ``"xy"`` (the released models).
        indicator_proj: Project the indicators to the set-by-set decoder's width (``False``: read them as they
            are, as released models do; needs ``spatial_width == hidden_size``).
        spatial_norm_eps: LayerNorm epsilon of the set-by-set decoder (released models: 1e-5).
        text_pad_table: Fill the padding positions of every prompt (and the whole null prompt) with a stored
            ``(text_length, text_embed_dim)`` table of states instead of the encoder's own, as the released models
            do (their ``TextEmbed`` buffer); see :meth:`fill_text_padding`. Needs ``text_embed_dim``.
    """

    @register_to_config
    def __init__(
        self,
        *,
        hidden_size: int = 1024,
        token_dim: int = 16,
        grid: list[int] | tuple[int, int] = (30, 48),
        text_length: int = 256,
        pad_token_id: int = 0,
        text_vocab_size: int | None = None,
        text_embed_dim: int | None = 2560,
        text_dropout: float = 0.1,
        motion_tokens: bool = True,
        motion_score: float = 5.0,
        fps: float = 12.0,
        spatial_width: int = 1024,
        spatial_depth: int = 32,
        spatial_heads: int = 16,
        mlp_ratio: float = 4.0,
        mask_ratio_min: float = 0.7,
        mask_ratio_std: float = 0.25,
        set_steps: int = 64,
        temperature: float = 1.0,
        guidance_scale: float = 1.0,
        context_keyframes: int | None = None,
        temporal_patch: int = 1,
        trained_frames: int | None = None,
        frame_weighting: str = "nova",
        time_rescale: float | None = None,
        position_axes: str = "yx",
        indicator_proj: bool = True,
        spatial_norm_eps: float = 1e-6,
        text_pad_table: bool = False,
    ) -> None:
        super().__init__()
        problems = []
        for name, value in (
            ("hidden_size", hidden_size),
            ("token_dim", token_dim),
            ("text_length", text_length),
            ("spatial_width", spatial_width),
            ("spatial_depth", spatial_depth),
            ("spatial_heads", spatial_heads),
            ("set_steps", set_steps),
            ("temporal_patch", temporal_patch),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive int, got {value!r}")
        if not (isinstance(grid, (list, tuple)) and len(grid) == 2 and all(isinstance(g, int) and g > 0 for g in grid)):
            problems.append(f"grid must be [h, w] of positive ints, got {grid!r}")
        elif isinstance(temporal_patch, int) and temporal_patch > 0 and any(g % temporal_patch for g in grid):
            problems.append(f"temporal_patch={temporal_patch} must divide the grid {list(grid)}")
        if (text_vocab_size is None) == (text_embed_dim is None):
            problems.append("give exactly one of text_vocab_size (prompt ids) or text_embed_dim (encoder states)")
        if not 0.0 <= text_dropout < 1.0:
            problems.append(f"text_dropout must be in [0, 1), got {text_dropout}")
        if not 0.0 <= mask_ratio_min <= 1.0 or mask_ratio_std <= 0:
            problems.append(
                f"mask_ratio_min must be in [0, 1] and mask_ratio_std > 0, got {mask_ratio_min}, {mask_ratio_std}"
            )
        if isinstance(spatial_width, int) and spatial_width % 4:
            problems.append(f"spatial_width must be a multiple of 4 (2-D sine-cosine positions), got {spatial_width}")
        if (
            isinstance(spatial_width, int)
            and isinstance(spatial_heads, int)
            and spatial_heads
            and spatial_width % spatial_heads
        ):
            problems.append(f"spatial_heads={spatial_heads} must divide spatial_width={spatial_width}")
        if temperature < 0:
            problems.append(f"temperature must be >= 0, got {temperature}")
        if frame_weighting not in ("nova", "uniform"):
            problems.append(f"frame_weighting must be 'nova' or 'uniform', got {frame_weighting!r}")
        if not is_finite_number(guidance_scale):
            problems.append(f"guidance_scale must be a finite number, got {guidance_scale!r}")
        if time_rescale is not None and not (is_finite_number(time_rescale) and time_rescale > 0):
            problems.append(f"time_rescale must be a positive number or None, got {time_rescale!r}")
        if position_axes not in ("yx", "xy"):
            problems.append(f"position_axes must be 'yx' or 'xy', got {position_axes!r}")
        if not indicator_proj and spatial_width != hidden_size:
            problems.append(
                f"indicator_proj=False reads the indicators as they are: spatial_width ({spatial_width}) must equal "
                f"hidden_size ({hidden_size})"
            )
        if not (is_finite_number(spatial_norm_eps) and spatial_norm_eps > 0):
            problems.append(f"spatial_norm_eps must be a positive number, got {spatial_norm_eps!r}")
        if text_pad_table and text_embed_dim is None:
            problems.append("text_pad_table stores text-encoder states: it needs text_embed_dim")
        if context_keyframes is not None and (isinstance(context_keyframes, bool) or context_keyframes < 1):
            problems.append(f"context_keyframes must be a positive int or None, got {context_keyframes!r}")
        if problems:
            raise ValueError("NOVAModel: " + "; ".join(problems))
        if text_embed_dim is not None:
            self.text_proj = nn.Linear(text_embed_dim, hidden_size)
        else:
            self.text_embedding = nn.Embedding(text_vocab_size, hidden_size)
            nn.init.trunc_normal_(self.text_embedding.weight, std=0.02)
        self.text_norm = nn.LayerNorm(hidden_size)
        if motion_tokens:
            self.motion_embed = _ScalarEmbed(hidden_size)
            self.fps_embed = _ScalarEmbed(hidden_size)
        self.bov = nn.Parameter(torch.zeros(hidden_size))
        nn.init.trunc_normal_(self.bov, std=0.02)
        self.frame_proj = nn.Linear(temporal_patch * temporal_patch * token_dim, hidden_size)
        self.spatial = SetBySetDecoder(
            token_dim,
            hidden_size,
            spatial_width,
            spatial_depth,
            spatial_heads,
            mlp_ratio,
            cond_proj=indicator_proj,
            eps=spatial_norm_eps,
            axes=position_axes,
        )
        if text_pad_table:
            # Saved with the model (NOVA's TextEmbed keeps a fixed random table as a buffer: never trained).
            self.register_buffer("text_pad_states", torch.randn(text_length, text_embed_dim) * 0.02)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """32 wide, a 4 × 4 grid of 16-value tokens, 4-token prompts (fits the tiny ``block_causal`` and VAE)."""
        return {
            "hidden_size": 32,
            "token_dim": 16,
            "grid": [4, 4],
            "text_length": 4,
            "text_vocab_size": 32,
            "text_embed_dim": None,
            "spatial_width": 32,
            "spatial_depth": 2,
            "spatial_heads": 4,
            "set_steps": 2,
            "fps": 8.0,
        }

    @classmethod
    def tiny_companions(cls) -> dict[str, Any]:
        """The tiny continuous VAE (4 × 4 tokens of 16 values at 16 × 16), block-causal backbone and diffusion head."""
        from vidtok.heads.diffusion_mlp import DiffusionMLPHead
        from vidtok.tokenizers.continuous_vae import ContinuousVAETokenizer

        head = {**DiffusionMLPHead.tiny_config(), "hidden_size": 32, "token_dim": 16}
        return {
            "video_tokenizer": ("continuous_vae", ContinuousVAETokenizer.tiny_config()),
            "backbone": ("block_causal", BlockCausalTransformer.tiny_config()),
            "head": ("diffusion_mlp", head),
        }

    @classmethod
    def complete_config(cls, kwargs: dict[str, Any], *, text_tokenizer: Any = None) -> dict[str, Any]:
        """Take ``pad_token_id`` (and the vocabulary size of a prompt-id table) from the text tokenizer."""
        kwargs = dict(kwargs)
        if text_tokenizer is not None:
            kwargs.setdefault("pad_token_id", text_tokenizer.pad_token_id)
            if kwargs.get("text_embed_dim") is None and kwargs.get("text_vocab_size") is None:
                kwargs["text_vocab_size"] = len(text_tokenizer)
        return kwargs

    # ------------------------------------------------------------------ properties
    @property
    def grid(self) -> tuple[int, int]:
        """``(h, w)`` tokens per frame."""
        h, w = self.config.grid
        return int(h), int(w)

    @property
    def num_tokens(self) -> int:
        """Tokens per frame ``N``."""
        h, w = self.grid
        return h * w

    @property
    def temporal_grid(self) -> tuple[int, int]:
        """``(h, w)`` of the backbone's slots per frame (the token grid over ``temporal_patch``)."""
        h, w = self.grid
        t = int(self.config.get("temporal_patch", 1))
        return h // t, w // t

    @property
    def num_slots(self) -> int:
        """The backbone's slots per frame ``M`` (BOV slots, frame slots, indicators)."""
        h, w = self.temporal_grid
        return h * w

    def _to_slots(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``(..., N, D)`` → slot inputs ``(..., M, t²·D)``: each ``t × t`` group of the grid as one vector."""
        from einops import rearrange

        h, w = self.temporal_grid
        t = int(self.config.get("temporal_patch", 1))
        return rearrange(tokens, "... (h p w q) d -> ... (h w) (p q d)", h=h, p=t, w=w, q=t)

    @property
    def reads_text_states(self) -> bool:  # type: ignore[override]
        """Whether the prompt arrives as text-encoder states (``text_embed_dim`` is set)."""
        return self.config.get("text_embed_dim") is not None

    @property
    def trained_length(self) -> int | None:
        """Frames per training sequence, where recorded."""
        value = self.config.get("trained_frames")
        return int(value) if value else None

    def record_trained_length(self, steps: int) -> None:
        """Record the frames per training sequence (informative: positions are fixed, so longer videos work)."""
        self.register_to_config(trained_frames=int(steps))

    # ------------------------------------------------------------------ checks
    def check_compatible(self, tokenizer: Any, backbone: Any, head: Any, text_encoder: Any = None) -> None:
        """Raise one ``ValueError`` listing every mismatch of tokenizer, backbone, head (and text encoder)."""
        cfg, problems = self.config, self.text_encoder_problems(text_encoder)
        if tokenizer is not None:
            layout = tokenizer.reference_layout()
            level = layout[-1]
            if len(layout) != 1:
                problems.append(f"nova reads one token level, the tokenizer makes {len(layout)}")
            if level.codebook_size is not None:
                problems.append("nova models continuous tokens, the tokenizer makes discrete codes")
            if level.dim != cfg.token_dim:
                problems.append(f"video_tokenizer token_dim {level.dim} != model token_dim {cfg.token_dim}")
            if level.grid is not None and tuple(level.grid) != self.grid:
                problems.append(
                    f"the tokenizer's grid at its sample size is {tuple(level.grid)}, the model's {self.grid}"
                )
            elif level.grid is None:
                problems.append("nova needs tokens on a spatial grid (token_layout grid), the tokenizer has none")
        if backbone is not None:
            width = getattr(backbone, "hidden_size", None)
            if width != cfg.hidden_size:
                problems.append(f"backbone width {width} != model hidden_size {cfg.hidden_size}")
            if not isinstance(backbone, BlockCausalTransformer):
                problems.append(
                    f"nova needs the block_causal backbone (block ids, frame cache), got {type(backbone).__name__}"
                )
        if head is not None:
            hcfg = head.config
            if getattr(head, "is_discrete", False):
                problems.append(f"a {type(head).__name__} models codes, nova continuous tokens")
            if hcfg["hidden_size"] != cfg.spatial_width:
                problems.append(f"head hidden_size {hcfg['hidden_size']} != model spatial_width {cfg.spatial_width}")
            if hcfg.get("token_dim") != cfg.token_dim:
                problems.append(f"head token_dim {hcfg.get('token_dim')} != model token_dim {cfg.token_dim}")
        self.raise_mismatches("nova", problems)

    def check_tokens(self, tokens: torch.Tensor) -> None:
        """Raise naming the problem unless ``tokens`` are finite floats ``(B, S, N, token_dim)``."""
        n, d = self.num_tokens, self.config.token_dim
        if not isinstance(tokens, torch.Tensor):
            raise TypeError(f"tokens must be a torch.Tensor, got {type(tokens).__name__}")
        if tokens.ndim != 4 or tuple(tokens.shape[2:]) != (n, d):
            raise ValueError(f"tokens must be (B, S, {n}, {d}), got {tuple(tokens.shape)}")
        if not tokens.is_floating_point():
            raise TypeError(f"tokens must be floating point, got {tokens.dtype}")
        if not torch.isfinite(tokens).all():
            raise ValueError("tokens contain NaN or inf")

    def check_text(self, text: torch.Tensor) -> None:
        """Raise unless the prompt is ids ``(B, text_length)`` (encoder states ``(B, text_length, E)``)."""
        length, dim = self.config.text_length, self.config.get("text_embed_dim")
        shape = tuple(text.shape) if isinstance(text, torch.Tensor) else type(text).__name__
        if dim is not None:
            if not isinstance(text, torch.Tensor) or tuple(text.shape[1:]) != (length, dim) or text.ndim != 3:
                raise ValueError(f"text must be text-encoder states (B, text_length={length}, {dim}), got {shape}")
            if not text.is_floating_point():
                raise TypeError(f"text-encoder states must be floating point, got {text.dtype}")
            return
        if not isinstance(text, torch.Tensor) or text.ndim != 2 or text.shape[1] != length:
            raise ValueError(f"text ids must be (B, text_length={length}), got {shape}")
        if text.is_floating_point():
            raise TypeError(f"text ids must be integers, got {text.dtype}")
        vocab = self.config.text_vocab_size
        if text.numel() and (int(text.min()) < 0 or int(text.max()) >= vocab):
            raise ValueError(f"text ids must be in [0, {vocab}), got [{int(text.min())}, {int(text.max())}]")

    def fill_text_padding(self, states: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """With ``text_pad_table``, the stored pad states at every padding position; otherwise ``states`` unchanged.

        This is the released models' prompt padding; the null prompt becomes the table itself.

        Args:
            states: Encoder states ``(B, text_length, text_embed_dim)``.
            real: ``(B, text_length)``, ``True`` at real tokens.
        """
        if not self.config.get("text_pad_table", False):
            return states
        self.check_text(states)
        if tuple(real.shape) != tuple(states.shape[:2]):
            raise ValueError(f"real must be (B, text_length) = {tuple(states.shape[:2])}, got {tuple(real.shape)}")
        table = self.text_pad_states.to(states.device, states.dtype)
        return torch.where(real.to(states.device, torch.bool)[..., None], states, table.expand_as(states))

    # ------------------------------------------------------------------ the sequence
    def embed_text(self, backbone: Any, text: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Prompt embeddings ``(B, text_length, H)``: a learned id table or projected encoder states, then LayerNorm."""
        x = self.text_proj(text.to(self.dtype)) if self.reads_text_states else self.text_embedding(text)
        return self.text_norm(x)

    def _prompt_block(self, text: torch.Tensor, motion_score: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Block 0: prompt, motion/fps tokens, BOV slots: ``(embeddings (B, L0, H), positions (B, L0, 3))``."""
        b, device = text.shape[0], text.device
        parts = [self.embed_text(None, text)]
        if self.config.motion_tokens:
            values = torch.tensor([float(motion_score), float(self.config.fps)], device=device)
            parts.append(torch.stack([self.motion_embed(values[:1]), self.fps_embed(values[1:])], 1).expand(b, 2, -1))
        n = self.num_slots
        parts.append(self.bov.to(parts[0].dtype).expand(b, n, -1))
        x = torch.cat(parts, dim=1)
        unplaced = torch.full((b, x.shape[1] - n, 3), float("nan"), device=device)
        return x, torch.cat([unplaced, self._frame_positions(0, 1, b, device)], dim=1)

    def _frame_positions(self, t: int, length: int, batch: int, device: torch.device) -> torch.Tensor:
        """Positions ``(batch, M, 3)`` of frame slot ``t`` in a sequence of ``length`` frames.

        The backbone reads ``(time, a, b)`` and gives the first spatial half of its features to ``a``: ``(y, x)``
        or, with ``position_axes="xy"``, ``(x, y)``.
        """
        h, w = self.temporal_grid
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        rescale = self.config.get("time_rescale")
        time = float(t) * float(rescale) / length if rescale else float(t)
        first, second = (ys, xs) if self.config.get("position_axes", "yx") == "yx" else (xs, ys)
        pos = torch.stack([torch.full(ys.shape, time, device=device), first.float(), second.float()], dim=-1)
        return pos.reshape(h * w, 3)[None].expand(batch, -1, -1)

    def _indicators(self, backbone: BlockCausalTransformer, out: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        """Frame indicators from backbone outputs ``(B, F, N, H)``: mapped onto the BOV ``anchor`` (Eq. 3)."""
        if backbone.mixer is None:
            return out
        return backbone.scale_and_shift(anchor[:, None].expand_as(out), out)

    def _mask_ratio(self, generator: torch.Generator | None, device: torch.device) -> float:
        """MAR's masking ratio: a normal of std ``mask_ratio_std`` folded at 1, truncated to ``[mask_ratio_min, 1]``."""
        lo, std = float(self.config.mask_ratio_min), float(self.config.mask_ratio_std)
        # Inverse CDF of the half-normal |Z|·std restricted to [0, 1 - lo].
        top = math.erf((1.0 - lo) / (std * math.sqrt(2.0)))
        u = float(rand((1,), generator, device)[0]) * top
        return 1.0 - std * math.sqrt(2.0) * float(torch.special.erfinv(torch.tensor(u)))

    # ------------------------------------------------------------------ training
    def frame_conditions(
        self,
        backbone: BlockCausalTransformer,
        text: torch.Tensor,
        tokens: torch.Tensor,
        motion_score: float | None = None,
    ) -> torch.Tensor:
        """The indicator features ``(B, S, M, H)`` of every frame, teacher-forced on ``tokens`` (one backbone pass).

        Frame 0's are the BOV slots' output (the anchor: γ = 1, β = 0 in Eq. 3); frame ``f``'s are block ``f``'s
        output (frame ``f − 1``'s tokens), mapped onto the anchor by the backbone's Scaling and Shift layer.
        """
        b, s = tokens.shape[:2]
        n, device = self.num_slots, tokens.device
        x, pos = self._prompt_block(text, self.config.motion_score if motion_score is None else motion_score)
        blocks = [torch.zeros(x.shape[1], dtype=torch.long, device=device)]
        if s > 1:
            frames = self.frame_proj(self._to_slots(tokens[:, :-1].to(self.dtype)))
            x = torch.cat([x, frames.reshape(b, (s - 1) * n, -1)], dim=1)
            pos = torch.cat([pos] + [self._frame_positions(f, s, b, device) for f in range(1, s)], dim=1)
            blocks.append(torch.arange(1, s, device=device).repeat_interleave(n))
        out = backbone(x, position_ids=pos, block_ids=torch.cat(blocks)).last_hidden_state
        slots = out[:, -s * n :].reshape(b, s, n, -1)  # BOV slots, then frames 0 .. S-2
        anchor = slots[:, 0]
        return torch.cat([anchor[:, None], self._indicators(backbone, slots[:, 1:], anchor)], dim=1)

    def loss(
        self,
        backbone: nn.Module,
        head: nn.Module,
        text: torch.Tensor,
        tokens: torch.Tensor,
        generator: torch.Generator | None = None,
        null_text: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """NOVA's training loss: the head's loss on the hidden tokens of every frame (see the class docstring).

        Args:
            backbone: The ``block_causal`` backbone.
            head: A continuous head (``diffusion_mlp`` in NOVA).
            text: Prompt ids ``(B, text_length)`` or encoder states.
            tokens: ``(B, S, N, token_dim)``.
            generator: Draws the prompt dropout, masking ratio, orders and the head's noise.
            null_text: The encoded null prompt, for a model that reads text-encoder states.
        """
        self.check_text(text)
        self.check_tokens(tokens)
        b, s, n, d = tokens.shape
        device = tokens.device
        if self.training and self.config.text_dropout > 0:
            drop = rand((b,), generator, device) < self.config.text_dropout
            if bool(drop.any()):
                null = self.null_like(text, null_text)
                text = torch.where(drop.view(b, *[1] * (text.ndim - 1)), null, text)
        cond = self.frame_conditions(backbone, text, tokens)

        # Spatial AR: one ratio per batch, a random order per frame; the head learns the hidden tokens.
        rows = b * s
        hidden_count = min(n, max(1, math.ceil(n * self._mask_ratio(generator, device))))
        order = rand((rows, n), generator, device).argsort(dim=1)
        visible, hidden = order[:, hidden_count:], order[:, :hidden_count]
        flat = tokens.reshape(rows, n, d).to(self.dtype)
        z = self.spatial(cond.reshape(rows, self.num_slots, -1), flat, visible, self.grid)
        pick = lambda t: t.gather(1, hidden[..., None].expand(rows, hidden_count, t.shape[-1]))  # noqa: E731
        per_token = head.loss(pick(z), pick(flat), generator=generator).float()  # (rows, hidden_count)
        per_frame = per_token.mean(-1).view(b, s)
        first = per_frame[:, 0].mean()
        if s > 1 and self.config.get("frame_weighting", "nova") == "nova":
            later = per_frame[:, 1:].mean()
            # NOVA trains text-to-image (frame 0) and image-to-video (the rest) as two equal terms: a frame that
            # has only the prompt to go on is the hardest and would otherwise get 1/S of the weight.
            loss = first + later
        else:
            loss = per_frame.mean()
        out = {"loss": loss, "first_frame": first.detach()}
        if s > 1:
            out["later_frames"] = per_frame[:, 1:].mean().detach()
        return out

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(
        self,
        backbone: nn.Module,
        head: nn.Module,
        text: torch.Tensor,
        num_steps: int,
        *,
        prefix: torch.Tensor | None = None,
        guidance_scale: float = 1.0,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        context_keyframes: int | None = None,
        head_kwargs: dict[str, Any] | None = None,
        progress: bool = True,
        callback: Any = None,
        null_text: torch.Tensor | None = None,
        set_steps: int | None = None,
        motion_score: float | None = None,
    ) -> torch.Tensor:
        """Generate ``num_steps`` frames of tokens ``(B, num_steps, N, token_dim)`` (see the class docstring).

        Args:
            backbone: The ``block_causal`` backbone.
            head: The continuous head.
            text: Prompt ids or encoder states.
            num_steps: Frames (latent frames) of the result, prefix included; more than trained extrapolates.
            prefix: Known first frames ``(B, P, N, token_dim)`` (image-to-video: ``P = 1``), returned unchanged.
            guidance_scale: Classifier-free guidance against the null prompt (``1``: off).
            temperature: The head's sampling temperature (``None``: the config's).
            generator: The only source of randomness.
            use_cache: Keep the backbone's key/value cache (``False``: recompute the sequence every frame).
            context_keyframes: The cache window in frames (``None``: the config's, else all).
            head_kwargs: Extra keyword arguments of ``head.sample`` (e.g. ``num_inference_steps``).
            progress: Show a progress bar over frames.
            callback: ``callback(frame, tokens)`` after each frame.
            null_text: The encoded null prompt, for a model that reads text-encoder states.
            set_steps: Set-by-set steps per frame (``None``: the config's).
            motion_score: The motion-score token's value (``None``: the training value).
        """
        self.check_text(text)
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
        if not isinstance(backbone, BlockCausalTransformer):
            raise TypeError(f"nova needs the block_causal backbone, got {type(backbone).__name__}")
        b, n, device = text.shape[0], self.num_slots, text.device
        if prefix is not None:
            self.check_tokens(prefix)
            if prefix.shape[0] != b or prefix.shape[1] > num_steps:
                raise ValueError(f"prefix must be (B={b}, P <= num_steps={num_steps}, ...), got {tuple(prefix.shape)}")
        temperature = self.default_temperature if temperature is None else float(temperature)
        steps = set_by_set_schedule(self.num_tokens, int(set_steps or self.config.set_steps))
        window = context_keyframes if context_keyframes is not None else self.config.context_keyframes
        guide = Guidance(guidance_scale, b)
        rows_text = guide.rows(text, self.null_like(text, null_text)) if guide.active else text
        rows = rows_text.shape[0]

        x, pos = self._prompt_block(rows_text, self.config.motion_score if motion_score is None else motion_score)
        # The frame cache (or, without it, the whole sequence recomputed with the same attention band).
        context = BackboneContext(
            backbone,
            use_cache,
            make_cache=lambda: backbone.new_cache(window=window),
            sequence_kwargs={"position_ids": 1, "block_ids": 0},
        )
        band = {} if use_cache else {"attention_window": window}

        def feed(x: torch.Tensor, pos: torch.Tensor, block: int) -> torch.Tensor:
            """The backbone's output at the new block's slots."""
            blocks = torch.full((x.shape[1],), block, dtype=torch.long, device=device)
            return context.feed_all(x, position_ids=pos, block_ids=blocks, **band)[:, -n:]

        anchor = feed(x, pos, 0)
        frames: list[torch.Tensor] = []
        iterator = range(num_steps)
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, desc="frames", leave=False)
        options = dict(head_kwargs or {})
        for f in iterator:
            if f == 0:
                cond = anchor
            else:
                out = feed(
                    self.frame_proj(self._to_slots(guide.duplicate(frames[-1]))),
                    self._frame_positions(f, num_steps, rows, device),
                    f,
                )
                cond = self._indicators(backbone, out[:, None], anchor)[:, 0]
            if prefix is not None and f < prefix.shape[1]:
                frame = prefix[:, f].to(self.dtype)
            else:
                frame = self._decode_frame(head, cond, guide, steps, temperature, generator, options)
            frames.append(frame)
            if callback is not None:
                callback(f, frame)
        return torch.stack(frames, dim=1)

    def _decode_frame(
        self,
        head: nn.Module,
        cond: torch.Tensor,
        guide: Guidance,
        steps: list[int],
        temperature: float,
        generator: torch.Generator | None,
        options: dict[str, Any],
    ) -> torch.Tensor:
        """One frame, set by set: a random order, ``steps[k]`` tokens drawn at step ``k`` (cond rows first)."""
        b, n, d = guide.batch, self.num_tokens, self.config.token_dim
        device = cond.device
        order = rand((b, n), generator, device).argsort(dim=1)
        canvas = torch.zeros(b, n, d, device=device, dtype=cond.dtype)
        done = 0
        for count in steps:
            visible = guide.duplicate(order[:, :done])
            z = self.spatial(cond, guide.duplicate(canvas), visible, self.grid)
            new = order[:, done : done + count]
            index = guide.duplicate(new)[..., None].expand(-1, count, z.shape[-1])
            drawn = guide.sample(head, z.gather(1, index), temperature=temperature, generator=generator, **options)
            canvas = canvas.scatter(1, new[..., None].expand(b, count, d), drawn.to(canvas.dtype))
            done += count
        return canvas
