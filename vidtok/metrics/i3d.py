"""Inception-I3D (Kinetics-400) in plain torch, its local loaders and FVD preprocessing; VideoMAE features.

The network is the RGB stream of Carreira & Zisserman's I3D (2017, "Quo Vadis, Action Recognition?"),
with the module names of the widely used PyTorch port (piergiaj/pytorch-i3d ``InceptionI3d``), so its
Kinetics-400 state dict ``i3d_pretrained_400.pt`` (VideoGPT, TATS, cd-fvd) loads by key. As there:
TensorFlow-style "same" padding computed for each input, batch norm with ``eps = 1e-3``, a final
``AvgPool3d([2, 7, 7])``, a 1×1×1 logits convolution, and the 400 logits averaged over time — the feature
of FVD (Unterthiner et al. 2019, "FVD: A new Metric for Video Generation").

Nothing is ever downloaded. :func:`load_i3d` reads a local file given as an argument or by
``$VIDTOK_I3D_PATH``: either that state dict, or a TorchScript file such as StyleGAN-V's
``i3d_torchscript.pt`` (an exact port of the tf.hub I3D of the original TF FVD code; different weights from
the state dict's, so the two give different FVDs — record which one was used).

Input of :func:`preprocess_i3d`: model-layout videos ``(B, C, T, H, W)`` in ``[-1, 1]`` or ``uint8``
``(B, T, H, W, C)``; output ``(B, 3, T, 224, 224)`` float32 in ``[-1, 1]``. ``resize="squash"`` resizes every
frame to 224×224 (original TF code, StyleGAN-V, cd-fvd); ``"center_crop"`` scales the shorter side to 224
and crops the centre (VideoGPT, TATS, common_metrics_on_video_quality). They agree on square frames.
"""

from __future__ import annotations

import json
import math
import os
import warnings
import zipfile
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "I3D_ENV",
    "I3D_FILES",
    "I3D_MIN_FRAMES",
    "I3D_SIZE",
    "RESIZE_MODES",
    "InceptionI3d",
    "TorchScriptI3D",
    "VideoMAEFeatures",
    "load_i3d",
    "preprocess_i3d",
    "resize_frames",
    "resolve_i3d_path",
    "to_model_layout",
]

#: Environment variable naming the I3D weights file.
I3D_ENV = "VIDTOK_I3D_PATH"
#: The two files researchers use, with where they come from (for error messages and docs).
I3D_FILES = {
    "i3d_torchscript.pt": "StyleGAN-V's TorchScript port of the tf.hub I3D "
    "(https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt, linked from universome/stylegan-v "
    "src/metrics/frechet_video_distance.py)",
    "i3d_pretrained_400.pt": "the piergiaj/pytorch-i3d Kinetics-400 state dict used by VideoGPT, TATS and cd-fvd "
    "(VideoGPT README: Google Drive id 1mQK8KD8G6UWRa5t87SRMm5PVXtlpneJT)",
}
#: Frames the network needs: three stride-2 stages then a temporal pool of 2 (ceil(ceil(ceil(T/2)/2)/2) >= 2).
I3D_MIN_FRAMES = 9
#: Frame side the network needs: 224 / 32 = 7, the final 7×7 average pool.
I3D_SIZE = 224

# Float videos up to this far beyond [-1, 1] are decoder overshoot (clamped); further out, another value range.
_OVERSHOOT = 1.5

#: Frame resize protocols of :func:`preprocess_i3d`.
RESIZE_MODES = ("squash", "center_crop")


