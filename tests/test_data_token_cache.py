"""Token caches: encode once, train on tokens (vidtok.data.token_cache)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from vidtok.data.token_cache import (
    TokenCacheDataset,
    TokenCacheError,
    build_token_cache,
    tokenizer_provenance,
    weights_digest,
)
from vidtok.outputs import TokenizerOutput
from vidtok.shapes import ShapesDataset


class PoolTokenizer(torch.nn.Module):
    """Tokens = frames average-pooled (2 in time, 4x4 in space): (B, T/2, H/4 * W/4, C)."""

    def __init__(self, levels: int = 0, discrete: bool = False):
        super().__init__()
        self.config = {"levels": levels, "discrete": discrete, "_private": "ignored"}
        self.levels, self.discrete = levels, discrete
        self.scale = torch.nn.Parameter(torch.ones(()))  # a weight, for the weights digest
        self.calls = 0

    def encode(self, video):
        self.calls += 1
        b, c, t, h, w = video.shape
        x = F.avg_pool3d(video, (min(2, t), 4, 4))  # (B, C, S, h, w)
        tokens = x.flatten(3).permute(0, 2, 3, 1).contiguous() * self.scale  # (B, S, N, C)
        indices = ((tokens[..., 0] + 1) * 7.5).round().long() if self.discrete else None
        if self.levels:
            return TokenizerOutput(
                tokens=[tokens[:, :, : 4 * (k + 1)] for k in range(self.levels)],  # level k: 4 (k + 1) tokens
                indices=None if indices is None else [indices[:, :, : 4 * (k + 1)] for k in range(self.levels)],
            )
        return TokenizerOutput(tokens=tokens, indices=indices)


class Interrupting(Dataset):
    """Wraps a dataset and raises at one index, like a crash mid-build."""

    def __init__(self, base, fail_at=None):
        self.base, self.fail_at = base, fail_at

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        if i == self.fail_at:
            raise KeyboardInterrupt("simulated crash")
        return {**self.base[i], "path": f"clip-{i}.mp4", "index": i}

    def __repr__(self):
        return f"Interrupting({self.base!r})"


@pytest.fixture(scope="module")
def videos():
    return ShapesDataset(resolution=16, num_frames=4, length=7, seed=2)


def _expected(tokenizer, sample):
    return tokenizer.encode(sample["video"][None]).tokens[0]


def test_round_trip_tokens_captions_provenance(videos, tmp_path):
    tok = PoolTokenizer()
    out = build_token_cache(tok, videos, tmp_path / "cache", batch_size=3, shard_size=4)
    assert out == tmp_path / "cache" and not (tmp_path / "cache.partial").exists()
    assert sorted(p.name for p in out.iterdir()) == [
        "cache.json",
        "index.jsonl",
        "shard-00000.safetensors",
        "shard-00001.safetensors",
    ]
    ds = TokenCacheDataset(out, verify=True)
    assert len(ds) == 7
    for i in range(7):
        item = ds[i]
        assert item["tokens"].shape == (2, 16, 3)
        torch.testing.assert_close(item["tokens"], _expected(tok, videos[i]), rtol=0, atol=1e-6)
        assert item["caption"] == videos[i]["caption"] and "indices" not in item
    manifest = json.loads((out / "cache.json").read_text())
    assert manifest["num_samples"] == 7 and [s["num_samples"] for s in manifest["shards"]] == [4, 3]
    assert ds.tokenizer_info == tokenizer_provenance(tok, weights=True)
    assert ds.tokenizer_info["weights_sha256"] == weights_digest(tok) and len(weights_digest(tok)) == 64
    assert ds.tokenizer_info["class"].endswith("PoolTokenizer")
    assert ds.tokenizer_info["config"] == {"discrete": False, "levels": 0}
    assert manifest["dataset"]["class"].endswith("ShapesDataset") and manifest["dataset"]["length"] == 7
    # works in DataLoader workers (shard handles are reopened there)
    batches = list(DataLoader(ds, batch_size=7, num_workers=2))
    assert batches[0]["tokens"].shape == (7, 2, 16, 3)


def test_discrete_hierarchical_and_mixed_shapes(tmp_path):
    images = ShapesDataset(mode="image", resolution=16, length=3)
    clips = ShapesDataset(resolution=16, num_frames=4, length=3)
    mixed = torch.utils.data.ConcatDataset([images, clips])
    tok = PoolTokenizer(levels=2, discrete=True)
    ds = TokenCacheDataset(build_token_cache(tok, mixed, tmp_path / "c", batch_size=4, dtype=torch.float16))
    first, last = ds[0], ds[5]
    assert [t.shape for t in first["tokens"]] == [(1, 4, 3), (1, 8, 3)]
    assert [t.shape for t in last["tokens"]] == [(2, 4, 3), (2, 8, 3)]
    assert first["tokens"][0].dtype == torch.float16 and first["indices"][1].dtype == torch.int64
    assert torch.equal(last["indices"][1], tok.encode(clips[2]["video"][None]).indices[1][0])
    assert ds.manifest["discrete"] and ds.manifest["levels"] == 2


def test_interrupted_build_leaves_no_cache_and_resumes(videos, tmp_path):
    tok = PoolTokenizer()
    with pytest.raises(KeyboardInterrupt):
        build_token_cache(tok, Interrupting(videos, fail_at=5), tmp_path / "cache", batch_size=2, shard_size=2)
    assert not (tmp_path / "cache").exists()
    with pytest.raises(TokenCacheError, match="rerun build_token_cache to resume"):
        TokenCacheDataset(tmp_path / "cache")
    calls = tok.calls
    build_token_cache(tok, Interrupting(videos), tmp_path / "cache", batch_size=2, shard_size=2)
    assert tok.calls - calls == 2  # only samples 4..6 were encoded again (two batches)
    ds = TokenCacheDataset(tmp_path / "cache", verify=True)
    assert [ds[i]["path"] for i in range(7)] == [f"clip-{i}.mp4" for i in range(7)]
    torch.testing.assert_close(ds[6]["tokens"], _expected(tok, videos[6]), rtol=0, atol=1e-6)


def test_existing_cache_needs_overwrite(videos, tmp_path):
    build_token_cache(PoolTokenizer(), videos, tmp_path / "cache")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        build_token_cache(PoolTokenizer(), videos, tmp_path / "cache")
    short = ShapesDataset(resolution=16, num_frames=4, length=2)
    build_token_cache(PoolTokenizer(), short, tmp_path / "cache", overwrite=True)
    assert len(TokenCacheDataset(tmp_path / "cache")) == 2


def test_corrupt_or_mismatched_caches_raise_clear_errors(videos, tmp_path):
    out = build_token_cache(PoolTokenizer(), videos, tmp_path / "cache", shard_size=4)
    shard = out / "shard-00001.safetensors"
    data = shard.read_bytes()
    with pytest.raises(TokenCacheError, match="was built with a different .*PoolTokenizer config"):
        TokenCacheDataset(out, tokenizer=PoolTokenizer(discrete=True))
    TokenCacheDataset(out, tokenizer=PoolTokenizer(), check_weights=True)  # same class, config, weights: fine
    tuned = PoolTokenizer()
    with torch.no_grad():
        tuned.scale.fill_(2.0)
    TokenCacheDataset(out, tokenizer=tuned)  # same config; weights only compared on request
    with pytest.raises(TokenCacheError, match="other weights"):
        TokenCacheDataset(out, tokenizer=tuned, check_weights=True)

    shard.write_bytes(data[:-10])  # truncated
    with pytest.raises(TokenCacheError, match="shard-00001.safetensors has .* bytes .* truncated"):
        TokenCacheDataset(out)
    shard.write_bytes(b"\x10" * 8 + b"#" * (len(data) - 8))  # same size, garbage header
    with pytest.raises(TokenCacheError, match="sha256"):
        TokenCacheDataset(out, verify=True)
    ds = TokenCacheDataset(out)
    ds[0]  # the first shard is intact
    with pytest.raises(TokenCacheError, match="shard-00001.safetensors is corrupt"):
        ds[5]
    shard.unlink()
    with pytest.raises(TokenCacheError, match="missing"):
        TokenCacheDataset(out)
    shard.write_bytes(data)
    lines = (out / "index.jsonl").read_text().splitlines()
    (out / "index.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(TokenCacheError, match="index.jsonl lists 6 samples"):
        TokenCacheDataset(out)
    (out / "cache.json").unlink()
    with pytest.raises(TokenCacheError, match="not a complete token cache"):
        TokenCacheDataset(out)


class DecodingPoolTokenizer(PoolTokenizer):
    """PoolTokenizer with a decoder: its weights and its ``sharpen`` setting never touch the tokens."""

    decode_only_config = frozenset({"sharpen"})
    decode_only_modules = ("decoder.",)

    def __init__(self, sharpen: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.config["sharpen"] = sharpen
        self.decoder = torch.nn.Linear(3, 3)


def test_decoder_only_changes_keep_the_cache_valid(videos, tmp_path):
    """A decoder fine-tuned with frozen tokens (DeepTokenizer's freeze_tokens) still matches its cache."""
    built = DecodingPoolTokenizer()
    out = build_token_cache(built, videos, tmp_path / "cache", shard_size=4)
    tuned = DecodingPoolTokenizer(sharpen=2.0)
    tuned.load_state_dict(built.state_dict())
    with torch.no_grad():
        tuned.decoder.weight.add_(1.0)
    assert weights_digest(tuned) != weights_digest(built)
    TokenCacheDataset(out, tokenizer=tuned, check_weights=True)  # other decoder config and weights: fine
    with pytest.raises(TokenCacheError, match=r"differs in \['levels'\]"):
        TokenCacheDataset(out, tokenizer=DecodingPoolTokenizer(levels=1))
    with torch.no_grad():
        tuned.scale.fill_(2.0)  # an encoder weight: the tokens change
    with pytest.raises(TokenCacheError, match="token_weights_sha256"):
        TokenCacheDataset(out, tokenizer=tuned, check_weights=True)

    # A cache written before token_weights_sha256 existed is compared on the digest of all weights.
    manifest = json.loads((out / "cache.json").read_text())
    del manifest["tokenizer"]["token_weights_sha256"]
    (out / "cache.json").write_text(json.dumps(manifest))
    TokenCacheDataset(out, tokenizer=DecodingPoolTokenizer(sharpen=2.0), check_weights=False)
    same = DecodingPoolTokenizer()
    same.load_state_dict(built.state_dict())
    TokenCacheDataset(out, tokenizer=same, check_weights=True)
    with torch.no_grad():
        same.decoder.weight.add_(1.0)
    with pytest.raises(TokenCacheError, match="different weights_sha256"):
        TokenCacheDataset(out, tokenizer=same, check_weights=True)


def test_deep_tokenizer_declares_what_makes_its_tokens():
    """Every decode-only key is a real config key and every decode-only module exists, so none is a typo."""
    from vidtok.tokenizers.deep_tokens import DeepTokenizer

    tok = DeepTokenizer(**{**DeepTokenizer.tiny_config(), "uncond": "learned"})
    assert DeepTokenizer.decode_only_config <= set(tok.config)
    names = list(tok.state_dict())
    for prefix in DeepTokenizer.decode_only_modules:  # the autoencoder is None without a VAE
        assert hasattr(tok, prefix.rstrip(".")), prefix
    kept = [n for n in names if not n.startswith(DeepTokenizer.decode_only_modules)]
    assert kept and all(n.startswith(("frame_encoder.", "resampler.")) for n in kept)


class MaskingPoolTokenizer(PoolTokenizer):
    """PoolTokenizer that also returns dynamic token masks (HiTVideo §4): bool (B, S, N) per level of tokens."""

    def __init__(self, mask_dtype=torch.bool, **kwargs):
        super().__init__(**kwargs)
        self.mask_dtype = mask_dtype

    def encode(self, video):
        out = super().encode(video)
        levels = out.tokens if isinstance(out.tokens, list) else [out.tokens]
        masks = []
        for t in levels:
            m = t[..., 0] > 0  # any deterministic pattern; the first step is never masked
            m[:, 0] = False
            masks.append(m.to(self.mask_dtype))
        return TokenizerOutput(
            tokens=out.tokens, indices=out.indices, token_masks=masks if isinstance(out.tokens, list) else masks[0]
        )


@pytest.mark.parametrize("levels", [0, 2])
def test_token_masks_round_trip_and_collate_per_level(videos, tmp_path, levels):
    tok = MaskingPoolTokenizer(levels=levels, discrete=True)
    ds = TokenCacheDataset(build_token_cache(tok, videos, tmp_path / "cache", batch_size=3, shard_size=4))
    assert ds.manifest["token_masks"] is True
    for i in (0, 4, 6):
        item = ds[i]
        want = tok.encode(videos[i]["video"][None]).token_masks
        if levels:
            assert isinstance(item["token_masks"], list) and len(item["token_masks"]) == levels
            assert all(torch.equal(got, w[0]) for got, w in zip(item["token_masks"], want))
            assert ds.records[i]["token_masks_shape"] == [list(w.shape[1:]) for w in want]
        else:
            assert torch.equal(item["token_masks"], want[0])
    masks = [item["token_masks"] for item in (ds[k] for k in range(len(ds)))]
    assert any(bool(torch.as_tensor(m if not levels else m[0]).any()) for m in masks)
    # The default collation batches per-level masks into per-level batches, as it does the indices.
    batch = next(iter(DataLoader(ds, batch_size=3)))
    if levels:
        assert [m.shape for m in batch["token_masks"]] == [c.shape for c in batch["indices"]]
        assert all(m.dtype == torch.bool for m in batch["token_masks"])
    else:
        assert batch["token_masks"].shape == batch["indices"].shape and batch["token_masks"].dtype == torch.bool


def test_a_cache_without_masks_loads_unchanged(videos, tmp_path):
    ds = TokenCacheDataset(build_token_cache(PoolTokenizer(levels=2, discrete=True), videos, tmp_path / "cache"))
    assert ds.manifest["token_masks"] is False and "token_masks" not in ds[0]
    assert all("token_masks_shape" not in r for r in ds.records)
    # A cache written before the key existed reads the same.
    manifest = json.loads((ds.cache_dir / "cache.json").read_text())
    del manifest["token_masks"]
    (ds.cache_dir / "cache.json").write_text(json.dumps(manifest))
    assert sorted(TokenCacheDataset(ds.cache_dir)[0]) == ["caption", "index", "indices", "tokens"]


def test_token_masks_that_are_not_bool_are_refused(videos, tmp_path):
    from safetensors.torch import load_file, save_file

    with pytest.raises(TypeError, match="level 0 token_masks of dtype torch.uint8 .* must be bool"):
        build_token_cache(MaskingPoolTokenizer(levels=2, mask_dtype=torch.uint8), videos, tmp_path / "bad")
    out = build_token_cache(MaskingPoolTokenizer(levels=2), videos, tmp_path / "cache", shard_size=4)
    shard = out / "shard-00000.safetensors"
    tensors = load_file(str(shard))
    tensors["1.token_masks.1"] = tensors["1.token_masks.1"].to(torch.uint8)
    save_file(tensors, str(shard), metadata={"format": "vidtok.token_cache", "version": "1"})
    manifest = json.loads((out / "cache.json").read_text())
    manifest["shards"][0]["bytes"] = shard.stat().st_size
    (out / "cache.json").write_text(json.dumps(manifest))
    ds = TokenCacheDataset(out)
    ds[0]
    with pytest.raises(TokenCacheError, match=r"'1.token_masks.1' has dtype torch.uint8, but token masks must be bool"):
        ds[1]
