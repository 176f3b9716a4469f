"""Fréchet Video Distance (Unterthiner et al. 2019, FVD) with I3D or VideoMAE features, streamed in float64.

FVD is the Fréchet distance between Gaussians fitted to features of real and generated clips: by default
the time-averaged Kinetics-400 logits of I3D (Carreira & Zisserman 2017), 400-d. A
:class:`VideoFeatureExtractor` bundles the network with its preprocessing and records what decides the
number — network, weights (sha256 of the file), resize mode, size, frames seen, value range — in
``protocol``; keep it next to every FVD you report. Features are folded into
:class:`~vidtok.metrics.frechet.FeatureStats` batch by batch, so statistics of a real set can be saved once
(``FeatureStats.save``) and passed to :func:`fvd` again instead of the videos.

Numbers are comparable only at equal protocol and sample count: FVD is biased upwards by about ``O(D/N)``
(:class:`~vidtok.metrics.frechet.SmallSampleWarning` below 256 videos; use 2048, "FVD-2048"). Other choices
that change it: the I3D weights (tf.hub port vs ``i3d_pretrained_400.pt``), squash vs centre-crop resize
for non-square video, the covariance normalisation (``unbiased``), frames per clip and frame stride.

Example (random weights, so the value means nothing; real use: ``VideoFeatureExtractor.i3d()``)::

    extractor = VideoFeatureExtractor.i3d(InceptionI3d())
    real = torch.rand(4, 3, 10, 64, 64) * 2 - 1          # (B, C, T, H, W) in [-1, 1]
    fake = torch.rand(4, 3, 10, 64, 64) * 2 - 1
    fvd(real, fake, extractor, batch_size=2)             # SmallSampleWarning: 4 videos
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from vidtok.metrics.eval_card import file_digest
from vidtok.metrics.frechet import MIN_SAMPLES, FeatureStats, frechet_distance_from_stats
from vidtok.metrics.i3d import (
    I3D_MIN_FRAMES,
    I3D_SIZE,
    RESIZE_MODES,
    InceptionI3d,
    VideoMAEFeatures,
    load_i3d,
    preprocess_i3d,
)

__all__ = ["VideoFeatureExtractor", "feature_stats", "file_sha256", "fvd"]


#: sha256 hex digest of a file's bytes (read in chunks): :func:`~vidtok.metrics.eval_card.file_digest`, under the
#: name this module has always exported.
file_sha256 = file_digest


def _check_resize(resize: str) -> None:
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")


def _state_sha256(module: nn.Module) -> str:
    """sha256 of a module's state dict (names, dtypes, shapes, bytes): the identity of in-memory weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class VideoFeatureExtractor:
    """A video feature network with its preprocessing and a record of the protocol.

    Build one with :meth:`i3d` or :meth:`videomae`; the constructor takes any network for other features.

    Args:
        network: Maps preprocessed clips to ``(B, D)`` features.
        preprocess: Maps a batch of videos (model layout ``(B, C, T, H, W)`` in ``[-1, 1]``, or ``uint8``
            ``(B, T, H, W, C)``) to the network's input.
        name: A short label, e.g. ``"i3d-kinetics400"``.
        weights_digest: sha256 of the weights file (or of the state dict for in-memory weights).
        protocol: What decides the values (network, weights, resize, size, value range, ...); ``frames``
            (the clip lengths seen by :meth:`extract`) is added.
        device: Where the network runs.

    Attributes:
        dim: The feature dimension ``D`` (known after the first :meth:`extract`, or given by the factories).
    """

    def __init__(
        self,
        network: nn.Module,
        preprocess: Callable[[Any], torch.Tensor],
        *,
        name: str,
        weights_digest: str,
        protocol: dict[str, Any],
        device: str | torch.device = "cpu",
        dim: int | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.preprocess = preprocess
        self.name = name
        self.weights_digest = weights_digest
        self.dim = dim
        self._protocol = dict(protocol)
        self._frames: set[int] = set()

    @property
    def protocol(self) -> dict[str, Any]:
        """The protocol record, with ``frames``: the sorted clip lengths seen so far."""
        return {**self._protocol, "frames": sorted(self._frames), "weights_sha256": self.weights_digest}

    def __repr__(self) -> str:
        return f"VideoFeatureExtractor(name={self.name!r}, weights_sha256={self.weights_digest[:12]}…)"

    @classmethod
    def i3d(
        cls,
        source: str | os.PathLike | nn.Module | None = None,
        *,
        resize: str = "squash",
        device: str | torch.device = "cpu",
    ) -> VideoFeatureExtractor:
        """I3D Kinetics-400 logits (400-d) from a local file (see :func:`~vidtok.metrics.i3d.load_i3d`) or a module.

        Args:
            source: Weights file (state dict or TorchScript), ``None`` for ``$VIDTOK_I3D_PATH``, or an
                already built network (e.g. a random-init :class:`~vidtok.metrics.i3d.InceptionI3d` for tests,
                labelled ``in-memory``).
            resize: ``"squash"`` (TF original, StyleGAN-V, cd-fvd) or ``"center_crop"`` (VideoGPT, TATS,
                common_metrics_on_video_quality); see :func:`~vidtok.metrics.i3d.preprocess_i3d`.
            device: Where the network runs.
        """
        _check_resize(resize)
        if isinstance(source, nn.Module):
            network, digest, weights = source, _state_sha256(source), "in-memory"
        else:
            network = load_i3d(source)
            digest = file_digest(network.weights_path)
            weights = f"{os.path.basename(network.weights_path)} ({network.weights_format})"
        protocol = {
            "network": "I3D Inception-v1, Kinetics-400 logits averaged over time",
            "weights": weights,
            "resize": resize,
            "interpolation": "bilinear",
            "size": [I3D_SIZE, I3D_SIZE],
            "value_range": [-1.0, 1.0],
            "min_frames": I3D_MIN_FRAMES,
        }
        return cls(
            network,
            lambda videos: preprocess_i3d(videos, resize),
            name="i3d-kinetics400",
            weights_digest=digest,
            protocol=protocol,
            device=device,
            dim=getattr(network, "num_classes", None) if isinstance(network, InceptionI3d) else None,
        )

    @classmethod
    def videomae(
        cls, folder: str | os.PathLike, *, resize: str = "squash", device: str | torch.device = "cpu"
    ) -> VideoFeatureExtractor:
        """Mean-pooled VideoMAE features from a local transformers folder.

        See :class:`~vidtok.metrics.i3d.VideoMAEFeatures`; the digest is that of its weights file.
        """
        _check_resize(resize)
        network = VideoMAEFeatures(folder)
        weights = [n for n in ("model.safetensors", "pytorch_model.bin") if os.path.isfile(os.path.join(folder, n))]
        digest = file_digest(os.path.join(folder, weights[0])) if weights else _state_sha256(network)
        protocol = {
            "network": f"VideoMAE ({type(network.model).__name__}), mean-pooled last hidden state",
            "weights": os.path.abspath(os.fspath(folder)),
            "resize": resize,
            "interpolation": "bilinear",
            "size": [network.image_size, network.image_size],
            "value_range": [-1.0, 1.0],
            "normalization": {"mean": list(network.image_mean), "std": list(network.image_std)},
        }
        return cls(
            network,
            lambda videos: network.preprocess(videos, resize),
            name="videomae",
            weights_digest=digest,
            protocol=protocol,
            device=device,
            dim=int(network.model.config.hidden_size),
        )

    @torch.inference_mode()
    def extract(self, videos: Any, batch_size: int = 8) -> np.ndarray:
        """Features of a batch of videos, ``(B, D)`` float64, computed ``batch_size`` clips at a time.

        Args:
            videos: ``(B, C, T, H, W)`` float in ``[-1, 1]`` or ``uint8`` ``(B, T, H, W, C)`` (tensor or array).
            batch_size: Clips per network call.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(videos, torch.Tensor | np.ndarray) or videos.ndim != 5:
            shape = getattr(videos, "shape", type(videos).__name__)
            raise ValueError(f"videos must be a 5-d batch (B, C, T, H, W) or uint8 (B, T, H, W, C), got {shape}")
        out = []
        for start in range(0, len(videos), batch_size):
            x = self.preprocess(videos[start : start + batch_size])
            self._frames.add(int(x.shape[2]))
            y = self.network(x.to(self.device))
            if y.ndim != 2 or y.shape[0] != x.shape[0] or (self.dim is not None and y.shape[1] != self.dim):
                raise ValueError(f"{self.name} returned features of shape {tuple(y.shape)} for {x.shape[0]} clips")
            self.dim = int(y.shape[1])
            out.append(y.detach().to("cpu", torch.float64).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim or 0))


def _batches(videos: Any, what: str) -> Iterable[Any]:
    if isinstance(videos, torch.Tensor | np.ndarray):
        return (videos,)
    if isinstance(videos, Iterable) and not isinstance(videos, str | bytes):
        return videos
    raise TypeError(f"{what} must be a batch of videos, an iterable of batches or a FeatureStats, got {type(videos)}")


def feature_stats(
    videos: Any, extractor: VideoFeatureExtractor, *, batch_size: int = 8, stats: FeatureStats | None = None
) -> FeatureStats:
    """Stream a set of videos through ``extractor`` into float64 :class:`~vidtok.metrics.frechet.FeatureStats`.

    Args:
        videos: One batch (tensor/array, see :meth:`VideoFeatureExtractor.extract`) or an iterable of batches
            (e.g. a generator over a data loader or a sampler).
        extractor: The feature network and preprocessing.
        batch_size: Clips per network call.
        stats: Statistics to continue (e.g. loaded from a cache); new ones otherwise.
    """
    stats = FeatureStats() if stats is None else stats
    for batch in _batches(videos, "videos"):
        stats.update(extractor.extract(batch, batch_size))
    return stats


def fvd(
    real: Any,
    fake: Any,
    extractor: VideoFeatureExtractor,
    *,
    batch_size: int = 8,
    unbiased: bool = False,
) -> float:
    """Fréchet Video Distance between two sets of videos (Unterthiner et al. 2019).

    Args:
        real: Reference videos: a batch, an iterable of batches, or precomputed
            :class:`~vidtok.metrics.frechet.FeatureStats` (of the same extractor and protocol).
        fake: Generated videos, likewise.
        extractor: The feature network, e.g. ``VideoFeatureExtractor.i3d()``.
        batch_size: Clips per network call.
        unbiased: Covariances ÷(N−1) (VideoGPT, ``np.cov``) instead of ÷N (StyleGAN-V, cd-fvd).

    Warns:
        SmallSampleWarning: Either set has fewer than 256 videos.

    Returns:
        FVD, ``>= 0``; 0 for identical feature sets. Order of videos within a set does not matter.
    """
    sets = []
    for name, videos in (("real", real), ("fake", fake)):
        if isinstance(videos, FeatureStats):
            stats = videos
        else:
            stats = feature_stats(_batches(videos, name), extractor, batch_size=batch_size)
        if stats.num == 0:
            raise ValueError(f"{name} holds no videos")
        sets.append(stats)
    return frechet_distance_from_stats(*sets, unbiased=unbiased, warn_below=MIN_SAMPLES)
