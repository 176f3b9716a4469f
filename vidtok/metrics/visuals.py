"""Pictures of what was scored: contact sheets, animated grids and accuracy bar charts.

Numbers say how well a model follows prompts or reconstructs clips; these functions show it:

* [`contact_sheet`][vidtok.metrics.visuals.contact_sheet]: a PNG with one row per video (evenly spaced frames),
  each row under its caption and, optionally, its scores;
* [`animated_grid`][vidtok.metrics.visuals.animated_grid]: a GIF with every video playing side by side;
* [`accuracy_plot`][vidtok.metrics.visuals.accuracy_plot]: a PNG bar chart of per-attribute accuracy for one or
  several models (needs matplotlib, ``pip install 'vidtok[eval]'``).

Videos are given as a batch in the model layout ``(B, C, T, H, W)`` in ``[-1, 1]`` (a float torch tensor), as
channels-last frames ``(B, T, H, W, C)`` (``uint8``, or float in ``[0, 1]``; numpy or torch), or as a list of
single videos in any form [`save_video`][vidtok.io.save_video] accepts; ``layout=`` settles ambiguous shapes as
there. Small frames (the 32×32 Shapes clips) are enlarged with nearest-neighbour so that pixels stay pixels.
Every file is written atomically: a hidden temporary file next to ``path`` replaces it only when complete.

Example:
    >>> import tempfile
    >>> from vidtok.metrics.shapes_evaluation import render_clips
    >>> from vidtok.metrics.visuals import animated_grid, contact_sheet
    >>> clips, captions = render_clips("heldout", 2, seed=0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     sheet = contact_sheet(clips, captions, path=f"{d}/sheet.png", frames_per_video=3)
    ...     grid = animated_grid(clips, f"{d}/grid.gif", columns=2, fps=8, captions=captions)
    ...     sheet.name, grid.name
    ('sheet.png', 'grid.gif')
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vidtok.io import IMAGE_EXTENSIONS, save_video
from vidtok.io.base import Layout
from vidtok.io.files import write_atomically
from vidtok.io.frames import normalize_frames, to_uint8

__all__ = ["accuracy_plot", "animated_grid", "contact_sheet"]

#: Frames smaller than this (longest side, pixels) are enlarged by an integer factor when ``scale`` is ``None``.
AUTO_SCALE_TARGET = 128

# Colours of the pictures: a white page (docs), black text, grey for the secondary lines.
_PAGE = (255, 255, 255)
_TEXT = (0, 0, 0)
_MUTED = (90, 90, 90)
_FONT_SIZE = 12
_MARGIN = 8  # around the picture
_GAP = 4  # between frames and between cells
_LINE_GAP = 3  # between lines of text

#: The order attributes are drawn in when ``accuracy_plot`` is not told (others follow in first-seen order).
_ATTRIBUTE_ORDER = ("color", "shape", "size", "motion", "overall", "joint")


# ---------------------------------------------------------------------------------------------- inputs


def _is_tensor(x: Any) -> bool:
    # Torch is never imported here: a tensor can only exist if the caller imported it.
    import sys

    torch_mod = sys.modules.get("torch")
    return torch_mod is not None and isinstance(x, torch_mod.Tensor)


def _as_videos(videos: Any, layout: Layout) -> list[np.ndarray]:
    """Split any accepted batch into ``uint8`` videos ``(T, H, W, 3)`` of one frame size, via vidtok.io."""
    if _is_tensor(videos) or isinstance(videos, np.ndarray):
        if videos.ndim == 5:
            items = list(videos)
        elif videos.ndim == 4:  # one video
            items = [videos]
        else:
            raise ValueError(
                "videos must be a batch (B, C, T, H, W) in [-1, 1] or (B, T, H, W, C), or one 4-D video; "
                f"got shape {tuple(videos.shape)}"
            )
    elif isinstance(videos, (list, tuple)):
        if not videos:
            raise ValueError("videos is empty: nothing to draw")
        # A list of PIL images is one video; any other list holds one video per item.
        items = [videos] if all(isinstance(v, Image.Image) for v in videos) else list(videos)
    else:
        raise TypeError(
            "videos must be a torch tensor or numpy array (B, C, T, H, W) / (B, T, H, W, C), or a list of videos; "
            f"got {type(videos).__name__}"
        )
    if not items:
        raise ValueError("videos is empty (a batch of 0): nothing to draw")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(to_uint8(normalize_frames(item, layout)))
        except (TypeError, ValueError) as err:
            raise type(err)(f"video {i}: {err}") from None
    sizes = sorted({v.shape[1:3] for v in out})
    if len(sizes) > 1:
        raise ValueError(f"all videos must have the same frame size (H, W) to share a grid, got {sizes}")
    return out


def _texts(values: Sequence[Any] | None, n: int, name: str) -> list[str]:
    """One line of text per video ('' where none), checked against the number of videos."""
    if values is None:
        return [""] * n
    if isinstance(values, str):
        raise TypeError(f"{name} must be a sequence with one entry per video, got a single string")
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries for {n} videos: give one per video")
    return ["" if v is None else v if isinstance(v, str) else _format_scores(v, name) for v in values]


def _format_scores(scores: Any, name: str) -> str:
    if not isinstance(scores, Mapping):
        raise TypeError(f"{name} entries must be strings, mappings of scores or None, got {type(scores).__name__}")
    parts = []
    for key, value in scores.items():
        value = float(value)
        if not math.isnan(value):  # NaN: an attribute the caption does not state
            parts.append(f"{key} {value:.2f}".rstrip("0").rstrip("."))
    return "  ".join(parts)


def _scale(scale: int | None, height: int, width: int) -> int:
    if scale is None:
        return max(1, AUTO_SCALE_TARGET // max(height, width))
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer (nearest-neighbour enlargement) or None, got {scale!r}")
    return int(scale)


def _enlarge(frames: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement of ``(..., H, W, C)`` frames: each pixel becomes a ``scale`` × ``scale`` block."""
    if scale == 1:
        return frames
    return np.repeat(np.repeat(frames, scale, axis=-3), scale, axis=-2)


