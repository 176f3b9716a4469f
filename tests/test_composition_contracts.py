"""The composition contracts (ARCHITECTURE §2–§5), parametrized over every registry entry.

* every backbone: cached step-by-step equals one full forward; the attention mask and positions reach it;
  save → load is exact;
* every head: the one sampling signature, and ``guidance_scale=1`` equals unguided sampling;
* every AR model: fits its tiny companions, trains (gradients reach every parameter), generates, round-trips;
* every recipe: tiny build → ``TextToVideo.from_recipe`` → generate → save → load → identical output;
* a discrete toy path: integer codes + ``categorical`` + ``dicode_lm`` through ``TextToVideo``, with
  logit-space guidance checked against a direct computation.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from toy_codes import ToyCodes

import vidtok
from vidtok.backbones.base import Backbone
from vidtok.models.text_tokenizers import encode_prompts
from vidtok.noise import gumbel
from vidtok.pipelines.text_to_video import TextToVideo
from vidtok.recipes.base import build_components

BACKBONES = vidtok.BACKBONES.list()
HEADS = vidtok.HEADS.list()
MODELS = vidtok.MODELS.list()
RECIPES = vidtok.RECIPES.list()


def _tiny_backbone(name):
    cls = vidtok.BACKBONES.get(name)
    torch.manual_seed(0)
    return cls(**cls.tiny_config()).eval()


# --------------------------------------------------------------------------------------------- backbones
@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_cached_step_by_step_equals_one_full_forward(name):
    backbone = _tiny_backbone(name)
    assert isinstance(backbone, Backbone)
    x = torch.randn(2, 7, backbone.hidden_size, generator=torch.Generator().manual_seed(0))
    full = backbone(x)
    assert full.last_hidden_state.shape == (2, 7, backbone.hidden_size) and full.past_key_values is None
    cache, steps = None, []
    for i in range(7):
        out = backbone(x[:, i : i + 1], past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        steps.append(out.last_hidden_state)
    assert backbone.cache_length(cache) == 7
    torch.testing.assert_close(torch.cat(steps, dim=1), full.last_hidden_state, atol=1e-5, rtol=1e-4)
    # Chunks of several positions too (a prefill, then steps).
    first = backbone(x[:, :4], use_cache=True)
    rest = backbone(x[:, 4:], past_key_values=first.past_key_values, use_cache=True)
    torch.testing.assert_close(rest.last_hidden_state, full.last_hidden_state[:, 4:], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_passes_the_attention_mask_and_positions_through(name):
    backbone = _tiny_backbone(name)
    x = torch.randn(1, 4, backbone.hidden_size, generator=torch.Generator().manual_seed(1))
    plain = backbone(x[:, 1:], position_ids=torch.arange(1, 4)[None]).last_hidden_state
    # A left-padded row: the pad is masked out, so the real positions see exactly what the unpadded row sees at
    # the same positions (both arguments reached the model).
    mask, positions = torch.tensor([[0, 1, 1, 1]]), torch.arange(4)[None]
    padded = backbone(x, attention_mask=mask, position_ids=positions).last_hidden_state
    torch.testing.assert_close(padded[:, 1:], plain, atol=1e-5, rtol=1e-4)
    unmasked = backbone(x, position_ids=positions).last_hidden_state
    assert not torch.allclose(unmasked[:, 1:], plain, atol=1e-4)


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_save_load_is_exact(name, tmp_path):
    backbone = _tiny_backbone(name)
    backbone.save_pretrained(tmp_path)
    again = type(backbone).from_pretrained(tmp_path).eval()
    x = torch.randn(1, 5, backbone.hidden_size)
    assert torch.equal(backbone(x).last_hidden_state, again(x).last_hidden_state)
    assert backbone.state_dict().keys() == again.state_dict().keys()


def test_backbone_refuses_the_legacy_tuple_cache():
    backbone = _tiny_backbone("hf_causal_lm")
    with pytest.raises(TypeError, match="Cache"):
        backbone(torch.randn(1, 1, 32), past_key_values=((torch.zeros(1), torch.zeros(1)),), use_cache=True)


# --------------------------------------------------------------------------------------------- heads
def _tiny_head(name):
    cls = vidtok.HEADS.get(name)
    torch.manual_seed(0)
    return cls(**cls.tiny_config()).eval()


@pytest.mark.parametrize("name", HEADS)
def test_head_sampling_signature_and_unit_guidance(name):
    head = _tiny_head(name)
    params = inspect.signature(head.sample).parameters
    for arg in ("temperature", "generator", "guidance_scale", "uncond_hidden"):
        assert arg in params, f"{name}.sample lacks {arg}"
    hidden = torch.randn(3, 2, head.config["hidden_size"], generator=torch.Generator().manual_seed(0))
    uncond = torch.randn_like(hidden)
    gen = torch.Generator
    plain = head.sample(hidden, generator=gen().manual_seed(7))
    unit = head.sample(hidden, generator=gen().manual_seed(7), guidance_scale=1.0, uncond_hidden=uncond)
    assert torch.equal(plain, unit), "guidance_scale=1 must equal unguided sampling"
    # Guiding against the conditional states themselves is no guidance either (up to rounding).
    same = head.sample(hidden, generator=gen().manual_seed(7), guidance_scale=3.0, uncond_hidden=hidden)
    torch.testing.assert_close(same.float(), plain.float(), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="uncond_hidden"):
        head.sample(hidden, guidance_scale=2.0)


def test_categorical_guidance_is_on_logits_per_group():
    head = vidtok.CategoricalHead(hidden_size=16, num_bits=6, bits_per_group=2).eval()
    hidden, uncond = torch.randn(5, 16), torch.randn(5, 16)
    s, temperature = 2.5, 0.7
    with torch.no_grad():
        cond_logits, uncond_logits = head(hidden), head(uncond)  # (5, 3 groups, 4)
    guided = uncond_logits + s * (cond_logits - uncond_logits)
    # Greedy: the argmax of the guided logits, group by group, most significant group first.
    digits = guided.argmax(-1)
    expected = (digits * torch.tensor([16, 4, 1])).sum(-1)
    greedy = head.sample(hidden, temperature=0.0, guidance_scale=s, uncond_hidden=uncond)
    assert torch.equal(greedy, expected)
    # Sampled: Gumbel-max on the guided, tempered logits with the same noise.
    noise = gumbel(tuple(guided.shape), torch.Generator().manual_seed(3), guided.device)
    digits = (guided / temperature + noise).argmax(-1)
    expected = (digits * torch.tensor([16, 4, 1])).sum(-1)
    drawn = head.sample(
        hidden, temperature=temperature, generator=torch.Generator().manual_seed(3), guidance_scale=s,
        uncond_hidden=uncond,
    )  # fmt: skip
    assert torch.equal(drawn, expected)
    # Not token-space guidance of integer codes: u + s (c - u) on codes is not even a code in general.
    assert drawn.dtype == torch.int64 and int(drawn.max()) < 64


# --------------------------------------------------------------------------------------------- models
def _companions(model_cls):
    parts = {}
    for role, (name, kwargs) in model_cls.tiny_companions().items():
        registry = {"video_tokenizer": vidtok.TOKENIZERS, "backbone": vidtok.BACKBONES, "head": vidtok.HEADS}[role]
        parts[role] = registry.create(name, **kwargs).eval()
    return parts


@pytest.mark.parametrize("name", MODELS)
def test_model_fits_trains_and_generates(name, tmp_path):
    cls = vidtok.MODELS.get(name)
    torch.manual_seed(0)
    model = cls(**cls.tiny_config())
    parts = _companions(cls)
    model.check_compatible(parts["video_tokenizer"], parts["backbone"], parts["head"])
    tok = parts["video_tokenizer"]
    levels = tok.token_layout(tok.num_frames_for(3), 16, 16)
    layout = levels[-1]
    text = torch.randint(1, 30, (2, model.text_length), generator=torch.Generator().manual_seed(0))
    shape = (2, 3, layout.tokens) if model.generates_codes else (2, 3, layout.tokens, layout.dim)
    tokens = torch.randint(0, layout.codebook_size, shape) if model.generates_codes else torch.randn(shape)
    if len(levels) > 1:  # a model over every level of a hierarchical tokenizer: one code tensor per level
        shape = [(2, lv.steps, lv.tokens) for lv in levels]
        tokens = [torch.randint(0, lv.codebook_size, s) for lv, s in zip(levels, shape)]
    model.train()
    losses = model.loss(parts["backbone"], parts["head"], text, tokens, generator=torch.Generator().manual_seed(0))
    assert losses["loss"].ndim == 0 and torch.isfinite(losses["loss"])
    losses["loss"].backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not dead, f"parameters without gradient: {dead}"
    model.eval()
    run = lambda m: m.generate(  # noqa: E731
        parts["backbone"], parts["head"], text, 3, generator=torch.Generator().manual_seed(1), progress=False
    )
    out = run(model)
    assert _shapes(out) == shape
    model.save_pretrained(tmp_path)
    assert _equal(run(cls.from_pretrained(tmp_path)), out)


def _shapes(tokens):
    return [tuple(t.shape) for t in tokens] if isinstance(tokens, (list, tuple)) else tuple(tokens.shape)


def _equal(a, b):
    """Tokens (or one tensor per level) equal exactly."""
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
    return torch.equal(a, b)


@pytest.mark.parametrize("name", MODELS)
def test_model_lists_every_mismatch_in_one_error(name):
    cls = vidtok.MODELS.get(name)
    model = cls(**cls.tiny_config())
    parts = _companions(cls)
    wide = vidtok.BACKBONES.create(
        "hf_causal_lm", config={"model_type": "gpt2", "n_layer": 1, "n_embd": 48, "n_head": 2}
    )
    wrong_head = vidtok.HEADS.create("gmm", hidden_size=7, token_dim=5)
    with pytest.raises(ValueError) as err:
        model.check_compatible(parts["video_tokenizer"], wide, wrong_head)
    message = str(err.value)
    assert "backbone width 48" in message and "head hidden_size 7" in message, message


# --------------------------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("name", RECIPES)
def test_recipe_builds_generates_and_round_trips(name, tmp_path):
    recipe = vidtok.RECIPES.create(name, tiny=True)
    pipe = TextToVideo.from_recipe(recipe)
    kw = {"num_keyframes": 2, "num_inference_steps": 1, "guidance_scale": 2.0, "progress": False}
    out = pipe("a red circle moves right", generator=torch.Generator().manual_seed(0), output_type="pt", **kw)
    assert out.frames.ndim == 5 and out.frames.shape[2] == pipe.video_tokenizer.num_frames_for(2)
    pipe.save_pretrained(tmp_path)
    again = TextToVideo.from_pretrained(tmp_path)
    same = again("a red circle moves right", generator=torch.Generator().manual_seed(0), output_type="pt", **kw)
    assert _equal(out.tokens, same.tokens)
    assert torch.equal(out.frames, same.frames)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_components_fit_at_full_size(name):
    """Each recipe's own configuration (not the shared tiny one): built on the meta device (shapes only), the
    tokenizer, backbone, head and model fit and make a pipeline. Llama's tokenizer does not ship offline, so the
    Llama recipes read GPT-2's BPE here (a smaller vocabulary than the model embeds, which fits)."""
    overrides = {"text_tokenizer": "gpt2_bpe"} if "llama" in name else {}
    if name in ("hitvideo_paper", "nova_0_6b"):  # Flan-T5-XL, Phi-2 do not ship offline: prompts are read as ids
        model_kwargs = {"text_embed_dim": None} | ({"text_pad_table": False} if name == "nova_0_6b" else {})
        overrides = {"text_tokenizer": "gpt2_bpe", "text_encoder": None, "model_kwargs": model_kwargs}
    recipe = vidtok.RECIPES.get(name)(**overrides)  # not create(): it would drop text_encoder=None
    with torch.device("meta"):
        parts = build_components(recipe)
    pipe = TextToVideo(**parts)
    assert type(pipe.head).registry_name == recipe.head.name and type(pipe.model).registry_name == recipe.model.name
    assert pipe.backbone.hidden_size == recipe.model.kwargs["hidden_size"]


