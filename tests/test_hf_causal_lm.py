"""The hf_causal_lm backbone builder: presets at the paper's sizes, config dicts, local folders, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import vidtok
from vidtok.backbones.hf_causal_lm import PAPER_PARAMETERS, PRESETS, HFCausalLM, hidden_size


def test_registered_and_exported():
    assert "hf_causal_lm" in vidtok.BACKBONES.list()
    assert vidtok.BACKBONES.get("hf_causal_lm") is vidtok.HFCausalLM


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_match_the_paper_parameter_counts(preset):
    # Built on the meta device: shapes only, so the 3B model costs no memory.
    model = HFCausalLM(preset=preset, device="meta")
    count = sum(p.numel() for p in model.parameters())
    # The paper quotes OpenAI's GPT-2 figures (117M/345M/762M); HF's base models count 124.4/354.8/774.0M.
    assert abs(count - PAPER_PARAMETERS[preset]) / PAPER_PARAMETERS[preset] < 0.07, (preset, count)
    expected = "GPT2Model" if preset.startswith("gpt2") else "LlamaModel"
    assert type(model.model).__name__ == expected  # the transformers model, adapted to the backbone contract


def test_tiny_forward_with_inputs_embeds_and_gradients():
    model = HFCausalLM(**HFCausalLM.tiny_config())
    x = torch.randn(2, 7, hidden_size(model), requires_grad=True)
    out = model(inputs_embeds=x).last_hidden_state
    assert out.shape == (2, 7, 32)
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None and "wte" not in n]
    assert not missing, missing


def test_causality():
    model = HFCausalLM(**HFCausalLM.tiny_config()).eval()
    x = torch.randn(1, 6, 32)
    y = x.clone()
    y[:, 4:] = torch.randn(1, 2, 32)
    a, b = model(inputs_embeds=x).last_hidden_state, model(inputs_embeds=y).last_hidden_state
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_llama_config_dict_builds():
    cfg = {
        "model_type": "llama",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 64,
    }
    model = HFCausalLM(config=cfg)
    assert type(model.model).__name__ == "LlamaModel"
    assert model(inputs_embeds=torch.randn(1, 3, 32)).last_hidden_state.shape == (1, 3, 32)


def test_local_folder_round_trip_and_causal_lm_checkpoint(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = HFCausalLM(**HFCausalLM.tiny_config())
    model.save_pretrained(tmp_path / "base")
    again = HFCausalLM(pretrained=str(tmp_path / "base"))
    for (n, p), (_, q) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(p, q), n
    # A causal-LM checkpoint (with its LM head) loads into the base model the backbone needs.
    lm = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=32))
    lm.save_pretrained(tmp_path / "lm")
    base = HFCausalLM(pretrained=str(tmp_path / "lm"))
    assert type(base.model).__name__ == "GPT2Model"
    assert torch.equal(base.model.wte.weight, lm.transformer.wte.weight)
    # The saved folder is transformers' own layout: transformers reads it without vidtok.
    from transformers import AutoModel

    plain = AutoModel.from_pretrained(tmp_path / "base")
    assert torch.equal(plain.wte.weight, model.model.wte.weight)
    assert sorted(p.name for p in (tmp_path / "base").iterdir()) == [
        "config.json",
        "model.safetensors",
        "weights.sha256.json",  # vidtok's digests, which transformers ignores
    ]


def test_pretrained_with_missing_weights_is_an_error(tmp_path):
    from safetensors.torch import load_file, save_file

    from vidtok.modeling_utils import LoadingError

    model = HFCausalLM(**HFCausalLM.tiny_config())
    model.save_pretrained(tmp_path / "base")
    weights = tmp_path / "base" / "model.safetensors"
    state = load_file(weights)
    save_file({k: v for k, v in state.items() if "h.1." not in k}, weights, metadata={"format": "pt"})
    (tmp_path / "base" / "weights.sha256.json").unlink()  # as an older save, or a third-party checkpoint
    with pytest.raises(LoadingError, match="would stay random"):
        HFCausalLM(pretrained=str(tmp_path / "base"))


def test_overrides_and_dtype():
    model = HFCausalLM(**HFCausalLM.tiny_config(), overrides={"n_layer": 3}, torch_dtype="bfloat16")
    assert model.config.n_layer == 3 and next(model.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "exactly one"),
        ({"preset": "gpt2", "config": {"model_type": "gpt2"}}, ValueError, "exactly one"),
        ({"preset": "gpt5"}, ValueError, "unknown hf_causal_lm preset"),
        ({"config": {"n_layer": 1}}, ValueError, "model_type"),
        ({"config": {"model_type": "not_a_model"}}, ValueError, "not_a_model"),
        ({"pretrained": "/no/such/folder"}, FileNotFoundError, "/no/such/folder"),
        ({"preset": "gpt2", "torch_dtype": "float7"}, ValueError, "torch_dtype"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        HFCausalLM(**kwargs)


# ---------------------------------------------------------------------------------------------- strict loading
def _edit_weights(folder, edit):
    from safetensors.torch import load_file, save_file

    weights = folder / "model.safetensors"
    state = load_file(weights)
    edit(state)
    save_file(state, weights, metadata={"format": "pt"})
    (folder / "weights.sha256.json").unlink(missing_ok=True)  # an edit on purpose: no stale digests


def test_unexpected_and_mis_shaped_weights_are_errors_naming_them(tmp_path):
    from vidtok.modeling_utils import LoadingError

    HFCausalLM(**HFCausalLM.tiny_config()).save_pretrained(tmp_path / "extra")
    _edit_weights(tmp_path / "extra", lambda s: s.update({"h.9.mlp.c_fc.weight": torch.zeros(2)}))
    with pytest.raises(LoadingError, match=r"unexpected keys .*'h\.9\.mlp\.c_fc\.weight'"):
        HFCausalLM.from_pretrained(tmp_path / "extra")
    HFCausalLM(**HFCausalLM.tiny_config()).save_pretrained(tmp_path / "shape")
    _edit_weights(tmp_path / "shape", lambda s: s.update({"ln_f.weight": torch.zeros(33)}))
    with pytest.raises(LoadingError, match=r"mismatched keys: \['ln_f\.weight \(checkpoint \(33,\), model \(32,\)"):
        HFCausalLM.from_pretrained(tmp_path / "shape")


def test_an_untied_lm_head_is_dropped_on_purpose(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=32, tie_word_embeddings=False)
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    from safetensors import safe_open

    with safe_open(tmp_path / "model.safetensors", framework="pt") as f:
        assert "lm_head.weight" in list(f.keys())
    assert type(HFCausalLM.from_pretrained(tmp_path).model).__name__ == "GPT2Model"


def test_broken_files_name_the_file(tmp_path):
    from vidtok.modeling_utils import LoadingError

    HFCausalLM(**HFCausalLM.tiny_config()).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:-100] + bytes([good[-100] ^ 1]) + good[-99:])
    with pytest.raises(LoadingError, match=r"model\.safetensors: weight file is corrupt"):
        HFCausalLM.from_pretrained(tmp_path)
    HFCausalLM.from_pretrained(tmp_path, verify=False)  # the opt-out
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(LoadingError, match=r"model\.safetensors: not a readable safetensors file"):
        HFCausalLM.from_pretrained(tmp_path, verify=False)
    weights.write_bytes(good)
    (tmp_path / "config.json").write_text("[]")
    with pytest.raises(LoadingError, match=r"config\.json: transformers config must be a JSON object"):
        HFCausalLM.from_pretrained(tmp_path)


def test_failed_save_leaves_the_previous_folder_intact(tmp_path, monkeypatch):
    first = HFCausalLM(**HFCausalLM.tiny_config())
    first.save_pretrained(tmp_path / "ckpt")
    before = {p.name: p.read_bytes() for p in (tmp_path / "ckpt").iterdir()}
    second = HFCausalLM(**HFCausalLM.tiny_config())

    def broken_save(save_directory, **kwargs):
        (Path(save_directory) / "model.safetensors").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(second.model, "save_pretrained", broken_save)
    with pytest.raises(OSError, match="disk full"):
        second.save_pretrained(tmp_path / "ckpt")
    assert {p.name: p.read_bytes() for p in (tmp_path / "ckpt").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folder left behind
    # A successful re-save replaces the weights and their digests together.
    monkeypatch.undo()
    second.save_pretrained(tmp_path / "ckpt")
    again = HFCausalLM.from_pretrained(tmp_path / "ckpt")
    assert torch.equal(again.model.wte.weight, second.model.wte.weight)
