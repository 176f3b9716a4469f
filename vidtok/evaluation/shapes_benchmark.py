"""The Shapes benchmark: several text-to-video models side by side, seven categories, resumable.

[`benchmark_shapes`][vidtok.evaluation.shapes_benchmark.benchmark_shapes] runs, for each model (a pipeline, a
saved ``TextToVideo`` folder or ``"vidtok:default"``), these categories — every one scored from pixels or by
the tokenizer, with fixed seeds:

==================  =======================================================================================
category            what it measures
==================  =======================================================================================
``heldout``         prompt following on the 30 held-out prompts (every held-out (color, shape) pair × both
                    sizes × 5 motions), two seeds, 3 keyframes, decoder DDIM 10 steps: **exactly** the protocol
                    of the table in ``docs/results.md`` (DiCoDe's evaluation of compositional prompts, scored
                    by [`score_video`][vidtok.shapes.scorer.score_video]; the shipped default gives color 1.00,
                    shape 0.97, size 1.00, motion 0.90, overall 0.97, joint 0.87)
``two_objects``     two-object captions (``"... and ..."``) of training pairs only, both objects scored; also
                    how often the first and the second object appear at all
``diversity``       distinct (shape, size, motion) outcomes of the under-specified ``"a red shape"`` over seeds
                    ([`diversity`][vidtok.metrics.shapes_evaluation.diversity]; DiCoDe Table 4's argument for
                    a GMM head)
``long_video``      consistency over 9 keyframes (65 frames): per-frame presence of the prompt's object, and per
                    keyframe interval whether it keeps its color, shape and size
``reconstruction``  the pipeline's tokenizer on 64 held-out clips (seed 123, DDIM 10, η 0, guidance 1:
                    [`evaluate_reconstruction`][vidtok.metrics.shapes_evaluation.evaluate_reconstruction])
``tokens``          tokens per second and per keyframe, channels, compression (from the tokenizer)
``shapes_fd``       Shapes FD ([`shapes_frechet_distance`][vidtok.metrics.shapes_features.shapes_frechet_distance])
                    between the generated ``heldout`` / ``two_objects`` videos and rendered ground truth of the
                    same captions, with its floor (two ground-truth renderings against each other)
==================  =======================================================================================

**Resumable.** With a ``cache_dir``, each finished (model, category) unit is written to
``cache_dir/<model>/<category>.json`` atomically (a temporary file, then ``os.replace``), with the settings it
used and the model's identity (a folder's file sizes and times, a pipeline's weight digest); a rerun skips the
units whose file matches and recomputes the others. The generated videos that ``shapes_fd`` compares are
kept there too (``<category>_videos.npz``). Every unit runs with fixed seeds under a forked torch RNG, and
results are stored as JSON and read back, so a resumed run returns exactly what an uninterrupted one does
(only the wall times in ``"seconds"`` differ).

**Shapes FD's reference** is the Shapes renderer's video of each caption at the generated length and the
model's frame rate (the world's own definition of the caption), drawn twice: the floor is the distance between
the two draws (60 videos per set, so about 11 for the held-out prompts rather than 0: the ``O(D / N)`` bias).
It sees what the scorer does not: the embedded default's objects move at about 0.46 px per frame where the
renderer's 17-frame clips move 0.8 (its language model learned the slower motion of 5-keyframe training clips),
which alone accounts for much of its held-out Shapes FD.

**Cost.** The whole default benchmark of the embedded model takes 5.5 minutes on one CPU thread (327 s:
``heldout`` 98 s, ``long_video`` 89 s, ``reconstruction`` 68 s, ``two_objects`` 61 s, ``diversity`` 10 s,
``shapes_fd`` 1 s), about 15 minutes when other jobs share the two cores.

Example:
    >>> from vidtok.evaluation.shapes_benchmark import two_object_prompts
    >>> for prompt in two_object_prompts(2):
    ...     print(prompt)
    a large white circle moves right and a small yellow triangle moves left
    a large yellow triangle moves up and a small white square stays still
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from vidtok.assets import shipped_path
from vidtok.io.files import write_atomically
from vidtok.metrics.shapes_evaluation import EVAL_MOTIONS, SCORE_KEYS, heldout_prompts

__all__ = [
    "stored_videos",
    "CATEGORIES",
    "LONG_VIDEO_PROMPTS",
    "ShapesBenchmarkSettings",
    "benchmark_shapes",
    "format_table",
    "two_object_prompts",
]

#: The categories, in the order they run (``shapes_fd`` reuses the videos of ``heldout`` and ``two_objects``).
CATEGORIES: tuple[str, ...] = (
    "heldout",
    "two_objects",
    "diversity",
    "long_video",
    "reconstruction",
    "tokens",
    "shapes_fd",
)

#: Prompts of the long-video category: training pairs, every kind of motion (``bounces`` included).
LONG_VIDEO_PROMPTS: tuple[str, ...] = (
    "a large red circle bounces",
    "a small green square stays still",
    "a large cyan triangle moves right",
    "a small white circle moves up",
    "a large blue square stays still",
    "a small yellow triangle moves left",
)

_FORMAT = "vidtok.shapes_benchmark/1"
_STATED = ("color", "shape", "size", "motion")


@dataclasses.dataclass(frozen=True)
class ShapesBenchmarkSettings:
    """Every setting of a benchmark run (recorded with each cached unit; a changed setting recomputes it).

    Args:
        seeds: Seeds of the ``heldout`` and ``two_objects`` videos (one video per prompt and seed).
        keyframes: Keyframes of each ``heldout``, ``two_objects`` and ``diversity`` video.
        num_inference_steps: Decoder denoising steps of generated videos.
        guidance_scale: The language model's classifier-free guidance (1 = off; ``None``: the model's own,
            ``config.guidance_scale``, else 1).
        temperature: Sampling temperature (``None``: the model's own).
        batch_size: Prompts per pipeline call.
        heldout_prompts: Only the first N held-out prompts (``None``: all 30).
        two_object_prompts: Number of two-object captions.
        diversity_prompt: The under-specified prompt.
        diversity_seeds: Its videos (seeds ``0 .. N - 1``).
        long_keyframes: Keyframes of each long video.
        long_prompts: The long-video prompts.
        long_seeds: Seeds of the long videos (one batch of all prompts per seed).
        reconstruction_videos: Held-out clips the tokenizer reconstructs.
        reconstruction_seed: Seed of those clips.
        fd_seed: Seed of the ground-truth renderings the Shapes FD compares against.
    """

    seeds: tuple[int, ...] = (0, 1)
    keyframes: int = 3
    num_inference_steps: int = 10
    guidance_scale: float | None = None
    temperature: float | None = None
    batch_size: int = 16
    heldout_prompts: int | None = None
    two_object_prompts: int = 20
    diversity_prompt: str = "a red shape"
    diversity_seeds: int = 8
    long_keyframes: int = 9
    long_prompts: tuple[str, ...] = LONG_VIDEO_PROMPTS
    long_seeds: tuple[int, ...] = (0, 1)
    reconstruction_videos: int = 64
    reconstruction_seed: int = 123
    fd_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("seeds", "long_prompts", "long_seeds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        counts = ("keyframes", "num_inference_steps", "batch_size", "two_object_prompts", "diversity_seeds")
        for name in (*counts, "long_keyframes", "reconstruction_videos"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ShapesBenchmarkSettings: {name} must be a positive int, got {value!r}")
        if self.long_keyframes < 3:
            raise ValueError(f"ShapesBenchmarkSettings: long_keyframes must be >= 3, got {self.long_keyframes}")
        if not self.seeds or not self.long_seeds or not self.long_prompts:
            raise ValueError("ShapesBenchmarkSettings: seeds, long_seeds and long_prompts must not be empty")

    @property
    def sampling(self) -> dict[str, Any]:
        """The pipeline's sampling arguments."""
        return {"guidance_scale": self.guidance_scale, "temperature": self.temperature}

    def for_category(self, category: str) -> dict[str, Any]:
        """The settings a category's result depends on (what its cache file must match)."""
        sampling = ["guidance_scale", "temperature"]
        generation = ["seeds", "keyframes", "num_inference_steps", "batch_size", *sampling]
        names = {
            "heldout": [*generation, "heldout_prompts"],
            "two_objects": [*generation, "two_object_prompts"],
            "diversity": ["keyframes", "diversity_prompt", "diversity_seeds", *sampling],
            "long_video": ["long_keyframes", "long_prompts", "long_seeds", "num_inference_steps", *sampling],
            "reconstruction": ["reconstruction_videos", "reconstruction_seed"],
            "tokens": [],
            "shapes_fd": [*generation, "heldout_prompts", "two_object_prompts", "fd_seed"],
        }[category]
        return _jsonable({name: getattr(self, name) for name in names})


# ---------------------------------------------------------------------------------------------- prompts


def two_object_prompts(n: int = 20, seed: int = 0) -> list[str]:
    """``n`` two-object captions of training (color, shape) pairs only, every size and motion stated.

    Caption ``i`` is drawn from ``numpy.random.default_rng([seed, i])`` with the training split's rules (two
    distinct colors, no held-out pair), motions from the held-out prompts' (linear or still).
    """
    from vidtok.shapes.dataset import sample_objects
    from vidtok.shapes.grammar import caption, parse_caption

    motions = [parse_caption(f"a red circle {m}")[0].motion for m in EVAL_MOTIONS]
    return [
        caption(sample_objects(np.random.default_rng([seed, i]), num_objects=2, split="train", motions=motions))
        for i in range(n)
    ]


# ---------------------------------------------------------------------------------------------- helpers


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON: tuples become lists, NumPy scalars numbers, NaN/inf ``None``."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def _write_atomically(path: str, write: Callable[[Any], None], mode: str = "w") -> None:
    def fill(tmp: Any) -> None:
        with open(tmp, mode) as f:
            write(f)

    write_atomically(path, fill)


def _uint8(frames: Any) -> np.ndarray:
    """Pipeline frames (``np``: ``(B, T, H, W, 3)`` in ``[0, 1]``) as ``uint8``."""
    if not isinstance(frames, np.ndarray):  # a tensor from output_type="pt" is not what the benchmark asks for
        raise TypeError(f"expected the pipeline's NumPy frames (output_type='np'), got {type(frames).__name__}")
    return np.clip(np.rint(frames.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


class _Recorder:
    """A pipeline wrapper keeping every generated video (``uint8``) in call order."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.videos: list[np.ndarray] = []
        self.fps: float | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.pipe(*args, **kwargs)
        self.videos.append(_uint8(out.frames))
        self.fps = float(getattr(out, "fps", None) or getattr(self.pipe, "fps", 8.0))
        return out

    def stacked(self) -> np.ndarray:
        return np.concatenate(self.videos)


def _model_dir(name: str) -> str:
    """A folder name for a model name: its safe characters and a short digest of the whole name."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    return f"{safe[:48]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _folder_identity(folder: str) -> str:
    """A digest of a folder's file names, sizes and modification times (a retrained model gets a new one)."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            st = os.stat(path)
            h.update(f"{os.path.relpath(path, folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _hash_module(h: Any, prefix: str, module: Any) -> None:
    import torch

    for key, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{prefix}{key}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def _module_identity(module: Any) -> str:
    """A digest of a module's class, config and weights."""
    h = hashlib.sha256(type(module).__qualname__.encode())
    config = {k: v for k, v in dict(getattr(module, "config", {}) or {}).items() if not k.startswith("_")}
    h.update(json.dumps(_jsonable(config), sort_keys=True).encode())
    _hash_module(h, "", module)
    return h.hexdigest()[:16]


def _pipeline_identity(pipe: Any) -> str:
    """A digest of a pipeline's weights (every ``nn.Module`` component's state dict) and class."""
    import torch

    h = hashlib.sha256(type(pipe).__qualname__.encode())
    components = getattr(pipe, "components", None) or {}
    for name in sorted(components):
        if isinstance(components[name], torch.nn.Module):
            _hash_module(h, f"{name}.", components[name])
    return h.hexdigest()[:16]


def _default_loader(folder: str) -> Any:
    from vidtok.pipelines.text_to_video import TextToVideo

    return TextToVideo.from_pretrained(folder)


class _Model:
    """A model to benchmark: its identity now, the pipeline when a unit first needs it."""

    def __init__(self, name: str, model: Any, loader: Callable[[str], Any]) -> None:
        self.name = name
        self._pipe = None
        if isinstance(model, (str, os.PathLike)):
            text = os.fspath(model)
            if text in ("vidtok:default", "default"):
                folder = shipped_path("dicode_shapes")
            elif text.startswith("vidtok:"):
                folder = shipped_path(text)
            else:
                folder = os.path.abspath(text)
                if not os.path.isdir(folder):
                    raise FileNotFoundError(f"benchmark_shapes: model {name!r}: no such folder {text!r}")
            self.folder: str | None = folder
            self.source = f"folder:{folder}@{_folder_identity(folder)}"
            self._loader = loader
        elif callable(model):
            self.folder, self._pipe = None, model
            self.source = f"pipeline:{_pipeline_identity(model)}"
        else:
            raise TypeError(
                f"benchmark_shapes: model {name!r} must be a pipeline, a folder or 'vidtok:default', "
                f"got {type(model).__name__}"
            )

    @property
    def pipe(self) -> Any:
        if self._pipe is None:
            self._pipe = self._loader(self.folder)
        return self._pipe


# ---------------------------------------------------------------------------------------------- categories


def _generate_scored(pipe: Any, prompts: list[str], s: ShapesBenchmarkSettings) -> tuple[dict, np.ndarray, float]:
    """``evaluate_text_to_video`` with the benchmark's settings, keeping the videos (``uint8``, seed-major order)."""
    from vidtok.metrics.shapes_evaluation import evaluate_text_to_video

    recorder = _Recorder(pipe)
    scores = evaluate_text_to_video(
        recorder,
        prompts,
        seeds=s.seeds,
        keyframes=s.keyframes,
        num_inference_steps=s.num_inference_steps,
        batch_size=s.batch_size,
        **s.sampling,
    )
    return scores, recorder.stacked(), recorder.fps or 8.0


def _heldout(model: _Model, s: ShapesBenchmarkSettings) -> tuple[dict, dict]:
    prompts = heldout_prompts(s.heldout_prompts)
    scores, videos, fps = _generate_scored(model.pipe, prompts, s)
    captions = [p for _ in s.seeds for p in prompts]
    result = {**scores, "prompts": len(prompts), "videos": len(captions), "frames": int(videos.shape[1])}
    return result, {"videos": videos, "captions": captions, "fps": fps}


def _two_objects(model: _Model, s: ShapesBenchmarkSettings) -> tuple[dict, dict]:
    from vidtok.shapes.grammar import parse_caption
    from vidtok.shapes.scorer import analyze_video

    prompts = two_object_prompts(s.two_object_prompts)
    scores, videos, fps = _generate_scored(model.pipe, prompts, s)
    captions = [p for _ in s.seeds for p in prompts]
    present = {"first": [], "second": []}
    right = {"first": [], "second": []}
    for video, text in zip(videos, captions, strict=True):
        objects = parse_caption(text)
        found = analyze_video(video, [o.color for o in objects])
        for key, obj in zip(("first", "second"), objects, strict=True):
            det = found[obj.color]
            present[key].append(det.present)
            right[key].append(det.present and all(getattr(det, a) == getattr(obj, a) for a in _STATED[1:]))
    result = {
        **scores,
        "first_present": float(np.mean(present["first"])),
        "second_present": float(np.mean(present["second"])),
        "both_present": float(np.mean(np.logical_and(present["first"], present["second"]))),
        "first_joint": float(np.mean(right["first"])),
        "second_joint": float(np.mean(right["second"])),
        "prompts": len(prompts),
        "videos": len(captions),
    }
    return result, {"videos": videos, "captions": captions, "fps": fps}


def _diversity(model: _Model, s: ShapesBenchmarkSettings) -> tuple[dict, dict]:
    from vidtok.metrics.shapes_evaluation import diversity

    return diversity(model.pipe, s.diversity_prompt, seeds=s.diversity_seeds, keyframes=s.keyframes, **s.sampling), {}


def _long_video(model: _Model, s: ShapesBenchmarkSettings) -> tuple[dict, dict]:
    import torch

    from vidtok.shapes.grammar import parse_caption
    from vidtok.shapes.scorer import analyze_video, score_video

    prompts = list(s.long_prompts)
    per_video: list[dict[str, float]] = []
    whole: list[dict[str, float]] = []
    frames = 0
    for seed in s.long_seeds:
        with torch.no_grad():
            out = model.pipe(
                prompts,
                num_keyframes=s.long_keyframes,
                num_inference_steps=s.num_inference_steps,
                generator=torch.Generator().manual_seed(int(seed) * 1000),
                progress=False,
                **s.sampling,
            )
        videos = _uint8(out.frames)
        frames = int(videos.shape[1])
        stride = max(1, (frames - 1) // (s.long_keyframes - 1))
        for video, text in zip(videos, prompts, strict=True):
            obj = parse_caption(text)[0]
            whole.append(score_video(video, text))
            per_frame = [analyze_video(frame[None], [obj.color])[obj.color].present for frame in video]
            windows = [
                analyze_video(video[lo : lo + stride + 1], [obj.color])[obj.color]
                for lo in range(0, frames - stride, stride)
            ]
            first_shape = windows[0].shape if windows[0].present else None
            per_video.append(
                {
                    "presence": float(np.mean(per_frame)),
                    "window_color": float(np.mean([w.present for w in windows])),
                    "window_shape": float(np.mean([w.present and w.shape == obj.shape for w in windows])),
                    "window_size": float(np.mean([w.present and w.size == obj.size for w in windows])),
                    "shape_consistency": float(
                        np.mean([first_shape is not None and w.present and w.shape == first_shape for w in windows])
                    ),
                    "last_window_joint": float(
                        windows[-1].present and windows[-1].shape == obj.shape and windows[-1].size == obj.size
                    ),
                }
            )
    result = {key: float(np.mean([v[key] for v in per_video])) for key in per_video[0]}
    result["whole_video"] = {
        key: float(np.nanmean([w[key] for w in whole])) if any(w[key] == w[key] for w in whole) else None
        for key in SCORE_KEYS
    }
    result.update(videos=len(per_video), frames=frames, keyframes=s.long_keyframes)
    return result, {}


def _tokenizer_size(tokenizer: Any) -> tuple[int, int]:
    return tokenizer.sample_size or (32, 32)


def _reconstruction(model: _Model, s: ShapesBenchmarkSettings) -> tuple[dict, dict]:
    from vidtok.metrics.shapes_evaluation import evaluate_reconstruction, render_clips, to_model_video

    pipe = model.pipe
    tokenizer = pipe.video_tokenizer
    height, width = _tokenizer_size(tokenizer)
    num_frames = tokenizer.num_frames_for(2)
    clips, captions = render_clips(
        "heldout",
        s.reconstruction_videos,
        s.reconstruction_seed,
        resolution=(height, width),
        num_frames=num_frames,
        fps=float(getattr(pipe, "fps", 8.0)),
    )
    param = next(tokenizer.parameters())
    videos = to_model_video(clips).to(param.device, param.dtype)
    result = evaluate_reconstruction(
        tokenizer, videos, captions, num_inference_steps=10, guidance_scale=1.0, eta=0.0, seed=0
    )
    result.update(videos=len(clips), frames=num_frames, resolution=[height, width], split="heldout")
    return result, {}


def _tokens(model: _Model, s: ShapesBenchmarkSettings) -> tuple[dict, dict]:
    pipe = model.pipe
    tokenizer = pipe.video_tokenizer
    height, width = _tokenizer_size(tokenizer)
    fps = float(getattr(pipe, "fps", 8.0))
    per_second = float(tokenizer.tokens_per_second(fps, height, width))
    dim = int(tokenizer.token_dim)
    result = {
        "tokens_per_second": per_second,
        "tokens_per_keyframe": int(tokenizer.tokens_per_step(height, width)),
        "frames_per_keyframe": int(tokenizer.temporal_compression),
        "token_dim": dim,
        "discrete": bool(tokenizer.is_discrete),
        "fps": fps,
        "resolution": [height, width],
    }
    pixels = fps * height * width * 3
    if tokenizer.is_discrete:
        frames = tokenizer.num_frames_for(2)
        result["bits_per_pixel"] = float(tokenizer.bits_per_pixel(frames, height, width))
    else:
        result["values_per_second"] = per_second * dim
        result["compression"] = pixels / (per_second * dim)
    return result, {}


def _render_references(captions: list[str], videos: np.ndarray, fps: float, seed: int, draw: int) -> np.ndarray:
    from vidtok.shapes.render import render_video

    _, frames, height, width, _ = videos.shape
    return np.stack(
        [
            render_video(
                text,
                num_frames=frames,
                resolution=(height, width),
                fps=fps,
                seed=np.random.default_rng([seed, draw, i]),
            )
            for i, text in enumerate(captions)
        ]
    )


def _shapes_fd(
    model: _Model, s: ShapesBenchmarkSettings, generated: Mapping[str, Mapping[str, Any]], net: Any
) -> tuple[dict, dict]:
    from vidtok.metrics.shapes_features import shapes_frechet_distance

    result = {}
    for category in ("heldout", "two_objects"):
        data = generated[category]
        videos, captions, fps = data["videos"], list(data["captions"]), float(data["fps"])
        reference = _render_references(captions, videos, fps, s.fd_seed, 0)
        again = _render_references(captions, videos, fps, s.fd_seed, 1)
        result[category] = {
            "fd": shapes_frechet_distance(reference, videos, net),
            "floor": shapes_frechet_distance(reference, again, net),
            "videos": len(captions),
            "frames": int(videos.shape[1]),
        }
    return result, {}


_UNITS = {
    "heldout": _heldout,
    "two_objects": _two_objects,
    "diversity": _diversity,
    "long_video": _long_video,
    "reconstruction": _reconstruction,
    "tokens": _tokens,
}


# ---------------------------------------------------------------------------------------------- the run


def _read_unit(path: str, source: str, settings: dict) -> dict | None:
    """The cached result at ``path`` if it was computed for this model and these settings, else ``None``."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None  # a damaged file is recomputed (and replaced)
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        return None
    if data.get("source") != source or data.get("settings") != settings:
        return None
    return data


def _read_videos(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {"videos": data["videos"], "captions": [str(c) for c in data["captions"]], "fps": float(data["fps"])}
    except (OSError, ValueError, KeyError):
        return None


def stored_videos(cache_dir: str | os.PathLike, model: str, category: str = "heldout") -> dict | None:
    """The videos a :func:`benchmark_shapes` run with ``cache_dir`` generated for ``model`` in ``category``.

    Returns:
        ``{"videos": (N, T, H, W, 3), "captions": [N], "fps"}`` in generation order (every prompt for the first
        seed, then for the next), or ``None`` if that run kept none (categories without videos, no cache).
    """
    folder = os.path.join(os.path.abspath(os.fspath(cache_dir)), _model_dir(model))
    return _read_videos(os.path.join(folder, f"{category}_videos.npz"))


def _write_videos(path: str, data: Mapping[str, Any]) -> None:
    payload = {"videos": data["videos"], "captions": np.array(data["captions"]), "fps": np.array(data["fps"])}
    _write_atomically(path, lambda f: np.savez(f, **payload), mode="wb")


def benchmark_shapes(
    models: Mapping[str, Any],
    *,
    seeds: Sequence[int] = (0, 1),
    cache_dir: str | os.PathLike | None = None,
    categories: Sequence[str] | None = None,
    settings: ShapesBenchmarkSettings | None = None,
    feature_net: Any = None,
    loader: Callable[[str], Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the Shapes benchmark on several text-to-video models (see the module docstring for the categories).

    The ``heldout`` category is the protocol of ``docs/results.md`` (after DiCoDe's held-out prompt evaluation):
    [`evaluate_text_to_video`][vidtok.metrics.shapes_evaluation.evaluate_text_to_video] on every held-out
    prompt with seeds 0 and 1, 3 keyframes, 10 decoder steps, the model's own language-model guidance (none for
    the shipped DiCoDe and HiTVideo models) and temperature — the arguments ``examples/train_dicode_shapes.py
    --evaluate-only`` passes.

    Args:
        models: Name -> a text-to-video pipeline (e.g. a
            [`TextToVideo`][vidtok.pipelines.text_to_video.TextToVideo]), a folder saved with
            ``save_pretrained``, or ``"vidtok:default"`` (the embedded default; ``"vidtok:<shipped name>"``
            for other shipped folders). Folders are loaded only when a unit needs them.
        seeds: Seeds of the ``heldout`` and ``two_objects`` videos (overrides ``settings.seeds``).
        cache_dir: Folder of finished units (``None``: nothing is cached). A rerun with the same folder skips
            every unit already there for the same model and settings.
        categories: The categories to run (default: all of :data:`CATEGORIES`).
        settings: Every other setting (default: :class:`ShapesBenchmarkSettings`).
        feature_net: The Shapes FD network (default: the shipped one,
            [`load_shapes_features`][vidtok.metrics.shapes_features.load_shapes_features]).
        loader: Loads a pipeline from a folder (default: ``TextToVideo.from_pretrained``).
        log: Called with one line per finished unit (e.g. ``print``).

    Returns:
        ``{"format", "settings", "categories", "sources", "models": {name: {category: result}},
        "seconds": {name: {category: wall seconds}}}`` — JSON-serializable; ``seconds`` of a unit read from
        the cache are those of the run that computed it.

    Raises:
        ValueError: An unknown category or an empty ``models``.
        FileNotFoundError: A model folder that does not exist, or (for ``shapes_fd``) no shipped feature network.
    """
    import torch

    if not isinstance(models, Mapping) or not models:
        raise ValueError(
            "benchmark_shapes: models must be a non-empty mapping name -> pipeline, folder or 'vidtok:default'"
        )
    chosen = list(CATEGORIES) if categories is None else list(dict.fromkeys(categories))
    unknown = [c for c in chosen if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"benchmark_shapes: unknown categories {unknown}; choose from {list(CATEGORIES)}")
    chosen = [c for c in CATEGORIES if c in chosen]  # the fixed order: shapes_fd after what it reuses
    net = feature_net
    if "shapes_fd" in chosen and net is None:
        from vidtok.metrics.shapes_features import load_shapes_features

        net = load_shapes_features()
    net_identity = None if net is None else _module_identity(net)
    settings = dataclasses.replace(settings or ShapesBenchmarkSettings(), seeds=tuple(int(x) for x in seeds))
    loader = loader or _default_loader
    say = log or (lambda line: None)
    cache = None if cache_dir is None else os.path.abspath(os.fspath(cache_dir))
    result: dict[str, Any] = {
        "format": _FORMAT,
        "settings": _jsonable(dataclasses.asdict(settings)),
        "categories": chosen,
        "sources": {},
        "models": {},
        "seconds": {},
    }
    for name, spec in models.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"benchmark_shapes: model names must be non-empty strings, got {name!r}")
        model = _Model(name, spec, loader)
        folder = None if cache is None else os.path.join(cache, _model_dir(name))
        result["sources"][name] = model.source
        scores: dict[str, Any] = {}
        seconds: dict[str, float] = {}
        generated: dict[str, dict] = {}  # the videos shapes_fd compares, by category
        for category in chosen:
            unit_settings = settings.for_category(category)
            if category == "shapes_fd":
                unit_settings["feature_net"] = net_identity  # another network: another distance
            path = None if folder is None else os.path.join(folder, f"{category}.json")
            cached = None if path is None else _read_unit(path, model.source, unit_settings)
            if cached is not None:
                scores[category], seconds[category] = cached["result"], cached["seconds"]
                say(f"{name} / {category}: cached ({path})")
                continue
            t0 = time.time()
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)
                    if category == "shapes_fd":
                        for needed in ("heldout", "two_objects"):
                            if needed not in generated:
                                generated[needed] = _generated_videos(model, needed, settings, folder)
                        value, extra = _shapes_fd(model, settings, generated, net)
                    else:
                        value, extra = _UNITS[category](model, settings)
            except Exception as err:
                err.add_note(f"benchmark_shapes: while running model {name!r}, category {category!r}")
                raise
            value = _jsonable(value)
            spent = round(time.time() - t0, 2)
            if extra:
                generated[category] = extra
                if folder is not None:
                    _write_videos(os.path.join(folder, f"{category}_videos.npz"), extra)
            if path is not None:
                record = {
                    "format": _FORMAT,
                    "model": name,
                    "source": model.source,
                    "category": category,
                    "settings": unit_settings,
                    "result": value,
                    "seconds": spent,
                }
                _write_atomically(path, lambda f, record=record: json.dump(record, f, indent=2, allow_nan=False))
            scores[category], seconds[category] = value, spent
            say(f"{name} / {category}: {spent:.1f} s")
        result["models"][name] = scores
        result["seconds"][name] = seconds
    return result


def _generated_videos(model: _Model, category: str, settings: ShapesBenchmarkSettings, folder: str | None) -> dict:
    """The videos of ``category``: stored with a finished unit of this model and these settings, else made again.

    Making them again gives the same videos (the unit's seeds, under a fresh torch seed).
    """
    if folder is not None:
        unit = _read_unit(os.path.join(folder, f"{category}.json"), model.source, settings.for_category(category))
        stored = _read_videos(os.path.join(folder, f"{category}_videos.npz"))
        if unit is not None and stored is not None:
            return stored
    import torch

    torch.manual_seed(0)
    return _UNITS[category](model, settings)[1]


# ---------------------------------------------------------------------------------------------- the table

_ROWS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("heldout", "held-out prompts: color", ("color",), "{:.2f}"),
    ("heldout", "held-out prompts: shape", ("shape",), "{:.2f}"),
    ("heldout", "held-out prompts: size", ("size",), "{:.2f}"),
    ("heldout", "held-out prompts: motion", ("motion",), "{:.2f}"),
    ("heldout", "held-out prompts: overall", ("overall",), "{:.2f}"),
    ("heldout", "held-out prompts: **joint**", ("joint",), "{:.2f}"),
    ("two_objects", "two objects: color (both objects)", ("color",), "{:.2f}"),
    ("two_objects", "two objects: shape", ("shape",), "{:.2f}"),
    ("two_objects", "two objects: size", ("size",), "{:.2f}"),
    ("two_objects", "two objects: motion", ("motion",), "{:.2f}"),
    ("two_objects", "two objects: joint (both objects right)", ("joint",), "{:.2f}"),
    ("two_objects", "two objects: first object present", ("first_present",), "{:.2f}"),
    ("two_objects", "two objects: second object present", ("second_present",), "{:.2f}"),
    ("diversity", "diversity: distinct outcomes", ("distinct",), "{}"),
    ("diversity", "diversity: videos without the object", ("missing",), "{}"),
    ("long_video", "long video: per-frame presence", ("presence",), "{:.2f}"),
    ("long_video", "long video: shape kept (per interval)", ("window_shape",), "{:.2f}"),
    ("long_video", "long video: size kept (per interval)", ("window_size",), "{:.2f}"),
    ("long_video", "long video: shape consistency", ("shape_consistency",), "{:.2f}"),
    ("long_video", "long video: last interval right", ("last_window_joint",), "{:.2f}"),
    ("long_video", "long video: whole-video motion", ("whole_video", "motion"), "{:.2f}"),
    ("reconstruction", "reconstruction: PSNR (dB)", ("psnr",), "{:.1f}"),
    ("reconstruction", "reconstruction: SSIM", ("ssim",), "{:.3f}"),
    ("reconstruction", "reconstruction: shape score", ("score_shape",), "{:.2f}"),
    ("reconstruction", "reconstruction: overall score", ("score_overall",), "{:.2f}"),
    ("tokens", "tokens per second", ("tokens_per_second",), "{:g}"),
    ("tokens", "tokens per keyframe × channels", ("tokens_per_keyframe",), "{}"),
    ("shapes_fd", "Shapes FD, held-out prompts", ("heldout", "fd"), "{:.1f}"),
    ("shapes_fd", "Shapes FD, held-out prompts: floor (ground truth vs ground truth)", ("heldout", "floor"), "{:.1f}"),
    ("shapes_fd", "Shapes FD, two objects", ("two_objects", "fd"), "{:.1f}"),
    ("shapes_fd", "Shapes FD, two objects: floor", ("two_objects", "floor"), "{:.1f}"),
)


def _lookup(value: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def format_table(results: Mapping[str, Any]) -> str:
    """A markdown table of a [`benchmark_shapes`][vidtok.evaluation.shapes_benchmark.benchmark_shapes] result.

    One row per measure, one column per model (a category that was not run has no rows; ``–`` marks a
    value missing for one model).

    Args:
        results: What ``benchmark_shapes`` returned (or its JSON read back).

    Raises:
        ValueError: ``results`` is not a benchmark result.
    """
    if not isinstance(results, Mapping) or not isinstance(results.get("models"), Mapping):
        raise ValueError("format_table: expected the dict benchmark_shapes returns (with a 'models' mapping)")
    names = list(results["models"])
    lines = ["| measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for category, label, keys, fmt in _ROWS:
        if not any(category in results["models"][n] for n in names):
            continue
        cells = []
        for n in names:
            value = _lookup(results["models"][n].get(category), keys)
            if category == "diversity" and keys == ("distinct",) and value is not None:
                seeds = _lookup(results["models"][n].get(category), ("seeds",))
                cells.append(f"{value} of {seeds}")
            elif category == "tokens" and keys == ("tokens_per_keyframe",) and value is not None:
                dim = _lookup(results["models"][n].get(category), ("token_dim",))
                cells.append(f"{value} × {dim}")
            else:
                cells.append("–" if value is None else fmt.format(value))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
