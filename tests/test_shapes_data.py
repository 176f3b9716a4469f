"""Tests of the Shapes world generator (vidtok.shapes)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidtok.shapes import (
    COLORS,
    HELDOUT_COMBINATIONS,
    LINEAR_MOTIONS,
    LONG_CLIP_FRAMES,
    MOTIONS,
    SHAPES,
    SIZES,
    ShapeObject,
    ShapesConfig,
    ShapesDataset,
    caption,
    generate,
    is_heldout,
    make_scene,
    parse_caption,
    render_scene,
    render_video,
    sample_objects,
    sample_scene,
)

SHAPES_PY = Path(__file__).resolve().parents[1] / "vidtok" / "shapes" / "render.py"


# ------------------------------------------------------------------------------------------------ constants


def test_vocabulary_matches_the_spec():
    assert COLORS == {
        "red": (230, 30, 30),
        "green": (30, 200, 30),
        "blue": (40, 80, 255),
        "yellow": (240, 220, 30),
        "magenta": (220, 40, 220),
        "cyan": (30, 210, 220),
        "white": (240, 240, 240),
    }
    assert SHAPES == ("circle", "square", "triangle")
    assert SIZES == ("small", "large")
    assert MOTIONS == {
        "left": "moves left",
        "right": "moves right",
        "up": "moves up",
        "down": "moves down",
        "still": "stays still",
        "bounces": "bounces",
    }


def test_generator_module_does_not_import_torch():
    # load the file on its own (not through the vidtok.data package) in a fresh interpreter
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('shapes_standalone', {str(SHAPES_PY)!r})\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules['shapes_standalone'] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "v = mod.render_video('a red circle moves left', resolution=32, num_frames=4, seed=0)\n"
        "assert v.shape == (4, 32, 32, 3)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert importlib.util.find_spec("vidtok.data.shapes") is not None


# ------------------------------------------------------------------------------------------------ rendering


def test_render_is_deterministic_per_seed_and_differs_across_seeds():
    text = "a large red circle moves left and a small blue square moves up"
    a = render_video(text, seed=3)
    b = render_video(text, seed=3)
    c = render_video(text, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(render_video(text, seed=rng_a), render_video(text, seed=rng_b))


@pytest.mark.parametrize(
    ("resolution", "num_frames", "shape"),
    [(32, 9, (9, 32, 32, 3)), (64, 16, (16, 64, 64, 3)), ((48, 80), 5, (5, 48, 80, 3)), (256, 2, (2, 256, 256, 3))],
)
@pytest.mark.parametrize("antialias", [True, False])
def test_render_shapes_and_dtype(resolution, num_frames, shape, antialias):
    video = render_video(
        "a small green triangle moves down", resolution=resolution, num_frames=num_frames, seed=0, antialias=antialias
    )
    assert video.shape == shape
    assert video.dtype == np.uint8
    assert video.max() > 0
    # black background: the corner pixels of the first frame are black (object kept inside with a margin)
    assert video[0, 0, 0].tolist() == [0, 0, 0]


def test_crisp_rendering_uses_only_palette_colors():
    video = render_video("a large cyan circle moves right", seed=1, antialias=False)
    colors = {tuple(p) for p in video.reshape(-1, 3).tolist()}
    assert colors == {(0, 0, 0), COLORS["cyan"]}


def test_antialiased_rendering_blends_edges_with_black():
    video = render_video("a large cyan circle moves right", seed=1, antialias=True)
    pixels = video.reshape(-1, 3).astype(float)
    lit = pixels[pixels.sum(axis=1) > 0]
    alpha = lit @ np.array(COLORS["cyan"], float) / np.sum(np.square(COLORS["cyan"]))
    assert ((alpha > 0.02) & (alpha < 0.98)).any()  # partial coverage exists
    np.testing.assert_allclose(lit, alpha[:, None] * np.array(COLORS["cyan"]), atol=1.0)  # only cyan * coverage


def test_equal_area_sizes():
    side = 128
    for size, fraction in (("small", 0.16), ("large", 0.28)):
        for shape in SHAPES:
            video = render_video(ShapeObject("white", shape, size, "still"), resolution=side, num_frames=1, seed=0)
            area = video[0, :, :, 0].astype(float).sum() / 240.0
            assert area == pytest.approx((fraction * side) ** 2, rel=0.02), (shape, size)


def test_unspecified_size_is_random_and_seeded():
    sizes = {make_scene("a red circle", seed=s).objects[0].size for s in range(20)}
    assert sizes == {"small", "large"}
    assert make_scene("a red circle", seed=5).objects == make_scene("a red circle", seed=5).objects


@pytest.mark.parametrize("num_frames", [16, 64])
@pytest.mark.parametrize("resolution", [32, 64, (40, 96)])
def test_linear_motions_stay_in_frame_and_are_monotone(num_frames, resolution):
    for seed in range(40):
        motion = LINEAR_MOTIONS[seed % 4]
        obj = ShapeObject("red", SHAPES[seed % 3], SIZES[(seed // 3) % 2], motion)
        scene = make_scene([obj], num_frames=num_frames, resolution=resolution, seed=seed)
        centers, half = scene.centers[0], scene.half_extents[0]
        assert (centers - half >= 0).all()
        assert (centers[:, 0] + half <= scene.width).all()
        assert (centers[:, 1] + half <= scene.height).all()
        axis = 0 if motion in ("left", "right") else 1
        sign = 1 if motion in ("right", "down") else -1
        steps = np.diff(centers[:, axis]) * sign
        assert (steps > 0).all()
        np.testing.assert_allclose(np.diff(centers[:, 1 - axis]), 0.0)


def test_speed_is_in_frame_sides_per_second():
    scene = make_scene("a small red square moves right", resolution=64, num_frames=16, fps=8, speed=0.2, seed=0)
    np.testing.assert_allclose(np.diff(scene.centers[0, :, 0]), 0.2 * 64 / 8)
    # same duration at a higher frame rate: same travel
    fast = make_scene("a small red square moves right", resolution=64, num_frames=31, fps=16, seed=0)
    np.testing.assert_allclose(fast.centers[0, -1, 0] - fast.centers[0, 0, 0], 0.2 * 64 * 15 / 8)
    # a long clip is slowed down to stay inside
    long = make_scene("a large red triangle moves left", resolution=64, num_frames=200, seed=0)
    step = -np.diff(long.centers[0, :, 0])
    assert 0 < step[0] < 0.2 * 64 / 8


def test_still_objects_do_not_move():
    scene = make_scene("a large red circle stays still and a small blue square", num_frames=12, seed=2)
    assert np.ptp(scene.centers, axis=1).max() == 0


def _reversals(track):
    v = np.diff(track)
    v = v[np.abs(v) > 1e-9]
    return int((np.sign(v[1:]) != np.sign(v[:-1])).sum())


@pytest.mark.parametrize(("num_frames", "resolution"), [(64, 64), (64, 32), (96, 48), (16, 64)])
def test_bounces_reflect_off_the_walls(num_frames, resolution):
    for seed in range(30):
        obj = ShapeObject("green", SHAPES[seed % 3], SIZES[seed % 2], "bounces")
        scene = make_scene([obj], num_frames=num_frames, resolution=resolution, seed=seed)
        centers, half = scene.centers[0], scene.half_extents[0]
        assert (centers - half >= 0).all()
        assert (centers[:, 0] + half <= scene.width).all() and (centers[:, 1] + half <= scene.height).all()
        assert max(_reversals(centers[:, 0]), _reversals(centers[:, 1])) >= 1
        # constant speed between reflections: every step has the same length (up to the folding)
        steps = np.abs(np.diff(centers, axis=0))
        assert steps.sum(axis=1).max() > 0


def test_two_objects_are_kept_apart():
    overlapping_at_start = 0
    overlapping_ever = 0
    n = 200
    for seed in range(n):
        rng = np.random.default_rng(seed)
        objects = sample_objects(rng, num_objects=2)
        scene = make_scene(objects, seed=rng)
        d = np.abs(scene.centers[0] - scene.centers[1]) - scene.half_extents.sum()  # (T, 2)
        gap = d.max(axis=1)
        overlapping_at_start += gap[0] < 0
        overlapping_ever += (gap < 0).any()
    assert overlapping_at_start / n <= 0.03
    assert overlapping_ever / n <= 0.05


def test_render_scene_matches_render_video():
    scene = make_scene("a small yellow square moves up", seed=4)
    np.testing.assert_array_equal(render_scene(scene), render_video("a small yellow square moves up", seed=4))
    assert scene.caption == "a small yellow square moves up"
    assert scene.num_frames == 16


def test_render_rejects_bad_arguments():
    with pytest.raises(ValueError, match="resolution"):
        render_video("a red circle", resolution=8)
    with pytest.raises(ValueError, match="num_frames"):
        render_video("a red circle", num_frames=0)
    with pytest.raises(ValueError, match="blu"):
        render_video("a blu circle")
    with pytest.raises(ValueError):
        render_video([])


# ------------------------------------------------------------------------------------------------ captions

object_specs = st.builds(
    ShapeObject,
    color=st.sampled_from(sorted(COLORS)),
    shape=st.sampled_from(SHAPES),
    size=st.sampled_from([None, *SIZES]),
    motion=st.sampled_from([None, *MOTIONS]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(object_specs, min_size=1, max_size=3))
def test_caption_parse_round_trip(objects):
    text = caption(objects)
    assert parse_caption(text) == objects
    assert parse_caption("  " + text.upper().replace(" ", "   ") + " ") == objects
    assert caption(parse_caption(text)) == text


def test_caption_examples():
    objs = [ShapeObject("red", "circle", "large", "left"), ShapeObject("blue", "square", "small", "still")]
    assert caption(objs) == "a large red circle moves left and a small blue square stays still"
    assert caption(ShapeObject("white", "triangle", None, "bounces")) == "a white triangle bounces"
    assert caption(ShapeObject("white", "triangle", "large")) == "a large white triangle"
    assert ShapeObject("red", "circle", None, "moves up").motion == "up"  # phrase normalized to its key
    with pytest.raises(ValueError):
        caption([])


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("a red circl moves left", "'circl'"),
        ("red circle moves left", "'red'"),
        ("a big red circle", "'big'"),
        ("a red circle moves", "end of caption"),
        ("a red circle moves sideways", "'sideways'"),
        ("a red circle stays put", "'put'"),
        ("a red circle moves left and", "end of caption"),
        ("a red circle moves left or a blue square", "'or'"),
        ("a red circle moves left quickly", "'quickly'"),
        ("a red circle and and a blue square", "'and'"),
        ("a large small red circle", "'small'"),
        ("a red circle, and a blue square", "'circle,'"),
        ("", "end of caption"),
    ],
)
def test_grammar_errors_name_the_bad_word(text, bad):
    with pytest.raises(ValueError, match="bad caption") as info:
        parse_caption(text)
    assert bad in str(info.value)


def test_shape_object_validates():
    with pytest.raises(ValueError, match="color"):
        ShapeObject("purple", "circle")
    with pytest.raises(ValueError, match="shape"):
        ShapeObject("red", "star")
    with pytest.raises(ValueError, match="size"):
        ShapeObject("red", "circle", "huge")
    with pytest.raises(ValueError, match="motion"):
        ShapeObject("red", "circle", "small", "spins")
    with pytest.raises(TypeError):
        parse_caption(None)


# ------------------------------------------------------------------------------------------------ held-out split


def test_heldout_combinations_are_a_documented_minority():
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    assert set(HELDOUT_COMBINATIONS) <= set(pairs)
    fraction = len(HELDOUT_COMBINATIONS) / len(pairs)
    assert 0.10 <= fraction <= 0.15
    train_pairs = [p for p in pairs if not is_heldout(p)]
    # every color and every shape still appears in training (with other partners)
    assert {c for c, _ in train_pairs} == set(COLORS)
    assert {s for _, s in train_pairs} == set(SHAPES)
    assert is_heldout(ShapeObject(*HELDOUT_COMBINATIONS[0], "small", "left"))
    assert not is_heldout(ShapeObject("red", "circle"))


def test_split_laws_on_sampled_scenes():
    seen = {"color": set(), "shape": set(), "size": set(), "motion": set()}
    for seed in range(600):
        objects = sample_objects(seed, num_objects=(1, 2, 3), split="train", motions=tuple(MOTIONS))
        assert not any(is_heldout(o) for o in objects)
        assert len({o.color for o in objects}) == len(objects)  # distinct colors
        for o in objects:
            for key in seen:
                seen[key].add(getattr(o, key))
    assert seen == {"color": set(COLORS), "shape": set(SHAPES), "size": set(SIZES), "motion": set(MOTIONS)}
    heldout_first = 0
    for seed in range(300):
        objects = sample_objects(seed, num_objects=2, split="heldout")
        assert any(is_heldout(o) for o in objects)
        assert len({o.color for o in objects}) == 2
        heldout_first += is_heldout(objects[0])
    assert 0.3 < heldout_first / 300 < 0.95  # the held-out object is not always first
    held = {(o.color, o.shape) for seed in range(300) for o in sample_objects(seed, split="heldout") if is_heldout(o)}
    assert held == set(HELDOUT_COMBINATIONS)


def test_split_laws_on_datasets():
    train = ShapesDataset("train", resolution=32, num_frames=4, length=60)
    heldout = ShapesDataset("heldout", resolution=32, num_frames=4, length=30)
    everything = ShapesDataset("all", resolution=32, num_frames=4, length=40)
    assert not any(is_heldout(o) for i in range(len(train)) for o in train.scene(i)[0])
    assert all(any(is_heldout(o) for o in parse_caption(heldout[i]["caption"])) for i in range(len(heldout)))
    assert len(everything) == 40 and everything[0]["caption"] != train[0]["caption"]


# ------------------------------------------------------------------------------------------------ config, dataset


def test_config_defaults_and_validation():
    cfg = ShapesConfig()
    assert (cfg.height, cfg.width, cfg.frames) == (64, 64, 16)
    assert "bounces" not in cfg.resolved_motions
    assert "bounces" in ShapesConfig(num_frames=LONG_CLIP_FRAMES).resolved_motions
    assert ShapesConfig(mode="image").resolved_motions is None
    assert ShapesConfig(mode="image", num_frames=16).frames == 1
    assert ShapesConfig(resolution=[48, 80]).resolution == (48, 80)
    for bad in (
        dict(split="test"),
        dict(mode="gif"),
        dict(num_frames=0),
        dict(motions=("jumps",)),
        dict(num_objects=0),
        dict(num_objects={1: -1.0}),
        dict(resolution=4),
        dict(fps=0),
    ):
        with pytest.raises(ValueError):
            ShapesConfig(**bad)


def test_num_objects_options():
    counts = {len(sample_objects(s, num_objects={1: 0.0, 3: 1.0})) for s in range(20)}
    assert counts == {3}
    counts = {len(sample_objects(s, num_objects=(1, 2))) for s in range(50)}
    assert counts == {1, 2}
    assert len(sample_objects(0, num_objects=4)) == 4
    with pytest.raises(ValueError):
        sample_objects(0, num_objects=8)


def test_dataset_items():
    ds = ShapesDataset("train", resolution=32, num_frames=8, length=10, seed=1)
    assert len(ds) == 10
    item = ds[3]
    video = item["video"]
    assert tuple(video.shape) == (3, 8, 32, 32)
    assert str(video.dtype) == "torch.float32"
    assert video.min().item() >= -1.0 and video.max().item() <= 1.0
    assert video.min().item() == -1.0  # black background
    assert isinstance(item["caption"], str)
    parse_caption(item["caption"])
    # deterministic per index, also across instances, and different across indices/seeds
    again = ShapesDataset("train", resolution=32, num_frames=8, length=10, seed=1)[3]
    assert (again["video"] == video).all() and again["caption"] == item["caption"]
    assert not (ds[4]["video"] == video).all()
    other_seed = ShapesDataset("train", resolution=32, num_frames=8, length=10, seed=2)[3]
    assert not (other_seed["video"] == video).all()
    assert (ds[-7]["video"] == video).all()
    with pytest.raises(IndexError):
        ds[10]
    assert sum(1 for _ in ds) == 10  # plain iteration stops at the end


def test_dataset_matches_numpy_generate():
    cfg = ShapesConfig(resolution=32, num_frames=5, seed=7, split="all")
    videos, captions = generate(3, cfg, start=2)
    ds = ShapesDataset(config=cfg)
    for k in range(3):
        item = ds[2 + k]
        assert item["caption"] == captions[k]
        restored = ((item["video"].permute(1, 2, 3, 0).numpy() + 1.0) * 127.5).round().astype(np.uint8)
        np.testing.assert_array_equal(restored, videos[k])
    objects, video = sample_scene(cfg.rng(2), cfg)
    assert caption(objects) == captions[0]
    np.testing.assert_array_equal(video, videos[0])


def test_image_mode():
    ds = ShapesDataset("train", "image", resolution=48, length=20)
    for i in range(20):
        item = ds[i]
        assert tuple(item["video"].shape) == (3, 1, 48, 48)
        objects = parse_caption(item["caption"])
        assert all(o.motion is None and o.size is not None for o in objects)
        assert "moves" not in item["caption"] and "still" not in item["caption"]


def test_dataloader_batches():
    import torch

    ds = ShapesDataset(resolution=32, num_frames=4, length=6)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert tuple(batch["video"].shape) == (3, 3, 4, 32, 32)
    assert len(batch["caption"]) == 3


def test_generate_shapes():
    # Speed is measured by benchmarks/shapes.py, not asserted here.
    videos, captions = generate(50, resolution=64, num_frames=16, seed=0)
    assert videos.shape == (50, 16, 64, 64, 3) and videos.dtype == np.uint8
    assert len(captions) == 50 and len(set(captions)) > 25
