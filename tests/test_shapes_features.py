"""Shapes feature network and Shapes FD: shapes, determinism, save→load, the shipped weights, the distance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidtok.metrics.shapes_evaluation import heldout_prompts, render_clips, to_model_video
from vidtok.metrics.shapes_features import (
    ATTRIBUTE_CLASSES,
    ShapesFeatureNet,
    attribute_targets,
    load_shapes_features,
    shapes_features,
    shapes_frechet_distance,
)
from vidtok.shapes.grammar import parse_caption
from vidtok.shapes.render import render_video


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return ShapesFeatureNet(**ShapesFeatureNet.tiny_config()).eval()


@pytest.fixture(scope="module")
def shipped():
    try:
        return load_shapes_features()
    except FileNotFoundError as err:  # pragma: no cover - the weights ship with the package
        pytest.fail(f"shipped Shapes feature network missing: {err}")


def test_features_shape_for_any_length_and_size(tiny):
    for frames, side in ((2, 32), (9, 32), (17, 16), (5, 48)):
        out = tiny.features(torch.zeros(3, 3, frames, side, side))
        assert out.shape == (3, 16) and out.dtype == torch.float32
    logits = tiny.attribute_logits(torch.zeros(2, 3, 4, 32, 32))
    assert {k: v.shape[1] for k, v in logits.items()} == {k: len(v) for k, v in ATTRIBUTE_CLASSES.items()}


def test_default_config_gives_128_features():
    net = ShapesFeatureNet()
    assert net.feature_dim == 128
    assert net.features(torch.zeros(1, 3, 9, 32, 32)).shape == (1, 128)
    assert sum(p.numel() for p in net.parameters()) * 2 < 500_000  # fp16 file well under 1 MB


def test_features_are_deterministic_and_batch_independent(tiny):
    x = torch.rand(4, 3, 6, 32, 32) * 2 - 1
    a = tiny.features(x)
    assert torch.equal(a, tiny.features(x))
    assert torch.allclose(tiny.features(x[:1]), a[:1], atol=1e-6)  # group norm: no batch statistics
    assert torch.allclose(tiny.features(x, batch_size=3), a, atol=1e-6)


def test_bad_inputs_name_the_problem(tiny):
    with pytest.raises(ValueError, match="at least 2 frames"):
        tiny.features(torch.zeros(1, 3, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        tiny.features(torch.zeros(1, 32, 32, 3))
    with pytest.raises(TypeError, match="float tensor"):
        tiny.features(torch.zeros(1, 3, 4, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        tiny.features(torch.full((1, 3, 4, 32, 32), 255.0))
    with pytest.raises(TypeError, match="keyword-only"):

        class Bad(ShapesFeatureNet):  # noqa: F811
            def __init__(self, channels):
                super().__init__()


def test_save_load_round_trip(tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "net")
    loaded, info = ShapesFeatureNet.from_pretrained(tmp_path / "net", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert loaded.config.channels == tiny.config.channels
    x = torch.rand(2, 3, 5, 32, 32) * 2 - 1
    assert torch.equal(loaded.eval().features(x), tiny.features(x))
    assert torch.equal(load_shapes_features(tmp_path / "net").features(x), tiny.features(x))


def test_missing_weights_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_shapes_features"):
        load_shapes_features(tmp_path / "nowhere")


def test_attribute_targets_are_multi_hot():
    t = attribute_targets([parse_caption("a large red circle moves left and a small blue square bounces")])
    names = [f"{a}:{v}" for a, values in ATTRIBUTE_CLASSES.items() for v in values]
    on = {n for n, bit in zip(names, t[0].tolist(), strict=True) if bit}
    assert on == {"color:red", "color:blue", "shape:circle", "shape:square", "size:large", "size:small", "motion:left"}


def test_shipped_weights_load_and_classify_heldout_videos(shipped):
    assert shipped.feature_dim == 128 and not shipped.training
    assert next(shipped.parameters()).dtype == torch.float32
    # every held-out (color, shape) pair x size x motion: pairs the network never saw in training
    prompts = heldout_prompts()
    videos = np.stack([render_video(p, num_frames=9, resolution=32, seed=i) for i, p in enumerate(prompts)])
    preds = shipped.classify(to_model_video(videos))
    truth = [parse_caption(p)[0] for p in prompts]
    for attr in ("color", "size", "motion"):
        acc = np.mean([p[attr] == getattr(o, attr) for p, o in zip(preds, truth, strict=True)])
        assert acc >= 0.9, (attr, acc)


def test_frechet_distance_is_zero_for_identical_sets(tiny):
    clips, _ = render_clips("train", 12, 3, num_frames=9)
    assert shapes_frechet_distance(clips, clips, tiny) == pytest.approx(0.0, abs=1e-6)
    as_tensor = to_model_video(clips)
    assert shapes_frechet_distance(as_tensor, clips, tiny) == pytest.approx(0.0, abs=1e-6)
    assert shapes_features(clips, tiny).shape == (12, 16)


def test_frechet_distance_prefers_matching_captions(shipped):
    captions = [f"a {size} {color} circle {motion}" for size in ("small", "large") for color in ("red", "green")
                for motion in ("moves left", "moves up")]  # fmt: skip
    wrong = [c.replace("circle", "square").replace("red", "white").replace("green", "cyan") for c in captions]
    render = lambda texts, draw: np.stack(  # noqa: E731
        [render_video(t, num_frames=9, resolution=32, seed=1000 * draw + i) for i, t in enumerate(texts)]
    )
    real, same, other = render(captions, 0), render(captions, 1), render(wrong, 2)
    matched = shapes_frechet_distance(real, same, shipped)
    mismatched = shapes_frechet_distance(real, other, shipped)
    assert 0 < matched < mismatched


def test_frechet_distance_errors(tiny):
    clips, _ = render_clips("train", 3, 0, num_frames=5)
    with pytest.raises(ValueError, match="at least 2 videos"):
        shapes_frechet_distance(clips[:1], clips, tiny)
    with pytest.raises(TypeError, match="uint8"):
        shapes_frechet_distance(clips.astype(np.float32), clips, tiny)
