"""Shapes FD: a Fréchet distance in the feature space of a small video network trained on the Shapes world.

FVD needs I3D weights that cannot be downloaded where vidtok is developed, and I3D was trained on natural
video anyway. On the synthetic Shapes world the TF-GAN recipe applies instead (Balaji et al. 2019, "TFGAN: A
Lightweight Library for Generative Adversarial Networks", whose ``classifier_metrics`` compute FID and the
Inception score in the feature space of a classifier trained on the data being generated, as for MNIST): a
small 3-D convolutional network is trained to tell the attributes of Shapes videos apart, and its pooled
128-d features are the space in which real and generated videos are compared.

* [`ShapesFeatureNet`][vidtok.metrics.shapes_features.ShapesFeatureNet]: four 3-D convolutions (GroupNorm,
  SiLU, spatial stride 2 three times) → mean and max pooling over time and space → a linear layer to 128-d
  **features** → linear multi-label **heads**: which colors, shapes, sizes and motions appear in the video.
  Multi-label (one bit per value, binary cross-entropy) because which object a two-object caption names
  first cannot be read from pixels; for a one-object video the arg-max of each head is that object's
  attribute. Trained on the Shapes training split only (``examples/train_shapes_features.py``): the
  held-out (color, shape) pairs are never seen, and the heads' accuracy on them checks that the features
  carry each attribute separately.
* [`shapes_frechet_distance`][vidtok.metrics.shapes_features.shapes_frechet_distance]: the Fréchet distance
  between Gaussians fitted to the features of two sets of videos (float64,
  [`frechet_distance`][vidtok.metrics.frechet.frechet_distance]).
* [`load_shapes_features`][vidtok.metrics.shapes_features.load_shapes_features]: the shipped network
  (``vidtok/assets/shapes_features``, fp16 weights, loaded as float32).

**Shapes FD is not FVD.** Its numbers are only comparable with other Shapes FD numbers computed with the same
shipped network, the same number of videos, frames and resolution: the plug-in estimate is biased upwards by
about ``O(D / N)`` (``D = 128``), so a set of 60 videos has a floor well above 0 even against itself drawn
again (report the floor: the distance between two renderings of the same captions). It measures the Shapes
world only; on other video it is meaningless.

Input: model-layout videos ``(B, 3, T, H, W)`` in ``[-1, 1]``, any ``T >= 2`` (time is pooled); frames of
another size than the network's ``resolution`` (32) are resized (bilinear, antialiased).

Example:
    >>> import torch
    >>> net = ShapesFeatureNet(**ShapesFeatureNet.tiny_config()).eval()
    >>> net.features(torch.zeros(2, 3, 5, 32, 32)).shape
    torch.Size([2, 16])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import nn

from vidtok.assets import ASSETS_DIR, shipped_path
from vidtok.modeling_utils import Component
from vidtok.shapes.grammar import COLORS, SHAPES, SIZES

__all__ = [
    "ATTRIBUTE_CLASSES",
    "MOTION_CLASSES",
    "SHAPES_FEATURES_NAME",
    "ShapesFeatureNet",
    "attribute_targets",
    "load_shapes_features",
    "shapes_features",
    "shapes_frechet_distance",
    "split_logits",
]

#: The shipped folder's name (``shipped_path("shapes_features")``, ``vidtok/assets/shapes_features``).
SHAPES_FEATURES_NAME = "shapes_features"

#: The motions the heads tell apart: the short-clip motions of the Shapes data (``bounces`` needs 32+ frames).
MOTION_CLASSES: tuple[str, ...] = ("left", "right", "up", "down", "still")

#: Attribute -> the values its head has one output for, in output order.
ATTRIBUTE_CLASSES: dict[str, tuple[str, ...]] = {
    "color": tuple(COLORS),
    "shape": tuple(SHAPES),
    "size": tuple(SIZES),
    "motion": MOTION_CLASSES,
}


def attribute_targets(objects_per_video: Sequence[Sequence[Any]]) -> torch.Tensor:
    """Multi-hot targets of the heads: which colors, shapes, sizes and motions each video's objects have.

    Args:
        objects_per_video: For each video, its [`ShapeObject`][vidtok.shapes.grammar.ShapeObject]s (e.g.
            ``parse_caption(caption)``); attributes left unset (``None``) or outside the heads' classes
            (``bounces``) set no bit.

    Returns:
        ``(B, 17)`` float: color (7), shape (3), size (2), motion (5) bits, in
        ``ATTRIBUTE_CLASSES`` order.
    """
    width = sum(len(v) for v in ATTRIBUTE_CLASSES.values())
    out = torch.zeros(len(objects_per_video), width)
    for i, objects in enumerate(objects_per_video):
        offset = 0
        for attr, values in ATTRIBUTE_CLASSES.items():
            for obj in objects:
                value = getattr(obj, attr)
                if value in values:
                    out[i, offset + values.index(value)] = 1.0
            offset += len(values)
    return out


class ShapesFeatureNet(Component):
    """A small 3-D conv network on Shapes videos: 128-d pooled features and multi-label attribute heads.

    The feature extractor of the Shapes FD, after TF-GAN's classifier metrics (Balaji et al. 2019, TFGAN;
    the Fréchet distance of Heusel et al. 2017, arXiv:1706.08500, §3, and Unterthiner et al. 2019's FVD,
    arXiv:1812.01717, in a feature space trained on the data itself). Each block is a ``3×3×3`` convolution
    (spatial stride 2 in the first three), GroupNorm and SiLU; the last block's map is pooled by its mean and
    its maximum over time and space, and a linear layer maps both to the features. Group norm (not batch
    norm) keeps a video's features independent of its batch. The heads are one linear layer on the features.

    Args:
        channels: Output channels of each convolution block.
        feature_dim: Size of the features.
        resolution: Frame side the network runs at; other sizes are resized to it.
        groups: GroupNorm groups (at most the block's channels).
    """

    @register_to_config
    def __init__(
        self,
        *,
        channels: Sequence[int] = (16, 32, 64, 64),
        feature_dim: int = 128,
        resolution: int = 32,
        groups: int = 8,
    ) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels or min(channels) < 1 or feature_dim < 1 or resolution < 8 or groups < 1:
            raise ValueError(
                f"ShapesFeatureNet: channels must be positive, feature_dim >= 1, resolution >= 8 and groups >= 1; got "
                f"channels={channels}, feature_dim={feature_dim}, resolution={resolution}, groups={groups}"
            )
        blocks: list[nn.Module] = []
        previous = 3
        for i, width in enumerate(channels):
            stride = (1, 2, 2) if i < 3 else (1, 1, 1)
            blocks += [
                nn.Conv3d(previous, width, kernel_size=3, stride=stride, padding=1),
                nn.GroupNorm(_groups(width, groups), width),
                nn.SiLU(),
            ]
            previous = width
        self.blocks = nn.Sequential(*blocks)
        self.project = nn.Linear(2 * previous, feature_dim)
        self.heads = nn.Linear(feature_dim, sum(len(v) for v in ATTRIBUTE_CLASSES.values()))

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """A network with 8/8 channels and 16-d features (unit tests)."""
        return {"channels": [8, 8], "feature_dim": 16, "resolution": 32, "groups": 4}

    @property
    def feature_dim(self) -> int:
        """Size of the features."""
        return int(self.config.feature_dim)

    # ------------------------------------------------------------------ inputs
    def prepare(self, videos: torch.Tensor) -> torch.Tensor:
        """Check model-layout videos ``(B, 3, T, H, W)`` and resize their frames to ``resolution``.

        Raises:
            TypeError: Not a floating-point tensor.
            ValueError: Another layout, fewer than 2 frames, or values far outside ``[-1, 1]``.
        """
        if not isinstance(videos, torch.Tensor) or not videos.is_floating_point():
            kind = type(videos).__name__ if not isinstance(videos, torch.Tensor) else f"{videos.dtype} tensor"
            raise TypeError(
                f"ShapesFeatureNet: videos must be a float tensor (B, 3, T, H, W) in [-1, 1] (see "
                f"vidtok.metrics.shapes_evaluation.to_model_video), got a {kind}"
            )
        if videos.ndim != 5 or videos.shape[1] != 3:
            raise ValueError(
                f"ShapesFeatureNet: videos must have the model layout (B, 3, T, H, W), got shape {tuple(videos.shape)}"
            )
        if videos.shape[2] < 2:
            raise ValueError(f"ShapesFeatureNet: videos need at least 2 frames (motion), got T={videos.shape[2]}")
        if videos.numel() and (videos.min() < -1.5 or videos.max() > 1.5):
            raise ValueError(
                f"ShapesFeatureNet: video values must lie in [-1, 1], got [{float(videos.min()):.3g}, "
                f"{float(videos.max()):.3g}] (uint8 frames? convert with to_model_video)"
            )
        param = next(self.parameters())
        videos = videos.to(param.device, param.dtype)
        b, c, t, h, w = videos.shape
        side = int(self.config.resolution)
        if (h, w) != (side, side):
            frames = videos.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
            frames = F.interpolate(frames, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
            videos = frames.reshape(b, t, c, side, side).permute(0, 2, 1, 3, 4)
        return videos.contiguous()

    # ------------------------------------------------------------------ forward
    def forward(self, videos: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features and head logits: ``{"features": (B, feature_dim), "logits": (B, 17)}``."""
        x = self.blocks(self.prepare(videos))
        pooled = torch.cat([x.mean(dim=(2, 3, 4)), x.amax(dim=(2, 3, 4))], dim=1)
        features = self.project(pooled)
        return {"features": features, "logits": self.heads(features)}

    @torch.no_grad()
    def features(self, videos: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
        """The pooled features ``(B, feature_dim)`` (float32, CPU) of model-layout videos, in batches."""
        out = [self(videos[lo : lo + batch_size])["features"].float().cpu() for lo in range(0, len(videos), batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.feature_dim)

    @torch.no_grad()
    def attribute_logits(self, videos: torch.Tensor, *, batch_size: int = 64) -> dict[str, torch.Tensor]:
        """Each head's logits: ``{"color": (B, 7), "shape": (B, 3), "size": (B, 2), "motion": (B, 5)}``."""
        logits = torch.cat(
            [self(videos[lo : lo + batch_size])["logits"].float().cpu() for lo in range(0, len(videos), batch_size)]
        )
        return split_logits(logits)

    def classify(self, videos: torch.Tensor, *, batch_size: int = 64) -> list[dict[str, str]]:
        """The most likely value of each attribute per video (the object's, for one-object videos)."""
        logits = self.attribute_logits(videos, batch_size=batch_size)
        picks = {attr: value.argmax(dim=1).tolist() for attr, value in logits.items()}
        return [
            {attr: ATTRIBUTE_CLASSES[attr][picks[attr][i]] for attr in ATTRIBUTE_CLASSES} for i in range(len(videos))
        ]


def split_logits(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cut ``(B, 17)`` head outputs into one block per attribute."""
    out, offset = {}, 0
    for attr, values in ATTRIBUTE_CLASSES.items():
        out[attr] = logits[:, offset : offset + len(values)]
        offset += len(values)
    return out


def _groups(channels: int, groups: int) -> int:
    """The largest divisor of ``channels`` that is at most ``groups``."""
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return g


def _shipped_folder() -> str:
    try:
        return shipped_path(SHAPES_FEATURES_NAME, check=False)
    except KeyError:  # an installation whose asset table predates the feature network
        return os.path.join(ASSETS_DIR, SHAPES_FEATURES_NAME)


def load_shapes_features(path: str | os.PathLike | None = None, **kwargs: Any) -> ShapesFeatureNet:
    """The shipped Shapes feature network (float32, eval mode), or one saved at ``path``.

    Args:
        path: A folder written by ``save_pretrained`` (``None``: the shipped ``vidtok/assets/shapes_features``).
        **kwargs: Forwarded to :meth:`ShapesFeatureNet.from_pretrained`.

    Raises:
        FileNotFoundError: The folder or its ``config.json`` is missing (for the shipped one: the package was
            installed without its assets, or ``examples/train_shapes_features.py`` has not written them).
    """
    folder = _shipped_folder() if path is None else os.fspath(path)
    if not os.path.isfile(os.path.join(folder, "config.json")):
        what = "the shipped Shapes feature network" if path is None else "a Shapes feature network"
        raise FileNotFoundError(
            f"{what} is missing: no config.json in {folder} (train one with examples/train_shapes_features.py)"
        )
    kwargs.setdefault("torch_dtype", torch.float32)
    return ShapesFeatureNet.from_pretrained(folder, **kwargs).float().eval()


def _as_videos(videos: Any) -> torch.Tensor:
    """Model-layout float videos: a float tensor ``(B, 3, T, H, W)`` as is, ``uint8`` ``(B, T, H, W, 3)`` converted."""
    if isinstance(videos, np.ndarray):
        if videos.dtype != np.uint8:
            raise TypeError(
                f"videos given as a NumPy array must be uint8 frames (B, T, H, W, 3), got dtype {videos.dtype}; "
                "pass float videos as a tensor (B, 3, T, H, W) in [-1, 1]"
            )
        if videos.ndim != 5 or videos.shape[-1] != 3:
            raise ValueError(f"uint8 videos must have shape (B, T, H, W, 3), got {videos.shape}")
        return torch.from_numpy(videos.transpose(0, 4, 1, 2, 3).copy()).float().div(127.5).sub(1.0)
    if isinstance(videos, torch.Tensor) and videos.dtype == torch.uint8:
        raise TypeError("uint8 videos must be a NumPy array (B, T, H, W, 3); a tensor must be float in [-1, 1]")
    return videos


def shapes_features(videos: Any, net: ShapesFeatureNet | None = None, *, batch_size: int = 64) -> np.ndarray:
    """Shapes features ``(B, D)`` (float64 NumPy) of videos.

    Args:
        videos: Model-layout float videos ``(B, 3, T, H, W)`` in ``[-1, 1]``, or ``uint8`` frames
            ``(B, T, H, W, 3)`` as NumPy (what :func:`~vidtok.metrics.shapes_evaluation.render_clips` returns).
        net: The feature network (``None``: the shipped one).
        batch_size: Videos per forward pass.
    """
    net = load_shapes_features() if net is None else net
    return net.features(_as_videos(videos), batch_size=batch_size).double().numpy()


def shapes_frechet_distance(
    real_videos: Any, fake_videos: Any, net: ShapesFeatureNet | None = None, *, batch_size: int = 64
) -> float:
    """Shapes FD: the Fréchet distance between the feature Gaussians of two sets of Shapes videos.

    ``‖μr − μf‖² + tr Σr + tr Σf − 2 tr (√Σr Σf √Σr)^½`` in float64 over the
    [`ShapesFeatureNet`][vidtok.metrics.shapes_features.ShapesFeatureNet] features (biased ÷N covariances, as
    StyleGAN-V's FVD), via [`frechet_distance`][vidtok.metrics.frechet.frechet_distance]. A Shapes-only metric
    after TF-GAN's classifier metrics (Balaji et al. 2019), **not FVD**: compare it only with Shapes FD of the
    same network, number of videos and frames (it is biased upwards by about ``O(D / N)``).

    Args:
        real_videos: Reference videos (see :func:`shapes_features` for the accepted layouts).
        fake_videos: Generated videos; the sets may differ in size and in frame count.
        net: The feature network (``None``: the shipped one).
        batch_size: Videos per forward pass.

    Returns:
        The distance (``>= 0``; 0 for identical sets).

    Raises:
        ValueError: A set with fewer than 2 videos.
    """
    from vidtok.metrics.frechet import FeatureStats, frechet_distance

    net = load_shapes_features() if net is None else net
    stats = []
    for name, videos in (("real_videos", real_videos), ("fake_videos", fake_videos)):
        if len(videos) < 2:
            raise ValueError(f"shapes_frechet_distance: {name} needs at least 2 videos, got {len(videos)}")
        stats.append(FeatureStats(net.feature_dim).update(shapes_features(videos, net, batch_size=batch_size)))
    real, fake = stats
    return frechet_distance(real.mean(), real.cov(unbiased=False), fake.mean(), fake.cov(unbiased=False))
