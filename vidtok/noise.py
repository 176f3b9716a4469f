"""Generator-aware random draws shared by every component (one implementation, used everywhere).

Noise is drawn on the *generator's* device and then moved to the target device, as diffusers'
``randn_tensor`` does: a CPU ``torch.Generator`` then gives the same numbers whatever device the model runs
on, so a seed reproduces a video on CPU and GPU alike. With ``generator=None`` the global RNG of the target
device is used.

This module imports only torch (it is a lower layer: heads, tokenizers, models and pipelines import it).
"""

from __future__ import annotations

import torch

__all__ = ["gumbel", "rand", "randint", "randn"]


def _source_device(generator: torch.Generator | None, device: torch.device | str) -> torch.device:
    return torch.device(device) if generator is None else generator.device


def randn(
    shape: tuple[int, ...],
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise of ``shape`` drawn on the generator's device, then moved to ``device``."""
    # Not diffusers' randn_tensor: it refuses a CUDA generator for a CPU tensor and logs on every CPU-generator
    # call to a GPU model, and vidtok draws noise per token (thousands of calls per video).
    return torch.randn(shape, generator=generator, device=_source_device(generator, device), dtype=dtype).to(device)


def rand(
    shape: tuple[int, ...],
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Uniform ``[0, 1)`` noise of ``shape`` drawn on the generator's device, then moved to ``device``."""
    return torch.rand(shape, generator=generator, device=_source_device(generator, device), dtype=dtype).to(device)


def randint(
    high: int, shape: tuple[int, ...], generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Integers uniform in ``[0, high)`` of ``shape`` (int64), drawn on the generator's device, then moved."""
    return torch.randint(0, high, shape, generator=generator, device=_source_device(generator, device)).to(device)


def gumbel(
    shape: tuple[int, ...], generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Standard Gumbel noise in fp32: ``argmax(logits + gumbel)`` draws from ``softmax(logits)``."""
    uniform = torch.rand(shape, generator=generator, device=_source_device(generator, device), dtype=torch.float32)
    # rand is in [0, 1): keep log(u) finite at u = 0 and -log(-log u) finite near u = 1.
    uniform = uniform.clamp_(min=torch.finfo(torch.float32).tiny, max=1.0 - torch.finfo(torch.float32).eps)
    return (-torch.log(-torch.log(uniform))).to(device)
