"""HiTVideo's coarse-to-fine language model (``hitvideo_lm``), its recipes and the categorical head's level support."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import vidtok
from vidtok.backbones.hf_causal_lm import HFCausalLM
from vidtok.heads.categorical import CategoricalHead
from vidtok.models.hitvideo_lm import HiTVideoLM
from vidtok.pipelines.text_to_video import TextToVideo
from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer
from vidtok.tokenizers.token_masking import tokens_saved


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    lm = HiTVideoLM(**HiTVideoLM.tiny_config()).eval()
    backbone = HFCausalLM(**HFCausalLM.tiny_config()).eval()
    head = CategoricalHead(hidden_size=32, num_bits=6, bits_per_group=2).eval()
    return lm, backbone, head


def _text(batch=2, length=4, seed=0):
    return torch.randint(1, 30, (batch, length), generator=torch.Generator().manual_seed(seed))


def _flat(codes):
    return torch.cat([c.flatten(1) for c in codes], dim=1)


# ------------------------------------------------------------------------------ the head's level restriction
@settings(max_examples=20, deadline=None)
@given(bits=st.integers(1, 6), group=st.sampled_from([1, 2, 3, 6]), seed=st.integers(0, 1000))
def test_restricted_nll_is_the_renormalized_joint(bits, group, seed):
    """Law: restricting a factorized head to codes < 2^b is conditioning its joint on that set."""
    torch.manual_seed(seed)
    head = CategoricalHead(hidden_size=8, num_bits=6, bits_per_group=group)
    hidden = torch.randn(3, 8)
    codes = torch.arange(64)
    full = torch.stack([head.nll(hidden, c.expand(3)) for c in codes], dim=1)  # (3, 64)
    log_joint = -full[:, : 2**bits]
    expected = -(log_joint - torch.logsumexp(log_joint, dim=1, keepdim=True))
    restricted = torch.stack([head.nll(hidden, c.expand(3), num_codes=2**bits) for c in codes[: 2**bits]], dim=1)
    assert torch.allclose(restricted, expected, atol=1e-5)


def test_restricted_sampling_stays_in_range_and_bad_limits_are_named():
    head = CategoricalHead(hidden_size=8, num_bits=6, bits_per_group=2)
    hidden = torch.randn(4000, 8) * 5
    for bits in (1, 3, 4, 6):
        codes = head.sample(hidden, num_codes=2**bits, generator=torch.Generator().manual_seed(bits))
        assert int(codes.max()) < 2**bits and int(codes.min()) >= 0
        assert len(codes.unique()) == 2**bits  # the whole restricted support is reachable
        greedy = head.sample(hidden, temperature=0.0, num_codes=2**bits)
        assert int(greedy.max()) < 2**bits
    with pytest.raises(ValueError, match="power of two"):
        head.sample(hidden, num_codes=12)
    with pytest.raises(ValueError, match=r"num_codes must be an int in \[1, 64\]"):
        head.nll(hidden, torch.zeros(4000, dtype=torch.long), num_codes=128)
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 8\)"):
        head.loss(hidden[:2], torch.tensor([3, 9]), num_codes=8)
    flat = CategoricalHead(hidden_size=8, vocab_size=10)
    assert int(flat.sample(hidden, num_codes=3, generator=torch.Generator().manual_seed(0)).max()) < 3


# ------------------------------------------------------------------------------ the model
def test_layout_matches_the_tokenizer_and_every_step_count(parts):
    lm, _, _ = parts
    tok = HierarchicalLFQTokenizer(**HierarchicalLFQTokenizer.tiny_config())
    assert HiTVideoLM.layout_kwargs(tok) == {
        k: lm.config[k] for k in ("level_bits", "level_grids", "level_time_strides")
    }
    for steps in (1, 2, 3, 4):
        levels = tok.token_layout(tok.num_frames_for(steps), 16, 16)
        assert lm.level_steps(steps) == [lv.steps for lv in levels]
        assert lm.sequence_length(steps) == 1 + sum(lv.steps * lv.tokens for lv in levels)


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_the_kv_cache_and_the_recomputed_reference_draw_the_same_codes(parts, guidance):
    lm, backbone, head = parts
    run = lambda cache: lm.generate(  # noqa: E731
        backbone, head, _text(), 3, guidance_scale=guidance, use_cache=cache,
        generator=torch.Generator().manual_seed(5), progress=False,
    )  # fmt: skip
    assert torch.equal(_flat(run(True)), _flat(run(False)))


def test_generation_is_the_teacher_forced_model_coarse_to_fine(parts):
    """Greedy codes are the argmax of the teacher-forced hidden states, each within its level's codebook."""
    lm, backbone, head = parts
    text = _text()
    codes = lm.generate(backbone, head, text, 3, temperature=0.0, progress=False)
    assert [tuple(c.shape) for c in codes] == [(2, 2, 4), (2, 2, 16), (2, 3, 16)]
    for c, bits in zip(codes, lm.config.level_bits):
        assert c.dtype == torch.int64 and int(c.max()) < 2**bits
    hidden = lm(backbone, lm.embed_text(backbone, text), codes)
    _, _, levels = lm._placement(3)
    flat = _flat(codes)
    for i in range(flat.shape[1]):
        limit = 2 ** lm.config.level_bits[int(levels[i])]
        assert torch.equal(head.sample(hidden[:, i], temperature=0.0, num_codes=limit), flat[:, i])


