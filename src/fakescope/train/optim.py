"""Optimisers and learning-rate schedules by name (``create_optimizer`` / ``create_scheduler``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from fakescope.train.config import OPTIMIZERS, SCHEDULERS, ConfigError


def create_optimizer(
    model: nn.Module, name: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """Build ``adam``, ``adamw``, ``rmsprop`` or ``sgd`` over all parameters of ``model``.

    Frozen parameters are included (they receive no gradient, so they are not updated) so that unfreezing the
    backbone later needs no new optimiser.
    """
    params = list(model.parameters())
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay, momentum=momentum)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=momentum > 0)
    raise ConfigError(f"unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}")


#: Schedules stepped after every optimiser step (the others are stepped once per epoch).
PER_STEP_SCHEDULERS = ("warmup_cosine",)


def create_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    epochs: int,
    step_size: int = 5,
    gamma: float = 0.1,
    min_lr: float = 0.0,
    steps_per_epoch: int = 1,
    warmup_steps: int = 0,
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Build a schedule: ``none`` (returns None), per epoch ``step`` or ``cosine`` (over ``epochs``), or per step
    ``warmup_cosine`` (linear warm-up from ~0 over ``warmup_steps``, then cosine down to ``min_lr`` at step
    ``epochs * steps_per_epoch``).
    """
    if name == "none":
        return None
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, step_size), gamma=gamma)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs), eta_min=min_lr)
    if name == "warmup_cosine":
        total = max(1, epochs * steps_per_epoch)
        warm = max(0, min(warmup_steps, total - 1))
        base = optimizer.param_groups[0]["lr"]
        floor = min_lr / base if base > 0 else 0.0

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / (warm + 1)
            t = min(1.0, (step - warm) / max(1, total - warm))
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    raise ConfigError(f"unknown scheduler {name!r}; choose one of {list(SCHEDULERS)}")
