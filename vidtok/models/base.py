"""Composite AR models: the ``VideoARModel`` contract and the ``MODELS`` registry (ARCHITECTURE §2, §5).

An AR model is what a method adds around a backbone and a head — DiCoDe's input/output MLPs, [BOV] and
position tables (``dicode_lm``), HiTVideo's per-level embeddings, NOVA's BOV slots and set-by-set decoder.
The backbone and the head stay separate components, passed to every call, so a pipeline can swap either
one and a transformers backbone keeps its own serialization::

    model.check_compatible(tokenizer, backbone, head)          # one ValueError listing every mismatch
    model.loss(backbone, head, text, tokens)                   # {"loss": scalar, ...named losses}
    model.generate(backbone, head, text, num_steps, prefix=None, guidance_scale=..., temperature=...,
                   generator=g)                                # tokens (B, num_steps, N, D) or codes (B, S, N)

``text`` is what the pipeline made of the prompts: ids ``(B, text_length)`` from the text tokenizer, or the
hidden states of a frozen text encoder where the recipe names one.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn

from vidtok.modeling_utils import Component
from vidtok.registry import Registry

__all__ = ["MODELS", "VideoARModel", "VideoARModelForTraining", "encode_prompt_states", "encode_text"]


class VideoARModel(Component, abc.ABC):
    """Base class of composite AR video models (what a method adds around backbone + head).

    Subclasses implement :meth:`check_compatible`, :meth:`loss` and :meth:`generate`. Their config provides
    ``text_length`` (prompt length in text tokens), and optionally ``pad_token_id`` (the null prompt),
    ``fps`` (frame rate of the videos it was trained on) and ``temperature`` (the sampling temperature
    pipelines use when the caller gives none).
    """

    #: Whether the model generates integer codes (discrete tokenizers) rather than continuous tokens.
    generates_codes: bool = False

    #: Whether :meth:`generate` continues a given prefix (image-to-video, video continuation). HiTVideo's
    #: coarse-to-fine model cannot: its coarse levels span the whole video.
    supports_prefix: bool = True

    #: Whether the prompt arrives as a frozen text encoder's hidden states rather than ids. Pipelines with a
    #: ``text_encoder`` then also pass ``null_text`` (the encoded null prompt) to :meth:`loss` and
    #: :meth:`generate`, and ``text_encoder`` to :meth:`check_compatible`.
    reads_text_states: bool = False

    # ------------------------------------------------------------------ the contract
    @abc.abstractmethod
    def check_compatible(self, tokenizer: Any, backbone: Any, head: Any) -> None:
        """Raise one ``ValueError`` listing every way the components do not fit this model.

        Models that read text-encoder states also take ``text_encoder=`` (the frozen encoder) to check.
        """

    @abc.abstractmethod
    def loss(
        self,
        backbone: nn.Module,
        head: nn.Module,
        text: torch.Tensor,
        tokens: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Training losses for a batch of prompts and target tokens: ``{"loss": scalar, ...}``."""

    @abc.abstractmethod
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
    ) -> torch.Tensor:
        """Sample ``num_steps`` token steps (prefix included) for the prompts ``text``.

        Pipelines pass every argument below; a model that has no use for one accepts and ignores it.

        Args:
            backbone: The backbone.
            head: The AR head (sampled with ``guidance_scale`` and ``uncond_hidden``, never introspected).
            text: Prompt ids ``(B, text_length)`` (or a text encoder's hidden states).
            num_steps: Token steps of the result, prefix included.
            prefix: Known first steps (image-to-video, continuation), returned unchanged.
            guidance_scale: Classifier-free guidance against the null prompt (``1``: off).
            temperature: Sampling temperature (``None``: the config's).
            generator: The only source of randomness.
            use_cache: Use the backbone's key/value cache (``False``: recompute, the reference).
            context_keyframes: The sliding window in token steps (``None``: the model's default).
            head_kwargs: Extra keyword arguments of ``head.sample``.
            progress: Show a progress bar.
            callback: ``callback(step, tokens)`` after each generated step.

        Returns:
            Tokens ``(B, num_steps, N, D)``, or integer codes ``(B, num_steps, N)`` (:attr:`generates_codes`);
            a model over several token levels returns one tensor per level, coarsest first (``hitvideo_lm``).
        """

    @classmethod
    def tiny_companions(cls) -> dict[str, Any]:
        """Registry name + kwargs of a tokenizer, backbone and head that fit :meth:`tiny_config` (for tests).

        Returns:
            ``{"video_tokenizer": (name, kwargs), "backbone": (name, kwargs), "head": (name, kwargs)}``.
        """
        raise NotImplementedError(f"{cls.__name__} names no tiny companions")

    @property
    def trained_length(self) -> int | None:
        """The token steps per sequence the model was trained on, where it records them (else ``None``)."""
        return None

    def record_trained_length(self, steps: int) -> None:
        """Record that the model was trained on sequences of ``steps`` token steps (trainers call it).

        The default records nothing; a model whose positions are learned uses it as the default generation
        window, so generation never reaches positions training has not.
        """

    def check_tokens(self, tokens: torch.Tensor) -> None:
        """Raise a ``ValueError``/``TypeError`` naming the problem if ``tokens`` are not what the model reads.

        Pipelines check a prefix (image-to-video, continuation) with it before generating. The default accepts
        anything; models override it.
        """

    # ------------------------------------------------------------------ shared conveniences
    @classmethod
    def complete_config(cls, kwargs: dict[str, Any], *, text_tokenizer: Any = None) -> dict[str, Any]:
        """Fill the keyword arguments a recipe leaves to the other components (e.g. the text pad id).

        ``build_components`` calls it before construction; the default returns ``kwargs`` unchanged.
        """
        return dict(kwargs)

    @property
    def text_length(self) -> int:
        """Prompt length in text tokens (prompts are padded or cut to it)."""
        return int(self.config["text_length"])

    @property
    def fps(self) -> float:
        """Frame rate of the decoded videos the model was trained on."""
        return float(self.config.get("fps", 8.0))

    @property
    def default_temperature(self) -> float:
        """The sampling temperature pipelines use when the caller gives none."""
        return float(self.config.get("temperature", 1.0))

    @property
    def default_guidance_scale(self) -> float:
        """The classifier-free guidance pipelines use when the caller gives none (1: off)."""
        return float(self.config.get("guidance_scale", 1.0))

    def fill_text_padding(self, states: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Text-encoder states ``(B, L, E)`` as the model reads them, given which positions are real tokens.

        ``real`` is ``(B, L)`` bool, padding ``False``. Unchanged here; a model that stores its own pad states
        (NOVA's released models) puts them at the padding positions. Pipelines and training call it on every
        encoded prompt, the null prompt included.
        """
        return states

    def null_text(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        """The null prompt (all padding) ``(batch, text_length)`` used for prompt dropout and guidance."""
        pad = int(self.config.get("pad_token_id", 0))
        return torch.full((batch, self.text_length), pad, device=device, dtype=torch.long)

    def null_like(self, text: torch.Tensor, null_text: torch.Tensor | None = None) -> torch.Tensor:
        """The null prompt for ``text``'s rows: pad ids, or the given encoder states of the null prompt.

        Raises:
            ValueError: A model reading text-encoder states (:attr:`reads_text_states`) without ``null_text``.
        """
        if not self.reads_text_states:
            return self.null_text(text.shape[0], text.device)
        if null_text is None:
            raise ValueError("a model reading text-encoder states needs null_text (the encoded null prompt)")
        null_text = null_text.to(text.device, text.dtype)
        return null_text.expand(text.shape[0], *null_text.shape[1:]) if null_text.shape[0] == 1 else null_text

    def text_encoder_problems(self, text_encoder: Any) -> list[str]:
        """What does not fit between the model's prompt input and a recipe's ``text_encoder`` (or its absence).

        A model reads encoder states when its config sets ``text_embed_dim`` (then the encoder's width must equal
        it), else prompt ids embedded with the backbone's own table (then no encoder may be given).
        """
        dim = self.config.get("text_embed_dim")
        if text_encoder is None:
            if dim is None:
                return []
            return [f"the model reads text-encoder states (text_embed_dim={dim}): no text_encoder"]
        if dim is None:
            return ["a text_encoder is given but the model embeds prompt ids (set text_embed_dim)"]
        width = getattr(getattr(text_encoder, "config", None), "hidden_size", None)
        return [] if width == dim else [f"text_encoder width {width} != model text_embed_dim {dim}"]

    def embed_text(self, backbone: Any, text: torch.Tensor) -> torch.Tensor:
        """Prompt embeddings ``(B, text_length, H)``: ids through the backbone's table, or states through ``text_proj``.

        Encoder states are read when the config sets ``text_embed_dim``; such models define ``text_proj``.

        Raises:
            ValueError: Ids outside the backbone's vocabulary.
        """
        if self.config.get("text_embed_dim") is not None:
            return self.text_proj(text.to(self.dtype))
        from vidtok.backbones.hf_causal_lm import as_backbone

        table = as_backbone(backbone).get_input_embeddings()
        if int(text.max()) >= table.num_embeddings or int(text.min()) < 0:
            raise ValueError(
                f"text ids must be in [0, {table.num_embeddings}) for this backbone's vocabulary, "
                f"got [{int(text.min())}, {int(text.max())}]"
            )
        return table(text).to(self.dtype)

    @staticmethod
    def raise_mismatches(name: str, problems: list[str]) -> None:
        """Raise one ``ValueError`` listing every problem (nothing when the list is empty)."""
        if problems:
            raise ValueError(f"{name}: the components do not fit: " + "; ".join(problems))


def encode_text(text_encoder: nn.Module, ids: torch.Tensor, pad_token_id: int | None) -> torch.Tensor:
    """A frozen text encoder's hidden states ``(B, L, E)`` of prompt ids, padding masked out of its attention.

    The all-pad null prompt keeps its positions visible (an all-masked row has no defined attention).
    """
    ids = ids.to(text_encoder.device)
    mask = None
    if pad_token_id is not None:
        mask = (ids != pad_token_id).long()
        mask[mask.sum(-1) == 0] = 1
    with torch.no_grad():
        return text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state


def encode_prompt_states(
    model: VideoARModel, text_encoder: nn.Module, ids: torch.Tensor, pad_token_id: int | None
) -> torch.Tensor:
    """The text-encoder states ``(B, L, E)`` a model reads for prompt ids (on the encoder's device).

    :func:`encode_text`, then the model's :meth:`~VideoARModel.fill_text_padding` at the pad positions.
    """
    states = encode_text(text_encoder, ids, pad_token_id)
    real = torch.ones_like(ids, dtype=torch.bool) if pad_token_id is None else ids != pad_token_id
    return model.fill_text_padding(states, real.to(states.device))


class VideoARModelForTraining(nn.Module):
    """Backbone + AR model + head(s) (+ text tokenizer) as one module with ``training_step``.

    DiCoDe trains progressively, first with the L2 loss and then with the GMM loss (supplementary §6). Give
    several heads by name and pick one per stage with the stage option ``{"head": "gmm"}``; the backbone and
    the model carry over. Batches are token-cache samples: ``{"tokens": (B, S, N, D), "caption": [...]}``
    (captions are tokenized here) or ``{"tokens", "input_ids"}``; ``tokens`` is a list of per-level tensors for
    a model over several levels (``hitvideo_lm``), and an optional ``"token_masks"`` (HiTVideo §4) goes to a
    model's loss that takes them (see :meth:`training_step`).

    Args:
        backbone: The backbone.
        model: The :class:`VideoARModel`.
        heads: One head, or a dict name → head (the first is active until a stage picks another).
        text_tokenizer: Tokenizes captions (needed when batches carry captions, not ids).
        caption_transform: Optional ``f(caption, generator) -> caption`` applied in training (e.g. dropping
            attributes so under-specified prompts are learned).
        text_encoder: A frozen text encoder for models that read its hidden states (never trained here).
    """

    def __init__(
        self,
        backbone: nn.Module,
        model: VideoARModel,
        heads: nn.Module | dict[str, nn.Module],
        text_tokenizer: Any = None,
        caption_transform: Any = None,
        text_encoder: Any = None,
    ) -> None:
        super().__init__()
        from vidtok.backbones.hf_causal_lm import as_backbone

        self.backbone = as_backbone(backbone)
        self.model = model
        self.heads = nn.ModuleDict(heads if isinstance(heads, dict) else {"head": heads})
        self.active = next(iter(self.heads))
        self.text_tokenizer = text_tokenizer
        self.caption_transform = caption_transform
        # Checkpoints written before the AR-model contract name the model "video_lm." and, for a transformers
        # backbone, its weights without the adapter's "model." level: renamed on load, so such runs resume.
        self.register_load_state_dict_pre_hook(self._migrate_state_dict)
        # Kept out of the module tree (not a submodule): frozen, not saved with the trained parts.
        self.__dict__["text_encoder"] = text_encoder.eval().requires_grad_(False) if text_encoder is not None else None

    @property
    def video_lm(self) -> VideoARModel:
        """The AR model (the name it had when only DiCoDe's existed)."""
        return self.model

    def _migrate_state_dict(self, module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        """Rename the keys of a pre-contract checkpoint in place (``video_lm.*``; bare transformers backbone keys)."""
        from vidtok.backbones.hf_causal_lm import HFCausalLM

        adapted = isinstance(self.backbone, HFCausalLM)
        for key in list(state_dict):
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix) :]
            if rest.startswith("video_lm."):
                state_dict[prefix + "model." + rest[len("video_lm.") :]] = state_dict.pop(key)
            elif adapted and rest.startswith("backbone.") and not rest.startswith("backbone.model."):
                state_dict[prefix + "backbone.model." + rest[len("backbone.") :]] = state_dict.pop(key)

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
            raise ValueError(f"unknown stage options {sorted(unknown)}; known: head")
        if "head" in options:
            if options["head"] not in self.heads:
                raise ValueError(f"stage asks for head {options['head']!r}; this model has {list(self.heads)}")
            self.active = options["head"]

    def input_ids(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> torch.Tensor:
        """Prompt ids of a batch (from ``input_ids`` or by tokenizing ``caption``)."""
        if "input_ids" in batch:
            return batch["input_ids"]
        if self.text_tokenizer is None:
            raise ValueError("batches carry captions but the training module has no text_tokenizer")
        from vidtok.models.text_tokenizers import encode_prompts

        captions = list(batch["caption"])
        if self.caption_transform is not None and self.training:
            captions = [self.caption_transform(c, generator) for c in captions]
        return encode_prompts(self.text_tokenizer, captions, length=self.model.text_length, truncate=True)

    def training_step(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        """The loss of :meth:`VideoARModel.loss` with the active head.

        A batch with ``"token_masks"`` (a token cache built by a tokenizer with HiTVideo §4's dynamic token
        masking) passes them as ``token_masks=`` to a model whose ``loss`` takes that argument (``hitvideo_lm``).

        Raises:
            ValueError: If the batch has token masks and the model's ``loss`` does not take ``token_masks``:
                they are refused rather than ignored, since they change what the model should learn.
        """
        tokens = batch["tokens"]
        # A hierarchical tokenizer's samples hold one tensor per level.
        device = (tokens[0] if isinstance(tokens, (list, tuple)) else tokens).device
        extra: dict[str, Any] = {}
        if batch.get("token_masks") is not None:
            if not self.model_takes_token_masks:
                raise ValueError(
                    f"the batch carries token_masks (a token cache built by a tokenizer with token_masking) but "
                    f"{type(self.model).__name__}.loss takes no token_masks: build the cache with token_masking=None, "
                    "or train a model that uses them (hitvideo_lm)"
                )
            extra["token_masks"] = batch["token_masks"]
        ids = self.input_ids(batch, generator).to(device)
        if self.text_encoder is None:
            return self.model.loss(self.backbone, self.head, ids, tokens, generator=generator, **extra)
        pad = getattr(self.text_tokenizer, "pad_token_id", None)
        text = encode_prompt_states(self.model, self.text_encoder, ids, pad).to(device)
        null = encode_prompt_states(self.model, self.text_encoder, self.model.null_text(1, ids.device), pad).to(device)
        return self.model.loss(self.backbone, self.head, text, tokens, generator=generator, null_text=null, **extra)

    @property
    def model_takes_token_masks(self) -> bool:
        """Whether the model's ``loss`` names a ``token_masks`` argument (a ``**kwargs`` catch-all does not count)."""
        import inspect

        return "token_masks" in inspect.signature(self.model.loss).parameters

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> VideoARModelForTraining:
        # The frozen text encoder is kept out of the module tree (not trained, not saved) but must follow the
        # trained parts to their device and dtype (.to(), .cuda() under accelerate).
        super()._apply(fn, *args, **kwargs)
        if self.text_encoder is not None:
            self.text_encoder._apply(fn, *args, **kwargs)
        return self


MODELS: Registry[type[VideoARModel]] = Registry("model", base=VideoARModel, package="vidtok.models")
"""Composite AR models, one per file, each registered in :data:`MODELS` under its file's name."""
