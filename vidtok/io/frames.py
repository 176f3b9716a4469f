"""Frames <-> tensors: layouts, value ranges and resizing, the one conversion path vidtok uses everywhere.

* Model layout: a float tensor ``(B, C, T, H, W)`` (or unbatched ``(C, T, H, W)``) in ``[-1, 1]``.
* Frames: channels-last ``(T, H, W, C)``, ``uint8`` in ``[0, 255]`` or float in ``[0, 1]``.

[`frames_to_tensor`][vidtok.io.frames_to_tensor] / [`tensor_to_frames`][vidtok.io.tensor_to_frames] convert one
video; [`as_model_video`][vidtok.io.as_model_video] accepts anything and returns a validated batch,
[`to_output`][vidtok.io.to_output] turns a batch into a pipeline's ``output_type``, and
[`center_resize`][vidtok.io.center_resize] / [`resize_frames`][vidtok.io.resize_frames] change the frame size.
Torch is imported only by the functions that take or return tensors.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from vidtok.io.base import Layout, OutputType, pil_to_rgb

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "as_model_video",
    "center_resize",
    "check_video",
    "frames_to_tensor",
    "letterbox_resize",
    "normalize_frames",
    "resize_frames",
    "tensor_to_frames",
    "to_output",
    "to_uint8",
    "uint8_to_tensor",
]


# Float frames may exceed [0, 1] by this much (rounding noise); they are clipped to [0, 1].
_RANGE_TOLERANCE = 1e-2


def _torch_module():
    return sys.modules.get("torch")


def _is_tensor(x: Any) -> bool:
    torch_mod = _torch_module()
    return torch_mod is not None and isinstance(x, torch_mod.Tensor)


def _describe(x: np.ndarray) -> str:
    return f"shape {tuple(x.shape)} and dtype {x.dtype}"


def _to_numpy(frames: Any) -> tuple[np.ndarray, str]:
    """Convert supported inputs to a numpy array; also return the source kind for layout detection."""
    if _is_tensor(frames):
        torch_mod = _torch_module()
        t = frames.detach()
        if t.dtype == torch_mod.uint8:
            return t.cpu().numpy(), "tensor_uint8"
        if t.is_floating_point():
            return t.to(device="cpu", dtype=torch_mod.float32).numpy(), "tensor_float"
        raise TypeError(
            f"frames tensor must be uint8 or floating point, got {t.dtype} with shape {tuple(t.shape)}; "
            "for integer frames in [0, 255] use frames.to(torch.uint8)"
        )
    if isinstance(frames, Image.Image):
        return pil_to_rgb(frames)[None], "pil"
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError("empty video: got an empty list of frames")
        items = []
        for item in frames:
            if isinstance(item, Image.Image):
                items.append(pil_to_rgb(item))
            elif _is_tensor(item) or isinstance(item, np.ndarray):
                items.append(_to_numpy(item)[0])
            else:
                raise TypeError(f"list items must be PIL images or (H, W, C) arrays, got {type(item).__name__}")
        shapes = {a.shape for a in items}
        if len(shapes) > 1:
            raise ValueError(f"all frames must have the same shape, got {sorted(shapes)}")
        if items[0].ndim != 3:
            raise ValueError(f"list items must be single (H, W, C) frames, got shape {items[0].shape}")
        return np.stack(items), "pil" if isinstance(frames[0], Image.Image) else "numpy"
    if isinstance(frames, np.ndarray):
        return frames, "numpy"
    raise TypeError(
        "frames must be a numpy array, a torch tensor or a list of PIL images, "
        f"got {type(frames).__module__}.{type(frames).__qualname__}"
    )


def _resolve_layout(arr: np.ndarray, source: str, layout: Layout) -> str:
    if layout not in ("auto", "thwc", "cthw"):
        raise ValueError(f"layout must be 'auto', 'thwc' or 'cthw', got {layout!r}")
    if layout != "auto":
        return layout
    if source != "tensor_float":
        return "thwc"
    channels_first = arr.shape[0] in (1, 3)
    channels_last = arr.shape[-1] in (1, 3, 4)
    if channels_first and channels_last:
        raise ValueError(
            f"cannot tell the layout of a float tensor with shape {tuple(arr.shape)}: it could be (C, T, H, W) in "
            "[-1, 1] or (T, H, W, C) in [0, 1]; pass layout='cthw' or layout='thwc'"
        )
    return "cthw" if channels_first else "thwc"


def normalize_frames(frames: Any, layout: Layout) -> np.ndarray:
    """Return RGB frames `(T, H, W, 3)`: uint8, or float32 in `[0, 1]`."""
    arr, source = _to_numpy(frames)
    if arr.dtype == np.bool_ or not (arr.dtype == np.uint8 or np.issubdtype(arr.dtype, np.floating)):
        hint = " (convert with .astype(np.uint8) if the values are in [0, 255])"
        raise TypeError(
            f"frames must be uint8 or floating point, got {_describe(arr)}"
            f"{hint if np.issubdtype(arr.dtype, np.integer) else ''}"
        )
    if arr.ndim not in (4, 5):
        raise ValueError(
            f"frames must be 4-D (T, H, W, C) or (C, T, H, W), optionally with a leading batch dimension of 1; "
            f"got {_describe(arr)}" + (" (for a single image add a time axis: frames[None])" if arr.ndim == 3 else "")
        )
    if arr.ndim == 5:
        if arr.shape[0] != 1:
            raise ValueError(
                f"save one video at a time: got a batch of {arr.shape[0]} videos with shape {tuple(arr.shape)}; "
                "loop over the batch"
            )
        arr = arr[0]
    layout = _resolve_layout(arr, source, layout)
    if layout == "cthw":
        if arr.shape[0] not in (1, 3):
            raise ValueError(f"(C, T, H, W) frames must have C in (1, 3), got {_describe(arr)}")
        arr = np.moveaxis(arr, 0, -1)
    elif arr.shape[-1] not in (1, 3, 4):
        hint = ""
        if arr.shape[0] in (1, 3):
            hint = " (this looks like (C, T, H, W) model layout: pass layout='cthw')"
        raise ValueError(f"(T, H, W, C) frames must have C in (1, 3, 4), got {_describe(arr)}{hint}")
    if 0 in arr.shape:
        raise ValueError(f"empty video: got frames with shape (T, H, W, C) = {tuple(arr.shape)}")

    if arr.dtype != np.uint8:
        arr = arr.astype(np.float32, copy=False)
        finite = np.isfinite(arr)
        if not finite.all():
            what = "NaN" if np.isnan(arr).any() else "inf"
            raise ValueError(f"frames contain {what} ({int((~finite).sum())} non-finite values)")
        if layout == "cthw":
            arr = (np.clip(arr, -1.0, 1.0) + 1.0) * 0.5
        else:
            lo, hi = float(arr.min()), float(arr.max())
            if lo < -_RANGE_TOLERANCE or hi > 1.0 + _RANGE_TOLERANCE:
                hint = ""
                if hi > 1.0 + _RANGE_TOLERANCE and lo >= 0:
                    hint = "; for values in [0, 255] use frames / 255 or uint8"
                elif lo < 0:
                    hint = "; for values in [-1, 1] use (frames + 1) / 2, or pass (C, T, H, W) with layout='cthw'"
                raise ValueError(
                    f"float (T, H, W, C) frames must be in [0, 1], found values in [{lo:.4g}, {hi:.4g}]{hint}"
                )
            arr = np.clip(arr, 0.0, 1.0)

    channels = arr.shape[-1]
    if channels == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif channels == 4:
        arr = arr[..., :3]  # alpha is dropped, not composited
    return arr


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Normalized frames (``uint8``, or float in ``[0, 1]``) -> contiguous ``uint8`` (rounded)."""
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    return np.ascontiguousarray(np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8))


