"""DDP as this project runs it: ranks that fail end the job with their own error, and DDP inside Hydra sweeps.

Lightning starts and connects the ranks (never a launcher of our own); what is here is what happens around
it: a failed ``ddp_spawn`` worker's error reported by rank in one line, the ranks Lightning started as
processes of their own stopped when rank 0 fails, and each job of a Hydra sweep running its own DDP.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
from omegaconf import read_write

from seq2seq.training.callbacks import GracefulShutdown, TrainingInterrupted

log = logging.getLogger(__name__)


class DistributedWorkerError(RuntimeError):
    """A DDP worker process failed; the message names its rank and its error."""


def stop_worker_processes(trainer: L.Trainer) -> None:
    """Kill the ranks Lightning started as processes of their own (``strategy=ddp`` on one machine) when this one,
    rank 0, fails: they would otherwise wait in their next collective until it times out (30 minutes and more).
    (Lightning already ends the job when one of *them* fails.)"""
    from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

    launcher = trainer.strategy.launcher
    if isinstance(launcher, _SubprocessScriptLauncher) and launcher.procs:
        log.error("rank 0 failed: stopping the other ranks")
        launcher.kill(signal.SIGKILL)


# Errors whose message says it all: a worker's traceback for them only goes to the debug log.
_CLEAN_ERRORS = ("ValueError", "ConfigError", "CheckpointError", "FileNotFoundError", "PermissionError",
                 "NonFiniteLossError")


def worker_error(error: Exception, shutdown: GracefulShutdown) -> Exception:
    """The error to report for a failed ``ddp_spawn`` worker: its own (the last line of its traceback), by rank."""
    rank = getattr(error, "error_index", "?")
    lines = [line.strip() for line in str(getattr(error, "msg", error)).splitlines() if line.strip()]
    last = lines[-1] if lines else type(error).__name__
    interrupted = TrainingInterrupted.from_worker(last, shutdown.path)
    if interrupted is not None:
        return interrupted
    error_type = last.split(":", 1)[0].rsplit(".", 1)[-1]
    log.log(logging.DEBUG if error_type in _CLEAN_ERRORS else logging.ERROR, "DDP rank %s failed:%s", rank,
            getattr(error, "msg", error))
    if error_type in _CLEAN_ERRORS and ": " in last:
        last = last.split(": ", 1)[1]
    return DistributedWorkerError(f"DDP rank {rank} failed: {last}")


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@contextmanager
def ddp_in_sweep_job() -> Iterator[None]:
    """Within a Hydra sweep job, run DDP for *this job*: its other ranks join it, and it leaves nothing behind.

    With ``strategy=ddp`` on one machine, Lightning starts ranks 1.. by running the script again with the
    same command line plus ``hydra.run.dir=<run dir>``. In a sweep that command line is the whole sweep
    (``-m model=bilstm,bigru ...``): every extra rank would run every job of the sweep again, in sweep
    directories of its own. Here the command line is, for the time of the fit, this job's own overrides
    (what Hydra records in ``.hydra/overrides.yaml``), and the run dir this job's output directory: the
    other ranks join this job and write into its folder, one folder per job.

    Jobs of a sweep run one after the other in one process, and Lightning keeps the process group and the
    ``MASTER_PORT``/``WORLD_SIZE``/... variables of a job's DDP run: the next job's new ranks could not join
    them. Both are cleared when the job ends.
    """
    import os

    import torch.distributed as dist
    from hydra.core.hydra_config import HydraConfig

    if not in_multirun():
        yield
        return
    hydra_cfg = HydraConfig.get()
    saved_argv, saved_run_dir, saved_environ = sys.argv[:], hydra_cfg.run.dir, os.environ.copy()
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    try:
        yield
    finally:
        sys.argv = saved_argv
        with read_write(hydra_cfg):
            hydra_cfg.run.dir = saved_run_dir
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        os.environ.clear()
        os.environ.update(saved_environ)
