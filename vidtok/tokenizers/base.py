"""The video tokenizer interface and the ``TOKENIZERS`` registry.

A tokenizer turns a video ``(B, C, T, H, W)`` in ``[-1, 1]`` into few tokens and back (ARCHITECTURE §4):
continuous tokens are ``(B, S, N, D)``, discrete codes share the leading layout. Concrete tokenizers live
one per file in this package, each registered under its file's name.
"""

from __future__ import annotations

import abc
from typing import Any

import torch

from vidtok.io import check_video
from vidtok.modeling_utils import Component
from vidtok.outputs import TokenizerOutput, TokenLevel
from vidtok.registry import Registry

__all__ = ["TOKENIZERS", "TokenLevel", "VideoTokenizer", "check_video"]


class VideoTokenizer(Component, abc.ABC):
    """Base class of video tokenizers (ARCHITECTURE §4).

    The one thing a subclass describes is :meth:`token_layout`: per level (coarsest first) the token steps,
    tokens per step, channels, codebook size (``None`` if continuous) and frames per step of what
    :meth:`encode` returns. Everything else derives from it — :attr:`temporal_compression`,
    :meth:`tokens_per_step`, :attr:`token_dim`, :attr:`codebook_size`, :attr:`is_discrete`,
    :meth:`tokens_per_second` and :meth:`bits_per_pixel` — and AR models check their compatibility against it.

    Subclasses implement :meth:`token_layout`, :meth:`encode`, :meth:`decode` and :meth:`training_step`;
    discrete tokenizers also :meth:`codes_to_tokens` (then :meth:`decode_codes` works). A tokenizer with a
    native frame size sets ``sample_size`` in its config (an int or ``[H, W]``); the valid frame counts are
    ``1 + k * temporal_compression`` unless :meth:`valid_num_frames` says otherwise.
    """

    def with_decoder_config(self, **changes: Any) -> tuple[VideoTokenizer, list[str]]:
        """A copy with another decoder: same tokens, new decoder configuration.

        The way to give a tokenizer that is already in use (token caches, video LMs trained on its tokens) a
        different decoder: the copy's weights outside :attr:`decode_only_modules` are this tokenizer's, so
        :meth:`encode` returns bit-identical tokens; decoder weights whose name and shape still match are
        copied too (a wider sub-network starts fresh, the rest keeps what it learned); everything else is
        newly initialized and listed.

        Args:
            **changes: Keys of :attr:`decode_only_config`. A dict value is merged into the current dict (so
                ``denoiser_kwargs={"spatial_dim": 256}`` changes only that entry).

        Returns:
            ``(tokenizer, reinitialized)``: the copy (same device and dtype, train/eval mode of this one) and
            the ``state_dict`` names it did not copy.

        Raises:
            ValueError: If a key could change the tokens (is not in :attr:`decode_only_config`).
        """
        bad = sorted(set(changes) - set(self.decode_only_config))
        if bad:
            raise ValueError(
                f"with_decoder_config changes only decoder keys; {bad} could change the tokens "
                f"(decoder keys: {sorted(self.decode_only_config)})"
            )
        config = {k: v for k, v in self.config.items() if not k.startswith("_")}
        for key, value in changes.items():
            current = config.get(key)
            config[key] = {**current, **value} if isinstance(value, dict) and isinstance(current, dict) else value
        param = next(self.parameters(), None)
        new = type(self)(**config)
        if param is not None and (param.device, param.dtype) != (torch.device("cpu"), torch.float32):
            new = new.to(device=param.device, dtype=param.dtype)
        old = self.state_dict()
        state = new.state_dict()
        reinitialized = []
        for name, tensor in state.items():
            if name in old and old[name].shape == tensor.shape:
                state[name] = old[name]
            elif name.startswith(self.decode_only_modules):
                reinitialized.append(name)
            else:  # a token-making weight that no longer fits: the tokens would change
                raise RuntimeError(f"with_decoder_config: token weight {name!r} does not carry over")
        new.load_state_dict(state, strict=True)
        return new.train(self.training), reinitialized

    # ------------------------------------------------------------------ the contract
    @abc.abstractmethod
    def token_layout(self, num_frames: int, height: int, width: int) -> list[TokenLevel]:
        """What :meth:`encode` returns for a ``(B, C, num_frames, height, width)`` video, one entry per level.

        Levels are listed coarsest first; a single-level tokenizer returns a one-element list.
        """

    @abc.abstractmethod
    def encode(self, video: torch.Tensor, **kwargs: Any) -> TokenizerOutput:
        """Encode a video ``(B, C, T, H, W)`` in ``[-1, 1]`` into tokens (and codes, for discrete tokenizers)."""

    @abc.abstractmethod
    def decode(self, tokens: Any, **kwargs: Any) -> torch.Tensor:
        """Decode tokens (a tensor, or one per level coarsest first) into a video ``(B, C, T, H, W)`` in ``[-1, 1]``."""

    @abc.abstractmethod
    def training_step(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        """One training step's losses for a batch ``{"video": (B, C, T, H, W), ...}``: ``{"loss": scalar, ...}``."""

    def codes_to_tokens(self, indices: torch.Tensor, level: int = 0) -> torch.Tensor:
        """Integer codes ``(B, S, N)`` of ``level`` → the quantized tokens ``(B, S, N, D)`` :meth:`decode` reads.

        Raises:
            TypeError: For continuous tokenizers (and discrete ones that do not implement it).
        """
        raise TypeError(f"{type(self).__name__} has no discrete codes: codes_to_tokens is for discrete tokenizers")

    def decode_codes(self, indices: Any, **kwargs: Any) -> torch.Tensor:
        """Decode integer codes (a tensor, or one per level coarsest first) into a video.

        Raises:
            TypeError: For continuous tokenizers.
        """
        if not self.is_discrete:
            raise TypeError(f"{type(self).__name__} is continuous: decode its tokens with decode(), not codes")
        if isinstance(indices, (list, tuple)):
            return self.decode([self.codes_to_tokens(codes, level) for level, codes in enumerate(indices)], **kwargs)
        return self.decode(self.codes_to_tokens(indices, 0), **kwargs)

    def decode_options(self, **options: Any) -> dict[str, Any]:
        """The subset of decoder settings (steps, guidance, eta, generator, ...) this tokenizer's ``decode`` takes.

        Pipelines pass every decoder setting they have through this, so a diffusion decoder gets its sampler
        options and a plain decoder is not handed arguments it does not know.
        """
        import inspect

        params = inspect.signature(self.decode).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return options
        return {k: v for k, v in options.items() if k in params}

    @property
    def decode_defaults(self) -> dict[str, Any]:
        """Sampler settings saved with the tokenizer, used by pipelines when their caller gives none.

        Config ``decode_defaults`` (e.g. a converted release's DDIM steps and guidance); ``{}`` if it has none.
        """
        return dict(self.config.get("decode_defaults") or {})

    @property
    def training_domain(self) -> str | None:
        """What the tokenizer was trained on (config ``training_domain``, e.g. ``"shapes"``), if recorded."""
        return self.config.get("training_domain")

    # ------------------------------------------------------------------ sizes
    @property
    def sample_size(self) -> tuple[int, int] | None:
        """The native frame size ``(H, W)`` (config ``sample_size``), or ``None`` when any size works."""
        size = self.config.get("sample_size")
        if size is None:
            return None
        return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def valid_num_frames(self, num_frames: int) -> bool:
        """Whether a video of ``num_frames`` frames tokenizes without leftover frames (``1 + k f``)."""
        return num_frames >= 1 and (num_frames - 1) % self.temporal_compression == 0

    def num_frames_for(self, steps: int) -> int:
        """Frames that ``steps`` token steps decode to: ``(steps - 1) f + 1``."""
        return (int(steps) - 1) * self.temporal_compression + 1

    # ------------------------------------------------------------------ derived from the layout
    def reference_layout(self) -> list[TokenLevel]:
        """The layout of one frame at the native size (64 × 64 when any size works).

        The size-independent figures (stride, channels, codebook) and model compatibility checks read it.
        """
        return self.token_layout(1, *(self.sample_size or (64, 64)))

    @property
    def temporal_compression(self) -> int:
        """Input frames per token step of the finest level (the keyframe stride for deep tokens)."""
        return self.reference_layout()[-1].frames_per_step

    @property
    def token_dim(self) -> int:
        """Channels ``D`` of one token of the finest level."""
        return self.reference_layout()[-1].dim

    @property
    def codebook_size(self) -> int | list[int] | None:
        """Code vocabulary size (a list, coarsest first, for several levels); ``None`` if continuous."""
        sizes = [level.codebook_size for level in self.reference_layout()]
        if all(s is None for s in sizes):
            return None
        return sizes[0] if len(sizes) == 1 else sizes

    @property
    def is_discrete(self) -> bool:
        """Whether :meth:`encode` returns integer codes (``indices``)."""
        return self.codebook_size is not None

    def tokens_per_step(self, height: int, width: int) -> int:
        """Tokens ``N`` per step of the finest level for frames of the given size."""
        return self.token_layout(1, height, width)[-1].tokens

    def tokens_per_second(self, fps: float, height: int, width: int) -> float:
        """Tokens per second of video at ``fps`` (summed over levels; the first-frame step amortized away)."""
        return sum(fps / lv.frames_per_step * lv.tokens for lv in self.token_layout(1, height, width))

    def bits_per_pixel(self, num_frames: int, height: int, width: int) -> float:
        """Bits per pixel of the discrete codes (HiTVideo's bpp), summed over hierarchy levels.

        Raises:
            TypeError: For continuous tokenizers, which have no codebook.
        """
        layout = self.token_layout(num_frames, height, width)
        if not all(level.is_discrete for level in layout):
            raise TypeError(f"{type(self).__name__} is continuous: bits per pixel is defined for discrete codes only")
        bits = sum(level.steps * level.tokens * level.bits_per_token for level in layout)
        return bits / (num_frames * height * width)


TOKENIZERS: Registry[type[VideoTokenizer]] = Registry("tokenizer", base=VideoTokenizer, package="vidtok.tokenizers")
