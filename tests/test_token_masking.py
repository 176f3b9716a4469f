"""HiTVideo's dynamic token masking (§4, Fig. 6–7): masks, the 85 % cap, the three strategies, the tokenizer."""

from __future__ import annotations

import math

import pytest
import torch
from contracts import check_save_load

import vidtok.tokenizers.hierarchical_lfq as hlfq
from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer
from vidtok.tokenizers.token_masking import apply_token_mask, dynamic_token_mask, tokens_saved


def _tiny(**changes):
    torch.manual_seed(0)
    return HierarchicalLFQTokenizer(**{**HierarchicalLFQTokenizer.tiny_config(), **changes})


def _video(t, h=16, w=16, b=2, seed=0):
    return torch.rand(b, 3, t, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _shapes_clip(caption, frames=17, resolution=32):
    from vidtok.shapes import render_video

    pixels = render_video(caption, num_frames=frames, resolution=resolution, seed=0)
    return torch.from_numpy(pixels).float().permute(3, 0, 1, 2).unsqueeze(0) / 127.5 - 1


# ------------------------------------------------------------------ the masks
def test_masks_only_below_the_mean_difference_and_never_the_first_step():
    g = torch.Generator().manual_seed(0)
    b, s, n, d = 2, 5, 6, 4
    latents = torch.randn(b, 1, n, d, generator=g).repeat(1, s, 1, 1)
    moving = [1, 4]  # these tokens change at every step, the others stay still
    latents[:, :, moving] += torch.randn(b, s, len(moving), d, generator=g) * 3
    mask = dynamic_token_mask(latents)
    assert mask.shape == (b, s, n) and mask.dtype == torch.bool
    assert not mask[:, 0].any()
    still = [i for i in range(n) if i not in moving]
    assert mask[:, 1:, still].all() and not mask[:, :, moving].any()
    # With everything changing, only the tokens below the sample's mean difference are masked.
    x = torch.randn(1, 4, 8, 3, generator=g)
    diff = (x[:, 1:] - x[:, :-1]).norm(dim=-1)
    expected = diff < diff.mean()
    got = dynamic_token_mask(x, max_fraction=1.0)
    assert torch.equal(got[:, 1:], expected) and not got[:, 0].any()
    # A list of levels gives a list of masks; a single step masks nothing.
    masks = dynamic_token_mask([latents, x[:, :1]])
    assert torch.equal(masks[0], mask) and not masks[1].any()


def test_the_cap_is_exact_seeded_and_deterministic():
    b, s, n = 3, 9, 4
    still = torch.randn(b, 1, n, 5).repeat(1, s, 1, 1)  # a fully still video: every later token is a candidate
    cap = math.floor(0.85 * s * n)
    a = dynamic_token_mask(still, generator=torch.Generator().manual_seed(1))
    again = dynamic_token_mask(still, generator=torch.Generator().manual_seed(1))
    other = dynamic_token_mask(still, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, again) and not torch.equal(a, other)
    assert a.flatten(1).sum(1).tolist() == [cap] * b
    assert (a.flatten(1).float().mean(1) <= 0.85).all() and not a[:, 0].any()
    assert not dynamic_token_mask(still, max_fraction=0.0).any()
    assert dynamic_token_mask(still, max_fraction=1.0)[:, 1:].all()
    with pytest.raises(ValueError, match="max_fraction"):
        dynamic_token_mask(still, max_fraction=1.5)
    report = tokens_saved([a])
    assert report == [{"level": "level0", "masked": b * cap, "total": b * s * n, "fraction": cap / (s * n)}]


# ------------------------------------------------------------------ the strategies
def test_the_three_strategies():
    tokens = torch.arange(1, 1 + 1 * 5 * 2 * 3, dtype=torch.float32).reshape(1, 5, 2, 3)
    mask = torch.zeros(1, 5, 2, dtype=torch.bool)
    mask[0, 1:4, 0] = True  # a run of three masked steps of token 0
    mask[0, 4, 1] = True
    rep = apply_token_mask(tokens, mask, "repeat")
    for s in range(1, 4):
        assert torch.equal(rep[0, s, 0], tokens[0, 0, 0])  # the last unmasked step, chained
    assert torch.equal(rep[0, 4, 0], tokens[0, 4, 0]) and torch.equal(rep[0, 4, 1], tokens[0, 3, 1])
    assert torch.equal(rep[~mask], tokens[~mask])
    zero = apply_token_mask(tokens, mask, "zero")
    assert (zero[mask] == 0).all() and torch.equal(zero[~mask], tokens[~mask])
    token = torch.tensor([0.5, -0.25, 2.0])
    learned = apply_token_mask(tokens, mask, "learned", token)
    assert (learned[mask] == token).all() and torch.equal(learned[~mask], tokens[~mask])
    first = mask.clone()
    first[0, 0, 1] = True
    with pytest.raises(ValueError, match="first step"):
        apply_token_mask(tokens, first, "repeat")
    with pytest.raises(ValueError, match="mask_token"):
        apply_token_mask(tokens, mask, "learned")
    with pytest.raises(ValueError, match="unknown strategy"):
        apply_token_mask(tokens, mask, "blur")
    with pytest.raises(ValueError, match="bool tensor"):
        apply_token_mask(tokens, mask.float(), "zero")


# ------------------------------------------------------------------ the tokenizer
def test_config_options_are_checked():
    with pytest.raises(ValueError, match="token_masking"):
        _tiny(token_masking="blur")
    with pytest.raises(ValueError, match="mask_max_fraction"):
        _tiny(token_masking="zero", mask_max_fraction=2)


@pytest.mark.parametrize("strategy", ["repeat", "zero", "learned"])
def test_encode_masks_the_tokens_and_reports_the_savings(strategy):
    tok = _tiny(token_masking=strategy).eval()
    if strategy == "learned":
        with torch.no_grad():
            for p in tok.mask_tokens:
                p.copy_(torch.linspace(-0.5, 0.5, p.numel()))
    plain = _tiny().eval()
    video = _video(9)
    with torch.no_grad():
        out = tok.encode(video, generator=torch.Generator().manual_seed(0))
        ref = plain.encode(video)
        masks = tok.token_masks(video, generator=torch.Generator().manual_seed(0))
        recon = tok.decode(out.tokens)
    assert recon.shape == video.shape
    assert all(torch.equal(a, b) for a, b in zip(masks, tok.last_token_masks))
    assert all(torch.equal(a, b) for a, b in zip(masks, out.token_masks))  # returned by encode as well
    assert ref.token_masks is None
    for i, (mask, t, r, codes, ref_codes) in enumerate(zip(masks, out.tokens, ref.tokens, out.indices, ref.indices)):
        assert mask.shape == codes.shape and not mask[:, 0].any()
        assert torch.equal(codes, ref_codes)  # the codes are the quantizer's, masked or not
        assert torch.equal(t[~mask], r[~mask])
        expected = apply_token_mask(r, mask, strategy, tok.mask_tokens[i] if strategy == "learned" else None)
        assert torch.equal(t, expected)
    assert any(m.any() for m in masks)
    report = tok.last_tokens_saved
    assert [r["level"] for r in report] == ["level0", "level1", "level2"]
    for r, m in zip(report, masks):
        assert r["masked"] == int(m.sum()) and r["total"] == m.numel() and r["fraction"] <= 0.85


def test_a_still_shapes_clip_saves_more_tokens_than_a_moving_one():
    tok = _tiny(token_masking="repeat").eval()
    with torch.no_grad():
        still = tok.token_masks(_shapes_clip("a large red circle"), generator=torch.Generator().manual_seed(0))
        moving = tok.token_masks(
            _shapes_clip("a large red circle moves right"), generator=torch.Generator().manual_seed(0)
        )
    saved_still = sum(int(m.sum()) for m in still)
    saved_moving = sum(int(m.sum()) for m in moving)
    assert saved_still > saved_moving
    # The finest level of the still clip is as masked as the cap allows.
    s, n = still[-1].shape[1:]
    assert int(still[-1].sum()) == min(math.floor(0.85 * s * n), (s - 1) * n)


def test_masked_tokens_get_no_quantizer_loss(monkeypatch):
    tok = _tiny(token_masking="zero").train()
    video = _video(9)
    with torch.no_grad():
        fixed = tok.token_masks(video, generator=torch.Generator().manual_seed(0))
    sizes = [tuple(m.shape[1:]) for m in fixed]
    assert len(set(sizes)) == len(sizes)  # the levels' (S, N) tell them apart
    monkeypatch.setattr(hlfq, "dynamic_token_mask", lambda z, **kwargs: fixed[sizes.index(tuple(z.shape[1:3]))])

    def losses(perturb):
        handles = []
        for i, proj in enumerate(tok.quant_proj):
            if perturb:
                m = fixed[i]

                def hook(module, args, out, m=m):
                    b, d, s, h, w = out.shape
                    noise = torch.randn(out.shape, generator=torch.Generator().manual_seed(5)) * 3
                    where = m.reshape(b, 1, s, h, w)
                    return torch.where(where, out + noise, out)

                handles.append(proj.register_forward_hook(hook))
        try:
            with torch.no_grad():
                aux = tok.encode(video).aux_losses
        finally:
            for h in handles:
                h.remove()
        return aux

    base, changed = losses(False), losses(True)
    for i in range(tok.num_levels):
        assert fixed[i].any()
        for key in ("commitment", "entropy"):
            assert float(base[f"level{i}/{key}"]) != 0
            assert torch.allclose(base[f"level{i}/{key}"], changed[f"level{i}/{key}"], rtol=1e-6, atol=1e-7)
    # Without the mask, the same perturbation does change the losses.
    monkeypatch.setattr(hlfq, "dynamic_token_mask", lambda z, **kwargs: torch.zeros(z.shape[:3], dtype=torch.bool))
    assert not torch.allclose(losses(False)["commitment"], losses(True)["commitment"])


def test_training_step_trains_the_learned_mask_token():
    tok = _tiny(token_masking="learned").train()
    out = tok.training_step({"video": _video(9)}, generator=torch.Generator().manual_seed(0))
    out["loss"].backward()
    grads = [p.grad for p in tok.mask_tokens]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    assert torch.isfinite(out["loss"]) and out["reconstruction"].shape == (2, 3, 9, 16, 16)


def test_save_load_keeps_the_option_and_the_learned_token(tmp_path):
    tok = _tiny(token_masking="learned", mask_max_fraction=0.5).eval()
    with torch.no_grad():
        for p in tok.mask_tokens:
            p.normal_()
    loaded = check_save_load(tok, tmp_path).eval()
    assert loaded.config.token_masking == "learned" and loaded.config.mask_max_fraction == 0.5
    assert all(torch.equal(a, b) for a, b in zip(tok.mask_tokens, loaded.mask_tokens))
    video = _video(9)
    with torch.no_grad():
        a = tok.encode(video, generator=torch.Generator().manual_seed(0))
        b = loaded.encode(video, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(x, y) for x, y in zip(a.tokens, b.tokens))


def test_no_masking_is_the_plain_tokenizer_and_a_zero_cap_changes_nothing():
    plain = _tiny()
    assert plain.config.token_masking is None and not hasattr(plain, "mask_tokens")
    assert plain.state_dict().keys() == _tiny(token_masking="zero").state_dict().keys()
    capped = _tiny(token_masking="repeat", mask_max_fraction=0.0)
    video = _video(9)
    for mode in ("eval", "train"):
        a_tok, b_tok = getattr(plain, mode)(), getattr(capped, mode)()
        a, b = a_tok.encode(video), b_tok.encode(video)
        assert all(torch.equal(x, y) for x, y in zip(a.tokens, b.tokens))
        assert all(torch.equal(x, y) for x, y in zip(a.indices, b.indices))
        assert all(torch.equal(a.aux_losses[k], b.aux_losses[k]) for k in a.aux_losses)
    assert plain.last_token_masks is None
    assert [r["masked"] for r in capped.last_tokens_saved] == [0, 0, 0]
