"""Held-out evaluation on the Shapes world: text-to-video prompt following, diversity, tokenizer reconstruction.

What the Shapes training runs measure, as library functions (``vidtok train`` on a recipe, the example scripts
and the docs' tables all call these):

* [`heldout_prompts`][vidtok.metrics.shapes_evaluation.heldout_prompts]: the prompts of the held-out (color, shape)
  pairs that never appear in training (compositional generalization, ARCHITECTURE §6);
* [`evaluate_text_to_video`][vidtok.metrics.shapes_evaluation.evaluate_text_to_video]: generate videos for prompts with
  any text-to-video pipeline and score them from pixels with [`score_video`][vidtok.shapes.scorer.score_video]:
  per attribute and ``joint`` (every stated attribute right);
* [`diversity`][vidtok.metrics.shapes_evaluation.diversity]: distinct outcomes of an under-specified prompt over seeds
  (DiCoDe Table 4's argument for a GMM head over L2: a deterministic head gives one outcome);
* [`image_to_video_consistency`][vidtok.metrics.shapes_evaluation.image_to_video_consistency] and
  [`presence_per_frame`][vidtok.metrics.shapes_evaluation.presence_per_frame]: whether generated frames keep a
  prefilled object (NOVA's zero-shot image-to-video, §4.2) and keep the prompt's object as a video grows past
  the trained length (extrapolation);
* [`evaluate_reconstruction`][vidtok.metrics.shapes_evaluation.evaluate_reconstruction] and
  [`reconstruction_report`][vidtok.metrics.shapes_evaluation.reconstruction_report]: a tokenizer's held-out
  reconstruction (PSNR/SSIM, the token preview where the tokenizer has one, Shapes scores of the
  reconstructions against those of the originals).

Example:
    >>> from vidtok.metrics.shapes_evaluation import heldout_prompts
    >>> prompts = heldout_prompts()
    >>> len(prompts), prompts[0]
    (30, 'a small blue triangle moves left')
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vidtok.shapes.grammar import HELDOUT_COMBINATIONS

__all__ = [
    "EVAL_MOTIONS",
    "SCORE_KEYS",
    "diversity",
    "evaluate_reconstruction",
    "evaluate_text_to_video",
    "frame_consistency",
    "heldout_prompts",
    "image_to_video_consistency",
    "presence_per_frame",
    "reconstruction_report",
    "render_clips",
    "to_model_video",
]

#: The motions of the held-out prompts: every linear motion and staying still (``bounces`` needs long videos).
EVAL_MOTIONS = ("moves left", "moves right", "moves up", "moves down", "stays still")

#: The attributes [`evaluate_text_to_video`][vidtok.metrics.shapes_evaluation.evaluate_text_to_video] averages.
SCORE_KEYS = ("color", "shape", "size", "motion", "overall")


def heldout_prompts(limit: int | None = None) -> list[str]:
    """Every held-out (color, shape) pair with both sizes and every linear motion or staying still.

    Args:
        limit: Only the first ``limit`` prompts (``None``: all of them).

    Returns:
        Prompts such as ``"a small magenta square moves left"``, pairs in the order of
        [`HELDOUT_COMBINATIONS`][vidtok.shapes.grammar.HELDOUT_COMBINATIONS].
    """
    prompts = [
        f"a {size} {color} {shape} {motion}"
        for color, shape in HELDOUT_COMBINATIONS
        for size in ("small", "large")
        for motion in EVAL_MOTIONS
    ]
    return prompts[:limit]


def _mean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def evaluate_text_to_video(
    pipe: Any,
    prompts: Sequence[str] | None = None,
    *,
    seeds: Sequence[int] = (0, 1),
    keyframes: int = 3,
    num_inference_steps: int = 10,
    batch_size: int = 16,
    **sampling: Any,
) -> dict[str, float]:
    """Shapes scores of generated videos: per attribute, and ``joint`` (every stated attribute right).

    Each batch of up to ``batch_size`` prompts is generated with the generator seeded ``seed * 1000 + offset``
    (``offset``: the index of the batch's first prompt), so a score does not depend on what else is evaluated.

    Args:
        pipe: A text-to-video pipeline called as ``pipe(prompts, num_keyframes=, num_inference_steps=,
            generator=, progress=False, **sampling)`` whose output has ``frames`` ``(B, T, H, W, C)``
            (e.g. [`TextToVideo`][vidtok.pipelines.text_to_video.TextToVideo]).
        prompts: Captions in the Shapes grammar (default: every held-out prompt,
            [`heldout_prompts`][vidtok.metrics.shapes_evaluation.heldout_prompts]).
        seeds: One video per prompt and seed.
        keyframes: Token steps of each video.
        num_inference_steps: Denoising steps of the video decoder.
        batch_size: Prompts per pipeline call.
        **sampling: Further pipeline arguments, e.g. ``guidance_scale`` (the language model's classifier-free
            guidance, 1 = off) and ``temperature`` (``None``: the model's own).

    Returns:
        ``{"color", "shape", "size", "motion", "overall", "joint"}``: mean accuracies (NaN for an attribute no
        prompt states).
    """
    import torch

    from vidtok.shapes.scorer import score_video

    prompts = heldout_prompts() if prompts is None else list(prompts)
    scores = []
    with torch.no_grad():
        for seed in seeds:
            for lo in range(0, len(prompts), batch_size):
                batch = prompts[lo : lo + batch_size]
                g = torch.Generator().manual_seed(int(seed) * 1000 + lo)
                out = pipe(
                    batch,
                    num_keyframes=keyframes,
                    num_inference_steps=num_inference_steps,
                    generator=g,
                    **sampling,
                    progress=False,
                )
                scores += [score_video(v, c) for v, c in zip(out.frames, batch, strict=True)]
    result = {key: _mean([s[key] for s in scores]) for key in SCORE_KEYS}
    stated = ("color", "shape", "size", "motion")
    result["joint"] = float(np.mean([all(s[k] == 1 for k in stated) for s in scores])) if scores else float("nan")
    return result


def diversity(
    pipe: Any, prompt: str = "a red shape", seeds: int = 8, keyframes: int = 3, **sampling: Any
) -> dict[str, Any]:
    """Distinct (shape, size, motion) outcomes of an under-specified prompt's object over seeds.

    The object is looked up by the prompt's first color word in every video; videos without it count as
    ``missing``, not as an outcome.

    Args:
        pipe: A text-to-video pipeline (as for
            [`evaluate_text_to_video`][vidtok.metrics.shapes_evaluation.evaluate_text_to_video]).
        prompt: A caption that leaves attributes open (default ``"a red shape"``: shape, size and motion).
        seeds: Videos generated, with seeds ``0 .. seeds - 1``.
        keyframes: Token steps of each video.
        **sampling: Further pipeline arguments (``guidance_scale``, ``temperature``).

    Returns:
        ``{"prompt", "distinct", "missing", "seeds", "outcomes"}`` (``outcomes``: one ``(shape, size, motion)``
        per seed, ``(None, None, None)`` where the object is missing).
    """
    import torch

    from vidtok.shapes.grammar import COLORS
    from vidtok.shapes.scorer import analyze_video

    colors = [w for w in prompt.split() if w in COLORS]
    if not colors:
        raise ValueError(f"diversity: the prompt {prompt!r} names no color ({', '.join(COLORS)})")
    color = colors[0]
    outcomes = []
    with torch.no_grad():
        for seed in range(seeds):
            g = torch.Generator().manual_seed(seed)
            out = pipe(prompt, num_keyframes=keyframes, generator=g, progress=False, **sampling)
            found = analyze_video(out.frames[0], [color])[color]
            outcomes.append((found.shape, found.size, found.motion))
    nothing = (None, None, None)
    return {
        "prompt": prompt,
        "distinct": len({o for o in outcomes if o != nothing}),
        "missing": outcomes.count(nothing),
        "seeds": seeds,
        "outcomes": outcomes,
    }


def _first_object(caption: str) -> tuple[str, str | None]:
    """The first color word of a caption and the first shape word after it (``None`` for "shape")."""
    from vidtok.shapes.grammar import COLORS, SHAPES

    words = caption.split()
    colors = [i for i, w in enumerate(words) if w in COLORS]
    if not colors:
        raise ValueError(f"the caption {caption!r} names no color ({', '.join(COLORS)})")
    shape = next((w for w in words[colors[0] :] if w in SHAPES), None)
    return words[colors[0]], shape


def _frame_facts(video: Any, color: str, shape: str | None) -> tuple[list[bool], list[bool]]:
    """Per frame: is an object of ``color`` there, and is it also of ``shape`` (each frame analyzed alone)."""
    from vidtok.shapes.scorer import analyze_video

    present, kept = [], []
    for frame in video:
        found = analyze_video(frame[None], [color])[color]
        present.append(bool(found.present))
        kept.append(bool(found.present) and (shape is None or found.shape == shape))
    return present, kept


def frame_consistency(videos: Any, captions: Sequence[str]) -> dict[str, float]:
    """How often the frames after the first show the caption's first object (each frame analyzed on its own).

    The measure of [`image_to_video_consistency`][vidtok.metrics.shapes_evaluation.image_to_video_consistency],
    for any videos: applied to a tokenizer's reconstructions of the clips whose first frames prompt the
    image-to-video pipeline, it is the ceiling that pipeline can reach through that tokenizer.

    Args:
        videos: ``uint8`` (or ``[0, 1]`` float) videos ``(n, T, H, W, 3)``.
        captions: Their captions; the first object of each (color, and shape unless it says "shape") is looked for.

    Returns:
        ``{"kept", "color_kept", "frames"}``: the fraction of frames showing an object of the color and shape,
        of the color, and the number of frames judged.
    """
    if len(videos) != len(captions):
        raise ValueError(f"{len(videos)} videos but {len(captions)} captions")
    present_all, kept_all = [], []
    for video, caption in zip(videos, captions, strict=True):
        present, kept = _frame_facts(np.asarray(video)[1:], *_first_object(caption))
        present_all += present
        kept_all += kept
    return {
        "kept": float(np.mean(kept_all)) if kept_all else float("nan"),
        "color_kept": float(np.mean(present_all)) if present_all else float("nan"),
        "frames": len(kept_all),
    }


def image_to_video_consistency(
    pipe: Any,
    videos: np.ndarray,
    captions: Sequence[str],
    *,
    keyframes: int = 3,
    seed: int = 0,
    batch_size: int = 16,
    **sampling: Any,
) -> dict[str, float]:
    """Image-to-video from the first frame of real clips: how often later frames keep the object (NOVA §4.2).

    Each clip's first frame is the image; its caption is the prompt. Every generated frame after the first is
    analyzed on its own for the caption's first object: ``color_kept`` is the fraction of those frames in which
    an object of its color is found, ``kept`` the fraction in which it also has the caption's shape.

    Args:
        pipe: An image-to-video pipeline called as ``pipe(images, prompts, num_keyframes=, generator=,
            progress=False, **sampling)`` with images ``(B, C, H, W)`` in ``[-1, 1]`` and output ``frames``
            ``(B, T, H, W, C)`` in ``[0, 1]`` (e.g. [`ImageToVideo`][vidtok.pipelines.image_to_video.ImageToVideo]).
        videos: ``uint8`` clips ``(n, T, H, W, 3)`` (see
            [`render_clips`][vidtok.metrics.shapes_evaluation.render_clips]); only their first frames are used.
        captions: Their captions.
        keyframes: Token steps of each generated video, the image's included.
        seed: Seed of the generator (``seed * 1000 + offset`` per batch).
        batch_size: Clips per pipeline call.
        **sampling: Further pipeline arguments (``guidance_scale``, ``temperature``, ...).

    Returns:
        ``{"kept", "color_kept", "frames"}``: the two fractions and the number of frames judged.
    """
    import torch

    if len(videos) != len(captions):
        raise ValueError(f"{len(videos)} videos but {len(captions)} captions")
    generated = []
    with torch.no_grad():
        for lo in range(0, len(videos), batch_size):
            batch = captions[lo : lo + batch_size]
            images = torch.from_numpy(np.ascontiguousarray(videos[lo : lo + batch_size, 0])).permute(0, 3, 1, 2)
            images = images.float().div(127.5).sub(1.0)
            g = torch.Generator().manual_seed(int(seed) * 1000 + lo)
            out = pipe(images, list(batch), num_keyframes=keyframes, generator=g, progress=False, **sampling)
            generated += [np.asarray(video) for video in out.frames]
    return frame_consistency(generated, captions)


def presence_per_frame(
    pipe: Any,
    prompts: Sequence[str],
    *,
    keyframes: int,
    seeds: Sequence[int] = (0,),
    batch_size: int = 16,
    **sampling: Any,
) -> dict[str, Any]:
    """Whether the prompt's object is still there frame by frame as a video grows (NOVA's extrapolation, §4.2).

    Args:
        pipe: A text-to-video pipeline (as for
            [`evaluate_text_to_video`][vidtok.metrics.shapes_evaluation.evaluate_text_to_video]).
        prompts: Captions in the Shapes grammar.
        keyframes: Token steps of each video (e.g. twice the trained length).
        seeds: One video per prompt and seed.
        batch_size: Prompts per pipeline call.
        **sampling: Further pipeline arguments.

    Returns:
        ``{"color", "shape"}``: per frame, the fraction of videos in which an object of the first color of the
        prompt is found (``color``) and in which it also has the prompt's shape (``shape``);
        ``{"first_half", "second_half"}``: ``color`` averaged over each half of the frames.
    """
    import torch

    color_rows, shape_rows = [], []
    with torch.no_grad():
        for seed in seeds:
            for lo in range(0, len(prompts), batch_size):
                batch = list(prompts[lo : lo + batch_size])
                g = torch.Generator().manual_seed(int(seed) * 1000 + lo)
                out = pipe(batch, num_keyframes=keyframes, generator=g, progress=False, **sampling)
                for video, prompt in zip(out.frames, batch, strict=True):
                    present, kept = _frame_facts(np.asarray(video), *_first_object(prompt))
                    color_rows.append(present)
                    shape_rows.append(kept)
    color = np.mean(np.asarray(color_rows, dtype=float), axis=0)
    shape = np.mean(np.asarray(shape_rows, dtype=float), axis=0)
    half = len(color) // 2
    return {
        "color": color.tolist(),
        "shape": shape.tolist(),
        "first_half": float(color[:half].mean()) if half else float("nan"),
        "second_half": float(color[half:].mean()),
    }


# ---------------------------------------------------------------------------------------------- tokenizers


def render_clips(
    split: str,
    n: int,
    seed: int,
    cache: str | None = None,
    *,
    resolution: int = 32,
    num_frames: int = 9,
    fps: float = 8.0,
) -> tuple[np.ndarray, list[str]]:
    """Render ``n`` Shapes clips of a split as ``uint8`` ``(n, T, H, W, 3)`` (or load them from ``cache``).

    Args:
        split: ``"train"``, ``"heldout"`` or ``"all"`` (see [`ShapesConfig`][vidtok.shapes.dataset.ShapesConfig]).
        n: Number of clips.
        seed: Seed of the split's sampler.
        cache: An ``.npz`` file: read when it exists (its first ``n`` clips), else written.
        resolution: Frame side in pixels.
        num_frames: Frames per clip.
        fps: Frame rate the motions are rendered at.

    Returns:
        ``(videos, captions)``.
    """
    import os

    if cache and os.path.exists(cache):
        data = np.load(cache)
        return data["videos"][:n], [str(c) for c in data["captions"][:n]]
    from vidtok.shapes.dataset import ShapesConfig, generate

    cfg = ShapesConfig(resolution=resolution, num_frames=num_frames, fps=fps, split=split, seed=seed)
    videos, captions = generate(n, cfg)
    if cache:
        np.savez(cache, videos=videos, captions=np.array(captions))
    return videos, captions


def to_model_video(videos: np.ndarray) -> Any:
    """``uint8`` clips ``(n, T, H, W, 3)`` → the model layout, a float tensor ``(n, 3, T, H, W)`` in ``[-1, 1]``."""
    import torch

    return torch.from_numpy(videos.transpose(0, 4, 1, 2, 3).copy()).float().div(127.5).sub(1.0)


def _preview(tokenizer: Any, tokens: Any, stride: Mapping[str, Any]) -> Any:
    """The tokenizer's deterministic token preview, or ``None`` when it has none (or was built without one)."""
    preview = getattr(tokenizer, "preview", None)
    if not callable(preview):
        return None
    try:
        return preview(tokens, **stride)
    except RuntimeError:  # e.g. a deep tokenizer whose denoiser has no spatial condition
        return None


def evaluate_reconstruction(
    tokenizer: Any,
    videos: Any,
    captions: Sequence[str] | None = None,
    *,
    num_inference_steps: int = 10,
    guidance_scale: float = 1.0,
    eta: float = 0.0,
    seed: int = 0,
    frame_stride: int | None = None,
) -> dict[str, float]:
    """Held-out reconstruction of a tokenizer: PSNR/SSIM, the preview's PSNR, Shapes scores.

    The tokenizer encodes ``videos`` and decodes the tokens with deterministic settings (DDIM ``eta = 0`` and
    decoder guidance 1 by default, for a diffusion decoder; settings its ``decode`` does not take are left
    out). Its training mode is restored afterwards.

    Args:
        tokenizer: A [`VideoTokenizer`][vidtok.tokenizers.base.VideoTokenizer].
        videos: ``(B, C, T, H, W)`` in ``[-1, 1]`` (see
            [`to_model_video`][vidtok.metrics.shapes_evaluation.to_model_video]).
        captions: The videos' captions: with them the Shapes scores of the reconstructions (``score_<attr>``)
            and of the originals (``score_<attr>_original``) are reported.
        num_inference_steps: Decoder denoising steps.
        guidance_scale: Decoder classifier-free guidance.
        eta: DDIM eta.
        seed: Seed of the decoding noise.
        frame_stride: Keyframe stride for tokenizers that take one (deep tokens); ``None``: the tokenizer's.

    Returns:
        ``psnr``, ``ssim``, ``psnr_preview`` (tokenizers with a preview) and the scores.
    """
    import torch

    from vidtok.metrics.video_quality import psnr, ssim
    from vidtok.shapes.scorer import score_videos

    stride = {} if frame_stride is None else {"frame_stride": frame_stride}
    was_training = tokenizer.training
    tokenizer.eval()
    try:
        with torch.no_grad():
            out = tokenizer.encode(videos, **stride)
            options = tokenizer.decode_options(
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                eta=eta,
                generator=torch.Generator().manual_seed(seed),
                progress=False,
                **stride,
            )
            recon = tokenizer.decode(out.tokens, **options)
            preview = _preview(tokenizer, out.tokens, stride)
    finally:
        tokenizer.train(was_training)
    result = {"psnr": psnr(recon, videos), "ssim": ssim(recon, videos)}
    if preview is not None:
        result["psnr_preview"] = psnr(preview, videos)
    if captions is not None:
        ours, ref = score_videos(recon, list(captions)), score_videos(videos, list(captions))
        for key in SCORE_KEYS:
            result[f"score_{key}"] = ours[key]
            result[f"score_{key}_original"] = ref[key]
    return result


def reconstruction_report(
    tokenizer: Any,
    *,
    videos: int = 64,
    split: str = "heldout",
    seed: int = 123,
    resolution: int = 32,
    num_frames: int = 9,
    fps: float = 8.0,
    num_inference_steps: int = 10,
    guidance_scale: float = 1.0,
    eta: float = 0.0,
) -> dict[str, Any]:
    """The reconstruction numbers of ``docs/tokenizers/deep_tokens.md`` for a tokenizer, on fresh Shapes clips.

    Renders ``videos`` clips of ``split`` (``"heldout"``: each has a (color, shape) pair the tokenizer never
    saw), encodes and decodes them (decoder noise seeded 0) and reports PSNR/SSIM of the decoding and of the
    token preview, PSNR of the first and last frame against the frames in between, a black video's PSNR (the
    floor), the Shapes scores of reconstructions and originals with their ratio, and the decoding time.

    Args:
        tokenizer: The tokenizer (put in eval mode, float32 expected).
        videos: Number of clips.
        split: Shapes split of the clips.
        seed: Seed of the clips.
        resolution: Frame side.
        num_frames: Frames per clip.
        fps: Frame rate of the clips.
        num_inference_steps: Decoder denoising steps.
        guidance_scale: Decoder classifier-free guidance.
        eta: DDIM eta.

    Returns:
        A JSON-serializable dict.
    """
    import torch

    from vidtok.metrics.video_quality import psnr, psnr_per_frame, ssim
    from vidtok.shapes.scorer import score_videos

    clips, captions = render_clips(split, videos, seed, resolution=resolution, num_frames=num_frames, fps=fps)
    video = to_model_video(clips)
    with torch.no_grad():
        tokens = tokenizer.encode(video).tokens
        t0 = time.time()
        options = tokenizer.decode_options(
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            eta=eta,
            generator=torch.Generator().manual_seed(0),
            progress=False,
        )
        recon = tokenizer.decode(tokens, **options)
        seconds = time.time() - t0
        preview = _preview(tokenizer, tokens, {})
    per_frame = psnr_per_frame(recon, video).reshape(videos, -1)
    ours, ref = score_videos(recon, captions), score_videos(video, captions)
    return {
        "videos": videos,
        "split": split,
        "ddim_steps": num_inference_steps,
        "guidance": guidance_scale,
        "eta": eta,
        "psnr": psnr(recon, video),
        "ssim": ssim(recon, video),
        "psnr_keyframes": float(per_frame[:, [0, -1]].mean()),
        "psnr_inbetween": float(per_frame[:, 1:-1].mean()),
        "psnr_preview": psnr(preview, video) if preview is not None else None,
        "black_psnr": psnr(torch.full_like(video, -1), video),
        "scores": {k: round(ours[k], 4) for k in ours},
        "scores_original": {k: round(ref[k], 4) for k in ref},
        "score_ratio": {k: round(ours[k] / ref[k], 4) for k in ours if ref[k] == ref[k] and ref[k] > 0},
        "decode_seconds": seconds,
        "decode_seconds_per_clip": seconds / videos,
    }
