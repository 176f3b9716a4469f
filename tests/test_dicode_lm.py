"""dicode_lm (DiCoDe's video LM): teacher-forced loss, KV-cached generation, CFG, sliding window, errors."""

from __future__ import annotations

import contracts
import pytest
import torch

from vidtok.backbones.hf_causal_lm import HFCausalLM
from vidtok.heads.gmm import GMMHead
from vidtok.heads.l2 import L2Head
from vidtok.models.base import VideoARModelForTraining
from vidtok.models.dicode_lm import DiCoDeLM

N, D, H, L = 4, 8, 32, 4


@pytest.fixture
def parts():
    torch.manual_seed(0)
    lm = DiCoDeLM(**DiCoDeLM.tiny_config()).eval()
    backbone = HFCausalLM(**HFCausalLM.tiny_config()).eval()
    return lm, backbone


def _text(b=2):
    return torch.randint(1, 64, (b, L), generator=torch.Generator().manual_seed(3))


def test_forward_shapes_and_causality(parts):
    lm, backbone = parts
    tokens = torch.randn(2, 3, N, D)
    hidden = lm(backbone, _text(), tokens)
    assert hidden.shape == (2, 3, N, H)
    # The prediction of keyframe 1 must not see keyframe 1's own tokens (only earlier ones).
    other = tokens.clone()
    other[:, 1:] = torch.randn(2, 2, N, D)
    again = lm(backbone, _text(), other)
    torch.testing.assert_close(hidden[:, :1], again[:, :1])
    torch.testing.assert_close(hidden[:, 1, 0], again[:, 1, 0])  # predicted from [BOV] after keyframe 0
    assert not torch.allclose(hidden[:, 1, 1:], again[:, 1, 1:])


def _variant(lm: DiCoDeLM, **changes) -> DiCoDeLM:
    """The same weights under changed config options (a new still gate starts from its own init)."""
    config = {k: v for k, v in lm.config.items() if not k.startswith("_")}
    torch.manual_seed(1)
    out = DiCoDeLM(**{**config, **changes}).eval()
    missing, unexpected = out.load_state_dict(lm.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("still_head.") for k in missing)
    return out


def _residual(lm: DiCoDeLM) -> DiCoDeLM:
    return _variant(lm, keyframe_residual=True)


def _set_gate(lm: DiCoDeLM, logit: float) -> DiCoDeLM:
    """Make the still gate answer ``logit`` everywhere."""
    with torch.no_grad():
        for layer in lm.still_head:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.zero_()
        lm.still_head[-1].bias.fill_(logit)
    return lm


VARIANTS = {"plain": {}, "residual": {"keyframe_residual": True}, "still_gate": {"still_gate": True}}


@pytest.mark.parametrize("head_cls", [L2Head, GMMHead])
@pytest.mark.parametrize("window", [None, 3])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize(("guidance", "prefix"), [(1.0, False), (3.0, True)], ids=["plain", "guided+prefix"])
def test_kv_cache_generation_equals_uncached(parts, head_cls, window, variant, guidance, prefix):
    lm, backbone = parts
    lm = _variant(lm, **VARIANTS[variant])
    head = head_cls(hidden_size=H, token_dim=D).eval()
    kw = {"num_steps": 6, "context_keyframes": window, "progress": False, "guidance_scale": guidance}
    if prefix:  # a two-keyframe prefix, prefilled into both guidance branches and re-encoded by the window
        kw["prefix"] = torch.randn(2, 2, N, D, generator=torch.Generator().manual_seed(7))
    a = lm.generate(backbone, head, _text(), generator=torch.Generator().manual_seed(5), **kw)
    b = lm.generate(backbone, head, _text(), generator=torch.Generator().manual_seed(5), use_cache=False, **kw)
    assert a.shape == (2, 6, N, D)
    # Same randomness, same tokens; only float summation order differs between the two paths.
    torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_generation_matches_teacher_forcing(parts):
    # With the deterministic L2 head, the generated tokens are fixed points of the teacher-forced forward.
    lm, backbone = parts
    head = L2Head(hidden_size=H, token_dim=D).eval()
    tokens = lm.generate(backbone, head, _text(), num_steps=3, progress=False)
    predicted = head.sample(lm(backbone, _text(), tokens))
    torch.testing.assert_close(predicted, tokens, atol=1e-4, rtol=1e-4)