# --------------------------------------------------------------------------------------------- discrete toy path
@pytest.fixture(scope="module")
def code_pipe():
    recipe = vidtok.RecipeConfig(
        name="toy_codes",
        video_tokenizer=vidtok.ComponentSpec("toy_codes"),  # a test fixture, built directly below
        backbone=vidtok.ComponentSpec("hf_causal_lm", vidtok.HFCausalLM.tiny_config()),
        head=vidtok.ComponentSpec("categorical", {"hidden_size": 32, "num_bits": 3, "bits_per_group": 1}),
        model=vidtok.ComponentSpec(
            "dicode_lm", {**vidtok.DiCoDeLM.tiny_config(), "codebook_size": 8, "text_length": 16}
        ),
        text_tokenizer="shapes_words",
    )
    from vidtok.models.text_tokenizers import load_text_tokenizer

    torch.manual_seed(0)
    text_tokenizer = load_text_tokenizer(recipe.text_tokenizer)
    model_cls = vidtok.MODELS.get("dicode_lm")
    pipe = TextToVideo(
        video_tokenizer=ToyCodes(**ToyCodes.tiny_config()),
        backbone=vidtok.BACKBONES.create("hf_causal_lm", **recipe.backbone.kwargs),
        model=model_cls(**model_cls.complete_config(recipe.model.kwargs, text_tokenizer=text_tokenizer)),
        head=vidtok.HEADS.create("categorical", **recipe.head.kwargs),
        text_tokenizer=text_tokenizer,
    )
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            module.eval()  # as from_pretrained/from_recipe leave them: no dropout while generating
    return pipe


