"""The Trainer in one process: learning, accumulation, exact resume, EMA, GAN steps, stages, atomic checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from torch import nn

from vidtok.shapes import ShapesDataset
from vidtok.training import (
    Callback,
    ConfigError,
    DiscriminatorConfig,
    EMAConfig,
    OptimizerConfig,
    Stage,
    TinyVideoAutoencoder,
    Trainer,
    TrainingConfig,
    read_metrics,
)
from vidtok.training import checkpoint as ckpt


class Crash(RuntimeError):
    pass


class CrashAt(Callback):
    """Simulates a kill: raises after optimizer step ``step`` (which is past the last checkpoint)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, step):
        if step == self.step:
            raise Crash(f"killed after step {step}")


def shapes(length=256):
    return ShapesDataset("train", resolution=16, num_frames=4, length=length, num_objects=1, antialias=False)


def autoencoder(seed=0, **kwargs):
    set_seed(seed)
    return TinyVideoAutoencoder(**{**TinyVideoAutoencoder.tiny_config(), **kwargs})


def config(tmp_path, **kwargs):
    base = {
        "output_dir": str(tmp_path),
        "progress_bar": False,
        "log_every": 1,
        "optimizer": OptimizerConfig(lr=3e-3, warmup_steps=2),
    }
    return TrainingConfig(**{**base, **kwargs})


def losses(run_dir, key="loss"):
    return [r[key] for r in read_metrics(run_dir) if key in r]


