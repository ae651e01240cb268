"""``train(cfg)``: data, model, logger, callbacks and Trainer composed from one Hydra config.

``train.py`` wraps this in ``@hydra.main``; tests call it directly with a composed config.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Optional

import hydra
import lightning as L
import torch
from hydra.errors import InstantiationException
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.plugins.environments import ClusterEnvironment, SLURMEnvironment
from omegaconf import DictConfig, OmegaConf

from seq2seq.checkpoint import read_checkpoint
from seq2seq.config_checks import check_train_config
from seq2seq.data.datamodule import TranslationDataModule
from seq2seq.data.hf_dataset import is_hub_name
from seq2seq.data.vocabulary import resolve_setting
from seq2seq.training import logger_media
from seq2seq.training.callbacks import ClosingValidation, GracefulShutdown, LastCheckpoint
from seq2seq.training.checkpoint_io import AtomicCheckpointIO
from seq2seq.training.console import ParameterSummary, quiet_lightning_console
from seq2seq.training.distributed import ddp_in_sweep_job, stop_worker_processes, worker_error
from seq2seq.training.dropout_seeding import DropoutSeeding
from seq2seq.training.fit_loop import resume_epoch_ends_as_lightning_does_without_max_steps
from seq2seq.training.module import TranslationModule
from seq2seq.training.nonfinite import NonFiniteLossError, NonFiniteUpdates
from seq2seq.training.progress_log import ProgressLog
from seq2seq.training.samples import ValidationSamples

log = logging.getLogger(__name__)

REPORTED_METRICS = ("val/bleu", "val/chrf", "val/chrf_pp", "val/ter", "val/exact_match", "val/wer", "val/cer",
                    "val/loss", "test/bleu", "test/chrf", "test/chrf_pp", "test/ter", "test/exact_match", "test/wer",
                    "test/cer")


def ensure_writable(directory: Path, key: str) -> None:
    """Fail now, not after an hour of training, when the run's files cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise PermissionError(f"{key}: cannot write to {directory}: {error.strerror or error}") from error


def make_datamodule(data: DictConfig, tokenizer_dir: Optional[Path]) -> TranslationDataModule:
    settings = OmegaConf.to_container(data, resolve=True)
    return TranslationDataModule(**settings, tokenizer_dir=str(tokenizer_dir) if tokenizer_dir else None)


def default_output_cap(datamodule: TranslationDataModule) -> int:
    """The most steps validation and test decoding take when ``decode.max_length`` is null: the longest target
    training allows (``data.max_tgt_length``) and its eos; with no limit, the longest training target and its eos.
    Stored in checkpoints (``hyper_parameters.decode.max_length``), where ``evaluate.py`` finds it."""
    if datamodule.max_tgt_length is not None:
        return datamodule.max_tgt_length + 1
    return int(datamodule.train_split().tgt_ids.lengths().max()) + 1


def make_module(cfg: DictConfig, datamodule: TranslationDataModule) -> TranslationModule:
    """The LightningModule for a prepared DataModule: vocabulary sizes come from its tokenizers."""
    decode = OmegaConf.to_container(cfg.decode, resolve=True)
    if decode["max_length"] is None:  # never unbounded: a 100,000-token source would allow 150,010 steps
        decode["max_length"] = default_output_cap(datamodule)
    module = TranslationModule(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        src_vocab_size=datamodule.src_tokenizer.vocab_size,
        tgt_vocab_size=datamodule.tgt_tokenizer.vocab_size,
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        decode=decode,
        monitor=cfg.monitor,
        monitor_mode=cfg.monitor_mode,
    )
    module.attach_tokenizers(datamodule.src_tokenizer, datamodule.tgt_tokenizer)
    module.data_config = OmegaConf.to_container(cfg.data, resolve=True)
    return module


def instantiate_list(node: Optional[DictConfig]) -> list[Any]:
    """Instantiate every ``_target_`` entry of a callbacks/logger group."""
    if not node:
        return []
    return [hydra.utils.instantiate(entry) for entry in node.values() if entry is not None and "_target_" in entry]


def instantiate_loggers(node: Optional[DictConfig]) -> list[Any]:
    """The ``logger`` group's loggers; one whose package is not installed is an error naming its key and the extra."""
    logger_media.keep_local()
    loggers = []
    for key, entry in (node or {}).items():
        if entry is None or "_target_" not in entry:
            continue
        try:
            loggers.append(hydra.utils.instantiate(entry))
        except InstantiationException as error:
            if isinstance(error.__cause__, ModuleNotFoundError):
                raise ModuleNotFoundError(f"logger.{key} ({entry._target_}): {error.__cause__}; "
                                          "pip install -e '.[loggers]' installs wandb and MLflow") from error
            raise
    return loggers


