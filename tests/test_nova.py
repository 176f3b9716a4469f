"""NOVA's AR model (``nova``): block-causal frame conditions, the set-by-set schedule and decoder, cached
generation, image-to-video prefill, extrapolation, and a tiny model that learns prompt- and frame-dependent
tokens."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vidtok
from vidtok.backbones.block_causal import BlockCausalTransformer
from vidtok.heads.diffusion_mlp import DiffusionMLPHead
from vidtok.heads.l2 import L2Head
from vidtok.models.generation import set_by_set_schedule
from vidtok.models.nova import NOVAModel

N, D = 16, 16  # NOVAModel.tiny_config(): a 4 x 4 grid of 16-value tokens


# The released models' options (vidtok.convert.convert_nova_transformer sets them): learned time embedding on a
# rescaled time grid, (x, y) positions, unprojected indicators, LayerNorm eps 1e-5.
RELEASED = {"time_rescale": 16.0, "position_axes": "xy", "indicator_proj": False, "spatial_norm_eps": 1e-5}
RELEASED_BACKBONE = {"time_embedding": "mlp", "norm_eps": 1e-5}


def parts(mixer_rank=4, head="diffusion", released=False, **model_kwargs):
    torch.manual_seed(0)
    model = NOVAModel(**{**NOVAModel.tiny_config(), **(RELEASED if released else {}), **model_kwargs})
    backbone = BlockCausalTransformer(
        **{**BlockCausalTransformer.tiny_config(), "mixer_rank": mixer_rank, **(RELEASED_BACKBONE if released else {})}
    )
    if head == "diffusion":
        h = DiffusionMLPHead(**{**DiffusionMLPHead.tiny_config(), "hidden_size": 32, "token_dim": D})
        with torch.no_grad():  # AdaLN-zero starts at a zero output, blind to the condition: make it follow it
            for param in h.parameters():
                param.normal_(0, 0.2)
    else:
        h = L2Head(hidden_size=32, token_dim=D)
    return model.eval(), backbone.eval(), h.eval()


def text(b=2, seed=0):
    return torch.randint(1, 30, (b, 4), generator=torch.Generator().manual_seed(seed))


def test_registered():
    assert vidtok.MODELS.get("nova") is NOVAModel


@pytest.mark.parametrize("released", [False, True])
def test_frame_conditions_are_block_causal_and_frame_zero_is_the_bov_anchor(released):
    model, backbone, _ = parts(released=released)
    tokens = torch.randn(2, 4, N, D)
    base = model.frame_conditions(backbone, text(), tokens)
    assert base.shape == (2, 4, N, 32)
    for f in range(4):
        changed = tokens.clone()
        changed[:, f, 0] += 1.0
        diff = (model.frame_conditions(backbone, text(), changed) - base).abs().amax(dim=(0, 2, 3))
        # Frame f's tokens condition frames > f only (frame f's own condition comes from frames < f).
        assert torch.all(diff[: f + 1] == 0) and torch.all(diff[f + 1 :] > 0)
    # Frame 0's condition is the BOV output itself (γ = 1, β = 0); later frames go through the Scaling and Shift
    # layer, so they differ from the raw backbone output at their block.
    raw_backbone = BlockCausalTransformer(
        **{**BlockCausalTransformer.tiny_config(), "mixer_rank": None, **(RELEASED_BACKBONE if released else {})}
    )
    raw_backbone.load_state_dict({k: v for k, v in backbone.state_dict().items() if not k.startswith("mixer.")})
    raw = model.frame_conditions(raw_backbone.eval(), text(), tokens)
    torch.testing.assert_close(base[:, 0], raw[:, 0])
    assert not torch.allclose(base[:, 1:], raw[:, 1:])
    anchor = raw[:, 0:1].expand_as(raw[:, 1:])
    torch.testing.assert_close(base[:, 1:], backbone.scale_and_shift(anchor, raw[:, 1:]))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(1, 80))
def test_set_by_set_schedule_decides_every_token_once(n, k):
    counts = set_by_set_schedule(n, k)
    assert sum(counts) == n and len(counts) == min(n, k) and min(counts) >= 1
    # Cosine: never fewer tokens later than earlier by more than rounding.
    assert all(b >= a - 1 for a, b in zip(counts, counts[1:]))


class RecordingHead(L2Head):
    """An L2 head whose draws say which call made them (call index + 1 in every channel)."""

    def __init__(self):
        super().__init__(hidden_size=32, token_dim=D)
        self.calls = []

    def sample(self, hidden, **kwargs):
        self.calls.append(hidden.shape[:-1])
        return torch.full((*hidden.shape[:-1], D), float(len(self.calls)))


def test_set_by_set_decoding_follows_the_schedule_and_covers_the_frame():
    model, backbone, _ = parts(set_steps=5)
    head = RecordingHead()
    out = model.generate(backbone, head, text(), 2, progress=False, generator=torch.Generator().manual_seed(0))
    schedule = set_by_set_schedule(16, 5)
    assert [c[1] for c in head.calls] == schedule * 2  # two frames
    for f in range(2):
        step_of_token = out[:, f, :, 0].long() - 1 - f * len(schedule)
        for b in range(2):  # every token decided once, by the step the schedule gives it
            counts = torch.bincount(step_of_token[b], minlength=len(schedule)).tolist()
            assert counts == schedule


@pytest.mark.parametrize(
    ("guidance", "window", "released"),
    [(1.0, None, False), (3.0, None, False), (1.0, 1, False), (3.0, 1, False), (3.0, None, True), (3.0, 1, True)],
)
def test_cached_generation_equals_recomputation(guidance, window, released):
    model, backbone, head = parts(released=released)
    kwargs = {"progress": False, "guidance_scale": guidance, "context_keyframes": window}
    a = model.generate(backbone, head, text(), 4, generator=torch.Generator().manual_seed(3), **kwargs)
    b = model.generate(backbone, head, text(), 4, generator=torch.Generator().manual_seed(3), use_cache=False, **kwargs)
    assert a.shape == (2, 4, N, D) and torch.isfinite(a).all()
    # Rounding, amplified by 25 guided Euler steps (a cache bug moves tokens by O(1)).
    torch.testing.assert_close(a, b, atol=5e-4, rtol=1e-3)
    if window is not None:  # the window really changes what the last frames see
        full = model.generate(backbone, head, text(), 4, generator=torch.Generator().manual_seed(3),
                              **{**kwargs, "context_keyframes": None})  # fmt: skip
        torch.testing.assert_close(full[:, :2], a[:, :2], atol=1e-4, rtol=1e-3)
        assert not torch.allclose(full[:, 3], a[:, 3], atol=1e-3)


def test_prefix_is_kept_and_conditions_the_rest():
    model, backbone, head = parts(head="l2")
    prefix = torch.randn(2, 1, N, D)
    a = model.generate(backbone, head, text(), 3, prefix=prefix, progress=False)
    b = model.generate(backbone, head, text(), 3, prefix=prefix + 1.0, progress=False)
    assert torch.equal(a[:, :1], prefix)
    assert not torch.allclose(a[:, 1:], b[:, 1:])
    with pytest.raises(ValueError, match="prefix"):
        model.generate(backbone, head, text(), 1, prefix=torch.randn(2, 2, N, D), progress=False)


def test_generates_past_the_trained_length(tmp_path):
    model, backbone, head = parts()
    model.record_trained_length(3)
    model.save_pretrained(tmp_path)
    assert model.trained_length == 3 and NOVAModel.from_pretrained(tmp_path).trained_length == 3
    video = model.generate(backbone, head, text(), 7, progress=False, generator=torch.Generator().manual_seed(0))
    assert video.shape == (2, 7, N, D) and torch.isfinite(video).all()


def test_loss_reports_both_terms_and_reaches_every_parameter():
    model, backbone, head = parts()
    model.train(), backbone.train(), head.train()
    out = model.loss(backbone, head, text(), torch.randn(2, 3, N, D), generator=torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "first_frame", "later_frames"} and out["loss"].ndim == 0
    out["loss"].backward()
    for module in (model, backbone, head):
        assert all(p.grad is not None for p in module.parameters()), type(module).__name__


@pytest.mark.parametrize("frames", [1, 3])
def test_frame_weighting_nova_sums_the_two_terms_uniform_averages_frames(frames):
    """NOVA's weighting: text-to-image (frame 0) + image-to-video (later frames' mean); uniform: every frame's mean."""
    tokens = torch.randn(2, frames, N, D)
    losses = {}
    for weighting in ("nova", "uniform"):
        model, backbone, head = parts(frame_weighting=weighting)
        losses[weighting] = model.loss(backbone, head, text(), tokens, generator=torch.Generator().manual_seed(0))
    nova, uniform = losses["nova"], losses["uniform"]
    torch.testing.assert_close(nova["first_frame"], uniform["first_frame"])  # the same draws either way
    if frames == 1:  # nothing to balance: both are frame 0's loss
        torch.testing.assert_close(nova["loss"], nova["first_frame"])
        torch.testing.assert_close(uniform["loss"], uniform["first_frame"])
    else:
        torch.testing.assert_close(nova["loss"], nova["first_frame"] + nova["later_frames"])
        expected = (uniform["first_frame"] + (frames - 1) * uniform["later_frames"]) / frames
        torch.testing.assert_close(uniform["loss"], expected)
    with pytest.raises(ValueError, match="frame_weighting must be 'nova' or 'uniform'"):
        parts(frame_weighting="t2i")


