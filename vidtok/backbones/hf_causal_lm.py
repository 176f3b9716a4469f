"""Hugging Face causal language models as AR backbones (DiCoDe §3.3–3.4, supplementary §6).

DiCoDe's AR model is a vanilla language model (GPT-2 117M/345M/762M, Llama-3.2 1B/3B) that reads the deep
tokens through ``inputs_embeds``. :class:`HFCausalLM` adapts such a ``transformers`` base model (``AutoModel``:
no LM head, the AR head replaces it) to the :class:`~vidtok.backbones.base.Backbone` contract: the model is
kept as it is in ``.model`` — its weights, its ``save_pretrained`` folder layout (``config.json`` +
``model.safetensors``), its attention kernels — and the adapter translates the call, passing the attention
mask and positions through and holding the key/value cache in transformers' ``Cache`` classes (never the
deprecated tuple format).

Loading is strict, unlike transformers' own (which only warns): :func:`load_transformers_model` refuses a
checkpoint with missing, unexpected or mis-shaped weights with a :class:`~vidtok.modeling_utils.LoadingError`
naming them. The one tolerated difference is a causal-LM checkpoint's ``lm_head.*`` (an untied output
projection) loaded into the base model: the AR head replaces it, so it is dropped on purpose. Saving is
atomic and records weight digests, as for every vidtok component.

Example:
    >>> import torch
    >>> from vidtok.backbones.hf_causal_lm import HFCausalLM
    >>> lm = HFCausalLM(**HFCausalLM.tiny_config())
    >>> type(lm.model).__name__, lm.hidden_size
    ('GPT2Model', 32)
    >>> out = lm(torch.randn(1, 5, 32), use_cache=True)
    >>> tuple(out.last_hidden_state.shape), lm.cache_length(out.past_key_values)
    ((1, 5, 32), 5)
    >>> big = HFCausalLM(preset="gpt2_large", device="meta")  # shapes only, no memory
    >>> round(sum(p.numel() for p in big.parameters()) / 1e6)
    774
"""

from __future__ import annotations

import copy
import inspect
import os
from typing import Any

import torch
from diffusers import ModelMixin
from torch import nn

from vidtok.backbones.base import BACKBONES, Backbone
from vidtok.modeling_utils import (
    LoadingError,
    check_safetensors_files,
    read_json_object,
    save_atomically,
    verify_weight_digests,
)
from vidtok.outputs import BackboneOutput

__all__ = [
    "DROPPABLE_PREFIXES",
    "PAPER_PARAMETERS",
    "PRESETS",
    "HFCausalLM",
    "as_backbone",
    "hidden_size",
    "load_transformers_model",
]

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
    """Width of a backbone's hidden states (a :class:`Backbone`, or a transformers model's ``config.hidden_size``)."""
    if isinstance(model, Backbone):
        return int(model.hidden_size)
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


#: Checkpoint keys a base model may drop without an error: the LM head of a causal-LM checkpoint (the AR head
#: replaces it).
DROPPABLE_PREFIXES = ("lm_head.",)

# What transformers' save_pretrained writes for the weights: stale copies would shadow a new save's files.
_WEIGHT_PREFIXES = ("model.safetensors", "model-", "pytorch_model")


def _check_transformers_folder(folder: str, verify: bool | None) -> None:
    """Check config.json, weight files, safetensors headers and digests of a local transformers checkpoint."""
    read_json_object(os.path.join(folder, "config.json"), "transformers config")
    verify_weight_digests(folder, verify)  # first: it names a listed file that is missing
    names = os.listdir(folder)
    if not any(n.startswith(_WEIGHT_PREFIXES) and n.endswith((".safetensors", ".bin", ".index.json")) for n in names):
        raise LoadingError(f"{folder}: no weights file (model.safetensors) in the transformers checkpoint folder")
    check_safetensors_files(os.path.join(folder, n) for n in sorted(names) if n.endswith(".safetensors"))


