"""Image to video: prefill the first keyframe's tokens from an image (zero-shot, as in NOVA §4.2).

Deep tokens encode images and videos alike (an image is one keyframe, DiCoDe §3.1), so a text-to-video
model animates an image without further training: the image's tokens are prefilled as keyframe 0 and the
language model continues from there. ``ImageToVideo`` is [`TextToVideo`][vidtok.pipelines.text_to_video.TextToVideo]
with the image as the first argument; the prompt is optional (the null prompt when empty).

Example:
    >>> import torch
    >>> from vidtok.pipelines.image_to_video import ImageToVideo
    >>> from vidtok.recipes.dicode import dicode_tiny
    >>> pipe = ImageToVideo.from_recipe(dicode_tiny(tiny=True))
    >>> image = torch.rand(1, 3, 1, 16, 16) * 2 - 1
    >>> pipe(image, "a red circle moves right", num_keyframes=2, num_inference_steps=2, progress=False).frames.shape
    (1, 5, 16, 16, 3)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' loader looks it up here)

from vidtok.pipelines.pipeline_output import TextToVideoOutput
from vidtok.pipelines.text_to_video import TextToVideo

__all__ = ["ImageToVideo"]


class ImageToVideo(TextToVideo):
    """Animate an image: its deep tokens are keyframe 0, the language model continues (NOVA §4.2 zero-shot).

    Same components as [`TextToVideo`][vidtok.pipelines.text_to_video.TextToVideo]; the prompt may be
    empty (the null prompt).
    """

    allow_empty_prompt = True

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self, image: Any, prompt: str | list[str] = "", num_keyframes: int | None = None, **kwargs: Any
    ) -> TextToVideoOutput | tuple:
        """Generate videos that start at ``image``.

        Args:
            image: ``(B, C, 1, H, W)`` / ``(B, C, H, W)`` tensor in ``[-1, 1]``, a ``(H, W, C)`` array or a PIL
                image (resized by the caller to the tokenizer's size).
            prompt: Optional text (one per image, or one for all).
            num_keyframes: Keyframes including the image's (default 2).
            **kwargs: As [`TextToVideo.__call__`][vidtok.pipelines.text_to_video.TextToVideo.__call__].
        """
        if "video" in kwargs or "prefix_tokens" in kwargs:
            raise TypeError("ImageToVideo takes the image as its first argument, not video/prefix_tokens")
        if isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[1] in (1, 3):
            image = image[:, :, None]  # (B, C, H, W) -> one frame
        elif hasattr(image, "size") and hasattr(image, "mode") and not hasattr(image, "shape"):  # a PIL image
            image = np.array(image.convert("RGB"))[None]
        elif isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[-1] in (1, 3, 4):
            image = image[None]  # (H, W, C) -> one frame (T, H, W, C)
        elif not isinstance(image, (torch.Tensor, np.ndarray, list)):
            raise TypeError(
                f"image must be a tensor (B, C, H, W) / (B, C, 1, H, W), an (H, W, C) array or a PIL image, "
                f"got {type(image).__name__}"
            )
        tokens = self.encode_video(image)[:, :1]
        if isinstance(prompt, (list, tuple)) and len(prompt) == 1:
            prompt = prompt[0]  # one prompt for all images, as a string is
        prompts = [prompt] * tokens.shape[0] if isinstance(prompt, str) else prompt
        return super().__call__(prompts, num_keyframes=num_keyframes, prefix_tokens=tokens, **kwargs)