def test_the_next_code_query_lets_one_model_generate_any_length(parts):
    lm, backbone, head = parts
    for steps in (1, 2, 4):
        codes = lm.generate(backbone, head, _text(1), steps, generator=torch.Generator().manual_seed(0), progress=False)
        assert [c.shape[1] for c in codes] == lm.level_steps(steps)
    with pytest.raises(ValueError, match=r"num_steps must be an int in \[1, max_steps=4\]"):
        lm.generate(backbone, head, _text(1), 5, progress=False)


def test_loss_weights_levels_and_skips_masked_codes(parts):
    lm, backbone, head = parts
    codes = lm.generate(backbone, head, _text(), 3, generator=torch.Generator().manual_seed(1), progress=False)
    weighted = HiTVideoLM(**{**HiTVideoLM.tiny_config(), "level_loss_weights": [3.0, 1.0, 0.0]})
    weighted.load_state_dict(lm.state_dict())
    weighted.eval()
    out = weighted.loss(backbone, head, _text(), codes)
    expected = (3 * out["level0/nll"] + out["level1/nll"]) / 4
    assert torch.allclose(out["loss"].detach(), expected, atol=1e-6)
    # Masked codes are left out: masking everything but one code of the finest level leaves exactly its loss.
    masks = [torch.zeros(c.shape, dtype=torch.bool) for c in codes]
    masks[2][:] = True
    masks[2][0, 0, 0] = False
    masked = lm.loss(backbone, head, _text(), codes, token_masks=masks)
    hidden = lm(backbone, lm.embed_text(backbone, _text()), codes)
    first_fine = codes[0][0].numel() + codes[1][0].numel()  # sequence index of the first finest code
    alone = head.nll(hidden[0, first_fine], codes[2][0, 0, 0], num_codes=64)
    assert torch.allclose(masked["level2/nll"], alone, atol=1e-5)