def uint8_to_tensor(video: np.ndarray) -> torch.Tensor:
    """``uint8`` frames ``(T, H, W, C)`` -> model-layout ``float32`` tensor ``(C, T, H, W)`` in ``[-1, 1]``."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(video)).permute(3, 0, 1, 2)
    return x.to(torch.float32, memory_format=torch.contiguous_format).div_(127.5).sub_(1.0)


def frames_to_tensor(frames: Any, *, layout: Layout = "auto") -> torch.Tensor:
    """Convert user-facing frames to a model-layout tensor `(3, T, H, W)` in `[-1, 1]`.

    Accepts the same inputs as [`save_video`][vidtok.io.save_video] (uint8 or `[0, 1]` float `(T, H, W, C)`
    arrays or tensors, a `(1, T, H, W, C)` batch, lists of PIL images, or an already model-layout tensor). Grayscale
    is expanded to RGB and alpha is dropped. Float input keeps its precision (it is not quantized to
    8 bits).

    Args:
        frames: The frames to convert.
        layout: `"auto"`, `"thwc"` or `"cthw"`; see [`save_video`][vidtok.io.save_video] for the detection rule.

    Returns:
        A contiguous `float32` tensor `(3, T, H, W)`, on the input tensor's device (CPU otherwise).

    Raises:
        TypeError: For unsupported types or dtypes.
        ValueError: For bad shapes, batches larger than 1, NaN/inf or out-of-range values.

    Example:
        >>> import numpy as np
        >>> from vidtok.io import frames_to_tensor
        >>> x = frames_to_tensor(np.full((4, 8, 8, 3), 255, dtype=np.uint8))
        >>> tuple(x.shape), float(x.min()), float(x.max())
        ((3, 4, 8, 8), 1.0, 1.0)
    """
    import torch

    device = frames.device if _is_tensor(frames) else None
    arr = normalize_frames(frames, layout)
    if arr.dtype == np.uint8:
        out = uint8_to_tensor(arr)
    else:
        out = torch.from_numpy(np.ascontiguousarray(arr)).permute(3, 0, 1, 2).mul(2.0).sub_(1.0).contiguous()
    return out if device is None else out.to(device)


def tensor_to_frames(video: Any) -> np.ndarray:
    """Convert a model-layout video `(C, T, H, W)` or `(1, C, T, H, W)` in `[-1, 1]` to uint8 frames.

    Values are clamped to `[-1, 1]` (model outputs often overshoot slightly), then mapped to
    `[0, 255]` with rounding. The channel count is kept (1 or 3).

    Args:
        video: A floating-point torch tensor (any device/dtype) or numpy array.

    Returns:
        A `uint8` numpy array `(T, H, W, C)`.

    Raises:
        TypeError: If `video` is not a floating-point tensor/array.
        ValueError: If the shape is not `(C, T, H, W)`/`(1, C, T, H, W)` with `C` in `(1, 3)`, or it
            contains NaN or inf.

    Example:
        >>> import torch
        >>> from vidtok.io import tensor_to_frames
        >>> frames = tensor_to_frames(torch.zeros(3, 2, 4, 4))
        >>> frames.shape, frames.dtype, int(frames[0, 0, 0, 0])
        ((2, 4, 4, 3), dtype('uint8'), 128)
    """
    if _is_tensor(video):
        torch_mod = _torch_module()
        if not video.is_floating_point():
            raise TypeError(f"video must be a floating-point tensor in [-1, 1], got {video.dtype}")
        shape = tuple(video.shape)
        x = video.detach().to(torch_mod.float32)
        if not bool(torch_mod.isfinite(x).all()):
            what = "NaN" if bool(torch_mod.isnan(x).any()) else "inf"
            raise ValueError(f"video contains {what}")
        _check_model_shape(shape)
        if x.ndim == 5:
            x = x[0]
        x = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round_().to(torch_mod.uint8)
        return np.ascontiguousarray(x.permute(1, 2, 3, 0).cpu().numpy())
    if isinstance(video, np.ndarray):
        if not np.issubdtype(video.dtype, np.floating):
            raise TypeError(f"video must be a floating-point array in [-1, 1], got {video.dtype}")
        x = video.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise ValueError(f"video contains {'NaN' if np.isnan(x).any() else 'inf'}")
        _check_model_shape(x.shape)
        if x.ndim == 5:
            x = x[0]
        x = np.rint((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
        return np.ascontiguousarray(np.moveaxis(x, 0, -1))
    raise TypeError(f"video must be a torch tensor or numpy array, got {type(video).__name__}")


def _check_model_shape(shape: tuple[int, ...]) -> None:
    if len(shape) == 5 and shape[0] != 1:
        raise ValueError(f"expected a single video, got a batch of {shape[0]} with shape {shape}; loop over the batch")
    if len(shape) not in (4, 5) or shape[-4] not in (1, 3):
        raise ValueError(f"expected a (C, T, H, W) or (1, C, T, H, W) video with C in (1, 3), got shape {shape}")


def resize_frames(frames: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize ``uint8`` frames ``(T, H, W, C)`` or one frame ``(H, W, C)`` to ``size = (height, width)``.

    Bilinear with Pillow, whose filter widens its support when downscaling, so it also anti-aliases. Readers
    resize while decoding with it and the datasets' resize + center crop uses it, so both give the same pixels.

    Args:
        frames: ``uint8`` frames, channels last.
        size: Target ``(height, width)``; ``None`` (or the current size) returns ``frames`` unchanged.

    Returns:
        The resized frames, same layout.

    Example:
        >>> resize_frames(np.zeros((2, 8, 8, 3), np.uint8), (4, 6)).shape
        (2, 4, 6, 3)
    """
    if size is None or tuple(frames.shape[-3:-1]) == tuple(size):
        return frames
    if frames.ndim == 3:
        return np.asarray(Image.fromarray(frames).resize((size[1], size[0]), Image.Resampling.BILINEAR))
    return np.stack([resize_frames(f, size) for f in frames])


