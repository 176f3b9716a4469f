"""Damaged files and untrusted configuration: checkpoints, token caches, shard lists and run configs.

Every fault must end in an error naming the file, key or argument at fault (or, where asked, a logged fallback),
never in a deep error, a silent skip or a command run without permission.
"""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from vidtok.data.shards import ShardDataset, code_allowed, write_shards
from vidtok.data.token_cache import TokenCacheDataset, TokenCacheError, build_token_cache
from vidtok.shapes import ShapesDataset
from vidtok.training import checkpoint as ckpt
from vidtok.training.config import ConfigError, TrainingConfig
from vidtok.training.run import build_datasets, build_model, import_object

# ---------------------------------------------------------------------------------------------- checkpoints


def _config(out, **kwargs):
    base = dict(output_dir=str(out), max_steps=4, batch_size=2, save_every=2, keep_last=None, progress_bar=False)
    base["optimizer"] = {"warmup_steps": 0}
    return TrainingConfig(**{**base, **kwargs})


def _trainer(out, **kwargs):
    from accelerate.utils import set_seed

    from vidtok.training import TinyVideoAutoencoder, Trainer

    set_seed(0)
    model = TinyVideoAutoencoder(**TinyVideoAutoencoder.tiny_config())
    data = ShapesDataset("train", resolution=16, num_frames=2, length=16)
    return Trainer(model, _config(out, **kwargs), data)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run with complete checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("run") / "run"
    _trainer(out).train()
    return out


@pytest.fixture
def run(trained_run, tmp_path, monkeypatch):
    monkeypatch.delenv("VIDTOK_VERIFY_WEIGHTS", raising=False)
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def _step(run, step):
    return ckpt.checkpoint_root(run) / ckpt.checkpoint_name(step)


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_optimizer_file_names_it_and_fallback_resumes_from_the_previous_checkpoint(run, damage, caplog):
    optimizer = _step(run, 4) / "optimizer.pt"
    data = optimizer.read_bytes()
    optimizer.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    with pytest.raises(ckpt.CheckpointError, match=r"step-00000004/optimizer\.pt: .*damaged.*resume_fallback"):
        _trainer(run, resume_from="latest").train()
    assert issubclass(ckpt.CheckpointError, __import__("vidtok").modeling_utils.LoadingError)
    with caplog.at_level(logging.WARNING, logger="vidtok.training.checkpoint"):
        trainer = _trainer(run, resume_from="latest", resume_fallback=True, max_steps=3)
        out = trainer.train()
    assert out.global_step == 3 and trainer.history[0]["step"] == 3  # resumed at 2, trained step 3 only
    assert "skipping damaged checkpoint" in caplog.text and "step-00000004" in caplog.text
    assert "optimizer.pt" in caplog.text


def test_digests_catch_same_size_corruption_and_the_switch_falls_back_to_parsing(run, monkeypatch):
    state = _step(run, 4) / "trainer_state.json"
    state.write_bytes(b"{" * state.stat().st_size)  # same size: only the digest (or the parser) notices
    with pytest.raises(ckpt.CheckpointError, match=r"trainer_state\.json: SHA-256 differs"):
        ckpt.resolve_checkpoint("latest", run)
    monkeypatch.setenv("VIDTOK_VERIFY_WEIGHTS", "0")
    with pytest.raises(ckpt.CheckpointError, match=r"trainer_state\.json: trainer state is not valid JSON"):
        ckpt.resolve_checkpoint("latest", run)
    assert ckpt.resolve_checkpoint("latest", run, fallback=True) == _step(run, 2)


