"""Hugging Face causal language models as AR backbones (DiCoDe §3.3–3.4, supplementary §6).

DiCoDe's AR model is a vanilla language model (GPT-2 117M/345M/762M, Llama-3.2 1B/3B) that reads the deep
tokens through ``inputs_embeds``. These models stay ``transformers`` objects (so their own
``save_pretrained``/``from_pretrained``, caches and attention kernels apply); the registry entry
``hf_causal_lm`` is a *builder* that returns the base model (``AutoModel``: no LM head, the continuous head
replaces it) from a preset, a config dict, a local folder or a hub id.

Example:
    >>> from vidtok.backbones.hf_causal_lm import HFCausalLM
    >>> lm = HFCausalLM(**HFCausalLM.tiny_config())
    >>> type(lm).__name__, lm.config.hidden_size
    ('GPT2Model', 32)
    >>> big = HFCausalLM(preset="gpt2_large", device="meta")  # shapes only, no memory
    >>> round(sum(p.numel() for p in big.parameters()) / 1e6)
    774
"""

from __future__ import annotations

import copy
import os
from typing import Any

from vidtok.backbones.base import BACKBONES

__all__ = ["PAPER_PARAMETERS", "PRESETS", "HFCausalLM", "hidden_size"]

_LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 32.0,
    "high_freq_factor": 4.0,
    "low_freq_factor": 1.0,
    "original_max_position_embeddings": 8192,
    "rope_theta": 500000.0,
}

#: The paper's language models (DiCoDe §4.1 / supplementary §6) as transformers configs (the published
#: configs of ``gpt2``, ``gpt2-medium``, ``gpt2-large``, ``meta-llama/Llama-3.2-1B`` and ``-3B``).
PRESETS: dict[str, dict[str, Any]] = {
    "gpt2": {
        "model_type": "gpt2",
        "n_layer": 12,
        "n_embd": 768,
        "n_head": 12,
        "n_positions": 1024,
        "vocab_size": 50257,
    },
    "gpt2_medium": {
        "model_type": "gpt2",
        "n_layer": 24,
        "n_embd": 1024,
        "n_head": 16,
        "n_positions": 1024,
        "vocab_size": 50257,
    },
    "gpt2_large": {
        "model_type": "gpt2",
        "n_layer": 36,
        "n_embd": 1280,
        "n_head": 20,
        "n_positions": 1024,
        "vocab_size": 50257,
    },
    "llama3_2_1b": {
        "model_type": "llama",
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "rope_parameters": _LLAMA3_ROPE,
        "tie_word_embeddings": True,
        "bos_token_id": 128000,
        "eos_token_id": 128001,
    },
    "llama3_2_3b": {
        "model_type": "llama",
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 28,
        "num_attention_heads": 24,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "rope_parameters": _LLAMA3_ROPE,
        "tie_word_embeddings": True,
        "bos_token_id": 128000,
        "eos_token_id": 128001,
    },
}

#: Parameter counts the paper states for each preset (DiCoDe §4.1). The base models built here count the
#: token embedding once and no LM head: GPT-2 124.4M / 354.8M / 774.0M (the paper quotes OpenAI's original
#: figures), Llama-3.2 1.236B / 3.213B.
PAPER_PARAMETERS: dict[str, float] = {
    "gpt2": 117e6,
    "gpt2_medium": 345e6,
    "gpt2_large": 762e6,
    "llama3_2_1b": 1.23e9,
    "llama3_2_3b": 3.3e9,
}


def hidden_size(model: Any) -> int:
    """Width of a backbone's hidden states (``config.hidden_size`` for transformers models)."""
    cfg = getattr(model, "config", None)
    size = getattr(cfg, "hidden_size", None)
    if size is None and isinstance(cfg, dict):
        size = cfg.get("hidden_size")
    if size is None:
        raise AttributeError(f"{type(model).__name__} exposes no config.hidden_size")
    return int(size)


def _config_from_dict(config: dict[str, Any]):
    from transformers import AutoConfig

    config = dict(config)
    model_type = config.pop("model_type", None)
    if not model_type:
        raise ValueError("an hf_causal_lm config dict needs a 'model_type' (e.g. 'gpt2' or 'llama')")
    try:
        return AutoConfig.for_model(model_type, **config)
    except ValueError as err:
        raise ValueError(f"transformers does not know model_type {model_type!r}: {err}") from err


