"""Train a recipe: ``vidtok train`` on a file whose top level names ``recipe: dicode_tiny``.

A recipe run builds the recipe's components ([`build_components`][vidtok.recipes.base.build_components]),
renders Shapes videos and encodes them once with the recipe's tokenizer into a token cache (DiCoDe §3.3: the
AR model trains on precomputed tokens of the frozen tokenizer), trains backbone + AR model + head(s) as a
[`VideoARModelForTraining`][vidtok.models.base.VideoARModelForTraining] with the recipe's stages, learning
rate and batch size (DiCoDe's progressive L2 → GMM schedule, supplementary §6, for ``dicode_*``), evaluates
held-out prompt following from pixels along the way
([`EvaluationCallback`][vidtok.training.callbacks.EvaluationCallback] +
[`evaluate_text_to_video`][vidtok.metrics.shapes_evaluation.evaluate_text_to_video]), and exports a
[`TextToVideo`][vidtok.pipelines.text_to_video.TextToVideo] folder. Nothing in it is specific to one model:
prompts are cut to the model's ``text_length``, a model that ``generates_codes`` trains on the cache's
integer codes, and the videos are sized from the tokenizer (its ``sample_size`` and temporal compression).

A recipe run file (YAML or JSON)::

    recipe: dicode_tiny                  # a RECIPES name
    overrides: {head: gaussian}          # keyword overrides of the recipe factory (tiny: true for a smoke test)
    data:                                # the Shapes token data (ShapesDataConfig)
      videos: 12000
      steps_per_sample: 5                # default: the recipe's training.steps_per_sample
      val_videos: 512                    # held-out videos of the validation NLL (0: none)
    evaluation:                          # held-out prompt following (EvaluationConfig)
      every: 500
      select: joint                      # export the best checkpoint by this held-out score (null: the last)
    trainer:                             # a TrainingConfig; stages, lr and batch size default to the recipe's
      output_dir: runs/dicode_tiny
      max_steps: 3000
    export: runs/dicode_tiny/final       # default: OUTPUT_DIR/pipeline; false: no export

``trainer.stages`` (the recipe's or given) may give each stage's length as ``fraction`` of ``max_steps``
instead of ``steps``; a stage option ``{"head": name}`` trains with that head (an extra head of the recipe's
width is built for names other than the recipe's own). ``trainer.optimizer.lr`` defaults to the recipe's
``training.lr``, ``trainer.batch_size`` to its ``training.batch_size`` and the warm-up to a tenth of the steps
(at most 1,000).

Example:
    >>> run = {"recipe": "dicode_tiny", "overrides": {"tiny": True}, "trainer": {"max_steps": 8, "output_dir": "x"}}
    >>> cfg = load_recipe_run(run)
    >>> stages = {s.name: (s.steps, s.options["head"]) for s in cfg.training.stages}
    >>> stages
    {'l2': (2, 'l2'), 'gmm': (6, 'gmm')}
    >>> cfg.training.optimizer.lr, cfg.training.batch_size, cfg.export
    (0.001, 32, 'x/pipeline')
"""

from __future__ import annotations

import copy
import difflib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidtok.training.config import (
    ConfigError,
    TrainingConfig,
    build_config,
    load_run_mapping,
)

__all__ = [
    "EvaluationConfig",
    "RecipeRun",
    "RecipeRunResult",
    "ShapesDataConfig",
    "build_training_module",
    "evaluate_pipeline",
    "export_tokenizer_in_fp16",
    "is_recipe_config",
    "load_pipeline_weights",
    "load_recipe_run",
    "pipeline_of",
    "resolve_stages",
    "train_recipe",
    "validation_nll",
]

_TOP_LEVEL = ("recipe", "overrides", "data", "evaluation", "trainer", "export", "export_fp16_tokenizer")
_TOP_LEVEL += ("init_from", "init_fresh", "train_only")