def test_discrete_codes_generate_and_decode_through_the_pipeline(code_pipe, tmp_path):
    kw = {"num_keyframes": 3, "guidance_scale": 3.0, "progress": False}
    latent = code_pipe(
        "a red circle moves right", generator=torch.Generator().manual_seed(0), output_type="latent", **kw
    )
    codes = latent.tokens
    assert codes.dtype == torch.int64 and codes.shape == (1, 3, 4) and 0 <= int(codes.min()) <= int(codes.max()) < 8
    out = code_pipe("a red circle moves right", generator=torch.Generator().manual_seed(0), output_type="pt", **kw)
    assert torch.equal(out.tokens, codes)
    torch.testing.assert_close(out.frames, code_pipe.video_tokenizer.decode_codes(codes))
    assert out.frames.shape == (1, 3, 9, 16, 16)
    # Continuation from a video prefills its codes.
    cont = code_pipe(
        "a red circle moves right", video=out.frames, num_keyframes=4, progress=False, output_type="latent"
    )
    assert torch.equal(cont.tokens[:, :3], codes)
    # Save -> load (the toy tokenizer's module is importable by name) -> identical codes.
    code_pipe.save_pretrained(tmp_path)
    again = TextToVideo.from_pretrained(tmp_path)
    same = again("a red circle moves right", generator=torch.Generator().manual_seed(0), output_type="latent", **kw)
    assert torch.equal(same.tokens, codes)