def assert_same_weights(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"weights differ: {different}"


# ---------------------------------------------------------------------------------------------- learning


def test_tiny_autoencoder_learns_shapes(tmp_path):
    model = autoencoder()
    out = Trainer(model, config(tmp_path, max_steps=60, batch_size=8), shapes()).train()
    curve = losses(tmp_path)
    assert out.global_step == 60 and len(curve) == 60
    first, last = sum(curve[:10]) / 10, sum(curve[-10:]) / 10
    assert last < 0.7 * first, (first, last)
    record = read_metrics(tmp_path)[-1]
    assert {"loss", "mse", "l1", "lr", "grad_norm", "samples", "samples_per_s", "stage"} <= record.keys()
    assert record["samples"] == 60 * 8
    # The exported model is a save_pretrained folder that loads strictly.
    assert_same_weights(model, TinyVideoAutoencoder.from_pretrained(out.model_dir))


def test_gradient_accumulation_equals_one_big_batch(tmp_path):
    big = autoencoder()
    Trainer(big, config(tmp_path / "big", max_steps=5, batch_size=8), shapes()).train()
    small = autoencoder()
    Trainer(small, config(tmp_path / "acc", max_steps=5, batch_size=2, gradient_accumulation_steps=4), shapes()).train()
    assert losses(tmp_path / "acc") == pytest.approx(losses(tmp_path / "big"), rel=1e-5)
    for (name, p), q in zip(big.named_parameters(), small.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)


# ---------------------------------------------------------------------------------------------- resume


def test_resume_after_a_crash_is_bit_exact_with_ema_and_dropout(tmp_path):
    kwargs = {"max_steps": 8, "batch_size": 4, "save_every": 4, "ema": EMAConfig(decay=0.9)}
    straight = autoencoder(dropout=0.3)  # dropout: resuming must restore the torch RNG too
    ref = Trainer(straight, config(tmp_path / "a", **kwargs), shapes())
    ref.train()

    crashed = Trainer(autoencoder(dropout=0.3), config(tmp_path / "b", **kwargs), shapes(), callbacks=[CrashAt(6)])
    with pytest.raises(Crash):
        crashed.train()
    assert ckpt.latest_checkpoint(tmp_path / "b").name == "step-00000004"

    resumed_model = autoencoder(seed=123, dropout=0.3)  # different init: the checkpoint must overwrite it
    resumed = Trainer(resumed_model, config(tmp_path / "b", resume_from="latest", **kwargs), shapes())
    out = resumed.train()
    assert out.global_step == 8
    assert_same_weights(straight, resumed_model)
    # training time counts the crashed run's seconds up to its checkpoint too
    saved = ckpt.read_trainer_state(tmp_path / "b" / "checkpoints" / "step-00000004")["time"]
    assert 0 < saved < resumed.training_seconds
    assert all(torch.equal(ref.ema.shadow[n], resumed.ema.shadow[n]) for n in ref.ema.shadow)
    assert ref.ema.num_updates == resumed.ema.num_updates == 8
    opt_a, opt_b = ref.optimizer.state_dict(), resumed.optimizer.state_dict()
    assert all(
        torch.equal(opt_a["state"][i][k], opt_b["state"][i][k]) for i in opt_a["state"] for k in opt_a["state"][i]
    )
    # The log of the resumed run is the straight run's (records after the checkpoint were redone, not duplicated).
    assert [r["step"] for r in read_metrics(tmp_path / "b")] == list(range(1, 9))
    assert losses(tmp_path / "b") == losses(tmp_path / "a")
    # The EMA weights are exported as a loadable model.
    ema_model = TinyVideoAutoencoder.from_pretrained(out.ema_dir)
    for name, p in ema_model.named_parameters():
        assert torch.equal(p, ref.ema.shadow[name])


def test_resume_continues_the_data_order_with_workers(tmp_path):
    kwargs = {"max_steps": 6, "batch_size": 4, "save_every": 3, "num_workers": 2}
    straight = autoencoder()
    Trainer(straight, config(tmp_path / "a", **kwargs), shapes()).train()
    with pytest.raises(Crash):
        Trainer(autoencoder(), config(tmp_path / "b", **kwargs), shapes(), callbacks=[CrashAt(4)]).train()
    resumed = autoencoder()
    Trainer(resumed, config(tmp_path / "b", **kwargs), shapes()).train(resume_from=tmp_path / "b")
    assert_same_weights(straight, resumed)


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_save = ckpt.save_torch

    def flaky_save(obj, path):
        calls["n"] += 1
        if "optimizer" in str(path) and ".tmp-step-00000004" in str(path):
            with open(path, "wb") as f:
                f.write(b"half a file")  # a partial write, then the process dies
            raise Crash("disk died mid-save")
        real_save(obj, path)

    monkeypatch.setattr(ckpt, "save_torch", flaky_save)
    kwargs = {"max_steps": 6, "batch_size": 4, "save_every": 2}
    with pytest.raises(Crash):
        Trainer(autoencoder(), config(tmp_path, **kwargs), shapes()).train()
    root = ckpt.checkpoint_root(tmp_path)
    assert (root / ".tmp-step-00000004").is_dir()  # the interrupted write
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-00000002"]
    assert (root / "latest").read_text().strip() == "step-00000002"
    good = ckpt.latest_checkpoint(tmp_path)
    assert ckpt.read_trainer_state(good)["step"] == 2
    ckpt.read_model_state(autoencoder(), good / "model")  # loads strictly

    monkeypatch.setattr(ckpt, "save_torch", real_save)
    out = Trainer(autoencoder(), config(tmp_path, resume_from="latest", **kwargs), shapes()).train()
    assert out.global_step == 6
    assert not (root / ".tmp-step-00000004").exists()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-00000002", "step-00000004", "step-00000006"]


def test_keep_last_rotates_checkpoints(tmp_path):
    Trainer(autoencoder(), config(tmp_path, max_steps=5, batch_size=2, save_every=1, keep_last=2), shapes()).train()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-00000004", "step-00000005"]


# ---------------------------------------------------------------------------------------------- GAN


class Points(torch.utils.data.Dataset):
    def __init__(self, n=64, dim=4):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, dim, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i]}


class ToyGAN(nn.Module):
    """Generator + discriminator; parameter hooks record which phase produced which gradients."""

    def __init__(self):
        super().__init__()
        self.gen = nn.Linear(4, 4)
        self.disc = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        self.phase = None
        self.grads = set()
        for name, p in self.named_parameters():
            p.register_hook(self._recorder(name.split(".")[0]))

    def _recorder(self, group):
        return lambda grad: self.grads.add((self.phase, group))

    def training_step(self, batch, step):
        self.phase = "generator"
        x = batch["x"]
        fake = self.gen(x)
        rec = (fake - x).pow(2).mean()
        adv = F.softplus(-self.disc(fake)).mean()  # gradients flow through the discriminator into the generator
        return {"loss": rec + 0.1 * adv, "rec": rec}

    def discriminator_parameters(self):
        return self.disc.parameters()

    def discriminator_step(self, batch):
        self.phase = "discriminator"
        x = batch["x"]
        fake = self.gen(x)  # deliberately not detached: the trainer freezes the generator in this phase
        return {"loss": F.softplus(-self.disc(x)).mean() + F.softplus(self.disc(fake)).mean()}


