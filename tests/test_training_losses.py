"""Losses that are not heads: perceptual (LPIPS) and adversarial (3D patch discriminator, hinge, LeCAM, warm-up)."""

from __future__ import annotations

import doctest
import math

import pytest
import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from torch import nn

from vidtok.training import DiscriminatorConfig, OptimizerConfig, Trainer, TrainingConfig, losses, read_metrics
from vidtok.training.losses import (
    AdversarialTraining,
    GANLoss,
    LeCAM,
    PatchDiscriminator3D,
    PerceptualLoss,
    adaptive_weight,
    hinge_d_loss,
    hinge_g_loss,
    non_saturating_g_loss,
)


@pytest.fixture(scope="module")
def perceptual():
    torch.manual_seed(0)
    return PerceptualLoss("alex", random_backbone=True)


def videos(b=2, t=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, size, size, generator=g) * 2 - 1


# ---------------------------------------------------------------------------------------------- perceptual
def test_perceptual_identity_is_zero_and_gradients_reach_only_the_input(perceptual):
    target = videos()
    assert float(perceptual(target, target)) == 0.0
    pred = (target + 0.3 * videos(seed=1)).clamp(-1, 1).requires_grad_(True)
    loss = perceptual(pred, target)
    assert loss.ndim == 0 and float(loss.detach()) > 0
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    params = list(perceptual.parameters())
    assert params and all(not p.requires_grad and p.grad is None for p in params)


def test_perceptual_network_stays_frozen_in_training_mode(perceptual):
    owner = nn.ModuleDict({"perceptual": perceptual}).train()
    assert perceptual.training and not perceptual.lpips.training
    trainable = [p for p in owner.parameters() if p.requires_grad]
    assert trainable == []
    assert perceptual.protocol["comparable"] is False


def test_perceptual_is_the_per_frame_lpips_mean(perceptual):
    pred, target = videos(seed=2), videos(seed=3)
    per_frame = perceptual(pred, target, reduction="none")
    assert per_frame.shape == (2, 3)
    frames = [perceptual.lpips(pred[:, :, i], target[:, :, i]) for i in range(3)]
    torch.testing.assert_close(per_frame, torch.stack(frames, 1))
    torch.testing.assert_close(perceptual(pred, target), per_frame.mean())
    # images (B, 3, H, W) are one-frame videos
    torch.testing.assert_close(perceptual(pred[:, :, 0], target[:, :, 0], reduction="none"), frames[0][:, None])


def test_perceptual_frame_subset_is_seeded_and_matches_those_frames():
    torch.manual_seed(0)
    loss = PerceptualLoss("alex", random_backbone=True, frames_per_clip=2)
    pred, target = videos(b=3, t=5, seed=4), videos(b=3, t=5, seed=5)
    index = loss.frame_indices(3, 5, torch.Generator().manual_seed(7))
    assert index.shape == (3, 2) and bool((index[:, 0] < index[:, 1]).all())
    assert torch.equal(index, loss.frame_indices(3, 5, torch.Generator().manual_seed(7)))
    values = loss(pred, target, generator=torch.Generator().manual_seed(7), reduction="none")
    every = loss.lpips(pred.transpose(1, 2).flatten(0, 1), target.transpose(1, 2).flatten(0, 1)).reshape(3, 5)
    torch.testing.assert_close(values, every.gather(1, index))
    # more frames asked than there are: every frame
    assert torch.equal(loss.frame_indices(2, 2), torch.tensor([[0, 1], [0, 1]]))


def test_perceptual_refuses_bad_inputs(perceptual):
    with pytest.raises(ValueError, match="shapes differ"):
        perceptual(videos(), videos(t=2))
    with pytest.raises(ValueError, match="RGB"):
        perceptual(torch.zeros(1, 1, 2, 32, 32), torch.zeros(1, 1, 2, 32, 32))
    with pytest.raises(ValueError, match="reduction"):
        perceptual(videos(), videos(), reduction="sum")
    with pytest.raises(ValueError, match="frames_per_clip"):
        PerceptualLoss(random_backbone=True, frames_per_clip=0)


# ---------------------------------------------------------------------------------------------- GAN losses
def test_hinge_losses_equal_their_formulas():
    real = torch.tensor([2.0, 0.5, -1.0, 1.0])
    fake = torch.tensor([-2.0, 0.5, 1.0, -0.5])
    # relu(1 - real) = [0, .5, 2, 0] (mean .625); relu(1 + fake) = [0, 1.5, 2, .5] (mean 1.0)
    assert float(hinge_d_loss(real, fake)) == pytest.approx(0.5 * (0.625 + 1.0))
    assert float(hinge_g_loss(fake)) == pytest.approx(0.25)
    expected = sum(math.log1p(math.exp(-v)) for v in fake.tolist()) / 4
    assert float(non_saturating_g_loss(fake)) == pytest.approx(expected)
    # a confident, correct discriminator has zero hinge loss
    assert float(hinge_d_loss(torch.full((2, 1, 1, 2, 2), 3.0), torch.full((2, 1, 1, 2, 2), -3.0))) == 0.0