@dataclass
class ShapesDataConfig:
    """The ``data`` section of a recipe run: Shapes videos encoded once into token caches.

    Args:
        videos: Training videos in the token cache.
        steps_per_sample: Token steps (keyframes) per training video (default: the recipe's
            ``training.steps_per_sample``, else 4).
        val_videos: Held-out videos (``split="heldout"``) for the validation NLL; 0: none.
        cache_dir: Training token cache (default: ``OUTPUT_DIR/token_cache``; the validation cache is the same
            path with ``_heldout`` appended). Reused when it exists and matches the tokenizer.
        seed: Seed of the videos (default: ``trainer.seed``; the held-out ones use ``seed + 1``).
        augment: Drop attributes from training captions
            ([`augment_caption`][vidtok.data.shapes_training.augment_caption]).
        color_dropout: With ``augment``, the probability of dropping each object's color word.
        motions: Motions of the objects.
        num_objects: Objects per video, drawn uniformly from this list.
    """

    videos: int = 20000
    steps_per_sample: int | None = None
    val_videos: int = 512
    cache_dir: str | None = None
    seed: int | None = None
    augment: bool = True
    color_dropout: float = 0.0
    motions: list[str] = field(default_factory=lambda: ["left", "right", "up", "down", "still", "bounces"])
    num_objects: list[int] = field(default_factory=lambda: [1, 1, 2])

    def __post_init__(self) -> None:
        if self.videos < 1:
            raise ConfigError(f"videos: must be >= 1, got {self.videos}")
        if self.val_videos < 0:
            raise ConfigError(f"val_videos: must be >= 0, got {self.val_videos}")
        if self.steps_per_sample is not None and self.steps_per_sample < 1:
            raise ConfigError(f"steps_per_sample: must be >= 1, got {self.steps_per_sample}")
        if not 0.0 <= self.color_dropout <= 1.0:
            raise ConfigError(f"color_dropout: must be in [0, 1], got {self.color_dropout}")


