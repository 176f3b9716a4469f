"""Evaluation runners: generate, extract, cache, resume, and write an eval card with the full protocol.

Each runner takes a model and local data, computes one benchmark the way the papers do, and writes an
:class:`~vidtok.metrics.eval_card.EvalCard` (JSON) holding the value and every choice it depends on:

* :func:`run_fvd` — FVD (Unterthiner et al. 2019) between generated videos (one per caption) and a real set;
* :func:`run_clipsim` — CLIPSIM (mean over frames and videos of the raw CLIP cosine, GODIVA / Make-A-Video);
* :func:`run_recon` — PSNR, SSIM, MS-SSIM, LPIPS and compression of a tokenizer (or of a folder of
  reconstructions) on real clips;
* :func:`run_msrvtt` — DiCoDe Tab. 2's zero-shot MSR-VTT protocol: the 2,990 test videos, one random caption
  each (seeded), FVD and CLIPSIM from a single generation pass;
* :func:`run_ucf101` — FVD on UCF-101 with class names as prompts (train split 01 statistics by default,
  2,048 videos: "FVD-2048").

**Determinism.** Video ``i`` is generated with its own CPU ``torch.Generator`` seeded from
``SeedSequence([seed, crc32(key), repeat])`` (:func:`item_seed`): it does not depend on the batch, the order,
the device or which other items are evaluated. Real clips are sampled deterministically (first frame
``start``, fixed stride; :class:`~vidtok.evaluation.datasets.ClipSampler`); subsets are seeded draws.

**Resume.** With ``cache_dir`` every item's features (or score) are written as one small ``.npy`` file,
atomically (temporary file + ``os.replace``), in a folder named by a hash of everything they depend on
(feature network and its weights, clip protocol, model weights, generation settings, seed). Items are
processed in fixed batches of ``batch_size``; a batch whose items are all cached is skipped, any other is
recomputed whole, so a network always sees the same batch composition and a resumed run gives bit for bit
the value and card of an uninterrupted one. Real-set features are cached separately and reused by every
model evaluated against the same real set.

**Value range.** Real clips are decoded as ``uint8`` and generated videos are quantized to ``uint8`` too
(as when they are saved and read back), so both reach the feature networks by the same path.

Example (random-weight networks, for the mechanics only)::

    from vidtok.evaluation import run_fvd
    card = run_fvd("vidtok:dicode_shapes", "prompts.csv", "real_videos/", "fvd.json",
                   i3d="i3d_pretrained_400.pt", num_videos=2048, cache_dir="cache/")
    card.value, card.protocol["num_real"], card.protocol["resize"]
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from vidtok.evaluation.datasets import ClipSampler, EvalItem, EvalSet, as_eval_set, msrvtt_test, subset, ucf101
from vidtok.io.files import write_atomically
from vidtok.metrics.eval_card import EvalCard, check_sample_count

__all__ = [
    "FeatureCache",
    "build_clip",
    "build_i3d",
    "item_seed",
    "load_text_to_video",
    "load_tokenizer",
    "run_clipsim",
    "run_fvd",
    "run_msrvtt",
    "run_recon",
    "run_ucf101",
]

#: Frames of generated videos are taken consecutively at the model's frame rate; the real clips' ``stride``
#: is the user's way to match the real videos' motion speed to it.
_VALUE_RANGE = "uint8 [0, 255] frames; generated videos quantized to uint8 like decoded real ones"
_SEED_RULE = "video i: CPU torch.Generator seeded with SeedSequence([seed, crc32(key), repeat])"
_GENERATION_KEYS = (
    "guidance_scale",
    "temperature",
    "num_inference_steps",
    "decoder_guidance_scale",
    "eta",
    "decoder_guidance_rescale",
)


def item_seed(seed: int, key: str, repeat: int = 0) -> int:
    """The generation seed of one item: a function of ``(seed, key, repeat)`` only.

    >>> item_seed(0, "video7010") == item_seed(0, "video7010"), item_seed(0, "a") != item_seed(1, "a")
    (True, True)
    """
    parts = [int(seed) & 0xFFFFFFFF, zlib.crc32(key.encode("utf-8")), int(repeat)]
    return int(np.random.SeedSequence(parts).generate_state(1)[0])


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()


class FeatureCache:
    """Per-item arrays in ``root/<kind>-<hash of fields>/``, one atomic ``.npy`` per item; ``root=None``: off.

    ``fields`` is everything the cached values depend on; it is written beside them (``fields.json``), so a
    folder can be traced to what produced it, and a change of any field starts a new folder. An empty array
    marks an item that was skipped (a real video shorter than the clip).

    Args:
        root: Cache folder, or ``None`` to cache nothing.
        kind: Prefix of the sub-folder (``"real-fvd"``, ``"fake-fvd"``, ``"fake-clipsim"``, ...).
        fields: JSON data the values depend on.
    """

    def __init__(self, root: str | os.PathLike[str] | None, kind: str, fields: dict[str, Any]) -> None:
        self.folder: Path | None = None
        if root is None:
            return
        self.folder = Path(root).expanduser() / f"{kind}-{_digest(fields)[:16]}"
        self.folder.mkdir(parents=True, exist_ok=True)
        record = self.folder / "fields.json"
        if not record.is_file():
            _atomic_write(record, json.dumps(fields, indent=2, sort_keys=True, default=str).encode("utf-8"))

    def _file(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{hashlib.sha1(key.encode('utf-8')).hexdigest()[:24]}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached array of ``key``, or ``None`` (not cached, caching off, or an unreadable file)."""
        if self.folder is None:
            return None
        path = self._file(key)
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):  # a damaged file is recomputed, not trusted
            return None

    def put(self, key: str, value: np.ndarray) -> None:
        """Store ``value`` for ``key`` (atomically; nothing when caching is off)."""
        if self.folder is None:
            return
        import io

        buffer = io.BytesIO()
        np.save(buffer, np.asarray(value), allow_pickle=False)
        _atomic_write(self._file(key), buffer.getvalue())

    def __len__(self) -> int:
        return 0 if self.folder is None else len(list(self.folder.glob("*.npy")))


def _atomic_write(path: Path, data: bytes) -> None:
    write_atomically(path, lambda tmp: tmp.write_bytes(data))


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="video", disable=not progress, dynamic_ncols=True)


def _run_batches(
    keys: Sequence[str],
    caches: dict[str, FeatureCache],
    compute: Callable[[list[int], set[str]], dict[str, list[np.ndarray]]],
    *,
    batch_size: int,
    desc: str,
    progress: bool,
) -> dict[str, list[np.ndarray]]:
    """Per-item arrays of every cache's metric, computing only batches with a missing item (whole batches)."""
    out: dict[str, list[Any]] = {name: [None] * len(keys) for name in caches}
    with _bar(len(keys), desc, progress) as bar:
        for start in range(0, len(keys), batch_size):
            batch = list(range(start, min(len(keys), start + batch_size)))
            todo = set()
            for name, cache in caches.items():
                got = [cache.get(keys[i]) for i in batch]
                if any(g is None for g in got):
                    todo.add(name)
                else:
                    for i, g in zip(batch, got):
                        out[name][i] = g
            if todo:
                computed = compute(batch, todo)
                for name in todo:
                    for i, value in zip(batch, computed[name]):
                        value = np.asarray(value)
                        caches[name].put(keys[i], value)
                        out[name][i] = value
            bar.update(len(batch))
    return out


