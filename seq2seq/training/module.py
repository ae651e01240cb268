"""The LightningModule: the loss, the training, validation and test steps and their metrics, the optimizer.

It composes a plain :class:`~seq2seq.models.Seq2Seq` from primitive hyperparameters (so a checkpoint can
rebuild the network without Hydra) and carries the source and target tokenizers, stored in every
checkpoint (:func:`seq2seq.checkpoint.write_payload`), so that a checkpoint alone is enough to translate.
Validation decodes through the same :class:`~seq2seq.inference.decoding.Decoding` as ``evaluate.py`` and the
translator. The rest of training lives beside it, one concern each: updates that would not be finite and
gradient clipping (``nonfinite.py``), dropout seeding (``dropout_seeding.py``), TensorBoard figures
(``samples.py``), learning-rate schedules (``schedulers.py``).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import lightning as L
import torch
from torch import Tensor

from seq2seq.checkpoint import CHECKPOINT_KEY, stored_tokenizers, write_payload
from seq2seq.data.collate import Batch
from seq2seq.data.tokenizer import PAD_ID, TextTokenizer
from seq2seq.decode_options import DecodeOptions
from seq2seq.inference.decoding import Decoding
from seq2seq.inference.metrics import score_translations
from seq2seq.models import Seq2Seq
from seq2seq.training.schedulers import make_optimizer

VALIDATION_METRICS_KEY = "seq2seq_validation_metrics"


def smoothed_nll(log_probs: Tensor, targets: Tensor, label_smoothing: float) -> Tensor:
    """Summed cross-entropy of (N, V) log-probabilities against (N,) targets, with label smoothing ``eps``:
    ``(1 - eps) * -log p(target) + eps * mean over the vocabulary of -log p(v)`` per token, as
    ``torch.nn.functional.cross_entropy(label_smoothing=eps)`` defines it."""
    nll = -log_probs.gather(1, targets.unsqueeze(1)).sum()
    if not label_smoothing:
        return nll
    return (1.0 - label_smoothing) * nll - label_smoothing * log_probs.sum() / log_probs.size(-1)


class TranslationModule(L.LightningModule):
    def __init__(
        self,
        model: dict[str, Any],
        src_vocab_size: int,
        tgt_vocab_size: int,
        optim: dict[str, Any],
        decode: dict[str, Any],
        monitor: str = "val/bleu",
        monitor_mode: str = "max",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # train() logs the whole config to the HParams view
        self.model = Seq2Seq(src_vocab_size, tgt_vocab_size, **model)
        self.decode_options = DecodeOptions.from_mapping(decode, key="decode")  # validation's and test's search
        self.src_tokenizer: Optional[TextTokenizer] = None
        self.tgt_tokenizer: Optional[TextTokenizer] = None
        self.decoding: Optional[Decoding] = None  # once the tokenizers are attached
        # The data settings the model was trained with (plain values), stored in checkpoints so that
        # evaluation finds the same files and split names without being told.
        self.data_config: Optional[dict[str, Any]] = None
        self._eval_loss_sum = 0.0
        self._eval_tokens = 0
        self._eval_hypotheses: dict[int, str] = {}

    def attach_tokenizers(self, src_tokenizer: TextTokenizer, tgt_tokenizer: TextTokenizer) -> None:
        for name, tokenizer, vocab_size in (
            ("source", src_tokenizer, self.hparams.src_vocab_size),
            ("target", tgt_tokenizer, self.hparams.tgt_vocab_size),
        ):
            if tokenizer.vocab_size != vocab_size:
                raise ValueError(
                    f"the {name} tokenizer has {tokenizer.vocab_size} tokens but the model was built for {vocab_size}"
                )
        if self.hparams.model.get("share_embeddings") and src_tokenizer != tgt_tokenizer:
            raise ValueError("model.share_embeddings: the source and target tokenizers differ, so one embedding "
                             "table cannot serve both; set data.share_vocab=true")
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer
        # No fixed device: the model's parameters say where it is (Lightning moves it).
        self.decoding = Decoding(self.model, src_tokenizer, tgt_tokenizer)

    # ----------------------------------------------------------------------------------------- steps
    def loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Summed token cross-entropy over real target tokens (with ``optim.label_smoothing``), and how many there
        are; from the model's one teacher-forced function, as scoring's."""
        real = batch.tgt_out != PAD_ID  # (B, T)
        log_probs = self.model.target_log_probs(batch.src, batch.src_lengths, batch.tgt_in, real)  # (N, V)
        return smoothed_nll(log_probs, batch.tgt_out[real], self.hparams.optim["label_smoothing"]), real.sum()

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss_sum, num_tokens = self.loss(batch)
        loss = loss_sum / num_tokens  # averaged per target token: what is logged
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        self.log("train/ppl", torch.exp(loss.detach()), batch_size=len(batch))
        if self.hparams.optim.get("loss_normalization", "tokens") == "sentences":
            return loss_sum / len(batch)  # every target token of the run weighs the same (OpenNMT-py's default)
        return loss  # every batch weighs the same

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Nothing here: :class:`~seq2seq.training.nonfinite.NonFiniteUpdates` clips, in the same pass that
        measures the gradients' norm for its own decision (one pass over the gradients, not two)."""

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self.evaluation_step(batch)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self.evaluation_step(batch)

    def on_validation_epoch_start(self) -> None:
        self.reset_evaluation()

    def on_test_epoch_start(self) -> None:
        self.reset_evaluation()

    def on_validation_epoch_end(self) -> None:
        self.evaluation_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self.evaluation_epoch_end("test")

    def reset_evaluation(self) -> None:
        self._eval_loss_sum, self._eval_tokens, self._eval_hypotheses = 0.0, 0, {}

    def evaluation_step(self, batch: Batch) -> None:
        """Teacher-forced loss, and every sentence translated as ``decode.*`` says (greedy by default)."""
        loss_sum, num_tokens = self.loss(batch)
        self._eval_loss_sum += float(loss_sum)
        self._eval_tokens += int(num_tokens)
        hypotheses = self.decoding.search(batch.src, batch.src_lengths, self.decode_options)
        for index, text in zip(batch.indices.tolist(), self.decoding.texts(hypotheses)):
            self._eval_hypotheses[index] = text

    def evaluation_epoch_end(self, stage: str) -> None:
        if not self._eval_hypotheses:
            return
        references = self.trainer.datamodule.reference_sets(stage)  # several per sentence where the split has them
        indices = sorted(self._eval_hypotheses)
        hypotheses = [self._eval_hypotheses[i] for i in indices]
        scores = score_translations(hypotheses, [references[i] for i in indices])
        loss = self._eval_loss_sum / max(self._eval_tokens, 1)
        # Every rank decodes the whole split, so the values agree across ranks and need no syncing.
        values = {
            f"{stage}/loss": loss,
            f"{stage}/ppl": math.exp(min(loss, 50.0)),
            f"{stage}/bleu": scores.bleu,
            f"{stage}/chrf": scores.chrf,
            f"{stage}/chrf_pp": scores.chrf_pp,
            f"{stage}/ter": scores.ter,
            f"{stage}/exact_match": scores.exact_match,
            f"{stage}/wer": scores.wer,
            f"{stage}/cer": scores.cer,
        }
        # The progress bar shows BLEU and the monitored metric (val/wer, say, for a symbol task).
        shown = {f"{stage}/bleu", self.hparams.monitor}
        self.log_dict({name: value for name, value in values.items() if name not in shown})
        self.log_dict({name: value for name, value in values.items() if name in shown}, prog_bar=True)

    # ----------------------------------------------------------------------------- optimizers
    def configure_optimizers(self):
        return make_optimizer(list(self.parameters()), self.hparams.optim, self._trainer, self.hparams.monitor,
                              self.hparams.monitor_mode)

    def on_train_start(self) -> None:
        # Resuming: the checkpoint's validation metrics, for the plateau update of the validation it was written in.
        restored = getattr(self, "_restored_validation_metrics", None) or {}
        for name, value in restored.items():
            self.trainer.callback_metrics.setdefault(name, torch.tensor(value))
        self._restored_validation_metrics = {}

    # ---------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        write_payload(checkpoint, self.src_tokenizer, self.tgt_tokenizer, self.data_config)
        # The latest validation's metrics. Lightning writes a checkpoint during validation but updates a plateau
        # schedule only after it; a run resumed from that checkpoint makes that update when it restarts, and
        # needs the monitored value for it (see on_train_start).
        metrics = self._trainer.callback_metrics if self._trainer is not None else {}
        checkpoint[VALIDATION_METRICS_KEY] = {
            name: float(value) for name, value in metrics.items() if name.startswith("val/")
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._restored_validation_metrics = dict(checkpoint.get(VALIDATION_METRICS_KEY) or {})
        self.data_config = (checkpoint.get(CHECKPOINT_KEY) or {}).get("data") or self.data_config
        tokenizers = stored_tokenizers(checkpoint)
        if tokenizers is not None:
            self.attach_tokenizers(*tokenizers)
