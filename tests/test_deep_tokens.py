"""DeepTokenizer (DiCoDe §3.1–3.2): shapes, causality, decoding, training, conditioning modes, latent route."""

from __future__ import annotations

import pytest
import torch

from vidtok.tokenizers import TOKENIZERS
from vidtok.tokenizers.deep_tokens import DeepTokenizer


def _tiny(**overrides) -> DeepTokenizer:
    torch.manual_seed(0)
    kwargs = DeepTokenizer.tiny_config()
    denoiser = overrides.pop("denoiser_kwargs", {})
    kwargs["denoiser_kwargs"] = {**kwargs["denoiser_kwargs"], **denoiser}
    kwargs.update(overrides)
    return DeepTokenizer(**kwargs).eval()


def _video(b=2, t=9, size=16, seed=0) -> torch.Tensor:
    return torch.rand(b, 3, t, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def tok() -> DeepTokenizer:
    return _tiny()


def test_registered_and_compression(tok):
    assert TOKENIZERS.get("deep_tokens") is DeepTokenizer
    assert tok.temporal_compression == 4
    assert tok.spatial_compression is None
    assert tok.token_dim == 16
    assert tok.tokens_per_step(256, 256) == 4
    assert tok.tokens_per_second(8.0, 16, 16) == pytest.approx(8.0)  # 2 keyframes/s x 4 tokens
    with pytest.raises(TypeError, match="continuous"):
        tok.bits_per_pixel(9, 16, 16)


def test_encode_shapes_strides_and_images(tok):
    video = _video(t=9)
    assert tok.encode(video).tokens.shape == (2, 3, 4, 16)  # keyframes 0, 4, 8
    assert tok.encode(video, frame_stride=8).tokens.shape == (2, 2, 4, 16)
    assert tok.encode(video, frame_stride=3).tokens.shape == (2, 3, 4, 16)  # 0, 3, 6 (frames 7-8 dropped)
    assert tok.encode(_video(t=1)).tokens.shape == (2, 1, 4, 16)  # an image is one keyframe


def test_encode_is_causal_per_keyframe(tok):
    video = _video(b=1, t=9)
    base = tok.encode(video, frame_stride=4).tokens
    other = video.clone()
    other[:, :, [1, 2, 3, 5, 6, 7]] = torch.rand_like(other[:, :, [1, 2, 3, 5, 6, 7]]) * 2 - 1
    assert torch.equal(tok.encode(other, frame_stride=4).tokens, base)  # non-keyframes never matter
    key = video.clone()
    key[:, :, 4] = -key[:, :, 4]
    changed = tok.encode(key, frame_stride=4).tokens
    assert torch.equal(changed[:, 0], base[:, 0]) and torch.equal(changed[:, 2], base[:, 2])
    assert not torch.allclose(changed[:, 1], base[:, 1])
    # Batch independence: a keyframe's tokens do not depend on other videos of the batch.
    both = tok.encode(torch.cat([video, _video(b=1, seed=5)]), frame_stride=4).tokens
    assert torch.allclose(both[:1], base, atol=1e-5)


def test_decode_shapes_stitching_and_determinism(tok):
    tokens = tok.encode(_video(t=9), frame_stride=4).tokens
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    a = tok.decode(tokens, num_inference_steps=2, generator=g(0), frame_stride=4, progress=False)
    assert a.shape == (2, 3, 9, 16, 16)  # (S - 1) f + 1
    assert a.min() >= -1 and a.max() <= 1
    b = tok.decode(tokens, num_inference_steps=2, generator=g(0), frame_stride=4, progress=False)
    assert torch.equal(a, b)
    c = tok.decode(tokens, num_inference_steps=2, generator=g(1), frame_stride=4, progress=False)
    assert not torch.equal(a, c)
    # Clips are batched; chunking them does not change the result for explicit noise.
    noise = torch.randn(4, 3, 5, 16, 16, generator=g(2))
    full = tok.decode(tokens, num_inference_steps=2, frame_stride=4, latents=noise, progress=False)
    chunked = tok.decode(
        tokens, num_inference_steps=2, frame_stride=4, latents=noise, clip_batch_size=1, progress=False
    )
    assert torch.allclose(full, chunked, atol=1e-5)
    # The shared boundary frame comes from the first clip of each pair once.
    tokens_a = tokens[:, :2]
    first = tok.decode(tokens_a, num_inference_steps=2, frame_stride=4, latents=noise[[0, 2]], progress=False)
    assert torch.allclose(full[:, :, :5], first, atol=1e-5)


def test_decode_image_and_other_sizes(tok):
    tokens = tok.encode(_video(t=1)).tokens
    img = tok.decode(tokens, num_inference_steps=1, generator=torch.Generator().manual_seed(0), progress=False)
    assert img.shape == (2, 3, 1, 16, 16)
    wide = tok.decode(tokens, num_inference_steps=1, height=16, width=24, progress=False)
    assert wide.shape == (2, 3, 1, 16, 24)


def test_guidance_and_eta():
    tok = _tiny()
    with torch.no_grad():  # the output layer starts at zero: give it weights so guidance has something to scale
        tok.denoiser.conv_out.weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(0))
    tokens = tok.encode(_video(b=1, t=5)).tokens
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = tok.decode(tokens, num_inference_steps=2, generator=g(), progress=False)
    guided = tok.decode(
        tokens, num_inference_steps=2, guidance_scale=7.5, guidance_rescale=0.7, generator=g(), progress=False
    )
    stochastic = tok.decode(tokens, num_inference_steps=2, eta=1.0, generator=g(), progress=False)
    assert plain.shape == guided.shape == stochastic.shape == (1, 3, 5, 16, 16)
    assert not torch.equal(plain, guided)
    assert torch.isfinite(guided).all()


