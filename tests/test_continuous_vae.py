"""The ``continuous_vae`` tokenizer: diffusers VAE families, frame-count padding, latent stats, save→load.

The generic contract tests (shapes, gradients, save→load, determinism) run on its ``tiny_config()`` from
``test_contracts.py``; these tests cover what is specific to wrapping diffusers VAEs.
"""

from __future__ import annotations

import doctest
import shutil

import diffusers
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vidtok
from vidtok.modeling_utils import LoadingError
from vidtok.tokenizers import continuous_vae
from vidtok.tokenizers.continuous_vae import VAE_ADAPTERS, ContinuousVAETokenizer

# Tiny configs of every supported family (16 × 16 frames; built in well under a second each).
FAMILIES = {
    "AutoencoderKL": ContinuousVAETokenizer.tiny_config()["vae_config"],
    "AutoencoderKLCogVideoX": {
        "block_out_channels": [8, 16, 16],
        "down_block_types": ["CogVideoXDownBlock3D"] * 3,
        "up_block_types": ["CogVideoXUpBlock3D"] * 3,
        "latent_channels": 4,
        "norm_num_groups": 4,
        "layers_per_block": 1,
        "temporal_compression_ratio": 4,
    },
    "AutoencoderKLHunyuanVideo": {
        "block_out_channels": [8, 16, 16],
        "down_block_types": ["HunyuanVideoDownBlock3D"] * 3,
        "up_block_types": ["HunyuanVideoUpBlock3D"] * 3,
        "latent_channels": 4,
        "norm_num_groups": 4,
        "layers_per_block": 1,
        "temporal_compression_ratio": 4,
        "spatial_compression_ratio": 4,
    },
    "AutoencoderKLWan": {
        "base_dim": 8,
        "z_dim": 4,
        "dim_mult": [1, 2, 2],
        "num_res_blocks": 1,
        "temperal_downsample": [True, True],
        "latents_mean": [0.0] * 4,
        "latents_std": [1.0] * 4,
        "scale_factor_spatial": 4,
    },
    "AutoencoderVidTok": {"ch": 8, "ch_mult": [1, 2, 2], "z_channels": 4, "num_res_blocks": 1},
}
# (spatial, temporal) factors read off the installed diffusers source for these configs.
FACTORS = {
    "AutoencoderKL": (2, 1),
    "AutoencoderKLCogVideoX": (4, 4),
    "AutoencoderKLHunyuanVideo": (4, 4),
    "AutoencoderKLWan": (4, 4),
    "AutoencoderVidTok": (4, 4),
}
_BUILT: dict[str, ContinuousVAETokenizer] = {}


def family(name: str) -> ContinuousVAETokenizer:
    if name not in _BUILT:
        torch.manual_seed(0)
        _BUILT[name] = ContinuousVAETokenizer(vae_class=name, vae_config=FAMILIES[name], patch_size=1).eval()
    return _BUILT[name]


