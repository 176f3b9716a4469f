"""CLIPSIM with a tiny random-init open_clip architecture registered from a JSON config (offline, fast)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

open_clip = pytest.importorskip("open_clip")

from vidtok.metrics.clipsim import CLIPSimilarity, clipsim  # noqa: E402
from vidtok.metrics.fvd import file_sha256  # noqa: E402

TINY = "vidtok-test-tiny-clip"
PROMPTS = ["a red circle moves left", "a blue square stays still", "two cats"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Registers a tiny CLIP (vision: width 64, 2 layers, patch 8, image 32; text: width 32, 2 layers)."""
    folder = tmp_path_factory.mktemp("clip-config")
    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    }
    (folder / f"{TINY}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)
    torch.manual_seed(0)
    return CLIPSimilarity(TINY, allow_random=True)


def _videos(seed: int, n: int = 3, frames: int = 4, size: tuple[int, int] = (40, 56)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, frames, *size, generator=g) * 2 - 1


def test_scores_shape_range_and_label(tiny):
    scores = tiny.score(_videos(0), PROMPTS, batch_size=5)
    assert scores.shape == (3,) and scores.dtype == np.float64
    assert np.all(scores >= -1) and np.all(scores <= 1)
    assert tiny.label == f"{TINY} @ random-init" and tiny.weights_digest is None
    assert tiny.image_size == (32, 32)
    assert clipsim(_videos(0), PROMPTS, tiny) == pytest.approx(scores.mean())


def test_equals_a_direct_computation(tiny):
    videos = _videos(1)
    pixels = tiny.preprocess(videos)
    assert pixels.shape == (3, 4, 3, 32, 32)
    with torch.no_grad():
        image = F.normalize(tiny.model.encode_image(pixels.flatten(0, 1)), dim=-1).view(3, 4, -1)
        text = F.normalize(tiny.model.encode_text(tiny.tokenizer(PROMPTS)), dim=-1)
    per_frame = (image * text[:, None]).sum(-1)  # (videos, frames): raw cosine, not x100, not clamped
    expected = per_frame.mean(dim=1).double().numpy()
    np.testing.assert_allclose(tiny.score(videos, PROMPTS, batch_size=3), expected, rtol=1e-5, atol=1e-6)
    assert tiny.clipsim(videos, PROMPTS) == pytest.approx(float(expected.mean()), rel=1e-5, abs=1e-6)


def test_prompt_i_goes_with_video_i(tiny):
    videos = _videos(2)
    scores = tiny.score(videos, PROMPTS)
    order = [2, 0, 1]
    np.testing.assert_allclose(tiny.score(videos[order], [PROMPTS[i] for i in order]), scores[order], rtol=1e-5)
    single = tiny.score(videos[1:2], PROMPTS[1])  # one string for one video
    np.testing.assert_allclose(single, scores[1:2], rtol=1e-5)


def test_uint8_input_and_preprocessing(tiny):
    uint8 = torch.randint(0, 256, (2, 3, 24, 64, 3), dtype=torch.uint8)  # (B, T, H, W, C)
    model_layout = uint8.permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    torch.testing.assert_close(tiny.preprocess(uint8), tiny.preprocess(model_layout))
    mean = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(1, 1, 3, 1, 1)
    std = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(1, 1, 3, 1, 1)
    white = tiny.preprocess(torch.ones(1, 3, 2, 24, 64))  # shorter side 24 -> 32, centre crop of the width
    torch.testing.assert_close(white, ((1 - mean) / std).expand(1, 2, 3, 32, 32))


def test_local_file_round_trip(tiny, tmp_path):
    path = tmp_path / "tiny-clip.pt"
    torch.save(tiny.model.state_dict(), path)
    loaded = CLIPSimilarity(TINY, pretrained=str(path))
    assert loaded.label == f"{TINY} @ tiny-clip.pt" and loaded.weights_digest == file_sha256(path)
    videos = _videos(3)
    np.testing.assert_allclose(loaded.score(videos, PROMPTS), tiny.score(videos, PROMPTS), rtol=1e-6, atol=1e-7)


def test_hub_weights_come_from_the_local_cache_only(tiny, tmp_path, monkeypatch):
    constants = pytest.importorskip("huggingface_hub.constants")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(RuntimeError, match="not in the local Hugging Face cache.*vidtok-test/tiny-clip"):
        CLIPSimilarity(TINY, pretrained="hf-hub:vidtok-test/tiny-clip")
    with pytest.raises(RuntimeError, match="timm/vit_base_patch32_clip_224.openai"):  # a tag, looked up, not fetched
        CLIPSimilarity("ViT-B-32", pretrained="openai")
    # A cache laid out as huggingface_hub writes it: refs/main -> snapshots/<commit>/<file>.
    repo = tmp_path / "models--vidtok-test--tiny-clip"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    state = {k: v.contiguous() for k, v in tiny.model.state_dict().items()}
    safetensors_torch.save_file(state, str(repo / "snapshots" / commit / "open_clip_model.safetensors"))
    loaded = CLIPSimilarity(TINY, pretrained="hf-hub:vidtok-test/tiny-clip")
    assert loaded.label == f"{TINY} @ hf-hub:vidtok-test/tiny-clip" and len(loaded.weights_digest) == 64
    videos = _videos(4)
    np.testing.assert_allclose(loaded.score(videos, PROMPTS), tiny.score(videos, PROMPTS), rtol=1e-6, atol=1e-7)


def test_errors(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing-clip.pt"):
        CLIPSimilarity(TINY, pretrained=str(tmp_path / "missing-clip.pt"))
    with pytest.raises(ValueError, match="allow_random=True"):
        CLIPSimilarity(TINY)
    with pytest.raises(RuntimeError, match="no open_clip tag"):
        CLIPSimilarity(TINY, pretrained="not-a-known-tag")
    with pytest.raises(ValueError, match="2 prompts for 3 videos"):
        tiny.score(_videos(0), PROMPTS[:2])
    with pytest.raises(TypeError, match="prompts must be strings"):
        tiny.score(_videos(0), [1, 2, 3])
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]"):
        tiny.score(_videos(0) * 255, PROMPTS)


CLIP_WEIGHTS = os.environ.get("VIDTOK_CLIP_PATH")


@pytest.mark.slow
@pytest.mark.skipif(
    not (CLIP_WEIGHTS and os.path.isfile(CLIP_WEIGHTS)),
    reason="needs real CLIP ViT-B/32 weights: set $VIDTOK_CLIP_PATH to a local open_clip checkpoint (OpenAI's)",
)
def test_real_clip_prefers_the_matching_caption():
    """With real weights, a red video is closer to "a red square" than to "a blue circle" (and vice versa)."""
    scorer = CLIPSimilarity("ViT-B-32-quickgelu", CLIP_WEIGHTS)
    red = torch.full((1, 3, 4, 224, 224), -1.0)
    red[:, 0, :, 56:168, 56:168] = 1.0  # a red square on black
    blue = torch.full((1, 3, 4, 224, 224), -1.0)
    blue[:, 2, :, 56:168, 56:168] = 1.0
    videos = torch.cat([red, blue])
    matched = scorer.score(videos, ["a red square", "a blue square"])
    swapped = scorer.score(videos, ["a blue square", "a red square"])
    assert np.all(matched > swapped)
    assert np.all((matched > 0.1) & (matched < 0.5))  # raw cosine, in the range papers report (~0.3)
