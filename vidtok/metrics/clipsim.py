"""CLIPSIM: mean CLIP cosine similarity between the frames of a video and its prompt (Wu et al. 2021, GODIVA).

For each video, the cosine between the CLIP image embedding of every frame and the text embedding of the
video's prompt, averaged over frames; the metric is the mean over videos. As in the T2V papers that report
it (GODIVA, NÜWA, Make-A-Video: 0.3049 on MSR-VTT): the **raw cosine**, not ×100, not clamped at 0 (unlike
CLIPScore, Hessel et al. 2021), and not the cosine of the frame-averaged embedding (VGen's "CLIP-T").
ViT-B/32 is the usual model. Record model, weights, frames and caption sampling with every number.

CLIP (Radford et al. 2021) is built with open_clip from local weights only: ``pretrained`` is a checkpoint
file, or an open_clip tag / ``hf-hub:`` id that loads from the local Hugging Face cache (offline). Random
weights (``pretrained=None``) need ``allow_random=True`` and are labelled as such: for tests, never a score.

Frames are preprocessed as open_clip does for its models: bicubic (antialiased) resize of the shorter side
to the model's image size, centre crop, CLIP mean/std — in torch on whole batches, matching open_clip's PIL
pipeline within about one 8-bit level (PIL rounds to ``uint8`` after resizing).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidtok.metrics.eval_card import file_digest
from vidtok.metrics.i3d import resize_frames, to_model_layout

__all__ = ["CLIPSimilarity", "clipsim"]

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
#: The weight files open_clip looks for in a Hugging Face repository, safetensors first (as open_clip does).
_HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _looks_like_file(value: str) -> bool:
    if value.startswith("hf-hub:"):
        return False
    return os.sep in value or value.startswith(".") or value.lower().endswith(_CHECKPOINT_SUFFIXES)


def _cached_checkpoint(model_name: str, pretrained: str) -> tuple[str, dict[str, Any]]:
    """The local Hugging Face cache file of an open_clip tag or ``hf-hub:`` id, and the tag's settings.

    Looked up with ``try_to_load_from_cache``: no request is made, so nothing can be downloaded.
    """
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    cfg: dict[str, Any] = {}
    if pretrained.startswith("hf-hub:"):
        repo, names = pretrained[len("hf-hub:") :].strip("/"), _HUB_FILES
    else:
        cfg = dict(open_clip.get_pretrained_cfg(model_name, pretrained) or {})
        if not cfg:
            tags = open_clip.list_pretrained_tags_by_model(model_name)
            raise RuntimeError(f"{pretrained!r} is no local file and no open_clip tag of {model_name!r} (tags: {tags})")
        if cfg.get("file"):
            return cfg["file"], cfg
        if not cfg.get("hf_hub"):
            raise RuntimeError(f"open_clip tag {pretrained!r} of {model_name!r} has no Hugging Face repository")
        hub = cfg["hf_hub"]
        if hub.endswith("/"):  # "org/repo/": open_clip's default file names
            repo, names = hub.rstrip("/"), _HUB_FILES
        else:  # "org/repo/file.bin": its safetensors twin first, as open_clip does
            repo, name = os.path.split(hub)
            names = (name[:-4] + ".safetensors", name) if name.endswith((".bin", ".pth")) else (name,)
    for name in names:
        found = try_to_load_from_cache(repo, name)
        if isinstance(found, str):
            return found, cfg
    raise RuntimeError(
        f"CLIP weights {pretrained!r} for {model_name!r} are not in the local Hugging Face cache (looked for "
        f"{', '.join(names)} of {repo}); vidtok never downloads them: pass a local checkpoint file, or populate "
        "the cache on a networked machine"
    )


class CLIPSimilarity:
    """An open_clip CLIP model with its frame preprocessing, scoring videos against prompts.

    OpenAI's CLIP weights were trained with QuickGELU: load them as ``"ViT-B-32-quickgelu"`` (or pass
    ``force_quick_gelu=True``), otherwise every embedding is off (open_clip only warns, and only for tags).
    The file open_clip fetches for ``("ViT-B-32", "openai")`` is ``open_clip_pytorch_model.bin`` of the
    Hugging Face repository ``timm/vit_base_patch32_clip_224.openai``.

    Args:
        model_name: open_clip architecture, e.g. ``"ViT-B-32"`` (the usual CLIPSIM model).
        pretrained: A local checkpoint file (``open_clip.create_model(name, pretrained=path)``); an open_clip
            tag (``"openai"``) or ``"hf-hub:org/repo"`` whose weights are already in the local Hugging Face
            cache (looked up without any request; the tag's QuickGELU and preprocessing settings apply); or
            ``None`` for random weights (only with ``allow_random=True``).
        allow_random: Permit ``pretrained=None``; the result is labelled ``random-init`` and means nothing.
        force_quick_gelu: Build the towers with QuickGELU (OpenAI weights).
        device: Where the model runs.

    Attributes:
        label: ``"<model_name> @ <weights>"``, with ``random-init`` for random weights; report it.
        weights_digest: sha256 of the checkpoint file, ``None`` for random weights.
        image_size: ``(H, W)`` the image tower takes.

    Raises:
        ValueError: ``pretrained=None`` without ``allow_random``.
        FileNotFoundError: ``pretrained`` names a file that does not exist.
        RuntimeError: An unknown tag, or weights not in the local cache.
    """

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        pretrained: str | os.PathLike | None = None,
        *,
        allow_random: bool = False,
        force_quick_gelu: bool = False,
        device: str | torch.device = "cpu",
    ) -> None:
        import open_clip

        self.model_name = model_name
        self.device = torch.device(device)
        self.weights_digest: str | None = None
        if pretrained is None:
            if not allow_random:
                raise ValueError(
                    "pretrained=None builds CLIP with random weights, which scores nothing: pass a local checkpoint "
                    "file (or a tag in the local Hugging Face cache), or allow_random=True for tests"
                )
            model = open_clip.create_model(model_name, pretrained=None, force_quick_gelu=force_quick_gelu)
            self.label = f"{model_name} @ random-init"
        else:
            pretrained = os.fspath(pretrained)
            tag_cfg: dict[str, Any] = {}
            if os.path.isfile(pretrained):
                path = pretrained
            elif _looks_like_file(pretrained):
                raise FileNotFoundError(f"CLIP checkpoint file {pretrained!r} does not exist")
            else:
                path, tag_cfg = _cached_checkpoint(model_name, pretrained)
            preprocess = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}
            model = open_clip.create_model(
                model_name,
                pretrained=path,
                force_quick_gelu=force_quick_gelu or bool(tag_cfg.get("quick_gelu")),
                force_preprocess_cfg=preprocess or None,
            )
            self.weights_digest = file_digest(path)
            self.label = f"{model_name} @ {os.path.basename(path) if path == pretrained else pretrained}"
        self.model = model.to(self.device).eval()
        self.tokenizer = open_clip.get_tokenizer(model_name)
        cfg = open_clip.get_model_preprocess_cfg(self.model)
        size = cfg.get("size", 224)
        self.image_size: tuple[int, int] = (size, size) if isinstance(size, int) else tuple(size)
        self._mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)

    def __repr__(self) -> str:
        return f"CLIPSimilarity({self.label!r})"

    def preprocess(self, videos: Any) -> torch.Tensor:
        """Videos → CLIP image input ``(B, T, 3, H, W)``: bicubic shorter-side resize, centre crop, CLIP mean/std.

        Args:
            videos: Model layout ``(B, C, T, H, W)`` float in ``[-1, 1]`` or ``uint8`` ``(B, T, H, W, C)``.
        """
        x = to_model_layout(videos)
        x = resize_frames((x + 1) / 2, self.image_size, "center_crop", mode="bicubic", torchvision_rounding=True)
        x = x.clamp_(0.0, 1.0).transpose(1, 2)  # bicubic overshoots; PIL clips to the pixel range
        return (x - self._mean[:, None]) / self._std[:, None]

    @torch.inference_mode()
    def encode_text(self, prompts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Unit-norm text embeddings ``(P, D)`` float32 on the CPU."""
        out = []
        for start in range(0, len(prompts), batch_size):
            tokens = self.tokenizer(list(prompts[start : start + batch_size])).to(self.device)
            out.append(F.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu())
        return torch.cat(out)

    @torch.inference_mode()
    def encode_frames(self, videos: Any, batch_size: int = 64) -> torch.Tensor:
        """Unit-norm image embeddings of every frame ``(B, T, D)`` float32, ``batch_size`` frames per call."""
        pixels = self.preprocess(videos)
        b, t = pixels.shape[:2]
        frames = pixels.flatten(0, 1)
        out = [
            F.normalize(self.model.encode_image(frames[i : i + batch_size].to(self.device)).float(), dim=-1).cpu()
            for i in range(0, len(frames), batch_size)
        ]
        return torch.cat(out).view(b, t, -1)

    def score(self, videos: Any, prompts: str | Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Per-video CLIPSIM ``(B,)`` float64: the mean over frames of cos(frame, prompt of that video).

        Args:
            videos: ``(B, C, T, H, W)`` float in ``[-1, 1]`` or ``uint8`` ``(B, T, H, W, C)``.
            prompts: One prompt per video, in order (prompt ``i`` goes with video ``i``); a single string for
                ``B = 1``.
            batch_size: Frames per image-encoder call.

        Raises:
            ValueError: The number of prompts differs from the number of videos.
            TypeError: Prompts that are not strings.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts must be strings")
        if len(prompts) != len(videos):
            raise ValueError(f"got {len(prompts)} prompts for {len(videos)} videos: one prompt per video")
        if not prompts:
            return np.zeros(0)
        text = self.encode_text(prompts)
        frames = self.encode_frames(videos, batch_size)
        cosine = torch.einsum("btd,bd->bt", frames.double(), text.double())
        return cosine.mean(dim=1).numpy()

    def clipsim(self, videos: Any, prompts: str | Sequence[str], *, batch_size: int = 64) -> float:
        """CLIPSIM of a set: the mean over videos of :meth:`score`."""
        scores = self.score(videos, prompts, batch_size=batch_size)
        if scores.size == 0:
            raise ValueError("clipsim of no videos")
        return float(scores.mean())


def clipsim(videos: Any, prompts: str | Sequence[str], model: CLIPSimilarity, *, batch_size: int = 64) -> float:
    """CLIPSIM of ``videos`` against their ``prompts`` with ``model`` (see :meth:`CLIPSimilarity.score`).

    Example (with a local copy of OpenAI's ViT-B/32 weights)::

        model = CLIPSimilarity("ViT-B-32", pretrained="/models/clip/ViT-B-32-openai.bin")
        clipsim(videos, ["a red circle moves left", "a cat"], model)   # about 0.3 for good T2V models
    """
    return model.clipsim(videos, prompts, batch_size=batch_size)