def test_keyframe_residual_models_the_change_from_the_previous_keyframe(parts):
    lm, backbone = parts
    res = _residual(lm)
    head = L2Head(hidden_size=H, token_dim=D).eval()
    tokens = torch.randn(2, 3, N, D)
    targets = res.head_targets(tokens)
    torch.testing.assert_close(targets[:, 0], tokens[:, 0])
    torch.testing.assert_close(targets[:, 2], tokens[:, 2] - tokens[:, 1])
    # Same inputs as the plain model (the tokens); the head is scored on the changes.
    expected = head.loss(lm(backbone, _text(), tokens), targets).mean()
    torch.testing.assert_close(res.loss(backbone, head, _text(), tokens)["loss"], expected)
    # Generated tokens are fixed points of the teacher-forced forward, in change space.
    out = res.generate(backbone, head, _text(), num_steps=3, progress=False)
    torch.testing.assert_close(head.sample(res(backbone, _text(), out)), res.head_targets(out), atol=1e-4, rtol=1e-4)
    # A head that predicts no change copies the last known keyframe (a still scene), past the window too.
    with torch.no_grad():
        head.proj.weight.zero_()
        head.proj.bias.zero_()
    prefix = torch.randn(2, 1, N, D)
    kw = {"num_steps": 7, "prefix": prefix, "context_keyframes": 3, "progress": False}
    still = res.generate(backbone, head, _text(), **kw)
    torch.testing.assert_close(still, prefix.expand(2, 7, N, D))
    assert torch.equal(lm.generate(backbone, head, _text(), **kw)[:, 1:], torch.zeros(2, 6, N, D))


def test_still_gate_targets_loss_and_exact_repeats(parts):
    lm, backbone = parts
    gated = _variant(lm, still_gate=True)
    head = L2Head(hidden_size=H, token_dim=D).eval()
    tokens = torch.randn(2, 4, N, D)
    tokens[0, 1] = tokens[0, 0]  # video 0 repeats keyframe 0, then moves, then repeats keyframe 2
    tokens[0, 3] = tokens[0, 2]
    tokens[1, 2] = tokens[1, 1] + 1e-3  # a near repeat is no repeat at tolerance 0
    expected = torch.tensor([[True, False, True], [False, False, False]])
    assert torch.equal(gated.still_head.targets(tokens), expected)
    assert _variant(lm, still_gate=True, still_tolerance=1e-2).still_head.targets(tokens)[1].tolist() == [
        False,
        True,
        False,
    ]
    # The loss is the head's (unchanged, so NLLs compare) plus the gate's BCE on keyframes 1..S-1.
    hidden, logits = gated(backbone, _text(), tokens, return_still_logits=True)
    torch.testing.assert_close(hidden, lm(backbone, _text(), tokens))
    assert logits.shape == (2, 3)
    out = gated.loss(backbone, head, _text(), tokens)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, expected.float())
    torch.testing.assert_close(out["still_bce"], bce)
    torch.testing.assert_close(out["loss"], head.loss(hidden, tokens).mean() + bce)
    # A gate that always repeats copies the prefix exactly, across window slides and under CFG.
    prefix = torch.randn(2, 1, N, D)
    kw = {"num_steps": 7, "prefix": prefix, "context_keyframes": 3, "progress": False}
    _set_gate(gated, 30.0)
    for extra in ({}, {"guidance_scale": 3.0}, {"temperature": 0.0}):
        torch.testing.assert_close(gated.generate(backbone, head, _text(), **kw, **extra), prefix.expand(2, 7, N, D))
    # A gate that never repeats samples like the model without it (deterministic at temperature 0).
    _set_gate(gated, -30.0)
    gmm = GMMHead(hidden_size=H, token_dim=D).eval()
    kw = {"num_steps": 4, "temperature": 0.0, "progress": False}
    torch.testing.assert_close(gated.generate(backbone, gmm, _text(), **kw), lm.generate(backbone, gmm, _text(), **kw))
    with pytest.raises(ValueError, match="no still gate"):
        lm(backbone, _text(), tokens, return_still_logits=True)