def load_transformers_model(
    pretrained: str | os.PathLike,
    model_class: Any = None,
    *,
    verify: bool | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Load a transformers model strictly: a weight the checkpoint lacks, has extra or has mis-shaped is an error.

    transformers only warns (and leaves such weights randomly initialised). A local folder is checked first:
    ``config.json`` is a JSON object with a ``model_type``, a weights file is there, its safetensors header is
    readable and it matches the digests recorded by :meth:`HFCausalLM.save_pretrained`.

    The one difference tolerated is a causal-LM checkpoint's ``lm_head.*`` (:data:`DROPPABLE_PREFIXES`)
    loaded into a base model: the AR head replaces the LM head, so it is dropped on purpose.

    Args:
        pretrained: A checkpoint folder or hub id.
        model_class: The transformers class (``None``: ``AutoModel``, the base model).
        verify: Check weight digests (``None``: unless ``VIDTOK_VERIFY_WEIGHTS=0``).
        **kwargs: Passed to ``model_class.from_pretrained`` (``dtype``, ``device_map``, ...).

    Returns:
        The model.

    Raises:
        LoadingError: Naming the missing, unexpected (other than ``lm_head.*``) or mis-shaped keys, or the
            broken file.
    """
    if model_class is None:
        from transformers import AutoModel as model_class
    path = os.fspath(pretrained)
    if os.path.isdir(path):
        _check_transformers_folder(path, verify)
    # ignore_mismatched_sizes: transformers then reports the keys (and this raises) instead of a bare error.
    model, info = model_class.from_pretrained(path, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs)
    problems = []
    if info.get("missing_keys"):
        problems.append(f"missing keys (would stay random): {sorted(info['missing_keys'])}")
    unexpected = sorted(k for k in info.get("unexpected_keys") or () if not k.startswith(DROPPABLE_PREFIXES))
    if unexpected:
        problems.append(f"unexpected keys (no such weight): {unexpected}")
    if info.get("mismatched_keys"):
        shapes = [
            f"{k[0]} (checkpoint {tuple(k[1])}, model {tuple(k[2])})" if len(k) == 3 else str(k)
            for k in sorted((k if isinstance(k, tuple) else (k,) for k in info["mismatched_keys"]), key=str)
        ]
        problems.append(f"shape-mismatched keys: {shapes}")
    if info.get("error_msgs"):
        problems.append(f"errors: {info['error_msgs']}")
    if problems:
        raise LoadingError(f"{path}: the checkpoint does not match {type(model).__name__}: " + "; ".join(problems))
    return model


def _torch_dtype(torch_dtype: Any) -> torch.dtype | None:
    if torch_dtype is None or isinstance(torch_dtype, torch.dtype):
        return torch_dtype
    dtype = getattr(torch, str(torch_dtype).removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"torch_dtype must name a torch dtype like 'bfloat16', got {torch_dtype!r}")
    return dtype


def _build(
    *,
    preset: str | None,
    config: dict[str, Any] | None,
    pretrained: str | None,
    overrides: dict[str, Any] | None,
    torch_dtype: Any,
    device: str | None,
    attn_implementation: str | None,
    verify: bool | None = None,
) -> nn.Module:
    """The transformers base model for one of the three sources (see :class:`HFCausalLM`)."""
    from transformers import AutoModel

    sources = [name for name, v in (("preset", preset), ("config", config), ("pretrained", pretrained)) if v]
    if len(sources) != 1:
        raise ValueError(f"give exactly one of preset, config or pretrained; got {sources or 'none'}")
    dtype = _torch_dtype(torch_dtype)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if pretrained is not None:
        pretrained = os.fspath(pretrained)
        looks_local = os.path.isabs(pretrained) or pretrained.startswith((".", "~")) or os.sep + os.sep in pretrained
        if looks_local and not os.path.isdir(os.path.expanduser(pretrained)):
            raise FileNotFoundError(f"no transformers checkpoint folder at {pretrained}")
        model = load_transformers_model(
            os.path.expanduser(pretrained),
            verify=verify,
            dtype=dtype,
            device_map=device,
            **(overrides or {}),
            **extra,
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


@BACKBONES.register("hf_causal_lm")
class HFCausalLM(ModelMixin, Backbone):
    """A transformers causal LM base model fed with ``inputs_embeds``, as a backbone (DiCoDe §3.3, supp. §6).

    The transformers model (``GPT2Model``, ``LlamaModel``, … — whatever ``AutoModel`` maps the config to) is
    ``.model``; :meth:`save_pretrained` / :meth:`from_pretrained` write and read its own folder layout, so a
    saved backbone is also a plain transformers checkpoint (and a transformers checkpoint a backbone). It is a
    diffusers ``ModelMixin`` only so that pipelines save and load it as a component.

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

    Raises:
        ValueError: No source or several sources, an unknown preset or model type.
        FileNotFoundError: ``pretrained`` looks like a local path that does not exist.
        LoadingError: ``pretrained`` lacks weights of the model, has others (except ``lm_head.*``) or
            mis-shaped ones, or a broken file (transformers would only warn, or fail deep inside).
    """

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
        model: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if model is None:
            model = _build(
                preset=preset,
                config=config,
                pretrained=pretrained,
                overrides=overrides,
                torch_dtype=torch_dtype,
                device=device,
                attn_implementation=attn_implementation,
            )
        elif any(v is not None for v in (preset, config, pretrained, overrides)):
            raise ValueError("give a model or a preset/config/pretrained source, not both")
        self.model = model
        self.training = model.training  # a checkpoint loads in eval mode: so does its adapter
        # transformers 5 renamed the cache argument (``past_key_values`` -> ``cache``) and deprecated the old
        # name; pass whichever this model's forward takes, so no FutureWarning fires on every step.
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    @classmethod
    def from_model(cls, model: nn.Module) -> HFCausalLM:
        """Adapt an existing transformers base model (shares its weights)."""
        if isinstance(model, HFCausalLM):
            return model
        if not hasattr(model, "get_input_embeddings") or not hasattr(model, "config"):
            raise TypeError(f"expected a transformers base model, got {type(model).__name__}")
        return cls(model=model)

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

    # ------------------------------------------------------------------ the backbone contract
    @property
    def config(self) -> Any:
        """The transformers config of the wrapped model."""
        return self.model.config

    @property
    def hidden_size(self) -> int:
        """The language model's width."""
        return int(self.model.config.hidden_size)

    def get_input_embeddings(self) -> nn.Embedding:
        """The language model's token embedding table (prompts are embedded with it)."""
        return self.model.get_input_embeddings()

    @property
    def max_positions(self) -> int | None:
        """``n_positions`` / ``max_position_embeddings`` of the language model's config."""
        cfg = self.model.config
        value = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)
        return int(value) if value else None

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool = False,
    ) -> BackboneOutput:
        """Run the language model on embeddings (see :meth:`Backbone.forward`); the cache is a transformers ``Cache``.

        Raises:
            TypeError: A legacy tuple cache (transformers removes that format; pass the ``Cache`` returned here).
        """
        if isinstance(past_key_values, (tuple, list)):
            raise TypeError(
                "past_key_values must be a transformers Cache (as returned by this backbone), not the deprecated "
                "tuple format"
            )
        kwargs = {
            "inputs_embeds": inputs_embeds,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "use_cache": bool(use_cache),
            self._cache_arg: past_key_values,
        }
        out = self.model(**kwargs, return_dict=True)
        cache = None
        if use_cache:
            cache = out["cache"] if "cache" in out else out["past_key_values"]
        return BackboneOutput(last_hidden_state=out.last_hidden_state, past_key_values=cache)

    # ------------------------------------------------------------------ serialization (transformers' own)
    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Write the transformers folder (``config.json`` + ``model.safetensors``), as ``model.save_pretrained``.

        The folder is written atomically and with weight digests (:func:`~vidtok.modeling_utils.save_atomically`):
        a failing save leaves an existing folder as it was.
        """
        keep = {k: kwargs[k] for k in ("max_shard_size", "push_to_hub") if k in kwargs}
        target = os.path.abspath(os.fspath(save_directory))
        if keep.get("push_to_hub"):
            keep["repo_id"] = kwargs.get("repo_id", os.path.basename(target))  # not the temporary folder's name
        save_atomically(
            target,
            lambda tmp: self.model.save_pretrained(tmp, safe_serialization=True, **keep),
            stale=lambda name: name.startswith(_WEIGHT_PREFIXES),
        )

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, *, verify: bool | None = None, **kwargs: Any
    ) -> HFCausalLM:
        """Load a transformers checkpoint folder or hub id strictly (see :func:`load_transformers_model`).

        Args:
            pretrained_model_name_or_path: Folder or hub id.
            verify: Check the weight digests ``save_pretrained`` recorded (``None``: unless
                ``VIDTOK_VERIFY_WEIGHTS=0``); folders without digests load unchecked.
            **kwargs: ``torch_dtype`` (or ``dtype``), ``device_map`` and ``attn_implementation`` are honoured; the
                other loading options diffusers passes to every pipeline component are not used by
                transformers models and are ignored.

        Raises:
            LoadingError: Missing, unexpected or mis-shaped weights, or a broken file (named in the message).
        """
        dtype = kwargs.get("torch_dtype", kwargs.get("dtype"))
        device = kwargs.get("device_map")
        path = os.fspath(pretrained_model_name_or_path)
        model = _build(
            preset=None,
            config=None,
            pretrained=path,
            overrides=None,
            torch_dtype=dtype,
            device=device if isinstance(device, str) else None,
            attn_implementation=kwargs.get("attn_implementation"),
            verify=verify,
        )
        return cls(model=model)


def as_backbone(module: Any) -> Backbone:
    """A :class:`Backbone` for ``module``: itself, or a transformers base model wrapped in :class:`HFCausalLM`.

    Pipelines saved before the backbone contract stored the bare transformers model; this keeps them loading.

    Raises:
        TypeError: Neither a backbone nor a transformers model.
    """
    if isinstance(module, Backbone):
        return module
    return HFCausalLM.from_model(module)