def log_hparams(loggers: list[Any], cfg: DictConfig) -> None:
    """Every data, model and optimizer setting and the seed, to each logger as it takes them (TensorBoard's HParams
    view with the metric names runs are compared by, wandb's config, MLflow's params, CSV's hparams.yaml)."""
    flat = {}
    for section in ("data", "model", "optim"):
        for key, value in _flatten(OmegaConf.to_container(cfg[section], resolve=True), section).items():
            flat[key] = value if isinstance(value, (int, float, str, bool)) else str(value)
    flat["seed"] = cfg.seed
    logger_media.log_hparams(loggers, flat, REPORTED_METRICS)


def _flatten(node: Any, prefix: str) -> dict[str, Any]:
    if isinstance(node, dict):
        flat = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}.{key}"))
        return flat
    return {prefix: node}


def find_checkpoint_dir(callbacks: list[Any], output_dir: Path) -> Path:
    """Where ``last.ckpt`` goes: the configured ModelCheckpoint's folder, else ``<output_dir>/checkpoints``."""
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            return Path(callback.dirpath)
    return output_dir / "checkpoints"


def checkpoint_to_resume(cfg: DictConfig, last: Path) -> Optional[Path]:
    """The checkpoint training continues from: with ``resume=auto``, the run's own ``last.ckpt`` when it has one (the
    same command re-launched, or a requeued job), else ``ckpt_path`` (the checkpoint the run started from), else none.
    """
    if cfg.get("resume", "never") == "auto" and last.is_file():
        if cfg.ckpt_path:
            log.info("resume=auto: continuing from this run's %s (ckpt_path=%s is where it started)", last,
                     cfg.ckpt_path)
        else:
            log.info("resume=auto: continuing from %s", last)
        return last
    if cfg.ckpt_path:
        return Path(cfg.ckpt_path).expanduser().resolve()
    if cfg.get("resume", "never") == "auto":
        log.info("resume=auto: no %s yet, starting from scratch", last)
    return None


def cluster_plugins(plugins: list[Any]) -> list[Any]:
    """Under SLURM, Lightning's own requeueing off: on SIGUSR1 it would save an ``hpc_ckpt`` that only a job in the same
    folder finds, and requeue the job itself. Here SIGUSR1 is a graceful stop that writes ``last.ckpt``
    (:class:`GracefulShutdown`); the job script requeues (docs/cluster.md) and ``resume=auto`` continues."""
    if SLURMEnvironment.detect() and not any(isinstance(plugin, ClusterEnvironment) for plugin in plugins):
        return [*plugins, SLURMEnvironment(auto_requeue=False)]
    return plugins


def fit(
    trainer: L.Trainer,
    module: TranslationModule,
    datamodule: TranslationDataModule,
    ckpt_path: Optional[Path],
    shutdown: GracefulShutdown,
) -> None:
    """``trainer.fit``, with its ways of ending early turned into errors that say what happened and what is kept."""
    from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

    try:
        with shutdown.spawned_workers_stop_gracefully(trainer):
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
        shutdown.after_fit(trainer)
    except NonFiniteLossError as error:
        last = shutdown.path
        raise NonFiniteLossError(f"{error} (last checkpoint: {last})" if last.is_file() else str(error)) from None
    except (ProcessRaisedException, ProcessExitedException) as error:  # a ddp_spawn worker failed
        raise worker_error(error, shutdown) from None
    except BaseException:
        # Lightning ends the run with SystemExit after a second Ctrl-C; the callback knows what was saved.
        if shutdown.interruption is not None:
            raise shutdown.interruption from None
        stop_worker_processes(trainer)
        raise


def optimized_value(cfg: DictConfig, metrics: dict[str, float]) -> Optional[float]:
    """What a sweeper (``hparams_search=optuna``) optimises: the final value of ``cfg.optimized_metric``.

    A run that has no such value is an error saying why, so that the sweep reports the trial as failed with that
    reason (and goes on), instead of failing it for returning nothing."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        why = ""
        if not any(metric.startswith("val/") for metric in metrics):
            why = ("; no validation ran before training ended: raise trainer.max_steps or lower "
                   "trainer.val_check_interval")
        raise ValueError(f"optimized_metric: this run has no {name} (it has {', '.join(sorted(metrics))}){why}")
    return metrics[name]


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (or resume) as ``cfg`` says; returns the final metrics."""
    with ddp_in_sweep_job():  # in a sweep: DDP ranks join this job, and leave nothing behind for the next
        return _train(cfg)