def test_still_gate_learns_which_prompts_stay_still(parts):
    # Prompt A: a still scene (every keyframe the same); prompt B: a new random keyframe each time.
    _, backbone = parts
    torch.manual_seed(0)
    lm = DiCoDeLM(**{**DiCoDeLM.tiny_config(), "text_dropout": 0.0, "still_gate": True})
    model = VideoARModelForTraining(backbone.train(), lm, GMMHead(hidden_size=H, token_dim=D))
    ids = torch.tensor([[1, 2, 0, 0], [3, 4, 0, 0]])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        still = torch.randn(1, 1, N, D).expand(1, 3, N, D)
        tokens = torch.cat([still, torch.randn(1, 3, N, D)])
        out = model.training_step({"input_ids": ids, "tokens": tokens})
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert out["still_bce"] < 0.05
    model.eval()
    video = lm.generate(model.backbone, model.head, ids, num_steps=4, progress=False)
    assert torch.equal(video[0], video[0, :1].expand(4, N, D))  # exact repeats
    assert (video[1, 1:] - video[1, :-1]).abs().amax() > 0.1


def test_cfg_scale_one_is_no_cfg_and_guides_in_token_space(parts):
    lm, backbone = parts
    head = GMMHead(hidden_size=H, token_dim=D, num_components=3).eval()
    plain = lm.generate(
        backbone, head, _text(), num_steps=2, generator=torch.Generator().manual_seed(1), progress=False
    )
    one = lm.generate(
        backbone,
        head,
        _text(),
        num_steps=2,
        guidance_scale=1.0,
        generator=torch.Generator().manual_seed(1),
        progress=False,
    )
    torch.testing.assert_close(plain, one, atol=0, rtol=0)
    # L2: the first token is u + s (c - u) of the conditional and null-prompt predictions.
    l2 = L2Head(hidden_size=H, token_dim=D).eval()
    s = 3.0
    guided = lm.generate(backbone, l2, _text(), num_steps=1, guidance_scale=s, progress=False)
    first = torch.zeros(2, 1, N, D)
    c = l2.sample(lm(backbone, _text(), first))[:, 0, 0]
    u = l2.sample(lm(backbone, lm.null_text(2), first))[:, 0, 0]
    torch.testing.assert_close(guided[:, 0, 0], u + s * (c - u), atol=1e-5, rtol=1e-5)
    # GMM guides inside the mixture (one component for both branches): the LM hands it the null prompt's states.
    guided = lm.generate(backbone, head, _text(), num_steps=1, guidance_scale=s, temperature=0.0, progress=False)
    hc, hu = lm(backbone, _text(), first)[:, 0, 0], lm(backbone, lm.null_text(2), first)[:, 0, 0]
    expected = head.sample(hc, temperature=0.0, guidance_scale=s, uncond_hidden=hu)
    torch.testing.assert_close(guided[:, 0, 0], expected, atol=1e-5, rtol=1e-5)


