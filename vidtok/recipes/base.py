"""The ``RECIPES`` registry of factory functions, and the recipe description they return.

A recipe is a function, registered timm-style under a name such as ``dicode_tiny``, that returns a
complete, JSON-serializable :class:`RecipeConfig` — which tokenizer, backbone, head and video LM, with their
keyword arguments and where their weights come from — with keyword overrides for ablations:
``RECIPES.create("dicode_tiny", head="gaussian")``. :func:`build_components` turns it into the pipeline's
components (``TextToVideo.from_recipe`` calls it).

Example:
    >>> import vidtok
    >>> cfg = vidtok.RECIPES.create("dicode_tiny", head="gaussian", tiny=True)
    >>> cfg.head.name, cfg.head.kwargs["hidden_size"] == cfg.video_lm["hidden_size"]
    ('gaussian', True)
    >>> vidtok.RECIPES.create("dicode_tiny", num_components=8).head.kwargs["num_components"]
    8
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import os
from dataclasses import dataclass, field
from typing import Any

from vidtok.registry import Registry

__all__ = ["RECIPES", "ComponentSpec", "RecipeConfig", "build_components", "resolve_weights"]

RECIPES: Registry = Registry("recipe", package="vidtok.recipes", callable_only=True)

#: Weights shipped inside the package, addressable as ``"vidtok:<name>"`` in a :class:`ComponentSpec`: name ->
#: the module constant that holds their folder (one source for each path).
_SHIPPED = {
    "deep_tokens_shapes": ("vidtok.tokenizers.deep_tokens", "SHAPES_DEFAULT_PATH"),
    "dicode_shapes": ("vidtok.pipelines.text_to_video", "DEFAULT_MODEL_PATH"),
}


def resolve_weights(location: str) -> str:
    """A local folder or hub id for ``location``; ``"vidtok:<name>"`` names weights shipped with vidtok.

    Raises:
        FileNotFoundError: A shipped name that is not installed.
        KeyError: An unknown ``vidtok:`` name.
    """
    if not location.startswith("vidtok:"):
        return location
    name = location.split(":", 1)[1]
    if name not in _SHIPPED:
        raise KeyError(f"no shipped weights named {name!r}; known: {sorted(_SHIPPED)}")
    module, attr = _SHIPPED[name]
    path = getattr(importlib.import_module(module), attr)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"shipped weights {location} are missing from {path}")
    return path


@dataclass(frozen=True)
class ComponentSpec:
    """One component of a recipe: registry name, constructor keyword arguments, optional weights.

    Attributes:
        name: Registry name (``"deep_tokens"``, ``"gmm"``, ``"hf_causal_lm"``, ...).
        kwargs: Constructor keyword arguments (JSON values).
        pretrained: Folder, hub id or ``"vidtok:<name>"`` to load weights from (``from_pretrained``);
            ``None`` builds from ``kwargs`` with random weights.
    """

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None


@dataclass(frozen=True)
class RecipeConfig:
    """A complete model description (what a recipe returns; DiCoDe supplementary §6 for ``dicode_*``).

    Attributes:
        name: The recipe's name.
        video_tokenizer: The tokenizer spec (``TOKENIZERS``).
        backbone: The language model spec (``BACKBONES``).
        head: The AR head spec (``HEADS``).
        video_lm: Keyword arguments of :class:`~vidtok.models.video_lm.VideoLM`.
        text_tokenizer: Text tokenizer name, folder or hub id (see ``vidtok.models.text_tokenizers``).
        training: Training settings the recipe's example script reads (stages, steps, learning rate).
    """

    name: str
    video_tokenizer: ComponentSpec
    backbone: ComponentSpec
    head: ComponentSpec
    video_lm: dict[str, Any]
    text_tokenizer: str
    training: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (``RecipeConfig.from_dict`` reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecipeConfig:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            ValueError: On missing or unknown fields.
        """
        data = copy.deepcopy(dict(data))
        names = {f.name for f in dataclasses.fields(cls)}
        unknown, missing = set(data) - names, {n for n in names - set(data) if n != "training"}
        if unknown or missing:
            raise ValueError(f"recipe dict: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}")
        for key in ("video_tokenizer", "backbone", "head"):
            data[key] = ComponentSpec(**data[key])
        return cls(**data)


def build_components(recipe: RecipeConfig | dict[str, Any]) -> dict[str, Any]:
    """Instantiate a recipe's components: ``video_tokenizer``, ``backbone``, ``video_lm``, ``head``, ``text_tokenizer``.

    Raises:
        TypeError: If ``recipe`` is neither a :class:`RecipeConfig` nor its dict.
    """
    from vidtok.backbones.base import BACKBONES
    from vidtok.heads.base import HEADS
    from vidtok.models.text_tokenizers import load_text_tokenizer
    from vidtok.models.video_lm import VideoLM
    from vidtok.tokenizers.base import TOKENIZERS

    if isinstance(recipe, dict):
        recipe = RecipeConfig.from_dict(recipe)
    if not isinstance(recipe, RecipeConfig):
        raise TypeError(f"expected a RecipeConfig (vidtok.RECIPES.create(...)), got {type(recipe).__name__}")

    def component(registry: Registry, spec: ComponentSpec) -> Any:
        cls = registry.get(spec.name)
        if spec.pretrained is not None:
            return cls.from_pretrained(resolve_weights(spec.pretrained))
        return cls(**spec.kwargs)

    backbone_kwargs = dict(recipe.backbone.kwargs)
    if recipe.backbone.pretrained is not None:
        backbone_kwargs = {"pretrained": resolve_weights(recipe.backbone.pretrained)}
    text_tokenizer = load_text_tokenizer(recipe.text_tokenizer)
    video_tokenizer = component(TOKENIZERS, recipe.video_tokenizer)
    _check_token_shape(recipe, video_tokenizer)
    return {
        "video_tokenizer": video_tokenizer,
        "backbone": BACKBONES.create(recipe.backbone.name, **backbone_kwargs),
        "video_lm": VideoLM(**{"pad_token_id": text_tokenizer.pad_token_id, **recipe.video_lm}),
        "head": component(HEADS, recipe.head),
        "text_tokenizer": text_tokenizer,
    }


def _check_token_shape(recipe: RecipeConfig, tokenizer: Any) -> None:
    """Refuse a video LM sized for other tokens than the tokenizer makes.

    A pretrained tokenizer's own config wins over the recipe's, so a folder trained with 8 deep tokens under
    a recipe that expects 16 would otherwise build a video LM that cannot read its tokens.
    """
    expected = {"token_dim": int(tokenizer.token_dim)}
    size = getattr(tokenizer, "sample_size", None)
    if size is not None:
        expected["num_tokens"] = int(tokenizer.tokens_per_step(*size))
    wrong = {
        key: (recipe.video_lm[key], value)
        for key, value in expected.items()
        if key in recipe.video_lm and int(recipe.video_lm[key]) != value
    }
    if wrong:
        details = ", ".join(f"video_lm {k}={lm} but the tokenizer makes {tok}" for k, (lm, tok) in wrong.items())
        hint = " (pass num_deep_tokens=N to the recipe)" if "num_tokens" in wrong else ""
        raise ValueError(f"{recipe.name}: {details}{hint}")
