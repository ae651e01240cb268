"""Progress as plain log lines: what a run in a batch job (SLURM, ``nohup``, a container) shows in its log file.

:class:`ProgressLog` writes, through the ``seq2seq.training.progress_log`` logger:

- every ``trainer.log_every_n_steps`` optimizer steps, one line (here in two)::

    epoch 1/3 | step 50/939 | loss 3.412 | ppl 30.33 | lr 0.001 | gnorm 1.234 | 1530 tgt tok/s
    | elapsed 0:01:10 | eta 0:21:40

- after every validation, one line with every ``val/*`` metric, the best value of the monitored one so far and
  the checkpoint written for it (or how many validations it has not improved for, out of early stopping's
  patience);
- when training ends, one line with the best checkpoint and its score; after testing, one with the test metrics.

The values are the ones TensorBoard receives: the loss, perplexity and gradient norm are read from the metrics
the LightningModule logged for that very step, the learning rate is the one the step used (what Lightning's
LearningRateMonitor logs), and the throughput is measured here and logged to TensorBoard too
(``train/tgt_tokens_per_sec``: target tokens per second of training over the last interval, validation excluded).
"step N" is the number of optimizer steps done (the checkpoint's ``global_step``); TensorBoard plots that step's
values at N - 1, because Lightning counts the batches from 0.

Where the lines go is the logging configuration's business (``conf/hydra/default.yaml``): always to the run's
``train.log``, and to stderr when stdout is not a terminal (:class:`ConsoleUnlessTerminal`), so that a run
whose output goes to a file shows its progress there, while a terminal keeps the rich progress bar. Under DDP
only global rank 0 writes.
"""

from __future__ import annotations

import datetime
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Optional

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, Timer

log = logging.getLogger(__name__)

TOKENS_PER_SEC = "train/tgt_tokens_per_sec"


