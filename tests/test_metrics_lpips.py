"""LPIPS offline: laws (identity, monotone, symmetric), agreement with torchmetrics on the same backbone weights,
backbone files in torchvision's layout (given, or found in torch.hub's cache), and the errors when they are absent.

Every backbone here is random (written by the tests): the numbers check the computation, not perceptual quality.
"""

from __future__ import annotations

import doctest
import importlib.util
from pathlib import Path

import pytest
import torch
import torchvision

import vidtok.metrics.lpips as lp
from vidtok.metrics.lpips import LPIPS, LPIPS_BACKBONE_FILES, default_backbone_path, lpips_per_frame, lpips_video


def _write_backbone(path: Path, net: str = "alex", seed: int = 0, *, prefix: str = "features.") -> Path:
    """A random backbone in torchvision's checkpoint layout (features.N.*, plus a classifier key to ignore)."""
    torch.manual_seed(seed)
    build = torchvision.models.alexnet if net == "alex" else torchvision.models.vgg16
    state = {prefix + k: v for k, v in build(weights=None).features.state_dict().items()}
    if prefix:
        state["classifier.1.weight"] = torch.zeros(4, 4)  # the checkpoint's classifier: unused by LPIPS
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def alex_file(tmp_path_factory) -> Path:
    return _write_backbone(tmp_path_factory.mktemp("tv") / LPIPS_BACKBONE_FILES["alex"])


@pytest.fixture(scope="module")
def alex(alex_file) -> LPIPS:
    return LPIPS("alex", alex_file)


def _video(b: int = 2, t: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, size, size, generator=g) * 2 - 1


