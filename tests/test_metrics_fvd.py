"""I3D (architecture, loaders, preprocessing), VideoMAE features and FVD, offline with random weights.

A random-init I3D makes FVD values meaningless but exercises every real code path; the reference value of
the original TF example runs only where real weights are present ($VIDTOK_I3D_PATH).
"""

from __future__ import annotations

import hashlib
import os
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from vidtok.metrics.frechet import FeatureStats, SmallSampleWarning, frechet_distance_from_stats
from vidtok.metrics.fvd import VideoFeatureExtractor, feature_stats, file_sha256, fvd
from vidtok.metrics.i3d import (
    I3D_ENV,
    InceptionI3d,
    TorchScriptI3D,
    VideoMAEFeatures,
    load_i3d,
    preprocess_i3d,
    resolve_i3d_path,
)

FRAMES = 9  # the fewest I3D takes


def _videos(seed: int, n: int, frames: int = FRAMES, size: tuple[int, int] = (16, 16)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, frames, *size, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def i3d() -> InceptionI3d:
    """Random I3D with He-initialised convolutions: PyTorch's default init shrinks activations layer by layer,
    leaving features that differ between clips by ~1e-7 and FVDs of ~1e-13; these keep them apart."""
    torch.manual_seed(0)
    net = InceptionI3d()
    for module in net.modules():
        if isinstance(module, nn.Conv3d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return net


@pytest.fixture(scope="module")
def sets(i3d):
    """Two sets of 2 tiny clips, their extractor, and their statistics (4 I3D forwards, once per module)."""
    extractor = VideoFeatureExtractor.i3d(i3d)
    a, b = _videos(1, 2), _videos(2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        stats_a = feature_stats(a, extractor, batch_size=2, stats=FeatureStats(keep_features=True))
        stats_b = feature_stats(b, extractor, batch_size=2, stats=FeatureStats(keep_features=True))
    return extractor, a, b, stats_a, stats_b


# --- architecture ---------------------------------------------------------------------------------------------


def test_i3d_has_the_piergiaj_port_layout(i3d):
    keys = i3d.state_dict().keys()
    assert sum(p.numel() for p in i3d.parameters()) == 12_697_264
    for key in (
        "Conv3d_1a_7x7.conv3d.weight",
        "Conv3d_2c_3x3.bn.running_var",
        "Mixed_3b.b1b.conv3d.weight",
        "Mixed_5c.b3b.bn.bias",
        "logits.conv3d.weight",
        "logits.conv3d.bias",
    ):
        assert key in keys
    assert i3d.Conv3d_1a_7x7.bn.eps == 1e-3
    assert not i3d.training


def test_i3d_output_shape_and_determinism(sets):
    extractor, a, _, stats_a, _ = sets
    first = stats_a.features()
    assert first.shape == (2, 400) and first.dtype == np.float64
    again = extractor.extract(a[:1], batch_size=1)  # alone in its batch: the same features
    np.testing.assert_allclose(again, first[:1], rtol=1e-5, atol=1e-5)


def test_i3d_refuses_short_or_wrong_size_clips(i3d):
    with pytest.raises(ValueError, match="at least 9 frames.*8 frames"):
        preprocess_i3d(_videos(0, 1, frames=8))
    with pytest.raises(ValueError, match="clip of 8 frames"):
        i3d(torch.zeros(1, 3, 8, 224, 224))
    with pytest.raises(ValueError, match="224x224.*got 64x64"):
        i3d(torch.zeros(1, 3, 9, 64, 64))


# --- preprocessing --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("resize", ["squash", "center_crop"])
def test_preprocess_maps_uint8_and_model_layout_to_224(resize):
    g = torch.Generator().manual_seed(0)
    uint8 = torch.randint(0, 256, (2, FRAMES, 20, 30, 3), generator=g, dtype=torch.uint8)  # (B, T, H, W, C)
    model_layout = uint8.permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # (B, C, T, H, W) in [-1, 1]
    out_u8, out_f = preprocess_i3d(uint8, resize), preprocess_i3d(model_layout.numpy(), resize)
    for out in (out_u8, out_f):
        assert out.shape == (2, 3, FRAMES, 224, 224) and out.dtype == torch.float32
        assert out.min() >= -1 and out.max() <= 1
    torch.testing.assert_close(out_u8, out_f)
    gray = preprocess_i3d(model_layout[:, :1], resize)  # one channel is repeated to RGB
    assert gray.shape == (2, 3, FRAMES, 224, 224)


def test_squash_and_center_crop_differ_on_non_square_frames():
    x = torch.ones(1, 3, FRAMES, 32, 64)
    x[..., :8] = -1  # the left eighth dark
    squashed, cropped = preprocess_i3d(x, "squash"), preprocess_i3d(x, "center_crop")
    assert squashed[..., 0].max() == -1  # squash keeps the whole width
    assert cropped[..., 0].min() == 1  # the centre crop (columns 16-47) drops it
    square = _videos(3, 1, size=(32, 32))
    torch.testing.assert_close(preprocess_i3d(square, "squash"), preprocess_i3d(square, "center_crop"))


def test_preprocess_clamps_overshoot():
    x = _videos(0, 1)
    torch.testing.assert_close(preprocess_i3d(x * 1.2), preprocess_i3d((x * 1.2).clamp(-1, 1)))


def test_preprocess_refuses_bad_input():
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\].*255"):
        preprocess_i3d(torch.full((1, 3, FRAMES, 8, 8), 255.0))
    with pytest.raises(ValueError, match="must be \\(B, C, T, H, W\\)"):
        preprocess_i3d(torch.zeros(3, FRAMES, 8, 8))
    with pytest.raises(ValueError, match="resize must be one of"):
        preprocess_i3d(_videos(0, 1), "crop")
    with pytest.raises(TypeError, match="uint8 or floating point"):
        preprocess_i3d(torch.zeros(1, 3, FRAMES, 8, 8, dtype=torch.int64))


# --- loaders --------------------------------------------------------------------------------------------------


def test_state_dict_round_trip(tmp_path, i3d, sets):
    _, a, _, stats_a, _ = sets
    state = {k: v for k, v in i3d.state_dict().items() if not k.endswith("num_batches_tracked")}  # old files lack it
    path = tmp_path / "i3d_pretrained_400.pt"
    torch.save(state, path)
    loaded = load_i3d(path)
    assert isinstance(loaded, InceptionI3d) and loaded.weights_format == "state_dict" and not loaded.training
    for key, value in state.items():
        assert torch.equal(loaded.state_dict()[key], value), key
    extractor = VideoFeatureExtractor.i3d(path)
    assert extractor.weights_digest == hashlib.sha256(path.read_bytes()).hexdigest() == file_sha256(path)
    np.testing.assert_allclose(extractor.extract(a, batch_size=2), stats_a.features(), rtol=1e-6, atol=1e-6)


def test_state_dict_key_errors_are_listed(tmp_path, i3d):
    state = dict(i3d.state_dict())
    del state["Mixed_4c.b2b.conv3d.weight"]
    state["head.fc.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"bad.pt.*missing keys \[Mixed_4c.b2b.conv3d.weight\].*\[head.fc.weight\]"):
        load_i3d(path)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="list.pt.*neither a TorchScript file nor a state dict"):
        load_i3d(tmp_path / "list.pt")
    (tmp_path / "text.pt").write_text("not weights")
    with pytest.raises(ValueError, match="text.pt.*neither a TorchScript file nor a readable state dict"):
        load_i3d(tmp_path / "text.pt")
    state = dict(i3d.state_dict())
    state["logits.conv3d.weight"] = torch.zeros(400, 1024, 1, 1, 2)
    torch.save(state, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match="(?s)shape.pt.*does not fit InceptionI3d.*logits.conv3d.weight"):
        load_i3d(tmp_path / "shape.pt")


class _TinyDetector(nn.Module):
    """Stands in for StyleGAN-V's TorchScript I3D: same call signature, cheap, and flags wrong keywords."""

    def __init__(self, proj: nn.Module | None = None) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 400) if proj is None else proj

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True, return_features: bool = False):
        feats = self.proj(x.mean(dim=(2, 3, 4)))
        if rescale or resize:
            feats = feats + 1000.0  # our preprocessing already did both
        return feats if return_features else feats.softmax(dim=-1)


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # TorchScript is deprecated; the files exist
@pytest.mark.parametrize("compile_with", ["script", "trace"])
def test_torchscript_round_trip(tmp_path, compile_with):
    torch.manual_seed(0)
    eager = _TinyDetector().eval()
    x = preprocess_i3d(_videos(4, 2))
    if compile_with == "script":
        compiled = torch.jit.script(eager)
    else:  # a traced body (tracing takes no bool arguments) inside a scripted module with the keywords
        compiled = torch.jit.script(_TinyDetector(torch.jit.trace(eager.proj, torch.zeros(2, 3))))
    path = tmp_path / "i3d_torchscript.pt"
    compiled.save(str(path))
    loaded = load_i3d(path)
    assert isinstance(loaded, TorchScriptI3D) and loaded.weights_format == "torchscript"
    with torch.no_grad():
        expected = eager(x, rescale=False, resize=False, return_features=True)
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)
    extractor = VideoFeatureExtractor.i3d(path, resize="center_crop")
    assert extractor.weights_digest == file_sha256(path)
    feats = extractor.extract(_videos(4, 2), batch_size=1)
    assert feats.shape == (2, 400) and extractor.dim == 400
    assert extractor.protocol["weights"] == "i3d_torchscript.pt (torchscript)"
    assert extractor.protocol["resize"] == "center_crop" and extractor.protocol["frames"] == [FRAMES]