def test_sliding_window_keeps_memory_flat(parts):
    lm, backbone = parts
    head = L2Head(hidden_size=H, token_dim=D).eval()
    lengths = []

    def hook(module, args, kwargs, output):
        lengths.append(output.past_key_values.get_seq_length())

    handle = backbone.register_forward_hook(hook, with_kwargs=True)
    try:
        out = lm.generate(backbone, head, _text(1), num_steps=20, context_keyframes=4, progress=False)
    finally:
        handle.remove()
    assert out.shape == (1, 20, N, D) and torch.isfinite(out).all()
    assert max(lengths) <= L + 4 * (N + 1), max(lengths)
    # More keyframes than frame-index embeddings work (windowed); one context that large does not.
    with pytest.raises(ValueError, match="context_keyframes"):
        lm.generate(backbone, head, _text(1), num_steps=3, context_keyframes=99, progress=False)
    # A model trained on shorter sequences declares its window in the config; generation uses it by default.
    short = DiCoDeLM(**{**{k: v for k, v in lm.config.items() if not k.startswith("_")}, "context_keyframes": 4})
    short.load_state_dict(lm.state_dict())
    gen = torch.Generator
    kw = {"num_steps": 9, "progress": False}
    windowed = lm.generate(backbone, head, _text(1), context_keyframes=4, generator=gen().manual_seed(0), **kw)
    torch.testing.assert_close(short.generate(backbone, head, _text(1), generator=gen().manual_seed(0), **kw), windowed)
    with pytest.raises(ValueError, match="context_keyframes must be in"):
        DiCoDeLM(**{**DiCoDeLM.tiny_config(), "context_keyframes": 9})


def test_prefix_is_kept_and_continued(parts):
    lm, backbone = parts
    head = GMMHead(hidden_size=H, token_dim=D, num_components=2).eval()
    prefix = torch.randn(2, 2, N, D)
    out = lm.generate(backbone, head, _text(), num_steps=4, prefix=prefix, progress=False)
    assert torch.equal(out[:, :2], prefix) and out.shape == (2, 4, N, D)


def test_seeded_generation_is_deterministic(parts):
    lm, backbone = parts
    head = GMMHead(hidden_size=H, token_dim=D, num_components=2).eval()
    run = lambda s: lm.generate(  # noqa: E731
        backbone, head, _text(), num_steps=2, generator=torch.Generator().manual_seed(s), progress=False
    )
    assert torch.equal(run(0), run(0)) and not torch.equal(run(0), run(1))


def test_text_dropout_replaces_prompts_by_the_null_prompt(parts):
    lm, backbone = parts
    head = L2Head(hidden_size=H, token_dim=D)
    tokens = torch.randn(2, 2, N, D)
    dropper = DiCoDeLM(**{**DiCoDeLM.tiny_config(), "text_dropout": 0.999}).train()
    dropper.load_state_dict(lm.state_dict())
    dropped = dropper.loss(backbone, head, _text(), tokens, generator=torch.Generator().manual_seed(0))["loss"]
    null = lm.loss(backbone, head, lm.null_text(2), tokens)["loss"]
    torch.testing.assert_close(dropped, null)


def test_loss_reports_nll_where_the_head_has_a_density(parts):
    lm, backbone = parts
    tokens = torch.randn(2, 2, N, D)
    assert "nll" in lm.loss(backbone, GMMHead(hidden_size=H, token_dim=D), _text(), tokens)
    from vidtok.heads.diffusion_mlp import DiffusionMLPHead

    diffusion = DiffusionMLPHead(**{**DiffusionMLPHead.tiny_config(), "hidden_size": H, "token_dim": D})
    assert "nll" not in lm.loss(backbone, diffusion, _text(), tokens, generator=torch.Generator().manual_seed(0))


def test_training_learns_text_conditioned_tokens(parts):
    # Two prompts, two fixed token patterns: a few dozen steps must separate them.
    _, backbone = parts
    torch.manual_seed(0)
    lm = DiCoDeLM(**{**DiCoDeLM.tiny_config(), "text_dropout": 0.0})
    model = VideoARModelForTraining(backbone.train(), lm, {"l2": L2Head(hidden_size=H, token_dim=D)})
    ids = torch.tensor([[1, 2, 0, 0], [3, 4, 0, 0]])
    tokens = torch.stack([torch.ones(2, N, D), -torch.ones(2, N, D)])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = model.training_step({"input_ids": ids, "tokens": tokens})["loss"]
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first, (first, loss.item())
    model.eval()
    out = lm.generate(model.backbone, model.head, ids, num_steps=2, progress=False)
    assert (out[0] > 0).float().mean() > 0.9 and (out[1] < 0).float().mean() > 0.9


