"""The ``RECIPES`` registry of factory functions, and the recipe description they return.

A recipe is a function, registered timm-style under a name such as ``dicode_tiny``, that returns a
complete, JSON-serializable :class:`RecipeConfig` — which tokenizer, backbone, head and AR model, with their
keyword arguments and where their weights come from, the text tokenizer (and optional frozen text encoder),
and the training settings — with keyword overrides for ablations: ``RECIPES.create("dicode_tiny",
head="gaussian")``. :func:`build_components` turns any recipe into a pipeline's components
(``TextToVideo.from_recipe`` calls it); nothing in it is specific to one model.

Example:
    >>> import vidtok
    >>> cfg = vidtok.RECIPES.create("dicode_tiny", head="gaussian", tiny=True)
    >>> cfg.head.name, cfg.model.name, cfg.head.kwargs["hidden_size"] == cfg.model.kwargs["hidden_size"]
    ('gaussian', 'dicode_lm', True)
    >>> vidtok.RECIPES.create("dicode_tiny", num_components=8).head.kwargs["num_components"]
    8
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vidtok.assets import resolve_weights  # re-exported: recipes name weights as vidtok:<name> too
from vidtok.registry import Registry

__all__ = [
    "RECIPES",
    "ComponentSpec",
    "RecipeConfig",
    "TrainingSection",
    "build_components",
    "check_overrides",
    "resolve_weights",
    "shapes_backbone",
]

RECIPES: Registry = Registry("recipe", package="vidtok.recipes", callable_only=True)


def check_overrides(
    name: str, overrides: dict[str, Any], known: tuple[str, ...], dict_keys: tuple[str, ...]
) -> dict[str, Any]:
    """A recipe's keyword overrides as a new dict, after refusing unknown names and non-dict values.

    Args:
        name: The recipe's name (for messages).
        overrides: The keyword arguments the recipe was called with.
        known: The override names the recipe takes.
        dict_keys: Those whose value must be a dict (or ``None``).

    Raises:
        TypeError: An unknown override (the known ones are listed) or a non-dict value for a dict override.
    """
    unknown = set(overrides) - set(known)
    if unknown:
        raise TypeError(f"{name}: unknown overrides {sorted(unknown)}; known: {', '.join(known)}")
    for key in dict_keys:
        if overrides.get(key) is not None and not isinstance(overrides[key], dict):
            raise TypeError(f"{name}: the {key} override must be a dict, got {type(overrides[key]).__name__}")
    return dict(overrides)


def shapes_backbone() -> dict[str, Any]:
    """The ``hf_causal_lm`` kwargs of the Shapes recipes' language model: GPT-2 style, 4 layers × 128, no dropout.

    Trained from scratch on the word-level Shapes prompts (its vocabulary is theirs, rounded up to a multiple of 8)
    with 512 positions; ``dicode_tiny`` and ``hitvideo_tiny`` share it.
    """
    from vidtok.models.text_tokenizers import SHAPES_WORDS

    return {
        "config": {
            "model_type": "gpt2",
            "n_layer": 4,
            "n_embd": 128,
            "n_head": 4,
            "n_positions": 512,
            "vocab_size": 8 * ((len(SHAPES_WORDS) + 3 + 7) // 8),
            "bos_token_id": 0,
            "eos_token_id": 0,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
        }
    }


@dataclass(frozen=True)
class ComponentSpec:
    """One component of a recipe: registry name, constructor keyword arguments, optional weights.

    Attributes:
        name: Registry name (``"deep_tokens"``, ``"gmm"``, ``"hf_causal_lm"``, ``"dicode_lm"``, ...).
        kwargs: Constructor keyword arguments (JSON values).
        pretrained: Folder, hub id or ``"vidtok:<name>"`` to load weights from (``from_pretrained``);
            ``None`` builds from ``kwargs`` with random weights.
    """

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None

    @classmethod
    def coerce(cls, value: Any, where: str) -> ComponentSpec:
        """A spec from a spec, a registry name or its dict form (``{"name", "kwargs", "pretrained"}``).

        Raises:
            TypeError: Anything else, or a dict with unknown keys (named with ``where``).
        """
        if isinstance(value, ComponentSpec):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict):
            unknown = set(value) - {"name", "kwargs", "pretrained"}
            if unknown or "name" not in value:
                raise TypeError(
                    f"{where}: a component spec needs 'name' and may have 'kwargs' and 'pretrained'; "
                    f"got keys {sorted(value)}"
                )
            kwargs = value.get("kwargs") or {}
            if not isinstance(kwargs, dict):
                raise TypeError(f"{where}.kwargs must be a dict, got {type(kwargs).__name__}")
            return cls(str(value["name"]), dict(kwargs), value.get("pretrained"))
        raise TypeError(f"{where} must be a ComponentSpec, a registry name or its dict, got {type(value).__name__}")


@dataclass(frozen=True)
class TrainingSection:
    """The training settings a recipe recommends (read by ``vidtok train`` and the example scripts).

    Attributes:
        stages: Trainer stages, each ``{"name", "fraction" or "steps", "options"}`` (e.g. DiCoDe's L2 → GMM
            schedule, supplementary §6: ``options: {"head": "l2"}``).
        lr: Peak learning rate.
        batch_size: Samples per optimizer step.
        steps_per_sample: Token steps (keyframes) per training sequence, or ``None`` for the data's length.
        max_steps: Optimizer steps, or ``None`` to leave it to the run.
        options: Further method-specific settings (JSON values).
    """

    stages: list[dict[str, Any]] = field(default_factory=list)
    lr: float = 1e-4
    batch_size: int = 32
    steps_per_sample: int | None = None
    max_steps: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    #: Keys of the dict form that earlier recipes used, and their field now.
    _RENAMED = {"keyframes": "steps_per_sample"}

    @classmethod
    def coerce(cls, value: Any) -> TrainingSection:
        """A section from a section or its dict form (unknown keys are an error naming them).

        Raises:
            TypeError: On a non-dict or a value of the wrong type.
            ValueError: On unknown keys or out-of-range values.
        """
        if isinstance(value, TrainingSection):
            return value
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise TypeError(f"training must be a dict or a TrainingSection, got {type(value).__name__}")
        data = {cls._RENAMED.get(k, k): v for k, v in value.items()}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"training: unknown keys {unknown}; known: {sorted(names)}")
        if not isinstance(data.get("stages", []), list):
            raise TypeError(f"training.stages must be a list, got {type(data['stages']).__name__}")
        for key in ("batch_size", "steps_per_sample", "max_steps"):
            v = data.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"training.{key} must be a positive int, got {v!r}")
        lr = data.get("lr", 1e-4)
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise ValueError(f"training.lr must be a positive number, got {lr!r}")
        if not isinstance(data.get("options", {}), dict):
            raise TypeError("training.options must be a dict")
        return cls(**{**data, "lr": float(lr), "stages": copy.deepcopy(data.get("stages", []))})

    def __getitem__(self, key: str) -> Any:
        """Dict-style reads (``recipe.training["stages"]``), as when the section was a plain dict."""
        key = self._RENAMED.get(key, key)
        if key not in {f.name for f in dataclasses.fields(self)}:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style ``get``."""
        try:
            return self[key]
        except KeyError:
            return default