def test_bad_inputs_are_named(parts):
    lm, backbone, head = parts
    codes = lm.generate(backbone, head, _text(), 2, progress=False, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="list of 3"):
        lm.loss(backbone, head, _text(), codes[-1])
    with pytest.raises(ValueError, match=r"level 0 codes must lie in \[0, 2\^3\)"):
        lm.loss(backbone, head, _text(), [codes[0] + 8, codes[1], codes[2]])
    with pytest.raises(TypeError, match="level 1 codes must be integers"):
        lm.loss(backbone, head, _text(), [codes[0], codes[1].float(), codes[2]])
    with pytest.raises(ValueError, match=r"level 1 codes must be \(2, 2, 16\)"):
        lm.loss(backbone, head, _text(), [codes[0], codes[1][:, :1], codes[2]])
    with pytest.raises(ValueError, match=r"text must be \(B, 4\)"):
        lm.loss(backbone, head, _text(length=5), codes)
    with pytest.raises(ValueError, match="cannot continue"):
        lm.generate(backbone, head, _text(), 2, prefix=codes, progress=False)
    with pytest.raises(ValueError, match="level_bits, level_grids"):
        HiTVideoLM(**{**HiTVideoLM.tiny_config(), "level_bits": [3, 4]})
    with pytest.raises(ValueError) as err:
        lm.check_compatible(
            HierarchicalLFQTokenizer(**{**HierarchicalLFQTokenizer.tiny_config(), "level_bits": [3, 4, 8]}),
            backbone,
            CategoricalHead(hidden_size=32, num_bits=4, bits_per_group=2),
        )
    assert "level_bits are [3, 4, 8]" in str(err.value) and "the widest level needs 2^6" in str(err.value)
    # A model that learns the dynamic token masks needs a tokenizer that makes them.
    masking = HiTVideoLM(**HiTVideoLM.tiny_config(), predict_masks=True)
    with pytest.raises(ValueError, match="predict_masks=True .* token_masking=None"):
        masking.check_compatible(HierarchicalLFQTokenizer(**HierarchicalLFQTokenizer.tiny_config()), None, None)
    masking.check_compatible(
        HierarchicalLFQTokenizer(**HierarchicalLFQTokenizer.tiny_config(), token_masking="repeat"), None, None
    )


def test_a_tiny_model_learns_prompt_to_codes():
    """End to end learning: two prompts, two fixed code sequences; after training greedy decoding recalls both."""
    torch.manual_seed(0)
    lm = HiTVideoLM(**{**HiTVideoLM.tiny_config(), "text_dropout": 0.0})
    backbone = HFCausalLM(**HFCausalLM.tiny_config())
    head = CategoricalHead(hidden_size=32, num_bits=6, bits_per_group=2)
    g = torch.Generator().manual_seed(3)
    targets = [torch.randint(0, 2**b, (2, s, h * w), generator=g)
               for b, s, (h, w) in zip([3, 4, 6], lm.level_steps(2), lm.config.level_grids)]  # fmt: skip
    text = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    params = [*lm.parameters(), *backbone.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    first = None
    for _ in range(300):
        loss = lm.loss(backbone, head, text, targets)["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first
    lm.eval(), backbone.eval()
    codes = lm.generate(backbone, head, text, 2, temperature=0.0, progress=False)
    assert all(torch.equal(c, t) for c, t in zip(codes, targets))


# ------------------------------------------------------------------------------ skipping masked codes (§4)
def _masked_parts(bias=None, seed=0):
    """A predict_masks model with the fixture's initial weights; ``bias`` sets the mask head's bias (weights 0)."""
    torch.manual_seed(seed)
    lm = HiTVideoLM(**HiTVideoLM.tiny_config(), predict_masks=True).eval()
    if bias is not None:
        with torch.no_grad():
            lm.mask_head.weight.zero_()
            lm.mask_head.bias.fill_(bias)
    return lm


def _random_masks(codes, seed=0, p=0.5):
    g = torch.Generator().manual_seed(seed)
    masks = [torch.rand(c.shape, generator=g) < p for c in codes]
    for m in masks:
        m[:, 0] = False  # dynamic token masking never masks a first step
    return masks


def _per_step(lm):
    return [h * w for h, w in lm.config.level_grids]


def test_predict_masks_false_is_the_model_without_the_new_args(parts):
    lm, backbone, head = parts
    torch.manual_seed(0)
    same = HiTVideoLM(**HiTVideoLM.tiny_config(), predict_masks=False, mask_loss_weight=2.0).eval()
    assert list(same.state_dict()) == list(lm.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), lm.state_dict().values()))

    def run(model, guidance):
        return model.generate(backbone, head, _text(), 3, guidance_scale=guidance,
                              generator=torch.Generator().manual_seed(5), progress=False)  # fmt: skip

    for guidance in (1.0, 3.0):
        codes = run(same, guidance)
        assert torch.equal(_flat(run(lm, guidance)), _flat(codes))
        assert same.last_token_masks is None and same.last_tokens_saved is None
    assert "mask_bce" not in same.loss(backbone, head, _text(), codes)
    # With predict_masks the new parameters come last: every other one starts as without them.
    masked = _masked_parts()
    extra = set(masked.state_dict()) - set(lm.state_dict())
    assert extra == {"mask_head.weight", "mask_head.bias", "masked_embedding"}
    assert all(torch.equal(masked.state_dict()[k], v) for k, v in lm.state_dict().items())


