"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"), offline.

LPIPS compares two images through an ImageNet-trained network: the activations of five layers are normalized
over channels, their squared differences weighted per channel by calibrated 1×1 linear heads, averaged over
space and summed over layers. 0 means identical; larger is more different.

Nothing is downloaded. The two parts come from local files:

* the **backbone** (AlexNet or VGG16 convolutional stack, as torchvision defines ``alexnet().features`` /
  ``vgg16().features``) from torchvision's ImageNet checkpoint — ``alexnet-owt-7be5be79.pth`` or
  ``vgg16-397923af.pth`` — given as ``backbone_weights`` or found in torch.hub's cache
  (``$TORCH_HOME/hub/checkpoints/``, where torchvision would have put it);
* the **linear heads** (LPIPS v0.1) from torchmetrics' package data
  (``torchmetrics/functional/image/lpips_models/{alex,vgg}.pth``), or ``heads_weights``.

A missing backbone is an error, never a silent random network: random-backbone LPIPS
(``random_backbone=True``, for tests) is monotone in distortion but not comparable to any published number,
and :attr:`LPIPS.protocol` says so.

Example:
    >>> import torch
    >>> metric = LPIPS("alex", random_backbone=True)  # tests only: not comparable to papers
    >>> x = torch.rand(1, 3, 2, 32, 32) * 2 - 1  # (B, C, T, H, W) in [-1, 1]
    >>> lpips_video(x, x, metric)
    0.0
    >>> metric.protocol["comparable"]
    False
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidtok.metrics.video_quality import data_range_span, frame_pair

__all__ = [
    "LPIPS",
    "LPIPS_BACKBONE_FILES",
    "default_backbone_path",
    "default_heads_path",
    "lpips_per_frame",
    "lpips_video",
]

#: torchvision's ImageNet checkpoint of each backbone (the names torch.hub caches them under).
LPIPS_BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}

# Indices in torchvision's ``features`` of the ReLUs whose outputs LPIPS compares (relu1..relu5 for AlexNet,
# relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 for VGG16), and their channels.
_TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
# Smallest frame side whose last tapped layer is still at least 1×1.
_MIN_SIDE = {"alex": 31, "vgg": 16}
# The LPIPS release's input scaling: [-1, 1] inputs to ImageNet mean/std normalization expressed in [-1, 1] units.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_RANDOM = "random backbone — not comparable"


def _check_net(net: str) -> str:
    if net not in _TAPS:
        raise ValueError(f"net must be one of {sorted(_TAPS)}, got {net!r}")
    return net


