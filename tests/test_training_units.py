"""Unit tests of the training building blocks: config, overrides, schedules, sampling, EMA, checkpoints, logs."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vidtok.training import checkpoint as ckpt
from vidtok.training.config import (
    ConfigError,
    OptimizerConfig,
    Stage,
    TrainingConfig,
    apply_overrides,
)
from vidtok.training.ema import EMA
from vidtok.training.sampling import ShardedBatchSampler, ShardedStream
from vidtok.training.schedules import build_lr_scheduler, schedule_factor
from vidtok.training.tracking import MetricsLog, plot_metrics, read_metrics

# ---------------------------------------------------------------------------------------------- config


def test_defaults_are_dicode_optimizer_settings():
    opt = TrainingConfig(max_steps=1).optimizer
    assert (opt.lr, opt.betas, opt.eps, opt.weight_decay, opt.scheduler, opt.warmup_steps) == (
        1e-4,
        (0.9, 0.98),
        1e-6,
        0.05,
        "cosine",
        1000,
    )


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_config_round_trips_through_files(tmp_path, suffix):
    cfg = TrainingConfig.from_dict(
        {
            "output_dir": "runs/x",
            "stages": [
                {"name": "image", "steps": 5, "data": {"images": 1}, "options": {"loss": "l2"}},
                {"name": "mix", "steps": 7, "data": {"images": 1, "videos": 1}, "mix": "batch", "lr": 5e-5},
            ],
            "optimizer": {"lr": "3e-4", "betas": [0.9, 0.95]},  # "3e-4" is what PyYAML gives for 3e-4
            "ema": {"decay": 0.99},
            "trackers": ["tensorboard"],
        }
    )
    path = tmp_path / f"cfg{suffix}"
    cfg.to_file(path)
    again = TrainingConfig.from_file(path)
    assert again == cfg
    assert again.total_steps == 12 and again.optimizer.lr == 3e-4 and again.optimizer.betas == (0.9, 0.95)
    json.dumps(cfg.to_dict())  # JSON-serializable


def test_from_file_reads_the_trainer_section_of_a_run_config(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: {target: x:y}\ntrainer:\n  max_steps: 3\n  batch_size: 2\n")
    assert TrainingConfig.from_file(path).batch_size == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"max_steps": 10, "batch_sise": 4}, "trainer.batch_sise: unknown field (did you mean 'batch_size'?)"),
        ({"max_steps": "ten"}, "trainer.max_steps: expected an integer, got str 'ten'"),
        ({"max_steps": 10, "optimizer": {"lr": -1}}, "trainer.optimizer.lr: must be > 0"),
        ({"max_steps": 10, "optimizer": {"betas": [0.9]}}, "trainer.optimizer.betas: expected 2 values"),
        ({"max_steps": 10, "optimizer": {"scheduler": "cosin"}}, "did you mean 'cosine'"),
        ({"max_steps": 10, "mixed_precision": "fp8"}, "trainer.mixed_precision: must be one of"),
        ({"stages": [{"name": "a", "steps": 0}]}, "trainer.stages.0.steps: must be >= 1"),
        ({"stages": [{"name": "a"}]}, "trainer.stages.0.steps: required field is missing"),
        ({"stages": [{"name": "a", "steps": 2, "data": {"x": -1}}]}, "trainer.stages.0.data: weights"),
        ({"stages": [{"name": "a", "steps": 2}], "max_steps": 5}, "trainer.max_steps: 5 exceeds the 2 steps"),
        ({}, "trainer.max_steps: required when no stages are given"),
        ({"max_steps": 1, "ema": {"decay": 1.5}}, "trainer.ema.decay: must be in [0, 1)"),
        ({"max_steps": 1, "keep_last": 0}, "trainer.keep_last: must be >= 1 or null"),
        ({"max_steps": 1, "shuffle": "yes"}, "trainer.shuffle: expected true/false"),
    ],
)
def test_bad_config_names_the_field(data, message):
    with pytest.raises(ConfigError) as err:
        TrainingConfig.from_dict(data, prefix="trainer")
    assert message in str(err.value)


def test_overrides_parse_values_and_index_lists():
    data = {"trainer": {"max_steps": 10, "stages": [{"name": "a", "steps": 3}]}}
    apply_overrides(
        data,
        [
            "trainer.max_steps=100",
            "model.kwargs.hidden=32",
            "trainer.stages.0.steps=7",
            "trainer.ema=null",
            "x.y=[1, 2]",
        ],
    )
    assert data == {
        "trainer": {"max_steps": 100, "stages": [{"name": "a", "steps": 7}], "ema": None},
        "model": {"kwargs": {"hidden": 32}},
        "x": {"y": [1, 2]},
    }
    for bad, message in [("nokey", "expected dotted.key=value"), ("trainer.stages.5.steps=1", "no item '5'")]:
        with pytest.raises(ConfigError, match=message):
            apply_overrides(data, [bad])
    with pytest.raises(ConfigError, match="trainer.max_steps.x: cannot set a key inside a int"):
        apply_overrides(data, ["trainer.max_steps.x=1"])


# ---------------------------------------------------------------------------------------------- schedules


def _lrs(opt_cfg, stages, total):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=opt_cfg.lr)
    sched = build_lr_scheduler(opt, opt_cfg, stages, total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_cosine_with_warmup_matches_diffusers():
    from diffusers.optimization import get_cosine_schedule_with_warmup

    cfg = OptimizerConfig(lr=1e-3, warmup_steps=5)
    ours = _lrs(cfg, [Stage("main", 40)], 40)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=1e-3)
    ref_sched = get_cosine_schedule_with_warmup(opt, 5, 40)
    ref = []
    for _ in range(40):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        ref_sched.step()
    assert ours == pytest.approx(ref, abs=0, rel=1e-12)
    assert ours[0] == 0.0 and ours[5] == pytest.approx(1e-3)


def test_schedule_per_stage_restarts_and_stage_lr_scales():
    cfg = OptimizerConfig(lr=1e-3, warmup_steps=2, schedule_per_stage=True)
    lrs = _lrs(cfg, [Stage("a", 10), Stage("b", 10, lr=5e-4)], 20)
    f = schedule_factor("cosine", 2, 10)
    assert lrs[:10] == pytest.approx([1e-3 * f(i) for i in range(10)])
    assert lrs[10:] == pytest.approx([5e-4 * f(i) for i in range(10)])
    # One schedule over a run cut short: it decays over the steps actually trained.
    whole = _lrs(OptimizerConfig(lr=1.0, warmup_steps=0), [Stage("a", 100)], 10)
    assert whole[-1] == pytest.approx(schedule_factor("cosine", 0, 10)(9))


# ---------------------------------------------------------------------------------------------- sampling


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 23), min_size=1, max_size=3),
    batch=st.integers(1, 4),
    world=st.integers(1, 3),
    start=st.integers(0, 9),
    mix=st.sampled_from(["batch", "sample"]),
    shuffle=st.booleans(),
)
def test_sharded_batches_are_slices_of_the_single_process_stream(lengths, batch, world, start, mix, shuffle):
    """W processes with batch b see exactly one process with batch W·b; starting at batch n = skipping n."""
    kwargs = {"seed": 3, "stream": 1, "mix": mix, "shuffle": shuffle}
    single = iter(ShardedBatchSampler(lengths, batch_size=batch * world, **kwargs))
    for _ in range(start):
        next(single)
    shards = [
        iter(
            ShardedBatchSampler(
                lengths, batch_size=batch, num_processes=world, process_index=r, start_batch=start, **kwargs
            )
        )
        for r in range(world)
    ]
    for _ in range(3):
        assert next(single) == [key for shard in shards for key in next(shard)]


def test_single_source_is_read_in_epoch_permutations():
    sampler = ShardedBatchSampler([10], batch_size=5, seed=1)
    it = iter(sampler)
    keys = [k for _ in range(4) for k in next(it)]
    assert sorted(i for _, i, e in keys if e == 0) == list(range(10))
    assert sorted(i for _, i, e in keys if e == 1) == list(range(10))
    assert [i for _, i, _e in keys[:10]] != [i for _, i, _e in keys[10:]]  # a new order each epoch


def test_mixture_weights_and_batch_purity():
    sampler = ShardedBatchSampler([50, 50, 50], [3.0, 1.0, 0.0], batch_size=4, seed=0, mix="batch")
    sources = []
    for _, batch in zip(range(2000), sampler):
        assert len({s for s, _, _ in batch}) == 1  # one source per batch
        sources.append(batch[0][0])
    counts = np.bincount(sources, minlength=3)
    assert counts[2] == 0 and abs(counts[0] / len(sources) - 0.75) < 0.04
    mixed = next(iter(ShardedBatchSampler([50, 50], batch_size=64, seed=0, mix="sample")))
    assert len({s for s, _, _ in mixed}) == 2


class Counter(torch.utils.data.IterableDataset):
    """A finite stream that splits itself across DataLoader workers, like ShardDataset; epochs shift its values."""

    def __init__(self, offset, n):
        self.offset, self.n, self.epoch = offset, n, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        base = self.offset + 10_000 * self.epoch
        return iter(range(base + worker, base + self.n, workers))


def stream_batches(start, workers, resume="replay", count=6):
    streams = [Counter(0, 7), Counter(100, 5)]
    stream = ShardedStream(streams, batch_size=3, start_batch=start, mix="sample", resume=resume, seed=1)
    loader = torch.utils.data.DataLoader(stream, batch_size=3, num_workers=workers)
    it = iter(loader)
    for _ in range(start - stream.aligned_start(workers)):
        next(it)
    return [next(it).tolist() for _ in range(count)]


@pytest.mark.parametrize("workers", [0, 2])
def test_streams_resume_exactly_by_replay(workers):
    fresh = stream_batches(0, workers, count=9)
    assert len({v for batch in fresh for v in batch if v < 100}) == 7  # every sample of a pass, then a new epoch
    assert any(v >= 10_000 for batch in fresh for v in batch)  # restarted streams moved to epoch 1
    assert stream_batches(3, workers) == fresh[3:9]


def test_streams_resume_by_reshuffle_without_reading():
    resumed = stream_batches(3, 0, resume="reshuffle", count=2)
    assert all(v >= 10_000 for batch in resumed for v in batch)  # fresh epochs, nothing replayed


# ---------------------------------------------------------------------------------------------- EMA


def test_ema_update_state_dict_and_swap():
    layer = torch.nn.Linear(3, 2)
    ema = EMA(layer.named_parameters(), decay=0.9, warmup=False)
    before = {n: p.detach().clone() for n, p in layer.named_parameters()}
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(1.0)
    ema.update()
    for n, p in layer.named_parameters():
        torch.testing.assert_close(ema.shadow[n], 0.9 * before[n] + 0.1 * p.detach())
    other = EMA(torch.nn.Linear(3, 2).named_parameters(), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 1 and other.decay == 0.9
    assert all(torch.equal(other.shadow[n], ema.shadow[n]) for n in ema.shadow)
    ema.store()
    ema.copy_to()
    assert torch.equal(layer.weight, ema.shadow["weight"])
    ema.restore()
    assert torch.equal(layer.weight, before["weight"] + 1.0)
    with pytest.raises(KeyError, match="missing"):
        EMA(torch.nn.Linear(3, 2, bias=False).named_parameters()).load_state_dict(ema.state_dict())


def test_ema_warmup_ramp():
    ema = EMA(torch.nn.Linear(1, 1).named_parameters(), decay=0.999, warmup=True)
    assert ema.current_decay() == pytest.approx(2 / 11)


# ---------------------------------------------------------------------------------------------- checkpoints


def test_rng_state_round_trip(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    ckpt.save_torch(ckpt.capture_rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    ckpt.restore_rng_state(ckpt.load_torch(tmp_path / "rng.pt"))  # weights_only=True load
    got = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


def _fake_checkpoint(run, step, complete=True):
    """A minimal committed checkpoint (trainer state, a model file, the manifest), or a folder without marker."""
    if not complete:
        path = ckpt.checkpoint_root(run) / ckpt.checkpoint_name(step)
        path.mkdir(parents=True)
        return path
    tmp = ckpt.begin_checkpoint(run, step)
    (tmp / "model").mkdir()
    (tmp / "model" / "config.json").write_text("{}")
    return ckpt.commit_checkpoint(tmp, {"step": step})


def test_latest_resolution_skips_incomplete_and_rotation_keeps_newest(tmp_path):
    assert ckpt.latest_checkpoint(tmp_path) is None
    assert ckpt.resolve_checkpoint("latest", tmp_path) is None
    first, second = _fake_checkpoint(tmp_path, 10), _fake_checkpoint(tmp_path, 20)
    _fake_checkpoint(tmp_path, 30, complete=False)  # a write that died before its marker
    assert ckpt.latest_checkpoint(tmp_path) == second
    (ckpt.checkpoint_root(tmp_path) / "latest").write_text("step-00000030\n")  # pointer to an incomplete one
    assert ckpt.latest_checkpoint(tmp_path) == second
    assert ckpt.resolve_checkpoint(tmp_path, "unused") == second  # a run folder resolves to its latest
    assert ckpt.resolve_checkpoint(first, "unused") == first
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
        ckpt.resolve_checkpoint(tmp_path / "nope", tmp_path)
    third = _fake_checkpoint(tmp_path, 40)
    assert ckpt.rotate_checkpoints(tmp_path, 2, protect=third) == [first]
    assert ckpt.list_checkpoints(tmp_path) == [second, third]


def test_safetensors_fallback_for_plain_modules(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 2))
    model[1].weight = torch.nn.Parameter(model[0].weight.T.contiguous())
    ckpt.save_model(model, tmp_path / "m")
    state = ckpt.read_model_state(model, tmp_path / "m")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    from vidtok.modeling_utils import LoadingError

    with pytest.raises(LoadingError):
        ckpt.read_model_state(torch.nn.Linear(2, 2), tmp_path / "m")


# ---------------------------------------------------------------------------------------------- metrics log


def test_metrics_log_truncates_on_resume_and_plots(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in range(1, 6):
        log.write({"step": step, "stage": "a" if step < 4 else "b", "loss": 1.0 / step, "lr": 1e-3})
    log.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "lo')  # a killed run's half-written last line
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5]
    MetricsLog(tmp_path / "metrics.jsonl", resume_step=3).close()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    import matplotlib  # noqa: F401  (the test extra installs vidtok[train])

    out = plot_metrics(tmp_path, tmp_path / "curve.png", smooth=2, log_y=True)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no metric named"):
        plot_metrics(tmp_path, tmp_path / "x.png", keys=["nope"])
    assert not math.isnan(read_metrics(tmp_path)[0]["loss"])