def video(frames: int, batch: int = 1, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def raw_frames(vae, x: torch.Tensor) -> int | str:
    """Frames the plain diffusers call ``decode(encode(x).latent_dist.mode())`` returns, or the error's type."""
    try:
        with torch.no_grad():
            out = vae.decode(vae.encode(x).latent_dist.mode())
    except (RuntimeError, ValueError, TypeError) as err:
        return type(err).__name__
    out = out if isinstance(out, torch.Tensor) else out.sample
    return out.shape[2] if out.ndim == 5 else "image"


def test_module_examples_run():
    result = doctest.testmod(continuous_vae, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_registered_and_exported_lazily():
    assert vidtok.TOKENIZERS.get("continuous_vae") is ContinuousVAETokenizer
    assert vidtok.ContinuousVAETokenizer is ContinuousVAETokenizer
    assert set(VAE_ADAPTERS) == set(FAMILIES)
    assert all(hasattr(diffusers, name) for name in VAE_ADAPTERS)


# ------------------------------------------------------------------------------------------ family adapters
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_adapter_factors_match_what_the_vae_does(name):
    """The adapter's factors are the ones the VAE really applies (a valid clip through the raw VAE)."""
    tok = family(name)
    spatial, temporal = FACTORS[name]
    assert (tok.adapter.spatial_factor, tok.adapter.temporal_factor) == (spatial, temporal)
    frames = 1 + 2 * temporal
    x = video(frames)
    if name == "AutoencoderKL":
        x = x[:, :, 0]
    elif name == "AutoencoderVidTok":
        x = torch.cat([x[:, :, :1]] * (temporal - 1) + [x], dim=2)  # what VidTok's forward adds
    with torch.no_grad():
        latents = tok.vae.encode(x).latent_dist.mean
    assert latents.shape[1] == tok.latent_channels == 4
    assert latents.shape[-2:] == (16 // spatial, 16 // spatial)
    if name != "AutoencoderKL":
        assert latents.shape[2] == 3
    assert tok.temporal_compression == temporal


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_wrapper_round_trips_frame_counts_the_raw_call_gets_wrong(name):
    """decode(encode(video)) returns exactly T frames for every T, where the plain diffusers call does not."""
    tok = family(name)
    wrong = {}
    for frames in range(1, 10):
        x = video(frames)
        with torch.no_grad():
            out = tok.encode(x)
            recon = tok.decode(out)
        assert tuple(recon.shape) == tuple(x.shape), (frames, tuple(recon.shape))
        layout = tok.token_layout(frames, 16, 16)[0]
        assert tuple(out.tokens.shape) == (1, layout.steps, layout.tokens, layout.dim)
        raw = raw_frames(tok.vae, x)
        if raw != frames:
            wrong[frames] = raw
    expected = {
        # 5-D video into an image VAE: it only takes (B, C, H, W)
        "AutoencoderKL": {t: "ValueError" for t in range(1, 10)},
        # an even number of latent frames decodes to 4 frames each: 5 frames -> 2 latents -> 8 frames
        "AutoencoderKLCogVideoX": {2: 1, 3: 1, 4: 1, 5: 8, 6: 8, 7: 8},
        "AutoencoderKLHunyuanVideo": {2: 1, 3: 1, 4: 1, 6: 5, 7: 5, 8: 5},
        # frames past the last whole chunk are dropped silently
        "AutoencoderKLWan": {2: 1, 3: 1, 4: 1, 6: 5, 7: 5, 8: 5},
        # encode without the causal front padding: one latent frame short, and T < 4 crashes
        "AutoencoderVidTok": {1: "RuntimeError", 2: "RuntimeError", 3: "RuntimeError", 4: 1, 5: 1, 6: 1, 7: 1}
        | {8: 5, 9: 5},
    }[name]
    assert wrong == expected


@pytest.mark.parametrize("name", ["AutoencoderKLWan", "AutoencoderKLCogVideoX", "AutoencoderVidTok"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.integers(1, 14), batch=st.integers(1, 2))
def test_frame_count_law(name, frames, batch):
    """For every T: S = 1 + ceil((T - 1) / f) token steps, and the decoded video has T frames again."""
    tok = family(name)
    with torch.no_grad():
        out = tok.encode(video(frames, batch))
        full = tok.decode(out.tokens)
        cropped = tok.decode(out.tokens, num_frames=frames)
    steps = 1 + -(-(frames - 1) // 4)
    assert out.tokens.shape[:2] == (batch, steps) and out.num_frames == frames
    assert full.shape[2] == tok.num_frames_for(steps) == 1 + 4 * (steps - 1)
    assert cropped.shape[2] == frames
    assert torch.equal(cropped, full[:, :, :frames])
    assert tok.valid_num_frames(frames) == ((frames - 1) % 4 == 0)


def test_vidtok_front_padding_pitfall():
    """AutoencoderVidTok.encode lacks the causal front padding of forward; the wrapper adds it.

    Raw: 17 frames -> 4 latent frames -> 13 decoded frames, and 1 frame crashes. Wrapper: 5 steps, 17 frames,
    and exactly what VidTok's own ``forward`` (which pads) reconstructs.
    """
    tok = family("AutoencoderVidTok")
    vae = tok.vae
    x = video(17)
    with torch.no_grad():
        raw_latents = vae.encode(x).latent_dist.mode()
        assert raw_latents.shape[2] == 4
        assert vae.decode(raw_latents).shape[2] == 13
        with pytest.raises(RuntimeError):
            vae.encode(video(1))
        out = tok.encode(x)
        assert out.tokens.shape[1] == 5
        ours = tok.decode(out)
        reference = vae(x, sample_posterior=False).sample
    assert ours.shape[2] == 17
    torch.testing.assert_close(ours, reference.clamp(-1, 1))
    with torch.no_grad():  # the forward's right padding for other counts too
        torch.testing.assert_close(
            tok.decode(tok.encode(video(6))), vae(video(6), sample_posterior=False).sample.clamp(-1, 1)
        )
        assert tok.decode(tok.encode(video(1))).shape[2] == 1


def test_wan_is_causal_through_the_wrapper():
    """Changing later frames leaves earlier tokens alone (the reason shapes_config uses Wan)."""
    tok = family("AutoencoderKLWan")
    a, b = video(9, seed=1), video(9, seed=1)
    b[:, :, 5:] = video(4, seed=2)
    with torch.no_grad():
        ta, tb = tok.encode(a).tokens, tok.encode(b).tokens
    assert torch.equal(ta[:, :2], tb[:, :2]) and not torch.equal(ta[:, 2], tb[:, 2])


# ------------------------------------------------------------------------------------------ tokens
@settings(max_examples=25, deadline=None)
@given(
    p=st.sampled_from([1, 2, 4]), steps=st.integers(1, 3), gh=st.integers(1, 3), gw=st.integers(1, 3), data=st.data()
)
def test_patchify_is_invertible_and_laid_out_c_p_p(p, steps, gh, gw, data):
    tok = ContinuousVAETokenizer(**{**ContinuousVAETokenizer.tiny_config(), "patch_size": p, "sample_size": None})
    scale = data.draw(st.lists(st.floats(0.25, 4), min_size=4, max_size=4))
    shift = data.draw(st.lists(st.floats(-2, 2), min_size=4, max_size=4))
    tok.set_latent_stats(latent_shift=shift, latent_scale=scale)
    z = torch.randn(2, 4, steps, gh * p, gw * p)
    tokens = tok.latents_to_tokens(z)
    assert tokens.shape == (2, steps, gh * gw, 4 * p * p)
    torch.testing.assert_close(tok.tokens_to_latents(tokens, (gh, gw)), z, rtol=1e-5, atol=1e-5)
    i, j = gh - 1, gw - 1  # the last patch holds that window of the normalized latents, channel-major
    window = z[0, :, 0, i * p : (i + 1) * p, j * p : (j + 1) * p]
    expected = (window - torch.tensor(shift).view(4, 1, 1)) * torch.tensor(scale).view(4, 1, 1)
    torch.testing.assert_close(tokens[0, 0, i * gw + j], expected.reshape(-1))


def test_layout_and_grid_inference():
    tok = ContinuousVAETokenizer(**ContinuousVAETokenizer.tiny_config()).eval()
    (level,) = tok.token_layout(3, 16, 32)
    assert (level.steps, level.grid, level.tokens, level.dim, level.codebook_size) == (3, (4, 8), 32, 16, None)
    x = torch.rand(1, 3, 2, 16, 32) * 2 - 1
    with torch.no_grad():
        out = tok.encode(x)
        assert out.grid == (4, 8)
        assert tok.decode(out.tokens, height=16, width=32).shape == x.shape
        assert tok.decode(out.tokens, grid=(4, 8)).shape == x.shape
        assert torch.equal(tok.decode(out), tok.decode([out.tokens], grid=(4, 8)))
    assert tok.spatial_compression == 4 and not tok.is_discrete and tok.token_dim == 16


def test_layout_of_a_tokenizer_built_on_the_meta_device():
    """Sizing a model from a tokenizer config needs no weights: building on the meta device works."""
    with torch.device("meta"):
        tok = ContinuousVAETokenizer(**ContinuousVAETokenizer.shapes_config())
    assert tok.reference_layout()[0].grid == (4, 4) and tok.latent_scale.device.type == "cpu"


def test_sample_posterior():
    tok = ContinuousVAETokenizer(**ContinuousVAETokenizer.tiny_config()).eval()
    x = video(2)
    with torch.no_grad():
        mean = tok.encode(x).tokens
        a = tok.encode(x, sample_posterior=True, generator=torch.Generator().manual_seed(3)).tokens
        b = tok.encode(x, sample_posterior=True, generator=torch.Generator().manual_seed(3)).tokens
    assert torch.equal(a, b) and not torch.equal(a, mean)
    sampling = ContinuousVAETokenizer(**{**ContinuousVAETokenizer.tiny_config(), "sample_posterior": True}).eval()
    sampling.load_state_dict(tok.state_dict())
    with torch.no_grad():
        assert torch.equal(sampling.encode(x, generator=torch.Generator().manual_seed(3)).tokens, a)


def test_default_normalization_comes_from_the_vae_config():
    cfg = {**FAMILIES["AutoencoderKL"], "scaling_factor": 0.5, "shift_factor": 0.25}
    tok = ContinuousVAETokenizer(vae_class="AutoencoderKL", vae_config=cfg)
    assert torch.equal(tok.latent_scale, torch.full((4,), 0.5)) and torch.equal(
        tok.latent_shift, torch.full((4,), 0.25)
    )
    wan = {**FAMILIES["AutoencoderKLWan"], "latents_mean": [1.0, 2.0, 3.0, 4.0], "latents_std": [2.0, 4.0, 5.0, 10.0]}
    tok = ContinuousVAETokenizer(vae_class="AutoencoderKLWan", vae_config=wan)
    torch.testing.assert_close(tok.latent_scale, torch.tensor([0.5, 0.25, 0.2, 0.1]))
    torch.testing.assert_close(tok.latent_shift, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    vidtok_tok = family("AutoencoderVidTok")  # declares nothing: identity
    assert torch.equal(vidtok_tok.latent_scale, torch.ones(4)) and torch.equal(vidtok_tok.latent_shift, torch.zeros(4))


# ------------------------------------------------------------------------------------------ latent statistics
def test_estimate_latent_stats_normalizes_tokens_and_survives_save_load(tmp_path):
    torch.manual_seed(0)
    tok = ContinuousVAETokenizer(**ContinuousVAETokenizer.tiny_config()).eval()
    data = [video(3, batch=2, seed=s) for s in range(3)]
    stats = tok.estimate_latent_stats([{"video": v} for v in data])
    assert set(stats) == {"latent_shift", "latent_scale"} and len(stats["latent_scale"]) == 4
    assert tok.config.latent_scale == stats["latent_scale"] and tok.config.latent_shift == stats["latent_shift"]
    with torch.no_grad():
        tokens = torch.cat([tok.encode(v).tokens for v in data])
    per_channel = tokens.reshape(-1, 4, 2, 2).transpose(0, 1).reshape(4, -1)  # D = (c, p, p)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(per_channel.std(1, unbiased=False), torch.ones(4), atol=1e-4, rtol=0)

    tok.save_pretrained(tmp_path)
    loaded = ContinuousVAETokenizer.from_pretrained(tmp_path)
    assert loaded.config.latent_scale == stats["latent_scale"]
    with torch.no_grad():
        assert torch.equal(loaded.encode(data[0]).tokens, tok.encode(data[0]).tokens)


def test_estimate_latent_stats_global_and_limits():
    tok = ContinuousVAETokenizer(**ContinuousVAETokenizer.tiny_config()).eval()
    before = dict(tok.config)
    stats = tok.estimate_latent_stats(video(2, batch=2), per_channel=False, apply=False)
    assert isinstance(stats["latent_scale"], float) and isinstance(stats["latent_shift"], float)
    assert dict(tok.config) == before  # apply=False leaves the tokenizer alone
    first = tok.estimate_latent_stats([video(2, seed=0), video(2, seed=1)], max_batches=1, apply=False)
    assert first == tok.estimate_latent_stats(video(2, seed=0), apply=False)
    with pytest.raises(ValueError, match="saw no video"):
        tok.estimate_latent_stats([])


# ------------------------------------------------------------------------------------------ loading
def test_pretrained_vae_is_loaded_then_restored_from_the_tokenizer_folder(tmp_path):
    torch.manual_seed(1)
    vae = diffusers.AutoencoderKL(**FAMILIES["AutoencoderKL"])
    vae.save_pretrained(tmp_path / "vae")
    tok = ContinuousVAETokenizer(vae_class="AutoencoderKL", vae_pretrained=str(tmp_path / "vae"), sample_size=16)
    for key, value in vae.state_dict().items():
        assert torch.equal(tok.vae.state_dict()[key], value), key
    assert tok.config.vae_config["block_out_channels"] == [8, 16]  # recorded for rebuilding
    assert torch.equal(tok.latent_scale, torch.full((4,), 0.18215))  # the VAE's own scaling_factor

    tok.save_pretrained(tmp_path / "tok")
    shutil.rmtree(tmp_path / "vae")  # the tokenizer folder must not need the original any more
    loaded = ContinuousVAETokenizer.from_pretrained(tmp_path / "tok")
    for key, value in tok.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded.config.vae_pretrained == str(tmp_path / "vae")  # kept as provenance
    copy, reinitialized = loaded.with_decoder_config(l2_loss_weight=0.5)
    assert reinitialized == [] and copy.config.l2_loss_weight == 0.5
    x = video(2)
    with torch.no_grad():
        assert torch.equal(copy.encode(x).tokens, loaded.encode(x).tokens)


def test_pretrained_and_config_must_agree(tmp_path):
    diffusers.AutoencoderKL(**FAMILIES["AutoencoderKL"]).save_pretrained(tmp_path)
    ok = ContinuousVAETokenizer(
        vae_class="AutoencoderKL", vae_pretrained=str(tmp_path), vae_config={"latent_channels": 4}
    )
    assert ok.latent_channels == 4
    with pytest.raises(ValueError, match=r"disagrees .* \['latent_channels'\]"):
        ContinuousVAETokenizer(
            vae_class="AutoencoderKL", vae_pretrained=str(tmp_path), vae_config={"latent_channels": 8}
        )


def test_loading_is_strict_about_vae_weights(tmp_path):
    tok = ContinuousVAETokenizer(**ContinuousVAETokenizer.tiny_config())
    tok.save_pretrained(tmp_path)
    cfg = (tmp_path / "config.json").read_text().replace('"latent_channels": 4', '"latent_channels": 8')
    (tmp_path / "config.json").write_text(cfg)
    with pytest.raises(LoadingError):
        ContinuousVAETokenizer.from_pretrained(tmp_path, verify=False)


def test_tiling_and_slicing_pass_through():
    base = ContinuousVAETokenizer.tiny_config()
    plain = ContinuousVAETokenizer(**base).eval()
    sliced = ContinuousVAETokenizer(**base, enable_slicing=True).eval()
    assert sliced.vae.use_slicing and not plain.vae.use_slicing
    assert ContinuousVAETokenizer(**base, enable_tiling=True).vae.use_tiling and not plain.vae.use_tiling
    sliced.load_state_dict(plain.state_dict())
    x = video(3, batch=2)
    with torch.no_grad():
        torch.testing.assert_close(sliced.encode(x).tokens, plain.encode(x).tokens)
    plain.enable_tiling()
    plain.enable_slicing()
    assert plain.vae.use_tiling and plain.vae.use_slicing
    plain.disable_tiling()
    plain.disable_slicing()
    assert not plain.vae.use_tiling and not plain.vae.use_slicing
    with pytest.raises(ValueError, match=r"\['tile_sample_min_size'\] are not taken by AutoencoderKL.enable_tiling"):
        ContinuousVAETokenizer(**base, enable_tiling={"tile_sample_min_size": 8})

    tiles = {f"tile_sample_{k}_{d}": 8 for k in ("min", "stride") for d in ("height", "width")}
    wan = ContinuousVAETokenizer(
        vae_class="AutoencoderKLWan", vae_config=FAMILIES["AutoencoderKLWan"], patch_size=1, enable_tiling=tiles
    )
    assert wan.vae.use_tiling and wan.vae.tile_sample_min_height == 8
    wan.load_state_dict(family("AutoencoderKLWan").state_dict())
    with torch.no_grad():  # tiles of 8 x 8 pixels: same layout as untiled
        assert wan.encode(video(5)).tokens.shape == family("AutoencoderKLWan").encode(video(5)).tokens.shape


# ------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("name", ["AutoencoderKL", "AutoencoderKLWan"])
def test_training_step(name):
    tok = family(name).train()
    x = video(3, batch=2)  # not a valid count for Wan: padded inside, left out of the loss
    out = tok.training_step({"video": x}, generator=torch.Generator().manual_seed(0))
    again = tok.training_step(x, generator=torch.Generator().manual_seed(0))
    tok.eval()
    assert set(out) == {"loss", "l1", "l2", "kl", "reconstruction"}
    assert out["reconstruction"].shape == x.shape and torch.equal(out["loss"], again["loss"])
    expected = tok.config.l2_loss_weight * out["l2"] + tok.config.kl_loss_weight * out["kl"]
    torch.testing.assert_close(out["loss"].detach(), expected)
    weight = torch.zeros(2, 1, 3, 16, 16)
    weight[:, :, 0] = 1  # only frame 0 counts
    weighted = tok.training_step({"video": x, "loss_weight": weight}, generator=torch.Generator().manual_seed(0))
    first = (weighted["reconstruction"] - x)[:, :, 0].pow(2).mean()
    torch.testing.assert_close(weighted["l2"], first.detach())


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_encoder_parameters_alone_make_the_tokens(name):
    """Changing any non-encoder weight leaves the tokens alone; changing the encoder's moves them."""
    tok = ContinuousVAETokenizer(vae_class=name, vae_config=FAMILIES[name], patch_size=1).eval()
    enc = {id(p) for p in tok.encoder_parameters()}
    rest = [p for p in tok.parameters() if id(p) not in enc]
    assert enc and rest and len(enc) + len(rest) == len(list(tok.parameters()))
    x = video(5)
    with torch.no_grad():
        before = tok.encode(x).tokens
        for p in rest:
            p.add_(torch.randn_like(p))
        assert torch.equal(tok.encode(x).tokens, before)
        for p in tok.encoder_parameters():
            p.add_(0.1 * torch.randn_like(p))
        assert not torch.allclose(tok.encode(x).tokens, before)


def test_encoder_parameters_need_an_encoder():
    tok = family("AutoencoderKL")
    saved = tok.vae.encoder
    try:
        tok.vae.encoder = None
        with pytest.raises(TypeError, match="encoder"):
            tok.encoder_parameters()
    finally:
        tok.vae.encoder = saved


def test_wan_training_passes_gradient_through_its_output_clamp():
    """Wan's decode clamps to [-1, 1]; a saturated decoder still learns (straight-through), evaluation is exact."""
    torch.manual_seed(0)
    tok = ContinuousVAETokenizer(vae_class="AutoencoderKLWan", vae_config=FAMILIES["AutoencoderKLWan"], patch_size=1)
    last = [m for m in tok.vae.decoder.modules() if isinstance(m, torch.nn.Conv3d)][-1]
    with torch.no_grad():
        last.bias.fill_(-50.0)  # every output far below -1: the plain clamp would pass no gradient at all
    x = video(5)
    tok.train().training_step({"video": x}, generator=torch.Generator().manual_seed(0))["loss"].backward()
    assert float(last.bias.grad.abs().sum()) > 0
    tok.eval()
    with torch.no_grad():
        z = tok.vae.encode(x).latent_dist.mode()
        assert torch.equal(tok.adapter.decode(z), tok.vae.decode(z).sample)
        assert float(tok.adapter.decode(z).max()) == -1.0


def test_shapes_config():
    tok = ContinuousVAETokenizer(**ContinuousVAETokenizer.shapes_config())
    assert sum(p.numel() for p in tok.parameters()) < 3_000_000
    assert tok.sample_size == (32, 32) and tok.training_domain == "shapes"
    (level,) = tok.token_layout(9, 32, 32)
    assert (level.steps, level.grid, level.dim, level.frames_per_step) == (3, (4, 4), 16, 4)
    assert tok.token_layout(17, 32, 32)[0].steps == 5


@pytest.mark.slow
def test_shapes_config_learns():
    """Beyond the all-black frame Shapes training first falls to (about 2 minutes on one CPU thread)."""
    from vidtok.shapes import render_video

    torch.manual_seed(0)
    tok = ContinuousVAETokenizer(**ContinuousVAETokenizer.shapes_config()).train()
    captions = [
        "a large red circle moves right",
        "a small blue square moves up",
        "a large green triangle stays still",
        "a small yellow circle moves left",
    ]
    clips = [render_video(c, num_frames=9, resolution=32, seed=s) for s, c in enumerate(captions)]
    x = torch.stack([torch.from_numpy(c).permute(3, 0, 1, 2).float() / 127.5 - 1 for c in clips])
    black = float((x + 1).pow(2).mean())
    opt = torch.optim.Adam(tok.parameters(), lr=1e-3)
    losses = []
    for step in range(120):
        out = tok.training_step({"video": x}, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["l2"]))
    assert min(losses[-40:]) < 0.9 * black, (black, losses)


# ------------------------------------------------------------------------------------------ bad inputs
def test_unknown_vae_class_lists_the_supported_ones():
    with pytest.raises(ValueError, match="vae_class 'AutoencoderXYZ'.*AutoencoderKL, AutoencoderKLCogVideoX"):
        ContinuousVAETokenizer(vae_class="AutoencoderXYZ")
    with pytest.raises(TypeError, match="missing required argument"):
        ContinuousVAETokenizer()
    with pytest.raises(ValueError, match=r"vae_config keys \['latent_chanels'\] are not arguments of AutoencoderKL"):
        ContinuousVAETokenizer(vae_class="AutoencoderKL", vae_config={"latent_chanels": 4})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"patch_size": 0}, "patch_size must be a positive int"),
        ({"patch_size": 3, "sample_size": 16}, "sample_size height and width must be positive multiples of 6"),
        ({"latent_scale": [1.0, 2.0]}, r"latent_scale must be .* a list of 4"),
        ({"latent_scale": 0.0}, "latent_scale must not be 0"),
        ({"latent_shift": "zero"}, "latent_shift must be"),
        ({"kl_loss_weight": -1.0}, "kl_loss_weight must be a number >= 0"),
        ({"enable_tiling": "yes"}, "enable_tiling must be"),
    ],
)
def test_bad_config_is_named(change, match):
    with pytest.raises(ValueError, match=match):
        ContinuousVAETokenizer(**{**ContinuousVAETokenizer.tiny_config(), **change})


def test_wan_scale_factor_must_match_its_architecture():
    cfg = {**FAMILIES["AutoencoderKLWan"], "scale_factor_spatial": 8}
    with pytest.raises(
        ValueError, match="scale_factor_spatial=8 but the AutoencoderKLWan architecture compresses by 4"
    ):
        ContinuousVAETokenizer(vae_class="AutoencoderKLWan", vae_config=cfg)


def test_vidtok_modes_without_continuous_causal_latents_are_refused():
    for extra, match in (({"is_causal": False}, "is_causal=False"), ({"regularizer": "fsq"}, "regularizer='kl'")):
        cfg = {**FAMILIES["AutoencoderVidTok"], **extra}
        if extra.get("regularizer") == "fsq":
            cfg.update(z_channels=6, double_z=False)
        with pytest.raises(ValueError, match=match):
            ContinuousVAETokenizer(vae_class="AutoencoderVidTok", vae_config=cfg)


def test_bad_videos_and_tokens_are_named():
    tok = ContinuousVAETokenizer(**ContinuousVAETokenizer.tiny_config()).eval()
    with pytest.raises(ValueError, match=r"video height and width must be positive multiples of 4.*18x16"):
        tok.encode(torch.zeros(1, 3, 2, 18, 16))
    with pytest.raises(ValueError, match="3 channels"):
        tok.encode(torch.zeros(1, 1, 2, 16, 16))
    with pytest.raises(ValueError, match="num_frames must be a positive int"):
        tok.token_layout(0, 16, 16)
    tokens = torch.zeros(1, 2, 16, 16)
    with pytest.raises(ValueError, match=r"tokens must be a non-empty \(B, S, N, 16\)"):
        tok.decode(torch.zeros(1, 2, 16, 12))
    with pytest.raises(ValueError, match="do not fill the token grid"):
        tok.decode(tokens, grid=(2, 2))
    with pytest.raises(ValueError, match="cannot infer the grid of 15"):
        tok.decode(torch.zeros(1, 2, 15, 16))
    wan = family("AutoencoderKLWan")
    with pytest.raises(ValueError, match="2 token steps decode to 5 frames.*num_frames=9"):
        wan.decode(torch.zeros(1, 2, 16, 4), num_frames=9)


def test_reconstruct_pipeline_returns_the_frames_it_was_given():
    """Reconstruct passes the clip's length to decode: a count the VAE had to pad comes back as it went in."""
    from vidtok.pipelines.reconstruct import Reconstruct

    torch.manual_seed(0)
    tok = ContinuousVAETokenizer(**ContinuousVAETokenizer.shapes_config()).eval()
    video = torch.rand(1, 3, 7, 32, 32) * 2 - 1  # 7 frames: padded to 9 for the 1 + 4k rule
    out = Reconstruct(tok)(video, output_type="pt", progress=False)
    assert out.frames.shape[2] == 7 and out.num_frames == 7
