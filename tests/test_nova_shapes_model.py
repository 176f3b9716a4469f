"""The shipped NOVA Shapes model (``vidtok:nova_shapes``): loads offline, reconstructs, generates from text and
from an image, as measured in docs/results.md."""

from __future__ import annotations

import pytest
import torch

import vidtok
from vidtok.pipelines import ImageToVideo, TextToVideo
from vidtok.shapes import score_video


@pytest.fixture(scope="module")
def pipe():
    return TextToVideo.from_pretrained("vidtok:nova_shapes")


def test_is_a_nova_pipeline(pipe):
    """Size, fp32, eval mode and clean configs: tests/test_default_model.py checks every shipped pipeline."""
    from vidtok.backbones.block_causal import BlockCausalTransformer
    from vidtok.models.nova import NOVAModel
    from vidtok.tokenizers.continuous_vae import ContinuousVAETokenizer

    assert isinstance(pipe.model, NOVAModel) and isinstance(pipe.backbone, BlockCausalTransformer)
    assert isinstance(pipe.video_tokenizer, ContinuousVAETokenizer)
    assert pipe.head.config.prediction_type == "flow_prediction"
    assert list(pipe.model.config.grid) == [4, 4] and pipe.model.config.token_dim == 16


def test_recipe_sizes_the_model_from_the_shipped_vae(pipe):
    """The recipe's default tokenizer is the pipeline's (tests/test_default_model.py); its latent statistics
    are the ones the model was trained on."""
    recipe = vidtok.RECIPES.create("nova_tiny")
    assert recipe.model.kwargs["grid"] == list(pipe.model.config.grid)
    assert recipe.video_tokenizer.pretrained == "vidtok:nova_vae_shapes"
    assert pipe.video_tokenizer.config["latent_scale"] != 1.0


def test_vae_reconstructs_held_out_clips(pipe):
    """A regression guard on 8 held-out 17-frame clips (the 32-clip figure is in docs/results.md)."""
    from vidtok.metrics.shapes_evaluation import evaluate_reconstruction, render_clips, to_model_video

    clips, _ = render_clips("heldout", 8, 1, None, resolution=32, num_frames=17, fps=8.0)
    video = to_model_video(clips)
    with torch.no_grad():
        tokens = pipe.video_tokenizer.encode(video).tokens
    assert tokens.shape == (8, 5, 16, 16)
    assert evaluate_reconstruction(pipe.video_tokenizer, video)["psnr"] > PSNR_FLOOR


def test_image_to_video_starts_at_the_image():
    """ImageToVideo.from_pretrained on the shipped name: frame 0 is the image's reconstruction."""
    from vidtok.metrics.shapes_evaluation import render_clips, to_model_video

    i2v = ImageToVideo.from_pretrained("vidtok:nova_shapes")
    clips, captions = render_clips("heldout", 1, 1, None, resolution=32, num_frames=1, fps=8.0)
    image = to_model_video(clips)[:, :, 0]
    out = i2v(image, captions[0], num_keyframes=2, generator=torch.Generator().manual_seed(0), progress=False)
    assert out.frames.shape == (1, 5, 32, 32, 3)
    first = torch.as_tensor(out.frames[0, 0]).float()
    target = torch.as_tensor(clips[0, 0]).float() / 255
    assert (first - target).abs().mean() < 0.05


@pytest.mark.slow
def test_follows_held_out_prompts(pipe):
    # Held-out (color, shape) pairs, never seen in training. A regression guard on 6 prompts x 1 seed; the
    # measured claim (30 prompts x 2 seeds) is in docs/results.md.
    from vidtok.metrics.shapes_evaluation import heldout_prompts

    prompts = heldout_prompts()[::5][:6]
    g = torch.Generator().manual_seed(0)
    assert pipe.model.default_guidance_scale == 3.0  # saved with the model: the setting it was evaluated with
    out = pipe(prompts, num_keyframes=5, generator=g, progress=False)
    assert out.frames.shape == (6, 17, 32, 32, 3)
    scores = [score_video(v, c) for v, c in zip(out.frames, prompts, strict=True)]
    color = sum(s["color"] for s in scores) / len(scores)
    assert color >= COLOR_FLOOR, scores


PSNR_FLOOR = 29.5  # measured 30.7 dB on these 8 clips, 30.5 dB on 32 held-out 17-frame clips (docs/results.md)
COLOR_FLOOR = 0.6  # measured 1.00 on these 6 at the saved guidance 3; 0.92 / 0.87 held out (docs/results.md)
