"""Training: one accelerate-based loop for every vidtok model, with stages, EMA, GAN steps and exact resume.

* [`Trainer`][vidtok.training.trainer.Trainer] and the model protocol (``training_step``, optional
  ``configure_stage``, ``discriminator_parameters``/``discriminator_step``).
* [`TrainingConfig`][vidtok.training.config.TrainingConfig] and its parts
  ([`OptimizerConfig`][vidtok.training.config.OptimizerConfig],
  [`DiscriminatorConfig`][vidtok.training.config.DiscriminatorConfig],
  [`EMAConfig`][vidtok.training.config.EMAConfig], [`Stage`][vidtok.training.config.Stage]).
* [`train_from_config`][vidtok.training.run.train_from_config]: what ``vidtok train CONFIG`` runs for a run config
  (``model``/``data``/``trainer``); [`train_recipe`][vidtok.training.recipe.train_recipe] what it runs for a
  recipe run (``recipe: dicode_tiny`` + ``overrides``).
* [`EvaluationCallback`][vidtok.training.callbacks.EvaluationCallback]: periodic held-out evaluation, export of
  the best checkpoint by a named score, a time budget.
* Checkpoints, sampling, schedules, EMA and the metrics log live in their own modules.
"""

from vidtok.training.callbacks import EvaluationCallback, StopTraining
from vidtok.training.checkpoint import latest_checkpoint, list_checkpoints
from vidtok.training.config import (
    ConfigError,
    DiscriminatorConfig,
    EMAConfig,
    OptimizerConfig,
    Stage,
    TrainingConfig,
    apply_overrides,
)
from vidtok.training.ema import EMA
from vidtok.training.example_model import TinyVideoAutoencoder
from vidtok.training.recipe import RecipeRun, load_recipe_run, train_recipe
from vidtok.training.run import build_datasets, build_model, load_run_config, train_from_config
from vidtok.training.tracking import plot_metrics, read_metrics
from vidtok.training.trainer import Callback, Trainer, TrainOutput

__all__ = [
    "EMA",
    "Callback",
    "ConfigError",
    "DiscriminatorConfig",
    "EMAConfig",
    "EvaluationCallback",
    "OptimizerConfig",
    "RecipeRun",
    "Stage",
    "StopTraining",
    "TinyVideoAutoencoder",
    "TrainOutput",
    "Trainer",
    "TrainingConfig",
    "apply_overrides",
    "build_datasets",
    "build_model",
    "latest_checkpoint",
    "list_checkpoints",
    "load_recipe_run",
    "load_run_config",
    "plot_metrics",
    "read_metrics",
    "train_from_config",
    "train_recipe",
]
