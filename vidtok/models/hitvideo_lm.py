"""HiTVideo's text-to-video language model: coarse-to-fine next-code prediction over every tokenizer level (§3.3).

The sequence a causal language model reads::

    text (padded to text_length)  [BOV]  level 0 codes ... level 1 codes ... finest level codes

HiTVideo §3.3: the video tokens follow the text, "beginning with the most compressed (high-level) tokens and
gradually transitioning to denser tokens" — here every level's codes in (step, row, column) order, the levels
coarsest first, as :class:`~vidtok.tokenizers.hierarchical_lfq.HierarchicalLFQTokenizer` lists them. The hidden
state at a position predicts the next code with the ``categorical`` head in its factorized-bits form, restricted
to that level's codebook (``num_codes = 2^bits``, so one head serves levels of different widths: "cross-entropy
loss independently for the classification logits of multi-layer vocabularies"), each level's cross-entropy with
its own weight.

Each code enters as its ``±1`` bits through the level's linear input projection (a bit projection rather than a
``2^bits``-row table: HiTVideo's 18-bit level would need 262,144 rows), plus a learned **level embedding** and
the code's **3-D position** (see below); every input also carries the *next* code's level and position, so the
hidden state knows which code it must predict even where a level ends — and so one model generates videos of
any length, whose level boundaries move with the step count.

**Positions: a documented alternative to 3-D RoPE.** The paper extends 2-D RoPE to 3-D inside its Llama. This
model feeds any :class:`~vidtok.backbones.base.Backbone` through ``inputs_embeds`` (GPT-2 presets, Llama presets
and their own 1-D positions included), so it adds the 3-D position to the input instead: fixed sinusoids of the
(time, row, column) coordinate — the feature dimensions split in three, as 3-D RoPE splits them — through a
learned linear map per role (the code's own position, the next code's). Coordinates are in units of the finest
level (a coarse code sits at the centre of the fine codes it covers), so codes of different levels at the same
place get the same sinusoids and differ by their level embedding: the "layer-specific positional encodings" of
§3.3.

**Classifier-free guidance** (§3.3: "learnable unconditional embeddings"): a learned ``(text_length, hidden)``
null-prompt embedding replaces the prompt for ``text_dropout`` of the training samples and in the guidance
branch; the head mixes the two branches' logits. Generation keeps the backbone's key/value cache (one position
per code; :class:`~vidtok.models.generation.BackboneContext`).

**Skipping masked codes** (HiTVideo §4, dynamic token masking; ``predict_masks=True``): a tokenizer with
``token_masking`` marks the codes that barely change from the previous step. The model then also predicts,
from the hidden state that predicts a code, whether that code is masked (``mask_head``, a binary cross-entropy
term in the loss), and a masked code enters the input as the previous step's code plus a learned
``masked_embedding`` — in training (teacher forcing on the token cache's masks) exactly as in generation. When
generating, a code the mask head calls masked is not sampled: it repeats the previous step's code, which is what
the tokenizer's ``"repeat"`` strategy decodes. The sequence keeps every position (so the key/value cache and
the 3-D positions are unchanged); what is saved is the head's sampling of the masked codes, not backbone
positions.

Example:
    >>> import torch
    >>> from vidtok.backbones.hf_causal_lm import HFCausalLM
    >>> from vidtok.heads.categorical import CategoricalHead
    >>> from vidtok.models.hitvideo_lm import HiTVideoLM
    >>> lm = HiTVideoLM(**HiTVideoLM.tiny_config())
    >>> backbone = HFCausalLM(**HFCausalLM.tiny_config())
    >>> head = CategoricalHead(hidden_size=32, num_bits=6, bits_per_group=2)
    >>> codes = lm.generate(backbone, head, torch.zeros(1, 4, dtype=torch.long), 2, progress=False)
    >>> [tuple(c.shape) for c in codes]
    [(1, 2, 4), (1, 2, 16), (1, 2, 16)]
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks it up in this module)
from diffusers.configuration_utils import register_to_config
from torch import nn

from vidtok.backbones.base import Backbone
from vidtok.models.base import MODELS, VideoARModel
from vidtok.models.generation import BackboneContext, Guidance
from vidtok.noise import rand
from vidtok.tokenizers.quantizers import indices_to_bits
from vidtok.tokenizers.token_masking import apply_token_mask, tokens_saved
from vidtok.validation import is_finite_number

__all__ = ["HiTVideoLM"]


def _backbone(backbone: Any) -> Backbone:
    from vidtok.backbones.hf_causal_lm import as_backbone

    return as_backbone(backbone)


def _sinusoids(coords: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed sinusoidal features ``(L, dim)`` of ``(L, 3)`` (time, row, column) coordinates, ``dim / 3`` per axis."""
    per_axis = dim // 3 // 2 * 2
    half = per_axis // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float64) / max(half, 1))
    angles = coords.double()[:, :, None] * freqs[None, None]  # (L, 3, half)
    feats = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(1)  # (L, 3 * per_axis)
    return torch.nn.functional.pad(feats, (0, dim - feats.shape[1])).float()