def test_ddim_eta_one_never_takes_the_root_of_a_negative_number():
    # Zero-terminal-SNR betas: the first DDIM step's eta = 1 variance equals 1 - alpha_prev, and diffusers'
    # (1 - alpha_prev - std**2) ** 0.5 then rounds below zero for some step counts (NaN frames at 50 steps).
    sched = _tiny()._make_scheduler("ddim")
    for steps in range(1, 101):
        sched.set_timesteps(steps)
        for t in sched.timesteps.tolist():
            prev = t - sched.config.num_train_timesteps // steps
            alpha_prev = sched.alphas_cumprod[prev] if prev >= 0 else sched.final_alpha_cumprod
            std = 1.0 * sched._get_variance(t, prev) ** 0.5
            assert 1 - alpha_prev - std**2 >= 0, (steps, t)
    tok = _tiny()
    with torch.no_grad():
        tok.denoiser.conv_out.weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(0))
    tokens = tok.encode(_video(b=1, t=5)).tokens
    out = tok.decode(
        tokens, num_inference_steps=50, eta=1.0, generator=torch.Generator().manual_seed(0), progress=False
    )
    assert torch.isfinite(out).all()
    # NaN never leaves decode as frames: bad tokens are refused, a NaN produced inside is an error.
    with pytest.raises(ValueError, match="NaN or inf"):
        tok.decode(
            tokens.clone().index_fill_(1, torch.tensor([0]), float("nan")), num_inference_steps=1, progress=False
        )
    with torch.no_grad():
        tok.denoiser.conv_out.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="NaN or inf frames"):
        tok.decode(tokens, num_inference_steps=1, progress=False)


def test_strength_starts_from_the_noised_preview(tok):
    tokens = tok.encode(_video(b=1, t=5)).tokens
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    half = tok.decode(tokens, num_inference_steps=4, strength=0.5, generator=g(), progress=False)
    assert half.shape == (1, 3, 5, 16, 16)
    assert torch.equal(half, tok.decode(tokens, num_inference_steps=4, strength=0.5, generator=g(), progress=False))
    assert not torch.equal(half, tok.decode(tokens, num_inference_steps=4, generator=g(), progress=False))
    with pytest.raises(ValueError, match="strength"):
        tok.decode(tokens, strength=0.0, progress=False)
    plain = _tiny(denoiser_kwargs={"spatial_condition": False})
    with pytest.raises(ValueError, match="preview"):
        plain.decode(plain.encode(_video(b=1, t=5)).tokens, strength=0.5, progress=False)


def test_progress_bar_can_be_disabled(tok, capsys):
    tokens = tok.encode(_video(b=1, t=5)).tokens
    tok.decode(tokens, num_inference_steps=1, progress=False)
    assert "decoding" not in capsys.readouterr().err
    tok.decode(tokens, num_inference_steps=1, progress=True)
    assert "deep tokens: decoding" in capsys.readouterr().err