def test_a_folder_holding_only_the_marker_is_not_a_checkpoint(run, caplog):
    (ckpt.checkpoint_root(run) / "latest").unlink()
    fake = _step(run, 6)
    fake.mkdir()
    (fake / ckpt.COMPLETE_MARKER).write_text("6\n")  # the old marker format, nothing else
    assert not ckpt.is_complete(fake)
    assert ckpt.latest_checkpoint(run) == _step(run, 4)
    with pytest.raises(ckpt.CheckpointError, match=r"step-00000006/trainer_state\.json: trainer state is missing"):
        ckpt.resolve_checkpoint("latest", run)
    with caplog.at_level(logging.WARNING, logger="vidtok.training.checkpoint"):
        assert ckpt.resolve_checkpoint(run, "unused", fallback=True) == _step(run, 4)
    assert "skipping damaged checkpoint" in caplog.text and "step-00000006" in caplog.text
    # a manifest marker whose files are gone is no checkpoint either
    shutil.rmtree(fake)
    shutil.copytree(_step(run, 4), fake)
    for path in fake.iterdir():
        if path.name != ckpt.COMPLETE_MARKER:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert not ckpt.is_complete(fake)
    with pytest.raises(ckpt.CheckpointError, match=r"step-00000006/\S+: missing \(listed in COMPLETE\)"):
        ckpt.resolve_checkpoint("latest", run)


def test_the_manifest_records_sizes_and_digests(run, tmp_path):
    manifest = json.loads((_step(run, 4) / ckpt.COMPLETE_MARKER).read_text())
    assert manifest["format"] == "vidtok.checkpoint" and manifest["step"] == 4
    files = manifest["files"]
    assert {"optimizer.pt", "scheduler.pt", "trainer_state.json", "rng/rank-00000.pt"} <= set(files)
    assert any(name.startswith("model/") for name in files)
    assert all(len(entry["sha256"]) == 64 and entry["size"] >= 0 for entry in files.values())
    out = tmp_path / "nodigest"
    _trainer(out, max_steps=1, checkpoint_digests=False).train()
    entries = json.loads((_step(out, 1) / ckpt.COMPLETE_MARKER).read_text())["files"].values()
    assert entries and all(set(entry) == {"size"} for entry in entries)
    assert ckpt.resolve_checkpoint("latest", out) == _step(out, 1)


def test_manifest_entries_cannot_leave_the_checkpoint(run):
    marker = _step(run, 4) / ckpt.COMPLETE_MARKER
    manifest = json.loads(marker.read_text())
    manifest["files"]["../../outside"] = {"size": 1}
    marker.write_text(json.dumps(manifest))
    with pytest.raises(ckpt.CheckpointError, match=r"'\.\./\.\./outside' is not a relative path inside"):
        ckpt.verify_checkpoint(_step(run, 4))
    marker.write_text("[1, 2]")
    with pytest.raises(ckpt.CheckpointError, match=r"COMPLETE: not a vidtok checkpoint manifest"):
        ckpt.verify_checkpoint(_step(run, 4))


def test_every_checkpoint_damaged_and_explicit_folders_are_never_replaced(run):
    for step in (2, 4):
        (_step(run, step) / "scheduler.pt").write_bytes(b"")
    with pytest.raises(ckpt.CheckpointError, match="no intact checkpoint in .*step-00000004: .*step-00000002: "):
        ckpt.resolve_checkpoint("latest", run, fallback=True)
    with pytest.raises(ckpt.CheckpointError, match=r"step-00000004/scheduler\.pt"):
        ckpt.resolve_checkpoint(_step(run, 4), run, fallback=True)


def _make_legacy(path):
    """Turn a checkpoint into one written before manifests (marker = the step): only structure is checked."""
    (path / ckpt.COMPLETE_MARKER).write_text("4\n")


def test_legacy_checkpoints_are_checked_structurally_and_at_load_time(run):
    legacy = _step(run, 4)
    _make_legacy(legacy)
    optimizer = legacy / "optimizer.pt"
    good = optimizer.read_bytes()
    optimizer.write_bytes(good[:100])
    with pytest.raises(ckpt.CheckpointError, match=r"optimizer\.pt: not a readable torch\.save file"):
        ckpt.verify_checkpoint(legacy)
    optimizer.write_bytes(good)
    scheduler = (legacy / "scheduler.pt").read_bytes()
    torch.save({}, legacy / "scheduler.pt")  # readable, but not what the trainer wrote
    with pytest.raises(ckpt.CheckpointError, match=r"scheduler\.pt: no 'model' scheduler state"):
        _trainer(run, resume_from="latest").train()
    torch.save({"model": {"bogus": 1}}, legacy / "scheduler.pt")
    with pytest.raises(ckpt.CheckpointError, match=r"scheduler\.pt: the 'model' scheduler does not fit this run"):
        _trainer(run, resume_from="latest").train()
    (legacy / "scheduler.pt").write_bytes(scheduler)
    state = json.loads((legacy / "trainer_state.json").read_text())
    del state["global_batch_size"]
    (legacy / "trainer_state.json").write_text(json.dumps(state))
    with pytest.raises(ckpt.CheckpointError, match=r"trainer_state\.json: 'global_batch_size' must be an integer"):
        _trainer(run, resume_from="latest").train()
    (legacy / "trainer_state.json").write_text(json.dumps({**state, "step": "four"}))
    with pytest.raises(ckpt.CheckpointError, match=r"trainer_state\.json: 'step' must be an integer"):
        ckpt.verify_checkpoint(legacy)