def test_the_loss_feeds_a_masked_code_as_generation_does_and_learns_the_masks(parts):
    _, backbone, head = parts
    lm = _masked_parts()
    text = _text()
    codes = lm.generate(backbone, head, text, 3, generator=torch.Generator().manual_seed(1), progress=False)
    masks = _random_masks(codes)
    out = lm.loss(backbone, head, text, codes, token_masks=masks)
    assert {"loss", "nll", "mask_bce", "level0/nll", "level1/nll", "level2/nll"} <= set(out)
    assert not out["mask_bce"].requires_grad and out["loss"].requires_grad
    # What a masked code really was never reaches the model: changing it changes nothing.
    changed = [c.clone() for c in codes]
    for c, m, bits in zip(changed, masks, lm.config.level_bits):
        c[m] = (c[m] + 1) % 2**bits
    again = lm.loss(backbone, head, text, changed, token_masks=masks)
    assert all(torch.equal(out[k], again[k]) for k in out)
    # The input is the repeat code (chained through runs of masked steps) plus the masked embedding.
    repeated = []
    for c, m in zip(codes, masks):
        steps = [c[:, 0]]
        for s in range(1, c.shape[1]):
            steps.append(torch.where(m[:, s], steps[-1], c[:, s]))
        repeated.append(torch.stack(steps, dim=1))
    emb = lm.embed_codes(codes, masks)
    plain = lm.embed_codes(repeated)
    flat_masks = torch.cat([m.flatten(1) for m in masks], dim=1)
    expected = plain.clone()
    expected[:, 1:][flat_masks] += lm.masked_embedding
    assert torch.allclose(emb, expected, atol=1e-6)
    # The mask term: every code's logit from the hidden state that predicts it, weighted by mask_loss_weight.
    hidden = lm(backbone, lm.embed_text(backbone, text), codes, masks)
    logits = lm.mask_head(hidden).squeeze(-1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, flat_masks.float())
    assert torch.allclose(out["mask_bce"], bce, atol=1e-6)
    heavy = HiTVideoLM(**HiTVideoLM.tiny_config(), predict_masks=True, mask_loss_weight=3.0).eval()
    heavy.load_state_dict(lm.state_dict())
    out3 = heavy.loss(backbone, head, text, codes, token_masks=masks)
    assert torch.allclose(out3["loss"] - out["loss"], 2 * bce, atol=1e-5)
    # Changing an unmasked code does change the loss.
    other = [c.clone() for c in codes]
    other[2][0, 0, 0] = (other[2][0, 0, 0] + 1) % 64
    assert not torch.equal(lm.loss(backbone, head, text, other, token_masks=masks)["loss"], out["loss"])


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_skipping_generation_cached_equals_recomputed_and_repeats_the_previous_step(parts, guidance):
    _, backbone, head = parts
    lm = _masked_parts(seed=1)
    with torch.no_grad():
        lm.mask_head.bias.fill_(0.0)  # about half the codes masked, rows differing: the row-subset path runs

    def run(cache):
        codes = lm.generate(backbone, head, _text(), 3, guidance_scale=guidance, use_cache=cache,
                            generator=torch.Generator().manual_seed(5), progress=False)  # fmt: skip
        return codes, lm.last_token_masks

    codes, masks = run(True)
    ref_codes, ref_masks = run(False)
    assert torch.equal(_flat(codes), _flat(ref_codes))
    assert all(torch.equal(a, b) for a, b in zip(masks, ref_masks))
    assert [tuple(m.shape) for m in masks] == [tuple(c.shape) for c in codes]
    assert all(m.dtype == torch.bool and not m[:, 0].any() for m in masks)
    flat = torch.cat([m.flatten(1) for m in masks], dim=1)
    assert flat.any() and (flat[0] != flat[1]).any()  # masked and unmasked rows at the same code
    for c, m in zip(codes, masks):
        prev = c[:, :-1]
        assert torch.equal(c[:, 1:][m[:, 1:]], prev[m[:, 1:]])
    assert lm.last_tokens_saved == tokens_saved(masks)
    # Decoding the codes is decoding the "repeat" strategy: the codes already hold the repeats.
    tok = HierarchicalLFQTokenizer(**HierarchicalLFQTokenizer.tiny_config(), token_masking="repeat").eval()
    assert torch.equal(tok.decode_codes(codes), tok.decode_codes(codes, token_masks=masks))


