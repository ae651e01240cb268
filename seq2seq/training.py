"""``train(cfg)``: data, model, logger, callbacks and Trainer composed from one Hydra config.

``train.py`` wraps this in ``@hydra.main``; tests call it directly with a composed config.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Optional

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from seq2seq.checkpoint import read_checkpoint
from seq2seq.data import TranslationDataModule
from seq2seq.lit_module import TranslationModule
from seq2seq.validation import check_train_config

log = logging.getLogger(__name__)

REPORTED_METRICS = ("val/bleu", "val/chrf", "val/exact_match", "val/loss", "test/bleu", "test/chrf", "test/exact_match")


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


def instantiate_list(node: Optional[DictConfig]) -> list[Any]:
    """Instantiate every ``_target_`` entry of a callbacks/logger group."""
    if not node:
        return []
    return [hydra.utils.instantiate(entry) for entry in node.values() if entry is not None and "_target_" in entry]


def log_hparams(loggers: list[Any], cfg: DictConfig) -> None:
    """Hyperparameters with the metric names they are compared by, for TensorBoard's HParams view.

    The values of those metrics are the ones logged as scalars during training, so nothing is faked here.
    """
    from torch.utils.tensorboard.summary import hparams

    flat = {}
    for section in ("data", "model", "optim"):
        for key, value in _flatten(OmegaConf.to_container(cfg[section], resolve=True), section).items():
            flat[key] = value if isinstance(value, (int, float, str, bool)) else str(value)
    flat["seed"] = cfg.seed
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            experiment, session_start, session_end = hparams(flat, {name: math.nan for name in REPORTED_METRICS})
            writer = logger.experiment._get_file_writer()
            for summary in (experiment, session_start, session_end):
                writer.add_summary(summary)


def _flatten(node: Any, prefix: str) -> dict[str, Any]:
    if isinstance(node, dict):
        flat = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}.{key}"))
        return flat
    return {prefix: node}


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (or resume) as ``cfg`` says; returns the final metrics."""
    check_train_config(cfg)
    # Relative data paths mean what the user typed, relative to where the command ran.
    cfg.data.root = str(Path(cfg.data.root).expanduser().resolve())
    output_dir = Path(cfg.output_dir).resolve()
    ensure_writable(output_dir, "output_dir")
    if cfg.get("matmul_precision"):
        torch.set_float32_matmul_precision(cfg.matmul_precision)
    L.seed_everything(cfg.seed, workers=True)

    ckpt_path = None
    tokenizer_dir = output_dir / "tokenizers"
    if cfg.ckpt_path:
        # Resuming: the checkpoint's own tokenizers, so token ids mean what they meant before.
        ckpt_path = Path(cfg.ckpt_path).expanduser().resolve()
        stored = read_checkpoint(ckpt_path, key="ckpt_path")
        tokenizer_dir.mkdir(parents=True, exist_ok=True)
        stored.src_tokenizer.save(tokenizer_dir / "src_tokenizer.json")
        stored.tgt_tokenizer.save(tokenizer_dir / "tgt_tokenizer.json")

    datamodule = make_datamodule(cfg.data, tokenizer_dir)
    datamodule.prepare_data()
    datamodule.setup("fit")

    module = TranslationModule(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        src_vocab_size=datamodule.src_tokenizer.vocab_size,
        tgt_vocab_size=datamodule.tgt_tokenizer.vocab_size,
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        decode=OmegaConf.to_container(cfg.decode, resolve=True),
        monitor=cfg.monitor,
        monitor_mode=cfg.monitor_mode,
        num_logged_samples=cfg.num_logged_samples,
    )
    module.attach_tokenizers(datamodule.src_tokenizer, datamodule.tgt_tokenizer)
    module.data_config = OmegaConf.to_container(cfg.data, resolve=True)
    parameters = sum(p.numel() for p in module.parameters() if p.requires_grad)
    log.info("model: %s trainable parameters; source vocabulary %d, target vocabulary %d",
             f"{parameters:,}", datamodule.src_tokenizer.vocab_size, datamodule.tgt_tokenizer.vocab_size)

    loggers = instantiate_list(cfg.get("logger"))
    callbacks = instantiate_list(cfg.get("callbacks"))
    if not cfg.trainer.get("enable_progress_bar", True):
        # trainer.enable_progress_bar=false wins over the progress bar in the callbacks group.
        callbacks = [callback for callback in callbacks if not isinstance(callback, ProgressBar)]
    trainer = L.Trainer(
        **OmegaConf.to_container(cfg.trainer, resolve=True),
        logger=loggers or False,
        callbacks=callbacks,
        default_root_dir=str(output_dir),
    )
    if trainer.global_rank == 0:
        log_hparams(loggers, cfg)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)

    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    if cfg.test_after_training and not trainer.interrupted:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        results = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=False)
        metrics.update({name: float(value) for name, value in (results[0] if results else {}).items()})
    log.info("outputs in %s", output_dir)
    return metrics
