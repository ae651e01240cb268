"""The optimizer and its learning-rate schedule, as ``optim.*`` says (``configure_optimizers``' answer)."""

from __future__ import annotations

import math
from typing import Any, Optional

import torch


def make_optimizer(parameters: list[torch.nn.Parameter], settings: dict[str, Any], trainer: Optional[Any],
                   monitor: str, monitor_mode: str):
    """Adam or AdamW, and with ``optim.scheduler`` other than none the schedule Lightning steps: plateau (on
    ``monitor``), inverse_sqrt or cosine (per step, after ``warmup_steps`` of linear warm-up)."""
    optimizer_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[settings["optimizer"]]
    # The fused kernel updates every parameter in one pass (CPU and CUDA), several times faster than the default
    # per-parameter loop on this model (benchmarks/README.md, "Training speed").
    fused = all(parameter.device.type in ("cpu", "cuda") for parameter in parameters)
    optimizer = optimizer_class(parameters, lr=settings["lr"], betas=tuple(settings["betas"]),
                                weight_decay=settings["weight_decay"], fused=fused)
    scheduler = settings["scheduler"]
    if scheduler == "none":
        return optimizer
    if scheduler == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=monitor_mode, factor=settings["plateau_factor"], patience=settings["plateau_patience"],
            min_lr=settings["min_lr"],
        )
        # Not strict: an epoch that ends before the run's first validation leaves the rate as it is.
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": plateau, "monitor": monitor, "strict": False,
                                                         **plateau_timing(trainer)}}
    warmup = max(settings["warmup_steps"], 0)
    if scheduler == "inverse_sqrt":

        def factor(step: int) -> float:
            step = step + 1
            if warmup and step < warmup:
                return step / warmup
            return math.sqrt(max(warmup, 1) / step)

    else:  # cosine
        total = max(int(trainer.estimated_stepping_batches), 1)
        floor = settings["min_lr"] / settings["lr"]

        def factor(step: int) -> float:
            if warmup and step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    lambda_lr = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": lambda_lr, "interval": "step"}}


def plateau_timing(trainer: Optional[Any]) -> dict[str, Any]:
    """When the plateau scheduler looks at the monitored metric: after every validation.

    By default validation ends each epoch. With ``trainer.val_check_interval=N`` (steps) it runs every N steps of
    an epoch instead, and Lightning then updates a step-interval plateau scheduler right after the validation of
    every N-th step of the epoch — the same steps, so each validation counts once towards
    ``optim.plateau_patience``. (Not with ``check_val_every_n_epoch`` other than 1: epochs without validation
    would count the last one again.)
    """
    every = getattr(trainer, "val_check_interval", None) if trainer is not None else None
    if isinstance(every, int) and getattr(trainer, "check_val_every_n_epoch", None) == 1:
        return {"interval": "step", "frequency": every}
    return {"interval": "epoch"}