def test_greedy_skipping_is_the_teacher_forced_mask_head(parts):
    _, backbone, head = parts
    lm = _masked_parts(seed=2)
    with torch.no_grad():
        lm.mask_head.bias.fill_(0.0)
    text = _text()
    codes = lm.generate(backbone, head, text, 3, temperature=0.0, progress=False)
    masks = lm.last_token_masks
    hidden = lm(backbone, lm.embed_text(backbone, text), codes, masks)
    logits = lm.mask_head(hidden).squeeze(-1)
    _, _, levels = lm._placement(3)
    flat, flat_masks = _flat(codes), torch.cat([m.flatten(1) for m in masks], dim=1)
    first = torch.cat([torch.arange(c[0].numel()) < n for c, n in zip(codes, _per_step(lm))])  # step-0 codes
    assert torch.equal(flat_masks[:, ~first], logits[:, ~first] > 0) and not flat_masks[:, first].any()
    for i in range(flat.shape[1]):
        greedy = head.sample(hidden[:, i], temperature=0.0, num_codes=2 ** lm.config.level_bits[int(levels[i])])
        keep = ~flat_masks[:, i]
        assert torch.equal(greedy[keep], flat[keep, i])


def test_fully_masked_codes_never_call_the_head(parts, monkeypatch):
    _, backbone, head = parts
    lm = _masked_parts(bias=1e4)
    calls = []
    sample = head.sample
    monkeypatch.setattr(head, "sample", lambda hidden, **kw: calls.append(hidden.shape[0]) or sample(hidden, **kw))
    codes = lm.generate(backbone, head, _text(), 3, guidance_scale=2.0,
                        generator=torch.Generator().manual_seed(0), progress=False)  # fmt: skip
    assert len(calls) == sum(_per_step(lm))  # the first step of every level only
    for c in codes:
        assert torch.equal(c, c[:, :1].expand_as(c))
    assert [r["masked"] for r in lm.last_tokens_saved] == [2 * (c.shape[1] - 1) * c.shape[2] for c in codes]
    # Never masked: the same codes as without skipping (greedy draws no mask randomness).
    with torch.no_grad():
        lm.mask_head.bias.fill_(-1e4)
    monkeypatch.undo()
    kept = lm.generate(backbone, head, _text(), 3, temperature=0.0, progress=False)
    assert not any(m.any() for m in lm.last_token_masks)
    plain = lm.generate(backbone, head, _text(), 3, temperature=0.0, progress=False, skip_masked=False)
    assert torch.equal(_flat(kept), _flat(plain)) and lm.last_token_masks is None