def test_path_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(I3D_ENV, raising=False)
    with pytest.raises(FileNotFoundError) as info:
        resolve_i3d_path()
    message = str(info.value)
    for needle in (I3D_ENV, "i3d_torchscript.pt", "i3d_pretrained_400.pt", "stylegan-v", "VideoGPT", "never downloads"):
        assert needle in message
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_i3d(tmp_path / "absent.pt")
    monkeypatch.setenv(I3D_ENV, str(tmp_path / "gone.pt"))
    with pytest.raises(FileNotFoundError, match=f"{I3D_ENV}.*gone.pt"):
        resolve_i3d_path()
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    monkeypatch.setenv(I3D_ENV, str(weights))
    assert resolve_i3d_path() == str(weights)
    assert resolve_i3d_path(weights) == str(weights)  # the argument wins


# --- FVD ------------------------------------------------------------------------------------------------------


def test_fvd_of_a_set_with_itself_is_zero(sets):
    extractor, a, _, stats_a, _ = sets
    with pytest.warns(SmallSampleWarning, match="2 and 2 samples"):
        value = fvd(a, stats_a, extractor, batch_size=2)  # videos on one side, cached statistics on the other
    assert value == pytest.approx(0.0, abs=1e-6)


def test_fvd_differs_between_sets_and_ignores_order(sets):
    extractor, _, b, stats_a, stats_b = sets
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        base = fvd(stats_a, stats_b, extractor)
        reordered = fvd(iter([b[1:], b[:1]]), stats_a, extractor, batch_size=1)  # an iterable of batches, swapped
        unbiased = fvd(stats_a, stats_b, extractor, unbiased=True)
    assert base > 0 and np.isfinite(base)
    assert reordered == pytest.approx(base, rel=1e-5)
    assert unbiased > base  # covariances x N / (N - 1) = 2 for 2 clips: the trace term doubles
    assert base == frechet_distance_from_stats(stats_a, stats_b)
    assert extractor.protocol["frames"] == [FRAMES] and extractor.protocol["weights"] == "in-memory"