# ---------------------------------------------------------------------------------------------- models


def load_text_to_video(model: Any = None, *, device: str | None = None) -> tuple[Any, str]:
    """A text-to-video pipeline and its location, from a folder, hub id, ``vidtok:<name>``, object or ``None``.

    Args:
        model: A ``TextToVideo`` (or any pipeline called as ``pipe(prompt, num_keyframes=..., generator=...,
            output_type="pt")`` with ``frame_stride``), a folder or hub id (``from_pretrained``; the local
            Hugging Face cache only when ``HF_HUB_OFFLINE`` is set), ``"vidtok:<name>"`` (weights shipped with
            vidtok), or ``None``: the embedded default (``vidtok:dicode_shapes``).
        device: Move the pipeline there.

    Returns:
        ``(pipeline, location)``; ``location`` is what the eval card records as ``model``.

    Raises:
        OSError: A location that is neither a local folder nor in the Hub cache (named).
        TypeError: An object that is not a pipeline.
    """
    from vidtok.pipelines.text_to_video import TextToVideo, load_default

    if model is None:
        pipe, location = load_default(), "vidtok:dicode_shapes"
    elif isinstance(model, (str, os.PathLike)):
        from vidtok.recipes.base import resolve_weights

        location = os.fspath(model)
        path = resolve_weights(location)
        try:
            pipe = TextToVideo.from_pretrained(path)
        except OSError as err:
            if os.path.isdir(path) or os.path.isabs(path) or path.startswith((".", "~")):
                raise
            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
            where = "the local Hugging Face cache (HF_HUB_OFFLINE is set)" if offline else "the Hub or the local cache"
            raise OSError(f"model {location}: not a local folder, and not found in {where}") from err
        if os.path.isdir(path) and not location.startswith("vidtok:"):
            location = os.path.abspath(path)
    else:
        if not callable(model) or not hasattr(model, "frame_stride"):
            raise TypeError(f"model must be a TextToVideo pipeline, a folder, a hub id or None, got {type(model)}")
        pipe = model
        config = getattr(model, "config", None) or {}
        location = getattr(model, "name_or_path", None) or config.get("_name_or_path") or f"<{type(model).__name__}>"
    if device is not None:
        pipe.to(device)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    return pipe, str(location)


def load_tokenizer(model: Any = None, *, device: str | None = None) -> tuple[Any, str]:
    """A video tokenizer and its location: a ``VideoTokenizer``, a tokenizer or pipeline folder, or ``None``.

    ``None`` is the shipped Shapes deep tokenizer; a pipeline folder (``model_index.json``) gives its
    ``video_tokenizer``; a tokenizer folder is loaded with the class its ``config.json`` names (deep tokens when
    it names none).
    """
    from vidtok.tokenizers.base import TOKENIZERS, VideoTokenizer
    from vidtok.tokenizers.deep_tokens import DeepTokenizer, load_shapes_default

    if model is None:
        tok, location = load_shapes_default(), "vidtok:deep_tokens_shapes"
    elif isinstance(model, VideoTokenizer):
        tok = model
        location = model.config.get("_name_or_path") or f"<{type(model).__name__}>"
    else:
        from vidtok.modeling_utils import read_json_object
        from vidtok.recipes.base import resolve_weights

        location = os.fspath(model)
        path = resolve_weights(location)
        if os.path.isfile(os.path.join(path, "model_index.json")):
            path = os.path.join(path, "video_tokenizer")
        if not os.path.isdir(path):
            raise FileNotFoundError(f"tokenizer folder {path} does not exist")
        config = os.path.join(path, "config.json")
        name = read_json_object(config, "tokenizer config").get("_class_name") if os.path.isfile(config) else None
        classes = {cls.__name__: cls for _, cls in TOKENIZERS.items()}
        tok = classes.get(name, DeepTokenizer).from_pretrained(path)
        if not location.startswith("vidtok:"):
            location = os.path.abspath(location)
    if device is not None:
        tok = tok.to(device)
    return tok.eval(), str(location)