def test_discrete_model_guides_the_categorical_head_in_logit_space(code_pipe, monkeypatch):
    """Every guided draw is the head's logit-space guidance of the conditional and null rows, never code mixing."""
    calls = []
    original = type(code_pipe.head).sample

    def spy(self, hidden, *args, **kwargs):
        calls.append((hidden.clone(), kwargs.get("uncond_hidden"), kwargs.get("guidance_scale", 1.0)))
        return original(self, hidden, *args, **kwargs)

    monkeypatch.setattr(type(code_pipe.head), "sample", spy)
    prompt = "a red circle moves right"
    code_pipe(prompt, num_keyframes=2, guidance_scale=4.0, progress=False, output_type="latent")
    assert calls and all(s == 4.0 and u is not None and u.shape == h.shape for h, u, s in calls)
    # The first draw, computed directly: the hidden states at the first [BOV] after the prompt and after the
    # null prompt, through the output MLP. The head got exactly these as the conditional and the null rows.
    model, backbone = code_pipe.model, code_pipe.backbone
    ids = code_pipe.encode_prompt(prompt)
    with torch.no_grad():
        states = [
            model.output_proj(
                backbone(torch.cat([model.embed_text(backbone, t), model.embed_bov(1, 0)], 1)).last_hidden_state[:, -1]
            )
            for t in (ids, model.null_text(1))
        ]
    torch.testing.assert_close(calls[0][0], states[0])
    torch.testing.assert_close(calls[0][1], states[1])
    # And the codes drawn are the argmax of the logit-space guidance of those rows at temperature 0.
    with torch.no_grad():
        lc, lu = code_pipe.head(states[0]), code_pipe.head(states[1])
    expected = code_pipe.head._compose((lu + 4.0 * (lc - lu)).argmax(-1))
    codes = code_pipe(
        prompt, num_keyframes=1, guidance_scale=4.0, temperature=0.0, progress=False, output_type="latent"
    )
    assert torch.equal(codes.tokens[:, 0, 0], expected)


