"""What the entry points (``train.py``, ``evaluate.py``) share: errors as one line instead of a traceback.

An error of a kind that names its cause (a bad config value, a missing or damaged file, a foreign checkpoint,
a stop on a non-finite loss, a failed DDP rank) is printed as one line, ``error: <message>``, on stderr, and
the script exits with status 1; ``hydra.verbose=true`` also logs the traceback, for bug reports. A stop on
SIGTERM or Ctrl-C prints the command that resumes the run and exits with 128 + the signal number. Anything
else is a bug and keeps its traceback.

Inside a Hydra multirun an error ends only its own job: it is logged and re-raised, so the sweep goes on
with the other jobs and Hydra reports the failure at the end.
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Callable, Optional, TypeVar

from omegaconf import DictConfig

from seq2seq.training.callbacks import TrainingInterrupted
from seq2seq.training.distributed import DistributedWorkerError, in_multirun
from seq2seq.training.nonfinite import NonFiniteLossError

log = logging.getLogger(__name__)

T = TypeVar("T")


# ConfigError and CheckpointError are ValueErrors; FileNotFoundError and PermissionError are OSErrors.
# ModuleNotFoundError: an optional extra that is not installed, named in the message.
REPORTED_ERRORS = (ValueError, OSError, ModuleNotFoundError, NonFiniteLossError, DistributedWorkerError)


def run_reporting_errors(function: Callable[[DictConfig], T], cfg: DictConfig, command: str) -> Optional[T]:
    """``function(cfg)``, with the errors above turned into one line on stderr and a non-zero exit. ``command`` is
    how the user started it (``python train.py``, ``seq2seq-train``), for the resume command it prints."""
    try:
        return function(cfg)
    except TrainingInterrupted as stop:
        print(f"{stop}. Resume with: {resume_command(command, stop.checkpoint)}", file=sys.stderr)
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C)", file=sys.stderr)
        sys.exit(130)
    except REPORTED_ERRORS as error:
        log.debug("%s failed", command, exc_info=True)
        message = f"error: {one_line(error)}"
        if in_multirun():
            log.error(message)
            raise
        sys.exit(message)


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def resume_command(command: str, checkpoint: Optional[Path]) -> str:
    """The command line that resumes this run: its own overrides (when Hydra knows them) and ``ckpt_path``; or the
    same command, when it has ``resume=auto`` and a fixed folder (``run_name`` or ``hydra.run.dir``)."""
    if checkpoint is None:
        return f"{command} [same overrides as before] (there is no checkpoint yet: this starts over)"
    overrides = _task_overrides()
    if overrides is None:
        shown = "[same overrides as before]"
    else:
        keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
        if "resume=auto" in overrides and keys & {"run_name", "hydra.run.dir"}:
            # The same folder and resume=auto: the very same command finds the checkpoint.
            return " ".join([command, *(shlex.quote(o) for o in overrides)])
        kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "ckpt_path"]
        shown = " ".join(shlex.quote(o) for o in kept)
    return " ".join(part for part in (command, shown, shlex.quote(f"ckpt_path={checkpoint}")) if part)


def _task_overrides() -> Optional[list[str]]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return list(HydraConfig.get().overrides.task)