def _module_digest(obj: Any) -> str:
    """sha256 over every module's weights of a pipeline or tokenizer (what a feature cache must not outlive)."""
    import torch
    from torch import nn

    modules = {"": obj} if isinstance(obj, nn.Module) else {k: v for k, v in getattr(obj, "components", {}).items()}
    h = hashlib.sha256()
    for name, module in sorted(modules.items()):
        if not isinstance(module, nn.Module):
            continue
        for key, tensor in sorted(module.state_dict().items()):
            t = tensor.detach().to("cpu").contiguous()
            h.update(f"{name}.{key}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def build_i3d(i3d: Any = None, *, resize: str = "squash", device: str | None = None) -> Any:
    """The FVD feature extractor: I3D from a local file (or ``$VIDTOK_I3D_PATH``), or an extractor given.

    Args:
        i3d: A weights file (``i3d_pretrained_400.pt`` state dict or StyleGAN-V's ``i3d_torchscript.pt``),
            ``None`` for ``$VIDTOK_I3D_PATH``, a ``torch.nn.Module`` (e.g. a random-init ``InceptionI3d`` for
            tests) or an object with ``extract(videos, batch_size)``, ``name``, ``weights_digest``, ``protocol``
            (used as is).
        resize: Resize of the extractor's own preprocessing to 224² (``"squash"`` or ``"center_crop"``).
        device: Where it runs.

    Raises:
        FileNotFoundError: No weights file (the message names the expected files and ``$VIDTOK_I3D_PATH``).
    """
    if i3d is not None and callable(getattr(i3d, "extract", None)):
        return i3d
    from vidtok.metrics.fvd import VideoFeatureExtractor

    return VideoFeatureExtractor.i3d(i3d, resize=resize, device=device or "cpu")


def build_clip(
    clip: Any = None, *, model_name: str = "ViT-B-32", weights: str | os.PathLike[str] | None = None, device=None
) -> Any:
    """The CLIPSIM scorer: ``CLIPSimilarity(model_name, weights)`` from local weights, or an object given.

    Raises:
        FileNotFoundError: No ``weights`` given, or a file or cache entry that is not there (named).
    """
    if clip is not None:
        if not callable(getattr(clip, "score", None)):
            raise TypeError(f"clip must have a score(videos, prompts) method, got {type(clip).__name__}")
        return clip
    if weights is None:
        raise FileNotFoundError(
            f"CLIPSIM needs local CLIP {model_name} weights and nothing is downloaded: pass clip_weights= "
            "(--clip-weights FILE) naming a checkpoint file such as open_clip's ViT-B-32 OpenAI weights "
            "(open_clip_pytorch_model.bin of laion/CLIP-ViT-B-32 ... or timm/vit_base_patch32_clip_224.openai), "
            "or an open_clip tag already in the local Hugging Face cache"
        )
    from vidtok.metrics.clipsim import CLIPSimilarity

    try:
        return CLIPSimilarity(model_name, pretrained=weights, device=device or "cpu")
    except RuntimeError as err:  # a tag not in the local cache: a missing file, reported as one
        raise FileNotFoundError(str(err)) from None


def _extractor_protocol(extractor: Any) -> dict[str, Any]:
    protocol = dict(getattr(extractor, "protocol", {}) or {})
    # "frames" lists the clip lengths this extractor object has seen: empty after a fully cached resume, so it is
    # recorded as num_frames by the runner instead.
    protocol.pop("frames", None)
    return protocol


def _clip_protocol(clip: Any) -> dict[str, Any]:
    return {
        "clip_model": getattr(clip, "label", type(clip).__name__),
        "clip_weights_digest": getattr(clip, "weights_digest", None),
        "clip_image_size": list(getattr(clip, "image_size", ()) or ()),
        "clip_preprocess": "bicubic shorter side + center crop, CLIP mean/std (open_clip)",
        "clipsim_definition": "mean over frames of raw cosine(frame, prompt), mean over videos; not x100",
    }


# ---------------------------------------------------------------------------------------------- generation


def _num_keyframes(pipe: Any, frames: int) -> int:
    f = int(pipe.frame_stride)
    return max(2, math.ceil((frames - 1) / f) + 1)


def _generate(pipe: Any, prompt: str, seed: int, frames: int, generation: dict[str, Any]) -> np.ndarray:
    """One generated video as ``uint8`` ``(frames, H, W, 3)``, from its own seeded CPU generator."""
    import torch

    from vidtok.io import tensor_to_frames

    generator = torch.Generator().manual_seed(seed)
    out = pipe(
        prompt,
        num_keyframes=_num_keyframes(pipe, frames),
        generator=generator,
        output_type="pt",
        progress=False,
        **generation,
    )
    video = out.frames if hasattr(out, "frames") else out[0]
    if video.shape[2] < frames:
        raise ValueError(f"the model generated {video.shape[2]} frames, fewer than the {frames} evaluated")
    return tensor_to_frames(video[0, :, :frames])


def _generation_settings(generate_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    given = {k: v for k, v in (generate_kwargs or {}).items() if v is not None}
    unknown = sorted(set(given) - set(_GENERATION_KEYS))
    if unknown:
        raise ValueError(f"generate_kwargs: unknown setting(s) {unknown}; known: {list(_GENERATION_KEYS)}")
    return given


def _generation_details(pipe: Any, frames: int, given: dict[str, Any]) -> dict[str, Any]:
    """How the evaluated model generated, for the card's details.

    A property of the model, not of the measurement: two models with different samplers are exactly what a
    comparison compares, so these stay out of the protocol.
    """
    tok = getattr(pipe, "video_tokenizer", None)
    saved = getattr(tok, "decode_defaults", None) or {}
    return {
        "generation": {"num_keyframes": _num_keyframes(pipe, frames), **given},
        "decoder_saved_defaults": dict(saved),
        "generated_fps": float(getattr(pipe, "fps", 0.0) or 0.0) or None,
    }


def _fake_items(captions: EvalSet, num_videos: int | None, seed: int) -> tuple[list[tuple[EvalItem, int]], EvalSet]:
    """(item, repeat) pairs: a seeded subset when fewer are asked, the captions cycled when more are."""
    if num_videos is not None and num_videos < 1:
        raise ValueError(f"num_videos must be >= 1, got {num_videos}")
    if num_videos is None or num_videos <= len(captions):
        chosen = subset(captions, num_videos, seed)
        return [(it, 0) for it in chosen.items], chosen
    n = len(captions)
    pairs = [(captions.items[i % n], i // n) for i in range(num_videos)]
    return pairs, replace(captions, info={**captions.info, "cycled": True})


def _check_common(frames: int, stride: int, batch_size: int, resize: str) -> None:
    for name, value in (("frames", frames), ("stride", stride), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    from vidtok.evaluation.datasets import RESIZE_MODES

    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")


def _resolution(resolution: Any, pipe: Any, generation: dict[str, Any], seed: int) -> tuple[int, int]:
    """The evaluated ``(H, W)``: given, else the generated videos' size (the tokenizer's ``sample_size``)."""
    if resolution is not None:
        return ClipSampler(resolution=resolution).resolution
    size = getattr(getattr(pipe, "video_tokenizer", None), "sample_size", None)
    if size:
        return ClipSampler(resolution=tuple(size)).resolution
    probe = _generate(pipe, "a video", seed, 2, generation)  # a tokenizer without a native size: ask it
    return int(probe.shape[1]), int(probe.shape[2])


# ---------------------------------------------------------------------------------------------- the engine


def _evaluate_generation(
    pipe: Any,
    location: str,
    fake: list[tuple[EvalItem, int]],
    real: EvalSet | None,
    *,
    extractor: Any,
    clip: Any,
    sampler: ClipSampler,
    generation: dict[str, Any],
    batch_size: int,
    cache_dir: Any,
    seed: int,
    progress: bool,
) -> dict[str, Any]:
    """Features of the real clips and of the generated videos (FVD), and per-video CLIPSIM; cached, resumable."""
    frames = sampler.frames
    result: dict[str, Any] = {}
    # The weights' digest names the model in the card and keys the caches: a retrained model in the same folder
    # starts new caches instead of reusing stale features.
    digest = _module_digest(pipe)
    keys = [f"{it.key}#{r}|{it.caption}" for it, r in fake]
    # The ordered item list is part of what a cached value depends on: batches (and so the network's arithmetic)
    # are the same only for the same list, which keeps a resumed run bit-identical to an uninterrupted one.
    fake_fields = {
        "items": _digest(keys),
        "model_digest": digest,
        "location": location,
        "generation": generation,
        "frames": frames,
        "seed": seed,
        "seed_rule": _SEED_RULE,
    }
    caches: dict[str, FeatureCache] = {}
    if extractor is not None:
        ident = {
            "extractor": getattr(extractor, "name", type(extractor).__name__),
            "weights_digest": getattr(extractor, "weights_digest", None),
            "extractor_protocol": _extractor_protocol(extractor),
            "resolution": list(sampler.resolution),
            "resize": sampler.resize,
            "batch_size": batch_size,
        }
        caches["fvd"] = FeatureCache(cache_dir, "fake-fvd", {**fake_fields, **ident})
    if clip is not None:
        ident = {**_clip_protocol(clip), "batch_size": batch_size}
        caches["clipsim"] = FeatureCache(cache_dir, "fake-clipsim", {**fake_fields, **ident})

    def compute_fake(batch: list[int], todo: set[str]) -> dict[str, list[np.ndarray]]:
        videos = [
            _generate(pipe, fake[i][0].caption, item_seed(seed, fake[i][0].key, fake[i][1]), frames, generation)
            for i in batch
        ]
        out: dict[str, list[np.ndarray]] = {}
        if "fvd" in todo:
            resized = np.stack([sampler.resize_frames(v) for v in videos])
            out["fvd"] = list(np.asarray(extractor.extract(resized, batch_size), dtype=np.float64))
        if "clipsim" in todo:
            scores = clip.score(np.stack(videos), [fake[i][0].caption for i in batch])
            out["clipsim"] = [np.asarray([s], dtype=np.float64) for s in np.asarray(scores)]
        return out

    fake_out = _run_batches(keys, caches, compute_fake, batch_size=batch_size, desc="generated", progress=progress)
    if "fvd" in fake_out:
        result["fake_features"] = np.stack(fake_out["fvd"])
    if "clipsim" in fake_out:
        result["clip_scores"] = np.concatenate(fake_out["clipsim"])
    if extractor is not None and real is not None:
        real_fields = {
            "extractor": getattr(extractor, "name", type(extractor).__name__),
            "weights_digest": getattr(extractor, "weights_digest", None),
            "extractor_protocol": _extractor_protocol(extractor),
            "clip": sampler.protocol(),
            "set": [real.source, real.location, real.split],
            "items": _digest([it.key for it in real.items]),
            "batch_size": batch_size,
        }
        real_cache = FeatureCache(cache_dir, "real-fvd", real_fields)

        def compute_real(batch: list[int], todo: set[str]) -> dict[str, list[np.ndarray]]:
            clips = [sampler.load(real.items[i].path) for i in batch]
            present = [c for c in clips if c is not None]
            feats = iter(np.asarray(extractor.extract(np.stack(present), batch_size)) if present else ())
            # Short videos are skipped (an empty marker is cached), the others keep their batch.
            return {"fvd": [next(feats) if c is not None else np.zeros(0) for c in clips]}

        real_keys = [it.key for it in real.items]
        real_out = _run_batches(
            real_keys, {"fvd": real_cache}, compute_real, batch_size=batch_size, desc="real", progress=progress
        )["fvd"]
        kept = [f for f in real_out if f.size]
        skipped = [real.items[i].key for i, f in enumerate(real_out) if not f.size]
        if skipped:
            warnings.warn(
                f"{len(skipped)} real video(s) shorter than the {sampler.span} frames a clip spans were skipped "
                f"(first: {skipped[0]}); the card records num_real = {len(kept)}",
                UserWarning,
                stacklevel=3,
            )
        if not kept:
            raise ValueError(f"no real video of {real.describe()} has the {sampler.span} frames a clip spans")
        result["real_features"] = np.stack(kept)
        result["skipped_real"] = skipped
    result["model_digest"] = digest
    return result


def _fvd_value(real: np.ndarray, fake: np.ndarray, unbiased: bool) -> float:
    from vidtok.metrics.frechet import FeatureStats, frechet_distance_from_stats

    a, b = FeatureStats().update(real), FeatureStats().update(fake)
    return frechet_distance_from_stats(a, b, unbiased=unbiased)


def _fvd_protocol(extractor: Any, features: dict[str, Any], unbiased: bool) -> dict[str, Any]:
    return {
        "feature_network": getattr(extractor, "name", type(extractor).__name__),
        "weights_digest": getattr(extractor, "weights_digest", None),
        "feature_protocol": _extractor_protocol(extractor),
        "feature_dim": int(features["fake_features"].shape[1]),
        "num_real": int(len(features["real_features"])),
        "num_fake": int(len(features["fake_features"])),
        "covariance": "unbiased (divide by N - 1)" if unbiased else "biased (divide by N)",
        "short_real_videos": "skipped",
    }


def _save(card: EvalCard, out: Any) -> EvalCard:
    if out is not None:
        card.save(out)
    return card


def _sibling(out: Any, metric: str) -> str | None:
    if out is None:
        return None
    root, ext = os.path.splitext(os.fspath(out))
    return f"{root}.{metric}{ext or '.json'}"


def _generation_cards(
    metrics: Sequence[str],
    *,
    pipe: Any,
    location: str,
    fake_set: EvalSet,
    fake: list[tuple[EvalItem, int]],
    real: EvalSet | None,
    extractor: Any,
    clip: Any,
    sampler: ClipSampler,
    generation: dict[str, Any],
    unbiased: bool,
    batch_size: int,
    cache_dir: Any,
    seed: int,
    progress: bool,
    out: Any,
    combined_name: str,
    extra_protocol: dict[str, Any] | None = None,
) -> EvalCard:
    """Run the generation pass once for every metric asked; write one card (several: a combined one + siblings)."""
    start = time.time()
    feats = _evaluate_generation(
        pipe,
        location,
        fake,
        real,
        extractor=extractor if "fvd" in metrics else None,
        clip=clip if "clipsim" in metrics else None,
        sampler=sampler,
        generation=generation,
        batch_size=batch_size,
        cache_dir=cache_dir,
        seed=seed,
        progress=progress,
    )
    # Clip sampling and resizing apply to FVD (real clips, and I3D's input); CLIP scores the generated frames as
    # they are, with its own preprocessing.
    clip_fields = (
        sampler.protocol()
        if "fvd" in metrics
        else {"num_frames": sampler.frames, "resolution": list(sampler.resolution)}
    )
    common = {
        **clip_fields,
        "value_range": _VALUE_RANGE,
        **fake_set.protocol("captions"),
        "frames_taken": sampler.frames,
        "seed_rule": _SEED_RULE,
        **(extra_protocol or {}),
    }
    details_common = {
        **_generation_details(pipe, sampler.frames, generation),
        "captions_location": fake_set.location,
        "model_digest": feats.get("model_digest"),
        "elapsed_s": round(time.time() - start, 3),
    }
    cards: dict[str, EvalCard] = {}
    if "fvd" in metrics:
        n = min(len(feats["real_features"]), len(feats["fake_features"]))
        check_sample_count("fvd", n)
        protocol = {**common, **real.protocol("real"), **_fvd_protocol(extractor, feats, unbiased)}
        details = {**details_common, "real_location": real.location, "skipped_real": feats["skipped_real"][:20]}
        value = _fvd_value(feats["real_features"], feats["fake_features"], unbiased)
        cards["fvd"] = EvalCard("fvd", value, protocol, model=location, seed=seed, details=details)
    if "clipsim" in metrics:
        scores = feats["clip_scores"]
        check_sample_count("clipsim", len(scores))
        protocol = {**common, **_clip_protocol(clip), "num_fake": int(len(scores))}
        details = {**details_common, "std": float(scores.std()), "min": float(scores.min()), "max": float(scores.max())}
        value = float(scores.mean())
        cards["clipsim"] = EvalCard("clipsim", value, protocol, model=location, seed=seed, details=details)
    if len(cards) == 1:
        return _save(next(iter(cards.values())), out)
    for name, card in cards.items():
        _save(card, _sibling(out, name))
    protocol: dict[str, Any] = {}
    for card in cards.values():
        protocol.update(card.protocol)
    combined = EvalCard(
        combined_name,
        {name: card.value for name, card in cards.items()},
        protocol,
        model=location,
        seed=seed,
        details={**details_common, "cards": {name: _sibling(out, name) for name in cards}},
    )
    return _save(combined, out)


# ---------------------------------------------------------------------------------------------- runners


def run_fvd(
    model: Any,
    captions: Any,
    real: Any,
    out: str | os.PathLike[str] | None,
    *,
    i3d: Any = None,
    num_videos: int | None = None,
    frames: int = 16,
    stride: int = 1,
    resolution: int | tuple[int, int] | None = None,
    resize: str = "squash",
    unbiased: bool = False,
    batch_size: int = 4,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    generate_kwargs: dict[str, Any] | None = None,
    device: str | None = None,
    progress: bool = True,
) -> EvalCard:
    """FVD between videos generated from ``captions`` and clips of the ``real`` videos; writes an eval card.

    Generated videos: one per caption (a seeded subset with ``num_videos`` fewer, the captions cycled with more),
    ``frames`` consecutive frames at the model's rate. Real clips: ``frames`` frames every ``stride`` from frame
    0, resized to ``resolution`` by ``resize`` (videos too short are skipped and counted); ``num_videos`` also
    caps the real set (a seeded subset). Both go through the I3D preprocessing (to 224², ``resize``) as
    ``uint8`` frames. The Fréchet distance uses float64 statistics, biased (÷N, StyleGAN-V) covariances unless
    ``unbiased``. Protocols compare only at equal counts: :class:`~vidtok.metrics.eval_card.SmallSampleWarning`
    below 256 videos, use 2,048 ("FVD-2048").

    Args:
        model: Text-to-video model (see :func:`load_text_to_video`).
        captions: Captions CSV (``caption`` column, optional ``video``), an :class:`EvalSet`, or a list of prompts.
        real: Folder of real videos or an :class:`EvalSet`; ``None`` takes the captions file's ``video`` column.
        out: Eval card path (``.json``), or ``None`` to write nothing.
        i3d: I3D weights file (else ``$VIDTOK_I3D_PATH``) or an extractor (see :func:`build_i3d`).
        num_videos: Videos per set (default: every caption / every real video).
        frames: Frames per clip (16: "FVD-16"; I3D needs at least 9).
        stride: Frame stride of the real clips.
        resolution: ``(H, W)`` (or a side) both sets are brought to before I3D; default: the generated size.
        resize: ``"squash"`` (TF FVD, StyleGAN-V) or ``"center_crop"`` (VideoGPT), for real clips and I3D input.
        unbiased: Covariances ÷(N − 1) (VideoGPT) instead of ÷N.
        batch_size: Videos per feature-network batch and cache batch.
        cache_dir: Folder of per-video feature caches (resume, and real features reused across models).
        seed: Seed of generation and of subset draws.
        generate_kwargs: Generation settings passed to the pipeline (``guidance_scale``, ``temperature``,
            ``num_inference_steps``, ``decoder_guidance_scale``, ``eta``, ``decoder_guidance_rescale``).
        device: Device of the model and the feature network.
        progress: Progress bars.

    Returns:
        The card (``metric="fvd"``).

    Raises:
        FileNotFoundError: Missing I3D weights (the expected files are named), captions file or real folder.
        ValueError: Bad arguments, or no real video long enough.
    """
    _check_common(frames, stride, batch_size, resize)
    extractor = build_i3d(i3d, resize=resize, device=device)  # weights first: fail before any generation
    fake_set = as_eval_set(captions, what="captions")
    if real is None:
        real_set = EvalSet(tuple(it for it in fake_set.items if it.path), fake_set.source, fake_set.location)
        if not real_set.items:
            raise ValueError("real is None and the captions have no 'video' column: pass a folder of real videos")
    else:
        real_set = as_eval_set(real, what="real")
    real_set = subset(real_set, num_videos, seed)
    generation = _generation_settings(generate_kwargs)
    fake, fake_set = _fake_items(fake_set, num_videos, seed)
    fake_set.captions  # noqa: B018  (every generated video needs a prompt: raises naming the first without)
    pipe, location = load_text_to_video(model, device=device)  # last: every cheap check has passed
    sampler = ClipSampler(frames, stride, _resolution(resolution, pipe, generation, seed), resize)
    return _generation_cards(
        ("fvd",),
        pipe=pipe,
        location=location,
        fake_set=fake_set,
        fake=fake,
        real=real_set,
        extractor=extractor,
        clip=None,
        sampler=sampler,
        generation=generation,
        unbiased=unbiased,
        batch_size=batch_size,
        cache_dir=cache_dir,
        seed=seed,
        progress=progress,
        out=out,
        combined_name="fvd",
    )


def run_clipsim(
    model: Any,
    captions: Any,
    out: str | os.PathLike[str] | None,
    *,
    clip: Any = None,
    clip_model: str = "ViT-B-32",
    clip_weights: str | os.PathLike[str] | None = None,
    num_videos: int | None = None,
    frames: int = 16,
    batch_size: int = 4,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    generate_kwargs: dict[str, Any] | None = None,
    device: str | None = None,
    progress: bool = True,
) -> EvalCard:
    """CLIPSIM of videos generated from ``captions``: mean over frames and videos of the raw CLIP cosine.

    Every one of the ``frames`` generated frames is scored against its video's prompt (CLIP ViT-B/32 by
    default, from local weights only); the card's value is the mean over videos, raw cosine (0.2950 for DiCoDe on
    MSR-VTT, Tab. 2), not ×100.

    Args:
        model: Text-to-video model (see :func:`load_text_to_video`).
        captions: Captions CSV, an :class:`EvalSet` or a list of prompts.
        out: Eval card path, or ``None``.
        clip: A scorer with ``score(videos, prompts)`` (else built from ``clip_model`` / ``clip_weights``).
        clip_model: open_clip architecture.
        clip_weights: Local checkpoint file (or an open_clip tag in the local Hugging Face cache).
        num_videos: Videos to generate (default: one per caption).
        frames: Frames per video scored.
        batch_size: Videos per scoring batch and cache batch.
        cache_dir: Per-video score cache (resume).
        seed: Seed of generation and of the subset draw.
        generate_kwargs: Generation settings (see :func:`run_fvd`).
        device: Device of the model and of CLIP.
        progress: Progress bars.

    Raises:
        FileNotFoundError: No CLIP weights (named).
    """
    _check_common(frames, 1, batch_size, "squash")
    scorer = build_clip(clip, model_name=clip_model, weights=clip_weights, device=device)
    fake_set = as_eval_set(captions, what="captions")
    generation = _generation_settings(generate_kwargs)
    fake, fake_set = _fake_items(fake_set, num_videos, seed)
    fake_set.captions  # noqa: B018
    pipe, location = load_text_to_video(model, device=device)
    size = _resolution(None, pipe, generation, seed)
    return _generation_cards(
        ("clipsim",),
        pipe=pipe,
        location=location,
        fake_set=fake_set,
        fake=fake,
        real=None,
        extractor=None,
        clip=scorer,
        sampler=ClipSampler(frames, 1, size, "squash"),
        generation=generation,
        unbiased=False,
        batch_size=batch_size,
        cache_dir=cache_dir,
        seed=seed,
        progress=progress,
        out=out,
        combined_name="clipsim",
    )


def _metric_list(metrics: Any) -> tuple[str, ...]:
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    bad = [m for m in names if m not in ("fvd", "clipsim")]
    if not names or bad:
        raise ValueError(f"metrics must be 'fvd' and/or 'clipsim', got {list(names)}")
    return tuple(m for m in ("fvd", "clipsim") if m in names)


def _paired_benchmark(
    metrics: Sequence[str],
    model: Any,
    data: EvalSet,
    out: Any,
    *,
    extractor: Any,
    clip: Any,
    num_videos: int | None,
    frames: int,
    stride: int,
    resolution: int | tuple[int, int] | None,
    resize: str,
    unbiased: bool,
    batch_size: int,
    cache_dir: Any,
    seed: int,
    generate_kwargs: dict[str, Any] | None,
    device: str | None,
    progress: bool,
    combined_name: str,
    benchmark: str,
) -> EvalCard:
    """A benchmark whose real videos carry their prompts (MSR-VTT, UCF-101): one generated video per real one.

    A seeded subset of ``num_videos`` real videos is drawn; each one's caption prompts one generated video
    (repeat 0), so the generated and the real set match item for item. The model loads last, after every cheap
    check; ``benchmark`` is recorded in the protocol.
    """
    data = subset(data, num_videos, seed)
    generation = _generation_settings(generate_kwargs)
    pipe, location = load_text_to_video(model, device=device)
    sampler = ClipSampler(frames, stride, _resolution(resolution, pipe, generation, seed), resize)
    return _generation_cards(
        metrics,
        pipe=pipe,
        location=location,
        fake_set=data,
        fake=[(it, 0) for it in data.items],
        real=data,
        extractor=extractor,
        clip=clip,
        sampler=sampler,
        generation=generation,
        unbiased=unbiased,
        batch_size=batch_size,
        cache_dir=cache_dir,
        seed=seed,
        progress=progress,
        out=out,
        combined_name=combined_name,
        extra_protocol={"benchmark": benchmark},
    )


def run_msrvtt(
    model: Any,
    root: str | os.PathLike[str],
    out: str | os.PathLike[str] | None,
    *,
    metrics: str | Sequence[str] = ("fvd", "clipsim"),
    i3d: Any = None,
    clip: Any = None,
    clip_model: str = "ViT-B-32",
    clip_weights: str | os.PathLike[str] | None = None,
    caption_seed: int = 0,
    annotation: str | os.PathLike[str] | None = None,
    videos: str | os.PathLike[str] | None = None,
    missing: str = "error",
    num_videos: int | None = None,
    frames: int = 16,
    stride: int = 1,
    resolution: int | tuple[int, int] | None = None,
    resize: str = "squash",
    unbiased: bool = False,
    batch_size: int = 4,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    generate_kwargs: dict[str, Any] | None = None,
    device: str | None = None,
    progress: bool = True,
) -> EvalCard:
    """Zero-shot MSR-VTT (DiCoDe Tab. 2): the 2,990 test videos, one random caption each, FVD and CLIPSIM.

    One video is generated per test video from its sampled caption (:func:`~vidtok.evaluation.datasets.msrvtt_test`,
    ``caption_seed``); FVD compares them with the test videos' clips, CLIPSIM scores them against their captions;
    both from the same generation pass. With both metrics, ``out`` holds a combined card (``metric="msrvtt"``,
    ``value={"fvd": ..., "clipsim": ...}``) and ``<out>.fvd.json`` / ``<out>.clipsim.json`` the single-metric
    cards; with one metric, ``out`` is that metric's card. ``num_videos`` evaluates a seeded subset (recorded:
    the number is then not the 2,990-video one).

    Args:
        model: Text-to-video model (see :func:`load_text_to_video`).
        root: The local ``MSRVTT`` folder (see :func:`~vidtok.evaluation.datasets.msrvtt_test` for layouts).
        out: Eval card path, or ``None``.
        metrics: ``"fvd"``, ``"clipsim"`` or both.
        i3d: I3D weights or extractor (FVD).
        clip: CLIP scorer (CLIPSIM), else ``clip_model`` + ``clip_weights``.
        clip_model: open_clip architecture.
        clip_weights: Local CLIP checkpoint.
        caption_seed: Seed of the one-caption-per-video draw.
        annotation: Annotation JSON (default: found under ``root``).
        videos: Folder of the videos (default: found under ``root``).
        missing: ``"error"`` or ``"skip"`` for absent test videos.
        num_videos: Evaluate a seeded subset of this many test videos.
        frames: Frames per clip.
        stride: Frame stride of the real clips.
        resolution: Evaluated size (default: the generated size).
        resize: ``"squash"`` or ``"center_crop"``.
        unbiased: FVD covariances ÷(N − 1).
        batch_size: Videos per batch.
        cache_dir: Feature cache folder (resume).
        seed: Generation and subset seed.
        generate_kwargs: Generation settings (see :func:`run_fvd`).
        device: Device.
        progress: Progress bars.
    """
    metrics = _metric_list(metrics)
    _check_common(frames, stride, batch_size, resize)
    extractor = build_i3d(i3d, resize=resize, device=device) if "fvd" in metrics else None
    scorer = None
    if "clipsim" in metrics:
        scorer = build_clip(clip, model_name=clip_model, weights=clip_weights, device=device)
    data = msrvtt_test(root, caption_seed=caption_seed, annotation=annotation, videos=videos, missing=missing)
    return _paired_benchmark(
        metrics,
        model,
        data,
        out,
        extractor=extractor,
        clip=scorer,
        num_videos=num_videos,
        frames=frames,
        stride=stride,
        resolution=resolution,
        resize=resize,
        unbiased=unbiased,
        batch_size=batch_size,
        cache_dir=cache_dir,
        seed=seed,
        generate_kwargs=generate_kwargs,
        device=device,
        progress=progress,
        combined_name="msrvtt",
        benchmark="MSR-VTT zero-shot (DiCoDe Tab. 2): test split, one random caption per video",
    )


def run_ucf101(
    model: Any,
    root: str | os.PathLike[str],
    out: str | os.PathLike[str] | None,
    *,
    split: str = "train",
    fold: int = 1,
    splits_dir: str | os.PathLike[str] | None = None,
    prompt_template: str = "{}",
    missing: str = "error",
    i3d: Any = None,
    num_videos: int | None = 2048,
    frames: int = 16,
    stride: int = 1,
    resolution: int | tuple[int, int] | None = None,
    resize: str = "squash",
    unbiased: bool = False,
    batch_size: int = 4,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    generate_kwargs: dict[str, Any] | None = None,
    device: str | None = None,
    progress: bool = True,
) -> EvalCard:
    """FVD on UCF-101: real clips of one official split, generated videos prompted by their class names.

    A seeded subset of ``num_videos`` videos (2,048 by default: "FVD-2048"; ``None`` for the whole split) is
    drawn from the split (train split 01 by default, the statistics most FVD work on UCF-101 uses); one video is
    generated per drawn real video from its class prompt (``"ApplyEyeMakeup"`` → ``"apply eye makeup"``,
    through ``prompt_template``), so both sets have the same class distribution.

    Args:
        model: Text-to-video model (see :func:`load_text_to_video`).
        root: Folder holding ``UCF-101/`` and ``ucfTrainTestlist/`` (see :func:`~vidtok.evaluation.datasets.ucf101`).
        out: Eval card path, or ``None``.
        split: ``"train"``, ``"test"`` or ``"all"``.
        fold: Official split 1, 2 or 3.
        splits_dir: The ``ucfTrainTestlist`` folder.
        prompt_template: Prompt template around the class words.
        missing: ``"error"`` or ``"skip"`` for absent listed videos.
        i3d: I3D weights or extractor.
        num_videos: Videos per set (``None``: the whole split).
        frames: Frames per clip.
        stride: Frame stride of the real clips.
        resolution: Evaluated size (default: the generated size).
        resize: ``"squash"`` or ``"center_crop"``.
        unbiased: Covariances ÷(N − 1).
        batch_size: Videos per batch.
        cache_dir: Feature cache folder (resume).
        seed: Generation and subset seed.
        generate_kwargs: Generation settings (see :func:`run_fvd`).
        device: Device.
        progress: Progress bars.
    """
    _check_common(frames, stride, batch_size, resize)
    extractor = build_i3d(i3d, resize=resize, device=device)
    data = ucf101(root, split=split, fold=fold, splits_dir=splits_dir, prompt_template=prompt_template, missing=missing)
    return _paired_benchmark(
        ("fvd",),
        model,
        data,
        out,
        extractor=extractor,
        clip=None,
        num_videos=num_videos,
        frames=frames,
        stride=stride,
        resolution=resolution,
        resize=resize,
        unbiased=unbiased,
        batch_size=batch_size,
        cache_dir=cache_dir,
        seed=seed,
        generate_kwargs=generate_kwargs,
        device=device,
        progress=progress,
        combined_name="fvd",
        benchmark="UCF-101 FVD, class names as prompts",
    )


# ---------------------------------------------------------------------------------------------- reconstruction

_RECON_KEYS = ("psnr", "ssim", "ms_ssim", "lpips")


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file() or (path / "model_index.json").is_file()


def _recon_frames(frames: int | None, stride: int) -> int:
    """``frames`` if it is ``(S - 1) f + 1``, else an error; default: the smallest such count >= 16."""
    if frames is None:
        return math.ceil(15 / stride) * stride + 1
    if (frames - 1) % stride:
        lo = (frames - 1) // stride * stride + 1
        raise ValueError(
            f"frames={frames} does not fit keyframe stride {stride}: a tokenizer reads (S - 1) * {stride} + 1 frames, "
            f"e.g. {lo} or {lo + stride}"
        )
    return frames


def run_recon(
    tokenizer_or_folder: Any,
    real: Any,
    out: str | os.PathLike[str] | None,
    *,
    num_videos: int | None = None,
    frames: int | None = None,
    stride: int = 1,
    resolution: int | tuple[int, int] | None = None,
    resize: str = "center_crop",
    lpips: Any = None,
    lpips_weights: str | os.PathLike[str] | None = None,
    fps: float | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    decode_kwargs: dict[str, Any] | None = None,
    device: str | None = None,
    progress: bool = True,
) -> EvalCard:
    """Reconstruction quality (PSNR, SSIM, MS-SSIM, LPIPS) and compression of a tokenizer on real clips.

    Either a tokenizer (object, folder, pipeline folder, ``vidtok:<name>``, ``None`` for the shipped Shapes one)
    encodes and decodes every real clip (decoder noise seeded per video), or ``tokenizer_or_folder`` is a folder
    of reconstructions already made, matched to the real videos by relative path (extension ignored) and
    sampled with the same clip protocol. Quality is per frame, averaged over frames, then over videos, on
    ``[-1, 1]`` values (:mod:`vidtok.metrics.reconstruction`); compression (bits/tokens per pixel, tokens per
    second at ``fps``) comes from the tokenizer's layout.

    Args:
        tokenizer_or_folder: See above.
        real: Folder of real videos or an :class:`EvalSet`.
        out: Eval card path, or ``None``.
        num_videos: Evaluate a seeded subset.
        frames: Frames per clip (default: the smallest ``(S - 1) f + 1 >= 16`` for the tokenizer's keyframe
            stride ``f``; 16 for a folder of reconstructions).
        stride: Frame stride of the real clips.
        resolution: Evaluated size (default: the tokenizer's ``sample_size``, else the reconstructions' size).
        resize: ``"center_crop"`` (default: tokenizers see undistorted frames, as ``vidtok reconstruct``) or
            ``"squash"``.
        lpips: ``None`` (no LPIPS; noted), ``"alex"``/``"vgg"``, or an ``LPIPS`` module.
        lpips_weights: Local torchvision backbone file for ``lpips="alex"``/``"vgg"`` (else torch.hub's cache).
        fps: Frame rate for tokens per second.
        cache_dir: Per-video metric cache (resume).
        seed: Decoder noise and subset seed.
        decode_kwargs: Decoder settings (``num_inference_steps``, ``guidance_scale``, ``guidance_rescale``,
            ``eta``); default: the tokenizer's saved ``decode_defaults``.
        device: Device.
        progress: Progress bars.

    Returns:
        The card (``metric="reconstruction"``, ``value`` a dict of the numbers; ``None`` where undefined, with
        the reason in ``details["notes"]``).
    """
    import torch

    from vidtok.io import read_video_info
    from vidtok.io.frames import uint8_to_tensor
    from vidtok.metrics.reconstruction import ReconstructionAccumulator, compression_metrics

    _check_common(frames or 1, stride, 1, resize)
    lp = None
    if lpips is not None:
        from vidtok.metrics.lpips import LPIPS

        lp = lpips if isinstance(lpips, torch.nn.Module) else LPIPS(lpips, backbone_weights=lpips_weights)
    real_set = subset(as_eval_set(real, what="real"), num_videos, seed)
    folder = None
    if isinstance(tokenizer_or_folder, (str, os.PathLike)):
        path = Path(tokenizer_or_folder).expanduser()
        if path.is_dir() and not _is_model_folder(path):
            folder = path.resolve()
    tok, location = (None, str(folder)) if folder is not None else load_tokenizer(tokenizer_or_folder, device=device)
    decode = {k: v for k, v in (decode_kwargs or {}).items() if v is not None}
    if folder is not None:
        frames = frames or 16
        recon_files = _match_reconstructions(folder, real_set)
        if resolution is None:
            info = read_video_info(next(iter(recon_files.values())))
            resolution = (info.height, info.width)
    else:
        frames = _recon_frames(frames, int(tok.temporal_compression))
        if resolution is None:
            resolution = tok.sample_size or _native_size(real_set)
    if fps is None:  # the clips' own rate: the real videos' rate over the frame stride
        fps = _clip_fps(real_set, stride)
    sampler = ClipSampler(frames, stride, resolution, resize)
    model_digest = _module_digest(tok) if tok is not None else None
    acc = ReconstructionAccumulator(lpips=lp)
    recon_pipe = None
    if tok is not None:
        from vidtok.pipelines.reconstruct import Reconstruct

        recon_pipe = Reconstruct(tok)
    fields = {
        "sampler": sampler.protocol(),
        "set": [real_set.source, real_set.location, real_set.split],
        "items": _digest([it.key for it in real_set.items]),
        "seed": seed,
        "decode": decode,
        "lpips": None if lp is None else dict(lp.protocol),
        "model": model_digest,
    }
    cache = FeatureCache(cache_dir, "recon", fields)

    def compute(batch: list[int], todo: set[str]) -> dict[str, list[np.ndarray]]:
        values = []
        for i in batch:
            item = real_set.items[i]
            clip = sampler.load(item.path)
            if clip is None:
                values.append(np.zeros(0))
                continue
            target = uint8_to_tensor(clip)[None]
            if folder is not None:
                other = sampler.load(recon_files[item.key])
                if other is None:
                    raise ValueError(f"reconstruction {recon_files[item.key]} is shorter than {sampler.span} frames")
                pred = uint8_to_tensor(other)[None]
            else:
                pred = _reconstruct(recon_pipe, target, item_seed(seed, item.key), decode)
            got = acc.update(pred, target)
            values.append(np.array([float(got[k][0]) if k in got else np.nan for k in _RECON_KEYS]))
        return {"recon": values}

    start = time.time()
    keys = [it.key for it in real_set.items]
    per_item = _run_batches(keys, {"recon": cache}, compute, batch_size=1, desc="reconstruct", progress=progress)
    kept = np.stack([v for v in per_item["recon"] if v.size]) if any(v.size for v in per_item["recon"]) else None
    if kept is None:
        raise ValueError(f"no real video of {real_set.describe()} has the {sampler.span} frames a clip spans")
    skipped = [k for k, v in zip(keys, per_item["recon"]) if not v.size]
    value: dict[str, Any] = {}
    notes: dict[str, str] = {}
    h, w = sampler.resolution
    for j, name in enumerate(_RECON_KEYS):
        column = kept[:, j]
        value[name] = None if np.isnan(column).any() else float(column.mean())
    if value["ms_ssim"] is None:
        from vidtok.metrics.video_quality import ms_ssim_min_size

        notes["ms_ssim"] = f"MS-SSIM with 5 scales needs frames of at least {ms_ssim_min_size()} px, got {h}x{w}"
    if lp is None:
        notes["lpips"] = "no LPIPS network given (lpips='alex' with local backbone weights)"
    elif not lp.protocol.get("comparable", False):
        notes["lpips"] = "random LPIPS backbone: numbers not comparable to papers"
    if tok is not None:
        comp = compression_metrics(tok, frames, h, w, fps=fps)
        notes.update(comp.pop("notes"))
        value.update(comp)
    lpips_protocol = None
    if lp is not None:
        lpips_protocol = {
            "net": lp.protocol.get("net"),
            "backbone": os.path.basename(str(lp.protocol.get("backbone"))),
            "comparable": lp.protocol.get("comparable"),
        }
    saved = getattr(tok, "decode_defaults", None) or {}
    protocol = {
        **sampler.protocol(),
        "value_range": "uint8 frames mapped to [-1, 1]; metrics with data_range [-1, 1]",
        "averaging": "per frame, mean over frames, then mean over videos",
        "num_videos": int(len(kept)),
        **real_set.protocol("real"),
        "lpips": lpips_protocol,
        "reconstructions": "tokenizer encode/decode" if tok is not None else "folder of reconstructions",
    }
    details = {
        # The tokenizer's own settings: what is compared, not how it is measured.
        "decoder": decode,
        "decoder_saved_defaults": dict(saved),
        "keyframe_stride": int(tok.temporal_compression) if tok is not None else None,
        "notes": notes,
        "real_location": real_set.location,
        "skipped_real": skipped[:20],
        "num_skipped": len(skipped),
        "model_digest": model_digest,
        "elapsed_s": round(time.time() - start, 3),
    }
    card = EvalCard("reconstruction", value, protocol, model=location, seed=seed, details=details)
    return _save(card, out)


def _native_size(real: EvalSet) -> tuple[int, int]:
    from vidtok.io import read_video_info

    info = read_video_info(real.items[0].path)
    return info.height, info.width


def _clip_fps(real: EvalSet, stride: int) -> float | None:
    from vidtok.io import read_video_info

    try:
        rate = read_video_info(real.items[0].path).fps
    except (OSError, ValueError):
        return None
    return float(rate) / stride if rate else None


def _reconstruct(pipe: Any, target: Any, seed: int, decode: dict[str, Any]) -> Any:
    import torch

    tok = pipe.video_tokenizer
    out = pipe(
        target.to(tok.device, tok.dtype),
        generator=torch.Generator().manual_seed(seed),
        output_type="pt",
        progress=False,
        **decode,
    )
    return out.frames.float().cpu()[:, :, : target.shape[2]]


def _match_reconstructions(folder: Path, real: EvalSet) -> dict[str, str]:
    """Real item key -> reconstruction file with the same relative path (any video extension)."""
    from vidtok.evaluation.datasets import video_folder

    recon = {os.path.splitext(it.key)[0]: it.path for it in video_folder(folder).items}
    matched, absent = {}, []
    for it in real.items:
        hit = recon.get(os.path.splitext(it.key)[0])
        if hit is None:
            absent.append(it.key)
        else:
            matched[it.key] = hit
    if absent:
        raise FileNotFoundError(
            f"{len(absent)} real video(s) have no reconstruction in {folder} with the same relative path "
            f"(first: {absent[0]})"
        )
    return matched