def test_discrete_mismatches_are_named(code_pipe):
    parts = dict(code_pipe.components)
    parts["head"] = vidtok.CategoricalHead(hidden_size=32, num_bits=4)
    with pytest.raises(ValueError, match="16 codes, the model's codebook has 8"):
        TextToVideo(**parts)
    parts["head"] = vidtok.GMMHead(hidden_size=32, token_dim=3)
    with pytest.raises(ValueError, match="models continuous tokens, the model integer codes"):
        TextToVideo(**parts)


def test_token_layouts_derive_the_compression_figures():
    toy = ToyCodes(**ToyCodes.tiny_config())
    (level,) = toy.token_layout(9, 16, 16)
    assert (level.steps, level.tokens, level.grid, level.codebook_size) == (3, 4, (2, 2), 8)
    assert toy.is_discrete and toy.codebook_size == 8 and toy.temporal_compression == 4 and toy.token_dim == 3
    assert toy.bits_per_pixel(9, 16, 16) == pytest.approx(3 * 4 * 3 / (9 * 16 * 16))
    assert toy.tokens_per_second(8.0, 16, 16) == pytest.approx(8 / 4 * 4)
    assert toy.valid_num_frames(9) and not toy.valid_num_frames(8) and toy.num_frames_for(3) == 9
    deep = vidtok.DeepTokenizer(**vidtok.DeepTokenizer.tiny_config())
    (level,) = deep.token_layout(9, 16, 16)
    assert level.codebook_size is None and not deep.is_discrete and deep.codebook_size is None
    with pytest.raises(TypeError, match="continuous"):
        deep.decode_codes(torch.zeros(1, 2, 4, dtype=torch.long))


