"""Text to video with deep tokens and a language model: DiCoDe's generation pipeline (DiCoDe §3.3–3.4, Fig. 2).

``TextToVideo`` is a diffusers ``DiffusionPipeline`` with five components:

* ``video_tokenizer`` — a [`DeepTokenizer`][vidtok.tokenizers.deep_tokens.DeepTokenizer] (any
  [`VideoTokenizer`][vidtok.tokenizers.base.VideoTokenizer] whose tokens are ``(B, S, N, D)``) that decodes
  the generated tokens into frames;
* ``backbone`` — the causal language model (a ``transformers`` base model, see
  [`hf_causal_lm`][vidtok.backbones.hf_causal_lm.HFCausalLM]);
* ``video_lm`` — [`VideoLM`][vidtok.models.video_lm.VideoLM]: projections, [BOV], position embeddings;
* ``head`` — the AR head (``l2``, ``gaussian``, ``gmm``, ``diffusion_mlp``);
* ``text_tokenizer`` — the language model's tokenizer.

so it saves and loads with ``model_index.json`` like any diffusers pipeline, and each part can be swapped:
``TextToVideo(**{**pipe.components, "head": other_head})``.

Example:
    >>> import torch
    >>> from vidtok.pipelines.text_to_video import TextToVideo
    >>> from vidtok.recipes.dicode import dicode_tiny
    >>> pipe = TextToVideo.from_recipe(dicode_tiny(tiny=True))  # random weights, unit-test size
    >>> out = pipe("a red circle moves right", num_keyframes=2, num_inference_steps=2,
    ...            generator=torch.Generator().manual_seed(0), progress=False)
    >>> out.frames.shape
    (1, 5, 16, 16, 3)
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' loader looks it up here)
from torch import nn

from vidtok.models.text_tokenizers import encode_prompts
from vidtok.models.video_lm import VideoLM
from vidtok.pipelines.pipeline_output import TextToVideoOutput
from vidtok.pipelines.pipeline_utils import VidtokPipeline
from vidtok.pipelines.reconstruct import _as_model_video, _decode_kwargs, _to_output
from vidtok.tokenizers.base import VideoTokenizer

__all__ = ["DEFAULT_MODEL_PATH", "TextToVideo", "load_default"]

DEFAULT_MODEL_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "dicode_shapes")
"""Folder of the embedded default pipeline (``dicode_tiny`` trained on Shapes), shipped with the package."""


def _prompts(prompt: Any, allow_empty: bool = False) -> list[str]:
    if isinstance(prompt, str):
        prompt = [prompt]
    if not isinstance(prompt, (list, tuple)) or not prompt:
        raise TypeError(f"prompt must be a string or a non-empty list of strings, got {type(prompt).__name__}")
    for i, p in enumerate(prompt):
        if not isinstance(p, str):
            raise TypeError(f"prompt {i} must be a string, got {type(p).__name__}")
        if not allow_empty and not p.strip():
            raise ValueError(f"prompt {i} is empty: describe the video (the null prompt is used internally for CFG)")
    return list(prompt)


class TextToVideo(VidtokPipeline):
    """Generate video from text with deep tokens and a language model (DiCoDe §3.3–3.4, Fig. 2).

    The prompt is tokenized to ``text_length`` ids; the video LM samples keyframe tokens one by one (KV
    cache, optional classifier-free guidance against the null prompt, a sliding window past the trained
    context); the tokenizer decodes every clip between consecutive keyframes.

    Args:
        video_tokenizer: Decodes the deep tokens.
        backbone: The causal language model.
        video_lm: Projections and embeddings around the language model.
        head: The AR head.
        text_tokenizer: The language model's text tokenizer.
    """

    model_cpu_offload_seq = "backbone->video_lm->head->video_tokenizer"
    #: Whether an empty prompt (the null prompt) is accepted; ImageToVideo allows it.
    allow_empty_prompt = False

    def __init__(
        self,
        video_tokenizer: VideoTokenizer,
        backbone: nn.Module,
        video_lm: VideoLM,
        head: nn.Module,
        text_tokenizer: Any,
    ) -> None:
        super().__init__()
        self.register_modules(
            video_tokenizer=video_tokenizer,
            backbone=backbone,
            video_lm=video_lm,
            head=head,
            text_tokenizer=text_tokenizer,
        )
        self._check_wiring()

    def _check_wiring(self) -> None:
        """Raise a ``ValueError`` when the components' sizes do not fit together."""
        from vidtok.backbones.hf_causal_lm import hidden_size

        lm, tok, head = self.video_lm.config, self.video_tokenizer, self.head.config
        problems = []
        if hidden_size(self.backbone) != lm.hidden_size:
            problems.append(f"backbone width {hidden_size(self.backbone)} != video_lm.hidden_size {lm.hidden_size}")
        if tok.token_dim != lm.token_dim:
            problems.append(f"video_tokenizer.token_dim {tok.token_dim} != video_lm.token_dim {lm.token_dim}")
        per_step = tok.tokens_per_step(*getattr(tok, "sample_size", (0, 0)))
        if per_step != lm.num_tokens:
            problems.append(f"video_tokenizer gives {per_step} tokens per keyframe, video_lm expects {lm.num_tokens}")
        if head["hidden_size"] != (lm.head_hidden_size or lm.hidden_size):
            problems.append(
                f"head.hidden_size {head['hidden_size']} != video_lm output {lm.head_hidden_size or lm.hidden_size}"
            )
        if head.get("token_dim") != lm.token_dim:
            problems.append(f"head.token_dim {head.get('token_dim')} != video_lm.token_dim {lm.token_dim}")
        vocab = self.backbone.get_input_embeddings().num_embeddings
        if len(self.text_tokenizer) > vocab:
            problems.append(f"text tokenizer has {len(self.text_tokenizer)} tokens, the backbone embeds {vocab}")
        if problems:
            raise ValueError("TextToVideo components do not fit: " + "; ".join(problems))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_recipe(cls, recipe: Any, **components: Any) -> TextToVideo:
        """Build a pipeline from a recipe (``vidtok.RECIPES.create(name, **overrides)``).

        Weights are random except where the recipe names pretrained ones; ``components`` replace built ones.
        Modules are put in eval mode, as ``from_pretrained`` does (call ``.train()`` on those you train).
        """
        from vidtok.recipes.base import build_components

        built = {**build_components(recipe), **components}
        for module in built.values():
            if isinstance(module, nn.Module):
                module.eval()  # as from_pretrained does: no dropout at generation time
        return cls(**built)

    # ------------------------------------------------------------------ helpers
    @property
    def fps(self) -> float:
        """Frame rate of the generated videos."""
        return float(self.video_lm.config.fps)

    @property
    def frame_stride(self) -> int:
        """Frames per keyframe interval."""
        return int(self.video_tokenizer.temporal_compression)

    def keyframes_for(self, seconds: float) -> int:
        """Keyframes whose decoded video lasts at least ``seconds`` (``(S - 1) f + 1`` frames at ``fps``)."""
        if not seconds > 0:
            raise ValueError(f"duration must be > 0 seconds, got {seconds}")
        return max(2, math.ceil((seconds * self.fps - 1) / self.frame_stride) + 1)

    def encode_prompt(self, prompt: Any, num_videos_per_prompt: int = 1) -> torch.Tensor:
        """Prompt ids ``(B * num_videos_per_prompt, text_length)``; raises on empty, non-string or too long."""
        prompts = _prompts(prompt, allow_empty=self.allow_empty_prompt)
        ids = encode_prompts(self.text_tokenizer, prompts, length=self.video_lm.config.text_length)
        return ids.repeat_interleave(num_videos_per_prompt, dim=0).to(self.video_lm.device)

    @torch.no_grad()
    def encode_video(self, video: Any) -> torch.Tensor:
        """Deep tokens ``(B, S, N, D)`` of a video (or image, one keyframe) for prefilling."""
        tok = self.video_tokenizer
        video = _as_model_video(video).to(tok.device, tok.dtype)
        return tok.encode(video).tokens

    # ------------------------------------------------------------------ call
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        num_keyframes: int | None = None,
        *,
        duration: float | None = None,
        guidance_scale: float = 1.0,
        temperature: float | None = None,
        num_inference_steps: int = 10,
        decoder_guidance_scale: float = 1.0,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        num_videos_per_prompt: int = 1,
        video: Any = None,
        prefix_tokens: torch.Tensor | None = None,
        context_keyframes: int | None = None,
        use_cache: bool = True,
        head_kwargs: dict[str, Any] | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        progress: bool = True,
    ) -> TextToVideoOutput | tuple:
        """Generate videos.

        Args:
            prompt: A prompt or a list of prompts.
            num_keyframes: Keyframes to generate, prefix included (default 2: one clip); the video has
                ``(S - 1) f + 1`` frames.
            duration: Alternatively, the length in seconds (rounded up to whole keyframe intervals).
            guidance_scale: Classifier-free guidance of the language model against the null prompt (1 = off).
            temperature: Sampling temperature of the head (default: the model's ``video_lm.config.temperature``).
            num_inference_steps: Denoising steps of the tokenizer's diffusion decoder.
            decoder_guidance_scale: CFG of the diffusion decoder against its unconditional tokens.
            eta: DDIM eta of the decoder (0 deterministic).
            generator: Source of all randomness (tokens and decoder noise).
            num_videos_per_prompt: Videos per prompt.
            video: Continue this video (``(B, C, T, H, W)`` in ``[-1, 1]`` or frames): its keyframes are
                encoded and prefilled; the output starts with their reconstruction.
            prefix_tokens: Alternatively, the deep tokens ``(B, P, N, D)`` to continue from.
            context_keyframes: Sliding-window size of the language model's context (default: the video
                LM's ``context_keyframes``, the sequence length it was trained on, else its maximum).
            use_cache: KV cache (``False`` recomputes the sequence every step; slower, same result).
            head_kwargs: Extra arguments of ``head.sample`` (e.g. ``num_inference_steps`` of a diffusion head).
            output_type: ``"np"`` (``(B, T, H, W, C)`` in ``[0, 1]``), ``"pt"`` (``(B, C, T, H, W)`` in
                ``[-1, 1]``), ``"pil"``, or ``"latent"``: the tokens only, without decoding (``frames`` is
                ``None``), as diffusers' ``output_type="latent"`` skips the VAE.
            return_dict: Return a :class:`~vidtok.pipelines.pipeline_output.TextToVideoOutput`, else
                ``(frames, tokens)``.
            progress: Progress bars (keyframes, then decoding).

        Returns:
            :class:`~vidtok.pipelines.pipeline_output.TextToVideoOutput` with ``frames``, ``tokens``, ``fps``.

        Raises:
            TypeError: A prompt that is not a string.
            ValueError: An empty or too long prompt, or an invalid argument (named in the message).
        """
        if output_type not in ("np", "pt", "pil", "latent"):
            raise ValueError(f"output_type must be 'np', 'pt', 'pil' or 'latent', got {output_type!r}")
        if num_keyframes is not None and duration is not None:
            raise ValueError("give num_keyframes or duration, not both")
        if num_videos_per_prompt < 1:
            raise ValueError(f"num_videos_per_prompt must be >= 1, got {num_videos_per_prompt}")
        if guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        ids = self.encode_prompt(prompt, num_videos_per_prompt)
        if video is not None and prefix_tokens is not None:
            raise ValueError("give video or prefix_tokens, not both")
        if video is not None:
            prefix_tokens = self.encode_video(video)
        if prefix_tokens is not None:
            if (
                prefix_tokens.shape[0] * num_videos_per_prompt == ids.shape[0]
                and prefix_tokens.shape[0] != ids.shape[0]
            ):
                prefix_tokens = prefix_tokens.repeat_interleave(num_videos_per_prompt, dim=0)
            elif prefix_tokens.shape[0] == 1 and ids.shape[0] > 1:
                prefix_tokens = prefix_tokens.expand(ids.shape[0], *prefix_tokens.shape[1:])
        if duration is not None:
            num_keyframes = self.keyframes_for(duration)
        if num_keyframes is None:
            num_keyframes = max(2, (prefix_tokens.shape[1] + 1) if prefix_tokens is not None else 2)
        if not isinstance(num_keyframes, int) or num_keyframes < 1:
            raise ValueError(f"num_keyframes must be a positive int, got {num_keyframes!r}")
        if temperature is None:
            temperature = float(self.video_lm.config.temperature)
        tokens = self.video_lm.generate(
            self.backbone,
            self.head,
            ids,
            num_keyframes,
            prefix_tokens=prefix_tokens,
            guidance_scale=guidance_scale,
            temperature=temperature,
            generator=generator,
            use_cache=use_cache,
            context_keyframes=context_keyframes,
            head_kwargs=head_kwargs,
            progress=progress,
        )
        if output_type == "latent":
            return TextToVideoOutput(frames=None, tokens=tokens, fps=self.fps) if return_dict else (None, tokens)
        tok = self.video_tokenizer
        dec = _decode_kwargs(
            tok,
            num_inference_steps=num_inference_steps,
            guidance_scale=decoder_guidance_scale,
            eta=eta,
            generator=generator,
            progress=progress,
        )
        frames = tok.decode(tokens.to(tok.device, tok.dtype), **dec).float()
        frames = _to_output(frames, output_type)
        if not return_dict:
            return frames, tokens
        return TextToVideoOutput(frames=frames, tokens=tokens, fps=self.fps)


def load_default(**kwargs: Any) -> TextToVideo:
    """The embedded default pipeline (``dicode_tiny`` trained on Shapes, shipped in the package).

    Raises:
        FileNotFoundError: If the package was installed without its assets.
    """
    if not os.path.isfile(os.path.join(DEFAULT_MODEL_PATH, "model_index.json")):
        raise FileNotFoundError(f"the embedded default model is missing from {DEFAULT_MODEL_PATH}")
    return TextToVideo.from_pretrained(DEFAULT_MODEL_PATH, **kwargs)