def _count(value: Any, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------- text


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=_FONT_SIZE)
    except TypeError:  # pragma: no cover - Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _text_size(font: Any, text: str) -> tuple[int, int]:
    if not text:
        return 0, 0
    left, top, right, bottom = font.getbbox(text)
    return int(math.ceil(right)), int(math.ceil(bottom))


def _line_height(font: Any) -> int:
    return _text_size(font, "Ag|")[1] + _LINE_GAP


def _wrap(font: Any, text: str, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels (a word longer than the width gets a line of its own)."""
    lines: list[str] = []
    for word in text.split():
        if lines and _text_size(font, f"{lines[-1]} {word}")[0] <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


# ---------------------------------------------------------------------------------------------- writing


def _check_suffix(path: Any, allowed: tuple[str, ...], what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if path.suffix.lower() not in allowed:
        raise ValueError(f"{what} writes {' or '.join(allowed)} files; got {path.name!r}")
    return path


def _exact_palette(image: Image.Image) -> Image.Image:
    """The image in palette mode when it has at most 256 colours (exact: several times smaller as PNG), else as is."""
    rgb = np.asarray(image.convert("RGB"))
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    colors, index = np.unique(packed.ravel(), return_inverse=True)
    if len(colors) > 256:
        return image
    out = Image.frombytes("P", image.size, index.astype(np.uint8).tobytes())
    palette = np.stack([(colors >> 16) & 255, (colors >> 8) & 255, colors & 255], axis=-1).astype(np.uint8)
    out.putpalette(palette.ravel().tobytes())
    return out


def _save_png(image: Image.Image, path: Path) -> Path:
    image = _exact_palette(image)
    return write_atomically(path, lambda tmp: image.save(tmp, format="PNG", optimize=True))


# ---------------------------------------------------------------------------------------------- pictures


def contact_sheet(
    videos: Any,
    captions: Sequence[str | None] | None = None,
    *,
    path: str | os.PathLike[str],
    frames_per_video: int = 8,
    scale: int | None = None,
    scores: Sequence[str | Mapping[str, float] | None] | None = None,
    layout: Layout = "auto",
) -> Path:
    """Write a PNG with one row per video: evenly spaced frames under the caption (and score) of the video.

    The first and last frames are always shown; the header names each column's frame index (when every video
    has the same length; otherwise each row picks its own evenly spaced frames).

    Args:
        videos: A batch ``(B, C, T, H, W)`` in ``[-1, 1]`` (float torch tensor), ``(B, T, H, W, C)`` frames
            (``uint8`` or float in ``[0, 1]``), one video, or a list of videos (see the module docs).
        captions: One caption per video (``None`` entries or ``None``: no caption).
        path: The ``.png`` file to write (parent folders are created).
        frames_per_video: Frames shown per row (all frames when a video has fewer).
        scale: Integer nearest-neighbour enlargement; ``None`` enlarges frames to about 128 pixels (32×32 → 4×).
        scores: Optional second line per video: a string, or a mapping such as ``score_video``'s (NaN entries,
            attributes a caption does not state, are left out).
        layout: ``"auto"``, ``"cthw"`` or ``"thwc"`` for ambiguous shapes (as in ``vidtok.io.save_video``).

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        TypeError: For unsupported inputs.
        ValueError: For bad shapes or values, frame sizes that differ between videos, captions or scores whose
            count is not the number of videos, or a ``path`` that is not a ``.png``.
    """
    path = _check_suffix(path, (".png",), "contact_sheet")
    frames_per_video = _count(frames_per_video, "frames_per_video")
    clips = _as_videos(videos, layout)
    lines = _texts(captions, len(clips), "captions")
    extra = _texts(scores, len(clips), "scores")
    height, width = clips[0].shape[1:3]
    s = _scale(scale, height, width)
    fh, fw = height * s, width * s

    picks = [np.unique(np.linspace(0, len(c) - 1, min(frames_per_video, len(c))).round().astype(int)) for c in clips]
    same = all(len(c) == len(clips[0]) for c in clips)
    columns = max(len(p) for p in picks)
    font = _font()
    lh = _line_height(font)
    header = lh + _GAP if same else 0
    row_text = [[t for t in (lines[i], extra[i]) if t] for i in range(len(clips))]
    band = lh * max(len(t) for t in row_text)  # the same band on every row keeps rows evenly spaced
    row_h = band + fh + 2 * _GAP
    strip_w = columns * fw + (columns - 1) * _GAP
    text_w = max([_text_size(font, t)[0] for texts in row_text for t in texts] + [0])
    canvas_w = 2 * _MARGIN + max(strip_w, text_w)
    canvas_h = 2 * _MARGIN + header + len(clips) * row_h - 2 * _GAP

    image = Image.new("RGB", (canvas_w, canvas_h), _PAGE)
    draw = ImageDraw.Draw(image)
    if same:
        for j, t in enumerate(picks[0]):
            draw.text((_MARGIN + j * (fw + _GAP), _MARGIN), f"frame {t}", fill=_MUTED, font=font)
    for i, (clip, pick) in enumerate(zip(clips, picks)):
        top = _MARGIN + header + i * row_h
        for k, text in enumerate(row_text[i]):
            draw.text((_MARGIN, top + k * lh), text, fill=_TEXT if k == 0 and lines[i] else _MUTED, font=font)
        for j, t in enumerate(pick):
            image.paste(Image.fromarray(_enlarge(clip[t], s)), (_MARGIN + j * (fw + _GAP), top + band))
    return _save_png(image, path)


def animated_grid(
    videos: Any,
    path: str | os.PathLike[str],
    *,
    columns: int = 4,
    fps: float = 8.0,
    captions: Sequence[str | None] | None = None,
    scale: int | None = None,
    colors: int | None = 128,
    layout: Layout = "auto",
) -> Path:
    """Write an animation (a looping GIF) with every video playing side by side, each under its caption.

    Videos shorter than the longest hold their last frame. Captions are wrapped to the width of a cell.

    Args:
        videos: A batch ``(B, C, T, H, W)`` in ``[-1, 1]`` (float torch tensor), ``(B, T, H, W, C)`` frames
            (``uint8`` or float in ``[0, 1]``), one video, or a list of videos (see the module docs).
        path: The file to write: ``.gif`` (or a video container ``vidtok.io.save_video`` writes, e.g. ``.mp4``).
        columns: Videos per row of the grid (fewer when there are fewer videos).
        fps: Frames per second.
        captions: One caption per video (``None`` entries or ``None``: no caption).
        scale: Integer nearest-neighbour enlargement; ``None`` enlarges frames to about 128 pixels (32×32 → 4×).
        colors: For a GIF with more colours than this, one palette of this many colours (median cut over a
            sample of frames, no dithering) shared by every frame: no flicker between frames' palettes, and a
            file several times smaller (generated frames carry faint noise in their black background). ``None``
            keeps ``save_video``'s own palettes (exact up to 256 colours per frame, else median cut per frame).
        layout: ``"auto"``, ``"cthw"`` or ``"thwc"`` for ambiguous shapes (as in ``vidtok.io.save_video``).

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        TypeError: For unsupported inputs.
        ValueError: For bad shapes or values, frame sizes that differ between videos, a caption count that is not
            the number of videos, a bad ``columns`` or ``fps``, or an image extension (use ``contact_sheet``).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
        raise ValueError(
            f"animated_grid writes an animation (.gif, .mp4, ...), got {Path(path).name!r}; "
            "use contact_sheet for a still picture"
        )
    columns = _count(columns, "columns")
    if colors is not None:
        colors = _count(colors, "colors", low=2)
        if colors > 256:
            raise ValueError(f"colors must be at most 256 (a GIF palette), got {colors}")
    clips = _as_videos(videos, layout)
    lines = _texts(captions, len(clips), "captions")
    height, width = clips[0].shape[1:3]
    s = _scale(scale, height, width)
    fh, fw = height * s, width * s
    columns = min(columns, len(clips))
    rows = math.ceil(len(clips) / columns)

    font = _font()
    lh = _line_height(font)
    wrapped = [_wrap(font, text, fw) for text in lines]
    band = lh * max(len(w) for w in wrapped)
    cell_w = max([fw] + [_text_size(font, line)[0] for w in wrapped for line in w])
    cell_h = band + fh
    canvas_w = 2 * _MARGIN + columns * cell_w + (columns - 1) * 2 * _GAP
    canvas_h = 2 * _MARGIN + rows * cell_h + (rows - 1) * 2 * _GAP
    # GIF rows of 2 x 2 even pixels: H.264 needs even sizes, and a GIF does not mind.
    canvas_w, canvas_h = canvas_w + canvas_w % 2, canvas_h + canvas_h % 2

    # The text is the same in every frame: draw it once on the background.
    background = Image.new("RGB", (canvas_w, canvas_h), _PAGE)
    draw = ImageDraw.Draw(background)
    origins = []
    for i, text in enumerate(wrapped):
        left = _MARGIN + (i % columns) * (cell_w + 2 * _GAP)
        top = _MARGIN + (i // columns) * (cell_h + 2 * _GAP)
        for k, line in enumerate(text):
            draw.text((left, top + k * lh), line, fill=_TEXT, font=font)
        origins.append((top + band, left))
    length = max(len(c) for c in clips)
    frames = np.repeat(np.asarray(background)[None], length, axis=0)
    for clip, (top, left) in zip(clips, origins):
        held = np.concatenate([clip, np.repeat(clip[-1:], length - len(clip), axis=0)]) if len(clip) < length else clip
        frames[:, top : top + fh, left : left + fw] = _enlarge(held, s)
    if colors is not None and Path(path).suffix.lower() == ".gif":
        frames = _shared_palette(frames, colors)
    return save_video(frames, path, fps=fps)  # atomic, like every writer here


def _shared_palette(frames: np.ndarray, colors: int) -> np.ndarray:
    """``frames`` mapped onto one palette of at most ``colors`` colours (unchanged when they have no more)."""
    packed = (frames[..., 0].astype(np.uint32) << 16) | (frames[..., 1].astype(np.uint32) << 8) | frames[..., 2]
    if len(np.unique(packed)) <= colors:
        return frames
    sample = frames[:: max(1, len(frames) // 16)]
    palette = Image.fromarray(np.concatenate(list(sample), axis=0)).quantize(colors, method=Image.Quantize.MEDIANCUT)
    mapped = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    return np.stack([np.asarray(m.convert("RGB")) for m in mapped])


def accuracy_plot(
    results: Mapping[str, Mapping[str, float]],
    path: str | os.PathLike[str],
    *,
    attributes: Sequence[str] | None = None,
    title: str | None = None,
    ylabel: str = "accuracy",
) -> Path:
    """Write a PNG bar chart of per-attribute accuracy: one group per attribute, one bar per model.

    Args:
        results: ``{model name: {attribute: accuracy in [0, 1]}}``, e.g. ``{"shipped": evaluate_text_to_video(
            pipe)}``. Missing or NaN entries are left blank.
        path: The ``.png`` file to write (parent folders are created).
        attributes: The attributes to draw, in order (default: color, shape, size, motion, overall, joint where
            present, then any others in first-seen order).
        title: Title of the chart.
        ylabel: Label of the y axis.

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        ImportError: If matplotlib is not installed (``pip install 'vidtok[eval]'``).
        TypeError: If ``results`` is not a mapping of mappings of numbers.
        ValueError: For no models, an unknown attribute, a value outside ``[0, 1]`` or a path that is not ``.png``.
    """
    path = _check_suffix(path, (".png",), "accuracy_plot")
    if not isinstance(results, Mapping):
        raise TypeError(f"results must map model names to {{attribute: accuracy}}, got {type(results).__name__}")
    if not results:
        raise ValueError("results is empty: give at least one model's accuracies")
    table: dict[str, dict[str, float]] = {}
    for model, values in results.items():
        if not isinstance(values, Mapping):
            raise TypeError(f"results[{model!r}] must map attributes to accuracies, got {type(values).__name__}")
        row = {}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"results[{model!r}][{key!r}] must be a number, got {type(value).__name__}")
            value = float(value)
            if not math.isnan(value) and not 0.0 <= value <= 1.0:
                raise ValueError(f"results[{model!r}][{key!r}] = {value:g} is not an accuracy in [0, 1]")
            row[str(key)] = value
        table[str(model)] = row
    seen = list(dict.fromkeys(k for row in table.values() for k in row))
    if attributes is None:
        attributes = [k for k in _ATTRIBUTE_ORDER if k in seen] + [k for k in seen if k not in _ATTRIBUTE_ORDER]
    else:
        attributes = list(attributes)
        unknown = [a for a in attributes if a not in seen]
        if unknown:
            raise ValueError(f"attributes {unknown} appear in no model's results; known: {seen}")
    if not attributes:
        raise ValueError("results holds no attributes to plot")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "accuracy_plot needs matplotlib: pip install 'vidtok[eval]' (or pip install matplotlib)"
        ) from err

    models = list(table)
    n = len(models)
    width = 0.8 / n
    # A Figure without pyplot: no global state, no backend switch in the caller's session.
    fig = Figure(figsize=(max(6.0, 0.3 * n * len(attributes) + 2.5), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    palette = [f"C{i % 10}" for i in range(n)]
    for m, model in enumerate(models):
        xs = [a + (m - (n - 1) / 2) * width for a in range(len(attributes))]
        ys = [table[model].get(a, math.nan) for a in attributes]
        bars = ax.bar(xs, [0.0 if math.isnan(y) else y for y in ys], width, label=model, color=palette[m])
        for bar, y in zip(bars, ys):
            if math.isnan(y):
                bar.set_visible(False)
                continue
            ax.annotate(
                f"{y:.2f}",
                (bar.get_x() + bar.get_width() / 2, y),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7 if n > 2 else 8,
            )
    ax.set_xticks(range(len(attributes)), attributes)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    # No "Software" entry: the same numbers give the same bytes whatever matplotlib wrote them.
    return write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