def test_training_step_loss_and_strides():
    model = _tiny().train()
    out = model.training_step({"video": _video(t=9), "caption": ["x", "y"]}, generator=torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "diffusion_loss", "preview_loss"}
    assert out["loss"].ndim == 0 and out["loss"].requires_grad
    again = model.training_step({"video": _video(t=9)}, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out["loss"], again["loss"])
    # Random strides come from the clip length: a 2-frame clip can only use stride 1.
    assert torch.isfinite(model.training_step(_video(t=2))["loss"])
    # Frame subsets (train_frames) still train every parameter.
    sub = _tiny(train_frames=3, train_strides=[4]).train()
    loss = sub.training_step({"video": _video(t=9)}, generator=torch.Generator().manual_seed(1))["loss"]
    loss.backward()
    assert all(p.grad is not None for p in sub.parameters() if p.requires_grad)


@pytest.mark.parametrize("mode", ["half", "interpolate", "both"])
@pytest.mark.parametrize("spatial", [True, False])
def test_context_modes(mode, spatial):
    model = _tiny(context_mode=mode, denoiser_kwargs={"spatial_condition": spatial}).train()
    loss = model.training_step({"video": _video(t=5)}, generator=torch.Generator().manual_seed(0))["loss"]
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not dead
    tokens = model.eval().encode(_video(b=1, t=5)).tokens
    assert model.decode(tokens, num_inference_steps=1, progress=False).shape == (1, 3, 5, 16, 16)
    if not spatial:
        with pytest.raises(RuntimeError, match="spatial_condition"):
            model.preview(tokens)


def test_half_assignment_reads_head_then_rear():
    model = _tiny(context_mode="half")
    head, rear = torch.zeros(1, 4, 16), torch.ones(1, 4, 16)
    positions = torch.linspace(0, 1, 5)
    ctx = model.denoiser.frame_context(head, rear, positions)
    assert ctx.shape == (5, 4, 16)
    assert ctx[:2].eq(0).all() and ctx[2:].eq(1).all()  # a < 0.5 -> head, else rear
    interp = _tiny(context_mode="interpolate").denoiser.frame_context(head, rear, positions)
    assert interp[:, 0, 0].tolist() == pytest.approx(positions.tolist())


def test_unconditional_tokens_grey_and_learned():
    grey = _tiny(uncond="grey")
    expected = grey.encode(torch.zeros(1, 3, 1, 16, 16)).tokens[0, 0]
    assert torch.allclose(grey.unconditional_tokens(), expected, atol=1e-6)
    learned = _tiny(uncond="learned")
    assert learned.unconditional_tokens() is learned.null_tokens


def test_preview_shape(tok):
    tokens = tok.encode(_video(t=9)).tokens
    assert tok.preview(tokens).shape == (2, 3, 9, 16, 16)


def test_latent_space_route_with_a_tiny_vae():
    vae = {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
        "block_out_channels": [8, 16],
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 4,
        "sample_size": 16,
    }
    model = _tiny(
        vae_config=vae,
        denoiser_kwargs={
            "block_channels": [16],
            "attention_levels": [True],
            "temporal_levels": [True],
            "spatial_upsample": 1,
        },
    )
    assert model.latent_scale == pytest.approx(0.18215)
    assert not any(p.requires_grad for p in model.autoencoder.parameters())
    model.train()
    loss = model.training_step({"video": _video(t=5)}, generator=torch.Generator().manual_seed(0))["loss"]
    loss.backward()
    model.eval()
    tokens = model.encode(_video(b=1, t=5)).tokens
    out = model.decode(tokens, num_inference_steps=1, generator=torch.Generator().manual_seed(0), progress=False)
    assert out.shape == (1, 3, 5, 16, 16)


def test_frozen_encoder_gets_no_gradient():
    model = _tiny(freeze_encoder=True).train()
    model.training_step(_video(t=5), generator=torch.Generator().manual_seed(0))["loss"].backward()
    assert all(p.grad is None and not p.requires_grad for p in model.frame_encoder.parameters())
    assert all(p.grad is not None for p in model.resampler.parameters())


