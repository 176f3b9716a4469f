"""DiCoDe's video language model: deep tokens as a foreign language for a vanilla causal LM (DiCoDe §3.3–3.4).

The sequence a causal language model reads (supplementary §6)::

    text (padded to ``text_length``)  [BOV] q_0,0 ... q_0,N-1  [BOV] q_1,0 ... q_1,N-1  ...

Text ids go through the language model's own embedding table; each keyframe's tokens are projected in by an
MLP (or, for a discrete tokenizer, looked up in a code embedding table) and get a learned frame-index and
token-index embedding; a learned [BOV] embedding opens every keyframe. The hidden state at every position
that precedes a token is projected out by an MLP and handed to the AR head (L2, Gaussian, GMM, diffusion-MLP,
or categorical for codes), which models the next token (Eq. 2).

:class:`DiCoDeLM` (registered as ``dicode_lm``) holds only what DiCoDe adds to the language model; the
backbone and the head are separate components passed to :meth:`DiCoDeLM.loss` and
:meth:`DiCoDeLM.generate`. Two Shapes-only options live in modules of their own and are off by default:
the still gate (:mod:`vidtok.models.still_gate`) and keyframe-residual targets.

Example:
    >>> import torch
    >>> from vidtok.backbones.hf_causal_lm import HFCausalLM
    >>> from vidtok.heads.l2 import L2Head
    >>> from vidtok.models.dicode_lm import DiCoDeLM
    >>> lm = DiCoDeLM(**DiCoDeLM.tiny_config())
    >>> backbone = HFCausalLM(**HFCausalLM.tiny_config())
    >>> head = L2Head(hidden_size=32, token_dim=8)
    >>> text = torch.zeros(2, 4, dtype=torch.long)
    >>> tokens = lm.generate(backbone, head, text, 3, progress=False)
    >>> tuple(tokens.shape)
    (2, 3, 4, 8)
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks it up in this module)
from diffusers.configuration_utils import register_to_config
from torch import nn

from vidtok.backbones.base import Backbone
from vidtok.models.base import MODELS, VideoARModel
from vidtok.models.generation import BackboneContext, Guidance, window_start
from vidtok.models.still_gate import StillGate
from vidtok.noise import rand
from vidtok.validation import is_finite_number

__all__ = ["DiCoDeLM"]


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


def _backbone(backbone: Any) -> Backbone:
    from vidtok.backbones.hf_causal_lm import as_backbone

    return as_backbone(backbone)


@MODELS.register("dicode_lm")
class DiCoDeLM(VideoARModel):
    """Projections, [BOV] and position embeddings that turn a causal LM into a video model (DiCoDe §3.3).

    Args:
        hidden_size: The language model's width.
        token_dim: Token width ``D`` (1024 deep-token channels in DiCoDe); unused with ``codebook_size``.
        num_tokens: Tokens per keyframe ``N`` (16).
        max_keyframes: Frame-index embeddings, i.e. the longest context in keyframes (32 in DiCoDe's code);
            generation past it slides a window (see :meth:`generate`).
        text_length: Prompt length in tokens, padded or cut (80 in DiCoDe).
        pad_token_id: The text tokenizer's pad id; an all-pad prompt is the null prompt of CFG.
        text_dropout: Probability that a training sample's prompt is replaced by the null prompt (5 %).
        mlp_layers: Linear layers of the input and of the output MLP (the paper's "3-layer MLPs"; the
            released code uses 2).
        head_hidden_size: Width handed to the head (default: ``hidden_size``).
        fps: Frame rate of the decoded videos the model was trained on (for durations in seconds).
        temperature: The sampling temperature pipelines use when the caller gives none (like a
            ``generation_config`` default: the value the model was evaluated with).
        guidance_scale: The classifier-free guidance pipelines use when the caller gives none (1: off).
        context_keyframes: The generation window when the caller gives none (default ``max_keyframes``):
            the length of the sequences the model was trained on, so a model trained on shorter sequences
            than ``max_keyframes`` never generates from frame indices it has not learned.
        codebook_size: Read and generate integer codes ``(B, S, N)`` of a discrete tokenizer with this many
            codes (embedded by a lookup table, modelled by a categorical head) instead of continuous tokens.
            DiCoDe §3.4's discrete scenario; ``None`` (default): continuous tokens ``(B, S, N, D)``.
        keyframe_residual: The head models each token's change from the same token of the previous
            keyframe (the first keyframe's tokens as they are). Not in DiCoDe: a still scene is then the
            head's zero, which it learns exactly. The likelihood stays one of the tokens themselves (a shift
            by a known vector has unit Jacobian). On Shapes it made still scenes exact but lost the direction
            of motion (``docs/results.md``); off by default.
        still_gate: Add a :class:`~vidtok.models.still_gate.StillGate` (not in DiCoDe; see its module): a
            keyframe the gate picks repeats the previous one exactly.
        still_tolerance: Largest absolute token difference at which a keyframe still counts as a copy of the
            previous one (``0``: exact repeats only).
        output_mlp_layers: Linear layers of the output MLP when they differ from ``mlp_layers`` (``None``: the
            same). ``0`` hands the language model's hidden state to the head as it is — the released DiCoDe
            model, whose only output MLP (``Linear → GELU → Linear``) is the GMM head's own trunk and projection.
        bov_frame_embedding: Add the frame-index embedding to each [BOV] (``True``, this library's models).
            The released DiCoDe model embeds [BOV] as the bare ``<img>`` row of GPT-2's table (``False``).
        text_embed_dim: Read the prompt as a frozen text encoder's hidden states ``(B, text_length,
            text_embed_dim)`` (a recipe's ``text_encoder``), projected into the language model by a linear layer,
            instead of ids embedded with the language model's own table (DiCoDe's way; ``None``, the default).
    """

    #: DiCoDe's video LM was ``VideoLM`` before the AR-model contract; its saved folders say so.
    former_class_names = ("VideoLM",)

    @register_to_config
    def __init__(
        self,
        *,
        hidden_size: int = 768,
        token_dim: int = 1024,
        num_tokens: int = 16,
        max_keyframes: int = 32,
        text_length: int = 80,
        pad_token_id: int = 0,
        text_dropout: float = 0.05,
        mlp_layers: int = 3,
        head_hidden_size: int | None = None,
        fps: float = 8.0,
        temperature: float = 1.0,
        guidance_scale: float = 1.0,
        context_keyframes: int | None = None,
        codebook_size: int | None = None,
        keyframe_residual: bool = False,
        still_gate: bool = False,
        still_tolerance: float = 0.0,
        text_embed_dim: int | None = None,
        output_mlp_layers: int | None = None,
        bov_frame_embedding: bool = True,
    ) -> None:
        super().__init__()
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if not is_finite_number(guidance_scale):
            raise ValueError(f"guidance_scale must be a finite number, got {guidance_scale!r}")
        if context_keyframes is not None and not 1 <= context_keyframes <= max_keyframes:
            raise ValueError(
                f"context_keyframes must be in [1, max_keyframes={max_keyframes}], got {context_keyframes}"
            )
        if mlp_layers < 1:
            raise ValueError(f"mlp_layers must be >= 1, got {mlp_layers}")
        if not 0.0 <= text_dropout < 1.0:
            raise ValueError(f"text_dropout must be in [0, 1), got {text_dropout}")
        if max_keyframes < 2:
            raise ValueError(f"max_keyframes must be >= 2, got {max_keyframes}")
        if still_tolerance < 0:
            raise ValueError(f"still_tolerance must be >= 0, got {still_tolerance}")
        if codebook_size is not None and (isinstance(codebook_size, bool) or codebook_size < 2):
            raise ValueError(f"codebook_size must be an int >= 2 or None, got {codebook_size!r}")
        if codebook_size is not None and keyframe_residual:
            raise ValueError("keyframe_residual needs continuous tokens: the difference of two codes is not a code")
        out = head_hidden_size or hidden_size
        out_layers = mlp_layers if output_mlp_layers is None else output_mlp_layers
        if isinstance(out_layers, bool) or not isinstance(out_layers, int) or out_layers < 0:
            raise ValueError(f"output_mlp_layers must be an int >= 0 or None, got {output_mlp_layers!r}")
        if out_layers == 0 and out != hidden_size:
            raise ValueError(
                f"output_mlp_layers=0 hands the hidden state to the head as it is: head_hidden_size must be "
                f"hidden_size={hidden_size} or None, got {head_hidden_size}"
            )
        if codebook_size is None:
            self.input_proj = _mlp([token_dim] + [hidden_size] * mlp_layers)
        else:
            self.code_embedding = nn.Embedding(codebook_size, hidden_size)
            nn.init.trunc_normal_(self.code_embedding.weight, std=0.02)
        # An empty Sequential (output_mlp_layers=0) is the identity.
        self.output_proj = _mlp([hidden_size] * out_layers + [out])
        self.bov = nn.Parameter(torch.zeros(hidden_size))
        self.frame_embedding = nn.Embedding(max_keyframes, hidden_size)
        self.token_embedding = nn.Embedding(num_tokens, hidden_size)
        for p in (self.bov, self.frame_embedding.weight, self.token_embedding.weight):
            nn.init.trunc_normal_(p, std=0.02)
        if text_embed_dim is not None:
            if isinstance(text_embed_dim, bool) or text_embed_dim < 1:
                raise ValueError(f"text_embed_dim must be a positive int or None, got {text_embed_dim!r}")
            self.text_proj = nn.Linear(text_embed_dim, hidden_size)
        # Reads the [BOV] hidden state (before the output MLP, which serves the head): one logit.
        self.still_head = StillGate(hidden_size, still_tolerance) if still_gate else None

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """32-wide, 4 tokens × 8 per keyframe, 4-token prompts (matches ``HFCausalLM.tiny_config()``)."""
        return {
            "hidden_size": 32,
            "token_dim": 8,
            "num_tokens": 4,
            "max_keyframes": 8,
            "text_length": 4,
            "mlp_layers": 2,
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
        """A tiny deep tokenizer (4 × 8 tokens), the tiny GPT-2 backbone (32 wide) and an L2 head that fit."""
        from vidtok.backbones.hf_causal_lm import HFCausalLM
        from vidtok.tokenizers.deep_tokens import DeepTokenizer

        tok = {**DeepTokenizer.tiny_config(), "num_queries": 4, "token_dim": 8}
        return {
            "video_tokenizer": ("deep_tokens", tok),
            "backbone": ("hf_causal_lm", HFCausalLM.tiny_config()),
            "head": ("l2", {"hidden_size": 32, "token_dim": 8}),
        }

    @property
    def trained_length(self) -> int | None:
        """The recorded ``context_keyframes`` (else ``max_keyframes``): keyframes per training sequence."""
        return int(self.config.get("context_keyframes") or self.config.max_keyframes)

    def record_trained_length(self, steps: int) -> None:
        """Set ``context_keyframes`` (the default generation window) to ``steps``, at most ``max_keyframes``."""
        self.register_to_config(context_keyframes=min(int(steps), int(self.config.max_keyframes)))

    # ------------------------------------------------------------------ compatibility
    @property
    def generates_codes(self) -> bool:  # type: ignore[override]
        """Whether the model reads and generates integer codes (``codebook_size`` is set)."""
        return self.config.codebook_size is not None

    def check_compatible(self, tokenizer: Any, backbone: Any, head: Any, text_encoder: Any = None) -> None:
        """Raise one ``ValueError`` listing every mismatch of tokenizer, backbone, head (and text encoder)."""
        cfg, problems = self.config, self.text_encoder_problems(text_encoder)
        if tokenizer is not None:
            layout = tokenizer.reference_layout()
            if len(layout) != 1:
                problems.append(f"dicode_lm reads one token level, the tokenizer makes {len(layout)}")
            level = layout[-1]
            if level.tokens != cfg.num_tokens:
                problems.append(
                    f"the tokenizer gives {level.tokens} tokens per keyframe, the model expects {cfg.num_tokens}"
                    + " (dicode_* recipes size the model with num_deep_tokens=N)"
                )
            if level.codebook_size != cfg.codebook_size:
                kind = lambda n: f"{n}-code discrete" if n is not None else "continuous"  # noqa: E731
                problems.append(
                    f"the tokenizer's tokens are {kind(level.codebook_size)}, the model's {kind(cfg.codebook_size)}"
                )
            elif cfg.codebook_size is None and level.dim != cfg.token_dim:
                problems.append(f"video_tokenizer token_dim {level.dim} != model token_dim {cfg.token_dim}")
        if backbone is not None:
            width = _backbone(backbone).hidden_size
            if width != cfg.hidden_size:
                problems.append(f"backbone width {width} != model hidden_size {cfg.hidden_size}")
            limit = _backbone(backbone).max_positions
            window = int(cfg.get("context_keyframes") or cfg.max_keyframes)
            needed = cfg.text_length + window * (cfg.num_tokens + 1)
            if limit is not None and needed > limit:
                problems.append(
                    f"a context of {window} keyframes needs text_length {cfg.text_length} + {window} x "
                    f"({cfg.num_tokens} tokens + [BOV]) = {needed} positions, the backbone reads {limit} "
                    "(lower context_keyframes or max_keyframes, or give the backbone more positions)"
                )
            if not self.reads_text_states and _backbone(backbone).get_input_embeddings() is None:
                problems.append("the backbone has no token embedding table to embed the prompt with")
        if head is not None:
            hcfg = head.config
            want = cfg.head_hidden_size or cfg.hidden_size
            if hcfg["hidden_size"] != want:
                problems.append(f"head hidden_size {hcfg['hidden_size']} != model output {want}")
            discrete = bool(getattr(head, "is_discrete", False))
            if cfg.codebook_size is None:
                if discrete:
                    problems.append(f"a {type(head).__name__} models codes, the model continuous tokens")
                elif hcfg.get("token_dim") != cfg.token_dim:
                    problems.append(f"head token_dim {hcfg.get('token_dim')} != model token_dim {cfg.token_dim}")
            elif not discrete:
                problems.append(f"a {type(head).__name__} models continuous tokens, the model integer codes")
            elif getattr(head, "num_codes", None) != cfg.codebook_size:
                problems.append(f"head models {head.num_codes} codes, the model's codebook has {cfg.codebook_size}")
        self.raise_mismatches("dicode_lm", problems)

    # ------------------------------------------------------------------ embeddings
    @property
    def tokens_per_keyframe(self) -> int:
        """Sequence positions per keyframe: [BOV] + ``N`` tokens."""
        return int(self.config.num_tokens) + 1

    def check_tokens(self, tokens: torch.Tensor) -> None:
        """Raise naming the problem unless ``tokens`` are ``(B, S, N, D)`` finite floats (``(B, S, N)`` codes)."""
        n, d, k = self.config.num_tokens, self.config.token_dim, self.config.codebook_size
        if not isinstance(tokens, torch.Tensor):
            raise TypeError(f"tokens must be a torch.Tensor, got {type(tokens).__name__}")
        if k is not None:
            if tokens.ndim != 3 or tokens.shape[2] != n:
                raise ValueError(f"codes must be (B, S, {n}), got {tuple(tokens.shape)}")
            if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
                raise TypeError(f"codes must be integers, got {tokens.dtype}")
            if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= k):
                raise ValueError(f"codes must lie in [0, {k}), got [{int(tokens.min())}, {int(tokens.max())}]")
            return
        if tokens.ndim != 4 or tuple(tokens.shape[2:]) != (n, d):
            raise ValueError(f"deep tokens must be (B, S, {n}, {d}), got {tuple(tokens.shape)}")
        if not tokens.is_floating_point():
            raise TypeError(f"deep tokens must be floating point, got {tokens.dtype}")
        if not torch.isfinite(tokens).all():
            raise ValueError("deep tokens contain NaN or inf")

    def check_text(self, input_ids: torch.Tensor) -> None:
        """Raise unless the prompt is integer ids ``(B, text_length)`` (encoder states ``(B, text_length, E)``)."""
        length, dim = self.config.text_length, self.config.get("text_embed_dim")
        if dim is not None:
            if not isinstance(input_ids, torch.Tensor) or tuple(input_ids.shape[1:]) != (length, dim):
                shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
                raise ValueError(f"text must be text-encoder states (B, text_length={length}, {dim}), got {shape}")
            if not input_ids.is_floating_point():
                raise TypeError(f"text-encoder states must be floating point, got {input_ids.dtype}")
            return
        if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2 or input_ids.shape[1] != length:
            shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(f"input_ids must be (B, text_length={length}), got {shape}")
        if input_ids.is_floating_point():
            raise TypeError(f"input_ids must be integer token ids, got {input_ids.dtype}")

    @property
    def reads_text_states(self) -> bool:  # type: ignore[override]
        """Whether the prompt arrives as text-encoder hidden states (``text_embed_dim`` is set)."""
        return self.config.get("text_embed_dim") is not None

    def _project_in(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.config.codebook_size is not None:
            return self.code_embedding(tokens.long())
        return self.input_proj(tokens.to(self.dtype))

    def embed_token(self, token: torch.Tensor, frame: int, index: int) -> torch.Tensor:
        """One token ``(B, D)`` (a code ``(B,)``) projected in with its frame and token embeddings → ``(B, 1, H)``."""
        emb = self._project_in(token) + self.frame_embedding.weight[frame] + self.token_embedding.weight[index]
        return emb[:, None]

    def embed_bov(self, batch: int, frame: int) -> torch.Tensor:
        """The [BOV] embedding that opens keyframe ``frame`` → ``(B, 1, H)``."""
        if not self.config.get("bov_frame_embedding", True):
            return self.bov.expand(batch, 1, -1)
        return (self.bov + self.frame_embedding.weight[frame]).expand(batch, 1, -1)

    def embed_keyframes(self, tokens: torch.Tensor, first_frame: int = 0) -> torch.Tensor:
        """``(B, S, N[, D])`` → ``(B, S (N + 1), H)``: per keyframe [BOV] then its projected tokens.

        Frame-index embeddings count from ``first_frame``.
        """
        b, s, n = tokens.shape[:3]
        if first_frame + s > self.config.max_keyframes:
            raise ValueError(
                f"{first_frame + s} keyframes exceed max_keyframes={self.config.max_keyframes} in one context"
            )
        frames = self.frame_embedding.weight[first_frame : first_frame + s]  # (S, H)
        visual = self._project_in(tokens) + frames[None, :, None] + self.token_embedding.weight[None, None]
        bov = self.bov + frames if self.config.get("bov_frame_embedding", True) else self.bov.expand_as(frames)
        bov = bov[None, :, None].expand(b, s, 1, -1)
        return torch.cat([bov, visual], dim=2).reshape(b, s * (n + 1), -1)

    def head_targets(self, tokens: torch.Tensor) -> torch.Tensor:
        """What the head models: the tokens, or with ``keyframe_residual`` their change from the previous keyframe."""
        if not self.config.keyframe_residual:
            return tokens
        return torch.cat([tokens[:, :1], tokens[:, 1:] - tokens[:, :-1]], dim=1)

    # ------------------------------------------------------------------ training
    def forward(
        self,
        backbone: Any,
        input_ids: torch.Tensor,
        tokens: torch.Tensor,
        *,
        return_still_logits: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Head inputs that predict every token: ``(B, S, N, head_hidden_size)`` (teacher forcing).

        The hidden state at [BOV] predicts a keyframe's first token, the one at token ``n`` predicts token
        ``n + 1``. With ``return_still_logits`` (a model with ``still_gate``), also the gate's logits that
        keyframes ``1 … S-1`` repeat the previous one, ``(B, S-1)`` fp32.
        """
        self.check_text(input_ids)
        self.check_tokens(tokens)
        b, s, n = tokens.shape[:3]
        seq = torch.cat([self.embed_text(backbone, input_ids), self.embed_keyframes(tokens)], dim=1)
        hidden = _backbone(backbone)(seq, use_cache=False).last_hidden_state
        visual = hidden[:, input_ids.shape[1] :].reshape(b, s, n + 1, -1)
        head_inputs = self.output_proj(visual[:, :, :n])
        if not return_still_logits:
            return head_inputs
        if self.still_head is None:
            raise ValueError("this model has no still gate (build it with still_gate=True)")
        return head_inputs, self.still_head.logits(visual[:, 1:, 0])

    def loss(
        self,
        backbone: Any,
        head: nn.Module,
        text: torch.Tensor,
        tokens: torch.Tensor,
        generator: torch.Generator | None = None,
        null_text: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Next-token loss of DiCoDe Eq. 2 with the head's loss; prompts dropped to null with ``text_dropout``.

        ``null_text`` is the encoded null prompt for a model that reads text-encoder states.

        With ``still_gate``, the gate's binary cross-entropy (per keyframe) is added to the loss and returned
        as ``"still_bce"``.

        Returns:
            ``{"loss"}`` plus ``"nll"`` (nats per token, detached) for heads with a density.
        """
        input_ids = text
        self.check_text(input_ids)
        p = self.config.text_dropout
        if self.training and p > 0:
            drop = rand((input_ids.shape[0],), generator, input_ids.device) < p
            drop = drop.view(-1, *([1] * (input_ids.ndim - 1)))
            null = (
                self.null_like(input_ids[:1], null_text)
                if self.reads_text_states
                else self.null_text(1, input_ids.device)
            )
            input_ids = torch.where(drop, null, input_ids)
        gated = self.still_head is not None and tokens.shape[1] > 1
        forward = self(backbone, input_ids, tokens, return_still_logits=gated)
        hidden, still_logits = forward if gated else (forward, None)
        target = tokens.long() if self.generates_codes else self.head_targets(tokens.to(hidden.dtype))
        per_token = head.loss(hidden, target, generator=generator)
        out = {"loss": per_token.mean()}
        if gated:
            bce = self.still_head.loss(still_logits, tokens)
            out["loss"] = out["loss"] + bce
            out["still_bce"] = bce.detach()
        try:
            with torch.no_grad():
                out["nll"] = head.nll(hidden.detach(), target).mean()
        except NotImplementedError:  # heads without a tractable density (diffusion-MLP)
            pass
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
    ) -> torch.Tensor:
        """Sample tokens keyframe by keyframe, token by token (DiCoDe §3.4).

        Args:
            backbone: The causal language model (a :class:`~vidtok.backbones.base.Backbone`).
            head: The AR head whose ``sample`` draws each next token (with ``keyframe_residual``, the
                change from the same token of the previous keyframe, which is added back).
            text: Prompt ids ``(B, text_length)``.
            num_steps: Keyframes of the result, prefix included.
            prefix: Known first keyframes ``(B, P, N, D)`` (codes ``(B, P, N)``) for image-to-video and
                continuation; they are prefilled, not sampled, and returned unchanged.
            guidance_scale: Classifier-free guidance against the null prompt. The conditional and null
                sequences run as one batch and the head guides with both hidden states (GMM and Gaussian
                their means, diffusion-MLP every denoising step, categorical its logits, L2 its prediction).
                The guided token is fed to both sequences; the still gate is guided on its logits the same way.
                ``1`` disables it.
            temperature: Passed to ``head.sample`` (default: the config's ``temperature``); with ``still_gate``
                it also divides the gate's logit.
            generator: Source of all randomness; the same seed gives the same tokens.
            use_cache: Reuse keys and values (one new position per step); ``False`` recomputes the whole
                sequence every step (the reference the cache is tested against).
            context_keyframes: Keyframes kept in the context (default: the config's ``context_keyframes``, else
                ``max_keyframes``). When a new keyframe would not fit, the oldest keyframes are dropped —
                half of the window — and the kept ones are re-encoded with frame indices from 0
                (:func:`~vidtok.models.generation.window_start`).
            head_kwargs: Extra keyword arguments of ``head.sample`` (e.g. ``num_inference_steps``).
            progress: Show a tqdm bar over keyframes.
            callback: ``callback(keyframe_index, tokens)`` after each sampled keyframe.
            null_text: The encoded null prompt (``(1 or B, text_length, E)``), for a model that reads
                text-encoder states; ids models build theirs from the pad id.

        Returns:
            ``(B, num_steps, N, D)`` tokens (``(B, num_steps, N)`` int64 codes with ``codebook_size``).

        Raises:
            ValueError: On malformed prompts, prefixes or arguments.
        """
        from tqdm.auto import tqdm

        input_ids = text
        self.check_text(input_ids)
        b, n = input_ids.shape[0], self.config.num_tokens
        window = int(context_keyframes or self.config.get("context_keyframes") or self.config.max_keyframes)
        if not 1 <= window <= self.config.max_keyframes:
            raise ValueError(f"context_keyframes must be in [1, {self.config.max_keyframes}], got {window}")
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
        temperature = self.default_temperature if temperature is None else float(temperature)
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        device, codes = self.device, self.generates_codes
        frames: list[torch.Tensor] = []  # (B, N[, D]) per keyframe
        if prefix is not None:
            self.check_tokens(prefix)
            if prefix.shape[0] != b:
                raise ValueError(f"prefix has batch {prefix.shape[0]}, the prompts {b}")
            if prefix.shape[1] > num_steps:
                raise ValueError(f"{prefix.shape[1]} prefix keyframes exceed num_steps={num_steps}")
            frames = list((prefix.to(device) if codes else prefix.to(device, self.dtype)).unbind(1))
        cfg = Guidance(guidance_scale, b)
        options = dict(head_kwargs or {})
        residual = bool(self.config.keyframe_residual)
        input_ids = input_ids.to(device)
        text_ids = cfg.rows(input_ids, self.null_like(input_ids, null_text)) if cfg.active else input_ids
        rows = text_ids.shape[0]
        text_emb = self.embed_text(backbone, text_ids)
        context = BackboneContext(_backbone(backbone), use_cache=use_cache)
        start = 0  # the first keyframe in the current context

        def prefill(first: int, upto: int) -> torch.Tensor:
            """Start a context: text, keyframes first..upto-1 (indices from 0), then the next [BOV]."""
            context.reset()
            parts = [text_emb]
            if upto > first:
                parts.append(self.embed_keyframes(cfg.duplicate(torch.stack(frames[first:upto], dim=1))))
            parts.append(self.embed_bov(rows, upto - first))
            return context.feed(torch.cat(parts, dim=1))

        def repeats(h: torch.Tensor) -> torch.Tensor:
            """The still gate's choice at a [BOV] (B,) bool: guided logits, tempered like a head's choices."""
            logit = self.still_head.logits(h)
            cond, uncond = cfg.split(logit)
            return self.still_head.choose(cond if uncond is None else cfg.mix(cond, uncond), temperature, generator)

        def draw(h: torch.Tensor) -> torch.Tensor:
            token = cfg.sample(head, self.output_proj(h), temperature=temperature, generator=generator, **options)
            return token.long() if codes else token.to(self.dtype)

        bar = tqdm(total=num_steps - len(frames), desc="video LM: keyframes", disable=not progress)
        h = None
        for k in range(len(frames), num_steps):
            if h is None or k - start >= window:
                start = window_start(k, window)
                h = prefill(start, k)
            tokens = []
            base = frames[-1] if residual and frames else None  # the previous keyframe (B, N, D)
            repeat = repeats(h) if self.still_head is not None and frames else None
            for i in range(n):
                token = draw(h)  # (B, D) or codes (B,)
                if base is not None:
                    token = token + base[:, i]
                if repeat is not None:
                    # The head draws for every row anyway: one row's repeat does not shift the others' noise.
                    token = torch.where(repeat.view(-1, *([1] * (token.ndim - 1))), frames[-1][:, i], token)
                tokens.append(token)
                new = self.embed_token(cfg.duplicate(token), k - start, i)
                if i == n - 1:
                    if k + 1 == num_steps:
                        break
                    if k + 1 - start >= window:
                        h = None  # the next keyframe starts a new window
                        break
                    new = torch.cat([new, self.embed_bov(rows, k + 1 - start)], dim=1)
                h = context.feed(new)
            frames.append(torch.stack(tokens, dim=1))
            if callback is not None:
                callback(k, frames[-1])
            bar.update(1)
        bar.close()
        return torch.stack(frames, dim=1)
