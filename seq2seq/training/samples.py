"""What the loggers show of a few fixed validation sentences after each validation: their attention maps and a table
of source, reference and translation (greedy search, through the module's decoding path).

Every logger that takes images and text gets them (TensorBoard, wandb, MLflow: ``logger_media.py``); for each one
that cannot (CSV), the run says so once, as training starts.
"""

from __future__ import annotations

import dataclasses
import logging

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.callbacks import Callback

from seq2seq.inference.figures import attention_figure, close_figure
from seq2seq.training.logger_media import no_media_notes, takers

log = logging.getLogger(__name__)


class ValidationSamples(Callback):
    def __init__(self, count: int = 4) -> None:
        self.count = count

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0 or self.count <= 0:
            return
        for note in no_media_notes(trainer.loggers):
            log.info(note)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.global_rank != 0 or self.count <= 0:
            return
        media = takers(trainer.loggers)
        if not media:
            return
        datamodule = trainer.datamodule
        count = min(self.count, len(datamodule.references("val")))
        if count == 0:
            return
        batch = move_data_to_device(datamodule.batch("val", list(range(count))), pl_module.device)
        decoding = pl_module.decoding
        with torch.inference_mode():
            hypotheses = decoding.search(batch.src, batch.src_lengths,
                                         dataclasses.replace(pl_module.decode_options, beam_size=1, n_best=1,
                                                             sampling="none"))
        sources, references = datamodule.sources("val"), datamodule.references("val")
        step = trainer.global_step
        rows = []
        for row, index in enumerate(batch.indices.tolist()):
            length = int(batch.src_lengths[row])
            src_tokens = [decoding.src_tokenizer.id_to_token(i) for i in batch.src[row, :length].tolist()]
            out_tokens = [decoding.tgt_tokenizer.id_to_token(i) for i in hypotheses.tokens[row]] + ["<eos>"]
            figure = attention_figure(hypotheses.attention[row], src_tokens, out_tokens)
            try:
                for logger in media:
                    logger.log_figure(f"attention/val_{index}", figure, step)
            finally:
                close_figure(figure)
            rows.append((sources[index], references[index], decoding.tgt_tokenizer.decode(hypotheses.tokens[row])))
        for logger in media:
            logger.log_samples("samples/val", rows, step)
