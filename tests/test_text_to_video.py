"""TextToVideo / ImageToVideo: outputs, save→load→same video, swaps, continuation, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vidtok
from vidtok.heads.gaussian import GaussianHead
from vidtok.pipelines.image_to_video import ImageToVideo
from vidtok.pipelines.text_to_video import TextToVideo

PROMPT = "a large red circle moves right"


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return TextToVideo.from_recipe(vidtok.RECIPES.create("dicode_tiny", tiny=True))


def _run(pipe, seed=0, **kwargs):
    kwargs = {"num_keyframes": 3, "num_inference_steps": 2, "progress": False, **kwargs}
    return pipe(PROMPT, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_output_layout(pipe):
    out = _run(pipe)
    f = pipe.frame_stride
    assert out.frames.shape == (1, 2 * f + 1, 16, 16, 3)
    assert out.frames.dtype == np.float32 and out.frames.min() >= 0 and out.frames.max() <= 1
    assert out.tokens.shape == (1, 3, 4, 16) and out.fps == pipe.fps
    pt = _run(pipe, output_type="pt").frames
    assert pt.shape == (1, 3, 2 * f + 1, 16, 16) and pt.min() >= -1
    pil = _run(pipe, output_type="pil").frames
    assert len(pil) == 1 and len(pil[0]) == 2 * f + 1 and pil[0][0].size == (16, 16)
    frames, tokens = _run(pipe, return_dict=False)
    assert frames.shape == out.frames.shape and tokens.shape == out.tokens.shape


def test_latent_output_skips_the_decoder(pipe, monkeypatch):
    expected = _run(pipe).tokens

    def no_decode(*args, **kwargs):
        raise AssertionError("output_type='latent' must not decode")

    monkeypatch.setattr(pipe.video_tokenizer, "decode", no_decode)
    out = _run(pipe, output_type="latent")
    assert out.frames is None and torch.equal(out.tokens, expected)  # the same tokens for the same seed
    frames, tokens = _run(pipe, output_type="latent", return_dict=False)
    assert frames is None and torch.equal(tokens, expected)


def test_batches_and_videos_per_prompt(pipe):
    out = pipe(
        [PROMPT, "a small blue square stays still"],
        num_keyframes=2,
        num_videos_per_prompt=2,
        num_inference_steps=1,
        progress=False,
    )
    assert out.frames.shape[0] == 4 and out.tokens.shape[:2] == (4, 2)


def test_duration_rounds_up_to_keyframes(pipe):
    f, fps = pipe.frame_stride, pipe.fps
    assert pipe.keyframes_for(2 * f / fps) == 3
    assert _run(pipe, num_keyframes=None, duration=f / fps).tokens.shape[1] == 2


def test_save_load_gives_the_same_video(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "p")
    again = TextToVideo.from_pretrained(tmp_path / "p")
    np.testing.assert_array_equal(_run(pipe, seed=3).frames, _run(again, seed=3).frames)
    for name in ("video_tokenizer", "backbone", "video_lm", "head"):
        a, b = getattr(pipe, name).state_dict(), getattr(again, name).state_dict()
        assert a.keys() == b.keys(), name
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_swap_head_through_the_constructor(pipe):
    lm = pipe.video_lm.config
    head = GaussianHead(hidden_size=lm.hidden_size, token_dim=lm.token_dim)
    swapped = TextToVideo(**{**pipe.components, "head": head})
    assert isinstance(swapped.head, GaussianHead)
    assert _run(swapped).tokens.shape == (1, 3, 4, 16)
    with pytest.raises(ValueError, match="head.hidden_size"):
        TextToVideo(**{**pipe.components, "head": GaussianHead(hidden_size=7, token_dim=lm.token_dim)})


def test_kv_cache_and_uncached_pipelines_agree(pipe):
    a, b = _run(pipe, seed=4), _run(pipe, seed=4, use_cache=False)
    torch.testing.assert_close(a.tokens, b.tokens, atol=1e-3, rtol=1e-3)


def test_continuation_keeps_the_prefix(pipe):
    video = torch.rand(1, 3, 2 * pipe.frame_stride + 1, 16, 16) * 2 - 1
    prefix = pipe.encode_video(video)
    out = _run(pipe, num_keyframes=4, video=video)
    torch.testing.assert_close(out.tokens[:, :3], prefix)
    assert out.frames.shape[1] == 3 * pipe.frame_stride + 1


def test_image_to_video_prefills_the_image(pipe):
    i2v = ImageToVideo(**pipe.components)
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    out = i2v(image, "", num_keyframes=2, num_inference_steps=1, progress=False)
    torch.testing.assert_close(out.tokens[:, :1], pipe.encode_video(image[:, :, None]))
    assert out.frames.shape == (1, pipe.frame_stride + 1, 16, 16, 3)


@pytest.mark.parametrize(
    ("prompt", "error", "match"),
    [
        ("", ValueError, "empty"),
        ("   ", ValueError, "empty"),
        (5, TypeError, "prompt must be"),
        ([PROMPT, 3], TypeError, "prompt 1 must be a string"),
        ([], TypeError, "non-empty"),
        ("a large red circle moves right and a small blue square stays still", ValueError, "text length"),
    ],
)
def test_bad_prompts(pipe, prompt, error, match):
    with pytest.raises(error, match=match):
        pipe(prompt, num_keyframes=2, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_keyframes": 0}, "num_keyframes"),
        ({"num_keyframes": 2, "duration": 1.0}, "not both"),
        ({"num_keyframes": None, "duration": -1.0}, "duration"),
        ({"output_type": "gif"}, "output_type"),
        ({"guidance_scale": -1.0}, "guidance_scale"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"num_videos_per_prompt": 0}, "num_videos_per_prompt"),
        ({"temperature": -0.5}, "temperature"),
    ],
)
def test_bad_arguments(pipe, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pipe("a red circle", **{"num_keyframes": 2, "progress": False, **kwargs})


def test_from_pretrained_in_a_fresh_interpreter(pipe, tmp_path):
    # diffusers only loads components from modules already imported; TextToVideo imports vidtok's itself.
    import subprocess
    import sys

    pipe.save_pretrained(tmp_path / "p")
    code = (
        "from vidtok.pipelines.text_to_video import TextToVideo; "
        f"p = TextToVideo.from_pretrained({str(tmp_path / 'p')!r}); print(type(p.head).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith(type(pipe.head).__name__)
    with pytest.raises(FileNotFoundError, match="no pipeline folder"):
        TextToVideo.from_pretrained(str(tmp_path / "missing"))
