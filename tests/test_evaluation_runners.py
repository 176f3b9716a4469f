"""vidtok.evaluation: local-data readers, clip sampling, runners (cards, caches, resume) and ``vidtok eval``.

Speed: most runner tests use ``FakeExtractor`` / ``FakeCLIP`` — small deterministic stand-ins with the
extractor/scorer interface (``extract``/``score``, ``name``, ``weights_digest``, ``protocol``) — so they exercise
every runner code path (generation, clip sampling, batching, caching, resume, cards) in milliseconds. One CLI
test runs the real I3D path end to end: a random-init ``InceptionI3d`` state dict written to a file and loaded
by ``--i3d FILE`` (224², 9 frames, 2 + 2 clips). The model is the tiny random ``dicode_tiny`` pipeline.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import vidtok
from vidtok.cli import main
from vidtok.evaluation import (
    ClipSampler,
    EvalSet,
    msrvtt_test,
    read_captions,
    run_clipsim,
    run_fvd,
    run_msrvtt,
    run_recon,
    run_ucf101,
    subset,
    ucf101,
    ucf101_prompt,
    video_folder,
)
from vidtok.evaluation.runners import item_seed
from vidtok.io import save_video, tensor_to_frames
from vidtok.metrics.eval_card import EvalCard, SmallSampleWarning

FAST = {"num_inference_steps": 2}
# The tiny random model knows only Shapes words (MSR-VTT/UCF-101 test prompts are unknown words), and every set
# here is far below the sample minimum; the tests that are about these warnings catch them with pytest.warns.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*not in its text vocabulary"),
    pytest.mark.filterwarnings("ignore::vidtok.metrics.eval_card.SmallSampleWarning"),
    pytest.mark.filterwarnings("ignore:.*real video\\(s\\) shorter than"),
]


# ---------------------------------------------------------------------------------------------- helpers


def _video(path, frames=10, size=(24, 32), value=0):
    rng = np.random.default_rng(value)
    base = rng.integers(0, 256, size=(1, *size, 3))
    clip = np.clip(base + np.arange(frames)[:, None, None, None] * 5, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_video(clip, path, fps=8, lossless=True)


class FakeExtractor:
    """Features = per-channel mean and std of the uint8 frames (6-d); counts calls, can fail after k calls."""

    name = "fake-features"
    weights_digest = "0" * 64

    def __init__(self, fail_after=None):
        self.calls = 0
        self.fail_after = fail_after
        self.protocol = {"network": "per-channel mean/std", "resize": "none", "frames": []}

    def extract(self, videos, batch_size=8):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("interrupted")
        self.calls += 1
        x = np.asarray(videos, dtype=np.float64)
        assert x.ndim == 5 and x.shape[-1] == 3
        self.protocol["frames"] = sorted({*self.protocol["frames"], x.shape[1]})
        return np.concatenate([x.mean(axis=(1, 2, 3)), x.std(axis=(1, 2, 3))], axis=1)


class FakeCLIP:
    """A score that depends on the prompt and the frames, in [-1, 1]."""

    label = "fake-clip"
    weights_digest = "1" * 64
    image_size = (224, 224)

    def __init__(self):
        self.calls = 0

    def score(self, videos, prompts):
        self.calls += 1
        x = np.asarray(videos, dtype=np.float64)
        return np.array([np.tanh(v.mean() / 255 - len(p) / 100) for v, p in zip(x, prompts)])


@pytest.fixture(scope="module")
def pipe():
    from vidtok.pipelines.text_to_video import TextToVideo

    torch.manual_seed(0)
    return TextToVideo.from_recipe(vidtok.RECIPES.create("dicode_tiny", tiny=True))


@pytest.fixture()
def data(tmp_path):
    """A captions CSV with a video column and a folder of 4 real videos (one too short for a 9-frame clip)."""
    real = tmp_path / "real"
    for i in range(3):
        _video(real / f"clip{i}.mp4", frames=10, value=i)
    _video(real / "sub" / "short.mp4", frames=5, value=9)
    csv_path = tmp_path / "captions.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "caption"])
        for i, text in enumerate(["a red circle moves right", "a blue square moves up", "a green triangle"]):
            w.writerow([f"real/clip{i}.mp4", text])
    return {"csv": csv_path, "real": real}


def _card_json(card):
    d = card.to_dict()
    d.pop("created")
    d["details"].pop("elapsed_s", None)
    return d


# ---------------------------------------------------------------------------------------------- readers


def test_captions_csv_with_and_without_video_column(tmp_path, data):
    s = read_captions(data["csv"])
    assert [it.caption for it in s] == ["a red circle moves right", "a blue square moves up", "a green triangle"]
    assert s[0].path == str((data["real"] / "clip0.mp4").resolve()) and s[0].key == "row1"
    only = tmp_path / "only.csv"
    only.write_text("\ufeffCaption\nfirst prompt\n\n second prompt \n", encoding="utf-8")
    s = read_captions(only)
    assert [it.caption for it in s] == ["first prompt", "second prompt"] and s[1].path is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("video,prompt\na.mp4,x\n", r"header naming a 'caption' column"),
        ('caption,n\nok,1\n   \n"",2\n', None),
        ("video,caption\n,some caption\n", r"line 2: empty 'video'"),
        ("video,caption\nmissing.mp4,some caption\n", r"line 2: 'video' missing.mp4 does not exist"),
        ("caption,video\nfirst,\n", r"line 2: empty 'video'"),
        ("caption\n", r"a header but no caption rows"),
        ("", r"is empty"),
    ],
)
def test_captions_csv_errors_name_file_line_and_column(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    if match is None:  # a quoted empty cell is an empty caption
        with pytest.raises(ValueError, match=r"bad.csv line 4: empty 'caption'"):
            read_captions(path)
        return
    with pytest.raises((ValueError, FileNotFoundError), match=match) as err:
        read_captions(path)
    assert "bad.csv" in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_captions(tmp_path / "nope.csv")


def test_video_folder_is_sorted_recursive_and_reads_frame_folders(tmp_path, data):
    frames_dir = data["real"] / "frames_video"
    frames_dir.mkdir()
    for i in range(3):
        save_video(np.zeros((1, 8, 8, 3), np.uint8), frames_dir / f"f{i}.png")
    (data["real"] / ".hidden.mp4").write_bytes(b"")
    (data["real"] / "notes.txt").write_text("x")
    s = video_folder(data["real"])
    assert [it.key for it in s] == ["clip0.mp4", "clip1.mp4", "clip2.mp4", "frames_video", "sub/short.mp4"]
    assert video_folder(data["real"], recursive=False).items[-1].key == "clip2.mp4"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no videos in"):
        video_folder(empty)
    with pytest.raises(FileNotFoundError):
        video_folder(tmp_path / "absent")
    save_video(np.zeros((1, 8, 8, 3), np.uint8), empty / "x.png")
    with pytest.raises(ValueError, match="holds images directly"):
        video_folder(empty)


def _msrvtt(tmp_path, layout):
    root = tmp_path / "MSRVTT"
    ids = ["video0", "video7010", "video7011", "video9999"]  # video0 is a train video
    for i, vid in enumerate(ids):
        _video(root / "videos" / "all" / f"{vid}.mp4", frames=10, value=i)
    caps = {vid: [f"{vid} caption {k}" for k in range(20)] for vid in ids}
    if layout == "videodatainfo":
        doc = {
            "videos": [
                {"video_id": v, "split": "train" if v == "video0" else "test", "id": i} for i, v in enumerate(ids)
            ],
            "sentences": [{"video_id": v, "caption": c, "sen_id": k} for v in ids for k, c in enumerate(caps[v])],
        }
        path = root / "test_videodatainfo.json"
    else:
        doc = {"annotations": [{"image_id": v, "caption": c, "id": k} for v in ids for k, c in enumerate(caps[v])]}
        path = root / "annotation" / "MSR_VTT.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return tmp_path


@pytest.mark.parametrize("layout", ["videodatainfo", "msr_vtt_json"])
def test_msrvtt_test_split_one_seeded_caption_per_video(tmp_path, layout):
    parent = _msrvtt(tmp_path, layout)
    s = msrvtt_test(parent)  # the folder holding MSRVTT/ works, as MSRVTT/ itself does
    assert [it.key for it in s] == ["video7010", "video7011", "video9999"]
    assert s.split == "test" and s.info["caption_seed"] == 0 and s.info["captions_per_video"] == 1
    assert all(it.caption.startswith(it.key + " caption ") for it in s)
    again = msrvtt_test(parent / "MSRVTT")
    assert [it.caption for it in again] == [it.caption for it in s]
    draws = {tuple(it.caption for it in msrvtt_test(parent, caption_seed=k)) for k in range(6)}
    assert len(draws) > 1  # the seed changes the draw
    # A video's caption depends only on (seed, video id), not on which other videos are there.
    (parent / "MSRVTT" / "videos" / "all" / "video7011.mp4").unlink()
    skipped = msrvtt_test(parent, missing="skip")
    assert [it.caption for it in skipped] == [s[0].caption, s[2].caption] and skipped.info["missing_videos"] == 1
    with pytest.raises(FileNotFoundError, match=r"1 of 3 MSR-VTT test videos .* video7011"):
        msrvtt_test(parent)


def test_msrvtt_errors_name_what_is_missing(tmp_path):
    (tmp_path / "MSRVTT").mkdir()
    with pytest.raises(FileNotFoundError, match="no MSR-VTT annotation under .*annotation/MSR_VTT.json"):
        msrvtt_test(tmp_path)
    (tmp_path / "MSRVTT" / "MSR_VTT.json").write_text(json.dumps({"foo": []}))
    with pytest.raises(ValueError, match=r"expected 'sentences' .* or 'annotations'"):
        msrvtt_test(tmp_path)


def _ucf(tmp_path):
    root = tmp_path / "data"
    names = {
        "ApplyEyeMakeup": ["v_ApplyEyeMakeup_g08_c01.avi", "v_ApplyEyeMakeup_g01_c01.avi"],
        "YoYo": ["v_YoYo_g08_c01.avi", "v_YoYo_g01_c01.avi"],
    }
    for i, (cls, files) in enumerate(names.items()):
        for j, f in enumerate(files):
            _video(root / "UCF-101" / cls / f, frames=10, value=10 * i + j)
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\nYoYo/v_YoYo_g08_c01.avi 101\r\n"
    )
    (lists / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nYoYo/v_YoYo_g01_c01.avi\n")
    return root


def test_ucf101_splits_and_class_prompts(tmp_path):
    root = _ucf(tmp_path)
    train = ucf101(root)
    assert train.split == "train01" and [it.key for it in train] == [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
        "YoYo/v_YoYo_g08_c01.avi",
    ]
    assert [it.caption for it in train] == ["apply eye makeup", "yo yo"] and train[1].label == "YoYo"
    assert ucf101(root / "UCF-101", split="test").split == "test01"  # UCF-101 itself, lists beside it
    assert len(ucf101(root, split="all")) == 4
    assert ucf101(root, prompt_template="a person {}")[0].caption == "a person apply eye makeup"
    assert ucf101_prompt("HandstandPushups") == "handstand pushups" and ucf101_prompt("PlayingDaf") == "playing daf"
    with pytest.raises(FileNotFoundError, match=r"trainlist02.txt not found"):
        ucf101(root, fold=2)
    with pytest.raises(ValueError, match="split must be"):
        ucf101(root, split="val")


def test_clip_sampler_frames_stride_resize_and_short_videos(tmp_path):
    path = _video(tmp_path / "wide.mp4", frames=12, size=(16, 32))
    squash = ClipSampler(4, 3, (8, 8), "squash").load(path)
    crop = ClipSampler(4, 3, 8, "center_crop").load(path)
    assert squash.shape == crop.shape == (4, 8, 8, 3) and squash.dtype == np.uint8
    assert not np.array_equal(squash, crop)  # non-square input: the modes differ
    assert ClipSampler(5, 3, 8).load(path) is None  # 13 frames needed, 12 there
    assert ClipSampler(16, 2, (64, 64)).protocol()["clip_span"] == 31
    with pytest.raises(ValueError, match="resize must be one of"):
        ClipSampler(resize="stretch")


def test_subset_is_seeded_and_keeps_order(data):
    s = video_folder(data["real"])
    a, b = subset(s, 2, seed=3), subset(s, 2, seed=3)
    assert a.items == b.items and a.info == {"subset_of": 4, "subset_seed": 3}
    assert [s.items.index(it) for it in a] == sorted(s.items.index(it) for it in a)
    assert subset(s, None, 0) is s and subset(s, 10, 0) is s


# ---------------------------------------------------------------------------------------------- runners


def test_run_fvd_card_protocol_and_value(pipe, data, tmp_path):
    from vidtok.metrics.frechet import FeatureStats, frechet_distance_from_stats

    ex = FakeExtractor()
    out = tmp_path / "fvd.json"
    with pytest.warns(UserWarning) as caught:
        card = run_fvd(
            pipe, data["csv"], data["real"], out, i3d=ex, frames=9, batch_size=2, generate_kwargs=FAST, progress=False
        )
    kinds = {(type(w.message), str(w.message).split(":")[0]) for w in caught}
    assert (SmallSampleWarning, "fvd on 3 samples") in kinds
    assert any("1 real video(s) shorter than the 9 frames" in str(w.message) for w in caught)
    assert EvalCard.load(out).to_dict() == card.to_dict()
    p = card.protocol
    assert p["feature_network"] == "fake-features" and p["weights_digest"] == "0" * 64
    assert "frames" not in p["feature_protocol"]  # recorded as num_frames: a cached resume sees no frames
    assert (p["num_real"], p["num_fake"], p["num_frames"], p["frame_stride"]) == (3, 3, 9, 1)
    assert p["resolution"] == [16, 16] and p["resize"] == "squash" and p["covariance"] == "biased (divide by N)"
    assert p["real_source"] == "folder" and p["captions_source"] == "captions" and "uint8" in p["value_range"]
    assert p["frames_taken"] == 9 and "generation" not in p  # how the model generated is a detail, not protocol
    assert card.details["generation"] == {"num_keyframes": 3, "num_inference_steps": 2}
    assert "SeedSequence" in p["seed_rule"] and card.seed == 0 and card.model == "<TextToVideo>"
    assert card.details["skipped_real"] == ["sub/short.mp4"]
    # The value is the Fréchet distance between the real clips' features and those of the videos generated with
    # the documented per-item seeds.
    sampler = ClipSampler(9, 1, (16, 16))
    real = np.stack([sampler.load(data["real"] / f"clip{i}.mp4") for i in range(3)])
    fake = []
    for i, item in enumerate(read_captions(data["csv"]), start=1):
        g = torch.Generator().manual_seed(item_seed(0, f"row{i}", 0))
        video = pipe(item.caption, num_keyframes=3, generator=g, output_type="pt", progress=False, **FAST).frames
        fake.append(tensor_to_frames(video[0, :, :9]))
    stats = [FeatureStats().update(FakeExtractor().extract(np.stack(x))) for x in (real, fake)]
    assert card.value == pytest.approx(frechet_distance_from_stats(*stats), rel=1e-9) and card.value > 0


def test_run_fvd_resume_after_interruption_gives_the_uninterrupted_card(pipe, data, tmp_path):
    kwargs = {"frames": 9, "batch_size": 1, "generate_kwargs": FAST, "progress": False}
    full = run_fvd(pipe, data["csv"], data["real"], tmp_path / "full.json", i3d=FakeExtractor(), **kwargs)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):  # stopped after 2 of the 3 generated videos
        run_fvd(pipe, data["csv"], data["real"], None, i3d=FakeExtractor(fail_after=2), cache_dir=cache, **kwargs)
    resumed_ex = FakeExtractor()
    resumed = run_fvd(
        pipe, data["csv"], data["real"], tmp_path / "resumed.json", i3d=resumed_ex, cache_dir=cache, **kwargs
    )
    assert resumed_ex.calls == 1 + 3  # the third generated video, then the 3 long-enough real ones (1 per batch)
    assert resumed.value == full.value
    a, b = _card_json(full), _card_json(resumed)
    assert a == b and len(a["details"]["model_digest"]) == 64
    # A third run computes nothing and agrees; the real features are reused by any model.
    again_ex = FakeExtractor()
    again = run_fvd(pipe, data["csv"], data["real"], None, i3d=again_ex, cache_dir=cache, **kwargs)
    assert again_ex.calls == 0 and again.value == full.value


def test_run_fvd_captions_without_real_and_cycling(pipe, data, tmp_path):
    kw = {"frames": 9, "generate_kwargs": FAST, "progress": False}
    card = run_fvd(pipe, data["csv"], None, None, i3d=FakeExtractor(), num_videos=5, **kw)  # the CSV's video column
    assert card.protocol["num_fake"] == 5 and card.protocol["num_real"] == 3 and card.protocol["captions_cycled"]
    with pytest.raises(ValueError, match="no 'video' column"):
        run_fvd(pipe, ["a prompt"], None, None, i3d=FakeExtractor(), **kw)
    with pytest.raises(FileNotFoundError, match="VIDTOK_I3D_PATH"):
        run_fvd(pipe, data["csv"], data["real"], None, **kw)


def test_run_clipsim_card_and_resume(pipe, data, tmp_path):
    kw = {"frames": 5, "batch_size": 2, "generate_kwargs": FAST, "progress": False}
    with pytest.warns(SmallSampleWarning):
        card = run_clipsim(pipe, data["csv"], tmp_path / "c.json", clip=FakeCLIP(), cache_dir=tmp_path / "cache", **kw)
    p = card.protocol
    assert card.metric == "clipsim" and -1 <= card.value <= 1 and p["num_fake"] == 3 and p["num_frames"] == 5
    assert p["clip_model"] == "fake-clip" and "not x100" in p["clipsim_definition"] and "resize" not in p
    clip = FakeCLIP()
    again = run_clipsim(pipe, data["csv"], None, clip=clip, cache_dir=tmp_path / "cache", **kw)
    assert clip.calls == 0 and again.value == card.value
    with pytest.raises(FileNotFoundError, match="clip_weights="):
        run_clipsim(pipe, data["csv"], None, **kw)


def test_run_msrvtt_one_pass_two_cards(pipe, tmp_path):
    root = _msrvtt(tmp_path, "videodatainfo")
    out = tmp_path / "msrvtt.json"
    ex, clip = FakeExtractor(), FakeCLIP()
    card = run_msrvtt(pipe, root, out, i3d=ex, clip=clip, frames=9, batch_size=4, generate_kwargs=FAST, progress=False)
    assert card.metric == "msrvtt" and set(card.value) == {"fvd", "clipsim"}
    fvd_card, clip_card = EvalCard.load(tmp_path / "msrvtt.fvd.json"), EvalCard.load(tmp_path / "msrvtt.clipsim.json")
    assert fvd_card.value == card.value["fvd"] and clip_card.value == card.value["clipsim"]
    assert fvd_card.protocol["real_source"] == "msrvtt" and fvd_card.protocol["real_split"] == "test"
    assert fvd_card.protocol["captions_caption_seed"] == 0 and fvd_card.protocol["num_real"] == 3
    assert ex.calls == 2 and clip.calls == 1  # one batch of generated videos for both metrics, one of real clips
    only = run_msrvtt(
        pipe, root, None, metrics="clipsim", clip=FakeCLIP(), frames=9, generate_kwargs=FAST, progress=False
    )
    assert only.metric == "clipsim" and only.value == card.value["clipsim"]


def test_run_ucf101_uses_class_prompts(pipe, tmp_path):
    root = _ucf(tmp_path)
    card = run_ucf101(pipe, root, None, i3d=FakeExtractor(), frames=9, generate_kwargs=FAST, progress=False)
    p = card.protocol
    assert p["real_split"] == "train01" and p["real_source"] == "ucf101" and p["num_real"] == p["num_fake"] == 2
    assert p["real_prompt_template"] == "{}" and p["benchmark"].startswith("UCF-101")


def test_run_recon_tokenizer_and_folder_of_reconstructions(tmp_path, data):
    from vidtok.tokenizers.deep_tokens import DeepTokenizer

    torch.manual_seed(0)
    tok = DeepTokenizer(**DeepTokenizer.tiny_config())
    f = tok.temporal_compression
    card = run_recon(
        tok, data["real"], tmp_path / "r.json", frames=f + 1, resolution=16, decode_kwargs=FAST, progress=False
    )
    v = card.value
    assert card.metric == "reconstruction" and v["psnr"] > 0 and 0 < v["ssim"] <= 1 and v["ms_ssim"] is None
    assert v["lpips"] is None and "lpips" in card.details["notes"] and v["tokens_per_pixel"] > 0
    assert card.protocol["num_videos"] == 4 and card.protocol["resize"] == "center_crop"
    with pytest.raises(ValueError, match=f"does not fit keyframe stride {f}"):
        run_recon(tok, data["real"], None, frames=f + 2, progress=False)
    # A folder of reconstructions: matched by relative path, any extension.
    recon = tmp_path / "recon"
    for i in range(3):
        _video(recon / f"clip{i}.mkv", frames=10, value=i + 100)
    _video(recon / "sub" / "short.mp4", frames=5, value=9)
    card = run_recon(str(recon), data["real"], None, frames=6, progress=False)
    assert card.protocol["reconstructions"] == "folder of reconstructions" and card.protocol["num_videos"] == 3
    assert card.details["num_skipped"] == 1 and "tokens_per_pixel" not in card.value
    (recon / "clip2.mkv").unlink()
    with pytest.raises(FileNotFoundError, match="no reconstruction in .* clip2.mp4"):
        run_recon(str(recon), data["real"], None, frames=6, progress=False)


# ---------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def pipe_dir(tmp_path_factory, pipe):
    path = tmp_path_factory.mktemp("t2v") / "pipe"
    pipe.save_pretrained(path)
    return path


def test_cli_eval_fvd_end_to_end_with_an_i3d_file(pipe_dir, data, tmp_path, capsys, monkeypatch):
    from vidtok.metrics.i3d import InceptionI3d

    torch.manual_seed(0)
    weights = tmp_path / "i3d_pretrained_400.pt"
    torch.save(InceptionI3d().state_dict(), weights)
    monkeypatch.delenv("VIDTOK_I3D_PATH", raising=False)
    out = tmp_path / "report.json"
    args = ["eval", "fvd", "--model", str(pipe_dir), "--data", str(data["csv"])]  # real: the CSV's video column
    args += ["--out", str(out), "--i3d", str(weights), "--frames", "9", "--num-videos", "2", "--steps", "2"]
    args += ["--quiet", "--cache", str(tmp_path / "cache")]
    assert main(args) == 0
    line = capsys.readouterr().out
    assert line.startswith("fvd = ") and "i3d-kinetics400, 2 real / 2 generated videos" in line
    card = EvalCard.load(out)
    assert card.protocol["feature_protocol"]["weights"] == "i3d_pretrained_400.pt (state_dict)"
    assert card.model == str(pipe_dir) and card.protocol["num_frames"] == 9
    # Resumed from the cache: the same number.
    assert main([*args[:-1], str(tmp_path / "cache")]) == 0
    assert EvalCard.load(out).value == card.value


def test_cli_eval_missing_weights_are_one_line_errors(pipe_dir, data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VIDTOK_I3D_PATH", raising=False)
    out = str(tmp_path / "r.json")
    code = main(["eval", "fvd", "--model", str(pipe_dir), "--data", str(data["csv"]), "--out", out])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("vidtok eval: error: no I3D weights") and "i3d_pretrained_400.pt" in err
    assert len(err.splitlines()) == 1
    code = main(["eval", "fvd", "--data", str(data["csv"]), "--out", out, "--i3d", str(tmp_path / "i3d.pt")])
    assert code == 2 and "i3d.pt' does not exist" in capsys.readouterr().err
    code = main(["eval", "clipsim", "--data", str(data["csv"]), "--out", out])
    err = capsys.readouterr().err
    assert code == 2 and "--clip-weights FILE" in err
    code = main(["eval", "clipsim", "--data", str(data["csv"]), "--out", out, "--clip-weights", "/no/clip.bin"])
    assert code == 2 and "/no/clip.bin" in capsys.readouterr().err
    assert main(["eval", "fvd", "--data", str(data["csv"]), "--out", str(tmp_path / "r.txt")]) == 2
    assert "extension must be one of .json" in capsys.readouterr().err


def test_cli_eval_compare_refuses_mismatched_protocols(tmp_path, capsys):
    a = EvalCard("fvd", 310.0, {"feature_network": "i3d", "num_fake": 2048, "resize": "squash"}).save(
        tmp_path / "a.json"
    )
    b = EvalCard("fvd", 295.0, {"feature_network": "i3d", "num_fake": 2048, "resize": "squash"}).save(
        tmp_path / "b.json"
    )
    c = EvalCard("fvd", 290.0, {"feature_network": "i3d", "num_fake": 256, "resize": "squash"}).save(
        tmp_path / "c.json"
    )
    assert main(["eval", "compare", a, b]) == 0
    out = capsys.readouterr().out
    assert "B - A = -15" in out and "same protocol" in out
    assert main(["eval", "compare", a, c]) == 2
    err = capsys.readouterr().err
    assert "do not compare (num_fake: 2048 vs 256)" in err and "allow_protocol_mismatch" in err
    assert main(["eval", "compare", a, c, "--allow-protocol-mismatch"]) == 0
    out = capsys.readouterr().out
    assert "B - A = -20" in out and "num_fake: A = 2048, B = 256" in out
    d = EvalCard("msrvtt", {"fvd": 300.0, "clipsim": 0.29}, {"x": 1}).save(tmp_path / "d.json")
    e = EvalCard("msrvtt", {"fvd": 280.0, "clipsim": 0.3}, {"x": 1}).save(tmp_path / "e.json")
    assert main(["eval", "compare", d, e]) == 0
    out = capsys.readouterr().out
    assert "msrvtt.fvd: A = 300, B = 280, B - A = -20" in out
    assert main(["eval", "compare", a, str(tmp_path / "none.json")]) == 2


def test_cli_eval_msrvtt_and_recon_run_on_tiny_fakes(pipe_dir, tmp_path, capsys, monkeypatch):
    from vidtok.evaluation import runners

    root = _msrvtt(tmp_path, "msr_vtt_json")
    monkeypatch.setattr(runners, "build_i3d", lambda i3d=None, **kw: FakeExtractor())
    monkeypatch.setattr(runners, "build_clip", lambda clip=None, **kw: FakeCLIP())
    out = tmp_path / "m.json"
    args = ["eval", "msrvtt", "--model", str(pipe_dir), "--data", str(root), "--out", str(out), "--frames", "9"]
    assert main([*args, "--steps", "2", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("fvd = ") and "clipsim = " in text and "m.fvd.json" in text
    card = EvalCard.load(out)
    assert card.protocol["captions_test_split_from"] == "official id range video7010-video9999"
    real = tmp_path / "MSRVTT" / "videos" / "all"
    out = tmp_path / "recon.json"
    args = ["eval", "recon", "--real", str(real), "--out", str(out), "--frames", "9", "--num-videos", "2"]
    assert main([*args, "--steps", "2", "--resolution", "32", "--quiet"]) == 0
    assert "psnr = " in capsys.readouterr().out and EvalCard.load(out).model == "vidtok:deep_tokens_shapes"


def test_eval_set_protocol_prefixes():
    s = EvalSet((), "msrvtt", "/x", "test", {"caption_seed": 3})
    assert s.protocol("real") == {"real_source": "msrvtt", "real_split": "test", "real_caption_seed": 3}


def test_cli_eval_shapes_runs_the_benchmark(pipe_dir, tmp_path, capsys):
    out = tmp_path / "shapes.json"
    args = ["eval", "shapes", "--model", str(pipe_dir), "--model", "vidtok:default", "--category", "tokens"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"| measure | {pipe_dir} | vidtok:default |") and f"wrote {out}" in text
    assert set(json.loads(out.read_text())["models"]) == {str(pipe_dir), "vidtok:default"}
    assert main([*args, "--model", str(pipe_dir)]) == 2
    assert "--model given twice" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["vidtok.evaluation.datasets", "vidtok.evaluation.runners"])
def test_docstring_examples_run(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