class ConsoleUnlessTerminal(logging.StreamHandler):
    """A handler writing to stderr only when stdout is not a terminal: the plain lines stand in for the rich progress
    bar exactly where the bar cannot draw (output redirected to a file or a pipe)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        if not sys.stdout.isatty():
            super().emit(record)


def format_value(value: float) -> str:
    """Four significant digits: ``3.412``, ``30.33``, ``0.001``, ``97.73``; greppable and parseable as a float."""
    return f"{value:.4g}"


def format_duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


class ProgressLog(Callback):
    """Writes the progress lines described in the module docstring; logs ``train/tgt_tokens_per_sec``.

    Its state (the training time of earlier segments of a resumed run) is stored in checkpoints, so ``elapsed``
    counts the whole run's training time, not only this process's.
    """

    def __init__(self) -> None:
        self.validations = 0  # validations run during this fit (a resumed run counts its own)
        self._elapsed_before = 0.0  # training time of the run's earlier segments, from the checkpoint
        self._started: Optional[float] = None
        self._start_step = 0
        self._total_steps: Optional[int] = None
        # The interval since the last step line: tokens, and the time spent training (validation excluded).
        self._interval_tokens = 0
        self._interval_start: Optional[float] = None
        self._validation_started: Optional[float] = None
        self._closing = False  # whether the validation in progress is the run's closing one
        self._last_reported_step = -1
        self._last_epoch: Optional[int] = None
        self._step_lr: Optional[float] = None
        self._pending_validation: Optional[dict[str, Any]] = None
        self._saved_before: set[str] = set()
        # Where the logging setup sends these lines, to set it up again in processes started without it (the ranks
        # of ddp_spawn, whose rank 0 writes them).
        self._destinations = _destinations()
        self._added_handlers: list[logging.Handler] = []

    # ------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"elapsed": self._elapsed()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._elapsed_before = float(state_dict.get("elapsed", 0.0))

    def _elapsed(self) -> float:
        now = time.monotonic()
        return self._elapsed_before + (now - self._started if self._started is not None else 0.0)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if log.hasHandlers() or not trainer.is_global_zero:
            return
        for filename, formatter in self._destinations:
            handler = logging.FileHandler(filename) if filename else ConsoleUnlessTerminal()
            handler.setFormatter(formatter)
            log.addHandler(handler)
            self._added_handlers.append(handler)
        if self._added_handlers:
            log.setLevel(logging.INFO)
            log.propagate = False

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for handler in self._added_handlers:
            log.removeHandler(handler)
            handler.close()
        self._added_handlers = []

    # ------------------------------------------------------------------------------------ training
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.monotonic()
        self._start_step = trainer.global_step
        total = trainer.estimated_stepping_batches
        self._total_steps = int(total) if math.isfinite(total) else None
        self._last_reported_step = trainer.global_step
        self._saved_before = set(self._checkpoint_files(trainer))

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._flush_validation(trainer)
        if self._interval_start is None:
            self._interval_start = time.monotonic()
        # The rate this batch's update uses, before a per-step scheduler changes it for the next one.
        self._step_lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._last_epoch = trainer.current_epoch
        self._interval_tokens += int(getattr(batch, "num_tgt_tokens", 0)) * trainer.world_size
        step = trainer.global_step
        if step == self._last_reported_step or step % trainer.log_every_n_steps != 0:
            return  # Lightning sends metrics to the loggers after exactly these steps
        self._last_reported_step = step
        seconds = time.monotonic() - self._interval_start if self._interval_start is not None else 0.0
        tokens_per_sec = self._interval_tokens / seconds if seconds > 0 else math.nan
        pl_module.log(TOKENS_PER_SEC, tokens_per_sec, on_step=True, on_epoch=False, batch_size=1)
        self._interval_tokens, self._interval_start = 0, time.monotonic()
        if trainer.is_global_zero:
            log.info(self._step_line(trainer, tokens_per_sec))

    def _step_line(self, trainer: L.Trainer, tokens_per_sec: float) -> str:
        metrics = trainer.callback_metrics
        step = trainer.global_step
        parts = [self._epoch(trainer), f"step {step}/{self._total_steps}" if self._total_steps else f"step {step}"]
        for name, label in (("train/loss", "loss"), ("train/ppl", "ppl")):
            if name in metrics:
                parts.append(f"{label} {format_value(float(metrics[name]))}")
        if self._step_lr is not None:
            parts.append(f"lr {format_value(self._step_lr)}")
        if "train/grad_norm" in metrics:
            parts.append(f"gnorm {format_value(float(metrics['train/grad_norm']))}")
        if math.isfinite(tokens_per_sec):
            parts.append(f"{tokens_per_sec:.0f} tgt tok/s")
        parts.append(f"elapsed {format_duration(self._elapsed())}")
        eta = self._eta(trainer)
        if eta is not None:
            parts.append(f"eta {format_duration(eta)}")
        return " | ".join(parts)

    def _epoch(self, trainer: L.Trainer, epoch: Optional[int] = None) -> str:
        # Counted from 1, as people count; checkpoint names count from 0 (best-epoch00-...), as Lightning does.
        epoch = (trainer.current_epoch if epoch is None else epoch) + 1
        bounded = trainer.max_epochs is not None and trainer.max_epochs > 0
        return f"epoch {epoch}/{trainer.max_epochs}" if bounded else f"epoch {epoch}"

    def _eta(self, trainer: L.Trainer) -> Optional[float]:
        """The remaining steps at this process's pace so far (validations included); capped by ``max_time``."""
        done = trainer.global_step - self._start_step
        if self._started is None or done <= 0:
            return None
        eta = None
        if self._total_steps:
            eta = max(self._total_steps - trainer.global_step, 0) * (time.monotonic() - self._started) / done
        timer = next((callback for callback in trainer.callbacks if isinstance(callback, Timer)), None)
        remaining = timer.time_remaining() if timer is not None else None
        if remaining is not None:
            eta = max(remaining, 0.0) if eta is None else min(eta, max(remaining, 0.0))
        return eta

    # ---------------------------------------------------------------------------------- validation
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._validation_started = time.monotonic()
            # Set before a validation starts, should_stop means the run is ending (its budget is spent): this is
            # its closing validation. Set during one, by early stopping.
            self._closing = bool(trainer.should_stop) and not trainer.received_sigterm

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self.validations += 1
        if self._validation_started is not None and self._interval_start is not None:
            self._interval_start += time.monotonic() - self._validation_started  # not training time
        self._validation_started = None
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if name.startswith("val/")}
        # The line waits until the checkpoint callbacks, which run after this one, have saved (or not).
        self._pending_validation = {"epoch": self._epoch(trainer), "step": trainer.global_step, "metrics": metrics,
                                    "closing": self._closing}

    def _flush_validation(self, trainer: L.Trainer) -> None:
        pending, self._pending_validation = self._pending_validation, None
        if pending is None or not trainer.is_global_zero:
            return
        parts = ["validation", pending["epoch"], f"step {pending['step']}"]
        parts += [f"{name} {format_value(value)}" for name, value in sorted(pending["metrics"].items())]
        checkpoint = _model_checkpoint(trainer)
        if checkpoint is not None and checkpoint.best_model_score is not None:
            files = self._checkpoint_files(trainer)
            # Lightning lists a checkpoint before writing it: a file whose write failed (a full disk) is not there.
            saved = [path for path in files if path not in self._saved_before and Path(path).is_file()]
            self._saved_before = set(files)
            best = f"{checkpoint.monitor} {format_value(float(checkpoint.best_model_score))}"
            if checkpoint.best_model_path in saved:
                parts.append(f"new best {best}, saved {self._show(trainer, checkpoint.best_model_path)}")
            elif not Path(checkpoint.best_model_path).is_file():
                parts.append(f"new best {best}, NOT saved: {self._show(trainer, checkpoint.best_model_path)} could "
                             f"not be written")
            else:
                parts.append(f"best {best} ({self._show(trainer, checkpoint.best_model_path)})")
                parts += [f"saved {self._show(trainer, path)}" for path in saved]
                stopping = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)
                if stopping is not None:
                    parts.append(f"no improvement for {stopping.wait_count}/{stopping.patience} validations")
        parts += _dropped_note(trainer, "val")
        if pending["closing"]:
            parts.append("closing validation (the run's last weights)")
        elif trainer.should_stop and not trainer.received_sigterm:
            parts.append("early stopping")
        log.info(" | ".join(parts))

    @staticmethod
    def _checkpoint_files(trainer: L.Trainer) -> list[str]:
        checkpoint = _model_checkpoint(trainer)
        return list(checkpoint.best_k_models) if checkpoint is not None else []

    @staticmethod
    def _show(trainer: L.Trainer, path: str) -> str:
        """A checkpoint's path relative to the run's folder when it is inside it."""
        try:
            return str(Path(path).resolve().relative_to(Path(trainer.default_root_dir).resolve()))
        except ValueError:
            return str(path)

    # ------------------------------------------------------------------------------------ the end
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush_validation(trainer)
        if not trainer.is_global_zero:
            return
        # The epoch of the last step: Lightning has counted the epoch that just ended as done.
        parts = ["training ended", self._epoch(trainer, self._last_epoch), f"step {trainer.global_step}",
                 f"elapsed {format_duration(self._elapsed())}"]
        checkpoint = _model_checkpoint(trainer)
        if checkpoint is not None and checkpoint.best_model_path:
            score = checkpoint.best_model_score
            parts.append(f"best {checkpoint.monitor} {format_value(float(score))}" if score is not None else "best")
            parts[-1] += f": {self._show(trainer, checkpoint.best_model_path)}"
        elif self.validations == 0:
            parts.append("no validation ran")
        log.info(" | ".join(parts))

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._flush_validation(trainer)  # a validation's line is not lost when the run stops right after it

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        weights = self._show(trainer, trainer.ckpt_path) if trainer.ckpt_path else "the final weights"
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if name.startswith("test/")}
        shown = [f"{name} {format_value(value)}" for name, value in sorted(metrics.items())]
        log.info(" | ".join(["test", weights, *shown, *_dropped_note(trainer, "test")]))


