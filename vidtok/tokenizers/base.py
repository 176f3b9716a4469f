"""The video tokenizer interface and the ``TOKENIZERS`` registry.

A tokenizer turns a video ``(B, C, T, H, W)`` in ``[-1, 1]`` into few tokens and back (ARCHITECTURE §4):
continuous tokens are ``(B, S, N, D)``, discrete codes share the leading layout. Concrete tokenizers live
one per file in this package, each registered under its file's name.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import torch

from vidtok.modeling_utils import Component
from vidtok.outputs import TokenizerOutput
from vidtok.registry import Registry

__all__ = ["TOKENIZERS", "VideoTokenizer", "check_video"]


class VideoTokenizer(Component, abc.ABC):
    """Base class of video tokenizers.

    Subclasses implement :meth:`encode` and :meth:`decode` and describe their compression through
    :attr:`temporal_compression`, :attr:`spatial_compression`, :attr:`tokens_per_step` and :attr:`token_dim`.
    Discrete tokenizers also set :attr:`codebook_size` (per level for hierarchical ones).
    """

    #: Size of the code vocabulary for discrete tokenizers (``None`` for continuous ones).
    codebook_size: int | list[int] | None = None

    #: Config keys that change only decoding or training, never the tokens :meth:`encode` returns. A token cache
    #: stays valid for a tokenizer that differs from its builder only in these (e.g. a decoder-only fine-tune).
    decode_only_config: ClassVar[frozenset[str]] = frozenset()

    #: ``state_dict`` prefixes of submodules :meth:`encode` never uses, left out of the token weights digest
    #: (:func:`vidtok.data.token_cache.tokenizer_provenance`).
    decode_only_modules: ClassVar[tuple[str, ...]] = ()

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

    @abc.abstractmethod
    def encode(self, video: torch.Tensor, **kwargs: Any) -> TokenizerOutput:
        """Encode a video ``(B, C, T, H, W)`` in ``[-1, 1]`` into tokens."""

    @abc.abstractmethod
    def decode(self, tokens: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Decode tokens back into a video ``(B, C, T, H, W)`` in ``[-1, 1]``."""

    @property
    @abc.abstractmethod
    def temporal_compression(self) -> int:
        """Input frames per token step (the keyframe stride for deep tokens)."""

    @property
    @abc.abstractmethod
    def spatial_compression(self) -> int | None:
        """Pixels per token side, or ``None`` when tokens have no spatial layout (deep tokens)."""

    @property
    @abc.abstractmethod
    def token_dim(self) -> int:
        """Channels ``D`` of one continuous token."""

    @abc.abstractmethod
    def tokens_per_step(self, height: int, width: int) -> int:
        """Tokens ``N`` produced per token step for frames of the given size."""

    def tokens_per_second(self, fps: float, height: int, width: int) -> float:
        """Tokens per second of video at ``fps`` frames per second and the given frame size."""
        return fps / self.temporal_compression * self.tokens_per_step(height, width)

    def bits_per_pixel(self, num_frames: int, height: int, width: int) -> float:
        """Bits per pixel of the discrete codes (HiTVideo's bpp), summed over hierarchy levels.

        Raises:
            TypeError: For continuous tokenizers, which have no codebook.
        """
        if self.codebook_size is None:
            raise TypeError(f"{type(self).__name__} is continuous: bits per pixel is defined for discrete codes only")
        sizes = self.codebook_size if isinstance(self.codebook_size, list) else [self.codebook_size]
        steps = math.ceil(num_frames / self.temporal_compression)
        tokens = steps * self.tokens_per_step(height, width)
        return tokens * sum(math.log2(s) for s in sizes) / (num_frames * height * width)


def check_video(video: Any, *, name: str = "video", channels: int | None = 3) -> torch.Tensor:
    """Validate a model-side video tensor and return it.

    Args:
        video: Expected ``(B, C, T, H, W)`` floating tensor in ``[-1, 1]``.
        name: Name used in error messages.
        channels: Required ``C`` (``None`` accepts any).

    Raises:
        TypeError: If it is not a floating-point tensor.
        ValueError: On a wrong number of dimensions or channels, non-finite values or values outside
            ``[-1, 1]`` (beyond a small tolerance).
    """
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (B, C, T, H, W) in [-1, 1], got {type(video).__name__}")
    if not video.is_floating_point():
        raise TypeError(
            f"{name} must be floating point in [-1, 1], got dtype {video.dtype}; "
            "use vidtok.io.frames_to_tensor to convert uint8 frames"
        )
    if video.ndim != 5:
        raise ValueError(f"{name} must be (B, C, T, H, W), got shape {tuple(video.shape)}")
    if channels is not None and video.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channels in dim 1 (B, C, T, H, W), got shape {tuple(video.shape)}"
        )
    if not torch.isfinite(video).all():
        raise ValueError(f"{name} contains NaN or inf")
    lo, hi = video.min().item(), video.max().item()
    if lo < -1.001 or hi > 1.001:
        raise ValueError(f"{name} values must lie in [-1, 1], found [{lo:.3g}, {hi:.3g}]")
    return video


TOKENIZERS: Registry[type[VideoTokenizer]] = Registry("tokenizer", base=VideoTokenizer, package="vidtok.tokenizers")