def test_mask_ratio_stays_in_range():
    model, *_ = parts(mask_ratio_min=0.7)
    gen = torch.Generator().manual_seed(0)
    ratios = torch.tensor([model._mask_ratio(gen, torch.device("cpu")) for _ in range(2000)])
    assert ratios.min() >= 0.7 and ratios.max() <= 1.0
    # A normal folded at 1: most mass near 1 (for std 0.25 on [0.7, 1], the mean is about 0.87).
    assert 0.84 < ratios.mean() < 0.9


def test_a_tiny_model_learns_prompt_and_frame_dependent_tokens():
    """Two prompts, each with its own token pattern that grows frame by frame: the model must read the prompt
    (which pattern) and the frame (how far it grew) to reproduce them."""
    model, backbone, head = parts(head="l2", text_dropout=0.0, set_steps=2)
    torch.manual_seed(1)
    prompts = torch.tensor([[1, 2, 0, 0], [3, 4, 0, 0]])
    pattern = torch.randn(2, 1, N, D)
    targets = pattern * torch.arange(1, 4).view(1, 3, 1, 1) / 3  # (2 prompts, 3 frames, N, D)
    params = [*model.parameters(), *backbone.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    model.train(), backbone.train(), head.train()
    gen = torch.Generator().manual_seed(0)
    for _ in range(400):
        opt.zero_grad()
        model.loss(backbone, head, prompts.repeat(4, 1), targets.repeat(4, 1, 1, 1), generator=gen)["loss"].backward()
        opt.step()
    model.eval(), backbone.eval(), head.eval()
    video = model.generate(backbone, head, prompts, 3, progress=False)
    err = (video - targets).abs().mean()
    # About 0.07 of the targets' size after 400 steps (0.15 after 250 with NOVA's frame weighting, 0.11 uniform).
    assert err < 0.15 * targets.abs().mean(), float(err)
    # It read the prompt (the other prompt's tokens are far) and the frame (the previous frame's are far).
    assert (video - targets.flip(0)).abs().mean() > 4 * err
    assert (video[:, 1:] - targets[:, :-1]).abs().mean() > 2 * err


def test_check_compatible_lists_every_problem():
    model, backbone, head = parts()
    model.check_compatible(None, backbone, head)
    wide = BlockCausalTransformer(**{**BlockCausalTransformer.tiny_config(), "hidden_size": 64})
    bad_head = L2Head(hidden_size=16, token_dim=3)
    with pytest.raises(ValueError, match="backbone width 64.*head hidden_size 16.*head token_dim 3"):
        model.check_compatible(None, wide, bad_head)
    from vidtok.backbones.hf_causal_lm import HFCausalLM

    with pytest.raises(ValueError, match="block_causal"):
        model.check_compatible(None, HFCausalLM(**HFCausalLM.tiny_config()), head)


@pytest.mark.parametrize(
    ("tokens", "error", "match"),
    [
        (torch.randn(2, 2, N + 1, D), ValueError, r"\(B, S, 16, 16\)"),
        (torch.zeros(2, 2, N, D, dtype=torch.long), TypeError, "floating"),
        (torch.full((2, 2, N, D), float("nan")), ValueError, "NaN"),
    ],
)
def test_bad_tokens_raise(tokens, error, match):
    model, backbone, head = parts()
    with pytest.raises(error, match=match):
        model.loss(backbone, head, text(), tokens)


def test_bad_text_and_configs_raise():
    model, backbone, head = parts()
    with pytest.raises(ValueError, match="text ids must be in"):
        model.loss(backbone, head, torch.full((2, 4), 99), torch.randn(2, 2, N, D))
    with pytest.raises(ValueError, match="text_length=4"):
        model.generate(backbone, head, torch.zeros(2, 5, dtype=torch.long), 1, progress=False)
    with pytest.raises(ValueError, match="exactly one of text_vocab_size"):
        NOVAModel(**{**NOVAModel.tiny_config(), "text_embed_dim": 8})
    with pytest.raises(ValueError, match="grid"):
        NOVAModel(**{**NOVAModel.tiny_config(), "grid": [2]})
    bad = {"time_rescale": 0, "position_axes": "zy", "indicator_proj": False, "spatial_width": 64,
           "spatial_norm_eps": float("nan"), "text_pad_table": True}  # fmt: skip
    with pytest.raises(ValueError) as err:
        NOVAModel(**{**NOVAModel.tiny_config(), **bad})
    matches = ["time_rescale must be a positive number", "position_axes must be 'yx' or 'xy'", "spatial_norm_eps",
               "spatial_width (64) must equal hidden_size (32)", "text_pad_table stores"]  # fmt: skip
    assert all(m in str(err.value) for m in matches), str(err.value)
    with pytest.raises(ValueError, match="time_embedding must be 'sincos' or 'mlp'"):
        BlockCausalTransformer(**{**BlockCausalTransformer.tiny_config(), "time_embedding": "rope"})


def test_the_time_grid_is_rescaled_to_the_sequence_length():
    """time_rescale=T0: frame slot f of a T-frame sequence sits at f * T0 / T, in training and generation alike."""
    model, backbone, _ = parts(released=True)
    pos = torch.cat([model._frame_positions(f, 4, 1, torch.device("cpu")) for f in range(4)], 1)
    assert torch.equal(pos[0, :: model.num_slots, 0], torch.tensor([0.0, 4.0, 8.0, 12.0]))
    assert torch.equal(pos[0, :4, 1:], torch.tensor([[0.0, 0], [1, 0], [2, 0], [3, 0]]))  # (x, y): x first
    plain, _, _ = parts()
    assert torch.equal(plain._frame_positions(3, 4, 1, torch.device("cpu"))[0, :4, 0], torch.full((4,), 3.0))


def test_temporal_patch_groups_the_grid_into_fewer_slots():
    # NOVA reads frames into the temporal transformer at 4 x 4 latent patches and decodes at 2 x 2: one slot per
    # 2 x 2 group of tokens.
    model, backbone, head = parts(temporal_patch=2)
    assert model.num_slots == 4 and model.frame_proj.in_features == 4 * D
    tokens = torch.arange(16.0).view(1, 16, 1).expand(1, 16, D)  # token value = its raster index
    slots = model._to_slots(tokens)[0, :, ::D]  # the first channel of each grouped token
    assert slots.tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    assert model.frame_conditions(backbone, text(), torch.randn(2, 3, 16, D)).shape == (2, 3, 4, 32)
    a = model.generate(backbone, head, text(), 3, progress=False, generator=torch.Generator().manual_seed(0))
    b = model.generate(
        backbone, head, text(), 3, progress=False, generator=torch.Generator().manual_seed(0), use_cache=False
    )
    assert a.shape == (2, 3, 16, D)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="temporal_patch=3 must divide"):
        NOVAModel(**{**NOVAModel.tiny_config(), "grid": [4, 4], "temporal_patch": 3})