class Snapshots(Callback):
    def __init__(self):
        self.at = {}

    def on_step_end(self, trainer, step):
        self.at[step] = {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_gan_alternates_generator_and_discriminator_steps(tmp_path):
    set_seed(0)
    model = ToyGAN()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    snaps = Snapshots()
    cfg = config(tmp_path, max_steps=6, batch_size=8, discriminator=DiscriminatorConfig(lr=1e-2, start_step=2))
    Trainer(model, cfg, Points(), callbacks=[snaps]).train()
    gen_keys = [k for k in initial if k.startswith("gen.")]
    disc_keys = [k for k in initial if k.startswith("disc.")]
    # Before start_step only the generator trains, although its loss backpropagates through the discriminator.
    assert all(not torch.equal(snaps.at[2][k], initial[k]) for k in gen_keys)
    assert all(torch.equal(snaps.at[2][k], initial[k]) for k in disc_keys)
    assert all(not torch.equal(snaps.at[6][k], snaps.at[2][k]) for k in disc_keys)
    # Each phase produced gradients only for its own parameters.
    assert model.grads == {("generator", "gen"), ("discriminator", "disc")}
    records = read_metrics(tmp_path)
    assert [("disc/loss" in r) for r in records] == [False, False, True, True, True, True]
    assert {"loss", "rec", "lr", "grad_norm", "disc/lr", "disc/grad_norm"} <= records[-1].keys()


def test_gan_resume_is_bit_exact(tmp_path):
    kwargs = {"max_steps": 6, "batch_size": 8, "save_every": 3, "discriminator": DiscriminatorConfig(start_step=1)}
    set_seed(0)
    straight = ToyGAN()
    Trainer(straight, config(tmp_path / "a", **kwargs), Points()).train()
    set_seed(0)
    with pytest.raises(Crash):
        Trainer(ToyGAN(), config(tmp_path / "b", **kwargs), Points(), callbacks=[CrashAt(5)]).train()
    assert (ckpt.latest_checkpoint(tmp_path / "b") / "discriminator_optimizer.pt").is_file()
    resumed = ToyGAN()
    Trainer(resumed, config(tmp_path / "b", resume_from="latest", **kwargs), Points()).train()
    assert_same_weights(straight, resumed)


# ---------------------------------------------------------------------------------------------- stages


class Tagged(torch.utils.data.Dataset):
    def __init__(self, tag, n=32):
        self.tag, self.n = tag, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": torch.full((4,), float(i)), "source": self.tag}


class StageModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.configured = []
        self.seen = []
        self.loss_kind = None

    def configure_stage(self, stage):
        self.configured.append(stage.name)
        self.loss_kind = stage.options.get("loss", "default")

    def training_step(self, batch, step):
        self.seen.append((step, set(batch["source"].tolist()), self.loss_kind))
        return {"loss": self.lin(batch["x"] / 32).pow(2).mean()}


STAGES = [
    Stage("images", 3, data={"images": 1.0}, options={"loss": "l2"}),
    Stage("mixed", 4, data={"images": 1.0, "videos": 1.0}, mix="sample"),
    Stage("videos", 3, data={"videos": 1.0}, options={"loss": "gmm"}),
]


def test_stages_switch_data_and_losses_at_the_right_steps(tmp_path):
    model = StageModel()
    data = {"images": Tagged(0), "videos": Tagged(1)}
    Trainer(model, config(tmp_path, stages=STAGES, batch_size=16, keep_last=None, save_every=100), data).train()
    assert model.configured == ["images", "mixed", "videos"]
    assert [s for s, _, _ in model.seen] == list(range(10))
    assert all(src == {0} and loss == "l2" for step, src, loss in model.seen if step < 3)
    assert all(src == {0, 1} and loss == "default" for step, src, loss in model.seen if 3 <= step < 7)
    assert all(src == {1} and loss == "gmm" for step, src, loss in model.seen if step >= 7)
    assert [r["stage"] for r in read_metrics(tmp_path)] == ["images"] * 3 + ["mixed"] * 4 + ["videos"] * 3
    # A checkpoint closes every stage.
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-00000003", "step-00000007", "step-00000010"]

    resumed = StageModel()  # resuming inside "mixed" configures that stage (only)
    Trainer(resumed, config(tmp_path, stages=STAGES, batch_size=16), data).train(
        resume_from=ckpt.checkpoint_root(tmp_path) / "step-00000003"
    )
    assert resumed.configured == ["mixed", "videos"]
    assert [s for s, _, _ in resumed.seen] == list(range(3, 10))
    assert [src for _, src, _ in resumed.seen] == [src for _, src, _ in model.seen[3:]]


def test_max_steps_can_cut_stages_short(tmp_path):
    model = StageModel()
    data = {"images": Tagged(0), "videos": Tagged(1)}
    out = Trainer(model, config(tmp_path, stages=STAGES, max_steps=5, batch_size=4), data).train()
    assert out.global_step == 5 and model.configured == ["images", "mixed"]


# ---------------------------------------------------------------------------------------------- errors


def test_clear_errors(tmp_path):
    data = {"images": Tagged(0)}
    with pytest.raises(ConfigError, match=r"stages\.1\.data: unknown dataset\(s\) \['videos'\]"):
        Trainer(StageModel(), config(tmp_path, stages=STAGES), data)
    with pytest.raises(TypeError, match="has no training_step"):
        Trainer(nn.Linear(2, 2), config(tmp_path, max_steps=1), data)

    class NoLoss(StageModel):
        def training_step(self, batch, step):
            return {"mse": self.lin(batch["x"]).mean()}

    with pytest.raises(TypeError, match="must return a dict of tensors with a 'loss' entry"):
        Trainer(NoLoss(), config(tmp_path, max_steps=1, batch_size=2), data).train()
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
        Trainer(StageModel(), config(tmp_path, max_steps=1), data).train(resume_from=tmp_path / "missing")


def test_tensorboard_tracker(tmp_path):
    import tensorboard  # noqa: F401  (the test extra installs vidtok[train])

    Trainer(autoencoder(), config(tmp_path, max_steps=2, batch_size=2, trackers=["tensorboard"]), shapes()).train()
    assert list(tmp_path.rglob("events.out.tfevents.*"))
    assert json.loads((tmp_path / "training_config.json").read_text())["trackers"] == ["tensorboard"]


# ---------------------------------------------------------------------------------------------- transformers models


class Tokens(torch.utils.data.Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        return {"ids": torch.randint(0, 50, (12,), generator=torch.Generator().manual_seed(i))}


def tiny_lm():
    from transformers import GPT2Config, GPT2LMHeadModel

    class TinyLM(GPT2LMHeadModel):
        def training_step(self, batch):
            return {"loss": self(input_ids=batch["ids"], labels=batch["ids"]).loss}

    set_seed(0)
    return TinyLM(GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2))


def test_transformers_model_with_tied_weights_checkpoints_and_resumes(tmp_path):
    kwargs = {"max_steps": 4, "batch_size": 4, "save_every": 2}
    straight = tiny_lm()  # GPT-2 ties lm_head to the token embedding; dropout makes the RNG matter
    Trainer(straight, config(tmp_path / "a", **kwargs), Tokens()).train()
    with pytest.raises(Crash):
        Trainer(tiny_lm(), config(tmp_path / "b", **kwargs), Tokens(), callbacks=[CrashAt(3)]).train()
    assert (ckpt.latest_checkpoint(tmp_path / "b") / "model" / "model.safetensors").is_file()  # save_pretrained
    resumed = tiny_lm()
    Trainer(resumed, config(tmp_path / "b", resume_from="latest", **kwargs), Tokens()).train()
    assert_same_weights(straight, resumed)
    assert resumed.lm_head.weight is resumed.transformer.wte.weight


# ---------------------------------------------------------------------------------------------- streams


class TaggedStream(torch.utils.data.IterableDataset):
    """A deterministic stream that splits itself across DataLoader workers (as ShardDataset does)."""

    def __init__(self, tag, n=20):
        self.tag, self.n, self.epoch = tag, n, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for i in range(worker, self.n, workers):
            yield {"x": torch.full((4,), float(i + 100 * self.epoch)), "source": self.tag}


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_datasets_train_in_stages_and_resume_exactly(tmp_path, workers):
    stages = [Stage("a", 3, data={"a": 1.0}), Stage("ab", 4, data={"a": 1.0, "b": 1.0}, mix="sample")]
    kwargs = {"stages": stages, "batch_size": 4, "save_every": 2, "num_workers": workers}

    def data():
        return {"a": TaggedStream(0), "b": TaggedStream(1, n=9)}

    set_seed(0)
    straight = StageModel()
    Trainer(straight, config(tmp_path / "a", **kwargs), data()).train()
    assert {s for _, src, _ in straight.seen[3:] for s in src} == {0, 1}
    set_seed(0)
    with pytest.raises(Crash):
        Trainer(StageModel(), config(tmp_path / "b", **kwargs), data(), callbacks=[CrashAt(5)]).train()
    resumed = StageModel()
    Trainer(resumed, config(tmp_path / "b", resume_from="latest", **kwargs), data()).train()
    assert_same_weights(straight, resumed)
    assert resumed.seen == straight.seen[4:]