def _noisy(x: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def test_module_examples_run():
    result = doctest.testmod(lp, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_loads_a_torchvision_layout_file(alex, alex_file):
    state = torch.load(alex_file, weights_only=True)
    for key, value in alex.features.state_dict().items():
        torch.testing.assert_close(value, state["features." + key], rtol=0, atol=0)
    heads = torch.load(lp.default_heads_path("alex"), map_location="cpu", weights_only=True)  # saved from CUDA
    for k, head in enumerate(alex.heads):
        torch.testing.assert_close(head.weight, heads[f"lin{k}.model.1.weight"], rtol=0, atol=0)
    assert alex.protocol["backbone"] == str(alex_file) and alex.protocol["comparable"] is True
    assert not any(p.requires_grad for p in alex.parameters())


def test_bare_features_state_dict_is_accepted(tmp_path, alex):
    bare = _write_backbone(tmp_path / "features.pth", prefix="")
    x = _video(1, 1)
    y = _noisy(x, 0.2)
    assert LPIPS("alex", bare)(x[:, :, 0], y[:, :, 0]).item() == pytest.approx(alex(x[:, :, 0], y[:, :, 0]).item())


def test_identity_monotone_symmetric(alex):
    x = _video()
    assert lpips_video(x, x, alex) == 0.0
    values = [lpips_video(_noisy(x, s), x, alex) for s in (0.05, 0.1, 0.2, 0.4)]
    assert all(a < b for a, b in zip(values, values[1:])), values
    y = _noisy(x, 0.2)
    torch.testing.assert_close(lpips_per_frame(y, x, alex), lpips_per_frame(x, y, alex), rtol=0, atol=1e-6)


def test_per_frame_per_video_batching_and_range(alex):
    x = _video(b=2, t=3)
    y = torch.cat([_noisy(x[:1], 0.05), _noisy(x[1:], 0.3)])
    frames = lpips_per_frame(y, x, alex, batch_size=32)
    assert frames.shape == (2, 3) and frames.dtype == torch.float64
    torch.testing.assert_close(lpips_per_frame(y, x, alex, batch_size=1), frames, rtol=0, atol=1e-6)
    videos = lpips_video(y, x, alex, per_video=True)
    torch.testing.assert_close(videos, frames.mean(-1))
    assert videos[0] < videos[1]
    assert lpips_video(y, x, alex) == pytest.approx(float(frames.mean()))
    # [0, 1] videos with data_range=(0, 1) are mapped to LPIPS' [-1, 1]: the same numbers.
    unit = lpips_per_frame((y + 1) / 2, (x + 1) / 2, alex, data_range=(0.0, 1.0))
    torch.testing.assert_close(unit, frames, rtol=0, atol=1e-6)
    # Images (B, C, H, W) are one-frame videos.
    assert lpips_per_frame(y[:, :, 0], x[:, :, 0], alex).shape == (2, 1)


def _torchmetrics_lpips(monkeypatch, net: str, backbone: Path):
    """torchmetrics' LPIPS module with the backbone weights of ``backbone`` instead of a download."""
    import torchmetrics.functional.image.lpips as tm_lpips
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    def features(name: str, pretrained: bool = False):
        build = torchvision.models.alexnet if name == "alexnet" else torchvision.models.vgg16
        stack = build(weights=None).features
        state = torch.load(backbone, weights_only=True)
        stack.load_state_dict({k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")})
        return stack

    monkeypatch.setattr(tm_lpips, "_get_tv_model_features", features)
    return LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=False, reduction="none")


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_torchmetrics_with_the_same_backbone(monkeypatch, tmp_path, alex_file, net):
    path = alex_file if net == "alex" else _write_backbone(tmp_path / LPIPS_BACKBONE_FILES["vgg"], "vgg", seed=1)
    ours = LPIPS(net, path)
    theirs = _torchmetrics_lpips(monkeypatch, net, path)
    x = _video(b=3, t=1, size=48)[:, :, 0]
    y = _noisy(x, 0.2)
    with torch.no_grad():
        got = ours(y, x)
        theirs.update(y, x)
    ref = theirs.compute().flatten()
    assert got.shape == ref.shape == (3,)
    assert (got - ref).abs().max() < 1e-5  # measured ~1e-8 (float32)


def test_torch_home_cache_is_found(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert default_backbone_path("alex") == cached
    assert default_backbone_path("vgg") == cached.with_name("vgg16-397923af.pth")
    _write_backbone(cached)
    metric = LPIPS("alex")
    assert metric.protocol["backbone"] == str(cached) and metric.protocol["comparable"] is True


def test_missing_backbone_names_both_places_and_never_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    with pytest.raises(FileNotFoundError) as err:
        LPIPS("vgg")
    message = str(err.value)
    assert "vgg16-397923af.pth" in message and str(cached) in message and "backbone_weights=" in message
    assert "nothing is downloaded" in message
    with pytest.raises(FileNotFoundError, match=r"backbone_weights: no such file .*nope\.pth"):
        LPIPS("alex", tmp_path / "nope.pth")


def test_random_backbone_is_labelled(alex_file):
    metric = LPIPS("alex", random_backbone=True)
    assert metric.protocol["backbone"] == "random backbone — not comparable"
    assert metric.protocol["comparable"] is False
    with pytest.raises(ValueError, match="not both"):
        LPIPS("alex", alex_file, random_backbone=True)


def test_bad_files_and_inputs(tmp_path, alex):
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11)}, wrong)
    with pytest.raises(ValueError, match=r"wrong\.pth lacks .* e\.g\. features\.0\.bias"):
        LPIPS("alex", wrong)
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match=r"lacks"):
        LPIPS("alex", wrong)
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"cannot read .*junk\.pth"):
        LPIPS("alex", tmp_path / "junk.pth")
    with pytest.raises(ValueError, match=r"no lin0\.model\.1\.weight"):
        LPIPS("alex", random_backbone=True, heads_weights=wrong)
    with pytest.raises(FileNotFoundError, match=r"linear heads: no such file"):
        LPIPS("alex", random_backbone=True, heads_weights=tmp_path / "heads.pth")
    with pytest.raises(ValueError, match="net must be one of"):
        LPIPS("squeeze", random_backbone=True)
    with pytest.raises(ValueError, match=r"at least 31x31, got 30x64"):
        alex(torch.zeros(1, 3, 30, 64), torch.zeros(1, 3, 30, 64))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\), got shape \(1, 1, 32, 32\)"):
        alex(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="shapes differ"):
        lpips_video(torch.zeros(1, 3, 2, 32, 32), torch.zeros(1, 3, 3, 32, 32), alex)
    with pytest.raises(ValueError, match="batch_size"):
        lpips_video(torch.zeros(1, 3, 2, 32, 32), torch.zeros(1, 3, 2, 32, 32), alex, batch_size=0)
    assert alex(torch.zeros(1, 3, 31, 31), torch.zeros(1, 3, 31, 31)).shape == (1,)


def test_heads_need_torchmetrics(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torchmetrics" else real(name, *a)
    )
    with pytest.raises(ModuleNotFoundError, match=r"torchmetrics/functional/image/lpips_models/alex\.pth"):
        LPIPS("alex", random_backbone=True)