# --- network ------------------------------------------------------------------------------------------------


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding of one axis, front/back (the extra pixel at the back), as the piergiaj port computes it."""
    total = max(kernel - (stride if size % stride == 0 else size % stride), 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    pads: list[int] = []
    for axis in (2, 1, 0):  # F.pad lists the last dimension (W) first
        pads.extend(_same_padding(x.shape[2 + axis], kernel[axis], stride[axis]))
    return F.pad(x, pads) if any(pads) else x


class _MaxPool3dSame(nn.Module):
    """Max pooling with TF "same" padding. Zero padding equals TF's ``-inf`` here: inputs follow a ReLU (≥ 0)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class _Unit3D(nn.Module):
    """Conv3d (no bias) + BatchNorm3d (eps 1e-3) + ReLU with "same" padding; keys ``conv3d.*``, ``bn.*``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        *,
        logits: bool = False,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.is_logits = kernel, stride, logits
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=0, bias=logits)
        if not logits:  # the logits layer: bias, no batch norm, no activation
            self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        return x if self.is_logits else F.relu(self.bn(x))


class _Mixed(nn.Module):
    """Inception block: 1×1 | 1×1→3×3×3 | 1×1→3×3×3 | 3×3×3 max-pool→1×1, concatenated (keys ``b0`` … ``b3b``)."""

    def __init__(self, in_channels: int, c: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.b0 = _Unit3D(in_channels, c[0])
        self.b1a = _Unit3D(in_channels, c[1])
        self.b1b = _Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a = _Unit3D(in_channels, c[3])
        self.b2b = _Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a = _MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = _Unit3D(in_channels, c[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


# (name, in_channels, branch widths) of the Inception blocks, in the order of the piergiaj port.
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


# The layers before the final pooling, in order (names and order of the piergiaj port's VALID_ENDPOINTS).
_ENDPOINTS = (
    "Conv3d_1a_7x7",
    "MaxPool3d_2a_3x3",
    "Conv3d_2b_1x1",
    "Conv3d_2c_3x3",
    "MaxPool3d_3a_3x3",
    "Mixed_3b",
    "Mixed_3c",
    "MaxPool3d_4a_3x3",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
    "MaxPool3d_5a_2x2",
    "Mixed_5b",
    "Mixed_5c",
)


class InceptionI3d(nn.Module):
    """Inception-v1 I3D returning Kinetics logits averaged over time (Carreira & Zisserman 2017, I3D).

    Module names match piergiaj/pytorch-i3d's ``InceptionI3d`` (``Conv3d_1a_7x7.conv3d.weight``,
    ``Mixed_4b.b1b.bn.running_var``, ``logits.conv3d.bias``, …), so ``i3d_pretrained_400.pt`` loads strictly.
    About 12.7 M parameters; built in eval mode.

    Args:
        num_classes: Logits (400 for Kinetics-400).
        in_channels: Input channels (3, RGB).

    Input: ``(B, 3, T, 224, 224)`` in ``[-1, 1]`` with ``T >= 9`` (use :func:`preprocess_i3d`).
    Output: ``(B, num_classes)`` logits (pre-softmax), the mean over the remaining time steps.
    """

    def __init__(self, num_classes: int = 400, in_channels: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.Conv3d_1a_7x7 = _Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = _MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = _Unit3D(64, 64)
        self.Conv3d_2c_3x3 = _Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = _MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = _Mixed(*_MIXED["Mixed_3b"])
        self.Mixed_3c = _Mixed(*_MIXED["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = _MaxPool3dSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            setattr(self, name, _Mixed(*_MIXED[name]))
        self.MaxPool3d_5a_2x2 = _MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = _Mixed(*_MIXED["Mixed_5b"])
        self.Mixed_5c = _Mixed(*_MIXED["Mixed_5c"])
        self.avg_pool = nn.AvgPool3d((2, 7, 7), stride=(1, 1, 1))
        self.dropout = nn.Dropout(0.5)  # identity in eval mode; kept for the port's structure
        self.logits = _Unit3D(1024, num_classes, logits=True)
        self.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled 1024-channel map ``(B, 1024, T', 1, 1)`` before the logits layer."""
        _check_network_input(x)
        for name in _ENDPOINTS:
            x = getattr(self, name)(x)
        return self.avg_pool(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, 224, 224)`` in ``[-1, 1]`` → ``(B, num_classes)`` logits averaged over time."""
        x = self.logits(self.dropout(self.features(x)))
        return x.flatten(3).squeeze(3).mean(dim=2)  # (B, classes, T', 1, 1) -> (B, classes)


def _check_network_input(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 5:
        raise ValueError(f"I3D input must be a (B, C, T, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}")
    _, _, t, h, w = x.shape
    if t < I3D_MIN_FRAMES:
        raise ValueError(
            f"I3D needs at least {I3D_MIN_FRAMES} frames (its final temporal pooling), got a clip of {t} frames"
        )
    if math.ceil(h / 32) != 7 or math.ceil(w / 32) != 7:
        raise ValueError(f"I3D needs {I3D_SIZE}x{I3D_SIZE} frames (its final 7x7 pooling), got {h}x{w}")


# --- preprocessing ------------------------------------------------------------------------------------------


def to_model_layout(videos: Any, name: str = "videos") -> torch.Tensor:
    """Videos as float32 ``(B, 3, T, H, W)`` in ``[-1, 1]`` from that layout or ``uint8`` ``(B, T, H, W, C)``.

    Tensors or arrays; one channel is repeated to RGB. Float values slightly outside ``[-1, 1]`` (decoder
    overshoot, up to ±1.5) are clamped, as saving the video would; beyond that (e.g. ``[0, 255]``) they are
    refused rather than guessed at. Shared by the FVD and CLIPSIM preprocessing.

    Raises:
        ValueError: Not 5-d, a channel count other than 1 or 3, or float values beyond ±1.5 (naming ``name``).
        TypeError: Neither ``uint8`` nor floating point.
    """
    if not isinstance(videos, torch.Tensor):
        import numpy as np

        videos = torch.from_numpy(np.ascontiguousarray(videos))
    if videos.ndim != 5:
        raise ValueError(
            f"{name} must be (B, C, T, H, W) in [-1, 1] or uint8 (B, T, H, W, C), got shape {tuple(videos.shape)}"
        )
    if videos.dtype == torch.uint8:
        if videos.shape[-1] not in (1, 3):
            raise ValueError(f"uint8 {name} must be (B, T, H, W, C) with C = 1 or 3, got shape {tuple(videos.shape)}")
        x = videos.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
    elif videos.is_floating_point():
        if videos.shape[1] not in (1, 3):
            raise ValueError(f"float {name} must be (B, C, T, H, W) with C = 1 or 3, got shape {tuple(videos.shape)}")
        x = videos.detach().float()
        if x.numel() and (not torch.isfinite(x).all() or x.min() < -_OVERSHOOT or x.max() > _OVERSHOOT):
            lo, hi = float(x.min()), float(x.max())
            raise ValueError(f"float {name} must lie in [-1, 1] (the model range), got values in [{lo:g}, {hi:g}]")
        x = x.clamp(-1.0, 1.0)  # decoder overshoot, clamped as writing the video to uint8 would
    else:
        raise TypeError(f"{name} must be uint8 or floating point, got {videos.dtype}")
    return x.expand(-1, 3, -1, -1, -1) if x.shape[1] == 1 else x  # grayscale -> RGB, as common_metrics does


def resize_frames(
    x: torch.Tensor, size: tuple[int, int], resize: str, *, mode: str = "bilinear", torchvision_rounding: bool = False
) -> torch.Tensor:
    """Resize every frame of ``(B, C, T, H, W)`` to ``size`` by squashing or shorter-side scaling + centre crop.

    The long side after scaling is rounded up and the crop offset rounded down, as VideoGPT does; with
    ``torchvision_rounding`` truncated and rounded to nearest, as torchvision's ``Resize``/``CenterCrop`` (CLIP).
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    b, c, t, h, w = x.shape
    frames = x.transpose(1, 2).reshape(b * t, c, h, w)
    target = size
    if resize == "center_crop":
        long_side = int if torchvision_rounding else math.ceil
        if size[0] / h >= size[1] / w:  # the height sets the scale: it gets exactly size[0]
            target = (size[0], max(size[1], long_side(w * size[0] / h)))
        else:
            target = (max(size[0], long_side(h * size[1] / w)), size[1])
    if target != (h, w):
        antialias = mode == "bicubic"  # CLIP's PIL resize antialiases; the FVD references use plain bilinear
        frames = F.interpolate(frames, size=target, mode=mode, align_corners=False, antialias=antialias)
    if resize == "center_crop":
        dh, dw = target[0] - size[0], target[1] - size[1]
        top, left = (int(round(dh / 2)), int(round(dw / 2))) if torchvision_rounding else (dh // 2, dw // 2)
        frames = frames[:, :, top : top + size[0], left : left + size[1]]
    return frames.reshape(b, t, c, *size).transpose(1, 2).contiguous()


def preprocess_i3d(videos: Any, resize: str = "squash", *, size: int = I3D_SIZE) -> torch.Tensor:
    """Videos → I3D input ``(B, 3, T, size, size)`` float32 in ``[-1, 1]`` (bilinear, no antialiasing).

    Args:
        videos: Model layout ``(B, C, T, H, W)`` float in ``[-1, 1]``, or ``uint8`` ``(B, T, H, W, C)``; tensor
            or array; ``C`` = 1 (repeated to RGB) or 3.
        resize: ``"squash"``: every frame to ``size × size`` (Unterthiner et al. 2019's TF code, StyleGAN-V,
            cd-fvd). ``"center_crop"``: shorter side to ``size``, then the centre (VideoGPT, TATS,
            common_metrics_on_video_quality). VideoGPT's FVD code feeds ``[-0.5, 0.5]`` (its ``video -= 0.5``);
            ``[-1, 1]`` here, as the TF original and the others.
        size: Frame side (224 for I3D).

    Raises:
        ValueError: Wrong layout, float values beyond ±1.5, an unknown ``resize``, or fewer than 9 frames.
    """
    x = to_model_layout(videos)
    if x.shape[2] < I3D_MIN_FRAMES:
        raise ValueError(
            f"I3D needs at least {I3D_MIN_FRAMES} frames (its final temporal pooling), "
            f"got videos of {x.shape[2]} frames"
        )
    return resize_frames(x, (size, size), resize).clamp_(-1.0, 1.0)


# --- loaders ------------------------------------------------------------------------------------------------


class TorchScriptI3D(nn.Module):
    """A TorchScript I3D (e.g. StyleGAN-V's ``i3d_torchscript.pt``) behind the interface of :class:`InceptionI3d`.

    Called as ``model(x, rescale=False, resize=False, return_features=True)``: the input is already in
    ``[-1, 1]`` at 224×224 (our :func:`preprocess_i3d`, so both resize modes are available), and
    ``return_features=True`` gives the 400 pre-softmax logits averaged over time — the feature of FVD.
    (StyleGAN-V itself passes ``uint8`` videos with ``rescale=True, resize=True`` and lets the file resize.)
    """

    def __init__(self, module: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, 224, 224)`` in ``[-1, 1]`` → the file's ``(B, 400)`` features."""
        _check_network_input(x)
        return self.module(x, rescale=False, resize=False, return_features=True)


def resolve_i3d_path(path: str | os.PathLike | None = None) -> str:
    """The I3D weights file: ``path``, else ``$VIDTOK_I3D_PATH``; never a download.

    Raises:
        FileNotFoundError: The file is missing, naming it (and the variable it came from), or neither is given,
            naming the files researchers use and where they come from.
    """
    if path is not None:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"I3D weights file {path!r} does not exist")
        return path
    env = os.environ.get(I3D_ENV)
    if env:
        if not os.path.isfile(env):
            raise FileNotFoundError(f"${I3D_ENV} names {env!r}, which does not exist")
        return env
    known = "; ".join(f"{name}: {where}" for name, where in I3D_FILES.items())
    raise FileNotFoundError(
        f"no I3D weights: pass path= or set ${I3D_ENV} to a local copy of one of these files ({known}). "
        "vidtok never downloads them; fetch one on a networked machine."
    )


