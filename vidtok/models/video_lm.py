"""The video language model: deep tokens as a foreign language for a vanilla causal LM (DiCoDe §3.3–3.4).

The sequence a causal language model reads (supplementary §6)::

    text (padded to ``text_length``)  [BOV] q_0,0 ... q_0,N-1  [BOV] q_1,0 ... q_1,N-1  ...

Text ids go through the language model's own embedding table; each keyframe's deep tokens are projected
in by an MLP and get a learned frame-index and token-index embedding; a learned [BOV] embedding opens
every keyframe. The hidden state at every position that precedes a visual token is projected out by an
MLP and handed to the AR head (L2, Gaussian, GMM, diffusion-MLP), which models the next token (Eq. 2).

:class:`VideoLM` holds only what DiCoDe adds to the language model (projections, [BOV], position
embeddings); the language model (``backbone``) and the ``head`` are separate components, passed to
:meth:`VideoLM.loss` and :meth:`VideoLM.generate` — so a pipeline can swap either one, and a transformers
backbone keeps its own serialization. :class:`VideoLMForTraining` bundles the three (plus the text
tokenizer) for the trainer.

Example:
    >>> import torch
    >>> from vidtok.backbones.hf_causal_lm import HFCausalLM
    >>> from vidtok.heads.l2 import L2Head
    >>> from vidtok.models.video_lm import VideoLM
    >>> lm = VideoLM(**VideoLM.tiny_config())
    >>> backbone = HFCausalLM(**HFCausalLM.tiny_config())
    >>> head = L2Head(hidden_size=32, token_dim=8)
    >>> text = torch.zeros(2, 4, dtype=torch.long)
    >>> tokens = lm.generate(backbone, head, text, num_keyframes=3, progress=False)
    >>> tuple(tokens.shape)
    (2, 3, 4, 8)
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks it up in this module)
from diffusers.configuration_utils import register_to_config
from torch import nn

from vidtok.heads._layers import gumbel
from vidtok.modeling_utils import Component

__all__ = ["VideoLM", "VideoLMForTraining"]


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


def _hidden_states(output: Any) -> torch.Tensor:
    return output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]


class VideoLM(Component):
    """Projections, [BOV] and position embeddings that turn a causal LM into a video model (DiCoDe §3.3).

    Args:
        hidden_size: The language model's width.
        token_dim: Deep token width ``D`` (1024 in DiCoDe).
        num_tokens: Deep tokens per keyframe ``N`` (16).
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
        context_keyframes: The generation window when the caller gives none (default ``max_keyframes``):
            the length of the sequences the model was trained on, so a model trained on shorter sequences
            than ``max_keyframes`` never generates from frame indices it has not learned.
        keyframe_residual: The head models each token's change from the same token of the previous
            keyframe (the first keyframe's tokens as they are). Not in DiCoDe: a still scene is then the
            head's zero, which it learns exactly, where copying a token through the language model and the
            output MLP is never exact. The likelihood stays one of the tokens themselves (a shift by a
            known vector has unit Jacobian), so NLLs compare with plain models. On Shapes it made still
            scenes exact but lost the direction of motion (``docs/results.md``); off by default.
        still_gate: Add a *still gate*: a small MLP on the hidden state at each [BOV] (keyframes 1, 2, …)
            that predicts whether the keyframe repeats the previous one exactly (a static scene: identical
            frames give identical tokens). Trained with a binary cross-entropy next to the head's loss
            (labels from the tokens, :meth:`still_targets`); in :meth:`generate` a keyframe the gate picks
            is the previous keyframe's tokens, copied exactly, and any other keyframe is sampled as without
            the gate. Not in DiCoDe: copying 16 × D values through the language model and the output MLP is
            never exact, and on Shapes the drift moved small "still" objects by a few pixels
            (``docs/results.md``). The head still models every keyframe, so its NLL compares with plain
            models'.
        still_tolerance: Largest absolute token difference at which a keyframe still counts as a copy of the
            previous one (``0``: exact repeats only).
    """

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
        context_keyframes: int | None = None,
        keyframe_residual: bool = False,
        still_gate: bool = False,
        still_tolerance: float = 0.0,
    ) -> None:
        super().__init__()
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
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
        out = head_hidden_size or hidden_size
        self.input_proj = _mlp([token_dim] + [hidden_size] * mlp_layers)
        self.output_proj = _mlp([hidden_size] * mlp_layers + [out])
        self.bov = nn.Parameter(torch.zeros(hidden_size))
        self.frame_embedding = nn.Embedding(max_keyframes, hidden_size)
        self.token_embedding = nn.Embedding(num_tokens, hidden_size)
        for p in (self.bov, self.frame_embedding.weight, self.token_embedding.weight):
            nn.init.trunc_normal_(p, std=0.02)
        # Reads the [BOV] hidden state (before the output MLP, which serves the head): one logit.
        self.still_head = _mlp([hidden_size, hidden_size, 1]) if still_gate else None

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

    # ------------------------------------------------------------------ embeddings
    @property
    def tokens_per_keyframe(self) -> int:
        """Sequence positions per keyframe: [BOV] + ``N`` tokens."""
        return int(self.config.num_tokens) + 1

    def check_tokens(self, tokens: torch.Tensor) -> None:
        """Raise a ``ValueError`` naming the problem if ``tokens`` is not ``(B, S, N, D)`` and finite."""
        n, d = self.config.num_tokens, self.config.token_dim
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 4 or tuple(tokens.shape[2:]) != (n, d):
            shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ValueError(f"deep tokens must be (B, S, {n}, {d}), got {shape}")
        if not tokens.is_floating_point():
            raise TypeError(f"deep tokens must be floating point, got {tokens.dtype}")
        if not torch.isfinite(tokens).all():
            raise ValueError("deep tokens contain NaN or inf")

    def check_text(self, input_ids: torch.Tensor) -> None:
        """Raise if ``input_ids`` is not an integer ``(B, text_length)`` tensor."""
        length = self.config.text_length
        if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2 or input_ids.shape[1] != length:
            shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(f"input_ids must be (B, text_length={length}), got {shape}")
        if input_ids.is_floating_point():
            raise TypeError(f"input_ids must be integer token ids, got {input_ids.dtype}")

    def null_text(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        """The null prompt (all padding) ``(batch, text_length)`` used for dropout and CFG."""
        return torch.full((batch, self.config.text_length), self.config.pad_token_id, device=device, dtype=torch.long)

    def embed_text(self, backbone: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        """Prompt embeddings through the language model's own token embedding table."""
        table = backbone.get_input_embeddings()
        if int(input_ids.max()) >= table.num_embeddings or int(input_ids.min()) < 0:
            raise ValueError(
                f"text ids must be in [0, {table.num_embeddings}) for this backbone's vocabulary, "
                f"got [{int(input_ids.min())}, {int(input_ids.max())}]"
            )
        return table(input_ids).to(self.dtype)

    def embed_token(self, token: torch.Tensor, frame: int, index: int) -> torch.Tensor:
        """One deep token ``(B, D)`` projected in with its frame and token embeddings → ``(B, 1, H)``."""
        emb = (
            self.input_proj(token.to(self.dtype))
            + self.frame_embedding.weight[frame]
            + self.token_embedding.weight[index]
        )
        return emb[:, None]

    def embed_bov(self, batch: int, frame: int) -> torch.Tensor:
        """The [BOV] embedding that opens keyframe ``frame`` → ``(B, 1, H)``."""
        return (self.bov + self.frame_embedding.weight[frame]).expand(batch, 1, -1)

    def embed_keyframes(self, tokens: torch.Tensor, first_frame: int = 0) -> torch.Tensor:
        """``(B, S, N, D)`` → ``(B, S (N + 1), H)``: per keyframe [BOV] then its projected tokens.

        Frame-index embeddings count from ``first_frame``.
        """
        b, s, n, _ = tokens.shape
        if first_frame + s > self.config.max_keyframes:
            raise ValueError(
                f"{first_frame + s} keyframes exceed max_keyframes={self.config.max_keyframes} in one context"
            )
        frames = self.frame_embedding.weight[first_frame : first_frame + s]  # (S, H)
        visual = (
            self.input_proj(tokens.to(self.dtype)) + frames[None, :, None] + self.token_embedding.weight[None, None]
        )
        bov = (self.bov + frames)[None, :, None].expand(b, s, 1, -1)
        return torch.cat([bov, visual], dim=2).reshape(b, s * (n + 1), -1)

    def head_targets(self, tokens: torch.Tensor) -> torch.Tensor:
        """What the head models for ``(B, S, N, D)`` tokens.

        The tokens themselves, or with ``keyframe_residual`` their change from the previous keyframe (the
        first keyframe as it is).
        """
        if not self.config.keyframe_residual:
            return tokens
        return torch.cat([tokens[:, :1], tokens[:, 1:] - tokens[:, :-1]], dim=1)

    def still_targets(self, tokens: torch.Tensor) -> torch.Tensor:
        """Whether keyframes ``1 … S-1`` of ``(B, S, N, D)`` tokens repeat the previous one: ``(B, S-1)`` bool.

        A repeat differs from the previous keyframe by at most ``still_tolerance`` in every value.
        """
        change = (tokens[:, 1:] - tokens[:, :-1]).abs().amax(dim=(-2, -1))
        return change <= self.config.still_tolerance

    def _still_logits(self, bov_hidden: torch.Tensor) -> torch.Tensor:
        if self.still_head is None:
            raise ValueError("this VideoLM has no still gate (build it with still_gate=True)")
        return self.still_head(bov_hidden).squeeze(-1).float()

    # ------------------------------------------------------------------ training
    def forward(
        self,
        backbone: nn.Module,
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
        b, s, n, _ = tokens.shape
        seq = torch.cat([self.embed_text(backbone, input_ids), self.embed_keyframes(tokens)], dim=1)
        hidden = _hidden_states(backbone(inputs_embeds=seq, use_cache=False))
        visual = hidden[:, input_ids.shape[1] :].reshape(b, s, n + 1, -1)
        head_inputs = self.output_proj(visual[:, :, :n])
        if not return_still_logits:
            return head_inputs
        return head_inputs, self._still_logits(visual[:, 1:, 0])

    def loss(
        self,
        backbone: nn.Module,
        head: nn.Module,
        input_ids: torch.Tensor,
        tokens: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Next-token loss of DiCoDe Eq. 2 with the head's loss; prompts dropped to null with ``text_dropout``.

        With ``still_gate``, the gate's binary cross-entropy (per keyframe) is added to the loss and returned
        as ``"still_bce"``.

        Returns:
            ``{"loss"}`` plus ``"nll"`` (nats per token, detached) for heads with a density.
        """
        self.check_text(input_ids)
        p = self.config.text_dropout
        if self.training and p > 0:
            device = generator.device if generator is not None else input_ids.device
            drop = (torch.rand(input_ids.shape[0], generator=generator, device=device) < p).to(input_ids.device)
            input_ids = torch.where(drop[:, None], self.null_text(1, input_ids.device), input_ids)
        gated = self.still_head is not None and tokens.shape[1] > 1
        forward = self(backbone, input_ids, tokens, return_still_logits=gated)
        hidden, still_logits = forward if gated else (forward, None)
        target = self.head_targets(tokens.to(hidden.dtype))
        extra = {"generator": generator} if "generator" in inspect.signature(head.loss).parameters else {}
        per_token = head.loss(hidden, target, **extra)
        out = {"loss": per_token.mean()}
        if gated:
            labels = self.still_targets(tokens).float()
            bce = nn.functional.binary_cross_entropy_with_logits(still_logits, labels)
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
        backbone: nn.Module,
        head: nn.Module,
        input_ids: torch.Tensor,
        num_keyframes: int,
        *,
        prefix_tokens: torch.Tensor | None = None,
        guidance_scale: float = 1.0,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        context_keyframes: int | None = None,
        head_kwargs: dict[str, Any] | None = None,
        progress: bool = True,
        callback: Any = None,
    ) -> torch.Tensor:
        """Sample deep tokens keyframe by keyframe, token by token (DiCoDe §3.4).

        Args:
            backbone: The causal language model (``inputs_embeds`` in, hidden states and a KV cache out).
            head: The AR head whose ``sample`` draws each next token (with ``keyframe_residual``, the
                change from the same token of the previous keyframe, which is added back).
            input_ids: Prompt ids ``(B, text_length)``.
            num_keyframes: Keyframes of the result, prefix included.
            prefix_tokens: Known first keyframes ``(B, P, N, D)`` (image-to-video, continuation); they are
                prefilled, not sampled, and returned unchanged.
            guidance_scale: Classifier-free guidance against the null prompt. The conditional and null
                sequences run as one batch; heads that guide internally (``uncond_hidden``: GMM and Gaussian
                guide their means, the GMM with one component shared by both branches; diffusion-MLP guides
                every denoising step) get both hidden states, other heads (L2) are guided in token space,
                ``u + s (c - u)`` (DiCoDe's released code). The guided token is fed to both sequences.
                The still gate is guided on its logits the same way. ``1`` disables it.
            temperature: Passed to ``head.sample``; with ``still_gate`` it also divides the gate's logit
                (``0``: repeat when the gate gives a repeat more than even odds). A repeated keyframe is the
                previous keyframe's tokens, copied.
            generator: Source of all randomness; the same seed gives the same tokens.
            use_cache: Reuse keys and values (one new position per step); ``False`` recomputes the whole
                sequence every step (the reference the cache is tested against).
            context_keyframes: Keyframes kept in the context (default: the config's ``context_keyframes``, else
                ``max_keyframes``). When a new keyframe would not fit, the oldest keyframes are dropped —
                half of the window — and the kept ones are re-encoded with frame indices from 0, so memory
                stays flat however long the video is.
            head_kwargs: Extra keyword arguments of ``head.sample`` (e.g. ``num_inference_steps``).
            progress: Show a tqdm bar over keyframes.
            callback: ``callback(keyframe_index, tokens)`` after each sampled keyframe.

        Returns:
            ``(B, num_keyframes, N, D)`` tokens.

        Raises:
            ValueError: On malformed prompts, prefixes or arguments.
        """
        from tqdm.auto import tqdm

        self.check_text(input_ids)
        b = input_ids.shape[0]
        n = self.config.num_tokens
        window = int(context_keyframes or self.config.get("context_keyframes") or self.config.max_keyframes)
        if not 1 <= window <= self.config.max_keyframes:
            raise ValueError(f"context_keyframes must be in [1, {self.config.max_keyframes}], got {window}")
        if num_keyframes < 1:
            raise ValueError(f"num_keyframes must be >= 1, got {num_keyframes}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        device = self.device
        prefix = []
        if prefix_tokens is not None:
            self.check_tokens(prefix_tokens)
            if prefix_tokens.shape[0] != b:
                raise ValueError(f"prefix_tokens has batch {prefix_tokens.shape[0]}, the prompts {b}")
            if prefix_tokens.shape[1] > num_keyframes:
                raise ValueError(f"{prefix_tokens.shape[1]} prefix keyframes exceed num_keyframes={num_keyframes}")
            prefix = list(prefix_tokens.to(device, self.dtype).unbind(1))
        guided = guidance_scale != 1.0
        sample_kwargs = dict(head_kwargs or {})
        internal = "uncond_hidden" in inspect.signature(head.sample).parameters
        residual = bool(self.config.keyframe_residual)
        text = input_ids.to(device)
        if guided:
            text = torch.cat([text, self.null_text(b, device)])
        rows = text.shape[0]
        text_emb = self.embed_text(backbone, text)
        frames: list[torch.Tensor] = prefix  # (B, N, D) per keyframe
        state = {"cache": None, "start": 0, "seq": None}

        def run(new: torch.Tensor) -> torch.Tensor:
            """Feed new positions; return the last position's hidden state (rows, hidden_size)."""
            if use_cache:
                out = backbone(inputs_embeds=new, past_key_values=state["cache"], use_cache=True)
                state["cache"] = out.past_key_values
            else:
                state["seq"] = new if state["seq"] is None else torch.cat([state["seq"], new], dim=1)
                out = backbone(inputs_embeds=state["seq"], use_cache=False)
            return _hidden_states(out)[:, -1]

        def prefill(first: int, upto: int) -> torch.Tensor:
            """Start a context: text, keyframes first..upto-1 (indices from 0), then the next [BOV]."""
            state["cache"], state["seq"], state["start"] = None, None, first
            parts = [text_emb]
            if upto > first:
                kept = torch.stack(frames[first:upto], dim=1)
                kept = torch.cat([kept, kept]) if guided else kept
                parts.append(self.embed_keyframes(kept))
            parts.append(self.embed_bov(rows, upto - first))
            return run(torch.cat(parts, dim=1))

        def still(h: torch.Tensor) -> torch.Tensor:
            """The gate's choice at a [BOV] (B,) bool: guided logits, tempered like a head's choices."""
            logit = self._still_logits(h)
            if guided:
                logit = logit[b:] + guidance_scale * (logit[:b] - logit[b:])
            if temperature == 0:
                return logit > 0
            # Two-way Gumbel-max: "sample" (logit 0) against "repeat" (the gate's logit).
            choice = torch.stack([torch.zeros_like(logit), logit], dim=-1) / temperature
            return (choice + gumbel((b, 2), generator, choice.device)).argmax(-1).bool()

        def draw(h: torch.Tensor) -> torch.Tensor:
            h = self.output_proj(h)
            if not guided:
                return head.sample(h, temperature=temperature, generator=generator, **sample_kwargs)
            cond, uncond = h[:b], h[b:]
            if internal:
                return head.sample(
                    cond, temperature=temperature, generator=generator, guidance_scale=guidance_scale,
                    uncond_hidden=uncond, **sample_kwargs,
                )  # fmt: skip
            both = head.sample(h, temperature=temperature, generator=generator, **sample_kwargs)
            c, u = both[:b], both[b:]
            return u + guidance_scale * (c - u)

        bar = tqdm(total=num_keyframes - len(prefix), desc="video LM: keyframes", disable=not progress)
        h = None
        for k in range(len(prefix), num_keyframes):
            if h is None or k - state["start"] >= window:
                # (Re)start the context; past the window, keep the newest half and re-encode them from 0.
                first = 0 if k < window else k - max(window // 2, 1) if window > 1 else k
                h = prefill(first, k)
            tokens = []
            base = frames[-1] if residual and frames else None  # the previous keyframe (B, N, D)
            repeat = still(h) if self.still_head is not None and frames else None
            for i in range(n):
                token = draw(h).to(self.dtype)  # (B, D)
                if base is not None:
                    token = token + base[:, i]
                if repeat is not None:
                    # The head draws for every row anyway: one row's repeat does not shift the others' noise.
                    token = torch.where(repeat[:, None], frames[-1][:, i], token)
                tokens.append(token)
                feed = torch.cat([token, token]) if guided else token
                new = self.embed_token(feed, k - state["start"], i)
                if i == n - 1:
                    if k + 1 == num_keyframes:
                        break
                    if k + 1 - state["start"] >= window:
                        h = None  # the next keyframe starts a new window
                        break
                    new = torch.cat([new, self.embed_bov(rows, k + 1 - state["start"])], dim=1)
                h = run(new)
            frames.append(torch.stack(tokens, dim=1))
            if callback is not None:
                callback(k, frames[-1])
            bar.update(1)
        bar.close()
        return torch.stack(frames, dim=1)


class VideoLMForTraining(nn.Module):
    """Backbone + :class:`VideoLM` + head(s) as one module with ``training_step`` (DiCoDe §3.3, supp. §6).

    DiCoDe trains progressively, first with the L2 loss and then with the GMM loss (supplementary §6). Give
    several heads by name and pick one per stage with the stage option ``{"head": "gmm"}``; the backbone and
    projections carry over. Batches are token-cache samples: ``{"tokens": (B, S, N, D), "caption": [...]}``
    (captions are tokenized here) or ``{"tokens", "input_ids"}``.

    Args:
        backbone: The causal LM.
        video_lm: The :class:`VideoLM`.
        heads: One head, or a dict name → head (the first is active until a stage picks another).
        text_tokenizer: Tokenizes captions (needed when batches carry captions, not ids).
        caption_transform: Optional ``f(caption, generator) -> caption`` applied in training (e.g. dropping
            attributes so under-specified prompts are learned).
    """

    def __init__(
        self,
        backbone: nn.Module,
        video_lm: VideoLM,
        heads: nn.Module | dict[str, nn.Module],
        text_tokenizer: Any = None,
        caption_transform: Any = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.video_lm = video_lm
        self.heads = nn.ModuleDict(heads if isinstance(heads, dict) else {"head": heads})
        self.active = next(iter(self.heads))
        self.text_tokenizer = text_tokenizer
        self.caption_transform = caption_transform

    @property
    def head(self) -> nn.Module:
        """The head of the current stage."""
        return self.heads[self.active]

    def configure_stage(self, stage: Any) -> None:
        """Switch the active head with the stage option ``{"head": name}``.

        Raises:
            ValueError: On an unknown head name or option.
        """
        options = dict(getattr(stage, "options", None) or {})
        unknown = set(options) - {"head"}
        if unknown:
            raise ValueError(f"unknown VideoLM stage options {sorted(unknown)}; known: head")
        if "head" in options:
            if options["head"] not in self.heads:
                raise ValueError(f"stage asks for head {options['head']!r}; this model has {list(self.heads)}")
            self.active = options["head"]

    def input_ids(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> torch.Tensor:
        """Prompt ids of a batch (from ``input_ids`` or by tokenizing ``caption``)."""
        if "input_ids" in batch:
            return batch["input_ids"]
        if self.text_tokenizer is None:
            raise ValueError("batches carry captions but VideoLMForTraining has no text_tokenizer")
        from vidtok.models.text_tokenizers import encode_prompts

        captions = list(batch["caption"])
        if self.caption_transform is not None and self.training:
            captions = [self.caption_transform(c, generator) for c in captions]
        return encode_prompts(self.text_tokenizer, captions, length=self.video_lm.config.text_length, truncate=True)

    def training_step(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        """The loss of :meth:`VideoLM.loss` with the active head."""
        tokens = batch["tokens"]
        ids = self.input_ids(batch, generator).to(tokens.device)
        return self.video_lm.loss(self.backbone, self.head, ids, tokens, generator=generator)