def test_nova_0_6b_sizes_on_the_meta_device():
    """The released T2V model's sizes (16-layer temporal, 32-block spatial, 1024 wide, NOVA's 3 x 1280 head):
    644.2 M parameters without the VAE and Phi-2 (the paper: about 600 M; the released transformer's own count,
    tests/test_convert_nova.py), the head exactly the released mlp_d3w1280's 32.84 M."""
    recipe = vidtok.RECIPES.get("nova_0_6b")()
    with torch.device("meta"):
        model = vidtok.MODELS.create("nova", **recipe.model.kwargs)
        head = vidtok.HEADS.create("diffusion_mlp", **recipe.head.kwargs)
        backbone = vidtok.BACKBONES.create("block_causal", **recipe.backbone.kwargs)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(backbone) == 202_932_224 and count(model.spatial) == 403_099_648  # learned time MLP; no cond_proj
    assert count(head) == 32_844_816 and head.config.adaln == "nova"
    assert count(model) + count(head) + count(backbone) == 644_194_320
    assert model.num_tokens == 1440 and model.num_slots == 360  # 480 x 768: 1,440 tokens, 360 temporal slots
    assert recipe.model.kwargs["text_embed_dim"] == 2560 and recipe.text_encoder == "microsoft/phi-2"
    phi2 = SimpleNamespace(config=SimpleNamespace(hidden_size=2560))  # the frozen encoder's width is all it checks
    model.check_compatible(None, backbone, head, text_encoder=phi2)


