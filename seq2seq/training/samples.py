"""What TensorBoard shows of a few fixed validation sentences after each validation: their attention maps and a
table of source, reference and translation (greedy search, through the module's decoding path).

Loggers without figures (anything but TensorBoard) are skipped, saying so once in the log.
"""

from __future__ import annotations

import dataclasses
import logging

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.callbacks import Callback

from seq2seq.inference.figures import attention_figure, samples_table

log = logging.getLogger(__name__)


class ValidationSamples(Callback):
    def __init__(self, count: int = 4) -> None:
        self.count = count
        self._said_why = False

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.global_rank != 0 or self.count <= 0:
            return
        experiment = getattr(pl_module.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_figure"):
            if not self._said_why and pl_module.logger is not None:
                log.info("attention maps and sample translations are logged to TensorBoard only; %s has no figures",
                         type(pl_module.logger).__name__)
                self._said_why = True
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
        rows = []
        for row, index in enumerate(batch.indices.tolist()):
            length = int(batch.src_lengths[row])
            src_tokens = [decoding.src_tokenizer.id_to_token(i) for i in batch.src[row, :length].tolist()]
            out_tokens = [decoding.tgt_tokenizer.id_to_token(i) for i in hypotheses.tokens[row]] + ["<eos>"]
            figure = attention_figure(hypotheses.attention[row], src_tokens, out_tokens)
            experiment.add_figure(f"attention/val_{index}", figure, global_step=trainer.global_step)
            rows.append((sources[index], references[index], decoding.tgt_tokenizer.decode(hypotheses.tokens[row])))
        experiment.add_text("samples/val", samples_table(rows), global_step=trainer.global_step)