def test_lecam_equals_its_formula_and_updates_only_in_training():
    reg = LeCAM(decay=0.5)
    real1, fake1 = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    value = reg(real1, fake1)  # first update: the anchors become the batch means, 2 and -0.5
    assert float(reg.ema_real) == 2.0 and float(reg.ema_fake) == -0.5 and int(reg.num_updates) == 1
    expected = (F.relu(real1 + 0.5) ** 2).mean() + (F.relu(2.0 - fake1) ** 2).mean()
    torch.testing.assert_close(value, expected)
    real2, fake2 = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0])
    value = reg(real2, fake2)
    assert float(reg.ema_real) == pytest.approx(0.5 * 2.0 + 0.5 * 0.0)
    assert float(reg.ema_fake) == pytest.approx(0.5 * -0.5 + 0.5 * 1.0)
    expected = (F.relu(real2 - 0.25) ** 2).mean() + (F.relu(1.0 - fake2) ** 2).mean()
    torch.testing.assert_close(value, expected)
    # eval mode: the same formula, the anchors stay put
    reg.eval()
    before = {k: v.clone() for k, v in reg.state_dict().items()}
    torch.testing.assert_close(reg(real1, fake1), reg.regularizer(real1, fake1))
    assert all(torch.equal(before[k], v) for k, v in reg.state_dict().items())
    assert sorted(before) == ["ema_fake", "ema_real", "num_updates"]
    # gradients reach the logits, not the anchors
    logits = torch.tensor([0.0, 1.0], requires_grad=True)
    reg.train()(logits, -logits).backward()
    assert logits.grad is not None and not reg.ema_real.requires_grad


def test_adaptive_weight_equals_a_direct_autograd_computation():
    torch.manual_seed(0)
    layer = nn.Linear(4, 4)
    x = torch.randn(8, 4)
    out = layer(torch.tanh(x))
    nll = out.pow(2).mean()
    g = -torch.sigmoid(out).sum()
    grad_nll = torch.autograd.grad(nll, layer.weight, retain_graph=True)[0]
    grad_g = torch.autograd.grad(g, layer.weight, retain_graph=True)[0]
    expected = grad_nll.norm() / (grad_g.norm() + 1e-4)
    weight = adaptive_weight(nll, g, layer.weight)
    torch.testing.assert_close(weight, expected.detach())
    assert not weight.requires_grad
    (nll + weight * g).backward()  # the graph was kept


def test_adaptive_weight_is_guarded():
    layer = nn.Linear(3, 3)
    out = layer(torch.ones(2, 3))
    nll = out.pow(2).mean()
    other = nn.Parameter(torch.ones(3))
    assert float(adaptive_weight(nll, other.sum(), layer.weight)) == 0.0  # g does not reach the layer
    assert float(adaptive_weight(nll, 0.0 * out.sum(), layer.weight)) == 0.0  # zero gradient: 0, not the clamp
    weight = adaptive_weight(nll * 1e12, out.sum(), layer.weight, max_weight=10.0)
    assert float(weight) == 10.0
    assert float(adaptive_weight(nll * float("nan"), out.sum(), layer.weight)) == 0.0  # non-finite: 0
    with torch.no_grad():
        out = layer(torch.ones(2, 3))
        assert float(adaptive_weight(out.mean(), out.sum(), layer.weight)) == 0.0


# ---------------------------------------------------------------------------------------------- discriminator
@pytest.mark.parametrize(
    ("t", "h", "w", "grid"),
    [(1, 16, 16, (1, 4, 4)), (4, 16, 24, (1, 4, 6)), (5, 32, 32, (2, 8, 8)), (17, 20, 18, (5, 5, 4))],
)
def test_discriminator_output_shapes(t, h, w, grid):
    disc = PatchDiscriminator3D(**PatchDiscriminator3D.tiny_config())
    assert disc.patch_grid(t, h, w) == grid
    assert disc(torch.randn(2, 3, t, h, w)).shape == (2, 1, *grid)