@pytest.fixture(scope="module")
def tiny_pipe():
    from vidtok.pipelines import TextToVideo

    torch.manual_seed(0)
    pipe = TextToVideo.from_recipe(vidtok.RECIPES.create("nova_tiny", tiny=True))
    with torch.no_grad():  # the diffusion head starts at zero output (AdaLN-zero): give it a condition to follow
        for param in pipe.head.parameters():
            param.normal_(0, 0.2)
    return pipe


def test_pipeline_takes_set_steps_motion_score_and_head_steps(tiny_pipe):
    def run(**model_kwargs):
        return tiny_pipe(
            "a red circle moves right", num_keyframes=2, guidance_scale=2.0, progress=False, output_type="latent",
            generator=torch.Generator().manual_seed(0), head_kwargs={"num_inference_steps": 3},
            model_kwargs=model_kwargs,
        ).tokens  # fmt: skip

    base = run(set_steps=2, motion_score=5.0)
    assert base.shape == (1, 2, N, D)
    assert torch.equal(base, run(set_steps=2, motion_score=5.0))
    assert not torch.equal(base, run(set_steps=2, motion_score=1.0))  # the motion token conditions the frames
    assert not torch.equal(base, run(set_steps=4, motion_score=5.0))
    with pytest.raises(ValueError, match=r"model_kwargs \['steps'\] are not taken by NOVAModel.generate"):
        run(steps=2)


