"""Regenerate the docs gallery (``docs/gallery/``, shown on ``docs/gallery.md``) from the shipped models.

What it draws, all deterministic (fixed prompts and seeds, one CPU thread by default):

* ``text_to_video.gif`` / ``.png``: the embedded default (``vidtok.pipelines.text_to_video.load_default()``) on
  a fixed set of prompts that covers the grammar (every color, shape, size and evaluated motion, the three
  held-out (color, shape) pairs, two objects), each generated as ``vidtok generate PROMPT --keyframes 5
  --seed 0`` does, with its Shapes scores;
* ``diversity.gif`` / ``.png``: the under-specified prompt ``"a red shape"`` with seeds 0-7, as
  ``vidtok.metrics.shapes_evaluation.diversity`` generates it;
* ``reconstruction.gif`` / ``.png``: held-out Shapes clips (the first of the 64 of the docs' reconstruction
  table) next to their reconstruction by the shipped deep tokenizer (DDIM 10 steps, eta 0, noise seed 0);
* ``heldout_accuracy.png``, ``head_ablation.png``, ``tokenizer_curves.png``: the numbers recorded in the docs'
  tables (``docs/results.md``, ``docs/tokenizers/deep_tokens.md``), read from the tables at run time;
* ``gallery.json``: every setting, the scores and the recorded numbers the plots show.

    python examples/make_gallery.py                      # docs/gallery/
    python examples/make_gallery.py --quick --out gallery_quick   # tiny settings, seconds (tests)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from vidtok.io import tensor_to_frames
from vidtok.metrics.shapes_evaluation import render_clips, to_model_video
from vidtok.metrics.video_quality import psnr
from vidtok.metrics.visuals import accuracy_plot, animated_grid, contact_sheet
from vidtok.shapes.grammar import MOTIONS, is_heldout, parse_caption
from vidtok.shapes.scorer import analyze_video, score_video

ROOT = Path(__file__).resolve().parents[1]

#: Chosen to cover the grammar, not picked by their results: every color, shape, size and evaluated motion, the
#: three held-out pairs (blue triangle, yellow circle, magenta square) and a two-object scene.
PROMPTS = (
    "a large red circle moves right",
    "a small blue triangle moves left",
    "a small green triangle moves up",
    "a large yellow circle moves down",
    "a large white square moves down",
    "a large magenta square stays still",
    "a small cyan circle stays still",
    "a large red circle moves right and a small blue square stays still",
)
DIVERSITY_PROMPT = "a red shape"

# The recorded numbers the plots show are read from the docs' tables when the script runs, so the pictures follow
# the tables: each entry names the file, a phrase of the paragraph just above the table, and the rows to draw
# (label: how the row's first cell starts, formatting stripped). Nothing here is a number to transcribe.
RECORDED = {
    "heldout_accuracy": {
        "file": "docs/results.md",
        "table": "Held-out prompts",
        "columns": ("color", "shape", "size", "motion", "overall", "joint"),
        "rows": {
            "run 1 (3,000 steps)": "after run 1 (",
            "run 2 (6,000 steps)": "after run 2 (",
            "run 3 (9,000 steps)": "runs 1–3 without the gate",
            "+ still gate": "same language model, the tokenizer decoder shipped before",
            "shipped (+ decoder fine-tune)": "shipped (",
        },
    },
    "head_ablation": {
        "file": "docs/results.md",
        "table": "DiCoDe Table 4 in miniature",
        "columns": ("color", "shape", "size", "motion", "joint"),
        "rows": {"l2": "l2", "gaussian": "gaussian", "gmm (k = 16)": "gmm", "diffusion_mlp": "diffusion_mlp"},
    },
    "tokenizer_curves": {
        "file": "docs/tokenizers/deep_tokens.md",
        "columns": ("step", "minutes", "PSNR (DDIM 10)", "shape"),
        # run: (phrase above its table, the run it continues, the step of that run it starts from; None: the last)
        "runs": {
            "base (16 videos)": ("Base-model learning curve", None, None),
            "run 2: decoder fine-tune (32 videos)": ("Run 2's curve", "base (16 videos)", None),
            "run 3: on every pair (32 videos)": ("The run-3 curve", "run 2: decoder fine-tune (32 videos)", 900),
        },
    },
}


@dataclass(frozen=True)
class Settings:
    """Everything that decides the pictures (written to ``gallery.json``)."""

    prompts: tuple[str, ...] = PROMPTS
    seed: int = 0
    keyframes: int = 5  # 33 frames, 4 s at 8 fps: the length the language model was trained on
    steps: int = 10  # DDIM steps of the video decoder (the pipeline's default)
    diversity_seeds: int = 8
    diversity_keyframes: int = 3  # as in the docs' diversity numbers
    reconstruction_clips: int = 6
    reconstruction_seed: int = 123  # the clips of the docs' reconstruction table (64 held-out clips, seed 123)
    reconstruction_steps: int = 10
    sheet_frames: int = 9  # 0, 4, ..., 32: every keyframe and the frame half-way between
    scale: int = 3  # 32x32 frames drawn at 96x96
    fps: float = 8.0


QUICK = Settings(
    prompts=PROMPTS[:2],
    keyframes=2,
    steps=2,
    diversity_seeds=2,
    diversity_keyframes=2,
    reconstruction_clips=2,
    reconstruction_steps=2,
    sheet_frames=3,
    scale=2,
)


# ---------------------------------------------------------------------------------------------- recorded numbers


@dataclass
class Table:
    context: str  # the paragraph just above the table
    header: list[str]
    rows: list[list[str]]


def _plain(cell: str) -> str:
    return re.sub(r"[*`]", "", cell).strip()  # bold, italics and code marks


def markdown_tables(text: str) -> list[Table]:
    """The pipe tables of a Markdown text, each with the paragraph above it."""
    tables: list[Table] = []
    paragraph: list[str] = []  # the current paragraph, or the last one when blank lines follow it
    fresh = True  # whether the next text line starts a new paragraph
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|[\s:|-]+\|", lines[i + 1].strip()):
            header = [_plain(c) for c in line.strip("|").split("|")]
            body = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                body.append([_plain(c) for c in lines[i].strip().strip("|").split("|")])
                i += 1
            tables.append(Table(" ".join(paragraph), header, body))
            paragraph, fresh = [], True
            continue
        if not line:
            fresh = True
        else:
            paragraph = [line] if fresh else [*paragraph, line]
            fresh = False
        i += 1
    return tables


def find_table(file: str, phrase: str) -> Table:
    path = ROOT / file
    tables = [t for t in markdown_tables(path.read_text()) if phrase in t.context]
    if len(tables) != 1:
        raise ValueError(f"{file}: expected one table under a paragraph containing {phrase!r}, found {len(tables)}")
    return tables[0]


def _number(cell: str) -> float:
    found = re.search(r"[−-]?\d+(?:\.\d+)?", cell.replace(",", ""))
    return float(found.group().replace("−", "-")) if found else math.nan


def _column(table: Table, name: str) -> int:
    exact = [i for i, h in enumerate(table.header) if h == name]
    loose = [i for i, h in enumerate(table.header) if h.split(" (")[0] == name]
    if len(exact) == 1 or len(loose) == 1:
        return (exact or loose)[0]
    raise ValueError(f"no single column {name!r} in the table under {table.context[:60]!r}: {table.header}")


def _row(table: Table, start: str) -> list[str]:
    for row in table.rows:
        if row[0].startswith(start):
            return row
    raise ValueError(f"no row starting {start!r} in the table under {table.context[:60]!r}")


def recorded_numbers() -> dict:
    """The docs' numbers the plots show, read from their tables."""
    out = {}
    for name in ("heldout_accuracy", "head_ablation"):
        spec = RECORDED[name]
        table = find_table(spec["file"], spec["table"])
        cols = {c: _column(table, c) for c in spec["columns"]}
        out[name] = {
            "source": f"{spec['file']}, the table under “{spec['table']} …”",
            "rows": {
                label: {"row": _row(table, start)[0], **{c: _number(_row(table, start)[i]) for c, i in cols.items()}}
                for label, start in spec["rows"].items()
            },
        }
    spec = RECORDED["tokenizer_curves"]
    runs = {}
    for label, (phrase, parent, from_step) in spec["runs"].items():
        table = find_table(spec["file"], phrase)
        cols = {c: _column(table, c) for c in spec["columns"]}
        points = [{c: _number(row[i]) for c, i in cols.items()} for row in table.rows]
        for point, row in zip(points, table.rows):
            point["shipped"] = "shipped" in row[0]
        offset = 0.0
        if parent is not None:
            before = runs[parent]["points"]
            start = before[-1] if from_step is None else next(p for p in before if p["step"] == from_step)
            offset = start["minutes"] + runs[parent]["offset_minutes"]
        runs[label] = {"table": phrase, "offset_minutes": offset, "points": points}
    out["tokenizer_curves"] = {"source": spec["file"], "runs": runs}
    return out


