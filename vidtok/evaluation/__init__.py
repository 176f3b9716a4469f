"""Benchmarks on local data: FVD, CLIPSIM, reconstruction, MSR-VTT zero-shot and UCF-101, each with an eval card.

* [`vidtok.evaluation.datasets`][vidtok.evaluation.datasets] — readers of the user's local copies (captions CSV,
  video folders, MSR-VTT's 2,990-video test split with one seeded caption per video as in DiCoDe Tab. 2,
  UCF-101 official splits with class names as prompts) and the deterministic clip sampler.
* [`vidtok.evaluation.shapes_benchmark`][vidtok.evaluation.shapes_benchmark] — the Shapes benchmark of any
  text-to-video models side by side (``vidtok eval shapes``).
* [`vidtok.evaluation.runners`][vidtok.evaluation.runners] — ``run_fvd``, ``run_clipsim``, ``run_recon``,
  ``run_msrvtt``, ``run_ucf101``: generation with per-video seeds, per-video feature caches that make an
  interrupted run resume to the identical result, and an
  [`EvalCard`][vidtok.metrics.eval_card.EvalCard] with the whole protocol. ``vidtok eval`` runs them.

Nothing is downloaded: metric networks (I3D, CLIP, LPIPS backbones) come from local files, and a missing one is
an error that names the file.
"""

from vidtok.evaluation.datasets import (
    MSRVTT_TEST_SIZE,
    ClipSampler,
    EvalItem,
    EvalSet,
    as_eval_set,
    msrvtt_test,
    read_captions,
    subset,
    ucf101,
    ucf101_prompt,
    video_folder,
)
from vidtok.evaluation.runners import (
    FeatureCache,
    build_clip,
    build_i3d,
    item_seed,
    load_text_to_video,
    load_tokenizer,
    run_clipsim,
    run_fvd,
    run_msrvtt,
    run_recon,
    run_ucf101,
)

__all__ = [
    "MSRVTT_TEST_SIZE",
    "ClipSampler",
    "EvalItem",
    "EvalSet",
    "FeatureCache",
    "as_eval_set",
    "build_clip",
    "build_i3d",
    "item_seed",
    "load_text_to_video",
    "load_tokenizer",
    "msrvtt_test",
    "read_captions",
    "run_clipsim",
    "run_fvd",
    "run_msrvtt",
    "run_recon",
    "run_ucf101",
    "subset",
    "ucf101",
    "ucf101_prompt",
    "video_folder",
]