def test_the_model_saved_guidance_is_the_pipelines_default(tiny_pipe, tmp_path):
    """A model saves the guidance it was evaluated with (``config.guidance_scale``); an explicit value wins."""

    def run(pipe, **kwargs):
        return pipe("a red circle moves right", num_keyframes=2, progress=False, output_type="latent",
                    generator=torch.Generator().manual_seed(0), head_kwargs={"num_inference_steps": 2},
                    **kwargs).tokens  # fmt: skip

    assert tiny_pipe.model.default_guidance_scale == 1.0
    plain, guided = run(tiny_pipe), run(tiny_pipe, guidance_scale=3.0)
    assert torch.equal(plain, run(tiny_pipe, guidance_scale=1.0)) and not torch.equal(plain, guided)
    tiny_pipe.save_pretrained(tmp_path / "pipe")
    config = tmp_path / "pipe" / "model" / "config.json"
    config.write_text(config.read_text().replace('"guidance_scale": 1.0', '"guidance_scale": 3.0'))
    loaded = type(tiny_pipe).from_pretrained(tmp_path / "pipe")
    assert loaded.model.default_guidance_scale == 3.0
    assert torch.equal(run(loaded), guided) and torch.equal(run(loaded, guidance_scale=1.0), plain)


@pytest.mark.parametrize("name", vidtok.MODELS.list())
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, "3"])
def test_a_saved_guidance_must_be_a_finite_number(name, bad):
    cls = vidtok.MODELS.get(name)
    with pytest.raises(ValueError, match="guidance_scale must be a finite number"):
        cls(**{**cls.tiny_config(), "guidance_scale": bad})