def test_clear_errors(tok):
    with pytest.raises(ValueError, match="channels"):
        tok.encode(torch.zeros(1, 4, 5, 16, 16))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        tok.encode(torch.full((1, 3, 5, 16, 16), 3.0))
    with pytest.raises(TypeError, match="floating"):
        tok.encode(torch.zeros(1, 3, 5, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="frame_stride"):
        tok.encode(_video(), frame_stride=-1)
    with pytest.raises(ValueError, match=r"tokens must be \(B, S, 4, 16\)"):
        tok.decode(torch.zeros(1, 2, 5, 16))
    with pytest.raises(ValueError, match="divisible"):
        tok.decode(torch.zeros(1, 2, 4, 16), height=15, width=16, progress=False)
    with pytest.raises(ValueError, match="at least 2 frames"):
        tok.training_step(_video(t=1))
    with pytest.raises(ValueError, match="context_mode"):
        _tiny(context_mode="middle")
    with pytest.raises(ValueError, match="uncond"):
        _tiny(uncond="black")
    with pytest.raises(ValueError, match="unknown frame encoder"):
        _tiny(encoder="resnet50")


def test_save_load_decodes_identically(tok, tmp_path):
    tok.save_pretrained(tmp_path / "tok")
    again = DeepTokenizer.from_pretrained(tmp_path / "tok")
    video = _video(b=1, t=5)
    t1, t2 = tok.encode(video).tokens, again.encode(video).tokens
    assert torch.equal(t1, t2)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(
        tok.decode(t1, num_inference_steps=2, generator=g(), progress=False),
        again.decode(t2, num_inference_steps=2, generator=g(), progress=False),
    )


def test_trains_through_the_trainer(tmp_path):
    from accelerate.utils import set_seed

    from vidtok.shapes import ShapesDataset
    from vidtok.training import Trainer, TrainingConfig

    set_seed(0)
    model = _tiny()
    data = ShapesDataset("train", resolution=16, num_frames=5, length=16)
    cfg = TrainingConfig(output_dir=str(tmp_path), max_steps=2, batch_size=2, progress_bar=False, log_every=1)
    out = Trainer(model, cfg, data).train()
    assert out.global_step == 2
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in Trainer.__dict__.get("history", []) or [])


def test_preview_only_stage_skips_the_denoiser():
    from vidtok.training import Stage

    tok = DeepTokenizer(**DeepTokenizer.tiny_config())
    video = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    tok.configure_stage(Stage("preview", 1, options={"diffusion": False}))
    out = tok.training_step({"video": video}, generator=torch.Generator().manual_seed(0))
    assert out["diffusion_loss"] == 0 and torch.equal(out["loss"].detach(), out["preview_loss"])
    out["loss"].backward()
    assert tok.denoiser.conv_in.weight.grad is None  # the UNet never ran
    assert tok.resampler.proj_out.weight.grad is not None and tok.denoiser.spatial.preview.weight.grad is not None
    tok.configure_stage(Stage("diffusion", 1, options={"diffusion": True}))
    assert tok.training_step({"video": video}, generator=torch.Generator().manual_seed(0))["diffusion_loss"] > 0
    with pytest.raises(ValueError, match="unknown DeepTokenizer stage options"):
        tok.configure_stage(Stage("x", 1, options={"lr": 1.0}))
    plain = DeepTokenizer(**{**DeepTokenizer.tiny_config(), "denoiser_kwargs": {"spatial_condition": False}})
    with pytest.raises(ValueError, match="spatial_condition"):
        plain.configure_stage(Stage("preview", 1, options={"diffusion": False}))


@pytest.mark.parametrize("num_queries", [4, 8])
def test_token_grid_preview_reads_square_and_oblong_token_grids(num_queries):
    cfg = DeepTokenizer.tiny_config()
    cfg = {
        **cfg,
        "num_queries": num_queries,
        "resampler_pooled_queries": True,
        "denoiser_kwargs": {**cfg["denoiser_kwargs"], "spatial_token_grid": True, "spatial_res_blocks": 1},
    }
    tok = DeepTokenizer(**cfg)
    video = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    tokens = tok.encode(video).tokens
    assert tokens.shape == (2, 2, num_queries, 16)
    assert tok.preview(tokens).shape == video.shape
    tok.training_step({"video": video}, generator=torch.Generator().manual_seed(0))["loss"].backward()
    assert all(p.grad is not None for p in tok.denoiser.spatial.token_grid.parameters())


