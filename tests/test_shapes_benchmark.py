"""The Shapes benchmark: every category, resume from a cache equals a fresh run, side-by-side table, the protocol."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

import vidtok
from vidtok.evaluation.shapes_benchmark import (
    CATEGORIES,
    ShapesBenchmarkSettings,
    benchmark_shapes,
    format_table,
    two_object_prompts,
)
from vidtok.metrics.shapes_features import ShapesFeatureNet
from vidtok.pipelines.text_to_video import TextToVideo
from vidtok.shapes.grammar import is_heldout, parse_caption

# The smallest settings: a few videos per category, 2 keyframes, 2 decoder steps.
SMALL = ShapesBenchmarkSettings(
    keyframes=2,
    num_inference_steps=2,
    heldout_prompts=3,
    two_object_prompts=2,
    diversity_seeds=2,
    long_keyframes=3,
    long_prompts=("a large red circle bounces",),
    long_seeds=(0,),
    reconstruction_videos=2,
)


class Counting:
    """A pipeline wrapper that counts (or forbids) generation calls; same weights, same identity."""

    def __init__(self, pipe):
        self.pipe, self.calls, self.forbid = pipe, 0, False

    def __call__(self, *args, **kwargs):
        if self.forbid:
            raise AssertionError("a cached unit was recomputed")
        self.calls += 1
        return self.pipe(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.pipe, name)


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    # text_length 16 (the shipped model's): two-object captions have 13 words
    return TextToVideo.from_recipe(vidtok.RECIPES.create("dicode_tiny", tiny=True, video_lm={"text_length": 16}))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return ShapesFeatureNet(**ShapesFeatureNet.tiny_config()).eval()


def _run(models, net, **kwargs):
    return benchmark_shapes(models, seeds=(0,), settings=SMALL, feature_net=net, **kwargs)


@pytest.fixture(scope="module")
def fresh(pipe, net):
    return _run({"tiny": pipe}, net)


def test_every_category_is_reported(fresh):
    assert fresh["categories"] == list(CATEGORIES)
    result = fresh["models"]["tiny"]
    assert set(result) == set(CATEGORIES) == set(fresh["seconds"]["tiny"])
    assert {"color", "shape", "size", "motion", "overall", "joint"} <= set(result["heldout"])
    assert result["heldout"]["videos"] == 3
    assert {"first_present", "second_present", "both_present", "joint"} <= set(result["two_objects"])
    assert result["diversity"]["seeds"] == 2 and len(result["diversity"]["outcomes"]) == 2
    assert {"presence", "window_shape", "shape_consistency", "whole_video"} <= set(result["long_video"])
    assert {"psnr", "ssim", "score_shape"} <= set(result["reconstruction"])
    assert result["tokens"]["tokens_per_second"] > 0
    for category in ("heldout", "two_objects"):
        fd = result["shapes_fd"][category]
        assert fd["fd"] >= 0 and fd["floor"] >= 0
    json.dumps(fresh, allow_nan=False)  # a report file needs no custom encoder


def test_two_object_prompts_are_heldout_free():
    prompts = two_object_prompts(20)
    assert len(set(prompts)) == 20 and prompts == two_object_prompts(20)
    for text in prompts:
        objects = parse_caption(text)
        assert len(objects) == 2 and not any(is_heldout(o) for o in objects)
        assert all(o.size is not None and o.motion is not None for o in objects)


def test_resume_from_a_cache_equals_a_fresh_run(pipe, net, fresh, tmp_path):
    cache = tmp_path / "cache"
    counting = Counting(pipe)
    # an "interrupted" run: only some categories finished
    _run({"tiny": counting}, net, cache_dir=cache, categories=["heldout", "diversity"])
    first_calls = counting.calls
    resumed = _run({"tiny": counting}, net, cache_dir=cache)
    assert resumed["models"] == fresh["models"]
    assert resumed["settings"] == fresh["settings"]
    assert counting.calls > first_calls
    files = sorted(os.listdir(next(cache.iterdir())))
    assert [f for f in files if f.endswith(".json")] == sorted(f"{c}.json" for c in CATEGORIES)
    assert not [f for f in files if ".tmp" in f]  # atomic writes leave no temporary files
    # everything cached now: a third run generates nothing and returns the same
    counting.forbid = True
    again = _run({"tiny": counting}, net, cache_dir=cache)
    assert again["models"] == fresh["models"] and again["seconds"] == resumed["seconds"]


def test_changed_settings_or_damaged_files_are_recomputed(pipe, net, tmp_path):
    cache = tmp_path / "cache"
    counting = Counting(pipe)
    _run({"tiny": counting}, net, cache_dir=cache, categories=["heldout", "diversity"])
    folder = next(cache.iterdir())
    (folder / "heldout.json").write_text("{not json")
    counting.calls = 0
    changed = dataclasses.replace(SMALL, diversity_seeds=3)
    out = benchmark_shapes(
        {"tiny": counting}, seeds=(0,), settings=changed, feature_net=net, cache_dir=cache,
        categories=["heldout", "diversity"],
    )  # fmt: skip
    assert out["models"]["tiny"]["diversity"]["seeds"] == 3
    assert counting.calls == 1 + 3  # one held-out batch again, three diversity videos
    assert json.loads((folder / "heldout.json").read_text())["result"] == out["models"]["tiny"]["heldout"]


def test_shapes_fd_reuses_stored_videos_and_follows_the_feature_net(pipe, net, tmp_path):
    cache = tmp_path / "cache"
    counting = Counting(pipe)
    first = _run({"tiny": counting}, net, cache_dir=cache, categories=["heldout", "two_objects", "shapes_fd"])
    counting.forbid = True  # from here on nothing may be generated: the videos come from the cache
    torch.manual_seed(1)
    other = ShapesFeatureNet(**ShapesFeatureNet.tiny_config()).eval()
    again = _run({"tiny": counting}, other, cache_dir=cache, categories=["shapes_fd"])
    fd_first, fd_again = first["models"]["tiny"]["shapes_fd"], again["models"]["tiny"]["shapes_fd"]
    assert fd_again["heldout"]["fd"] != fd_first["heldout"]["fd"]  # recomputed with the other network
    assert _run({"tiny": counting}, net, categories=["shapes_fd"], cache_dir=cache)["models"] == {
        "tiny": {"shapes_fd": fd_first}
    }


def test_models_side_by_side_from_a_folder(pipe, net, tmp_path):
    pipe.save_pretrained(tmp_path / "saved")
    out = _run({"in memory": pipe, "from folder": str(tmp_path / "saved")}, net, categories=["tokens", "heldout"])
    assert out["models"]["in memory"] == out["models"]["from folder"]
    table = format_table(out)
    lines = table.splitlines()
    assert lines[0] == "| measure | in memory | from folder |"
    assert any(line.startswith("| held-out prompts: **joint** |") for line in lines)
    assert any(line.startswith("| tokens per second | 8 | 8 |") for line in lines)
    assert not any("two objects" in line for line in lines)  # a category not run has no rows


def test_bad_arguments_name_the_problem(pipe, net, tmp_path):
    with pytest.raises(ValueError, match="unknown categories"):
        benchmark_shapes({"tiny": pipe}, categories=["heldout", "fvd"])
    with pytest.raises(ValueError, match="non-empty mapping"):
        benchmark_shapes({})
    with pytest.raises(FileNotFoundError, match="no such folder"):
        benchmark_shapes({"x": str(tmp_path / "missing")})
    with pytest.raises(TypeError, match="must be a pipeline"):
        benchmark_shapes({"x": 3})
    with pytest.raises(ValueError, match="keyframes"):
        ShapesBenchmarkSettings(keyframes=0)
    with pytest.raises(ValueError, match="benchmark_shapes"):
        format_table({"nothing": 1})


@pytest.mark.slow
def test_shipped_default_reproduces_the_results_table():
    """The first row of the held-out table in docs/results.md (30 prompts x seeds 0, 1; about 3 min on 1 thread)."""
    out = benchmark_shapes({"default": "vidtok:default"}, categories=["heldout"])
    scores = {k: round(v, 2) for k, v in out["models"]["default"]["heldout"].items() if isinstance(v, float)}
    assert scores == {"color": 1.0, "shape": 0.97, "size": 1.0, "motion": 0.9, "overall": 0.97, "joint": 0.87}


def test_eval_shapes_pictures_show_what_was_scored(pipe, net, tmp_path):
    """`vidtok eval shapes --out R.json` draws each model's held-out videos (first seed) and the accuracy bars."""
    from PIL import Image

    from vidtok.cli import _shapes_pictures
    from vidtok.evaluation.shapes_benchmark import stored_videos

    cache = tmp_path / "cache"
    results = benchmark_shapes(
        {"tiny": pipe}, seeds=(0, 1), settings=SMALL, feature_net=net, cache_dir=cache, categories=["heldout"]
    )
    stored = stored_videos(cache, "tiny")
    assert stored is not None and len(stored["captions"]) == 6  # 3 prompts x 2 seeds, in generation order
    written = [str(p) for p in _shapes_pictures(results, str(cache), str(tmp_path / "report"))]
    assert written == [str(tmp_path / n) for n in ("report.png", "report.gif", "report_accuracy.png")]
    with Image.open(tmp_path / "report.gif") as gif:
        assert gif.n_frames == stored["videos"].shape[1]
    assert stored_videos(cache, "other") is None
