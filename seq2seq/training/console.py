"""The first screen of a run: what the user needs (the model's size by part, where the run's files go), and
nothing that looks wrong or sells something.

Lightning's own model summary is a table with a ``FLOPs`` column that reads ``0`` for every model without an
``example_input_array`` (ours has none: sequences of every length), and a "Mode" column that says nothing
here. With ``trainer.enable_model_summary`` on, :class:`ParameterSummary` takes its place (``train()`` turns
Lightning's off): one line, the parameters of each part of the network.

Two messages are kept off the console, each by a filter that matches it alone:

* Lightning's "💡 Tip: ..." lines, adverts for its cloud services, printed at every start;
* torch's FutureWarning that ``LeafSpec`` is deprecated, raised from inside Lightning's own code (its
  ``_pytree`` helper, Lightning 2.6 with torch 2.13) on the first batch: nothing a user can act on.
"""

from __future__ import annotations

import logging
import warnings

import lightning as L
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)

TIP_PREFIX = "💡 Tip:"


class _DropLightningTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(TIP_PREFIX)


def quiet_lightning_console() -> None:
    """Install the two filters described in the module docstring (idempotent)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, _DropLightningTips) for existing in logger.filters):
            logger.addFilter(_DropLightningTips())
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )


def parameter_counts(module) -> dict[str, int]:
    """Trainable parameters of each child of ``module`` (the network's parts), in definition order."""
    return {
        name: sum(p.numel() for p in child.parameters() if p.requires_grad) for name, child in module.named_children()
    }


class ParameterSummary(Callback):
    """On rank 0 at the start of fitting: ``model: Seq2Seq, 1,639,532 trainable parameters (encoder ..., ...)``."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        network = getattr(pl_module, "model", pl_module)
        parts = parameter_counts(network)
        total = sum(p.numel() for p in network.parameters() if p.requires_grad)
        size_mb = sum(p.numel() * p.element_size() for p in network.parameters()) / 1e6
        listed = ", ".join(f"{name.replace('_', ' ')} {count:,}" for name, count in parts.items() if count)
        log.info("model: %s, %s trainable parameters (%s); %.1f MB of weights",
                 type(network).__name__, f"{total:,}", listed, size_mb)
