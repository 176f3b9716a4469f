"""The vidtok.io package: one file per concern, a lower layer, and the model-video path shared by pipelines."""

from __future__ import annotations

import ast
import doctest
import importlib
from pathlib import Path

import numpy as np
import pytest
import torch

import vidtok.io as vio

IO_DIR = Path(vio.__file__).parent
MODULES = sorted(f"vidtok.io.{p.stem}" for p in IO_DIR.glob("*.py") if p.stem != "__init__")


def test_io_imports_no_other_vidtok_package():
    """io is a lower layer: its files import only the standard library, third-party packages and vidtok.io."""
    offending = []
    for path in IO_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            offending += [
                f"{path.name}: {n}" for n in names if n.split(".")[0] == "vidtok" and not n.startswith("vidtok.io")
            ]
    assert not offending, offending


@pytest.mark.parametrize("name", ["vidtok.io.frames", "vidtok.io.files"])
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_every_module_lists_what_it_defines():
    for name in MODULES:
        module = importlib.import_module(name)
        for export in module.__all__:
            assert hasattr(module, export), f"{name}.{export}"


def test_as_model_video_accepts_every_form():
    frames = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    batch = vio.as_model_video(frames)
    assert batch.shape == (1, 3, 3, 8, 8) and batch.dtype == torch.float32
    assert torch.equal(vio.as_model_video(batch[0]), batch)  # (C, T, H, W) gets a batch dimension
    assert vio.as_model_video(batch) is batch  # already model layout: passed through, validated
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        vio.as_model_video(batch * 3)


def test_to_output_round_trips_through_as_model_video():
    video = torch.rand(2, 3, 2, 4, 4) * 2 - 1
    assert vio.to_output(video, "pt") is video
    np_frames = vio.to_output(video, "np")
    assert np_frames.shape == (2, 2, 4, 4, 3) and np_frames.min() >= 0 and np_frames.max() <= 1
    pil = vio.to_output(video, "pil")
    assert len(pil) == 2 and len(pil[0]) == 2 and pil[0][0].size == (4, 4)
    back = vio.as_model_video(np_frames[0])
    torch.testing.assert_close(back[0], video[0], atol=1e-6, rtol=0)


def test_center_resize_crops_to_the_aspect_then_resizes():
    video = torch.linspace(-1, 1, 3 * 2 * 12 * 20).reshape(3, 2, 12, 20)
    assert torch.equal(vio.center_resize(video, (12, 12)), video[:, :, :, 4:16])  # crop only
    out = vio.center_resize(video, (6, 6))
    assert out.shape == (3, 2, 6, 6) and out.min() >= -1 and out.max() <= 1


def test_resize_frames_matches_per_frame_pillow():
    from PIL import Image

    frames = np.random.default_rng(1).integers(0, 256, (2, 10, 14, 3), dtype=np.uint8)
    expected = np.stack([np.asarray(Image.fromarray(f).resize((7, 5), Image.Resampling.BILINEAR)) for f in frames])
    assert np.array_equal(vio.resize_frames(frames, (5, 7)), expected)
    assert np.array_equal(vio.resize_frames(frames[0], (5, 7)), expected[0])
    assert vio.resize_frames(frames, (10, 14)) is frames and vio.resize_frames(frames, None) is frames


@pytest.mark.parametrize(
    "video",
    [
        torch.zeros(1, 3, 2, 4, 4),
        torch.zeros(1, 1, 2, 4, 4),
        torch.zeros(3, 2, 4, 4),
        torch.full((1, 3, 2, 4, 4), 2.0),
        torch.full((1, 3, 2, 4, 4), float("nan")),
        torch.zeros(1, 3, 2, 4, 4, dtype=torch.uint8),
        np.zeros((1, 3, 2, 4, 4), np.float32),
    ],
)
def test_check_video_matches_the_tokenizers_copy(video):
    """vidtok.io.check_video is the implementation tokenizers.base.check_video is meant to re-export."""
    from vidtok.tokenizers.base import check_video as tokenizer_check

    def outcome(fn, **kwargs):
        try:
            return fn(video, **kwargs) is video
        except (TypeError, ValueError) as e:
            return type(e), str(e)

    for kwargs in ({}, {"channels": None}, {"name": "x", "channels": 1}):
        assert outcome(vio.check_video, **kwargs) == outcome(tokenizer_check, **kwargs)


def test_pipelines_use_the_io_path():
    from vidtok.pipelines import reconstruct, text_to_video

    for module in (reconstruct, text_to_video):
        assert module.as_model_video is vio.as_model_video and module.to_output is vio.to_output