# --------------------------------------------------------------------------------------------- text encoder
@pytest.fixture(scope="module")
def encoder_folder(tmp_path_factory):
    """A tiny frozen BERT saved locally: the recipe's ``text_encoder`` (NOVA's Phi-2 in miniature)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("encoder")
    cfg = BertConfig(vocab_size=64, hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(cfg).save_pretrained(folder)
    return str(folder)


def test_a_recipe_with_a_frozen_text_encoder_generates_trains_and_round_trips(encoder_folder, tmp_path):
    recipe = vidtok.RECIPES.create(
        "dicode_tiny", tiny=True, model_kwargs={"text_embed_dim": 24}, text_encoder=encoder_folder
    )
    pipe = TextToVideo.from_recipe(recipe)
    assert pipe.text_encoder is not None and not any(p.requires_grad for p in pipe.text_encoder.parameters())
    states = pipe.encode_prompt("a red circle moves right")
    assert states.shape == (1, pipe.model.text_length, 24) and states.is_floating_point()
    kw = {"num_keyframes": 2, "guidance_scale": 2.0, "output_type": "latent", "progress": False}
    a = pipe("a red circle moves right", generator=torch.Generator().manual_seed(0), **kw).tokens
    b = pipe("a blue square stays still", generator=torch.Generator().manual_seed(0), **kw).tokens
    assert not torch.equal(a, b), "the encoder's states must condition the model"
    # Training reads captions through the frozen encoder (with prompt dropout to the encoded null prompt).
    from vidtok.models.base import VideoARModelForTraining

    train = VideoARModelForTraining(
        pipe.backbone, pipe.model.train(), pipe.head, text_tokenizer=pipe.text_tokenizer, text_encoder=pipe.text_encoder
    )
    n, d = pipe.model.config.num_tokens, pipe.model.config.token_dim
    batch = {"tokens": torch.randn(2, 2, n, d), "caption": ["a red circle moves right", "a blue square"]}
    loss = train.training_step(batch, generator=torch.Generator().manual_seed(0))["loss"]
    loss.backward()
    assert pipe.model.text_proj.weight.grad is not None
    assert "text_encoder" not in dict(train.named_children())  # frozen, not part of what is trained or saved
    pipe.model.eval()
    pipe.save_pretrained(tmp_path)
    again = TextToVideo.from_pretrained(tmp_path)
    assert torch.equal(again("a red circle moves right", generator=torch.Generator().manual_seed(0), **kw).tokens, a)


def test_a_stored_pad_table_fills_the_prompt_padding_in_pipeline_and_training(encoder_folder, tmp_path):
    """NOVA's released prompt padding (``text_pad_table``): pad positions read the model's stored states, the null
    prompt is the table, the table is saved with the model and never trained."""
    kwargs = {"text_embed_dim": 24, "text_vocab_size": None, "text_pad_table": True}
    pipe = TextToVideo.from_recipe(
        vidtok.RECIPES.create("nova_tiny", tiny=True, text_encoder=encoder_folder, model_kwargs=kwargs)
    )
    table = pipe.model.text_pad_states
    assert table.shape == (pipe.model.text_length, 24) and not table.requires_grad
    ids = encode_prompts(pipe.text_tokenizer, ["a red circle"], length=pipe.model.text_length)
    real = ids[0] != pipe.text_tokenizer.pad_token_id
    assert 0 < int(real.sum()) < pipe.model.text_length
    states = pipe.encode_prompt("a red circle")[0]
    assert torch.equal(states[~real], table[~real]) and not torch.equal(states[real], table[real])
    assert torch.equal(pipe._encode_ids(pipe.model.null_text(1))[0], table)
    from vidtok.models.base import VideoARModelForTraining

    train = VideoARModelForTraining(
        pipe.backbone, pipe.model.train(), pipe.head, text_tokenizer=pipe.text_tokenizer, text_encoder=pipe.text_encoder
    )
    n, d = pipe.model.num_tokens, pipe.model.config.token_dim
    loss = train.training_step({"tokens": torch.randn(2, 2, n, d), "caption": ["a red circle", "a blue square"]},
                               generator=torch.Generator().manual_seed(0))["loss"]  # fmt: skip
    loss.backward()
    assert torch.isfinite(loss) and pipe.model.text_proj.weight.grad is not None
    pipe.model.eval()
    pipe.save_pretrained(tmp_path)
    again = TextToVideo.from_pretrained(tmp_path)
    assert torch.equal(again.model.text_pad_states, table)
    kw = {"num_keyframes": 2, "guidance_scale": 2.0, "output_type": "latent", "progress": False}
    a = pipe("a red circle", generator=torch.Generator().manual_seed(0), **kw).tokens
    assert torch.equal(again("a red circle", generator=torch.Generator().manual_seed(0), **kw).tokens, a)


def test_text_encoder_mismatches_are_named(encoder_folder):
    recipe = vidtok.RECIPES.create("dicode_tiny", tiny=True, model_kwargs={"text_embed_dim": 16})
    with pytest.raises(ValueError, match="text_encoder width 24 != model text_embed_dim 16"):
        build_components(vidtok.RecipeConfig.from_dict({**recipe.to_dict(), "text_encoder": encoder_folder}))
    recipe = vidtok.RECIPES.create("dicode_tiny", tiny=True)
    with pytest.raises(ValueError, match="embeds prompt ids"):
        build_components(vidtok.RecipeConfig.from_dict({**recipe.to_dict(), "text_encoder": encoder_folder}))
    recipe = vidtok.RECIPES.create("dicode_tiny", tiny=True, model_kwargs={"text_embed_dim": 24})
    with pytest.raises(ValueError, match="no text_encoder"):
        build_components(recipe)


def test_text_encoder_loads_strictly_and_must_hold_the_tokenizer_ids(encoder_folder, tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import BertConfig, BertModel

    from vidtok.modeling_utils import LoadingError

    broken = tmp_path / "broken"
    BertModel.from_pretrained(encoder_folder).save_pretrained(broken)
    weights = load_file(broken / "model.safetensors")
    weights.pop("embeddings.LayerNorm.bias")
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    for digest in broken.glob("*.sha256.json"):
        digest.unlink()
    kw = {"tiny": True, "model_kwargs": {"text_embed_dim": 24}}
    with pytest.raises(LoadingError, match="embeddings.LayerNorm.bias"):
        build_components(vidtok.RECIPES.create("dicode_tiny", text_encoder=str(broken), **kw))
    small = tmp_path / "small"
    cfg = BertConfig(vocab_size=16, hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(cfg).save_pretrained(small)
    with pytest.raises(ValueError, match="text tokenizer has .* tokens, the text_encoder embeds 16"):
        TextToVideo.from_recipe(vidtok.RECIPES.create("dicode_tiny", text_encoder=str(small), **kw))


def test_the_frozen_text_encoder_follows_the_training_module(encoder_folder):
    from vidtok.models.base import VideoARModelForTraining

    pipe = TextToVideo.from_recipe(
        vidtok.RECIPES.create(
            "dicode_tiny", tiny=True, model_kwargs={"text_embed_dim": 24}, text_encoder=encoder_folder
        )
    )
    train = VideoARModelForTraining(
        pipe.backbone, pipe.model, pipe.head, pipe.text_tokenizer, text_encoder=pipe.text_encoder
    )
    train.to(torch.float64)
    assert next(pipe.text_encoder.parameters()).dtype == torch.float64
    train.to(torch.float32)


def test_a_context_longer_than_the_backbone_positions_is_refused_when_built():
    # 8 keyframes x (40 tokens + [BOV]) + 8 text positions = 336 > the tiny GPT-2's 256 positions.
    with pytest.raises(ValueError, match="336 positions, the backbone reads 256"):
        build_components(vidtok.RECIPES.create("dicode_tiny", tiny=True, num_deep_tokens=40))
    # The same model with a shorter generation window fits.
    parts = build_components(
        vidtok.RECIPES.create("dicode_tiny", tiny=True, num_deep_tokens=40, model_kwargs={"context_keyframes": 6})
    )
    assert parts["backbone"].max_positions == 256


def test_reconstruction_reports_any_tokenizer_from_its_layout(tmp_path):
    from vidtok.pipelines.reconstruct import Reconstruct, compression_report

    toy = ToyCodes(**ToyCodes.tiny_config())
    report = compression_report(toy, num_frames=9, height=16, width=16, fps=8.0)
    assert report["tokens_total"] == 12 and report["token_values"] == 36 and report["tokens_per_second"] == 8.0
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    out = Reconstruct(toy)(video, output_type="pt", progress=False)
    assert out.frames.shape == (1, 3, 9, 16, 16)