def test_masking_arguments_and_inputs_are_named(parts):
    lm, backbone, head = parts
    masked = _masked_parts()
    codes = lm.generate(backbone, head, _text(), 2, progress=False, generator=torch.Generator().manual_seed(0))
    with pytest.raises(
        ValueError, match="token_masks=: train on a token cache built by a tokenizer with token_masking"
    ):
        masked.loss(backbone, head, _text(), codes)
    with pytest.raises(ValueError, match="skip_masked=True needs a model built with predict_masks=True"):
        lm.generate(backbone, head, _text(), 2, skip_masked=True, progress=False)
    with pytest.raises(ValueError, match="skip_masked must be"):
        masked.generate(backbone, head, _text(), 2, skip_masked="yes", progress=False)
    with pytest.raises(ValueError, match="predict_masks must be True or False"):
        HiTVideoLM(**HiTVideoLM.tiny_config(), predict_masks=1)
    with pytest.raises(ValueError, match="mask_loss_weight must be a finite number >= 0"):
        HiTVideoLM(**HiTVideoLM.tiny_config(), mask_loss_weight=-1.0)
    masks = _random_masks(codes)
    with pytest.raises(ValueError, match="token_masks must be a list of 3"):
        masked.loss(backbone, head, _text(), codes, token_masks=masks[:2])
    with pytest.raises(ValueError, match=r"level 1 token_masks must be a bool tensor of shape \(2, 2, 16\)"):
        masked.loss(backbone, head, _text(), codes, token_masks=[masks[0], masks[1].long(), masks[2]])
    first = [m.clone() for m in masks]
    first[2][0, 0, 3] = True
    with pytest.raises(ValueError, match="level 2 token_masks mask a first step"):
        masked.loss(backbone, head, _text(), codes, token_masks=first)


def test_a_tiny_model_learns_which_codes_are_masked():
    """Short training on fixed codes and masks: the mask head then predicts the masks (teacher forced)."""
    torch.manual_seed(0)
    lm = HiTVideoLM(**{**HiTVideoLM.tiny_config(), "text_dropout": 0.0}, predict_masks=True)
    backbone = HFCausalLM(**HFCausalLM.tiny_config())
    head = CategoricalHead(hidden_size=32, num_bits=6, bits_per_group=2)
    g = torch.Generator().manual_seed(3)
    targets = [torch.randint(0, 2**b, (2, s, h * w), generator=g)
               for b, s, (h, w) in zip([3, 4, 6], lm.level_steps(2), lm.config.level_grids)]  # fmt: skip
    masks = _random_masks(targets, seed=4)
    text = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    opt = torch.optim.Adam([*lm.parameters(), *backbone.parameters(), *head.parameters()], lr=3e-3)
    first = None
    for _ in range(80):
        out = lm.loss(backbone, head, text, targets, token_masks=masks)
        first = first if first is not None else out["mask_bce"].item()
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    lm.eval(), backbone.eval()
    with torch.no_grad():
        hidden = lm(backbone, lm.embed_text(backbone, text), targets, masks)
        predicted = lm.mask_head(hidden).squeeze(-1) > 0
    truth = torch.cat([m.flatten(1) for m in masks], dim=1)
    assert (predicted == truth).float().mean() >= 0.9 and out["mask_bce"].item() < 0.5 * first


