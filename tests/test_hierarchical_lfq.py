"""HierarchicalLFQTokenizer (HiTVideo §3.2, Tab. 2): causality, shapes, codes, gradients, saving, stages, training."""

from __future__ import annotations

import math

import pytest
import torch
from contracts import check_gradients, check_save_load
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vidtok
from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer


def _tiny(**changes):
    torch.manual_seed(0)
    return HierarchicalLFQTokenizer(**{**HierarchicalLFQTokenizer.tiny_config(), **changes})


def _video(t, h=16, w=16, b=2, seed=0):
    return torch.rand(b, 3, t, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module", params=[3, 1], ids=["3d_kernels", "spatial_kernels"])
def tok(request):
    # Every law below must hold for full 3D kernels and for spatial ones (time mixed only where it is resampled).
    return _tiny(temporal_kernel_size=request.param).eval()


def test_registered_and_layout_of_the_tiny_config(tok):
    assert vidtok.TOKENIZERS.get("hierarchical_lfq") is HierarchicalLFQTokenizer
    layout = tok.token_layout(9, 16, 16)
    assert [lv.name for lv in layout] == ["level0", "level1", "level2"]
    assert [(lv.steps, lv.grid, lv.dim, lv.codebook_size, lv.frames_per_step) for lv in layout] == [
        (3, (2, 2), 3, 8, 4),
        (3, (4, 4), 4, 16, 4),
        (5, (4, 4), 6, 64, 2),
    ]
    assert tok.is_discrete and tok.codebook_size == [8, 16, 64] and tok.temporal_compression == 2
    assert tok.token_dim == 6 and tok.tokens_per_step(16, 16) == 16
    assert tok.valid_num_frames(1) and tok.valid_num_frames(7) and not tok.valid_num_frames(4)
    bits = 3 * 4 * 3 + 3 * 16 * 4 + 5 * 16 * 6
    assert tok.bits_per_pixel(9, 16, 16) == pytest.approx(bits / (9 * 16 * 16))
    with pytest.raises(ValueError, match="1 \\+ 2 k frames"):
        tok.token_layout(4, 16, 16)
    with pytest.raises(ValueError, match="divisible by 8"):
        tok.token_layout(3, 12, 16)
    with pytest.raises(ValueError, match="1 \\+ 2 k frames"):
        tok.encode(_video(4))


def test_encode_matches_the_layout_codes_in_range_and_decode_codes_equals_decode(tok):
    video = _video(7)
    with torch.no_grad():
        out = tok.encode(video)
        layout = tok.token_layout(7, 16, 16)
        assert len(out.tokens) == len(out.indices) == len(layout) == 3
        for level, tokens, codes in zip(layout, out.tokens, out.indices):
            assert tokens.shape == (2, level.steps, level.tokens, level.dim)
            assert codes.shape == (2, level.steps, level.tokens) and codes.dtype == torch.int64
            assert int(codes.min()) >= 0 and int(codes.max()) < level.codebook_size
            assert set(tokens.unique().tolist()) <= {-1.0, 1.0}
        for i, (tokens, codes) in enumerate(zip(out.tokens, out.indices)):
            assert torch.equal(tok.codes_to_tokens(codes, i), tokens)
            # Big-endian: the first channel is the most significant bit.
            msb = (codes >> (tokens.shape[-1] - 1)) & 1
            assert torch.equal(msb.bool(), tokens[..., 0] > 0)
        a, b = tok.decode(out.tokens), tok.decode_codes(out.indices)
    assert torch.equal(a, b)
    assert a.shape == video.shape and a.abs().max() <= 1
    # Not in training mode: no losses are computed (zeros), but the structure is the same.
    assert float(out.aux_losses["commitment"]) == 0 and "level2/entropy" in out.aux_losses


def _features_and_codes(tok, video):
    with torch.no_grad():
        feats = tok._encode_levels(video)
        codes = tok.encode(video).indices
    return feats, codes


@pytest.mark.parametrize("changed", [1, 2, 3, 5, 8])
def test_changing_frame_t_never_changes_the_codes_of_earlier_steps(tok, changed):
    video = _video(9, b=1)
    edited = video.clone()
    edited[:, :, changed] = -edited[:, :, changed]
    (f0, c0), (f1, c1) = _features_and_codes(tok, video), _features_and_codes(tok, edited)
    for level, a, b, ca, cb in zip(tok.token_layout(9, 16, 16), f0, f1, c0, c1):
        # Step j covers frames up to j * frames_per_step (step 0: frame 0 alone).
        before = [j for j in range(level.steps) if j * level.frames_per_step < changed]
        assert before, "every level has step 0"
        assert torch.equal(a[:, :, before], b[:, :, before]), (level.name, changed)
        assert torch.equal(ca[:, before], cb[:, before])
        assert not torch.equal(a, b), f"{level.name} ignores frame {changed}"  # not vacuous


def test_the_first_step_is_frame_0_alone_and_an_image_is_a_one_frame_video(tok):
    video = _video(9, b=1)
    with torch.no_grad():
        full = tok.encode(video)
        image = tok.encode(video[:, :, :1])
    for level, a, b in zip(tok.token_layout(1, 16, 16), full.indices, image.indices):
        assert level.steps == 1 and b.shape[1] == 1
        assert torch.equal(a[:, :1], b), level.name
    with torch.no_grad():
        assert tok.decode(image.tokens).shape == (1, 3, 1, 16, 16)


def test_decoding_is_causal_too(tok):
    video = _video(9, b=1)
    with torch.no_grad():
        tokens = tok.encode(video).tokens
        base = tok.decode(tokens)
        # Flip the finest level's last step (frames 7-8): frames 0-6 must not move.
        changed = [t.clone() for t in tokens]
        changed[-1][:, -1] = -changed[-1][:, -1]
        other = tok.decode(changed)
    assert torch.equal(base[:, :, :7], other[:, :, :7]) and not torch.equal(base, other)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(k=st.integers(0, 4), h=st.sampled_from([8, 16, 24]), w=st.sampled_from([8, 16, 32]))
def test_shape_laws_over_frame_counts_and_sizes(tok, k, h, w):
    t = 1 + 2 * k
    with torch.no_grad():
        out = tok.encode(_video(t, h, w, b=1))
        layout = tok.token_layout(t, h, w)
        for i, (level, tokens) in enumerate(zip(layout, out.tokens)):
            rt = level.frames_per_step // tok.temporal_compression
            assert level.steps == 1 + math.ceil(k / rt) and tokens.shape[1] == level.steps
            assert level.grid == (h // (4 * (2 if i == 0 else 1)), w // (4 * (2 if i == 0 else 1)))
            assert tokens.shape == (1, level.steps, level.tokens, level.dim)
        recon = tok.decode(out.tokens, grid=layout[-1].grid)
    assert recon.shape == (1, 3, t, h, w)


def test_straight_through_gradients_reach_the_encoder():
    tok = _tiny().train()
    out = tok.encode(_video(5))
    # Only through the quantized tokens (no auxiliary loss): the sign is passed straight through.
    sum(t.square().sum() * (i + 1) for i, t in enumerate(out.tokens)).backward()
    assert tok.encoder.conv_in.conv.weight.grad.abs().sum() > 0
    for proj in tok.quant_proj:
        assert proj[-1].conv.weight.grad.abs().sum() > 0
    tok.zero_grad()
    tok.decode(tok.encode(_video(5)).tokens).sum().backward()
    assert tok.encoder.conv_in.conv.weight.grad.abs().sum() > 0


def test_save_load_round_trip_is_exact(tok, tmp_path):
    loaded = check_save_load(tok, tmp_path).eval()
    video = _video(5)
    with torch.no_grad():
        a, b = tok.encode(video), loaded.encode(video)
        assert all(torch.equal(x, y) for x, y in zip(a.indices, b.indices))
        assert torch.equal(tok.decode(a.tokens), loaded.decode(b.tokens))


def test_the_contract_checks_pass():
    tok = _tiny()
    check_gradients(tok, "tokenizer")


def test_progressive_stages_train_from_the_coarsest_level():
    from vidtok.training import Stage

    tok = _tiny().train()
    video = _video(5)
    tok.configure_stage(Stage("coarse", 1, options={"levels": 1}))
    assert tok.active_levels == 1
    losses = tok.training_step({"video": video})
    out = tok.encode(video)
    torch.testing.assert_close(losses["commitment"], out.aux_losses["level0/commitment"])
    torch.testing.assert_close(losses["entropy"], out.aux_losses["level0/entropy"])
    tok.zero_grad()
    losses["loss"].backward()
    assert tok.post_quant[0].conv.weight.grad is not None
    assert tok.post_quant[1].conv.weight.grad is None and tok.post_quant[2].conv.weight.grad is None
    assert tok.quant_proj[2][-1].conv.weight.grad is None
    # With one level active, the reconstruction does not read the finer levels' codes.
    tokens = [t.detach() for t in out.tokens]
    noisy = tokens[:1] + [-t for t in tokens[1:]]
    with torch.no_grad():
        assert torch.equal(tok._decode(tokens, active=1), tok._decode(noisy, active=1))
    tok.configure_stage({"levels": 2})
    tok.zero_grad()
    tok.training_step({"video": video})["loss"].backward()
    assert tok.post_quant[1].conv.weight.grad is not None and tok.post_quant[2].conv.weight.grad is None
    tok.configure_stage(Stage("all", 1))
    assert tok.active_levels == 3
    with pytest.raises(ValueError, match="levels must be an int in \\[1, 3\\]"):
        tok.configure_stage({"levels": 4})
    with pytest.raises(ValueError, match="unknown HierarchicalLFQTokenizer stage options"):
        tok.configure_stage({"loss": "l1"})


def test_progressive_stages_run_through_the_trainer(tmp_path):
    from accelerate.utils import set_seed

    from vidtok.shapes import ShapesDataset
    from vidtok.training import Stage, Trainer, TrainingConfig

    set_seed(0)
    tok = _tiny()
    seen = []
    original = tok.configure_stage

    def spy(stage):
        original(stage)
        seen.append(tok.active_levels)

    tok.configure_stage = spy
    data = ShapesDataset("train", resolution=16, num_frames=5, length=8)
    stages = [Stage("coarse", 1, options={"levels": 1}), Stage("middle", 1, options={"levels": 2}), Stage("all", 1)]
    cfg = TrainingConfig(output_dir=str(tmp_path), stages=stages, batch_size=2, progress_bar=False, log_every=1)
    out = Trainer(tok, cfg, data).train()
    assert out.global_step == 3 and seen == [1, 2, 3]


def test_a_new_decoder_keeps_the_tokens(tok):
    new, reinitialized = tok.with_decoder_config(l1_loss_weight=2.0)
    assert reinitialized == [] and new.config.l1_loss_weight == 2.0
    video = _video(3)
    with torch.no_grad():
        a, b = tok.encode(video), new.encode(video)
    assert all(torch.equal(x, y) for x, y in zip(a.indices, b.indices))
    with pytest.raises(ValueError, match="could change the tokens"):
        tok.with_decoder_config(level_bits=[3, 4, 8])


def test_perceptual_and_gan_losses_are_a_later_step():
    for key in ("perceptual_loss_weight", "adversarial_loss_weight"):
        with pytest.raises(NotImplementedError, match="not implemented inside the tokenizer yet.*AdversarialTraining"):
            _tiny(**{key: 0.1})
    with pytest.raises(ValueError, match="level_strides needs"):
        _tiny(level_strides=[[2, 2]])
    with pytest.raises(ValueError, match="temporal_downsample needs"):
        _tiny(temporal_downsample=[True])


def test_temporal_kernel_size_sets_the_non_resampling_kernels():
    spatial = _tiny(temporal_kernel_size=1)
    full = _tiny()
    assert spatial.encoder.stages[0].blocks[0].conv1.conv.kernel_size == (1, 3, 3)
    assert full.encoder.stages[0].blocks[0].conv1.conv.kernel_size == (3, 3, 3)
    # The time-downsampling convolution keeps its temporal extent either way.
    assert spatial.encoder.stages[0].down.conv.conv.kernel_size[0] == 3
    assert sum(p.numel() for p in spatial.parameters()) < sum(p.numel() for p in full.parameters())
    with pytest.raises(ValueError, match="temporal_kernel_size must be 1 or 3, got 2"):
        _tiny(temporal_kernel_size=2)


def test_bad_inputs_are_named(tok):
    with pytest.raises(ValueError, match="must not be empty"):
        tok.encode(torch.zeros(0, 3, 3, 16, 16))
    with torch.no_grad():
        tokens = tok.encode(_video(3)).tokens
    with pytest.raises(ValueError, match="tokens as a list of 3 tensors"):
        tok.decode(tokens[-1])
    with pytest.raises(ValueError, match="a list of 2"):
        tok.decode(tokens[1:])
    with pytest.raises(TypeError, match="level 1 tokens must be a floating-point"):
        tok.decode([tokens[0], tokens[1].long(), tokens[2]])
    bad = [t.clone() for t in tokens]
    bad[2][0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="level 2 tokens contain NaN"):
        tok.decode(bad)
    with pytest.raises(ValueError, match="level 1 tokens must be \\(B, 2, 16, 4\\)"):
        tok.decode([tokens[0], tokens[1][:, :1], tokens[2]])
    with pytest.raises(ValueError, match="same batch size"):
        tok.decode([tokens[0][:1], tokens[1], tokens[2]])


@pytest.mark.parametrize("strategy", [None, "repeat", "zero", "learned"])
def test_decode_with_token_masks_is_decoding_the_masked_tokens(strategy):
    """HiTVideo §4: decode(tokens, token_masks=) applies the configured strategy ("repeat" when masking is off)."""
    from vidtok.tokenizers.token_masking import apply_token_mask

    tok = _tiny(token_masking=strategy).eval()
    if strategy == "learned":
        with torch.no_grad():
            for t in tok.mask_tokens:
                t.normal_()
    video = _video(9)
    with torch.no_grad():
        out = tok.encode(video, generator=torch.Generator().manual_seed(0))
        masks = out.token_masks if strategy is not None else tok.token_masks(video)
        assert any(m.any() for m in masks)
        raw = [tok.codes_to_tokens(c, i) for i, c in enumerate(out.indices)]
        by_hand = [
            apply_token_mask(t, m, strategy or "repeat", tok.mask_tokens[i] if strategy == "learned" else None)
            for i, (t, m) in enumerate(zip(raw, masks))
        ]
        decoded = tok.decode(raw, token_masks=masks)
        assert torch.equal(decoded, tok.decode(by_hand))
        # Through the base class: the codes of an encode, decoded with its masks, are its masked tokens decoded.
        assert torch.equal(tok.decode_codes(out.indices, token_masks=masks), decoded)
        if strategy is not None:
            assert torch.equal(decoded, tok.decode(out.tokens))
        assert not torch.equal(decoded, tok.decode(raw))  # the masks matter


def test_bad_token_masks_are_named():
    tok = _tiny(token_masking="zero").eval()
    with torch.no_grad():
        out = tok.encode(_video(9))
    masks = out.token_masks
    with pytest.raises(ValueError, match="token_masks as a list of 3 tensors"):
        tok.decode(out.tokens, token_masks=masks[0])
    with pytest.raises(ValueError, match="token_masks as a list of 3 tensors.*a list of 2"):
        tok.decode(out.tokens, token_masks=masks[:2])
    with pytest.raises(ValueError, match=r"level 1 token_masks must be a bool tensor of shape \(2, 3, 16\)"):
        tok.decode(out.tokens, token_masks=[masks[0], masks[1].long(), masks[2]])
    with pytest.raises(ValueError, match=r"level 2 token_masks must be a bool tensor of shape \(2, 5, 16\)"):
        tok.decode(out.tokens, token_masks=[masks[0], masks[1], masks[2][:, :2]])
    first = [m.clone() for m in masks]
    first[0][:, 0] = True
    with pytest.raises(ValueError, match="level 0 token_masks mask a first step, which 'repeat' cannot replace"):
        _tiny(token_masking="repeat").eval().decode(out.tokens, token_masks=first)
    tok.decode(out.tokens, token_masks=first)  # "zero" can replace a first step


def test_lpips_and_the_gan_come_from_the_adversarial_wrapper():
    from accelerate.utils import set_seed

    from vidtok.training.losses import AdversarialTraining, GANLoss, PatchDiscriminator3D, PerceptualLoss

    set_seed(0)
    tok = _tiny().train()
    video = _video(3, 32, 32)  # LPIPS (AlexNet) needs frames of at least 31 x 31
    out = tok.training_step({"video": video})
    assert out["reconstruction"].shape == video.shape and out["reconstruction"].requires_grad
    wrapper = AdversarialTraining(
        tok,
        gan=GANLoss(PatchDiscriminator3D.tiny_config(), start_step=0),
        perceptual=PerceptualLoss("alex", random_backbone=True, frames_per_clip=1),
        perceptual_weight=1.0,
        last_layer="decoder.conv_out.conv.weight",
    )
    losses = wrapper.training_step({"video": video}, step=1)
    assert {"perceptual", "l1", "commitment", "entropy"} <= set(losses) and "reconstruction" not in losses
    assert torch.isfinite(losses["loss"]) and float(losses["perceptual"]) > 0
    losses["loss"].backward()
    assert tok.encoder.conv_in.conv.weight.grad.abs().sum() > 0
    assert torch.isfinite(wrapper.discriminator_step({"video": video}, step=1)["loss"])


def test_bsq_swaps_in_by_name():
    tok = _tiny(quantizer="bsq").eval()
    assert type(tok.quantizers[0]).__name__ == "BSQ"
    with torch.no_grad():
        out = tok.encode(_video(3))
        assert torch.equal(tok.decode(out.tokens), tok.decode_codes(out.indices))


def test_the_paper_preset_on_the_meta_device():
    cfg = HierarchicalLFQTokenizer.hitvideo_paper_config()
    with torch.device("meta"):
        tok = HierarchicalLFQTokenizer(**cfg)
    parts = {name: sum(p.numel() for p in child.parameters()) for name, child in tok.named_children()}
    assert sum(p.numel() for p in tok.parameters()) == 208_076_470  # ~208 M
    assert parts["encoder"] == 68_760_704 and parts["decoder"] == 96_467_459
    assert parts["hier_down"] + parts["hier_up"] + parts["quant_proj"] + parts["post_quant"] == 42_848_307
    assert parts["quantizers"] == 0  # LFQ has no codebook to learn
    # Tab. 2's bits and its token counts per 8 latent frames (2048 / 256 / 128 / 16, coarsest last there).
    layout = tok.token_layout(65, 256, 256)
    assert [lv.dim for lv in layout] == [3, 14, 16, 18]
    assert [lv.tokens for lv in layout] == [16, 64, 64, 256]
    assert [lv.steps for lv in layout] == [2, 3, 5, 9]
    assert [lv.frames_per_step for lv in layout] == [64, 32, 16, 8]
    # Without the causal first step (the paper's 64 frames): 8 x 256, 4 x 64, 2 x 64, 1 x 16 tokens.
    assert [(lv.steps - 1) * lv.tokens for lv in layout] == [16, 128, 256, 2048]
    # ... and the paper's bits per pixel for them: (16 * 3 + 128 * 14 + 256 * 16 + 2048 * 18) / (64 * 256^2).
    paper_bits = sum((lv.steps - 1) * lv.tokens * lv.dim for lv in layout)
    assert paper_bits == 42_800 and paper_bits / (64 * 256 * 256) == pytest.approx(0.0102, abs=1e-4)
    assert tok.bits_per_pixel(65, 256, 256) == pytest.approx(49_376 / (65 * 256 * 256))  # with the causal first step


def test_a_short_training_run_lowers_the_l1_loss_on_shapes():
    """150 Adam steps on two Shapes clips: the L1 falls, and not only on the black background.

    Predicting all black is already a good L1 on Shapes (small objects); the codes must carry the objects, so
    the L1 on object pixels must fall well below that of the all-black prediction too.
    """
    from vidtok.shapes import ShapesDataset

    data = ShapesDataset("train", resolution=16, num_frames=5, length=2)
    video = torch.stack([data[i]["video"] for i in range(2)])
    objects = (video > -0.9).any(1, keepdim=True).expand_as(video)
    black_objects = float((video + 1).abs()[objects].mean())
    tok = _tiny().train()
    opt = torch.optim.Adam(tok.parameters(), lr=1e-3)
    losses = []
    for _ in range(150):
        out = tok.training_step({"video": video})
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["l1"]))
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-5:]) / 5 < 0.1 * sum(losses[:5]) / 5, losses
    assert losses[-1] < float((video + 1).abs().mean())  # better than all black
    with torch.no_grad():
        recon = tok.eval().decode(tok.encode(video).tokens)
    assert float((recon - video).abs()[objects].mean()) < 0.75 * black_objects


def test_the_mse_term_and_the_per_pixel_weight():
    """``l2_loss_weight`` adds the MSE (what the Shapes config trains with); ``loss_weight`` weights both terms."""
    tok = HierarchicalLFQTokenizer(**{**HierarchicalLFQTokenizer.tiny_config(), "l1_loss_weight": 0.0,
                                      "l2_loss_weight": 2.0, "entropy_loss_weight": 0.0,
                                      "commitment_loss_weight": 0.0}).train()  # fmt: skip
    video = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    out = tok.training_step({"video": video})
    diff = out["reconstruction"].detach() - video
    assert torch.allclose(out["l2"], diff.pow(2).mean()) and torch.allclose(out["l1"], diff.abs().mean())
    assert torch.allclose(out["loss"].detach(), 2 * out["l2"])
    weight = torch.ones(2, 1, 5, 16, 16)
    weight[:, :, :, :8] = 3.0  # the top half counts three times
    weighted = tok.training_step({"video": video, "loss_weight": weight})
    w = weight.expand_as(diff)
    assert torch.allclose(weighted["l2"], (diff.pow(2) * w).sum() / w.sum(), atol=1e-6)