@MODELS.register("hitvideo_lm")
class HiTVideoLM(VideoARModel):
    """Coarse-to-fine AR over a hierarchical tokenizer's codes, text-conditioned (HiTVideo §3.3).

    The layout arguments describe the tokenizer's levels, coarsest first (``hitvideo_*`` recipes copy them from
    the tokenizer; :meth:`check_compatible` compares them): a level with time stride ``r`` has
    ``1 + ⌈(S − 1) / r⌉`` steps of ``h × w`` codes of ``bits`` bits when the finest level has ``S``.

    Args:
        hidden_size: The language model's width.
        level_bits: Code width of each level (HiTVideo: ``[3, 14, 16, 18]``).
        level_grids: ``[h, w]`` of each level's codes per step.
        level_time_strides: Each level's time stride over the finest level (the finest: ``1``).
        text_length: Prompt length in text tokens, padded or cut.
        pad_token_id: The text tokenizer's pad id (what prompts are padded with).
        text_dropout: Probability that a training sample's prompt is replaced by the learned null embedding
            (classifier-free guidance training).
        level_loss_weights: Weight of each level's mean cross-entropy in the loss (default: all ``1``);
            HiTVideo assigns "distinct loss weights" to balance the levels.
        max_steps: The longest video, in finest-level steps, that :meth:`generate` accepts (the backbone's
            positions bound it too).
        fps: Frame rate of the decoded videos the model was trained on.
        temperature: The sampling temperature pipelines use when the caller gives none.
        guidance_scale: The classifier-free guidance pipelines use when the caller gives none (1: off).
        text_embed_dim: Read the prompt as a frozen text encoder's hidden states (HiTVideo: Flan-T5-XL)
            projected by a linear layer, instead of ids embedded with the language model's table (``None``).
        trained_steps: Finest-level steps of the training sequences (recorded by the trainer; informational).
        predict_masks: Learn to predict HiTVideo's dynamic token masks (§4) and skip the masked codes when
            generating: adds ``mask_head`` (the hidden state that predicts code ``j`` also gives the logit that
            ``j`` is masked) and ``masked_embedding`` (added to the input of a masked code, which enters as the
            previous step's code). Training then needs ``token_masks`` (a token cache built by a tokenizer with
            ``token_masking``). ``False`` (the default) builds exactly the model without them.
        mask_loss_weight: Weight of the mask predictions' mean binary cross-entropy in the loss.

    Attributes:
        last_token_masks: After :meth:`generate` with ``skip_masked``: per level, bool ``(B, S_l, N_l)``, which
            codes were skipped (``True``); else ``None``.
        last_tokens_saved: :func:`~vidtok.tokenizers.token_masking.tokens_saved` of :attr:`last_token_masks`
            (codes the head did not sample, per level), or ``None``.

    Raises:
        ValueError: On inconsistent level lists or an invalid argument (named).
    """

    generates_codes = True
    supports_prefix = False

    @register_to_config
    def __init__(
        self,
        *,
        hidden_size: int = 768,
        level_bits: list[int] | tuple[int, ...] = (3, 14, 16, 18),
        level_grids: list[list[int]] | tuple[tuple[int, int], ...] = ((4, 4), (8, 8), (8, 8), (16, 16)),
        level_time_strides: list[int] | tuple[int, ...] = (8, 4, 2, 1),
        text_length: int = 80,
        pad_token_id: int = 0,
        text_dropout: float = 0.1,
        level_loss_weights: list[float] | tuple[float, ...] | None = None,
        max_steps: int = 16,
        fps: float = 8.0,
        temperature: float = 1.0,
        guidance_scale: float = 1.0,
        text_embed_dim: int | None = None,
        trained_steps: int | None = None,
        predict_masks: bool = False,
        mask_loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(predict_masks, bool):
            raise ValueError(f"{name}: predict_masks must be True or False, got {predict_masks!r}")
        if not is_finite_number(mask_loss_weight) or mask_loss_weight < 0:
            raise ValueError(f"{name}: mask_loss_weight must be a finite number >= 0, got {mask_loss_weight!r}")
        bits = [int(b) for b in level_bits]
        grids = [(int(g[0]), int(g[1])) for g in level_grids]
        strides = [int(r) for r in level_time_strides]
        weights = [1.0] * len(bits) if level_loss_weights is None else [float(w) for w in level_loss_weights]
        if not bits or not (len(bits) == len(grids) == len(strides) == len(weights)):
            raise ValueError(
                f"{name}: level_bits, level_grids, level_time_strides and level_loss_weights need one entry per "
                f"level, got {len(bits)}, {len(grids)}, {len(strides)} and {len(weights)}"
            )
        if min(bits) < 1 or max(bits) > 62 or min(min(g) for g in grids) < 1 or min(strides) < 1:
            raise ValueError(f"{name}: level bits (1..62), grids and time strides must be positive")
        if strides[-1] != 1:
            raise ValueError(f"{name}: the finest (last) level's time stride must be 1, got {strides[-1]}")
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"{name}: level_loss_weights must be >= 0 and not all 0, got {weights}")
        if not 0.0 <= text_dropout < 1.0:
            raise ValueError(f"{name}: text_dropout must be in [0, 1), got {text_dropout}")
        if temperature < 0:
            raise ValueError(f"{name}: temperature must be >= 0, got {temperature}")
        if not is_finite_number(guidance_scale):
            raise ValueError(f"{name}: guidance_scale must be a finite number, got {guidance_scale!r}")
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"{name}: max_steps must be a positive int, got {max_steps!r}")
        self.num_levels = len(bits)
        self.bit_proj = nn.ModuleList([nn.Linear(b, hidden_size) for b in bits])
        self.level_embedding = nn.Embedding(self.num_levels, hidden_size)
        self.query_level_embedding = nn.Embedding(self.num_levels, hidden_size)
        self.position_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.query_position_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.bov = nn.Parameter(torch.zeros(hidden_size))
        self.null_text_embedding = nn.Parameter(torch.zeros(text_length, hidden_size))
        for p in (self.bov, self.null_text_embedding, self.level_embedding.weight, self.query_level_embedding.weight):
            nn.init.trunc_normal_(p, std=0.02)
        if text_embed_dim is not None:
            if isinstance(text_embed_dim, bool) or text_embed_dim < 1:
                raise ValueError(f"{name}: text_embed_dim must be a positive int or None, got {text_embed_dim!r}")
            self.text_proj = nn.Linear(text_embed_dim, hidden_size)
        if predict_masks:
            # Created last, so every other parameter draws the same initial values as without them (HiTVideo §4).
            self.mask_head = nn.Linear(hidden_size, 1)
            self.masked_embedding = nn.Parameter(torch.zeros(hidden_size))
            nn.init.trunc_normal_(self.masked_embedding, std=0.02)
        self.last_token_masks: list[torch.Tensor] | None = None
        self.last_tokens_saved: list[dict[str, Any]] | None = None

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """32 wide, 4-token prompts, the levels of ``HierarchicalLFQTokenizer.tiny_config()`` at 16×16."""
        return {
            "hidden_size": 32,
            "level_bits": [3, 4, 6],
            "level_grids": [[2, 2], [4, 4], [4, 4]],
            "level_time_strides": [2, 2, 1],
            "text_length": 4,
            "max_steps": 4,
        }

    @classmethod
    def complete_config(cls, kwargs: dict[str, Any], *, text_tokenizer: Any = None) -> dict[str, Any]:
        """The recipe's kwargs with ``pad_token_id`` taken from the text tokenizer unless the recipe set it."""
        kwargs = dict(kwargs)
        if text_tokenizer is not None and "pad_token_id" not in kwargs:
            kwargs["pad_token_id"] = text_tokenizer.pad_token_id
        return kwargs

    @classmethod
    def tiny_companions(cls) -> dict[str, Any]:
        """The tiny hierarchical LFQ tokenizer, the tiny GPT-2 backbone and a 6-bit factorized categorical head."""
        from vidtok.backbones.hf_causal_lm import HFCausalLM
        from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer

        return {
            "video_tokenizer": ("hierarchical_lfq", HierarchicalLFQTokenizer.tiny_config()),
            "backbone": ("hf_causal_lm", HFCausalLM.tiny_config()),
            "head": ("categorical", {"hidden_size": 32, "num_bits": 6, "bits_per_group": 2}),
        }

    @classmethod
    def layout_kwargs(cls, tokenizer: Any) -> dict[str, Any]:
        """``level_bits``, ``level_grids`` and ``level_time_strides`` of a tokenizer (from its reference layout)."""
        layout = tokenizer.reference_layout()
        finest = layout[-1].frames_per_step
        return {
            "level_bits": [int(lv.codebook_size).bit_length() - 1 for lv in layout],
            "level_grids": [list(lv.grid) for lv in layout],
            "level_time_strides": [int(lv.frames_per_step // finest) for lv in layout],
        }

    @property
    def trained_length(self) -> int | None:
        """The finest-level steps of the training sequences, where recorded."""
        steps = self.config.get("trained_steps")
        return None if steps is None else int(steps)

    def record_trained_length(self, steps: int) -> None:
        """Record the finest-level steps of the training sequences (the default length of :meth:`generate`)."""
        self.register_to_config(trained_steps=int(steps))

    # ------------------------------------------------------------------ layout
    def level_steps(self, num_steps: int) -> list[int]:
        """Steps of each level when the finest has ``num_steps``: ``1 + ⌈(S − 1) / r⌉``."""
        return [1 + math.ceil((num_steps - 1) / r) for r in self.config.level_time_strides]

    def sequence_length(self, num_steps: int) -> int:
        """Video positions ([BOV] and every code) for ``num_steps`` finest steps."""
        return 1 + sum(s * g[0] * g[1] for s, g in zip(self.level_steps(num_steps), self.config.level_grids))

    def _coordinates(self, num_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per code in sequence order: its level ``(L,)`` and (time, row, column) in finest units ``(L, 3)``."""
        levels, coords = [], []
        finest = self.config.level_grids[-1]
        for lv, (steps, (h, w), r) in enumerate(
            zip(self.level_steps(num_steps), self.config.level_grids, self.config.level_time_strides)
        ):
            sy, sx = finest[0] / h, finest[1] / w
            t, y, x = torch.meshgrid(
                torch.arange(steps, dtype=torch.float64) * r,
                (torch.arange(h, dtype=torch.float64) + 0.5) * sy - 0.5,
                (torch.arange(w, dtype=torch.float64) + 0.5) * sx - 0.5,
                indexing="ij",
            )
            coords.append(torch.stack([t, y, x], dim=-1).reshape(-1, 3))
            levels.append(torch.full((steps * h * w,), lv, dtype=torch.long))
        return torch.cat(levels), torch.cat(coords)

    def _placement(self, num_steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(where, query, levels)`` per code in sequence order: own level + position embedding, next-code query.

        ``where`` ``(L, H)`` is each code's own level and position embedding, ``query`` ``(L, H)`` the embedding
        of a code as the one to predict (added at the position before it), ``levels`` ``(L,)`` their levels.
        """
        levels, coords = self._coordinates(num_steps)
        device, dtype = self.device, self.dtype
        levels = levels.to(device)
        feats = _sinusoids(coords, self.config.hidden_size).to(device, dtype)
        where = self.level_embedding(levels) + self.position_proj(feats)
        query = self.query_level_embedding(levels) + self.query_position_proj(feats)
        return where, query, levels

    # ------------------------------------------------------------------ checks
    def check_compatible(self, tokenizer: Any, backbone: Any, head: Any, text_encoder: Any = None) -> None:
        """Raise one ``ValueError`` listing every mismatch of tokenizer, backbone, head (and text encoder)."""
        cfg, problems = self.config, self.text_encoder_problems(text_encoder)
        if tokenizer is not None:
            layout = tokenizer.reference_layout()
            if any(lv.codebook_size is None for lv in layout):
                problems.append("hitvideo_lm models integer codes; the tokenizer's tokens are continuous")
            else:
                got = self.layout_kwargs(tokenizer)
                for key in ("level_bits", "level_grids", "level_time_strides"):
                    mine = [list(v) if isinstance(v, (list, tuple)) else int(v) for v in cfg[key]]
                    if got[key] != mine:
                        problems.append(f"the tokenizer's {key} are {got[key]}, the model's {mine}")
                masking = getattr(tokenizer, "config", {}).get("token_masking")
                if cfg.get("predict_masks", False) and masking is None:
                    problems.append(
                        "predict_masks=True learns the tokenizer's dynamic token masks, but the tokenizer has "
                        "token_masking=None (it masks nothing)"
                    )
        if backbone is not None:
            bb = _backbone(backbone)
            if bb.hidden_size != cfg.hidden_size:
                problems.append(f"backbone width {bb.hidden_size} != model hidden_size {cfg.hidden_size}")
            needed = cfg.text_length + self.sequence_length(cfg.max_steps)
            if bb.max_positions is not None and needed > bb.max_positions:
                problems.append(
                    f"max_steps={cfg.max_steps} needs text_length {cfg.text_length} + "
                    f"{self.sequence_length(cfg.max_steps)} video positions = {needed}, the backbone reads "
                    f"{bb.max_positions} (lower max_steps or give the backbone more positions)"
                )
            if not self.reads_text_states and bb.get_input_embeddings() is None:
                problems.append("the backbone has no token embedding table to embed the prompt with")
        if head is not None:
            if head.config["hidden_size"] != cfg.hidden_size:
                problems.append(f"head hidden_size {head.config['hidden_size']} != model hidden_size {cfg.hidden_size}")
            if not getattr(head, "is_discrete", False):
                problems.append(f"a {type(head).__name__} models continuous tokens; hitvideo_lm needs 'categorical'")
            else:
                if getattr(head, "num_codes", 0) < 2 ** max(cfg.level_bits):
                    problems.append(
                        f"the head models {head.num_codes} codes, the widest level needs 2^{max(cfg.level_bits)}"
                    )
                elif head.config.get("num_bits") is None and head.num_codes != 2 ** max(cfg.level_bits):
                    problems.append("a flat categorical head must have exactly 2^max(level_bits) codes")
        self.raise_mismatches("hitvideo_lm", problems)

    def check_tokens(self, tokens: Any) -> None:
        """Raise naming the problem unless ``tokens`` are one ``(B, S_l, N_l)`` integer code tensor per level."""
        cfg = self.config
        if not isinstance(tokens, (list, tuple)) or len(tokens) != self.num_levels:
            got = f"{len(tokens)} tensors" if isinstance(tokens, (list, tuple)) else type(tokens).__name__
            raise ValueError(
                f"codes must be a list of {self.num_levels} (B, S_l, N_l) tensors, one per level; got {got}"
            )
        finest = tokens[-1]
        if not isinstance(finest, torch.Tensor) or finest.ndim != 3:
            raise ValueError(f"the finest level's codes must be (B, S, N), got {getattr(finest, 'shape', finest)}")
        steps = self.level_steps(int(finest.shape[1]))
        for lv, (codes, s, (h, w), bits) in enumerate(zip(tokens, steps, cfg.level_grids, cfg.level_bits)):
            if not isinstance(codes, torch.Tensor):
                raise TypeError(f"level {lv} codes must be a torch.Tensor, got {type(codes).__name__}")
            if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
                raise TypeError(f"level {lv} codes must be integers, got {codes.dtype}")
            if tuple(codes.shape) != (finest.shape[0], s, h * w):
                raise ValueError(f"level {lv} codes must be {(finest.shape[0], s, h * w)}, got {tuple(codes.shape)}")
            if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= 2**bits):
                raise ValueError(
                    f"level {lv} codes must lie in [0, 2^{bits}), got [{int(codes.min())}, {int(codes.max())}]"
                )

    def check_text(self, text: torch.Tensor) -> None:
        """Raise unless the prompt is integer ids ``(B, text_length)`` (encoder states ``(B, text_length, E)``)."""
        length, dim = self.config.text_length, self.config.get("text_embed_dim")
        want = (length,) if dim is None else (length, dim)
        if not isinstance(text, torch.Tensor) or tuple(text.shape[1:]) != want:
            shape = tuple(text.shape) if isinstance(text, torch.Tensor) else type(text).__name__
            raise ValueError(f"text must be (B, {', '.join(map(str, want))}), got {shape}")
        if (dim is None) == text.is_floating_point():
            raise TypeError(f"text must be {'integer ids' if dim is None else 'floating states'}, got {text.dtype}")

    @property
    def reads_text_states(self) -> bool:  # type: ignore[override]
        """Whether the prompt arrives as text-encoder hidden states (``text_embed_dim`` is set)."""
        return self.config.get("text_embed_dim") is not None

    # ------------------------------------------------------------------ embeddings

    def _content(self, level: int, codes: torch.Tensor) -> torch.Tensor:
        # LFQ's own code -> bits map (most significant first), as ±1 like the quantizer's tokens.
        bits = indices_to_bits(codes.long(), int(self.config.level_bits[level]))
        return self.bit_proj[level](bits.to(self.dtype) * 2 - 1)

    def embed_codes(self, codes: list[torch.Tensor], token_masks: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Every level's codes, coarsest first, as the video part of the sequence ``(B, 1 + L, H)``.

        Position 0 is [BOV]; position ``i`` holds code ``i − 1``; every position also carries the embedding of
        the code it predicts (none for the last).

        With ``token_masks`` (``predict_masks`` models; HiTVideo §4), a masked code enters as generation feeds
        it: the previous step's code of its position (the last unmasked one through a run of masked steps) plus
        ``masked_embedding``; what the masked code really was never reaches the input.
        """
        b, num_steps = codes[-1].shape[0], int(codes[-1].shape[1])
        where, query, _ = self._placement(num_steps)
        if token_masks is not None:
            if not self.config.get("predict_masks", False):
                raise ValueError("embed_codes: token_masks need a model built with predict_masks=True")
            # The tokenizer's own "repeat" rule, on the codes (one channel).
            codes = [
                apply_token_mask(c[..., None], m.to(c.device), "repeat")[..., 0] for c, m in zip(codes, token_masks)
            ]
        content = torch.cat([self._content(lv, c.reshape(b, -1)) for lv, c in enumerate(codes)], dim=1)
        content = content + where
        if token_masks is not None:
            masked = torch.cat([m.reshape(b, -1) for m in token_masks], dim=1).to(content.device)
            content = content + torch.where(masked[..., None], self.masked_embedding.to(content.dtype), 0.0)
        inputs = torch.cat([self.bov.expand(b, 1, -1), content], dim=1)
        queries = torch.cat([query, query.new_zeros(1, query.shape[1])], dim=0)
        return inputs + queries

    def check_token_masks(self, token_masks: Any, codes: list[torch.Tensor]) -> list[torch.Tensor]:
        """The masks as a list, after checking them: one bool tensor per level, shaped like its codes.

        With ``predict_masks`` the first step of every level must be unmasked (it has no previous step to
        repeat), as :func:`~vidtok.tokenizers.token_masking.dynamic_token_mask` makes it.

        Raises:
            ValueError: Naming the level and what is wrong.
        """
        if not isinstance(token_masks, (list, tuple)) or len(token_masks) != len(codes):
            got = (
                f"{len(token_masks)} tensors" if isinstance(token_masks, (list, tuple)) else type(token_masks).__name__
            )
            raise ValueError(f"token_masks must be a list of {len(codes)} bool tensors, one per level; got {got}")
        for lv, (m, c) in enumerate(zip(token_masks, codes)):
            if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or m.shape != c.shape:
                got = (tuple(m.shape), m.dtype) if isinstance(m, torch.Tensor) else type(m).__name__
                raise ValueError(f"level {lv} token_masks must be a bool tensor of shape {tuple(c.shape)}, got {got}")
            if self.config.get("predict_masks", False) and m.shape[1] and bool(m[:, 0].any()):
                raise ValueError(
                    f"level {lv} token_masks mask a first step: it has no previous step to repeat (dynamic token "
                    "masking never masks it)"
                )
        return list(token_masks)

    # ------------------------------------------------------------------ training
    def forward(
        self,
        backbone: Any,
        text_embeds: torch.Tensor,
        codes: list[torch.Tensor],
        token_masks: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Hidden states that predict every code, in sequence order ``(B, L, H)`` (teacher forcing).

        Args:
            backbone: The causal language model.
            text_embeds: Prompt embeddings ``(B, text_length, H)`` (:meth:`embed_text`, or the null embedding).
            codes: One ``(B, S_l, N_l)`` code tensor per level, coarsest first.
            token_masks: With ``predict_masks``: per-level bool masks; masked codes enter as generation feeds
                them (:meth:`embed_codes`).
        """
        seq = torch.cat([text_embeds, self.embed_codes(codes, token_masks)], dim=1)
        hidden = _backbone(backbone)(seq, use_cache=False).last_hidden_state
        return hidden[:, text_embeds.shape[1] : -1]

    def loss(
        self,
        backbone: Any,
        head: nn.Module,
        text: torch.Tensor,
        tokens: list[torch.Tensor],
        generator: torch.Generator | None = None,
        null_text: torch.Tensor | None = None,
        token_masks: list[torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Weighted per-level next-code cross-entropy (HiTVideo §3.3); prompts dropped with ``text_dropout``.

        Args:
            backbone: The causal language model.
            head: A ``categorical`` head (factorized over at least ``max(level_bits)`` bits, or flat).
            text: Prompt ids ``(B, text_length)`` (encoder states with ``text_embed_dim``).
            tokens: One ``(B, S_l, N_l)`` code tensor per level, coarsest first (a token cache's ``indices``).
            generator: Drives the prompt dropout.
            null_text: Accepted for the pipeline contract and ignored: the null prompt is learned.
            token_masks: Optional per-level bool ``(B, S_l, N_l)`` (``True`` = masked by HiTVideo's dynamic token
                masking, :attr:`TokenizerOutput.token_masks`): masked codes are left out of the loss — the model is
                not trained to predict what the decoder rebuilds from the previous step. With ``predict_masks``
                they are required, a masked code enters the input as :meth:`generate` feeds it (the previous
                step's code plus ``masked_embedding``), and the mask head learns them (HiTVideo §4).

        Returns:
            ``{"loss", "nll"}`` (nats per code, all levels) and ``"level{i}/nll"`` (detached); with
            ``predict_masks`` also ``"mask_bce"``, the mean binary cross-entropy of the mask predictions over
            every code (detached; in ``loss`` weighted by ``mask_loss_weight``).

        Raises:
            ValueError: On malformed prompts, codes or masks, or ``predict_masks`` without ``token_masks``.
        """
        self.check_text(text)
        self.check_tokens(tokens)
        predict = bool(self.config.get("predict_masks", False))
        if predict and token_masks is None:
            raise ValueError(
                "hitvideo_lm with predict_masks=True learns the masks of HiTVideo's dynamic token masking and needs "
                "token_masks=: train on a token cache built by a tokenizer with token_masking set (e.g. "
                "hierarchical_lfq with token_masking='repeat'; rebuild a cache that stores no token_masks), or build "
                "the model with predict_masks=False"
            )
        masks = None if token_masks is None else self.check_token_masks(token_masks, tokens)
        b = text.shape[0]
        text_emb = self.embed_text(backbone, text)
        p = self.config.text_dropout
        if self.training and p > 0:
            drop = rand((b,), generator, text_emb.device) < p
            text_emb = torch.where(drop[:, None, None], self.null_text_embedding.to(text_emb.dtype)[None], text_emb)
        codes = [c.to(self.device) for c in tokens]
        hidden = self.forward(backbone, text_emb, codes, masks if predict else None)
        out: dict[str, torch.Tensor] = {}
        loss, start = hidden.new_zeros((), dtype=torch.float32), 0
        total = count = hidden.new_zeros((), dtype=torch.float32)  # kept on the device: no sync per level
        weights = self.config.level_loss_weights or [1.0] * self.num_levels
        for lv, (c, bits) in enumerate(zip(codes, self.config.level_bits)):
            n = c.shape[1] * c.shape[2]
            per_code = head.loss(hidden[:, start : start + n], c.reshape(b, n), num_codes=2 ** int(bits))
            start += n
            keep = (
                torch.ones_like(per_code) if masks is None else (~masks[lv].to(per_code.device)).reshape(b, n).float()
            )
            kept = keep.sum().clamp_min(1.0)
            level_nll = (per_code * keep).sum() / kept
            loss = loss + float(weights[lv]) * level_nll
            out[f"level{lv}/nll"] = level_nll.detach()
            total = total + (per_code.detach() * keep).sum()
            count = count + keep.sum()
        out["loss"] = loss / float(sum(weights))
        out["nll"] = total / count.clamp_min(1.0)
        if predict:
            # The hidden state that predicts code j also says whether j is masked (every code, step 0 included).
            logits = self.mask_head(hidden.to(self.mask_head.weight.dtype)).squeeze(-1).float()
            target = torch.cat([m.reshape(b, -1) for m in masks], dim=1).to(logits.device, logits.dtype)
            bce = F.binary_cross_entropy_with_logits(logits, target)
            out["loss"] = out["loss"] + float(self.config.mask_loss_weight) * bce
            out["mask_bce"] = bce.detach()
        return out

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(
        self,
        backbone: Any,
        head: nn.Module,
        text: torch.Tensor,
        num_steps: int,
        *,
        prefix: Any = None,
        guidance_scale: float = 1.0,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        context_keyframes: int | None = None,
        head_kwargs: dict[str, Any] | None = None,
        progress: bool = True,
        callback: Any = None,
        null_text: torch.Tensor | None = None,
        skip_masked: bool | None = None,
    ) -> list[torch.Tensor]:
        """Sample every level's codes, coarsest first, code by code (HiTVideo §3.3), skipping masked ones (§4).

        Args:
            backbone: The causal language model.
            head: The ``categorical`` head (each code drawn within its level's ``2^bits`` codes).
            text: Prompt ids ``(B, text_length)`` (encoder states with ``text_embed_dim``).
            num_steps: Finest-level steps of the video (``1 + f (S − 1)`` frames); the coarser levels' steps
                follow (:meth:`level_steps`).
            prefix: Not supported: the coarse levels span the whole video, so a video's first steps do not
                determine a prefix of the sequence. Must be ``None``.
            guidance_scale: Classifier-free guidance against the learned null prompt, on the head's logits.
            temperature: Sampling temperature (default: the config's).
            generator: Source of all randomness.
            use_cache: Backbone key/value cache (``False``: recompute the sequence each code; the reference).
            context_keyframes: Accepted for the pipeline contract; the whole sequence is always the context
                (a sliding window would cut off the coarse levels every fine code refines).
            head_kwargs: Extra keyword arguments of ``head.sample`` (e.g. ``top_k``).
            progress: A tqdm bar over codes.
            callback: ``callback(level, codes)`` after each level is complete.
            null_text: Ignored (the null prompt is learned).
            skip_masked: Skip the codes the mask head predicts as masked (HiTVideo §4's dynamic token masking;
                default: ``predict_masks``). For a code at step ``≥ 1`` of its level, the mask probability is the
                sigmoid of the mask logit of the *conditional* rows — guidance does not apply to the mask, which
                says whether the video changes there, not what it shows. A code is masked when the logit is
                ``> 0`` at temperature ``0``, else when a uniform draw from ``generator`` is below the
                probability. A masked code is the previous step's code of its position (the tokenizer's
                ``"repeat"`` strategy, so decoding the codes equals decoding ``"repeat"``-masked tokens); the head
                is not sampled for it (nor called when every row is masked), and it is fed back as the previous
                code plus ``masked_embedding``. Every position of the sequence stays, so the key/value cache and
                the 3-D positions are those of the full sequence: the saving is in head sampling. The masks are
                kept in :attr:`last_token_masks` and :attr:`last_tokens_saved`.

        Returns:
            One ``(B, S_l, N_l)`` int64 code tensor per level, coarsest first (masked codes hold the repeated
            codes).

        Raises:
            ValueError: On a prefix, malformed prompts or arguments, or ``skip_masked=True`` without
                ``predict_masks``.
        """
        from tqdm.auto import tqdm

        if prefix is not None:
            raise ValueError(
                "hitvideo_lm generates every level coarse to fine: the coarse levels span the whole video, so it "
                "cannot continue a given video or image (prefix / video / prefix_tokens must be None)"
            )
        self.check_text(text)
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or not 1 <= num_steps <= self.config.max_steps:
            raise ValueError(f"num_steps must be an int in [1, max_steps={self.config.max_steps}], got {num_steps!r}")
        temperature = self.default_temperature if temperature is None else float(temperature)
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        b, device, cfg = text.shape[0], self.device, self.config
        predict = bool(cfg.get("predict_masks", False))
        skip = predict if skip_masked is None else skip_masked
        if not isinstance(skip, bool):
            raise ValueError(f"skip_masked must be True, False or None, got {skip_masked!r}")
        if skip and not predict:
            raise ValueError(
                "skip_masked=True needs a model built with predict_masks=True (this one has no mask head to say "
                "which codes are masked)"
            )
        self.last_token_masks = self.last_tokens_saved = None
        guide = Guidance(guidance_scale, b)
        text_emb = self.embed_text(backbone, text.to(device))
        if guide.active:
            text_emb = guide.rows(text_emb, self.null_text_embedding.to(text_emb.dtype)[None].expand(b, -1, -1))
        rows = text_emb.shape[0]
        where, query, levels = self._placement(num_steps)
        total = where.shape[0]
        level_sizes = [s * g[0] * g[1] for s, g in zip(self.level_steps(num_steps), cfg.level_grids)]
        context = BackboneContext(_backbone(backbone), use_cache=use_cache)
        first = torch.cat([text_emb, (self.bov + query[0]).expand(rows, 1, -1)], dim=1)
        h = context.feed(first)
        options = dict(head_kwargs or {})
        per_step = [g[0] * g[1] for g in cfg.level_grids]
        level_start = [sum(level_sizes[:lv]) for lv in range(len(level_sizes))]
        drawn: list[torch.Tensor] = []
        skipped: list[torch.Tensor] = []
        bar = tqdm(total=total, desc="hitvideo LM: codes", disable=not progress)
        for i in range(total):
            lv = int(levels[i])
            num_codes = 2 ** int(cfg.level_bits[lv])
            masked = None
            if skip and i - level_start[lv] >= per_step[lv]:  # step >= 1 of its level: it may repeat the last
                cond, _ = guide.split(h)
                logit = self.mask_head(cond.to(self.mask_head.weight.dtype)).squeeze(-1).float()
                masked = logit > 0 if temperature == 0 else rand((b,), generator, logit.device) < logit.sigmoid()
            if masked is None or not bool(masked.any()):
                code = guide.sample(
                    head, h, temperature=temperature, generator=generator, num_codes=num_codes, **options
                ).long()
            else:
                code = drawn[i - per_step[lv]].clone()  # the same position one step earlier
                keep = ~masked
                if bool(keep.any()):  # the head samples the unmasked rows only
                    cond, uncond = guide.split(h)
                    sub = Guidance(guide.scale, int(keep.sum()))
                    rows_h = sub.rows(cond[keep], uncond[keep]) if guide.active else cond[keep]
                    code[keep] = sub.sample(
                        head, rows_h, temperature=temperature, generator=generator, num_codes=num_codes, **options
                    ).long()
            drawn.append(code)
            if skip:
                skipped.append(masked if masked is not None else torch.zeros(b, dtype=torch.bool, device=code.device))
            bar.update(1)
            if callback is not None and (i + 1 == total or int(levels[i + 1]) != lv):
                callback(lv, torch.stack(drawn[level_start[lv] :], dim=1))
            if i + 1 == total:
                break
            new = self._content(lv, guide.duplicate(code)) + where[i]
            if masked is not None:
                new = new + torch.where(guide.duplicate(masked)[:, None], self.masked_embedding.to(new.dtype), 0.0)
            h = context.feed((new + query[i + 1])[:, None])
        bar.close()
        flat = torch.stack(drawn, dim=1)
        out, start = [], 0
        for steps, size, (gh, gw) in zip(self.level_steps(num_steps), level_sizes, cfg.level_grids):
            out.append(flat[:, start : start + size].reshape(b, steps, gh * gw))
            start += size
        if skip:
            flags, masks, start = torch.stack(skipped, dim=1), [], 0
            for c, size in zip(out, level_sizes):
                masks.append(flags[:, start : start + size].reshape(c.shape))
                start += size
            self.last_token_masks, self.last_tokens_saved = masks, tokens_saved(masks)
        return out
