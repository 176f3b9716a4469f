"""Contact sheets, animated grids and accuracy plots write valid files, atomically; the gallery script runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidtok.metrics.visuals import accuracy_plot, animated_grid, contact_sheet

ROOT = Path(__file__).resolve().parents[1]
PALETTE = [(230, 30, 30), (30, 200, 30), (40, 80, 255), (240, 220, 30), (220, 40, 220)]


def _solid(n: int = 3, t: int = 5, size: int = 8) -> np.ndarray:
    """``n`` uint8 videos ``(n, t, size, size, 3)``, video ``i`` filled with ``PALETTE[i]``."""
    videos = np.zeros((n, t, size, size, 3), np.uint8)
    for i in range(n):
        videos[i] = PALETTE[i]
    return videos


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------- contact_sheet


def test_contact_sheet_has_one_row_per_video(tmp_path):
    videos = _solid(3)
    path = contact_sheet(videos, ["red", "green", "blue"], path=tmp_path / "sheet.png", frames_per_video=4, scale=2)
    assert path == tmp_path / "sheet.png"
    with Image.open(path) as image:
        assert image.format == "PNG"
        rgb = np.asarray(image.convert("RGB"))
    # Walking down the first frame column, each video's colour appears as one band, in order.
    column = rgb[:, 8 + 4]  # margin 8, inside the first frame (16 px wide at scale 2)
    bands = [tuple(column[0])]
    for px in map(tuple, column[1:]):
        if px != bands[-1]:
            bands.append(px)
    assert [b for b in bands if b in PALETTE] == PALETTE[:3]
    # Four frames per row: the first row's colour spans four 16-pixel frames.
    row = rgb[np.nonzero((rgb == PALETTE[0]).all(-1).any(1))[0][0]]
    assert (row == PALETTE[0]).all(-1).sum() == 4 * 16


def test_contact_sheet_picks_evenly_spaced_frames_first_and_last(tmp_path):
    video = np.zeros((1, 9, 4, 4, 3), np.uint8)
    for t in range(9):
        video[0, t, ..., 0] = 20 * t + 10  # frame t is pure red of level 20 t + 10 (text is grey: R = G = B)
    rgb = np.asarray(Image.open(contact_sheet(video, path=tmp_path / "s.png", frames_per_video=3)).convert("RGB"))
    red_only = rgb[(rgb[..., 1] == 0) & (rgb[..., 2] == 0)][:, 0]
    assert set(np.unique(red_only).tolist()) == {10, 90, 170}  # frames 0, 4, 8


@pytest.mark.parametrize(
    "layout",
    ["model_torch", "thwc_uint8", "thwc_float", "thwc_torch_uint8", "list", "single_video", "pil_lists"],
)
def test_input_layouts_give_the_same_picture(tmp_path, layout):
    ref = _solid(2, t=3, size=5)  # 5: (3, 3, 5, 5) is unambiguously (C, T, H, W)
    model = torch.from_numpy(ref).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    given = {
        "model_torch": model,
        "thwc_uint8": ref,
        "thwc_float": ref.astype(np.float32) / 255,
        "thwc_torch_uint8": torch.from_numpy(ref),
        "list": [ref[0], model[1]],
        "single_video": model[0],
        "pil_lists": [[Image.fromarray(f) for f in v] for v in ref],
    }[layout]
    expected = np.asarray(Image.open(contact_sheet(list(ref), path=tmp_path / "ref.png", scale=1)).convert("RGB"))
    if layout == "single_video":
        expected = np.asarray(Image.open(contact_sheet(ref[:1], path=tmp_path / "ref.png", scale=1)).convert("RGB"))
    got = np.asarray(Image.open(contact_sheet(given, path=tmp_path / "got.png", scale=1)).convert("RGB"))
    np.testing.assert_array_equal(got, expected)


def test_small_frames_are_enlarged_with_nearest_neighbour(tmp_path):
    video = np.zeros((1, 1, 2, 2, 3), np.uint8)
    video[0, 0, 0, 0] = (255, 0, 0)  # one red pixel: a 4 x 4 red block at scale 4, nothing in between
    rgb = np.asarray(Image.open(contact_sheet(video, path=tmp_path / "s.png", scale=4)).convert("RGB"))
    red = (rgb == (255, 0, 0)).all(-1)
    ys, xs = np.nonzero(red)
    assert red.sum() == 16 and np.ptp(ys) == 3 and np.ptp(xs) == 3
    auto = np.asarray(Image.open(contact_sheet(np.zeros((1, 1, 32, 32, 3), np.uint8), path=tmp_path / "a.png")))
    assert auto.shape[1] >= 128  # 32 x 32 frames are drawn at 128 x 128 by default


def test_contact_sheet_writes_captions_and_scores(tmp_path):
    videos = _solid(2)
    plain = np.asarray(Image.open(contact_sheet(videos, path=tmp_path / "a.png", scale=1)).convert("RGB"))
    scores = [{"color": 1.0, "shape": float("nan")}, "PSNR 30 dB"]
    text = np.asarray(
        Image.open(contact_sheet(videos, ["x", "y"], path=tmp_path / "b.png", scale=1, scores=scores)).convert("RGB")
    )
    assert text.shape[0] > plain.shape[0]  # two lines of text above each row
    assert (text < 128).all(-1).sum() > (plain < 128).all(-1).sum()  # dark text pixels were drawn


def test_contact_sheet_widens_for_long_captions(tmp_path):
    long = "a large red circle moves right and a small blue square stays still"
    image = Image.open(contact_sheet(_solid(1, size=4), [long], path=tmp_path / "s.png", scale=1))
    assert image.width > 100


# ---------------------------------------------------------------------------------------------- animated_grid


def test_animated_grid_has_every_frame_and_every_video(tmp_path):
    videos = _solid(5, t=6, size=8)
    videos[:, :, :2, :2] = 0  # a corner that changes nothing but keeps frames distinct below
    for t in range(6):
        videos[:, t, -1, -1] = (t * 40, t * 40, t * 40)  # frames differ, so GIF keeps all of them
    path = animated_grid(videos, tmp_path / "grid.gif", columns=3, fps=4, captions=list("abcde"), scale=2)
    with Image.open(path) as image:
        assert image.format == "GIF" and image.n_frames == 6
        image.seek(3)
        rgb = np.asarray(image.convert("RGB"))
        assert image.info["duration"] == 250
    for colour in PALETTE:  # every video is in the grid
        assert (rgb == colour).all(-1).sum() >= 16 * 16 - 4 * 4 - 4
    # Three columns: the first two videos' cells lie side by side, the fourth starts a second row.
    first, fourth = (np.argwhere((rgb == c).all(-1)).min(0) for c in (PALETTE[0], PALETTE[3]))
    second = np.argwhere((rgb == PALETTE[1]).all(-1)).min(0)
    assert first[0] == second[0] < fourth[0] and first[1] == fourth[1] < second[1]


def test_animated_grid_holds_the_last_frame_of_shorter_videos(tmp_path):
    short, long = np.zeros((2, 4, 4, 3), np.uint8), np.zeros((7, 4, 4, 3), np.uint8)
    short[-1], long[:] = 200, 100
    for t in range(7):
        long[t, 0, 0] = 10 * t
    path = animated_grid([short, long], tmp_path / "g.gif", columns=2, fps=8, scale=1)
    with Image.open(path) as image:
        assert image.n_frames == 7
        image.seek(6)
        assert (np.asarray(image.convert("RGB")) == 200).all(-1).sum() == 16


def test_animated_grid_shares_one_palette_when_there_are_many_colours(tmp_path):
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (2, 4, 16, 16, 3), dtype=np.uint8)
    path = animated_grid(noisy, tmp_path / "g.gif", columns=2, fps=8, scale=1, colors=32)
    with Image.open(path) as image:
        seen = set()
        for k in range(image.n_frames):
            image.seek(k)
            seen |= {c for _, c in image.convert("RGB").getcolors(1 << 16)}
    assert len(seen) <= 32  # every frame, text and page included, is drawn from one 32-colour palette


def test_animated_grid_writes_mp4(tmp_path):
    path = animated_grid(_solid(2, t=4, size=8), tmp_path / "g.mp4", columns=2, fps=8, scale=2)
    from vidtok.io import read_video_info

    assert read_video_info(path).num_frames == 4


# ---------------------------------------------------------------------------------------------- accuracy_plot


def test_accuracy_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    results = {
        "shipped": {"color": 1.0, "shape": 0.97, "size": 1.0, "motion": 0.9, "joint": 0.87},
        "before": {"color": 1.0, "shape": 0.8, "motion": float("nan"), "joint": 0.75},
    }
    path = accuracy_plot(results, tmp_path / "acc.png", title="held-out prompts")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 200
    again = accuracy_plot(results, tmp_path / "again.png", title="held-out prompts")
    assert path.read_bytes() == again.read_bytes()  # deterministic


def test_accuracy_plot_rejects_what_is_not_an_accuracy(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match=r"results\['l2'\]\['nll'\] = 59.6 is not an accuracy"):
        accuracy_plot({"l2": {"nll": 59.6}}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="results is empty"):
        accuracy_plot({}, tmp_path / "a.png")
    with pytest.raises(TypeError, match=r"results\['gmm'\] must map attributes"):
        accuracy_plot({"gmm": 0.5}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="appear in no model"):
        accuracy_plot({"gmm": {"color": 0.5}}, tmp_path / "a.png", attributes=["colour"])
    assert _leftovers(tmp_path) == []


def test_accuracy_plot_names_the_eval_extra_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib...` raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r"vidtok\[eval\]"):
        accuracy_plot({"gmm": {"color": 0.5}}, tmp_path / "a.png")


# ---------------------------------------------------------------------------------------------- errors, atomicity


def test_bad_inputs_are_named(tmp_path):
    videos = _solid(2)
    with pytest.raises(ValueError, match="captions has 1 entries for 2 videos"):
        contact_sheet(videos, ["one"], path=tmp_path / "s.png")
    with pytest.raises(ValueError, match="same frame size"):
        contact_sheet([videos[0], np.zeros((5, 4, 4, 3), np.uint8)], path=tmp_path / "s.png")
    with pytest.raises(ValueError, match="contact_sheet writes .png"):
        contact_sheet(videos, path=tmp_path / "s.jpg")
    with pytest.raises(ValueError, match="use contact_sheet"):
        animated_grid(videos, tmp_path / "g.png")
    with pytest.raises(ValueError, match="video 1: .*NaN"):
        contact_sheet(np.stack([videos[0] / 255, np.full(videos[0].shape, np.nan)]), path=tmp_path / "s.png")
    with pytest.raises(ValueError, match="scale must be a positive integer"):
        contact_sheet(videos, path=tmp_path / "s.png", scale=0)
    with pytest.raises(ValueError, match="columns must be an integer >= 1"):
        animated_grid(videos, tmp_path / "g.gif", columns=0)
    with pytest.raises(ValueError, match="got shape \\(4, 4\\)"):
        animated_grid(np.zeros((4, 4)), tmp_path / "g.gif")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["sheet", "grid", "plot"])
def test_a_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch, kind):
    if kind == "plot":
        pytest.importorskip("matplotlib")
        from matplotlib.figure import Figure

        target = (Figure, "savefig")
    else:
        target = (Image.Image, "save")
    original = getattr(*target)

    def half_then_fail(self, fp, *args, **kwargs):
        original(self, fp, *args, **kwargs)  # a complete file, then the failure: nothing may land at the path
        with open(fp, "r+b") as f:
            f.truncate(10)
        raise OSError("disk full")

    path = tmp_path / ("old.gif" if kind == "grid" else "old.png")
    path.write_bytes(b"previous")
    monkeypatch.setattr(*target, half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        if kind == "sheet":
            contact_sheet(_solid(2), path=path)
        elif kind == "grid":
            animated_grid(_solid(2), path)
        else:
            accuracy_plot({"gmm": {"color": 0.5}}, path)
    assert path.read_bytes() == b"previous"
    assert _leftovers(tmp_path) == [path.name]  # no temporary file either


# ---------------------------------------------------------------------------------------------- the gallery script

GALLERY_FILES = {
    "text_to_video.gif",
    "text_to_video.png",
    "diversity.gif",
    "diversity.png",
    "reconstruction.gif",
    "reconstruction.png",
    "heldout_accuracy.png",
    "head_ablation.png",
    "tokenizer_curves.png",
    "gallery.json",
}


@pytest.mark.slow
def test_gallery_script_runs_end_to_end(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "gallery"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "make_gallery.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "wrote the gallery to" in done.stdout and " s (" in done.stdout  # says how long it took
    assert {p.name for p in out.iterdir()} == GALLERY_FILES
    summary = json.loads((out / "gallery.json").read_text())
    assert [e["prompt"] for e in summary["text_to_video"]] == summary["settings"]["prompts"]
    with Image.open(out / "text_to_video.gif") as image:
        assert image.n_frames == summary["settings"]["keyframes"] * 8 - 7  # (S - 1) * 8 + 1 frames
    for name in GALLERY_FILES - {"gallery.json"}:
        with Image.open(out / name) as image:
            image.verify()
        assert (out / name).stat().st_size < 300_000
    # The recorded numbers come from the docs' tables.
    shipped = summary["recorded"]["heldout_accuracy"]["rows"]["shipped (+ decoder fine-tune)"]
    assert shipped["row"].startswith("shipped") and 0 <= shipped["joint"] <= 1


def test_committed_gallery_is_complete_and_small():
    folder = ROOT / "docs" / "gallery"
    assert {p.name for p in folder.iterdir() if not p.name.startswith(".")} == GALLERY_FILES
    for name in GALLERY_FILES:
        assert (folder / name).stat().st_size < 300_000, name
    page = (ROOT / "docs" / "gallery.md").read_text()
    for name in GALLERY_FILES - {"gallery.json"}:
        assert f"gallery/{name}" in page, f"docs/gallery.md does not show {name}"