def test_freeze_tokens_stage_trains_the_decoder_only(tmp_path):
    from accelerate.utils import set_seed

    from vidtok.shapes import ShapesDataset
    from vidtok.training import Stage, Trainer, TrainingConfig

    set_seed(0)
    model = _tiny(train_strides=[4])
    video = _video(b=2, t=5)
    before = model.eval().encode(video).tokens
    denoiser_before = {k: v.clone() for k, v in model.denoiser.state_dict().items()}
    model.configure_stage(Stage("decoder", 1, options={"freeze_tokens": True}))
    out = model.train().training_step(video, generator=torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert all(p.grad is None for p in [*model.frame_encoder.parameters(), *model.resampler.parameters()])
    assert model.denoiser.spatial.preview.weight.grad is not None and model.denoiser.conv_in.weight.grad is not None
    assert model.frame_encoder.training  # the train/eval mode is restored after the frozen pass
    # Learned unconditional tokens belong to the decoder: they get the same gradient with frozen tokens.
    grads = []
    for freeze in (False, True):
        learned = _tiny(train_strides=[4], uncond="learned", cond_dropout=0.99)
        with torch.no_grad():  # zero-initialized output layers would give the null tokens no gradient at all
            for p in [learned.null_tokens, *learned.denoiser.parameters()]:
                if not p.any():
                    p.normal_(0, 0.02, generator=torch.Generator().manual_seed(1))
        learned.configure_stage(Stage("decoder", 1, options={"freeze_tokens": freeze}))
        learned.train().training_step(video, generator=torch.Generator().manual_seed(0))["loss"].backward()
        grads.append(learned.null_tokens.grad)
    assert grads[1] is not None and grads[1].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0])
    # Through the trainer: the tokens stay bit-identical while the decoder moves.
    model.zero_grad(set_to_none=True)
    data = ShapesDataset("train", resolution=16, num_frames=5, length=8)
    stages = [Stage("decoder", 3, options={"freeze_tokens": True})]
    cfg = TrainingConfig(output_dir=str(tmp_path), stages=stages, batch_size=2, progress_bar=False, log_every=1)
    Trainer(model, cfg, data).train()
    assert torch.equal(model.eval().encode(video).tokens, before)
    assert any(not torch.equal(v, model.denoiser.state_dict()[k]) for k, v in denoiser_before.items())


def test_with_decoder_config_keeps_the_tokens_and_matching_decoder_weights():
    from vidtok.data.token_cache import tokenizer_provenance

    model = _tiny()
    video = _video(b=1, t=5)
    wider, fresh = model.with_decoder_config(denoiser_kwargs={"spatial_dim": 64}, cond_dropout=0.2)
    assert wider.config.denoiser_kwargs["spatial_dim"] == 64
    assert wider.config.denoiser_kwargs["block_channels"] == [16, 32]  # merged, not replaced
    assert wider.config.cond_dropout == 0.2 and not wider.training  # mode carried over
    assert torch.equal(wider.encode(video).tokens, model.encode(video).tokens)
    # Exactly the resized spatial decoder starts fresh; every other tensor is copied.
    assert fresh and all(name.startswith("denoiser.spatial.") for name in fresh)
    old, new = model.state_dict(), wider.state_dict()
    for name, value in new.items():
        if name not in fresh:
            assert torch.equal(value, old[name]), name
    assert {n for n in new if n in old and old[n].shape != new[n].shape} <= set(fresh)
    # Token caches built with the old tokenizer stay valid for the new one.
    digest = lambda m: tokenizer_provenance(m, weights=True)["token_weights_sha256"]  # noqa: E731
    assert digest(wider) == digest(model)
    # A full-resolution refinement added to a trained decoder starts as the identity: same preview and frames.
    refined, fresh = model.with_decoder_config(denoiser_kwargs={"spatial_refine_channels": 8})
    assert fresh and all(name.startswith("denoiser.spatial.refine.") for name in fresh)
    tokens = model.encode(video).tokens
    torch.testing.assert_close(refined.preview(tokens), model.preview(tokens), rtol=0, atol=0)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    torch.testing.assert_close(
        refined.decode(tokens, num_inference_steps=2, generator=g(), progress=False),
        model.decode(tokens, num_inference_steps=2, generator=g(), progress=False),
    )
    from vidtok.training import Stage

    refined.configure_stage(Stage("decoder", 1, options={"diffusion": False, "freeze_tokens": True}))
    refined.train().training_step(video, generator=g())["loss"].backward()
    assert refined.denoiser.spatial.refine[-1].weight.grad.abs().sum() > 0  # the preview loss trains it
    with pytest.raises(ValueError, match=r"\['num_queries'\] could change the tokens"):
        model.with_decoder_config(num_queries=8)