def test_the_training_module_passes_token_masks_from_a_masking_token_cache(tmp_path):
    from torch.utils.data import default_collate

    from vidtok.data.token_cache import TokenCacheDataset, build_token_cache
    from vidtok.models.base import VideoARModelForTraining
    from vidtok.models.dicode_lm import DiCoDeLM
    from vidtok.models.text_tokenizers import shapes_word_tokenizer
    from vidtok.shapes import ShapesDataset
    from vidtok.training.recipe import _TokenSamples, validation_nll

    tok = HierarchicalLFQTokenizer(**HierarchicalLFQTokenizer.tiny_config(), token_masking="repeat")
    videos = ShapesDataset(resolution=16, num_frames=5, length=4, seed=0)
    cache = TokenCacheDataset(build_token_cache(tok, videos, tmp_path / "cache", batch_size=4))
    samples = _TokenSamples(cache, codes=True)
    batch = default_collate([samples[0], samples[1]])
    assert [m.dtype for m in batch["token_masks"]] == [torch.bool] * 3
    assert [m.shape for m in batch["token_masks"]] == [c.shape for c in batch["tokens"]]
    torch.manual_seed(0)
    lm = HiTVideoLM(**HiTVideoLM.tiny_config(), predict_masks=True).eval()
    backbone = HFCausalLM(**HFCausalLM.tiny_config()).eval()
    head = CategoricalHead(hidden_size=32, num_bits=6, bits_per_group=2).eval()
    module = VideoARModelForTraining(backbone, lm, head, text_tokenizer=shapes_word_tokenizer()).eval()
    out = module.training_step(batch)
    ids = module.input_ids(batch)
    direct = lm.loss(backbone, head, ids, batch["tokens"], token_masks=batch["token_masks"])
    assert "mask_bce" in out and all(torch.equal(out[k], direct[k]) for k in direct)
    assert math.isfinite(validation_nll(module, samples, batch_size=3))  # the held-out NLL passes them too
    # A model whose loss cannot use the masks refuses them instead of ignoring them.
    dicode = DiCoDeLM(**DiCoDeLM.tiny_config())
    refusing = VideoARModelForTraining(backbone, dicode, head)
    with pytest.raises(ValueError, match="carries token_masks .* DiCoDeLM.loss takes no token_masks"):
        refusing.training_step(batch)


# ------------------------------------------------------------------------------ pipeline and recipes
@pytest.fixture(scope="module")
def pipe():
    return TextToVideo.from_recipe(vidtok.RECIPES.create("hitvideo_tiny", tiny=True))


def test_the_pipeline_decodes_every_level_and_refuses_a_prefix(pipe):
    out = pipe("a red circle moves right", num_keyframes=3, guidance_scale=2.0,
               generator=torch.Generator().manual_seed(0), progress=False)  # fmt: skip
    assert out.frames.shape == (1, 5, 16, 16, 3)
    assert [tuple(t.shape) for t in out.tokens] == [(1, 2, 4), (1, 2, 16), (1, 3, 16)]
    latent = pipe("a red circle moves right", num_keyframes=3, guidance_scale=2.0, output_type="latent",
                  generator=torch.Generator().manual_seed(0), progress=False)  # fmt: skip
    assert latent.frames is None and all(torch.equal(a, b) for a, b in zip(latent.tokens, out.tokens))
    decoded = pipe.video_tokenizer.decode_codes(out.tokens)
    assert torch.allclose((decoded.permute(0, 2, 3, 4, 1) + 1) / 2, torch.from_numpy(out.frames), atol=1e-6)
    with pytest.raises(ValueError, match="video: this pipeline's HiTVideoLM cannot continue"):
        pipe("a red circle moves right", video=torch.zeros(1, 3, 5, 16, 16), progress=False)


@pytest.mark.parametrize("strategy", ["repeat", "zero", "learned"])
def test_the_pipeline_decodes_skipped_codes_with_the_tokenizers_strategy(pipe, strategy):
    config = {k: v for k, v in pipe.model.config.items() if not k.startswith("_")}
    torch.manual_seed(0)
    model = HiTVideoLM(**{**config, "predict_masks": True}).eval()
    with torch.no_grad():
        model.mask_head.weight.zero_()
        model.mask_head.bias.fill_(1e4)  # every code after the first step of its level is skipped
    tok_config = {k: v for k, v in pipe.video_tokenizer.config.items() if not k.startswith("_")}
    tok = HierarchicalLFQTokenizer(**{**tok_config, "token_masking": strategy}).eval()
    missing, unexpected = tok.load_state_dict(pipe.video_tokenizer.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("mask_tokens.") for k in missing)
    if strategy == "learned":
        with torch.no_grad():
            for t in tok.mask_tokens:
                t.normal_()
    masked_pipe = TextToVideo(**{**pipe.components, "model": model, "video_tokenizer": tok})
    run = lambda kind: masked_pipe("a red circle moves right", num_keyframes=3, output_type=kind,  # noqa: E731
                                   generator=torch.Generator().manual_seed(0), progress=False)  # fmt: skip
    out = run("pt")
    masks = model.last_token_masks
    assert masks is not None and all(m[:, 1:].all() for m in masks)
    plain = tok.decode_codes(out.tokens)
    with_masks = tok.decode_codes(out.tokens, token_masks=masks)
    expected = plain if strategy == "repeat" else with_masks
    assert torch.allclose(out.frames, expected, atol=1e-6)
    assert strategy == "repeat" or not torch.allclose(plain, with_masks, atol=1e-3)
    latent = run("latent")
    assert latent.frames is None and all(torch.equal(a, b) for a, b in zip(latent.tokens, out.tokens))