def check_video(video: Any, *, name: str = "video", channels: int | None = 3) -> torch.Tensor:
    """Validate a model-side video tensor and return it.

    Args:
        video: Expected ``(B, C, T, H, W)`` floating tensor in ``[-1, 1]``.
        name: Name used in error messages.
        channels: Required ``C`` (``None`` accepts any).

    Returns:
        ``video`` itself.

    Raises:
        TypeError: If it is not a floating-point tensor.
        ValueError: On a wrong number of dimensions or channels, non-finite values or values outside
            ``[-1, 1]`` (beyond a small tolerance).

    Example:
        >>> import torch
        >>> tuple(check_video(torch.zeros(1, 3, 2, 4, 4)).shape)
        (1, 3, 2, 4, 4)
    """
    if not _is_tensor(video):
        raise TypeError(f"{name} must be a torch.Tensor (B, C, T, H, W) in [-1, 1], got {type(video).__name__}")
    torch_mod = _torch_module()
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
    if not torch_mod.isfinite(video).all():
        raise ValueError(f"{name} contains NaN or inf")
    lo, hi = video.min().item(), video.max().item()
    if lo < -1.001 or hi > 1.001:
        raise ValueError(f"{name} values must lie in [-1, 1], found [{lo:.3g}, {hi:.3g}]")
    return video