@dataclass
class EvaluationConfig:
    """The ``evaluation`` section of a recipe run: held-out Shapes prompt following, diversity.

    Args:
        enabled: Evaluate at all (at the end, and every ``every`` steps).
        every: Evaluate every this many steps (0: only at the end).
        prompts: Only the first N held-out prompts (``None``: all of them).
        seeds: Seeds of the held-out evaluation (one video per prompt and seed).
        keyframes: Token steps of each evaluated video.
        num_inference_steps: Denoising steps of the video decoder.
        guidance_scale: The language model's classifier-free guidance (1 = off).
        temperature: Sampling temperature (``None``: the model's own).
        diversity_seeds: Videos of the under-specified ``diversity_prompt`` at the end (0: skip).
        diversity_prompt: The under-specified prompt.
        select: Export the best checkpoint by this held-out score (``joint``, ``color``, ...) during training;
            ``None``: export the final model.
        minutes: Time budget: stop after an evaluation past this many minutes, with a checkpoint that
            ``trainer.resume_from: latest`` continues.
    """

    enabled: bool = True
    every: int = 0
    prompts: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    keyframes: int = 3
    num_inference_steps: int = 10
    guidance_scale: float = 1.0
    temperature: float | None = None
    diversity_seeds: int = 8
    diversity_prompt: str = "a red shape"
    select: str | None = None
    minutes: float | None = None

    def __post_init__(self) -> None:
        for name in ("every", "diversity_seeds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.keyframes < 1:
            raise ConfigError(f"keyframes: must be >= 1, got {self.keyframes}")
        known = ("color", "shape", "size", "motion", "overall", "joint")
        if self.select is not None and self.select not in known:
            close = difflib.get_close_matches(self.select, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"select: unknown score {self.select!r}{hint}; choose one of {list(known)}")

    @property
    def sampling(self) -> dict[str, Any]:
        """The pipeline's sampling arguments (``guidance_scale``, ``temperature``)."""
        return {"guidance_scale": self.guidance_scale, "temperature": self.temperature}


@dataclass
class RecipeRun:
    """A parsed recipe run file (what [`load_recipe_run`][vidtok.training.recipe.load_recipe_run] returns).

    Attributes:
        recipe: The recipe's registry name.
        overrides: Keyword overrides of the recipe factory.
        config: The [`RecipeConfig`][vidtok.recipes.base.RecipeConfig] they give.
        data: The Shapes token data.
        evaluation: The held-out evaluation.
        training: The resolved trainer settings (stages in steps).
        export: Folder of the exported pipeline, or ``None``.
        export_fp16_tokenizer: Store the exported tokenizer's weights in fp16 (as shipped: half the size,
            loaded back as fp32); ``None`` (the default) decides by :func:`export_tokenizer_in_fp16`.
        init_from: A saved ``TextToVideo`` folder whose backbone, model and head weights training starts from.
        init_fresh: Prefixes of ``"<component>.<parameter>"`` names (e.g. ``"model.still_head."``) that this run
            adds to a component of ``init_from`` (a new sub-module enabled by an override) and that keep their
            fresh initialization; every other tensor is loaded strictly.
        train_only: Train only the parameters whose names start with these (``backbone.``, ``model.``,
            ``heads.<name>.``); ``None``: all.
        raw: The file's mapping after ``--set`` overrides (written to ``OUTPUT_DIR/run_config.json``).
    """

    recipe: str
    overrides: dict[str, Any]
    config: Any
    data: ShapesDataConfig
    evaluation: EvaluationConfig
    training: TrainingConfig
    export: str | None
    export_fp16_tokenizer: bool | None = None
    init_from: str | None = None
    init_fresh: list[str] = field(default_factory=list)
    train_only: list[str] | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecipeRunResult:
    """What [`train_recipe`][vidtok.training.recipe.train_recipe] returns.

    Attributes:
        global_step: Optimizer steps done.
        minutes: Training minutes (runs before a resume included).
        final: The final evaluation (held-out scores, ``diversity``, ``validation_nll``), ``{}`` without one.
        metrics: The trainer's last metrics record.
        output_dir: The run folder (``summary.json``, ``metrics.jsonl``, ``eval.jsonl``, checkpoints).
        export_dir: The exported pipeline (``None`` without export).
        stopped: Why training stopped early (the time budget), else ``None``.
        trainer: The [`Trainer`][vidtok.training.trainer.Trainer].
        module: The trained [`VideoARModelForTraining`][vidtok.models.base.VideoARModelForTraining].
        components: The recipe's built components.
    """

    global_step: int
    minutes: float
    final: dict[str, Any]
    metrics: dict[str, Any]
    output_dir: Path
    export_dir: Path | None
    stopped: str | None
    trainer: Any
    module: Any
    components: dict[str, Any]


# ---------------------------------------------------------------------------------------------- loading


def is_recipe_config(data: Mapping[str, Any]) -> bool:
    """Whether a run-config mapping trains a recipe (its top level names ``recipe``)."""
    return isinstance(data, Mapping) and "recipe" in data


def _create_recipe(name: Any, overrides: Any) -> Any:
    from vidtok.recipes.base import RECIPES

    if not isinstance(name, str) or not name:
        raise ConfigError(f"recipe: expected a recipe name such as 'dicode_tiny', got {name!r}")
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"overrides: expected a mapping of recipe overrides, got {type(overrides).__name__}")
    try:
        factory = RECIPES.get(name)
    except KeyError as err:
        raise ConfigError(f"recipe: {err.args[0] if err.args else err}") from None
    try:
        recipe = factory(**dict(overrides))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"overrides: {err}") from None
    except KeyError as err:  # e.g. an unknown head name
        raise ConfigError(f"overrides: recipe {name}: {err.args[0] if err.args else err}") from None
    from vidtok.registry import REGISTRIES

    kinds = {"video_tokenizer": "tokenizers", "backbone": "backbones", "head": "heads", "model": "models"}
    for key, kind in kinds.items():
        try:
            REGISTRIES[kind].get(getattr(recipe, key).name)
        except KeyError as err:
            raise ConfigError(f"overrides: recipe {name}: {key}: {err.args[0] if err.args else err}") from None
    return recipe