def test_image_to_video_prefills_the_image_tokens(tiny_pipe):
    from vidtok.pipelines import ImageToVideo

    i2v = ImageToVideo(**tiny_pipe.components)
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = i2v(image, "a red circle moves right", num_keyframes=3, progress=False, output_type="pt",
              generator=torch.Generator().manual_seed(0))  # fmt: skip
    with torch.no_grad():
        expected = tiny_pipe.video_tokenizer.encode(image[:, :, None]).tokens
    assert out.tokens.shape == (1, 3, N, D)
    torch.testing.assert_close(out.tokens[:, :1], expected)


def test_the_example_config_trains_nova_tiny_and_exports_a_pipeline(tmp_path, capsys):
    """``vidtok train examples/configs/nova_tiny.yaml`` at toy size: teacher-forced training through the recipe
    engine, held-out evaluation, and an exported pipeline that loads and generates."""
    from pathlib import Path

    from vidtok.cli import main
    from vidtok.pipelines import TextToVideo

    config = Path(__file__).resolve().parents[1] / "examples" / "configs" / "nova_tiny.yaml"
    out = tmp_path / "run"
    sets = [
        "overrides.tiny=true", "trainer.max_steps=6", "data.videos=8", "data.steps_per_sample=2",
        "evaluation.prompts=2", "evaluation.every=3", "evaluation.keyframes=2", "evaluation.diversity_seeds=1",
        f"trainer.output_dir={out}",
    ]  # fmt: skip
    assert main(["train", str(config), "--set", *sets]) == 0
    assert "trained 6 steps" in capsys.readouterr().out
    pipe = TextToVideo.from_pretrained(out / "pipeline")
    assert type(pipe.model) is NOVAModel and pipe.model.trained_length == 2
    video = pipe("a red circle moves right", num_keyframes=3, progress=False, output_type="pt",
                 generator=torch.Generator().manual_seed(0), head_kwargs={"num_inference_steps": 2})  # fmt: skip
    assert video.tokens.shape == (1, 3, N, D) and torch.isfinite(video.frames).all()


def test_nova_recipes_take_overrides_and_refuse_unknown_ones():
    recipe = vidtok.RECIPES.create("nova_tiny", head_kwargs={"prediction_type": "epsilon", "scheduler": "ddpm"})
    assert recipe.head.kwargs["prediction_type"] == "epsilon" and recipe.head.kwargs["hidden_size"] == 192
    assert recipe.model.kwargs["grid"] == [4, 4] and recipe.model.kwargs["token_dim"] == 16  # from the Shapes VAE
    with pytest.raises(TypeError, match="unknown overrides \\['head'\\]"):
        vidtok.RECIPES.create("nova_tiny", head="gmm")
    with pytest.raises(TypeError, match="the model_kwargs override must be a dict"):
        vidtok.RECIPES.create("nova_tiny", model_kwargs=3)