def default_backbone_path(net: str = "alex") -> Path:
    """Where torchvision would have cached the backbone: ``<torch.hub.get_dir()>/checkpoints/<file name>``.

    ``torch.hub.get_dir()`` is ``$TORCH_HOME/hub`` (``~/.cache/torch/hub`` when ``TORCH_HOME`` is unset).
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE_FILES[_check_net(net)]


def default_heads_path(net: str = "alex") -> Path:
    """The copy of the LPIPS v0.1 linear heads of ``net`` in torchmetrics' package data.

    Raises:
        ModuleNotFoundError: If torchmetrics is not installed (``pip install 'vidtok[eval]'``).
    """
    _check_net(net)
    spec = importlib.util.find_spec("torchmetrics")  # locates the package data without importing torchmetrics
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the LPIPS linear heads come from torchmetrics' package data "
            f"(torchmetrics/functional/image/lpips_models/{net}.pth) and torchmetrics is not installed: "
            "pip install 'vidtok[eval]' (or pass heads_weights=<a local copy of that file>)"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "functional" / "image" / "lpips_models" / f"{net}.pth"


def _load_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no such file {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{what}: cannot read {path} as a state dict ({type(err).__name__}: {err})") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{what}: {path} does not hold a state dict of tensors")
    return state


class LPIPS(nn.Module):
    """Learned Perceptual Image Patch Similarity, v0.1 (Zhang et al. 2018), on images in ``[-1, 1]``.

    Args:
        net: ``"alex"`` (the LPIPS default, used by most video papers) or ``"vgg"``.
        backbone_weights: A local torchvision checkpoint of the backbone (``alexnet-owt-7be5be79.pth`` /
            ``vgg16-397923af.pth``: keys ``features.N.weight``/``.bias``; a bare ``features`` state dict with keys
            ``N.weight`` is accepted too), ``.pth`` or ``.safetensors``. ``None``: the copy in torch.hub's cache,
            :func:`default_backbone_path`.
        random_backbone: Keep torchvision's random initialization of the backbone — **for tests only**: the
            numbers are not comparable to anything, and :attr:`protocol` records that.
        heads_weights: The LPIPS v0.1 linear heads (keys ``lin{k}.model.1.weight``, the layout of torchmetrics'
            and the ``lpips`` package's files). ``None``: torchmetrics' copy, :func:`default_heads_path`.

    Attributes:
        protocol: What the numbers mean: net, backbone file (or the random-backbone label), heads file,
            ``comparable`` (False with a random backbone), input range and reference.

    Raises:
        FileNotFoundError: If the backbone file is in neither place (both are named; nothing is downloaded), or
            the heads file is missing.
        ValueError: If a file lacks weights of the expected keys/shapes, or ``net`` is unknown.
    """

    def __init__(
        self,
        net: str = "alex",
        backbone_weights: str | Path | None = None,
        *,
        random_backbone: bool = False,
        heads_weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.net = _check_net(net)
        if random_backbone and backbone_weights is not None:
            raise ValueError("give either backbone_weights or random_backbone=True, not both")
        backbone_path = None
        if not random_backbone:
            backbone_path = self._find_backbone(backbone_weights)
        heads_path = Path(heads_weights) if heads_weights is not None else default_heads_path(net)

        import torchvision

        build = torchvision.models.alexnet if net == "alex" else torchvision.models.vgg16
        # torchvision's own module indices, so its checkpoints load by key (features.N.*); layers after the last
        # tapped ReLU are dropped.
        self.features = build(weights=None).features[: _TAPS[net][-1] + 1]
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in _CHANNELS[net])
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        if backbone_path is not None:
            self._load_backbone(backbone_path)
        self._load_heads(heads_path)
        self.requires_grad_(False)
        self.eval()
        self.protocol: dict[str, Any] = {
            "metric": "LPIPS",
            "version": "0.1",
            "net": net,
            "backbone": str(backbone_path) if backbone_path is not None else _RANDOM,
            "heads": str(heads_path),
            "comparable": backbone_path is not None,
            "input_range": "[-1, 1]",
            "reference": "Zhang et al. 2018",
        }

    @property
    def min_size(self) -> int:
        """Smallest frame side the backbone accepts (31 px for AlexNet, 16 px for VGG16)."""
        return _MIN_SIDE[self.net]

    def _find_backbone(self, backbone_weights: str | Path | None) -> Path:
        name = LPIPS_BACKBONE_FILES[self.net]
        if backbone_weights is not None:
            path = Path(backbone_weights).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"LPIPS {self.net} backbone_weights: no such file {path} (expected {name})")
            return path
        cached = default_backbone_path(self.net)
        if not cached.is_file():
            raise FileNotFoundError(
                f"LPIPS {self.net} needs torchvision's ImageNet weights {name}, and nothing is downloaded: pass "
                f"backbone_weights=<a local copy of {name}>, or place it at {cached} (torch.hub's cache, "
                "$TORCH_HOME/hub/checkpoints/). random_backbone=True is for tests only (numbers not comparable)."
            )
        return cached

    def _load_backbone(self, path: Path) -> None:
        state = _load_state_dict(path, f"LPIPS {self.net} backbone")
        if any(k.startswith("features.") for k in state):
            state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        expected = self.features.state_dict()
        missing = sorted(set(expected) - set(state))
        if missing:
            raise ValueError(
                f"LPIPS {self.net} backbone: {path} lacks {len(missing)} weights of torchvision's "
                f"{'alexnet' if self.net == 'alex' else 'vgg16'}().features, e.g. features.{missing[0]} "
                f"(expected {LPIPS_BACKBONE_FILES[self.net]} or a state dict with the same keys)"
            )
        for key, ref in expected.items():
            if state[key].shape != ref.shape:
                raise ValueError(
                    f"LPIPS {self.net} backbone: features.{key} in {path} has shape {tuple(state[key].shape)}, "
                    f"expected {tuple(ref.shape)}"
                )
        # Only the layers up to the last tapped ReLU are kept: later convolutions and the classifier are unused.
        self.features.load_state_dict({k: state[k] for k in expected})

    def _load_heads(self, path: Path) -> None:
        state = _load_state_dict(path, f"LPIPS {self.net} linear heads")
        found: dict[int, torch.Tensor] = {}
        for key, value in state.items():
            match = re.fullmatch(r"lin(\d+)\.model\.\d+\.weight", key)
            if match:
                found[int(match.group(1))] = value
        for k, head in enumerate(self.heads):
            if k not in found or found[k].shape != head.weight.shape:
                got = tuple(found[k].shape) if k in found else "missing"
                raise ValueError(
                    f"LPIPS {self.net} linear heads: {path} has no lin{k}.model.1.weight of shape "
                    f"{tuple(head.weight.shape)} (got {got}); expected the LPIPS v0.1 {self.net}.pth"
                )
            head.weight.data.copy_(found[k])

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """LPIPS of every image pair, ``(N,)``.

        Args:
            pred: Images ``(N, 3, H, W)`` in ``[-1, 1]`` (used as given, not clipped).
            target: Images of the same shape.

        Raises:
            ValueError: If the shapes differ, are not ``(N, 3, H, W)``, or a side is below :attr:`min_size`.
        """
        if pred.shape != target.shape:
            raise ValueError(f"LPIPS: pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        if pred.ndim != 4 or pred.shape[1] != 3:
            raise ValueError(f"LPIPS takes RGB images (N, 3, H, W), got shape {tuple(pred.shape)}")
        if min(pred.shape[-2:]) < self.min_size:
            raise ValueError(
                f"LPIPS {self.net} needs frames of at least {self.min_size}x{self.min_size}, "
                f"got {pred.shape[-2]}x{pred.shape[-1]}"
            )
        n = pred.shape[0]
        ref = self.shift
        x = torch.cat([pred, target]).to(device=ref.device, dtype=ref.dtype)
        x = (x - self.shift) / self.scale
        total = torch.zeros(n, device=ref.device, dtype=ref.dtype)
        taps = iter(zip(_TAPS[self.net], self.heads))
        tap, head = next(taps)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index != tap:
                continue
            # Unit length over channels (the release adds 1e-10 to the norm; torchmetrics 1e-8 under the root:
            # they differ only where a pixel's features are all but zero), then the squared difference weighted
            # by the calibrated 1x1 head and averaged over space.
            unit = x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + head((unit[:n] - unit[n:]).pow(2)).mean((1, 2, 3))
            tap, head = next(taps, (-1, None))
        return total


def lpips_per_frame(
    pred: torch.Tensor,
    target: torch.Tensor,
    lpips: LPIPS,
    batch_size: int = 32,
    *,
    data_range: tuple[float, float] = (-1.0, 1.0),
) -> torch.Tensor:
    """LPIPS of every frame, ``(B, T)`` float64 on the input's device.

    Args:
        pred: Reconstruction ``(B, 3, T, H, W)`` or ``(B, 3, H, W)``.
        target: Reference of the same shape.
        lpips: The network (:class:`LPIPS`); frames are moved to its device and dtype.
        batch_size: Frames per forward pass.
        data_range: ``(low, high)`` of the values, mapped linearly to LPIPS' ``[-1, 1]``.
    """
    a, b = frame_pair(pred, target)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    span, lo = data_range_span(data_range), data_range[0]
    bsz, c, t, h, w = a.shape
    a = a.transpose(1, 2).reshape(bsz * t, c, h, w)
    b = b.transpose(1, 2).reshape(bsz * t, c, h, w)
    out = []
    with torch.no_grad():
        for i in range(0, bsz * t, batch_size):
            pa, pb = (x[i : i + batch_size].double() for x in (a, b))
            pa, pb = ((x - lo) / span * 2 - 1 for x in (pa, pb))
            out.append(lpips(pa, pb).to(device=pred.device, dtype=torch.float64))
    return torch.cat(out).reshape(bsz, t)


def lpips_video(
    pred: torch.Tensor,
    target: torch.Tensor,
    lpips: LPIPS,
    batch_size: int = 32,
    *,
    data_range: tuple[float, float] = (-1.0, 1.0),
    per_video: bool = False,
) -> float | torch.Tensor:
    """Mean per-frame LPIPS (see :func:`lpips_per_frame`); with ``per_video=True`` each video's mean, ``(B,)``."""
    per_frame = lpips_per_frame(pred, target, lpips, batch_size, data_range=data_range)
    return per_frame.mean(-1) if per_video else float(per_frame.mean())