def as_model_video(video: Any) -> torch.Tensor:
    """Anything that holds a video -> the model layout ``(B, C, T, H, W)`` float in ``[-1, 1]``, validated.

    A floating tensor ``(B, C, T, H, W)`` or ``(C, T, H, W)`` with ``C`` in ``(1, 3)`` is taken as model layout
    already (a batch dimension is added if missing); anything else goes through
    [`frames_to_tensor`][vidtok.io.frames_to_tensor] (``uint8`` or ``[0, 1]`` ``(T, H, W, C)`` arrays or
    tensors, lists of PIL images) and becomes a batch of one.

    Args:
        video: The video.

    Returns:
        A ``(B, C, T, H, W)`` tensor (the input itself when it is already in model layout).

    Raises:
        TypeError: For unsupported types or dtypes.
        ValueError: For bad shapes or values outside the expected range.

    Example:
        >>> import numpy as np
        >>> tuple(as_model_video(np.zeros((4, 8, 8, 3), np.uint8)).shape)
        (1, 3, 4, 8, 8)
    """
    if _is_tensor(video) and video.is_floating_point() and video.ndim in (4, 5) and video.shape[-4] in (1, 3):
        if video.ndim == 4 and video.shape[0] in (1, 3):
            video = video[None]
        if video.ndim == 5 and video.shape[1] in (1, 3):
            return check_video(video, channels=None)
    return check_video(frames_to_tensor(video)[None], channels=None)