def test_load_torch_names_the_file(tmp_path):
    for name, data in (("empty.pt", b""), ("cut.pt", b"PK\x03\x04junk")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ckpt.CheckpointError, match=rf"{name}: cannot be read .*damaged"):
            ckpt.load_torch(tmp_path / name)
    with pytest.raises(ckpt.CheckpointError, match=r"missing\.pt: missing"):
        ckpt.load_torch(tmp_path / "missing.pt")


def test_training_config_checks_types_and_finite_numbers():
    with pytest.raises(ConfigError, match="batch_size: expected an integer, got str '8'"):
        TrainingConfig(max_steps=1, batch_size="8")
    with pytest.raises(ConfigError, match="trainer.optimizer.lr: must be a finite number"):
        TrainingConfig.from_dict({"max_steps": 1, "optimizer": {"lr": "nan"}}, prefix="trainer")
    with pytest.raises(ConfigError, match="trainer.resume_fallback: expected true/false"):
        TrainingConfig.from_dict({"max_steps": 1, "resume_fallback": "yes"}, prefix="trainer")


def test_config_files_that_are_not_text_or_are_folders_are_named(tmp_path):
    from vidtok.training.config import load_mapping

    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match=r"bin\.yaml: not a UTF-8 text file"):
        load_mapping(tmp_path / "bin.yaml")
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigError, match=r"dir\.yaml: is a folder"):
        load_mapping(tmp_path / "dir.yaml")


# ---------------------------------------------------------------------------------------------- token caches


class _Pool(torch.nn.Module):
    def __init__(self, discrete=False):
        super().__init__()
        self.config, self.discrete = {"discrete": discrete}, discrete

    def encode(self, video):
        tokens = torch.nn.functional.avg_pool3d(video, (1, 8, 8)).flatten(3).transpose(1, 3).contiguous()
        return {"tokens": tokens, "indices": (tokens[..., 0] > 0).long() if self.discrete else None}


@pytest.fixture(scope="module")
def cache_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("caches")
    data = ShapesDataset(resolution=16, num_frames=2, length=3, seed=1)
    return {
        "float16": build_token_cache(_Pool(), data, root / "f16", dtype=torch.float16, shard_size=2),
        "discrete": build_token_cache(_Pool(discrete=True), data, root / "disc", shard_size=4),
    }


@pytest.fixture
def cache(cache_source, tmp_path):
    return lambda kind: shutil.copytree(cache_source[kind], tmp_path / kind)


def _edit_json(path, edit):
    data = json.loads(path.read_text())
    path.write_text(json.dumps(edit(data)))


def test_cache_manifest_keys_are_checked_and_name_the_file(cache):
    out = cache("float16")
    _edit_json(out / "cache.json", lambda m: {k: v for k, v in m.items() if k != "shards"})
    with pytest.raises(TokenCacheError, match=r"cache\.json: key 'shards' must be a list .* got 'missing'"):
        TokenCacheDataset(out)
    (out / "cache.json").write_text("[]")
    with pytest.raises(TokenCacheError, match=r"cache\.json must hold a JSON object, got list"):
        TokenCacheDataset(out)