def _dropped_note(trainer: L.Trainer, split: str) -> list[str]:
    """``["on 59 of 60 pairs: data.eval_overlong=drop left out line 60"]`` when pairs were dropped, else []."""
    encoded_split = getattr(trainer.datamodule, "encoded_split", None)
    if encoded_split is None:
        return []
    split_data = encoded_split(split)
    dropped = split_data.dropped_lines
    if not dropped:
        return []
    lines = ", ".join(str(line) for line in dropped[:5]) + (f" and {len(dropped) - 5} more" if len(dropped) > 5 else "")
    return [f"on {len(split_data)} of {len(split_data) + len(dropped)} pairs: data.eval_overlong=drop left out "
            f"line{'s' if len(dropped) > 1 else ''} {lines}"]


def _model_checkpoint(trainer: L.Trainer) -> Optional[ModelCheckpoint]:
    return next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor), None)


def _destinations() -> list[tuple[Optional[str], Optional[logging.Formatter]]]:
    """The files (and the stderr handler) that this module's log records reach now, with their formats."""
    found: list[tuple[Optional[str], Optional[logging.Formatter]]] = []
    logger: Optional[logging.Logger] = log
    while logger is not None:
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                found.append((handler.baseFilename, handler.formatter))
            elif isinstance(handler, ConsoleUnlessTerminal):
                found.append((None, handler.formatter))
        logger = logger.parent if logger.propagate else None
    return found