def test_stage_switches_heads(parts):
    lm, backbone = parts
    from vidtok.training import Stage

    model = VideoARModelForTraining(
        backbone, lm, {"l2": L2Head(hidden_size=H, token_dim=D), "gmm": GMMHead(hidden_size=H, token_dim=D)}
    )
    assert isinstance(model.head, L2Head)
    model.configure_stage(Stage("gmm", 1, options={"head": "gmm"}))
    assert isinstance(model.head, GMMHead)
    with pytest.raises(ValueError, match="head 'nope'"):
        model.configure_stage(Stage("x", 1, options={"head": "nope"}))
    with pytest.raises(ValueError, match="unknown stage options"):
        model.configure_stage(Stage("x", 1, options={"lr": 1}))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_save_load_round_trip(tmp_path, variant):
    loaded = contracts.check_save_load(DiCoDeLM(**DiCoDeLM.tiny_config(), **VARIANTS[variant]), tmp_path)
    for key, value in VARIANTS[variant].items():
        assert loaded.config[key] is value
    assert (loaded.still_head is not None) is (variant == "still_gate")


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda lm, bb, h: lm(bb, torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 1, N, D)),
            ValueError,
            "text_length",
        ),
        (lambda lm, bb, h: lm(bb, torch.zeros(2, L), torch.zeros(2, 1, N, D)), TypeError, "integer"),
        (lambda lm, bb, h: lm(bb, _text(), torch.zeros(2, 1, N + 1, D)), ValueError, "deep tokens must be"),
        (lambda lm, bb, h: lm(bb, _text(), torch.full((2, 1, N, D), float("nan"))), ValueError, "NaN"),
        (lambda lm, bb, h: lm(bb, torch.full((2, L), 999), torch.zeros(2, 1, N, D)), ValueError, "vocabulary"),
        (lambda lm, bb, h: lm.generate(bb, h, _text(), 0, progress=False), ValueError, "num_steps"),
        (lambda lm, bb, h: lm.generate(bb, h, _text(), 2, temperature=-1, progress=False), ValueError, "temperature"),
        (
            lambda lm, bb, h: lm.generate(bb, h, _text(), 1, prefix=torch.zeros(2, 2, N, D), progress=False),
            ValueError,
            "prefix",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(parts, call, error, match):
    lm, backbone = parts
    with pytest.raises(error, match=match):
        call(lm, backbone, L2Head(hidden_size=H, token_dim=D))


def test_bad_config():
    with pytest.raises(ValueError, match="text_dropout"):
        DiCoDeLM(**{**DiCoDeLM.tiny_config(), "text_dropout": 1.5})
    with pytest.raises(ValueError, match="mlp_layers"):
        DiCoDeLM(**{**DiCoDeLM.tiny_config(), "mlp_layers": 0})
    with pytest.raises(ValueError, match="still_tolerance"):
        DiCoDeLM(**{**DiCoDeLM.tiny_config(), "still_gate": True, "still_tolerance": -1.0})


def test_a_checkpoint_from_before_the_model_contract_still_loads(parts):
    """Trainer checkpoints of VideoLMForTraining named the model "video_lm." and the bare GPT-2 "backbone.wte...";
    the training module renames them on load, so such runs resume (strictly: every tensor lands)."""
    lm, backbone = parts
    model = VideoARModelForTraining(backbone, lm, L2Head(hidden_size=H, token_dim=D))
    old = {}
    for key, value in model.state_dict().items():
        key = "video_lm." + key.removeprefix("model.") if key.startswith("model.") else key
        old[key.replace("backbone.model.", "backbone.", 1)] = value.clone() + 1.0
    assert "video_lm.bov" in old and "backbone.wte.weight" in old
    model.load_state_dict(old, strict=True)
    assert torch.equal(model.model.bov, old["video_lm.bov"])
    assert torch.equal(model.backbone.model.wte.weight, old["backbone.wte.weight"])