@dataclass(frozen=True)
class RecipeConfig:
    """A complete model description (what a recipe returns; DiCoDe supplementary §6 for ``dicode_*``).

    Attributes:
        name: The recipe's name.
        video_tokenizer: The tokenizer spec (``TOKENIZERS``).
        backbone: The backbone spec (``BACKBONES``).
        head: The AR head spec (``HEADS``).
        model: The AR model spec (``MODELS``): what the method adds around backbone + head.
        text_tokenizer: Text tokenizer name, folder or hub id (see ``vidtok.models.text_tokenizers``).
        text_encoder: An optional frozen text encoder (a transformers model folder or hub id, e.g. NOVA's
            Phi-2) whose hidden states condition the model instead of the backbone's own embedding of ids.
        training: The recommended training settings (:class:`TrainingSection`).
    """

    name: str
    video_tokenizer: ComponentSpec
    backbone: ComponentSpec
    head: ComponentSpec
    model: ComponentSpec
    text_tokenizer: str
    text_encoder: str | None = None
    training: TrainingSection = field(default_factory=TrainingSection)

    def __post_init__(self) -> None:
        for key in ("video_tokenizer", "backbone", "head", "model"):
            object.__setattr__(self, key, ComponentSpec.coerce(getattr(self, key), f"recipe {self.name}: {key}"))
        object.__setattr__(self, "training", TrainingSection.coerce(self.training))

    @property
    def video_lm(self) -> dict[str, Any]:
        """The AR model's kwargs (the field's name when DiCoDe's video LM was the only model)."""
        return self.model.kwargs

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (``RecipeConfig.from_dict`` reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecipeConfig:
        """Rebuild from :meth:`to_dict` output (older dicts with a ``video_lm`` field are migrated).

        Raises:
            ValueError: On missing or unknown fields.
        """
        data = copy.deepcopy(dict(data))
        if "video_lm" in data and "model" not in data:  # written before the AR-model contract: DiCoDe's video LM
            data["model"] = {"name": "dicode_lm", "kwargs": data.pop("video_lm")}
        names = {f.name for f in dataclasses.fields(cls)}
        optional = {"training", "text_encoder"}
        unknown, missing = set(data) - names, {n for n in names - set(data) if n not in optional}
        if unknown or missing:
            raise ValueError(f"recipe dict: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}")
        return cls(**data)


def build_components(recipe: RecipeConfig | dict[str, Any]) -> dict[str, Any]:
    """Instantiate any recipe's components for a pipeline.

    Returns:
        ``video_tokenizer``, ``backbone``, ``model``, ``head``, ``text_tokenizer`` and ``text_encoder`` (``None``
        unless the recipe names one). The model's config is completed from the other components
        (:meth:`~vidtok.models.base.VideoARModel.complete_config`) and checked against them
        (:meth:`~vidtok.models.base.VideoARModel.check_compatible`).

    Raises:
        TypeError: If ``recipe`` is neither a :class:`RecipeConfig` nor its dict.
        ValueError: Components that do not fit together (every mismatch listed).
    """
    from vidtok.backbones.base import BACKBONES
    from vidtok.heads.base import HEADS
    from vidtok.models.base import MODELS
    from vidtok.models.text_tokenizers import load_text_tokenizer
    from vidtok.tokenizers.base import TOKENIZERS

    if isinstance(recipe, dict):
        recipe = RecipeConfig.from_dict(recipe)
    if not isinstance(recipe, RecipeConfig):
        raise TypeError(f"expected a RecipeConfig (vidtok.RECIPES.create(...)), got {type(recipe).__name__}")

    def component(registry: Registry, spec: ComponentSpec, **extra: Any) -> Any:
        cls = registry.get(spec.name)
        if spec.pretrained is not None:
            return cls.from_pretrained(resolve_weights(spec.pretrained))
        return cls(**{**spec.kwargs, **extra})

    text_tokenizer = load_text_tokenizer(recipe.text_tokenizer)
    video_tokenizer = component(TOKENIZERS, recipe.video_tokenizer)
    backbone = component(BACKBONES, recipe.backbone)
    head = component(HEADS, recipe.head)
    model_cls = MODELS.get(recipe.model.name)
    if recipe.model.pretrained is not None:
        model = model_cls.from_pretrained(resolve_weights(recipe.model.pretrained))
    else:
        model = model_cls(**model_cls.complete_config(recipe.model.kwargs, text_tokenizer=text_tokenizer))
    text_encoder = None
    if recipe.text_encoder is not None:
        from vidtok.backbones.hf_causal_lm import load_transformers_model

        # Strictly (missing, extra or mis-shaped weights are a LoadingError), as pipelines load their parts.
        text_encoder = load_transformers_model(resolve_weights(recipe.text_encoder)).eval().requires_grad_(False)
    try:
        extra = {"text_encoder": text_encoder} if text_encoder is not None else {}
        model.check_compatible(video_tokenizer, backbone, head, **extra)
    except ValueError as err:
        raise ValueError(f"{recipe.name}: {err}") from None
    return {
        "video_tokenizer": video_tokenizer,
        "backbone": backbone,
        "model": model,
        "head": head,
        "text_tokenizer": text_tokenizer,
        "text_encoder": text_encoder,
    }