def test_the_paper_recipe_has_the_paper_sizes():
    cfg = vidtok.RECIPES.create("hitvideo_paper")
    assert cfg.model.kwargs["level_bits"] == [3, 14, 16, 18] and cfg.model.kwargs["hidden_size"] == 3072
    assert cfg.model.kwargs["level_grids"] == [[4, 4], [8, 8], [8, 8], [16, 16]]
    assert cfg.text_encoder == "google/flan-t5-xl" and cfg.model.kwargs["text_embed_dim"] == 2048
    with torch.device("meta"):
        tok = vidtok.TOKENIZERS.create(cfg.video_tokenizer.name, **cfg.video_tokenizer.kwargs)
        head = vidtok.HEADS.create(cfg.head.name, **cfg.head.kwargs)
        model = vidtok.MODELS.create(cfg.model.name, **cfg.model.kwargs)
    backbone = vidtok.BACKBONES.create(cfg.backbone.name, **cfg.backbone.kwargs, device="meta")
    assert sum(p.numel() for p in tok.parameters()) == 208_076_470
    assert abs(sum(p.numel() for p in backbone.parameters()) - 3212.7e6) < 0.1e6
    assert head.proj.out_features == 2 * 512  # two 512-way softmaxes over 18 bits
    # 65 frames (the causal form of the paper's 64): Tab. 2's 16 + 128 + 256 + 2048 tokens per 64 frames.
    assert model.level_steps(9) == [2, 3, 5, 9]
    assert [s * g[0] * g[1] for s, g in zip(model.level_steps(9), model.config.level_grids)] == [32, 192, 320, 2304]


def test_train_a_tiny_hitvideo_recipe_end_to_end(tmp_path, capsys):
    from vidtok.cli import main
    from vidtok.training import read_metrics

    run = {
        "recipe": "hitvideo_tiny",
        "overrides": {"tiny": True},
        "data": {"videos": 16, "steps_per_sample": 3, "val_videos": 4},
        "evaluation": {"every": 8, "prompts": 2, "seeds": [0], "keyframes": 2, "diversity_seeds": 2},
        "trainer": {"max_steps": 16, "batch_size": 8, "log_every": 1, "save_every": 8, "progress_bar": False,
                    "optimizer": {"lr": 0.005}},
    }  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run))
    out = tmp_path / "run"
    assert main(["train", str(path), "--output-dir", str(out)]) == 0
    assert "trained 16 steps" in capsys.readouterr().out
    losses = [r["loss"] for r in read_metrics(out)]
    assert all(math.isfinite(v) for v in losses) and sum(losses[-4:]) < sum(losses[:4])
    summary = json.loads((out / "summary.json").read_text())
    assert math.isfinite(summary["final"]["validation_nll"])
    pipe = TextToVideo.from_pretrained(out / "pipeline")
    assert type(pipe.model).__name__ == "HiTVideoLM" and pipe.model.config.trained_steps == 3
    video = pipe("a red circle", num_keyframes=2, generator=torch.Generator().manual_seed(0), progress=False)
    assert video.frames.shape[:2] == (1, 3)