def to_output(video: torch.Tensor, output_type: OutputType) -> Any:
    """A model-layout batch ``(B, C, T, H, W)`` in ``[-1, 1]`` -> what pipelines return for ``output_type``.

    Args:
        video: The videos.
        output_type: ``"pt"`` (the tensor itself), ``"np"`` (``(B, T, H, W, C)`` float in ``[0, 1]``, clamped) or
            ``"pil"`` (one list of PIL images per video).

    Returns:
        The videos in the requested form.

    Example:
        >>> import torch
        >>> to_output(torch.zeros(1, 3, 2, 4, 4), "np").shape
        (1, 2, 4, 4, 3)
    """
    if output_type == "pt":
        return video
    frames = ((video.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1).cpu().numpy()
    if output_type == "np":
        return frames
    return [[Image.fromarray((f * 255).round().astype(np.uint8)) for f in clip] for clip in frames]


def letterbox_resize(video: Any, size: tuple[int, int], value: float = -1.0) -> Any:
    """Pad a model-layout video ``(C, T, H, W)`` to the aspect of ``size`` (centered), then resize it to ``size``.

    The whole frame is kept (with bars of ``value``, black in ``[-1, 1]``), where
    [`center_resize`][vidtok.io.center_resize] crops to the aspect.

    Example:
        >>> import torch
        >>> out = letterbox_resize(torch.zeros(3, 2, 18, 32), (16, 16))
        >>> tuple(out.shape), float(out[0, 0, 0, 8]), float(out[0, 0, 8, 8])
        ((3, 2, 16, 16), -1.0, 0.0)
    """
    import torch.nn.functional as F

    _, _, h, w = video.shape
    th, tw = size
    scale = max(h / th, w / tw)
    ph, pw = max(h, round(th * scale)), max(w, round(tw * scale))
    top, left = (ph - h) // 2, (pw - w) // 2
    video = F.pad(video, (left, pw - w - left, top, ph - h - top), value=value)
    return center_resize(video, size)


def center_resize(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Center-crop a model-layout video ``(C, T, H, W)`` to the aspect of ``size``, then resize it to ``size``.

    Works on float tensors in ``[-1, 1]`` (antialiased bilinear, clamped back to ``[-1, 1]``). The datasets'
    [`resize_center_crop`][vidtok.data.transforms.resize_center_crop] does the same job on ``uint8`` frames in the
    other order (resize to cover, then crop) so that readers can resize while decoding; the two differ by
    interpolation rounding.

    Args:
        video: ``(C, T, H, W)`` tensor.
        size: Target ``(height, width)``.

    Returns:
        ``(C, T, height, width)``; a view of ``video`` when only cropping is needed.

    Example:
        >>> import torch
        >>> tuple(center_resize(torch.zeros(3, 2, 32, 48), (16, 16)).shape)
        (3, 2, 16, 16)
    """
    import torch.nn.functional as F

    _, _, h, w = video.shape
    th, tw = size
    scale = min(h / th, w / tw)
    ch, cw = round(th * scale), round(tw * scale)
    top, left = (h - ch) // 2, (w - cw) // 2
    video = video[:, :, top : top + ch, left : left + cw]
    if (ch, cw) == (th, tw):
        return video
    frames = video.transpose(0, 1)
    frames = F.interpolate(frames, size=(th, tw), mode="bilinear", align_corners=False, antialias=True)
    return frames.transpose(0, 1).clamp(-1, 1)
