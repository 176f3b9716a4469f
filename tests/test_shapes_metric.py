"""Tests of the pixel-only Shapes prompt-following score (vidtok.shapes.scorer)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from vidtok.shapes import (
    ATTRIBUTES,
    COLORS,
    ShapeObject,
    ShapesDataset,
    ShapesScore,
    analyze_video,
    generate,
    parse_caption,
    render_video,
    score_video,
    score_videos,
)

FACTS = ATTRIBUTES  # color, shape, size, motion


@pytest.fixture(scope="module")
def data64():
    return generate(200, resolution=64, num_frames=16, seed=11)


@pytest.fixture(scope="module")
def data32():
    return generate(100, resolution=32, num_frames=9, seed=12)


def oracle(video_caption: str, caption: str) -> dict[str, float]:
    """What a perfect scorer gives `caption` on the video generated from `video_caption`."""
    truth = {o.color: o for o in parse_caption(video_caption)}
    facts = {name: [] for name in FACTS}
    for obj in parse_caption(caption):
        match = truth.get(obj.color)
        facts["color"].append(match is not None)
        facts["shape"].append(match is not None and match.shape == obj.shape)
        if obj.size is not None:
            facts["size"].append(match is not None and match.size == obj.size)
        if obj.motion is not None:
            facts["motion"].append(match is not None and match.motion == obj.motion)
    out = {k: (float(np.mean(v)) if v else math.nan) for k, v in facts.items()}
    out["overall"] = float(np.mean([f for v in facts.values() for f in v]))
    return out


def mean_oracle(video_captions, captions):
    scores = [oracle(a, b) for a, b in zip(video_captions, captions, strict=True)]
    return {k: float(np.nanmean([s[k] for s in scores])) for k in (*FACTS, "overall")}


def h264_round_trip(video: np.ndarray, fps: int = 8) -> np.ndarray:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
        for frame in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


# ------------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize("which", ["data64", "data32"])
def test_ground_truth_scores_high(which, request):
    videos, captions = request.getfixturevalue(which)
    scores = score_videos(videos, captions)
    for name in (*FACTS, "overall"):
        assert scores[name] >= 0.97, (name, scores)


@pytest.mark.parametrize("which", ["data64", "data32"])
def test_shuffled_captions_score_at_chance(which, request):
    videos, captions = request.getfixturevalue(which)
    shuffled = captions[1:] + captions[:1]  # captions are i.i.d., so a rotation is a random mismatch
    scores = score_videos(videos, shuffled)
    expected = mean_oracle(captions, shuffled)
    # analytic chance for 1-2 objects per video and per caption, 7 colors: P(color in video) = E[n] / 7 = 3/14;
    # shape, size and motion additionally match with about 1/3, 1/2 and 1/5
    n_mean = np.mean([len(parse_caption(c)) for c in captions])
    chance = {"color": n_mean / 7}
    chance.update(shape=chance["color"] / 3, size=chance["color"] / 2, motion=chance["color"] / 5)
    truth = score_videos(videos, captions)
    for name in FACTS:
        assert abs(scores[name] - expected[name]) <= 0.03, (name, scores, expected)  # scorer == oracle
        assert abs(expected[name] - chance[name]) <= 0.08, (name, expected, chance)  # oracle ~ analytic chance
        assert scores[name] <= truth[name] - 0.6
    assert scores["overall"] <= 0.25


@pytest.mark.parametrize("which", ["data64", "data32"])
def test_frozen_first_frame_fails_motion_only(which, request):
    videos, captions = request.getfixturevalue(which)
    frozen = np.repeat(videos[:, :1], videos.shape[1], axis=1)
    moving = [i for i, c in enumerate(captions) if any(o.motion != "still" for o in parse_caption(c))]
    still = [i for i, c in enumerate(captions) if all(o.motion == "still" for o in parse_caption(c))]
    assert len(moving) > 20 and len(still) > 3
    scores = score_videos(frozen[moving], [captions[i] for i in moving])
    assert scores["motion"] <= 0.25
    for name in ("color", "shape", "size"):
        assert scores[name] >= 0.95, (name, scores)
    assert score_videos(frozen[still], [captions[i] for i in still])["motion"] >= 0.97


def test_h264_round_trip_keeps_scores(data64):
    videos, captions = data64
    decoded = [h264_round_trip(v) for v in videos[:60]]
    assert decoded[0].shape == videos[0].shape
    scores = score_videos(decoded, captions[:60])
    for name in (*FACTS, "overall"):
        assert scores[name] >= 0.95, (name, scores)


def test_vidtok_io_mp4_round_trip(data64, tmp_path):
    import vidtok.io as vio

    videos, captions = data64
    decoded = []
    for k in range(8):
        path = vio.save_video(videos[k], tmp_path / f"clip{k}.mp4", fps=8)
        decoded.append(vio.read_video(path))
    scores = score_videos(decoded, captions[:8])
    for name in FACTS:
        assert scores[name] >= 0.95, (name, scores)


def test_uniform_noise_scores_low(data64):
    _, captions = data64
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(20, 16, 64, 64, 3), dtype=np.uint8)
    scores = score_videos(noise, captions[:20])
    assert scores["overall"] <= 0.05 and scores["color"] <= 0.05
    assert score_videos(np.zeros((5, 16, 64, 64, 3), np.uint8), captions[:5])["overall"] == 0.0


def test_pixel_noise_and_crisp_rendering_are_tolerated():
    videos, captions = generate(60, resolution=64, num_frames=16, seed=21, antialias=False)
    assert score_videos(videos, captions)["overall"] >= 0.97
    noisy = np.clip(videos + np.random.default_rng(0).normal(0, 20, videos.shape), 0, 255).astype(np.uint8)
    scores = score_videos(noisy, captions)
    for name in FACTS:
        assert scores[name] >= 0.95, (name, scores)
    videos, captions = generate(60, resolution=32, num_frames=9, seed=22, antialias=False)
    for name, value in score_videos(videos, captions).items():
        assert value >= 0.95, (name, value)


@pytest.mark.parametrize(("resolution", "num_frames", "n"), [(64, 64, 40), (32, 64, 30), (96, 48, 15)])
def test_long_videos_with_bounces(resolution, num_frames, n):
    videos, captions = generate(n, resolution=resolution, num_frames=num_frames, motions=("bounces",), seed=5)
    assert all("bounces" in c for c in captions)
    scores = score_videos(videos, captions)
    for name in FACTS:
        assert scores[name] >= 0.95, (name, scores)
    # linear captions on bouncing videos fail, and a linear video is not read as bouncing
    wrong = [c.replace("bounces", "moves left") for c in captions]
    assert score_videos(videos, wrong)["motion"] <= 0.1
    linear = render_video("a large red square moves right", num_frames=num_frames, resolution=resolution, seed=0)
    assert analyze_video(linear, ["red"])["red"].motion == "right"


def test_default_long_clips_mix_all_motions():
    videos, captions = generate(40, resolution=64, num_frames=64, seed=6)
    assert any("bounces" in c for c in captions) and any("moves" in c for c in captions)
    scores = score_videos(videos, captions)
    for name in FACTS:
        assert scores[name] >= 0.97, (name, scores)


@pytest.mark.parametrize(
    ("resolution", "num_frames", "fps"), [(128, 16, 8), (256, 8, 8), ((48, 80), 16, 8), (64, 24, 24)]
)
def test_other_resolutions_and_frame_rates(resolution, num_frames, fps):
    videos, captions = generate(10, resolution=resolution, num_frames=num_frames, fps=fps, seed=8)
    for name, value in score_videos(videos, captions).items():
        assert value >= 0.95, (name, value)


def test_image_captions_do_not_score_motion():
    ds = ShapesDataset("train", "image", resolution=64, length=30)
    items = [ds[i] for i in range(30)]
    scores = score_videos([it["video"] for it in items], [it["caption"] for it in items])
    assert math.isnan(scores["motion"])
    for name in ("color", "shape", "size", "overall"):
        assert scores[name] >= 0.97, (name, scores)


# ------------------------------------------------------------------------------------------------ semantics


def test_unstated_attributes_are_nan_and_excluded():
    video = render_video("a small blue square stays still", resolution=32, seed=0)
    s = score_video(video, "a large blue square")
    assert (s["color"], s["shape"], s["size"]) == (1.0, 1.0, 0.0) and math.isnan(s["motion"])
    assert s["overall"] == pytest.approx(2 / 3)
    s = score_video(video, "a blue square stays still")
    assert math.isnan(s["size"]) and s["motion"] == 1.0 and s["overall"] == 1.0
    s = score_video(video, "a blue circle")
    assert math.isnan(s["size"]) and math.isnan(s["motion"]) and s["overall"] == 0.5
    # per-attribute accuracy is over the objects that state it
    two = render_video("a large red circle moves left and a small green triangle moves up", seed=1)
    s = score_video(two, "a large red circle moves left and a green triangle moves down")
    assert s["size"] == 1.0 and s["motion"] == 0.5 and s["overall"] == pytest.approx(6 / 7)


def test_facts_are_conditional_on_color():
    video = render_video("a large red circle moves left", seed=3)
    s = score_video(video, "a large green circle moves left")
    assert s == {"color": 0.0, "shape": 0.0, "size": 0.0, "motion": 0.0, "overall": 0.0}
    found = analyze_video(video, ["green"])["green"]
    assert not found.present and found.shape is None and np.isnan(found.track).all()


def test_score_videos_is_nan_aware_mean():
    v1 = render_video("a large red circle moves left", seed=0)
    v2 = render_video("a small cyan square", num_frames=16, seed=0)
    s = score_videos([v1, v2], ["a large red circle moves right", "a small cyan square"])
    assert s["motion"] == 0.0  # only the first caption states a motion
    assert s["overall"] == pytest.approx((0.75 + 1.0) / 2)
    s = score_videos([v2], ["a cyan square"])
    assert math.isnan(s["size"]) and math.isnan(s["motion"])


def test_each_attribute_is_read_correctly():
    for color in COLORS:
        for shape in ("circle", "square", "triangle"):
            for size, motion in (("small", "left"), ("large", "up"), ("small", "still"), ("large", "down")):
                obj = ShapeObject(color, shape, size, motion)
                found = analyze_video(render_video(obj, resolution=48, num_frames=12, seed=1), [color])[color]
                assert (found.present, found.shape, found.size, found.motion) == (True, shape, size, motion), obj


def test_input_layouts_agree():
    import torch

    text = "a large magenta triangle moves right and a small white circle moves down"
    video = render_video(text, resolution=32, num_frames=9, seed=2)
    reference = score_video(video, text)
    assert reference["overall"] == 1.0
    as_float = video.astype(np.float32) / 255.0
    model = as_float.transpose(3, 0, 1, 2) * 2.0 - 1.0
    for variant in (
        as_float,
        model,
        torch.from_numpy(model),
        torch.from_numpy(model).to(torch.bfloat16),
        torch.from_numpy(video),
    ):
        assert score_video(variant, text) == reference
    assert score_video(video.astype(np.float32), text, value_range=(0, 255)) == reference
    # a single frame (H, W, 3) or (3, H, W) is a one-frame video: motion reads as still
    frame = video[0]
    s = score_video(frame, "a large magenta triangle stays still")
    assert s["overall"] == 1.0
    assert score_video(model[:, 0], "a large magenta triangle")["overall"] == 1.0
    batch = torch.from_numpy(np.stack([model, model]))
    assert score_videos(batch, [text, text]) == reference


def test_bad_inputs():
    video = render_video("a red circle", resolution=32, num_frames=2, seed=0)
    with pytest.raises(ValueError, match="bad caption"):
        score_video(video, "a red blob")
    with pytest.raises(ValueError, match="shape"):
        score_video(video[..., :2], "a red circle")
    with pytest.raises(ValueError, match="shape"):
        score_video(video[0, 0], "a red circle")
    with pytest.raises(ValueError, match="captions"):
        score_videos([video, video], ["a red circle"])
    with pytest.raises(TypeError):
        score_videos([video], "a red circle")
    with pytest.raises(ValueError, match="color"):
        analyze_video(video, ["purple"])


def test_shapes_score_accumulates(data32):
    videos, captions = data32
    metric = ShapesScore()
    metric.update(videos[:30], captions[:30])
    metric.update(videos[30], captions[30])
    metric.update(list(videos[31:40]), captions[31:40])
    assert len(metric) == 40
    assert metric.compute() == score_videos(videos[:40], captions[:40])
    metric.reset()
    assert len(metric) == 0 and math.isnan(metric.compute()["overall"])


def test_analyze_video_reports_features():
    video = render_video("a large yellow square moves right", resolution=64, num_frames=16, seed=0)
    found = analyze_video(video)
    assert set(found) == set(COLORS)
    yellow = found["yellow"]
    assert yellow.present and yellow.presence == 1.0
    assert yellow.fill == pytest.approx(1.0, abs=0.03) and abs(yellow.asymmetry) < 0.02
    assert yellow.size_fraction == pytest.approx(0.28, abs=0.01)
    assert yellow.track.shape == (16, 2) and np.isfinite(yellow.track).all()
    assert np.all(np.diff(yellow.track[:, 0]) > 0)
    assert not found["red"].present and not found["white"].present


# -- image-to-video consistency and presence per frame (NOVA §4.2's zero-shot uses) ---------------------------


class _Oracle:
    """A 'pipeline' that returns the true clips (or black frames): the scores' upper and lower ends."""

    def __init__(self, videos, black=False):
        self.videos, self.black = videos, black

    def __call__(self, *args, num_keyframes, generator, progress, **kwargs):
        from types import SimpleNamespace

        n = len(args[-1]) if isinstance(args[-1], list) else 1
        frames = self.videos[:n].astype(np.float32) / 255.0
        return SimpleNamespace(frames=np.zeros_like(frames) if self.black else frames)


