"""Learning-rate schedules over (possibly staged) training runs.

The schedule shapes are diffusers' (``diffusers.optimization.get_scheduler``: cosine with linear warm-up,
linear, constant, ...). [`build_lr_scheduler`][vidtok.training.schedules.build_lr_scheduler] composes them
over the run: one schedule over all steps, or one per stage when each stage restarts its warm-up and decay
(``OptimizerConfig.schedule_per_stage``) or has its own peak learning rate (``Stage.lr``). The result is a single
``torch.optim.lr_scheduler.LambdaLR`` whose state is just the step counter, so it checkpoints and resumes like
any scheduler.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Sequence

import torch
from torch.optim.lr_scheduler import LambdaLR

from vidtok.training.config import DiscriminatorConfig, OptimizerConfig, Stage

__all__ = ["build_lr_scheduler", "schedule_factor"]

logger = logging.getLogger(__name__)


def schedule_factor(name: str, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """The multiplier ``f(step)`` of diffusers' schedule ``name`` (the peak learning rate is ``f = 1``).

    Args:
        name: A ``diffusers.optimization.get_scheduler`` name (``"cosine"``, ``"constant"``, ...).
        warmup_steps: Linear warm-up steps.
        total_steps: Length of the schedule.

    Example:
        >>> f = schedule_factor("cosine", warmup_steps=10, total_steps=110)
        >>> f(0), f(5), f(10), round(f(60), 3), f(110)
        (0.0, 0.5, 1.0, 0.5, 0.0)
    """
    from diffusers.optimization import get_scheduler

    # diffusers only builds LambdaLR objects around an optimizer; a throwaway one yields the bare multiplier.
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = get_scheduler(name, probe, num_warmup_steps=warmup_steps, num_training_steps=total_steps)
    return scheduler.lr_lambdas[0]


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer,
    config: OptimizerConfig | DiscriminatorConfig,
    stages: Sequence[Stage],
    total_steps: int,
) -> LambdaLR:
    """A ``LambdaLR`` implementing ``config``'s schedule over ``stages`` (truncated to ``total_steps``).

    Args:
        optimizer: The optimizer; its learning rate must already be ``config.lr``.
        config: Schedule name, warm-up and peak learning rate. With ``schedule_per_stage`` (optimizer configs
            only) every stage gets its own warm-up and decay over its own length.
        stages: The run's stages, in order (their ``steps`` and optional ``lr``).
        total_steps: Steps actually trained (the last stage may be cut short; a whole-run schedule then decays
            over ``total_steps``).

    Returns:
        The scheduler; call ``step()`` once per optimizer step.
    """
    per_stage = bool(getattr(config, "schedule_per_stage", False))
    starts, shapes, scales = [], [], []
    start = 0
    for stage in stages:
        if start >= total_steps:
            break
        length = min(stage.steps, total_steps - start)
        starts.append(start)
        shapes.append(schedule_factor(config.scheduler, config.warmup_steps, length) if per_stage else None)
        scales.append((stage.lr / config.lr) if stage.lr is not None else 1.0)
        start += length
    run_shape = None if per_stage else schedule_factor(config.scheduler, config.warmup_steps, total_steps)
    span = stages[0].steps if per_stage and stages else total_steps
    if config.warmup_steps >= span and config.scheduler != "constant":
        logger.warning(
            "warmup_steps=%d is not shorter than the schedule (%d steps): the learning rate never reaches its peak",
            config.warmup_steps,
            span,
        )

    def factor(step: int) -> float:
        i = max(bisect.bisect_right(starts, step) - 1, 0)
        shape = shapes[i]
        value = shape(step - starts[i]) if shape is not None else run_shape(step)
        return scales[i] * value

    return LambdaLR(optimizer, factor)