@torch.no_grad()
def _stride4_preview(model: DeepTokenizer, video: torch.Tensor) -> torch.Tensor:
    """The preview of a ``(2, 3, 5, 16, 16)`` clip at stride 4: what ``training_step`` regresses."""
    tokens = model.encode_frames(torch.stack([video[:, :, 0], video[:, :, 4]], 1).flatten(0, 1)).view(2, 2, 4, 16)
    stride, positions = torch.full((2,), 4.0), torch.linspace(0, 1, 5)
    return model.denoiser.spatial_condition(tokens[:, 0], tokens[:, 1], positions, stride, 16, 16)[1]


def test_loss_weight_weights_every_pixel():
    model = _tiny(train_strides=[4], cond_dropout=0.0).train()
    video = _video(b=2, t=5)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = model.training_step({"video": video}, generator=g())
    ones = model.training_step({"video": video, "loss_weight": torch.ones(2, 1, 5, 16, 16)}, generator=g())
    assert torch.allclose(plain["loss"], ones["loss"])  # a uniform weight is the plain MSE
    # All weight on one pixel (broadcast over the batch): the preview loss is that pixel's squared error.
    weight = torch.zeros(1, 1, 5, 16, 16)
    weight[..., 3, 7] = 1.0
    spot = model.training_step({"video": video, "loss_weight": weight}, generator=g())
    preview = _stride4_preview(model, video)
    assert torch.allclose(spot["preview_loss"], (preview - video).pow(2)[..., 3, 7].mean(), atol=1e-6)
    with pytest.raises(ValueError, match="loss_weight of shape"):
        model.training_step({"video": video, "loss_weight": torch.ones(2, 1, 4, 16, 16)})
    with pytest.raises(ValueError, match="non-negative"):
        model.training_step({"video": video, "loss_weight": -torch.ones(2, 1, 5, 16, 16)})


def test_preview_gradient_loss_penalizes_blur():
    video = _video(b=2, t=5)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = _tiny(train_strides=[4]).train().training_step(video, generator=g())
    sharp = _tiny(train_strides=[4], preview_gradient_weight=1.0).train().training_step(video, generator=g())
    # Same weights and randomness: the gradient term only adds (a random init's preview is no sharp copy).
    assert sharp["preview_loss"] > plain["preview_loss"]
    assert torch.allclose(sharp["diffusion_loss"], plain["diffusion_loss"])
    with pytest.raises(ValueError, match="loss weights must be >= 0"):
        _tiny(preview_gradient_weight=-1.0)


def test_l1_preview_loss_is_the_weighted_absolute_error():
    video = _video(b=2, t=5)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    model = _tiny(train_strides=[4], cond_dropout=0.0, preview_loss="l1").train()
    weight = torch.zeros(1, 1, 5, 16, 16)
    weight[..., 3, 7] = 1.0
    spot = model.training_step({"video": video, "loss_weight": weight}, generator=g())
    preview = _stride4_preview(model, video)
    assert torch.allclose(spot["preview_loss"], (preview - video).abs()[..., 3, 7].mean(), atol=1e-6)
    # Only the preview's loss changes: the diffusion loss is Eq. 1's MSE either way.
    mse = _tiny(train_strides=[4], cond_dropout=0.0).train().training_step({"video": video}, generator=g())
    l1 = model.training_step({"video": video}, generator=g())
    assert torch.allclose(mse["diffusion_loss"], l1["diffusion_loss"])
    assert not torch.allclose(mse["preview_loss"], l1["preview_loss"])
    with pytest.raises(ValueError, match="preview_loss must be one of"):
        _tiny(preview_loss="l2")