def test_image_to_video_consistency_is_one_on_true_clips_and_zero_on_black_ones():
    from vidtok.metrics.shapes_evaluation import image_to_video_consistency, render_clips

    videos, captions = render_clips("heldout", 6, 0, resolution=32, num_frames=9)
    videos = videos[[i for i, c in enumerate(captions) if " and " not in c]]  # one object per clip
    captions = [c for c in captions if " and " not in c]
    good = image_to_video_consistency(_Oracle(videos), videos, captions, keyframes=3, batch_size=len(videos))
    assert good["frames"] == len(videos) * 8 and good["color_kept"] == 1.0 and good["kept"] >= 0.9
    bad = image_to_video_consistency(_Oracle(videos, black=True), videos, captions, keyframes=3,
                                     batch_size=len(videos))  # fmt: skip
    assert bad["kept"] == bad["color_kept"] == 0.0
    with pytest.raises(ValueError, match="2 videos but 1 captions"):
        image_to_video_consistency(_Oracle(videos), videos[:2], captions[:1])


def test_frame_consistency_judges_frames_after_the_first_against_the_caption():
    from vidtok.metrics.shapes_evaluation import frame_consistency, render_clips

    videos, captions = render_clips("heldout", 6, 0, resolution=32, num_frames=9)
    single = [i for i, c in enumerate(captions) if " and " not in c]
    videos, captions = videos[single], [captions[i] for i in single]
    assert frame_consistency(videos, captions) == {"kept": 1.0, "color_kept": 1.0, "frames": len(videos) * 8}
    half = videos.copy()
    half[:, 5:] = 0  # the object gone from the last 4 of the 8 judged frames
    assert frame_consistency(half, captions) == {"kept": 0.5, "color_kept": 0.5, "frames": len(videos) * 8}
    # The shape is judged too: the same clip under another shape's caption keeps its color, not its shape.
    color, shape = captions[0].split()[2:4]
    other = next(s for s in ("circle", "square", "triangle") if s != shape)
    wrong = frame_consistency(videos[:1], [captions[0].replace(shape, other)])
    assert wrong["color_kept"] == 1.0 and wrong["kept"] <= 0.25, (color, shape, wrong)
    with pytest.raises(ValueError, match="2 videos but 1 captions"):
        frame_consistency(videos[:2], captions[:1])


def test_presence_per_frame_follows_the_object_frame_by_frame():
    from vidtok.metrics.shapes_evaluation import presence_per_frame
    from vidtok.shapes.render import render_video

    prompts = ["a large red circle moves right", "a small blue square stays still"]
    videos = np.stack([render_video(p, num_frames=9, resolution=32, seed=0) for p in prompts])
    videos[:, 5:] = 0  # the objects vanish from frame 5 on
    out = presence_per_frame(_Oracle(videos), prompts, keyframes=3, batch_size=2)
    assert out["color"][:5] == [1.0] * 5 and out["color"][5:] == [0.0] * 4
    assert out["first_half"] == 1.0 and out["second_half"] == 0.2  # frames 4..8: one of five has the object
    assert out["shape"][0] == 1.0
