"""Text to video with any registered AR model: DiCoDe's generation pipeline and the ones after it (DiCoDe Fig. 2).

``TextToVideo`` is a diffusers ``DiffusionPipeline`` whose components are typed by the vidtok contracts, not
by one method:

* ``video_tokenizer`` — any [`VideoTokenizer`][vidtok.tokenizers.base.VideoTokenizer] (continuous tokens
  are decoded with ``decode``, integer codes with ``decode_codes``);
* ``backbone`` — any [`Backbone`][vidtok.backbones.base.Backbone] (e.g.
  [`HFCausalLM`][vidtok.backbones.hf_causal_lm.HFCausalLM]);
* ``model`` — any [`VideoARModel`][vidtok.models.base.VideoARModel] (``dicode_lm``: projections, [BOV],
  position embeddings);
* ``head`` — any [`TokenHead`][vidtok.heads.base.TokenHead];
* ``text_tokenizer`` — the prompts' tokenizer, and optionally ``text_encoder`` — a frozen transformers
  encoder whose hidden states the model reads instead of ids.

so it saves and loads with ``model_index.json`` like any diffusers pipeline, and each part can be swapped:
``TextToVideo(**{**pipe.components, "head": other_head})``. The model checks on construction that the parts
fit (:meth:`~vidtok.models.base.VideoARModel.check_compatible`). Folders saved before this contract (a
``video_lm`` component and a bare transformers backbone) load unchanged.

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

from vidtok.assets import shipped_path
from vidtok.backbones.base import Backbone
from vidtok.backbones.hf_causal_lm import as_backbone
from vidtok.heads.base import TokenHead
from vidtok.io import as_model_video, to_output
from vidtok.models.base import VideoARModel, encode_prompt_states
from vidtok.models.text_tokenizers import encode_prompts
from vidtok.pipelines.pipeline_output import TextToVideoOutput
from vidtok.pipelines.pipeline_utils import VidtokPipeline, sampler_settings
from vidtok.tokenizers.base import VideoTokenizer
from vidtok.validation import check_count, check_generator, check_number

__all__ = ["DEFAULT_MODEL_PATH", "TextToVideo", "load_default"]

DEFAULT_MODEL_PATH = shipped_path("dicode_shapes", check=False)
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
    """Generate video from text with any tokenizer × AR model × backbone × head (DiCoDe §3.3–3.4, Fig. 2).

    The prompt is tokenized to the model's ``text_length`` ids (and encoded by the ``text_encoder`` where
    there is one); the model samples token steps (KV cache, optional classifier-free guidance against the null
    prompt, a sliding window past the trained context); the tokenizer decodes them.

    Args:
        video_tokenizer: Decodes the tokens (or codes).
        backbone: The AR backbone (a bare transformers base model is adapted with ``HFCausalLM``).
        model: The AR model (what the method adds around backbone + head).
        head: The AR head.
        text_tokenizer: The prompts' tokenizer.
        text_encoder: Optional frozen text encoder (``None``: the model embeds prompt ids itself).
    """

    model_cpu_offload_seq = "text_encoder->backbone->model->head->video_tokenizer"
    #: The most token steps one call plans (a bound on ``duration``/``num_keyframes`` typos such as seconds
    #: given as frames); raise it on the instance for longer videos.
    max_num_keyframes: int = 4096
    _optional_components = ["text_encoder"]
    #: Whether an empty prompt (the null prompt) is accepted; ImageToVideo allows it.
    allow_empty_prompt = False

    def __init__(
        self,
        video_tokenizer: VideoTokenizer,
        backbone: Backbone,
        model: VideoARModel,
        head: TokenHead,
        text_tokenizer: Any,
        text_encoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        for name, value, base in (
            ("video_tokenizer", video_tokenizer, VideoTokenizer),
            ("model", model, VideoARModel),
            ("head", head, TokenHead),
        ):
            if not isinstance(value, base):
                raise TypeError(f"TextToVideo {name} must be a {base.__name__}, got {type(value).__name__}")
        self.register_modules(
            video_tokenizer=video_tokenizer,
            backbone=as_backbone(backbone),
            model=model,
            head=head,
            text_tokenizer=text_tokenizer,
            text_encoder=text_encoder,
        )
        self._check_wiring()

    @property
    def video_lm(self) -> VideoARModel:
        """The AR model under the name it had when DiCoDe's video LM was the only one."""
        return self.model

    def _check_wiring(self) -> None:
        """Raise one ``ValueError`` listing every way the components do not fit together."""
        problems = []
        extra = {"text_encoder": self.text_encoder} if self.text_encoder is not None else {}
        try:
            self.model.check_compatible(self.video_tokenizer, self.backbone, self.head, **extra)
        except ValueError as err:
            problems.append(str(err))
        # The ids go to the text encoder where there is one, else to the backbone's own table: it must hold them.
        reader = self.text_encoder if self.text_encoder is not None else self.backbone
        table = reader.get_input_embeddings()
        if table is not None and len(self.text_tokenizer) > table.num_embeddings:
            name = "text_encoder" if self.text_encoder is not None else "backbone"
            problems.append(
                f"text tokenizer has {len(self.text_tokenizer)} tokens, the {name} embeds {table.num_embeddings}"
            )
        if problems:
            raise ValueError("TextToVideo: " + "; ".join(problems))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_recipe(cls, recipe: Any, **components: Any) -> TextToVideo:
        """Build a pipeline from a recipe (``vidtok.RECIPES.create(name, **overrides)``).

        Weights are random except where the recipe names pretrained ones; ``components`` replace built ones.
        Modules are put in eval mode, as ``from_pretrained`` does (call ``.train()`` on those you train).
        """
        from vidtok.recipes.base import build_components

        built = {**build_components(recipe), **components}
        if "video_lm" in built:  # the model's name before the AR-model contract
            built["model"] = built.pop("video_lm")
        for module in built.values():
            if isinstance(module, nn.Module):
                module.eval()  # as from_pretrained does: no dropout at generation time
        return cls(**built)

    # ------------------------------------------------------------------ helpers
    @property
    def fps(self) -> float:
        """Frame rate of the generated videos."""
        return self.model.fps

    @property
    def frame_stride(self) -> int:
        """Frames per keyframe interval."""
        return int(self.video_tokenizer.temporal_compression)

    def keyframes_for(self, seconds: float) -> int:
        """Keyframes whose decoded video lasts at least ``seconds`` (``(S - 1) f + 1`` frames at ``fps``).

        Raises:
            TypeError: ``seconds`` is not a number.
            ValueError: Not a finite positive number, or more keyframes than :attr:`max_num_keyframes`.
        """
        seconds = check_number("duration", seconds)
        if seconds == 0:
            raise ValueError("duration must be > 0 seconds, got 0")
        steps = max(2, math.ceil((seconds * self.fps - 1) / self.frame_stride) + 1)
        if steps > self.max_num_keyframes:
            raise ValueError(
                f"duration={seconds:g} s needs {steps} keyframes, more than max_num_keyframes="
                f"{self.max_num_keyframes} (set pipe.max_num_keyframes to allow longer videos)"
            )
        return steps

    def encode_prompt(self, prompt: Any, num_videos_per_prompt: int = 1) -> torch.Tensor:
        """What the model reads of the prompts, repeated per video.

        Ids ``(B', text_length)``, or the text encoder's hidden states ``(B', text_length, D)`` where there is
        one. Raises on empty, non-string or too long prompts.
        """
        prompts = _prompts(prompt, allow_empty=self.allow_empty_prompt)
        ids = encode_prompts(self.text_tokenizer, prompts, length=self.model.text_length)
        ids = ids.repeat_interleave(num_videos_per_prompt, dim=0).to(self.model.device)
        if self.text_encoder is None:
            return ids
        return self._encode_ids(ids)

    def _encode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        states = encode_prompt_states(self.model, self.text_encoder, ids, self.text_tokenizer.pad_token_id)
        return states.to(self.model.device, self.model.dtype)

    @torch.no_grad()
    def encode_video(self, video: Any) -> torch.Tensor:
        """What the model continues from for a video (or image, one step): tokens ``(B, S, N, D)`` or codes."""
        tok = self.video_tokenizer
        video = as_model_video(video).to(tok.device, tok.dtype)
        out = tok.encode(video)
        if self.model.generates_codes:
            return out.indices[-1] if isinstance(out.indices, (list, tuple)) else out.indices
        return out.tokens[-1] if isinstance(out.tokens, (list, tuple)) else out.tokens

    # ------------------------------------------------------------------ call
    def _check_model_kwargs(self, model_kwargs: dict[str, Any] | None) -> dict[str, Any]:
        """``model_kwargs`` as a dict, after refusing (by name) what the model's ``generate`` does not take."""
        if model_kwargs is None:
            return {}
        if not isinstance(model_kwargs, dict):
            raise TypeError(f"model_kwargs must be a dict, got {type(model_kwargs).__name__}")
        options = _generate_options(self.model)
        unknown = sorted(set(model_kwargs) - set(options))
        if unknown:
            raise ValueError(
                f"model_kwargs {unknown} are not taken by {type(self.model).__name__}.generate "
                f"(it takes {options or 'no extra arguments'}; the pipeline's own arguments go to __call__)"
            )
        return dict(model_kwargs)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        num_keyframes: int | None = None,
        *,
        duration: float | None = None,
        guidance_scale: float | None = None,
        temperature: float | None = None,
        num_inference_steps: int | None = None,
        decoder_guidance_scale: float | None = None,
        eta: float | None = None,
        decoder_guidance_rescale: float | None = None,
        generator: torch.Generator | None = None,
        num_videos_per_prompt: int = 1,
        video: Any = None,
        prefix_tokens: torch.Tensor | None = None,
        context_keyframes: int | None = None,
        use_cache: bool = True,
        head_kwargs: dict[str, Any] | None = None,
        model_kwargs: dict[str, Any] | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        progress: bool = True,
    ) -> TextToVideoOutput | tuple:
        """Generate videos.

        A model that skips masked codes (``hitvideo_lm`` with ``predict_masks``, HiTVideo §4) returns the
        repeated codes at the skipped positions, and its ``last_token_masks`` go to ``decode_codes``: the tokenizer
        replaces them by its own ``token_masking`` strategy (``"repeat"`` keeps them as they are).
        ``output_type="latent"`` returns the codes.

        Args:
            prompt: A prompt or a list of prompts.
            num_keyframes: Keyframes to generate, prefix included (default 2: one clip); the video has
                ``(S - 1) f + 1`` frames.
            duration: Alternatively, the length in seconds (rounded up to whole keyframe intervals).
            guidance_scale: Classifier-free guidance of the language model against the null prompt (1 = off;
                default: the model's ``config.guidance_scale``, the setting it was evaluated with, else 1).
            temperature: Sampling temperature of the head (default: the model's ``config.temperature``).
            num_inference_steps: Denoising steps of the tokenizer's diffusion decoder. This and the other
                decoder settings default to the tokenizer's saved ``decode_defaults`` (a converted DiCoDe
                release: 50 steps, guidance 7.5, rescale 0.7, eta 1), else to 10 steps, no guidance, eta 0.
            decoder_guidance_scale: CFG of the diffusion decoder against its unconditional tokens.
            eta: DDIM eta of the decoder (0 deterministic).
            decoder_guidance_rescale: Rescale of the decoder's guided prediction to the conditional one's std
                (DiCoDe: 0.7; 0 = off).
            generator: Source of all randomness (tokens and decoder noise).
            num_videos_per_prompt: Videos per prompt.
            video: Continue this video (``(B, C, T, H, W)`` in ``[-1, 1]`` or frames): its keyframes are
                encoded and prefilled; the output starts with their reconstruction.
            prefix_tokens: Alternatively, the tokens ``(B, P, N, D)`` (codes ``(B, P, N)``) to continue from.
            context_keyframes: Sliding-window size of the model's context (default: the model's
                ``context_keyframes``, the sequence length it was trained on, else its maximum).
            use_cache: KV cache (``False`` recomputes the sequence every step; slower, same result).
            head_kwargs: Extra arguments of ``head.sample`` (e.g. ``num_inference_steps`` of a diffusion head).
            model_kwargs: Extra arguments of the model's ``generate`` (e.g. NOVA's ``set_steps``, its AR steps per
                frame, and ``motion_score``); an argument the model does not take is refused by name.
            output_type: ``"np"`` (``(B, T, H, W, C)`` in ``[0, 1]``), ``"pt"`` (``(B, C, T, H, W)`` in
                ``[-1, 1]``), ``"pil"``, or ``"latent"``: the tokens (or codes) only, without decoding
                (``frames`` is ``None``), as diffusers' ``output_type="latent"`` skips the VAE.
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
        check_count("num_videos_per_prompt", num_videos_per_prompt)
        check_count("num_keyframes", num_keyframes, optional=True)
        if num_keyframes is not None and num_keyframes > self.max_num_keyframes:
            raise ValueError(
                f"num_keyframes={num_keyframes} exceeds max_num_keyframes={self.max_num_keyframes} "
                "(set pipe.max_num_keyframes to allow longer videos)"
            )
        guidance_scale = check_number("guidance_scale", guidance_scale, optional=True)
        temperature = check_number("temperature", temperature, optional=True)
        settings = sampler_settings(
            self.video_tokenizer,
            {"num_inference_steps": 10, "guidance_scale": 1.0, "eta": 0.0, "guidance_rescale": 0.0},
            num_inference_steps=num_inference_steps,
            guidance_scale=decoder_guidance_scale,
            eta=eta,
            guidance_rescale=decoder_guidance_rescale,
        )
        num_inference_steps, decoder_guidance_scale = settings["num_inference_steps"], settings["guidance_scale"]
        eta, decoder_guidance_rescale = settings["eta"], settings["guidance_rescale"]
        check_count("num_inference_steps", num_inference_steps)
        decoder_guidance_scale = check_number("decoder_guidance_scale", decoder_guidance_scale)
        eta = check_number("eta", eta)
        decoder_guidance_rescale = check_number("decoder_guidance_rescale", decoder_guidance_rescale, high=1.0)
        check_count("context_keyframes", context_keyframes, optional=True)
        check_generator(generator)
        ids = self.encode_prompt(prompt, num_videos_per_prompt)
        if video is not None and prefix_tokens is not None:
            raise ValueError("give video or prefix_tokens, not both")
        source = "video" if video is not None else "prefix_tokens"
        if (video is not None or prefix_tokens is not None) and not self.model.supports_prefix:
            raise ValueError(
                f"{source}: this pipeline's {type(self.model).__name__} cannot continue a video or image (it "
                "generates every token level of the whole video at once); leave video and prefix_tokens None"
            )
        if video is not None:
            prefix_tokens = self.encode_video(video)
        if prefix_tokens is not None:
            if not isinstance(prefix_tokens, torch.Tensor):
                raise TypeError(f"prefix_tokens must be a torch.Tensor, got {type(prefix_tokens).__name__}")
            if prefix_tokens.ndim < 3:
                raise ValueError(
                    f"prefix_tokens must be (B, P, N, D) tokens or (B, P, N) codes, got {tuple(prefix_tokens.shape)}"
                )
            if num_keyframes is not None and prefix_tokens.shape[1] > num_keyframes:
                raise ValueError(
                    f"{source} gives {prefix_tokens.shape[1]} keyframes, more than num_keyframes={num_keyframes} "
                    "(num_keyframes counts the prefix)"
                )
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
            temperature = self.model.default_temperature
        if guidance_scale is None:
            guidance_scale = self.model.default_guidance_scale
        model_kwargs = self._check_model_kwargs(model_kwargs)
        try:
            if prefix_tokens is not None:
                self.model.check_tokens(prefix_tokens)
        except (ValueError, TypeError) as err:
            raise type(err)(f"{source}: {err}") from None
        tokens = self.model.generate(
            self.backbone,
            self.head,
            ids,
            num_keyframes,
            prefix=prefix_tokens,
            guidance_scale=guidance_scale,
            temperature=temperature,
            generator=generator,
            use_cache=use_cache,
            context_keyframes=context_keyframes,
            head_kwargs=head_kwargs,
            progress=progress,
            # The encoded null prompt, for models that read text-encoder states (classifier-free guidance).
            **({"null_text": self._encode_ids(self.model.null_text(1))} if self.text_encoder is not None else {}),
            **model_kwargs,
        )
        if output_type == "latent":
            return TextToVideoOutput(frames=None, tokens=tokens, fps=self.fps) if return_dict else (None, tokens)
        tok = self.video_tokenizer
        dec = tok.decode_options(
            num_inference_steps=num_inference_steps,
            guidance_scale=decoder_guidance_scale,
            eta=eta,
            generator=generator,
            progress=progress,
            guidance_rescale=decoder_guidance_rescale,  # decode_options drops it for decoders without the option
        )
        if isinstance(tokens, (list, tuple)):  # one code tensor per level (hierarchical tokenizers)
            # Codes the model skipped (HiTVideo §4) go to the tokenizer as masked, which replaces them by its own
            # strategy ("repeat" leaves the repeated codes as they are).
            masks = getattr(self.model, "last_token_masks", None)
            if masks is not None:
                dec = {**dec, "token_masks": [m.to(tok.device) for m in masks]}
            frames = tok.decode_codes([t.to(tok.device) for t in tokens], **dec).float()
        elif self.model.generates_codes:
            frames = tok.decode_codes(tokens.to(tok.device), **dec).float()
        else:
            frames = tok.decode(tokens.to(tok.device, tok.dtype), **dec).float()
        frames = to_output(frames, output_type)
        if not return_dict:
            return frames, tokens
        return TextToVideoOutput(frames=frames, tokens=tokens, fps=self.fps)


def _generate_options(model: Any) -> list[str]:
    """The keyword arguments a model's ``generate`` takes beyond those every pipeline passes."""
    import inspect

    common = {"backbone", "head", "text", "num_steps", "prefix", "guidance_scale", "temperature", "generator",
              "use_cache", "context_keyframes", "head_kwargs", "progress", "callback", "null_text", "self"}  # fmt: skip
    return [n for n in inspect.signature(model.generate).parameters if n not in common]


def load_default(**kwargs: Any) -> TextToVideo:
    """The embedded default pipeline (``dicode_tiny`` trained on Shapes, shipped in the package).

    Raises:
        FileNotFoundError: If the package was installed without its assets.
    """
    if not os.path.isfile(os.path.join(DEFAULT_MODEL_PATH, "model_index.json")):
        raise FileNotFoundError(f"the embedded default model is missing from {DEFAULT_MODEL_PATH}")
    return TextToVideo.from_pretrained(DEFAULT_MODEL_PATH, **kwargs)