def _train(cfg: DictConfig) -> dict[str, float]:
    check_train_config(cfg)
    quiet_lightning_console()
    # Relative data paths mean what the user typed, relative to where the command ran.
    if not is_hub_name(cfg.data.root):
        cfg.data.root = str(Path(cfg.data.root).expanduser().resolve())
    cfg.data.src_tokenizer, cfg.data.tgt_tokenizer = map(resolve_setting, (cfg.data.src_tokenizer, cfg.data.tgt_tokenizer))
    output_dir = Path(cfg.output_dir).resolve()
    ensure_writable(output_dir, "output_dir")
    log.info("run folder: %s (train.log, checkpoints/, tensorboard/)", output_dir)
    if cfg.get("matmul_precision"):
        torch.set_float32_matmul_precision(cfg.matmul_precision)
    L.seed_everything(cfg.seed, workers=True)

    callbacks = instantiate_list(cfg.get("callbacks"))
    checkpoint_dir = find_checkpoint_dir(callbacks, output_dir)
    last = checkpoint_dir / "last.ckpt"
    ckpt_path = checkpoint_to_resume(cfg, last)
    tokenizer_dir = output_dir / "tokenizers"
    if ckpt_path is not None:
        # Resuming: the checkpoint's own tokenizers, so token ids mean what they meant before.
        stored = read_checkpoint(ckpt_path, key="resume" if ckpt_path == last else "ckpt_path")
        tokenizer_dir.mkdir(parents=True, exist_ok=True)
        stored.src_tokenizer.save(tokenizer_dir / "src_tokenizer.json")
        stored.tgt_tokenizer.save(tokenizer_dir / "tgt_tokenizer.json")

    datamodule = make_datamodule(cfg.data, tokenizer_dir)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if cfg.test_after_training and "test" in datamodule.splits:
        datamodule.encoded_split("test")  # a bad test file is an error now, not after training

    module = make_module(cfg, datamodule)
    log.info("vocabularies: source %d (%s), target %d (%s)%s", datamodule.src_tokenizer.vocab_size,
             datamodule.src_tokenizer.kind, datamodule.tgt_tokenizer.vocab_size, datamodule.tgt_tokenizer.kind,
             ", one shared" if datamodule.share_vocab else "")

    loggers = instantiate_loggers(cfg.get("logger"))
    trainer_args = OmegaConf.to_container(cfg.trainer, resolve=True)
    # The rich bar draws on stdout, and only where it is a terminal; elsewhere (a log file, a pipe) the plain lines of
    # ProgressLog stand in for it. trainer.enable_progress_bar=false wins over the bar in the callbacks group.
    if not (trainer_args.get("enable_progress_bar", True) and sys.stdout.isatty()):
        callbacks = [callback for callback in callbacks if not isinstance(callback, ProgressBar)]
        trainer_args["enable_progress_bar"] = False
    # The parts of training that are not the model's: skipping non-finite updates (and clipping), dropout seeded
    # by position, attention maps and sample translations to the loggers that take them.
    callbacks += [NonFiniteUpdates(cfg.optim.max_nonfinite_in_a_row), DropoutSeeding(),
                  ValidationSamples(cfg.num_logged_samples)]
    # A run that its step or epoch budget ends between two validations is validated once more at its end.
    callbacks.append(ClosingValidation())
    progress = ProgressLog()
    callbacks.append(progress)
    if trainer_args.get("enable_model_summary", True):
        callbacks.append(ParameterSummary())  # instead of Lightning's table (see seq2seq/training/console.py)
        trainer_args["enable_model_summary"] = False
    if trainer_args.get("enable_checkpointing", True):
        # last.ckpt, the file to resume from: after every epoch and validation, and every N steps if asked.
        callbacks.append(LastCheckpoint(dirpath=str(checkpoint_dir), every_n_steps=cfg.get("checkpoint_every_n_steps")))
    shutdown = GracefulShutdown(dirpath=str(checkpoint_dir))
    callbacks.append(shutdown)
    # Every checkpoint is written to a temporary file, fsync-ed and renamed: a kill never leaves half of one.
    plugins = cluster_plugins([*(trainer_args.pop("plugins", None) or []), AtomicCheckpointIO()])
    trainer = L.Trainer(
        **trainer_args,
        logger=loggers or False,
        callbacks=callbacks,
        default_root_dir=str(output_dir),
        plugins=plugins,
    )
    resume_epoch_ends_as_lightning_does_without_max_steps(trainer)  # see training/fit_loop.py
    succeeded = False
    try:
        if trainer.global_rank == 0:
            log_hparams(loggers, cfg)
        fit(trainer, module, datamodule, ckpt_path, shutdown)

        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if progress.validations == 0 and not best and not trainer.fast_dev_run:
            log.warning(
                "no validation ran: training ended at global step %d without one (trainer.val_check_interval=%s, "
                "trainer.check_val_every_n_epoch=%s, trainer.limit_val_batches=%s), so there is no %s and no best "
                "checkpoint; %s holds the final weights%s", trainer.global_step, cfg.trainer.get("val_check_interval"),
                cfg.trainer.get("check_val_every_n_epoch"), cfg.trainer.get("limit_val_batches"), cfg.monitor, last,
                ", which are tested" if cfg.test_after_training else "",
            )
        if cfg.test_after_training and not trainer.interrupted:
            results = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=False)
            metrics.update({name: float(value) for name, value in (results[0] if results else {}).items()})
        succeeded = True
    finally:
        if trainer.global_rank == 0:
            logger_media.finish(loggers, succeeded)
    log.info("outputs in %s", output_dir)
    return metrics