def _is_torchscript(path: str) -> bool:
    """TorchScript archives hold ``constants.pkl`` and ``code/``; ``torch.save`` archives hold neither."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())


def load_i3d(path: str | os.PathLike | None = None, *, device: str | torch.device = "cpu") -> nn.Module:
    """Load I3D from a local file (argument, else ``$VIDTOK_I3D_PATH``), in eval mode.

    Two formats, told apart by content:

    * a state dict of piergiaj/pytorch-i3d's ``InceptionI3d`` (``i3d_pretrained_400.pt``), read with
      ``torch.load(weights_only=True)`` into :class:`InceptionI3d`, strictly (``num_batches_tracked``, absent
      from files written by old PyTorch, may be missing);
    * a TorchScript file (StyleGAN-V's ``i3d_torchscript.pt``), read with ``torch.jit.load`` and wrapped in
      :class:`TorchScriptI3D`.

    Either way the result maps :func:`preprocess_i3d` output ``(B, 3, T, 224, 224)`` to ``(B, 400)`` and
    carries ``weights_path`` and ``weights_format`` (``"state_dict"`` or ``"torchscript"``).

    A TorchScript file carries code that runs when it is loaded: load only files from a source you trust.

    Raises:
        FileNotFoundError: See :func:`resolve_i3d_path`.
        ValueError: Not a state dict, missing/unexpected keys (listed) or other shapes, naming the file.
    """
    path = resolve_i3d_path(path)
    if _is_torchscript(path):
        with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript, the format this file comes in
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*deprecated", category=FutureWarning)
            model: nn.Module = TorchScriptI3D(torch.jit.load(path, map_location="cpu"))
        fmt = "torchscript"
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle, zip and weights-only errors differ by torch version
            raise ValueError(f"{path!r} is neither a TorchScript file nor a readable state dict: {err}") from err
        if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
            state = state["state_dict"]
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{path!r} is neither a TorchScript file nor a state dict of tensors")
        model = InceptionI3d(num_classes=_num_classes(state))
        expected = model.state_dict()
        missing = sorted(k for k in expected.keys() - state.keys() if not k.endswith("num_batches_tracked"))
        unexpected = sorted(state.keys() - expected.keys())
        if missing or unexpected:
            raise ValueError(
                f"{path!r} is not an InceptionI3d state dict: missing keys {_short(missing)}, "
                f"unexpected keys {_short(unexpected)}"
            )
        try:
            model.load_state_dict(state, strict=False)
        except RuntimeError as err:  # same keys, other shapes
            raise ValueError(f"{path!r} does not fit InceptionI3d: {err}") from err
        fmt = "state_dict"
    model.weights_path, model.weights_format = os.path.abspath(path), fmt
    return model.to(device).eval()


def _num_classes(state: Mapping[str, torch.Tensor]) -> int:
    bias = state.get("logits.conv3d.bias")
    return int(bias.shape[0]) if bias is not None and bias.ndim == 1 else 400


def _short(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return f"[{shown}{f', … {len(keys) - limit} more' if len(keys) > limit else ''}]"


# --- VideoMAE -----------------------------------------------------------------------------------------------


class VideoMAEFeatures(nn.Module):
    """Mean-pooled last hidden state of a transformers ``VideoMAEModel`` from a local folder (Tong et al. 2022).

    An alternative to I3D logits with less content bias (Ge et al. 2024, "On the Content Bias in Fréchet Video
    Distance", which uses VideoMAE-v2 features). The folder is what ``save_pretrained`` writes
    (``config.json`` + weights, optionally ``preprocessor_config.json`` with ``image_mean``/``image_std``);
    nothing is downloaded. Clips must have exactly ``config.num_frames`` frames at ``config.image_size``.

    Args:
        folder: The local model folder.

    Raises:
        FileNotFoundError: No such folder or no ``config.json`` in it (naming the folder).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        super().__init__()
        folder = os.fspath(folder)
        if not os.path.isfile(os.path.join(folder, "config.json")):
            raise FileNotFoundError(
                f"no VideoMAE model folder at {folder!r} (expected config.json and weights written by save_pretrained)"
            )
        from transformers import VideoMAEModel

        self.model = VideoMAEModel.from_pretrained(folder, local_files_only=True)
        self.folder = os.path.abspath(folder)
        config = self.model.config
        self.num_frames, self.image_size = int(config.num_frames), int(config.image_size)
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet: VideoMAEImageProcessor's defaults
        processor = os.path.join(folder, "preprocessor_config.json")
        if os.path.isfile(processor):
            with open(processor) as f:
                cfg = json.load(f)
            mean, std = tuple(cfg.get("image_mean", mean)), tuple(cfg.get("image_std", std))
        self.image_mean, self.image_std = tuple(map(float, mean)), tuple(map(float, std))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1, 1), persistent=False)
        self.eval()

    def preprocess(self, videos: Any, resize: str = "squash") -> torch.Tensor:
        """Videos (as for :func:`preprocess_i3d`) → ``(B, 3, T, S, S)`` in ``[-1, 1]`` at the model's size."""
        x = to_model_layout(videos)
        if x.shape[2] != self.num_frames:
            raise ValueError(f"this VideoMAE model takes clips of {self.num_frames} frames, got {x.shape[2]}")
        return resize_frames(x, (self.image_size,) * 2, resize).clamp_(-1.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, S, S)`` in ``[-1, 1]`` → ``(B, hidden_size)``."""
        if x.ndim != 5 or x.shape[2] != self.num_frames or x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"VideoMAE input must be (B, 3, {self.num_frames}, {self.image_size}, {self.image_size}), "
                f"got {tuple(x.shape)}"
            )
        pixels = ((x + 1) / 2 - self.mean) / self.std
        hidden = self.model(pixel_values=pixels.transpose(1, 2)).last_hidden_state
        return hidden.mean(dim=1)