def _write_atomically(path: Path, write) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def curves_plot(curves: dict, path: Path) -> Path:
    """PSNR and shape accuracy of the shipped tokenizer's three runs against cumulative training minutes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for k, (label, run) in enumerate(curves["runs"].items()):
        xs = [p["minutes"] + run["offset_minutes"] for p in run["points"]]
        for ax, key in zip(axes, ("PSNR (DDIM 10)", "shape")):
            ax.plot(xs, [p[key] for p in run["points"]], marker="o", markersize=3, color=f"C{k}", label=label)
            for x, p in zip(xs, run["points"]):
                if p["shipped"]:
                    ax.plot([x], [p[key]], marker="*", markersize=13, color="black", linestyle="none", zorder=3)
    axes[0].set_ylabel("PSNR (dB), DDIM 10")
    axes[1].set_ylabel("shape accuracy of the reconstructions")
    axes[1].set_ylim(0, 1.05)
    for ax in axes:
        ax.set_xlabel("training minutes on the 2-core CPU (cumulative)")
        ax.grid(True, alpha=0.3)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[1].plot([], [], marker="*", markersize=10, color="black", linestyle="none", label="shipped")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle("shipped deep tokenizer: held-out reconstruction during training (recorded)", fontsize=10)
    fig.tight_layout()
    return _write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))


# ---------------------------------------------------------------------------------------------- pictures


def _scores_line(scores: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in scores.items() if not math.isnan(v)}


def text_to_video(pipe, s: Settings, out: Path) -> list[dict]:
    videos, entries = [], []
    for prompt in s.prompts:
        # As `vidtok generate PROMPT --keyframes K --seed S` does: one prompt per call, its own generator.
        result = pipe(
            prompt,
            num_keyframes=s.keyframes,
            num_inference_steps=s.steps,
            generator=torch.Generator().manual_seed(s.seed),
            output_type="np",
            progress=False,
        )
        frames = result.frames[0]
        videos.append(frames)
        heldout = any(is_heldout(o) for o in parse_caption(prompt))
        entries.append({"prompt": prompt, "heldout_pair": heldout, "scores": _scores_line(score_video(frames, prompt))})
    captions = [e["prompt"] + ("  [held-out pair]" if e["heldout_pair"] else "") for e in entries]
    contact_sheet(
        videos,
        captions,
        path=out / "text_to_video.png",
        frames_per_video=s.sheet_frames,
        scale=s.scale,
        scores=[e["scores"] for e in entries],
    )
    animated_grid(videos, out / "text_to_video.gif", columns=4, fps=s.fps, captions=s.prompts, scale=s.scale)
    return entries


def diversity(pipe, s: Settings, out: Path) -> list[dict]:
    videos, entries = [], []
    for seed in range(s.diversity_seeds):
        # As vidtok.metrics.shapes_evaluation.diversity: the prompt alone, generator seeded with the seed.
        result = pipe(
            DIVERSITY_PROMPT,
            num_keyframes=s.diversity_keyframes,
            num_inference_steps=s.steps,
            generator=torch.Generator().manual_seed(seed),
            output_type="np",
            progress=False,
        )
        frames = result.frames[0]
        videos.append(frames)
        found = analyze_video(frames, ["red"])["red"]
        outcome = (
            f"{found.size} red {found.shape} {MOTIONS.get(found.motion, found.motion)}"
            if found.shape is not None
            else "no red object found"
        )
        entries.append({"seed": seed, "outcome": outcome})
    captions = [f"seed {e['seed']}: {e['outcome']}" for e in entries]
    contact_sheet(videos, captions, path=out / "diversity.png", frames_per_video=s.sheet_frames, scale=s.scale)
    animated_grid(videos, out / "diversity.gif", columns=4, fps=s.fps, captions=captions, scale=s.scale)
    return entries


def reconstruction(tokenizer, s: Settings, out: Path) -> list[dict]:
    from vidtok.pipelines.reconstruct import Reconstruct

    clips, captions = render_clips("heldout", s.reconstruction_clips, s.reconstruction_seed)
    video = to_model_video(clips)
    result = Reconstruct(tokenizer)(
        video,
        num_inference_steps=s.reconstruction_steps,
        guidance_scale=1.0,
        eta=0.0,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
        progress=False,
    )
    recon = result.frames
    rows, row_text, row_scores, pairs, entries = [], [], [], [], []
    for i, caption in enumerate(captions):
        decoded = tensor_to_frames(recon[i])
        quality = psnr(recon[i : i + 1], video[i : i + 1])
        ours, ref = _scores_line(score_video(decoded, caption)), _scores_line(score_video(clips[i], caption))
        entries.append({"caption": caption, "psnr": round(quality, 2), "scores": ours, "scores_original": ref})
        rows += [clips[i], decoded]
        row_text += [f"original: {caption}", f"reconstruction: PSNR {quality:.1f} dB"]
        row_scores += [ref, ours]
        # Original | reconstruction in one cell, split by a one-pixel white line.
        line = np.full((*clips[i].shape[:2], 1, 3), 255, np.uint8)
        pairs.append(np.concatenate([clips[i], line, decoded], axis=2))
    contact_sheet(rows, row_text, path=out / "reconstruction.png", frames_per_video=9, scale=s.scale, scores=row_scores)
    animated_grid(
        pairs,
        out / "reconstruction.gif",
        columns=3,
        fps=s.fps,
        captions=[f"{e['caption']}: {e['psnr']:.1f} dB" for e in entries],
        scale=s.scale,
    )
    return entries


def plots(recorded: dict, out: Path) -> None:
    for name, title in (
        ("heldout_accuracy", "embedded default, 30 held-out prompts × seeds 0, 1, through its training (recorded)"),
        ("head_ablation", "AR heads, same recipe and 3,000 steps, held-out prompts × seeds 0, 1 (recorded)"),
    ):
        rows = recorded[name]["rows"]
        results = {label: {k: v for k, v in row.items() if k != "row"} for label, row in rows.items()}
        accuracy_plot(results, out / f"{name}.png", title=title)
    curves_plot(recorded["tokenizer_curves"], out / "tokenizer_curves.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "docs" / "gallery"), help="folder to write (default docs/gallery)")
    parser.add_argument("--quick", action="store_true", help="tiny settings: 2 prompts, 2 keyframes, 2 steps (tests)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: the committed pictures were made so)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = QUICK if args.quick else Settings()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from vidtok.pipelines.text_to_video import load_default

    start = time.perf_counter()
    times = {}
    pipe = load_default()
    pipe.set_progress_bar_config(disable=True)
    times["load"] = time.perf_counter() - start
    mark = time.perf_counter()
    generated = text_to_video(pipe, settings, out)
    times["text_to_video"], mark = time.perf_counter() - mark, time.perf_counter()
    varied = diversity(pipe, settings, out)
    times["diversity"], mark = time.perf_counter() - mark, time.perf_counter()
    rebuilt = reconstruction(pipe.video_tokenizer, settings, out)
    times["reconstruction"], mark = time.perf_counter() - mark, time.perf_counter()
    recorded = recorded_numbers()
    plots(recorded, out)
    times["plots"] = time.perf_counter() - mark

    summary = {
        "command": "python examples/make_gallery.py" + (" --quick" if args.quick else ""),
        "threads": args.threads,
        "model": "vidtok.pipelines.text_to_video.load_default() (the embedded dicode_tiny on Shapes); "
        "its video_tokenizer (the shipped deep tokenizer) for the reconstructions",
        "settings": {**asdict(replace(settings)), "prompts": list(settings.prompts)},
        "text_to_video": generated,
        "diversity": {"prompt": DIVERSITY_PROMPT, "videos": varied},
        "reconstruction": rebuilt,
        "recorded": recorded,
    }
    text = json.dumps(summary, indent=1, ensure_ascii=False) + "\n"
    _write_atomically(out / "gallery.json", lambda tmp: tmp.write_text(text))
    total = time.perf_counter() - start
    for path in sorted(out.iterdir()):
        if not path.name.startswith("."):
            print(f"{path.name:24s} {path.stat().st_size / 1024:7.1f} KB")
    print(" | ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    print(f"wrote the gallery to {out} in {total:.1f} s ({args.threads} thread(s))")


if __name__ == "__main__":
    main()