def test_discriminator_options_and_bad_inputs():
    disc = PatchDiscriminator3D(base_channels=4, num_layers=3, max_channels=8, temporal_downsamples=1, norm="none")
    assert disc.patch_grid(8, 32, 32) == (4, 4, 4)
    assert disc(torch.randn(1, 3, 8, 32, 32)).shape == (1, 1, 4, 4, 4)
    assert not any(isinstance(m, nn.GroupNorm) for m in disc.modules())
    assert disc.min_size == 8
    with pytest.raises(ValueError, match="at least 8x8"):
        disc(torch.randn(1, 3, 2, 4, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        disc(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="norm"):
        PatchDiscriminator3D(norm="batch")
    with pytest.raises(ValueError, match="temporal_downsamples"):
        PatchDiscriminator3D(num_layers=2, temporal_downsamples=3)
    with pytest.raises(TypeError):
        PatchDiscriminator3D(3)  # keyword-only config


def test_discriminator_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    disc = PatchDiscriminator3D(**PatchDiscriminator3D.tiny_config(), temporal_downsamples=1)
    disc.save_pretrained(tmp_path / "disc")
    loaded, info = PatchDiscriminator3D.from_pretrained(tmp_path / "disc", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    public = lambda cfg: {k: v for k, v in cfg.items() if not k.startswith("_")}  # noqa: E731
    assert public(loaded.config) == public(disc.config)
    x = torch.randn(2, 3, 3, 16, 16)
    torch.testing.assert_close(loaded.eval()(x), disc.eval()(x))
    assert set(loaded.state_dict()) == set(disc.state_dict())


# ---------------------------------------------------------------------------------------------- GANLoss
def test_warm_up_gives_zero_adversarial_loss_before_start_step():
    torch.manual_seed(0)
    gan = GANLoss(PatchDiscriminator3D.tiny_config(), start_step=5, adversarial_weight=0.5, lecam_weight=0.1)
    real, fake = torch.randn(2, 3, 2, 16, 16), torch.randn(2, 3, 2, 16, 16).requires_grad_(True)
    out = gan.generator_step(fake, step=4)
    assert all(float(v) == 0.0 for v in out.values())
    d_out = gan.discriminator_step(real, fake, step=4)
    assert float(d_out["loss"].detach()) == 0.0 and float(d_out["lecam"]) == 0.0 and int(gan.lecam.num_updates) == 0
    out = gan.generator_step(fake, step=5)
    assert float(out["adversarial_weight"]) == 0.5 and float(out["loss"].detach()) != 0.0
    torch.testing.assert_close(out["loss"].detach(), 0.5 * out["g_loss"])
    out["loss"].backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    d_out = gan.discriminator_step(real, fake, step=5)
    assert int(gan.lecam.num_updates) == 1
    torch.testing.assert_close(d_out["loss"].detach(), d_out["d_loss"] + 0.1 * d_out["lecam"])
    # None means past the warm-up
    assert gan.active(None) and not gan.active(4)


def test_gan_loss_weights_and_options():
    torch.manual_seed(0)
    disc = PatchDiscriminator3D(**PatchDiscriminator3D.tiny_config())
    gan = GANLoss(disc, generator_loss="non_saturating", adversarial_weight=0.3, discriminator_weight=2.0)
    assert gan.discriminator is disc
    layer = nn.Conv3d(3, 3, 1)
    target = torch.randn(1, 3, 2, 16, 16)
    fake = layer(target)
    nll = (fake - target).abs().mean()
    out = gan.generator_step(fake, nll_loss=nll, last_layer=layer.weight)
    logits = disc(fake)
    g = F.softplus(-logits).mean()
    torch.testing.assert_close(out["g_loss"], g.detach())
    expected = 0.3 * adaptive_weight(nll, g, layer.weight)
    torch.testing.assert_close(out["adversarial_weight"], expected)
    fixed = GANLoss(disc, adaptive=False, adversarial_weight=0.3).generator_step(fake, nll_loss=nll, last_layer=None)
    assert float(fixed["adversarial_weight"]) == pytest.approx(0.3)
    d_out = gan.discriminator_step(target, fake)
    torch.testing.assert_close(d_out["loss"], 2.0 * hinge_d_loss(disc(target), disc(fake.detach())))
    assert float(d_out["lecam"]) == 0.0  # LeCAM off by default
    with pytest.raises(ValueError, match="generator_loss"):
        GANLoss(disc, generator_loss="wgan")
    with pytest.raises(ValueError, match="start_step"):
        GANLoss(disc, start_step=-1)
    with pytest.raises(TypeError, match="discriminator"):
        GANLoss("patch")


def test_toy_adversarial_run_moves_the_logits_apart():
    """20 alternating generator/discriminator updates on random tiny videos: finite, and D separates real/fake."""
    set_seed(0)
    perceptual = PerceptualLoss("alex", random_backbone=True, frames_per_clip=1)
    gan = GANLoss(PatchDiscriminator3D.tiny_config(), start_step=0, lecam_weight=0.01, lecam_decay=0.9)
    generator = nn.Sequential(nn.Conv3d(3, 8, 3, padding=1), nn.SiLU(), nn.Conv3d(8, 3, 3, padding=1))
    g_opt = torch.optim.Adam(generator.parameters(), lr=1e-3)
    d_opt = torch.optim.Adam(gan.discriminator.parameters(), lr=2e-3, betas=(0.5, 0.9))
    g = torch.Generator().manual_seed(0)
    real = torch.rand(4, 3, 2, 32, 32, generator=g) * 2 - 1
    gan.train()

    def gap():
        with torch.no_grad():
            return float(gan.discriminator(real).mean() - gan.discriminator(generator(real).tanh()).mean())

    start = gap()
    history = []
    for step in range(20):
        # generator phase (discriminator frozen, as the trainer does)
        gan.discriminator.requires_grad_(False)
        fake = generator(real).tanh()
        nll = (fake - real).abs().mean() + perceptual(fake, real, generator=g)
        adv = gan.generator_step(fake, nll_loss=nll, last_layer=generator[-1].weight, step=step)
        g_opt.zero_grad()
        (nll + adv["loss"]).backward()
        g_opt.step()
        gan.discriminator.requires_grad_(True)
        # discriminator phase
        with torch.no_grad():
            fake = generator(real).tanh()
        d_out = gan.discriminator_step(real, fake, step=step)
        d_opt.zero_grad()
        d_out["loss"].backward()
        d_opt.step()
        history.append({**adv, **{f"d/{k}": v for k, v in d_out.items()}})
    assert all(math.isfinite(float(v.detach())) for record in history for v in record.values())
    assert int(gan.lecam.num_updates) == 20
    end = gap()
    assert end > start + 0.1 and end > 0
    assert float(history[-1]["d/logits_real"]) > float(history[-1]["d/logits_fake"])


class AdversarialAutoencoder(nn.Module):
    """A per-frame autoencoder trained with L1 + LPIPS + GAN through the trainer's two-optimizer mode."""

    def __init__(self, start_step):
        super().__init__()
        self.encoder = nn.Conv3d(3, 4, (1, 4, 4), (1, 2, 2), (0, 1, 1))
        self.decoder = nn.ConvTranspose3d(4, 3, (1, 4, 4), (1, 2, 2), (0, 1, 1))
        self.perceptual = PerceptualLoss("alex", random_backbone=True, frames_per_clip=1)
        self.gan = GANLoss(PatchDiscriminator3D.tiny_config(), start_step=start_step, lecam_weight=0.01)

    def forward(self, video):
        return self.decoder(torch.relu(self.encoder(video)))

    def training_step(self, batch, step):
        video = batch["video"]
        recon = self(video)
        nll = F.l1_loss(recon, video) + self.perceptual(recon, video)
        adv = self.gan.generator_step(recon, nll_loss=nll, last_layer=self.decoder.weight, step=step)
        return {"loss": nll + adv["loss"], "nll": nll.detach(), **{f"gan/{k}": v for k, v in adv.items()}}

    def discriminator_parameters(self):
        return self.gan.discriminator.parameters()

    def discriminator_step(self, batch, step):
        with torch.no_grad():
            recon = self(batch["video"])
        return self.gan.discriminator_step(batch["video"], recon, step=step)


class Clips(torch.utils.data.Dataset):
    def __init__(self, n=16):
        self.x = torch.rand(n, 3, 2, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"video": self.x[i]}


def test_losses_train_through_the_trainer_two_optimizer_mode(tmp_path):
    set_seed(0)
    model = AdversarialAutoencoder(start_step=2)
    lpips_before = {k: v.clone() for k, v in model.perceptual.state_dict().items()}
    cfg = TrainingConfig(
        output_dir=str(tmp_path),
        progress_bar=False,
        log_every=1,
        max_steps=4,
        batch_size=2,
        optimizer=OptimizerConfig(lr=1e-3, warmup_steps=1),
        discriminator=DiscriminatorConfig(lr=1e-3, start_step=2),
    )
    Trainer(model, cfg, Clips()).train()
    records = read_metrics(tmp_path)
    assert [("disc/d_loss" in r) for r in records] == [False, False, True, True]
    assert [r["gan/adversarial_weight"] > 0 for r in records] == [False, False, True, True]
    assert all(math.isfinite(v) for r in records for v in r.values() if isinstance(v, float))
    assert int(model.gan.lecam.num_updates) == 2
    assert all(torch.equal(v, model.perceptual.state_dict()[k]) for k, v in lpips_before.items())


class ReconstructingAutoencoder(nn.Module):
    """A model a layer below training: its training_step returns its loss and its reconstruction."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Conv3d(3, 4, (1, 4, 4), (1, 2, 2), (0, 1, 1))
        self.decoder = nn.ConvTranspose3d(4, 3, (1, 4, 4), (1, 2, 2), (0, 1, 1))
        self.stages = []

    def training_step(self, batch):
        recon = self.decoder(torch.relu(self.encoder(batch["video"])))
        l1 = F.l1_loss(recon, batch["video"])
        return {"loss": l1, "l1": l1.detach(), "reconstruction": recon}

    def configure_stage(self, stage):
        self.stages.append(stage.name)


def test_adversarial_training_wrapper_adds_the_losses():
    set_seed(0)
    gan = GANLoss(PatchDiscriminator3D.tiny_config(), start_step=1, adversarial_weight=0.5)
    perceptual = PerceptualLoss("alex", random_backbone=True)
    wrapper = AdversarialTraining(
        ReconstructingAutoencoder(), gan=gan, perceptual=perceptual, perceptual_weight=0.5, last_layer="decoder.weight"
    )
    batch = {"video": videos(b=2, t=2)}
    warm = wrapper.training_step(batch, step=0)
    assert "reconstruction" not in warm and float(warm["gan/adversarial_weight"]) == 0.0
    torch.testing.assert_close(warm["loss"].detach(), warm["l1"] + 0.5 * warm["perceptual"])
    out = wrapper.training_step(batch, step=1)
    recon = wrapper.model.training_step(batch)["reconstruction"]
    nll = F.l1_loss(recon, batch["video"]) + 0.5 * perceptual(recon, batch["video"])
    g = hinge_g_loss(gan.discriminator(recon))
    weight = 0.5 * adaptive_weight(nll, g, wrapper.model.decoder.weight)
    torch.testing.assert_close(out["gan/adversarial_weight"], weight)
    torch.testing.assert_close(out["loss"].detach(), (nll + weight * g).detach())
    d_out = wrapper.discriminator_step(batch, step=1)
    torch.testing.assert_close(d_out["loss"], hinge_d_loss(gan.discriminator(batch["video"]), gan.discriminator(recon)))
    assert list(wrapper.discriminator_parameters()) == list(gan.discriminator.parameters())


def test_adversarial_training_wrapper_refuses_bad_setups():
    gan = GANLoss(PatchDiscriminator3D.tiny_config())
    with pytest.raises(ValueError, match="last_layer"):
        AdversarialTraining(ReconstructingAutoencoder(), gan=gan, last_layer="decoder.nope")
    with pytest.raises(TypeError, match="GANLoss"):
        AdversarialTraining(ReconstructingAutoencoder(), gan=None)
    with pytest.raises(TypeError, match="training_step"):
        AdversarialTraining(nn.Linear(2, 2), gan=gan)

    class NoReconstruction(ReconstructingAutoencoder):
        def training_step(self, batch):
            out = super().training_step(batch)
            del out["reconstruction"]
            return out

    with pytest.raises(KeyError, match="reconstruction"):
        AdversarialTraining(NoReconstruction(), gan=gan).training_step({"video": videos(b=1, t=1, size=16)})


def test_adversarial_training_wrapper_trains_through_the_trainer(tmp_path):
    set_seed(0)
    wrapper = AdversarialTraining(
        ReconstructingAutoencoder(),
        gan=GANLoss(PatchDiscriminator3D.tiny_config(), start_step=1, lecam_weight=0.01),
        perceptual=PerceptualLoss("alex", random_backbone=True, frames_per_clip=1),
        last_layer="decoder.weight",
    )
    cfg = TrainingConfig(
        output_dir=str(tmp_path),
        progress_bar=False,
        log_every=1,
        max_steps=3,
        batch_size=2,
        optimizer=OptimizerConfig(lr=1e-3, warmup_steps=1),
        discriminator=DiscriminatorConfig(lr=1e-3, start_step=1),
    )
    Trainer(wrapper, cfg, Clips()).train()
    records = read_metrics(tmp_path)
    assert [("disc/d_loss" in r) for r in records] == [False, True, True]
    assert {"l1", "perceptual", "gan/g_loss", "disc/lecam"} <= records[-1].keys()
    assert all(math.isfinite(v) for r in records for v in r.values() if isinstance(v, float))
    assert wrapper.model.stages  # configure_stage reached the model


def test_docstring_examples_run():
    result = doctest.testmod(losses, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