@pytest.mark.parametrize("name", ["../../x.safetensors", "/etc/passwd", "..", "sub/shard.safetensors"])
def test_cache_files_cannot_point_outside_the_folder(cache, name):
    out = cache("float16")
    original = json.loads((out / "cache.json").read_text())
    _edit_json(out / "cache.json", lambda m: {**m, "shards": [{**m["shards"][0], "file": name}, *m["shards"][1:]]})
    with pytest.raises(TokenCacheError, match=r"cache\.json: shards\[0\]\.file: .* not a file name inside"):
        TokenCacheDataset(out)
    (out / "cache.json").write_text(json.dumps(original))
    lines = (out / "index.jsonl").read_text().splitlines()
    lines[1] = json.dumps({**json.loads(lines[1]), "shard": name})
    (out / "index.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(TokenCacheError, match=r"index\.jsonl:2: key 'shard': .* not a file name inside"):
        TokenCacheDataset(out)


def test_cache_index_lines_are_checked(cache):
    out = cache("float16")
    lines = (out / "index.jsonl").read_text().splitlines()
    for bad, message in (
        ("[1]", r"index\.jsonl:1 must be a JSON object"),
        (json.dumps({**json.loads(lines[0]), "shard": "other.safetensors"}), "does not list"),
        (json.dumps({k: v for k, v in json.loads(lines[0]).items() if k != "caption"}), "key 'caption'"),
        (json.dumps({**json.loads(lines[0]), "tokens_shape": "big"}), "key 'tokens_shape' must be a list"),
    ):
        (out / "index.jsonl").write_text("\n".join([bad, *lines[1:]]) + "\n")
        with pytest.raises(TokenCacheError, match=message):
            TokenCacheDataset(out)


def test_cache_dtypes_and_shapes_are_checked_on_read(cache):
    out = cache("float16")
    _edit_json(out / "cache.json", lambda m: {**m, "dtype": "torch.bfloat16"})
    with pytest.raises(TokenCacheError, match=r"shard-00000\.safetensors: tensor '0\.tokens' has dtype torch\.float16"):
        TokenCacheDataset(out)[0]
    out = cache("discrete")
    shard = out / "shard-00000.safetensors"
    tensors = load_file(shard)
    tensors["1.indices"] = tensors["1.indices"].float()
    save_file(tensors, shard)
    _edit_json(out / "cache.json", lambda m: {**m, "shards": [{**m["shards"][0], "bytes": shard.stat().st_size}]})
    ds = TokenCacheDataset(out)
    ds[0]
    with pytest.raises(TokenCacheError, match=r"'1\.indices' has dtype torch\.float32, but indices must be integers"):
        ds[1]
    lines = (out / "index.jsonl").read_text().splitlines()
    lines[2] = json.dumps({**json.loads(lines[2]), "tokens_shape": [9, 9]})
    (out / "index.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(TokenCacheError, match=r"shard-00000\.safetensors have shape .* index\.jsonl says \[9, 9\]"):
        TokenCacheDataset(out)[2]
    with pytest.raises(TypeError, match="index must be an integer"):
        ds["0"]


def test_cache_build_arguments_are_checked(tmp_path):
    data = ShapesDataset(resolution=16, num_frames=2, length=1)
    for kwargs, message in (({"batch_size": "8"}, "batch_size must be an integer"), ({"dtype": "float16"}, "dtype")):
        with pytest.raises((ValueError, TypeError), match=message):
            build_token_cache(_Pool(), data, tmp_path / "c", **kwargs)


# ---------------------------------------------------------------------------------------------- trusted configuration


@pytest.fixture(scope="module")
def shard_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    return write_shards(ShapesDataset(resolution=16, num_frames=2, length=2), str(d / "s-%03d.tar"))[0]


def test_pipe_urls_need_permission(shard_file, tmp_path, monkeypatch):
    monkeypatch.delenv("VIDTOK_ALLOW_CODE", raising=False)
    witness = tmp_path / "ran"
    url = f"pipe:touch {witness}; cat {shard_file}"
    with pytest.raises(PermissionError, match=r"shard URL 'pipe:touch .* runs a shell command.*allow_code=True"):
        ShardDataset(url, num_frames=2, size=16)
    spec = {"train": {"name": "shards", "kwargs": {"urls": url, "num_frames": 2, "size": 16}}}
    with pytest.raises(ConfigError, match=r"data\.train\.kwargs: .*PermissionError: shard URL 'pipe:"):
        build_datasets(spec)
    allow_in_config = {"train": {"name": "shards", "kwargs": {"urls": url, "allow_code": True}}}
    with pytest.raises(ConfigError, match=r"data\.train\.kwargs\.allow_code: not accepted from a config"):
        build_datasets(allow_in_config)
    assert not witness.exists()  # nothing ran
    data, _ = build_datasets(spec, allow_code=True)  # the caller's permission reaches ShardDataset
    assert len(list(data)) == 2 and witness.exists()
    witness.unlink()
    monkeypatch.setenv("VIDTOK_ALLOW_CODE", "1")
    assert code_allowed() and len(list(ShardDataset(url, num_frames=2, size=16))) == 2 and witness.exists()
    with pytest.raises(TypeError, match="allow_code must be True, False or None"):
        code_allowed("yes")


def test_import_paths_outside_vidtok_need_permission(monkeypatch):
    monkeypatch.delenv("VIDTOK_ALLOW_CODE", raising=False)
    for target in ("subprocess:run", "os:system", "vidtok.data.shards:subprocess.run", "vidtok.data.shards:os"):
        with pytest.raises(ConfigError, match=r"model\.target: .*(outside the vidtok package|not a class or function)"):
            build_model({"target": target})
    with pytest.raises(ConfigError, match=r"data\.collate: 'json:loads' is outside the vidtok package"):
        build_datasets({"collate": "json:loads"})
    with pytest.raises(ConfigError, match=r"model\.kwargs\.trust_remote_code: not accepted"):
        build_model({"target": "vidtok.training:TinyVideoAutoencoder", "kwargs": {"trust_remote_code": True}})
    assert build_model({"target": "collections:OrderedDict", "kwargs": {"a": 1}}, allow_code=True) == {"a": 1}
    assert import_object("vidtok.training:TinyVideoAutoencoder", where="x").__name__ == "TinyVideoAutoencoder"
    monkeypatch.setenv("VIDTOK_ALLOW_CODE", "1")
    assert import_object("collections:OrderedDict", where="x") is __import__("collections").OrderedDict


def test_model_constructor_refusals_name_the_section():
    with pytest.raises(ConfigError, match=r"model\.kwargs: .*refused the arguments"):
        build_model({"name": "l2", "kwargs": {"hidden_size": -1, "token_dim": 4}})


# ---------------------------------------------------------------------------------------------- shard readers


def test_shard_reader_arguments_and_dead_shard_lists(shard_file, tmp_path):
    for kwargs, message in (
        ({"clip_start": "middle"}, "clip_start must be"),
        ({"num_frames": 0}, "num_frames must be an integer >= 1"),
        ({"shuffle": -1}, r"shuffle \(the buffer size\) must be an integer >= 0"),
        ({"repeat": "yes"}, "repeat must be True or False"),
    ):
        with pytest.raises(ValueError, match=message):
            ShardDataset(str(shard_file), **kwargs)
    with pytest.raises(TypeError, match="shard URL must be a string or a path, got int"):
        ShardDataset([str(shard_file), 3])
    with pytest.raises(ValueError, match="maxcount must be an integer >= 1, got '3'"):
        write_shards([], tmp_path / "x-%d.tar", maxcount="3")
    # every shard missing: a repeating reader stops with the reason instead of spinning forever
    ds = ShardDataset(str(tmp_path / "gone-{0..1}.tar"), num_frames=2, size=16, repeat=True)
    with pytest.raises(ValueError, match=r"found no readable sample in its 2 shard\(s\).*gone-.*cannot open shard"):
        next(iter(ds))


def test_a_non_object_metadata_member_is_skipped_and_named(shard_file, tmp_path):
    import io
    import tarfile

    bad = tmp_path / "meta.tar"
    with tarfile.open(shard_file) as src, tarfile.open(bad, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "000000000.json":
                data = b"[1, 2]"
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    ds = ShardDataset(str(bad), num_frames=2, size=16, shuffle_shards=False)
    assert [s["key"] for s in ds] == ["000000001"]
    assert "must hold a JSON object" in ds.skipped_paths[f"{bad}#000000000"]
