"""Bad arguments to the pipelines and recipes: each is refused with an error that names the argument.

No NaN or inf reaches the model, no bool passes for a count, no seed-like object for a generator, and no
typo plans a million keyframes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import vidtok
from vidtok.pipelines.image_to_video import ImageToVideo
from vidtok.pipelines.text_to_video import TextToVideo

NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return TextToVideo.from_recipe(vidtok.RECIPES.create("dicode_tiny", tiny=True))


CASES = [
    ({"guidance_scale": NAN}, ValueError, "guidance_scale"),
    ({"guidance_scale": INF}, ValueError, "guidance_scale"),
    ({"guidance_scale": -1.0}, ValueError, "guidance_scale"),
    ({"guidance_scale": "3"}, TypeError, "guidance_scale"),
    ({"temperature": NAN}, ValueError, "temperature"),
    ({"temperature": -0.5}, ValueError, "temperature"),
    ({"temperature": torch.tensor([1.0, 2.0])}, TypeError, "temperature"),
    ({"decoder_guidance_scale": INF}, ValueError, "decoder_guidance_scale"),
    ({"eta": NAN}, ValueError, "eta"),
    ({"num_keyframes": True}, TypeError, "num_keyframes"),
    ({"num_keyframes": 2.0}, TypeError, "num_keyframes"),
    ({"num_keyframes": 0}, ValueError, "num_keyframes"),
    ({"num_keyframes": 10**7}, ValueError, "max_num_keyframes"),
    ({"duration": INF}, ValueError, "duration"),
    ({"duration": NAN}, ValueError, "duration"),
    ({"duration": 0.0}, ValueError, "duration"),
    ({"duration": 1e6}, ValueError, "max_num_keyframes"),
    ({"duration": "2s"}, TypeError, "duration"),
    ({"num_inference_steps": 0}, ValueError, "num_inference_steps"),
    ({"num_inference_steps": False}, TypeError, "num_inference_steps"),
    ({"num_videos_per_prompt": 0}, ValueError, "num_videos_per_prompt"),
    ({"context_keyframes": 1.5}, TypeError, "context_keyframes"),
    ({"generator": 3}, TypeError, "generator"),
    ({"generator": np.random.default_rng(0)}, TypeError, "generator"),
    ({"generator": [torch.Generator()]}, TypeError, "generator"),
    ({"output_type": "gif"}, ValueError, "output_type"),
    ({"num_keyframes": 2, "duration": 1.0}, ValueError, "num_keyframes or duration"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), CASES, ids=[str(c[0]) for c in CASES])
def test_bad_arguments_are_named(pipe, kwargs, error, match):
    with pytest.raises(error, match=match):
        pipe("a red circle moves right", progress=False, output_type=kwargs.pop("output_type", "latent"), **kwargs)


def test_the_keyframe_bound_is_adjustable(pipe):
    steps = pipe.keyframes_for(1.0)
    assert steps >= 2 and math.isfinite(steps)
    pipe.max_num_keyframes = 3
    try:
        with pytest.raises(ValueError, match="max_num_keyframes=3"):
            pipe.keyframes_for(60.0)
    finally:
        del pipe.max_num_keyframes  # back to the class default


@pytest.mark.parametrize("form", ["hwc_uint8", "hwc_float", "pil", "bchw", "bc1hw"])
def test_image_to_video_takes_every_documented_image_form(pipe, form):
    size = pipe.video_tokenizer.sample_size
    rgb = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    image = {
        "hwc_uint8": rgb,
        "hwc_float": rgb.astype(np.float32) / 255,
        "pil": Image.fromarray(rgb),
        "bchw": torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1,
        "bc1hw": torch.from_numpy(rgb).permute(2, 0, 1)[None, :, None].float() / 127.5 - 1,
    }[form]
    i2v = ImageToVideo(**pipe.components)
    out = i2v(image, "a red circle moves right", num_keyframes=2, num_inference_steps=1, progress=False)
    assert out.frames.shape[:2] == (1, pipe.video_tokenizer.num_frames_for(2))


def test_image_to_video_names_a_wrong_image_type(pipe):
    with pytest.raises(TypeError, match="image must be"):
        ImageToVideo(**pipe.components)("not an image", "a red circle", progress=False)


def test_recipe_refuses_an_unknown_head_at_creation():
    with pytest.raises(KeyError, match="unknown head 'nope'"):
        vidtok.RECIPES.create("dicode_tiny", head="nope")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"prefix_tokens": [[0.0]]}, TypeError, "prefix_tokens must be a torch.Tensor"),
        (
            {"prefix_tokens": torch.zeros(1, 3, 4, 16), "num_keyframes": 2},
            ValueError,
            "prefix_tokens gives 3 keyframes",
        ),
        ({"prefix_tokens": torch.zeros(1, 1, 5, 16)}, ValueError, "prefix_tokens: deep tokens must be"),
        ({"prefix_tokens": torch.zeros(4, 16)}, ValueError, "prefix_tokens must be"),
    ],
)
def test_bad_prefixes_are_named(pipe, kwargs, error, match):
    with pytest.raises(error, match=match):
        pipe("a red circle moves right", progress=False, output_type="latent", **kwargs)


def test_a_video_prefix_longer_than_num_keyframes_names_video(pipe):
    video = torch.zeros(1, 3, pipe.video_tokenizer.num_frames_for(3), 16, 16)
    with pytest.raises(ValueError, match="video gives 3 keyframes, more than num_keyframes=2"):
        pipe("a red circle moves right", video=video, num_keyframes=2, progress=False, output_type="latent")


def test_image_to_video_takes_one_prompt_for_several_images(pipe):
    images = torch.zeros(2, 3, 16, 16)
    out = ImageToVideo(**pipe.components)(
        images, ["a red circle"], num_keyframes=2, progress=False, output_type="latent"
    )
    assert out.tokens.shape[0] == 2