def resolve_stages(stages: Sequence[Any], total: int | None, *, where: str = "trainer.stages") -> list[dict[str, Any]]:
    """Trainer stages with ``steps``, from stages that give ``steps`` or a ``fraction`` of ``total``.

    Fractions are rounded cumulatively (so the lengths add up to ``round(total × sum of fractions)``); stages
    that round to zero steps are dropped.

    Args:
        stages: Stage dicts (``name``, ``steps`` or ``fraction``, and any other [`Stage`][vidtok.training.config.Stage]
            field such as ``options``) or ``Stage`` objects.
        total: The run's steps (needed when a stage gives a fraction).
        where: Dotted path for error messages.

    Raises:
        ConfigError: A fraction without ``total``, or a stage with both or neither of ``steps`` and ``fraction``.

    Example:
        >>> resolve_stages([{"name": "l2", "fraction": 0.25}, {"name": "gmm", "fraction": 0.75}], 10)
        [{'name': 'l2', 'steps': 2}, {'name': 'gmm', 'steps': 8}]
    """
    out: list[dict[str, Any]] = []
    done = 0.0
    for i, stage in enumerate(stages):
        if not isinstance(stage, Mapping):
            stage = {k: getattr(stage, k) for k in ("name", "steps", "data", "mix", "options", "lr")}
        stage = dict(stage)
        has_fraction, has_steps = stage.get("fraction") is not None, stage.get("steps") is not None
        if has_fraction == has_steps:
            raise ConfigError(f"{where}.{i}: give exactly one of 'steps' and 'fraction'")
        if has_fraction:
            if total is None:
                raise ConfigError(
                    f"{where}.{i}.fraction: stages given as fractions need trainer.max_steps (the run's steps)"
                )
            fraction = stage.pop("fraction")
            if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or fraction <= 0:
                raise ConfigError(f"{where}.{i}.fraction: must be a number > 0, got {fraction!r}")
            start = round(total * done)
            done += float(fraction)
            stage["steps"] = round(total * done) - start
            if stage["steps"] < 1:
                continue
        else:
            stage.pop("fraction", None)
        out.append(stage)
    return out