@BACKBONES.register("hf_causal_lm")
class HFCausalLM:
    """Builder of a transformers causal LM base model fed with ``inputs_embeds`` (DiCoDe §3.3, supp. §6).

    Calling the class returns the ``transformers`` base model itself (``GPT2Model``, ``LlamaModel``, ... —
    whatever ``AutoModel`` maps the config to), not an ``HFCausalLM`` instance: the model keeps
    transformers' own serialization and KV caches and is a pipeline component of its own.

    Exactly one source is given:

    * ``preset``: one of :data:`PRESETS` (``gpt2``, ``gpt2_medium``, ``gpt2_large``, ``llama3_2_1b`` — the
      paper's default — and ``llama3_2_3b``), randomly initialized; ``overrides`` edit it.
    * ``config``: a transformers config as a dict with ``model_type``; randomly initialized.
    * ``pretrained``: a local folder or hub id of a transformers checkpoint (a causal LM checkpoint loads
      into its base model). Nothing is downloaded when ``HF_HUB_OFFLINE=1``; a missing folder raises.

    Args:
        preset: Preset name.
        config: Config dict (``{"model_type": "gpt2", "n_layer": 2, ...}``).
        pretrained: Folder or hub id of pretrained weights.
        overrides: Config fields changed on top of the preset/config/checkpoint (e.g. ``{"n_positions":
            2048}``).
        torch_dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``None`` (float32).
        device: Where to build (``"meta"`` builds shapes only, e.g. to count parameters of the 3B preset).
        attn_implementation: transformers attention kernel (``"sdpa"``, ``"eager"``, ...; ``None``: its
            default).

    The call returns the base model (a ``transformers.PreTrainedModel``).

    Raises:
        ValueError: No source or several sources, an unknown preset or model type.
        FileNotFoundError: ``pretrained`` looks like a local path that does not exist.
        LoadingError: ``pretrained`` lacks weights of the model (transformers would only warn).
    """

    def __new__(  # noqa: D102  (documented on the class)
        cls,
        *,
        preset: str | None = None,
        config: dict[str, Any] | None = None,
        pretrained: str | None = None,
        overrides: dict[str, Any] | None = None,
        torch_dtype: str | None = None,
        device: str | None = None,
        attn_implementation: str | None = None,
    ):
        import torch
        from transformers import AutoModel

        sources = [name for name, v in (("preset", preset), ("config", config), ("pretrained", pretrained)) if v]
        if len(sources) != 1:
            raise ValueError(f"give exactly one of preset, config or pretrained; got {sources or 'none'}")
        dtype = None
        if torch_dtype is not None:
            dtype = getattr(torch, str(torch_dtype).removeprefix("torch."), None)
            if not isinstance(dtype, torch.dtype):
                raise ValueError(f"torch_dtype must name a torch dtype like 'bfloat16', got {torch_dtype!r}")
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        if pretrained is not None:
            looks_local = (
                os.path.isabs(pretrained) or pretrained.startswith((".", "~")) or os.sep + os.sep in pretrained
            )
            if looks_local and not os.path.isdir(os.path.expanduser(pretrained)):
                raise FileNotFoundError(f"no transformers checkpoint folder at {pretrained}")
            model, info = AutoModel.from_pretrained(
                os.path.expanduser(pretrained),
                dtype=dtype,
                device_map=device,
                output_loading_info=True,
                **(overrides or {}),
                **extra,
            )
            # transformers only warns about missing weights; a backbone must not start half random. (Unexpected
            # keys are expected: a causal-LM checkpoint's LM head has no place in the base model.)
            if info.get("missing_keys"):
                from vidtok.modeling_utils import LoadingError

                raise LoadingError(
                    f"{pretrained}: the checkpoint lacks {len(info['missing_keys'])} weights of "
                    f"{type(model).__name__} (they would stay random): {sorted(info['missing_keys'])[:8]}"
                )
            return model
        if preset is not None:
            if preset not in PRESETS:
                raise ValueError(f"unknown hf_causal_lm preset {preset!r}; known: {sorted(PRESETS)}")
            config = PRESETS[preset]
        cfg = _config_from_dict({**copy.deepcopy(config), **(overrides or {})})
        if device == "meta":
            with torch.device("meta"):
                return AutoModel.from_config(cfg, dtype=dtype, **extra)
        model = AutoModel.from_config(cfg, dtype=dtype, **extra)
        return model.to(device) if device is not None else model

    def __init__(
        self,
        *,
        preset: str | None = None,
        config: dict[str, Any] | None = None,
        pretrained: str | None = None,
        overrides: dict[str, Any] | None = None,
        torch_dtype: str | None = None,
        device: str | None = None,
        attn_implementation: str | None = None,
    ) -> None:
        # Never runs: __new__ returns the transformers model, not an HFCausalLM. It states the signature
        # for documentation tools and type checkers.
        pass  # pragma: no cover

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """A 2-layer, 32-wide GPT-2 with a 64-token vocabulary (for unit tests)."""
        return {
            "config": {
                "model_type": "gpt2",
                "n_layer": 2,
                "n_embd": 32,
                "n_head": 2,
                "n_positions": 256,
                "vocab_size": 64,
                "bos_token_id": 0,
                "eos_token_id": 0,
            }
        }