def test_fvd_argument_errors(sets):
    extractor, *_ = sets
    with pytest.raises(TypeError, match="real must be a batch of videos"):
        fvd(3, FeatureStats(), extractor)
    with pytest.raises(ValueError, match="real holds no videos"):
        fvd([], FeatureStats(), extractor)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        extractor.extract(_videos(0, 1), batch_size=0)
    with pytest.raises(ValueError, match="resize must be one of"):
        VideoFeatureExtractor.i3d(nn.Identity(), resize="crop")


# --- VideoMAE -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def videomae_folder(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    config = transformers.VideoMAEConfig(
        image_size=32,
        patch_size=8,
        num_frames=4,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("videomae")
    transformers.VideoMAEModel(config).save_pretrained(folder)
    return folder


def test_videomae_features(videomae_folder):
    extractor = VideoFeatureExtractor.videomae(videomae_folder)
    videos = _videos(5, 3, frames=4, size=(40, 48))
    feats = extractor.extract(videos, batch_size=2)
    assert feats.shape == (3, 32) and feats.dtype == np.float64
    np.testing.assert_allclose(extractor.extract(videos[:1]), feats[:1], rtol=1e-5, atol=1e-6)
    assert extractor.weights_digest == file_sha256(os.path.join(videomae_folder, "model.safetensors"))
    assert extractor.protocol["size"] == [32, 32] and extractor.protocol["frames"] == [4]
    with pytest.raises(ValueError, match="clips of 4 frames, got 6"):
        extractor.extract(_videos(5, 1, frames=6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        assert fvd(videos, videos, extractor) == pytest.approx(0.0, abs=1e-8)


def test_videomae_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-model"):
        VideoMAEFeatures(tmp_path / "no-model")


# --- real weights ---------------------------------------------------------------------------------------------

_REAL = os.environ.get(I3D_ENV, "")


@pytest.mark.slow
@pytest.mark.skipif(
    not (_REAL and os.path.isfile(_REAL)), reason=f"needs real I3D weights: set ${I3D_ENV} to a local file"
)
def test_reference_value_zeros_vs_ones():
    """The original TF example (google-research frechet_video_distance/example.py): 16 black vs 16 white videos
    of 15 frames at 64x64 give FVD ≈ 131 with the tf.hub I3D, of which StyleGAN-V's TorchScript is a port."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    extractor = VideoFeatureExtractor.i3d(resize="squash", device=device)
    zeros = torch.zeros(16, 15, 64, 64, 3, dtype=torch.uint8)
    ones = torch.full((16, 15, 64, 64, 3), 255, dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        value = fvd(zeros, ones, extractor, batch_size=16 if device == "cuda" else 4)
    print(f"FVD zeros vs ones with {extractor.protocol['weights']}: {value:.2f}")
    assert np.isfinite(value) and value > 0
    if extractor.protocol["weights"].endswith("(torchscript)"):  # the state dict's weights: no published number
        assert 120 < value < 145