def load_recipe_run(
    source: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Sequence[str] = (),
    *,
    stages: Sequence[str] | None = None,
) -> RecipeRun:
    """Read a recipe run file, apply ``--set`` overrides, build the recipe config and resolve the trainer.

    Args:
        source: A ``.yaml``/``.yml``/``.json`` file or a mapping (see the module docs).
        overrides: ``dotted.key=value`` strings, e.g. ``overrides.head=gaussian`` or ``trainer.max_steps=100``.
        stages: Train only these of the resolved stages (by name).

    Raises:
        ConfigError: On an unknown key, recipe or override (named by dotted path), or invalid values.
    """
    data = load_run_mapping(source, overrides, _TOP_LEVEL, "key of a recipe run")
    recipe = _create_recipe(data.get("recipe"), data.get("overrides") or {})
    section = recipe.training
    data_cfg = build_config(ShapesDataConfig, data.get("data") or {}, "data")
    eval_cfg = build_config(EvaluationConfig, data.get("evaluation") or {}, "evaluation")

    trainer = copy.deepcopy(dict(data.get("trainer") or {}))
    if not isinstance(data.get("trainer") or {}, Mapping):
        raise ConfigError("trainer: expected a mapping of TrainingConfig fields")
    trainer.setdefault("output_dir", f"runs/{data['recipe']}")
    total = trainer.get("max_steps", section.max_steps)
    trainer["max_steps"] = total
    stage_list = trainer.get("stages")
    if stage_list is None:
        stage_list, where = section.stages, "training.stages (of the recipe)"
    else:
        where = "trainer.stages"
    if not isinstance(stage_list, list):
        raise ConfigError(f"{where}: expected a list of stages")
    trainer["stages"] = resolve_stages(stage_list, total, where=where)
    if stages:
        known = [s.get("name") for s in trainer["stages"]]
        unknown = [name for name in stages if name not in known]
        if unknown:
            raise ConfigError(f"trainer.stages: no stage named {unknown}; the stages are {known}")
        trainer["stages"] = [s for s in trainer["stages"] if s.get("name") in stages]
        trainer["max_steps"] = None
    if trainer["stages"] and trainer["max_steps"] is not None:
        trainer["max_steps"] = min(trainer["max_steps"], sum(int(s["steps"]) for s in trainer["stages"]))
    trainer.setdefault("batch_size", section.batch_size)
    optimizer = trainer["optimizer"] = dict(trainer.get("optimizer") or {})
    optimizer.setdefault("lr", section.lr)
    planned = trainer["max_steps"] or sum(int(s.get("steps") or 0) for s in trainer["stages"])
    optimizer.setdefault("warmup_steps", min(1000, planned // 10))
    training = TrainingConfig.from_dict(trainer, prefix="trainer")

    export = data.get("export", True)
    if export is True:
        export = os.path.join(training.output_dir, "pipeline")
    elif export is False or export is None:
        export = None
    elif not isinstance(export, str):
        raise ConfigError(f"export: expected a folder, true or false, got {export!r}")
    train_only = data.get("train_only")
    if isinstance(train_only, str):
        train_only = [train_only]
    init_fresh = data.get("init_fresh") or []
    for key, value in (("train_only", train_only or []), ("init_fresh", init_fresh)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of parameter-name prefixes, got {value!r}")
    init_from = data.get("init_from")
    if init_from is not None and not isinstance(init_from, str):
        raise ConfigError(f"init_from: expected a TextToVideo folder, got {init_from!r}")
    fp16 = data.get("export_fp16_tokenizer")
    if fp16 is not None and not isinstance(fp16, bool):
        raise ConfigError(f"export_fp16_tokenizer: expected true, false or null (decide), got {fp16!r}")
    return RecipeRun(
        recipe=data["recipe"],
        overrides=dict(data.get("overrides") or {}),
        config=recipe,
        data=data_cfg,
        evaluation=eval_cfg,
        training=training,
        export=export,
        export_fp16_tokenizer=fp16,
        init_from=init_from,
        init_fresh=list(init_fresh),
        train_only=train_only,
        raw=data,
    )


# ---------------------------------------------------------------------------------------------- building


class _TokenSamples:
    """A token cache's samples as the training module reads them: ``{"tokens", "caption"}``.

    A model that generates codes trains on the cache's integer ``indices``; any other on its ``tokens``. A
    cache built with dynamic token masking (HiTVideo §4) also gives ``"token_masks"``, passed on as they are
    (the training module refuses them for a model whose loss cannot use them).
    """

    def __init__(self, cache: Any, codes: bool) -> None:
        self.cache, self.codes = cache, codes

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.cache[index]
        if self.codes and "indices" not in sample:
            raise ValueError(
                "the model generates codes but the token cache has no indices: its tokenizer is continuous"
            )
        out = {"tokens": sample["indices"] if self.codes else sample["tokens"], "caption": sample["caption"]}
        if "token_masks" in sample:
            out["token_masks"] = sample["token_masks"]
        return out


def load_pipeline_weights(
    components: Mapping[str, Any], path: str | os.PathLike[str], *, fresh: Sequence[str] = (), log: Any = print
) -> Any:
    """Load a saved pipeline's backbone, model and head weights into a recipe's components, strictly.

    The recipe's configs stay (e.g. the head's sampler settings); only the weights come from the folder.
    Tensors under the ``fresh`` prefixes that a component has and the saved one lacks (a part this run adds)
    keep their fresh initialization; any other mismatch is an error.

    Args:
        components: The recipe's built components (``backbone``, ``model``, ``head``).
        path: A saved ``TextToVideo`` folder.
        fresh: Prefixes of ``"<component>.<parameter>"`` names allowed to start fresh (e.g.
            ``"model.still_head."``).
        log: Called with a message per component with fresh tensors (``None``: silent).

    Returns:
        The loaded pipeline (e.g. to read its configs).
    """
    from vidtok.pipelines.text_to_video import TextToVideo

    saved = TextToVideo.from_pretrained(path)
    for name in ("backbone", "model", "head"):
        state = getattr(saved, name).state_dict()
        new = components[name].state_dict()
        added = {k: v for k, v in new.items() if k not in state and f"{name}.{k}".startswith(tuple(fresh))}
        if added:
            state = {**added, **state}
            if log is not None:
                log(f"{name}: {len(added)} tensors that this run adds start fresh")
        components[name].load_state_dict(state)
    return saved


def build_training_module(
    components: Mapping[str, Any],
    recipe: Any,
    stages: Sequence[Any],
    *,
    caption_transform: Callable[[str, Any], str] | None = None,
) -> Any:
    """The [`VideoARModelForTraining`][vidtok.models.base.VideoARModelForTraining] of a recipe's components.

    Every head a stage asks for (stage option ``{"head": name}``) other than the recipe's own is built at the
    recipe head's width (``hidden_size``, ``token_dim``): DiCoDe's progressive schedule trains with an L2 head
    first, then the GMM head, the backbone and the model carrying over (supplementary §6). Extra heads come
    first, in stage order, then the recipe's head. A recipe's frozen ``text_encoder`` encodes the captions (it is
    not trained, nor saved with the trained parts).

    Args:
        components: The recipe's built components.
        recipe: The [`RecipeConfig`][vidtok.recipes.base.RecipeConfig].
        stages: The trainer stages.
        caption_transform: Optional caption augmentation ``f(caption, generator) -> caption``.
    """
    from vidtok.heads.base import HEADS
    from vidtok.models.base import VideoARModelForTraining

    own = recipe.head.name
    width = {k: recipe.head.kwargs[k] for k in ("hidden_size", "token_dim") if k in recipe.head.kwargs}
    heads: dict[str, Any] = {}
    for stage in stages:
        options = stage.options if hasattr(stage, "options") else (stage.get("options") or {})
        name = (options or {}).get("head")
        if name is not None and name != own and name not in heads:
            heads[name] = HEADS.create(name, **width)
    heads[own] = components["head"]
    return VideoARModelForTraining(
        components["backbone"].train(),
        components["model"].train(),
        heads,
        text_tokenizer=components["text_tokenizer"],
        caption_transform=caption_transform,
        text_encoder=components.get("text_encoder"),
    )


def pipeline_of(module: Any, components: Mapping[str, Any]) -> Any:
    """The [`TextToVideo`][vidtok.pipelines.text_to_video.TextToVideo] of a training module (its current head)."""
    from vidtok.pipelines.text_to_video import TextToVideo

    extra = {} if components.get("text_encoder") is None else {"text_encoder": components["text_encoder"]}
    return TextToVideo(
        video_tokenizer=components["video_tokenizer"],
        backbone=module.backbone,
        model=module.model,
        head=module.head,
        text_tokenizer=components["text_tokenizer"],
        **extra,
    )


def export_tokenizer_in_fp16(tokenizer: Any, setting: bool | None = None) -> bool:
    """Whether a run's export stores its (frozen) video tokenizer's weights in fp16.

    ``setting`` decides when given. Otherwise fp16 (half the size, loaded back as fp32) unless the tokenizer is
    discrete and rounding would change its weights: a discrete tokenizer's codes flip under that rounding (the
    HiTVideo Shapes tokenizer: 0.13 % / 0.23 % of its level-1 / level-2 codes), so its exported pipeline would
    encode other codes than those the language model trained on. A continuous tokenizer's latents move by far
    less than its reconstruction error, and one loaded from fp16 storage rounds exactly.
    """
    import torch

    if setting is not None:
        return bool(setting)
    if not getattr(tokenizer, "is_discrete", False):
        return True
    return all(torch.equal(t, t.half().to(t.dtype)) for t in tokenizer.state_dict().values() if t.is_floating_point())


def _export_pipeline(module: Any, components: Mapping[str, Any], folder: Path, fp16_tokenizer: bool | None) -> None:
    was_training = module.training
    module.eval()
    try:
        pipeline_of(module, components).save_pretrained(folder)
    finally:
        module.train(was_training)
    if export_tokenizer_in_fp16(components["video_tokenizer"], fp16_tokenizer):
        # As shipped: the tokenizer's weights stored in fp16 (half the size; loaded back as fp32).
        copy.deepcopy(components["video_tokenizer"]).half().save_pretrained(os.path.join(folder, "video_tokenizer"))


def evaluate_pipeline(pipe: Any, evaluation: EvaluationConfig, *, diversity: bool = True) -> dict[str, Any]:
    """Held-out Shapes scores of a pipeline (and, with ``diversity``, its diversity record) as configured.

    Args:
        pipe: A text-to-video pipeline.
        evaluation: Prompts, seeds, keyframes and sampling settings.
        diversity: Also measure diversity (when ``evaluation.diversity_seeds`` > 0).
    """
    from vidtok.metrics.shapes_evaluation import diversity as measure_diversity
    from vidtok.metrics.shapes_evaluation import evaluate_text_to_video, heldout_prompts

    result: dict[str, Any] = evaluate_text_to_video(
        pipe,
        heldout_prompts(evaluation.prompts),
        seeds=evaluation.seeds,
        keyframes=evaluation.keyframes,
        num_inference_steps=evaluation.num_inference_steps,
        **evaluation.sampling,
    )
    if diversity and evaluation.diversity_seeds:
        result["diversity"] = measure_diversity(
            pipe,
            evaluation.diversity_prompt,
            seeds=evaluation.diversity_seeds,
            keyframes=evaluation.keyframes,
            **evaluation.sampling,
        )
    return result


def validation_nll(module: Any, data: Any, batch_size: int = 64) -> float:
    """Mean NLL (nats per token) of the active head on held-out token sequences (NaN without a density).

    Args:
        module: A [`VideoARModelForTraining`][vidtok.models.base.VideoARModelForTraining].
        data: Samples ``{"tokens", "caption"}`` (a token cache's), with ``"token_masks"`` where the cache has them
            (then passed to the model's loss, as in training).
        batch_size: Sequences per forward pass.
    """
    import torch

    was_training = module.training
    module.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for lo in range(0, len(data), batch_size):
                items = [data[i] for i in range(lo, min(lo + batch_size, len(data)))]
                first = items[0]["tokens"]
                if isinstance(first, (list, tuple)):  # one tensor per level (hierarchical tokenizers)
                    tokens = [torch.stack([it["tokens"][lv] for it in items]) for lv in range(len(first))]
                else:
                    tokens = torch.stack([it["tokens"] for it in items])
                    if tokens.is_floating_point():
                        tokens = tokens.float()
                batch = {"tokens": tokens, "caption": [it["caption"] for it in items]}
                if "token_masks" in items[0]:  # dynamic token masking (HiTVideo §4): per level, like the tokens
                    masks = items[0]["token_masks"]
                    batch["token_masks"] = (
                        [torch.stack([it["token_masks"][lv] for it in items]) for lv in range(len(masks))]
                        if isinstance(masks, (list, tuple))
                        else torch.stack([it["token_masks"] for it in items])
                    )
                out = module.training_step(batch)
                if "nll" not in out:
                    return float("nan")
                total, count = total + out["nll"].item() * len(items), count + len(items)
    finally:
        module.train(was_training)
    return total / count if count else float("nan")


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)


def train_recipe(
    source: str | os.PathLike[str] | Mapping[str, Any] | RecipeRun,
    overrides: Sequence[str] = (),
    *,
    stages: Sequence[str] | None = None,
    callbacks: Sequence[Any] = (),
    summary_extra: Mapping[str, Any] | None = None,
    check_init: Callable[[Any, Mapping[str, Any]], None] | None = None,
    log: Callable[[str], None] | None = print,
) -> RecipeRunResult:
    """Train a recipe on Shapes tokens end to end; what ``vidtok train RECIPE_RUN.yaml`` runs.

    Steps: seed (``trainer.seed``) and build the recipe's components; build (or reuse) the token cache with the
    recipe's tokenizer, frozen; optionally load ``init_from`` weights; build the training module with the
    stages' heads; train with the [`Trainer`][vidtok.training.trainer.Trainer] and an
    [`EvaluationCallback`][vidtok.training.callbacks.EvaluationCallback]; then the final evaluation (held-out
    scores, diversity, validation NLL), ``OUTPUT_DIR/summary.json`` and the export.

    Args:
        source: A recipe run file, its mapping, or a loaded [`RecipeRun`][vidtok.training.recipe.RecipeRun].
        overrides: ``dotted.key=value`` overrides (not with a ``RecipeRun``).
        stages: Train only these stages (by name).
        callbacks: Further trainer callbacks.
        summary_extra: Entries added to ``summary.json`` (e.g. a script's arguments).
        check_init: Called as ``check_init(saved_pipeline, components)`` before ``init_from`` weights are
            loaded, to refuse a combination with a clear message.
        log: Progress messages (``None``: silent).

    Returns:
        A [`RecipeRunResult`][vidtok.training.recipe.RecipeRunResult].
    """
    from accelerate.utils import set_seed

    from vidtok.data.shapes_training import CaptionAugmentation, shapes_token_cache
    from vidtok.recipes.base import build_components
    from vidtok.training.callbacks import EvaluationCallback, StopTraining, atomic_export
    from vidtok.training.trainer import Trainer

    run = source if isinstance(source, RecipeRun) else load_recipe_run(source, overrides, stages=stages)
    say = log or (lambda message: None)
    cfg, data_cfg, ev = run.training, run.data, run.evaluation
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = cfg.seed if data_cfg.seed is None else data_cfg.seed
    set_seed(cfg.seed)  # identical initial weights in every process
    try:
        components = build_components(run.config)
    except ValueError as err:  # components that do not fit together: a configuration mistake
        raise ConfigError(f"overrides: {err}") from err
    tokenizer = components["video_tokenizer"].float().eval().requires_grad_(False)
    model = components["model"]
    steps = data_cfg.steps_per_sample or run.config.training.steps_per_sample or 4
    cache_dir = Path(data_cfg.cache_dir) if data_cfg.cache_dir else out / "token_cache"
    cache_kwargs = {"steps": steps, "motions": tuple(data_cfg.motions), "num_objects": tuple(data_cfg.num_objects)}
    cache = shapes_token_cache(
        tokenizer, cache_dir, videos=data_cfg.videos, seed=seed, fps=model.fps, log=say, **cache_kwargs
    )

    trained = steps
    if run.init_from:
        from vidtok.pipelines.text_to_video import TextToVideo

        if check_init is not None:
            check_init(TextToVideo.from_pretrained(run.init_from), components)
        saved = load_pipeline_weights(components, run.init_from, fresh=run.init_fresh, log=say)
        trained = max(trained, saved.model.trained_length or trained)
    # Generation windows stay within the positions training has reached (past them, the model slides).
    model.record_trained_length(trained)

    transform = CaptionAugmentation(data_cfg.color_dropout) if data_cfg.augment else None
    module = build_training_module(components, run.config, cfg.resolved_stages(), caption_transform=transform)
    if run.train_only:
        # "video_lm." is the AR model's prefix under its earlier name.
        prefixes = tuple(
            f"model.{p.removeprefix('video_lm.')}" if p.startswith("video_lm.") else p for p in run.train_only
        )
        chosen = {n for n, _ in module.named_parameters() if n.startswith(prefixes)}
        if not chosen:
            raise ConfigError(f"train_only: {run.train_only} matches no parameter of the model")
        for name, param in module.named_parameters():
            param.requires_grad_(name in chosen)
    n_params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    say(f"recipe {run.config.name}, head {run.config.head.name}: {n_params / 1e6:.2f} M trainable parameters")

    def export(trained_module: Any, folder: Path) -> None:
        _export_pipeline(trained_module, components, Path(folder), run.export_fp16_tokenizer)

    def evaluate(trained_module: Any) -> dict[str, Any]:
        return evaluate_pipeline(pipeline_of(trained_module, components), ev, diversity=False)

    callback = EvaluationCallback(
        evaluate,
        every=ev.every if ev.enabled else 0,
        at_end=ev.enabled,
        select=ev.select if run.export else None,
        export=export,
        export_dir=run.export if ev.select else None,
        minutes=ev.minutes,
        verbose=log is not None,
    )
    trainer = Trainer(module, cfg, _TokenSamples(cache, model.generates_codes), callbacks=[callback, *callbacks])
    if trainer.accelerator.is_main_process:
        _write_json(out / "run_config.json", {**run.raw, "trainer": cfg.to_dict(), "export": run.export})
    stopped = None
    metrics: dict[str, Any] = {}
    try:
        metrics = trainer.train().metrics
    except StopTraining as stop:
        stopped = str(stop)
        say(f"stopped: {stop}")
    minutes = trainer.training_seconds / 60
    result = RecipeRunResult(trainer.global_step, minutes, {}, metrics, out, None, stopped, trainer, module, components)
    if not trainer.accelerator.is_main_process:
        return result
    final = dict(callback.last) if ev.enabled and callback.last else {}
    if stopped is None:
        if ev.enabled and ev.diversity_seeds:
            module.eval()
            final["diversity"] = evaluate_pipeline(pipeline_of(module, components), ev)["diversity"]
            module.train()
        if data_cfg.val_videos:
            val = shapes_token_cache(
                tokenizer,
                cache_dir.with_name(cache_dir.name + "_heldout"),
                videos=data_cfg.val_videos,
                seed=seed + 1,
                split="heldout",
                fps=model.fps,
                log=say,
                **cache_kwargs,
            )
            final["validation_nll"] = validation_nll(module, _TokenSamples(val, model.generates_codes))
            say(f"validation NLL {final['validation_nll']:.3f} nats/token")
        final["train_minutes_total"] = minutes
        if "diversity" in final:
            say(json.dumps(final["diversity"]))
    summary = {"steps": trainer.global_step, "minutes": minutes, "final": final}
    if stopped:
        summary["stopped"] = stopped
    summary.update(summary_extra if summary_extra is not None else {"config": run.raw})
    _write_json(out / "summary.json", summary)
    if run.export and stopped is None and (not ev.select or not Path(run.export).exists()):
        atomic_export(export, module, Path(run.export))
        say(f"exported the pipeline to {run.export}")
    elif run.export and ev.select and callback.best_step is not None:
        say(f"exported the best pipeline (step {callback.best_step}, {ev.select} {callback.best:.3f}) to {run.export}")
    result.final, result.export_dir = final, Path(run.export) if run.export else None
    return result
