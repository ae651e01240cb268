"""The LightningModule: training and validation steps, metrics, TensorBoard logging, optimizers.

It composes a plain :class:`~seq2seq.models.Seq2Seq` from primitive hyperparameters (so a checkpoint can
rebuild the network without Hydra) and carries the source and target tokenizers, stored in every
checkpoint as JSON text, so that a checkpoint alone is enough to translate.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional

import lightning as L
import torch
import torch.nn.functional as F
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor

from seq2seq.checkpoint import CHECKPOINT_FORMAT_VERSION, CHECKPOINT_KEY
from seq2seq.data.collate import Batch
from seq2seq.data.tokenizer import PAD_ID, TextTokenizer
from seq2seq.inference.figures import attention_figure, samples_table
from seq2seq.inference.metrics import score_translations
from seq2seq.inference.search import beam_search, greedy_search
from seq2seq.models import Seq2Seq

VALIDATION_METRICS_KEY = "seq2seq_validation_metrics"
DEFAULT_MAX_NONFINITE_IN_A_ROW = 5

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss was NaN or infinite for ``optim.max_nonfinite_in_a_row`` batches in a row."""


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
        num_logged_samples: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # train() logs the whole config to the HParams view
        self.model = Seq2Seq(src_vocab_size, tgt_vocab_size, **model)
        self.src_tokenizer: Optional[TextTokenizer] = None
        self.tgt_tokenizer: Optional[TextTokenizer] = None
        # The data settings the model was trained with (plain values), stored in checkpoints so that
        # evaluation finds the same files and split names without being told.
        self.data_config: Optional[dict[str, Any]] = None
        self._eval_loss_sum = 0.0
        self._eval_tokens = 0
        self._eval_hypotheses: dict[int, str] = {}
        self._nonfinite_in_a_row = 0
        self._nonfinite_total = 0
        self._skip_update = False
        self._base_seed = 0

    def attach_tokenizers(self, src_tokenizer: TextTokenizer, tgt_tokenizer: TextTokenizer) -> None:
        for name, tokenizer, vocab_size in (
            ("source", src_tokenizer, self.hparams.src_vocab_size),
            ("target", tgt_tokenizer, self.hparams.tgt_vocab_size),
        ):
            if tokenizer.vocab_size != vocab_size:
                raise ValueError(
                    f"the {name} tokenizer has {tokenizer.vocab_size} tokens but the model was built for {vocab_size}"
                )
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer

    # ----------------------------------------------------------------------------------------- steps
    def loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Summed token cross-entropy over real target tokens, and how many there are.

        The output layer (the largest matrix product of a step) runs only on real target positions: padded
        positions would be ignored by the loss anyway.
        """
        outputs = self.model.decode(batch.src, batch.src_lengths, batch.tgt_in).outputs  # (B, T, H)
        real = batch.tgt_out != PAD_ID  # (B, T)
        logits = self.model.output_layer(outputs[real])  # (N, V), N real target tokens
        loss_sum = F.cross_entropy(
            logits.to(torch.promote_types(logits.dtype, torch.float32)),  # fp32 softmax under mixed precision
            batch.tgt_out[real],  # (N,)
            label_smoothing=self.hparams.optim["label_smoothing"],
            reduction="sum",
        )
        return loss_sum, real.sum()

    def training_step(self, batch: Batch, batch_idx: int) -> Optional[Tensor]:
        loss_sum, num_tokens = self.loss(batch)
        loss = loss_sum / num_tokens  # averaged per target token: what is logged
        if self.hparams.optim.get("loss_normalization", "tokens") == "sentences":
            objective = loss_sum / len(batch)  # every target token of the run weighs the same (OpenNMT-py's default)
        else:
            objective = loss  # every batch weighs the same
        if self._is_nonfinite(loss, batch_idx):
            # Skip the update: with one process Lightning skips backward and step for None; DDP needs every rank
            # to run backward, so there a zero loss over all parameters, whose gradients are then dropped.
            self._skip_update = True
            if self.trainer.world_size == 1:
                return None
            return sum(parameter.sum() for parameter in self.parameters() if parameter.requires_grad) * 0.0
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        self.log("train/ppl", torch.exp(loss.detach()), batch_size=len(batch))
        return objective

    def _is_nonfinite(self, loss: Tensor, batch_idx: int) -> bool:
        """Whether this batch's loss is NaN or infinite (on any rank: all ranks skip together), warning and counting
        if so; raises NonFiniteLossError after ``optim.max_nonfinite_in_a_row`` such batches in a row."""
        here = not bool(torch.isfinite(loss.detach()))
        nonfinite = here
        if self.trainer.world_size > 1:
            nonfinite = self.trainer.strategy.reduce_boolean_decision(here, all=False)
        if nonfinite:
            self._nonfinite_in_a_row += 1
            self._nonfinite_total += 1
        else:
            self._nonfinite_in_a_row = 0
        self.log("train/skipped_nonfinite", float(self._nonfinite_total), on_step=True, on_epoch=False)
        if not nonfinite:
            return False
        limit = self.hparams.optim.get("max_nonfinite_in_a_row", DEFAULT_MAX_NONFINITE_IN_A_ROW)
        where = f"batch {batch_idx} of epoch {self.current_epoch} (global step {self.global_step})"
        log.warning(
            "non-finite training loss (%s) at %s: update skipped (%d in a row, %d in total; training stops at %d in "
            "a row, optim.max_nonfinite_in_a_row)",
            float(loss.detach()) if here else "on another rank", where, self._nonfinite_in_a_row, self._nonfinite_total,
            limit,
        )
        if self._nonfinite_in_a_row >= limit:
            raise NonFiniteLossError(
                f"training stopped: the loss was NaN or infinite for {self._nonfinite_in_a_row} batches in a row "
                f"(optim.max_nonfinite_in_a_row={limit}), the last at {where}. None of them changed the weights, so "
                f"the checkpoints hold the weights from before; lower optim.lr, set trainer.gradient_clip_val, or "
                f"check the data"
            )
        return True

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self._skip_update:
            # Gradients set to None: the optimizer leaves those parameters and their state (moments) untouched.
            optimizer.zero_grad(set_to_none=True)
            self._skip_update = False

    def on_fit_start(self) -> None:
        self._base_seed = torch.initial_seed()  # train() seeded everything with cfg.seed just before

    def on_train_start(self) -> None:
        # Resuming: the checkpoint's validation metrics, for the plateau update of the validation it was written in.
        restored = getattr(self, "_restored_validation_metrics", None) or {}
        for name, value in restored.items():
            self.trainer.callback_metrics.setdefault(name, torch.tensor(value))
        self._restored_validation_metrics = {}

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        # Dropout draws from the global generator. Seeding it from where training is (step, micro-batch of an
        # accumulated step, rank) makes every batch's dropout masks a function of that place alone, so a run
        # resumed from a checkpoint draws exactly the masks the uninterrupted run drew (checkpoints do not hold
        # generator states, and the data loader draws from the generator when an epoch begins).
        micro_batch = batch_idx % self.trainer.accumulate_grad_batches
        place = (self._base_seed, self.trainer.global_step, micro_batch, self.global_rank)
        torch.manual_seed(hash(place) % 2**63)  # hash() of a tuple of ints is the same in every process

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        # One pass over the gradients both clips and measures their norm (before clipping).
        max_norm = gradient_clip_val if gradient_clip_val else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.parameters(), max_norm)
        if not torch.isfinite(grad_norm):
            # A finite loss can still overflow in backward; an update with inf/NaN gradients would ruin
            # the weights. Dropping the gradients makes the optimizer skip every parameter this step.
            log.warning("gradient norm is %s at global step %d: this update is skipped", float(grad_norm),
                        self.global_step)
            for parameter in self.parameters():
                parameter.grad = None
        self.log("train/grad_norm", grad_norm, on_step=True, on_epoch=False)

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
        if not self.trainer.sanity_checking:
            self.log_samples(self.trainer.datamodule)

    def on_test_epoch_end(self) -> None:
        self.evaluation_epoch_end("test")

    def reset_evaluation(self) -> None:
        self._eval_loss_sum, self._eval_tokens, self._eval_hypotheses = 0.0, 0, {}

    def evaluation_step(self, batch: Batch) -> None:
        """Teacher-forced loss, and a greedy translation of every sentence for BLEU."""
        loss_sum, num_tokens = self.loss(batch)
        self._eval_loss_sum += float(loss_sum)
        self._eval_tokens += int(num_tokens)
        for index, text in zip(batch.indices.tolist(), self.translate_batch(batch.src, batch.src_lengths)):
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
            f"{stage}/exact_match": scores.exact_match,
            f"{stage}/wer": scores.wer,
            f"{stage}/cer": scores.cer,
        }
        # The progress bar shows BLEU and the monitored metric (val/wer, say, for a symbol task).
        shown = {f"{stage}/bleu", self.hparams.monitor}
        self.log_dict({name: value for name, value in values.items() if name not in shown})
        self.log_dict({name: value for name, value in values.items() if name in shown}, prog_bar=True)

    # ------------------------------------------------------------------------------------- decoding
    @torch.inference_mode()
    def translate_batch(self, src: Tensor, src_lengths: Tensor) -> list[str]:
        hypotheses = self.search(src, src_lengths)
        return [self.tgt_tokenizer.decode(tokens) for tokens in hypotheses.tokens]

    def _length_limits(self) -> dict[str, Any]:
        settings = self.hparams.decode
        return dict(
            max_length_ratio=settings["max_length_ratio"],
            max_length_constant=settings["max_length_constant"],
            max_length=settings["max_length"],
        )

    def search(self, src: Tensor, src_lengths: Tensor, beam_size: Optional[int] = None):
        settings = self.hparams.decode
        beam_size = beam_size or settings["beam_size"]
        limits = self._length_limits()
        if beam_size == 1:
            return greedy_search(self.model, src, src_lengths, **limits)
        return beam_search(
            self.model, src, src_lengths, beam_size=beam_size, length_penalty=settings["length_penalty"], **limits
        )

    def log_samples(self, datamodule) -> None:
        """Attention maps and a table of translations for a few fixed validation sentences."""
        experiment = getattr(self.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_figure") or self.global_rank != 0:
            return
        count = min(self.hparams.num_logged_samples, len(datamodule.references("val")))
        if count == 0:
            return
        batch = move_data_to_device(datamodule.batch("val", list(range(count))), self.device)
        with torch.inference_mode():
            hypotheses = greedy_search(self.model, batch.src, batch.src_lengths, **self._length_limits())
        sources, references = datamodule.sources("val"), datamodule.references("val")
        rows = []
        for row, index in enumerate(batch.indices.tolist()):
            length = int(batch.src_lengths[row])
            src_tokens = [self.src_tokenizer.id_to_token(i) for i in batch.src[row, :length].tolist()]
            out_tokens = [self.tgt_tokenizer.id_to_token(i) for i in hypotheses.tokens[row]] + ["<eos>"]
            figure = attention_figure(hypotheses.attention[row], src_tokens, out_tokens)
            experiment.add_figure(f"attention/val_{index}", figure, global_step=self.global_step)
            rows.append((sources[index], references[index], self.tgt_tokenizer.decode(hypotheses.tokens[row])))
        experiment.add_text("samples/val", samples_table(rows), global_step=self.global_step)

    # ----------------------------------------------------------------------------- optimizers
    def _plateau_timing(self) -> dict[str, Any]:
        """When the plateau scheduler looks at the monitored metric: after every validation.

        By default validation ends each epoch. With ``trainer.val_check_interval=N`` (steps) it runs every N steps
        of an epoch instead, and Lightning then updates a step-interval plateau scheduler right after the
        validation of every N-th step of the epoch — the same steps, so each validation counts once towards
        ``optim.plateau_patience``. (Not with ``check_val_every_n_epoch`` other than 1: epochs without validation
        would count the last one again.)
        """
        trainer = self._trainer
        every = getattr(trainer, "val_check_interval", None) if trainer is not None else None
        if isinstance(every, int) and getattr(trainer, "check_val_every_n_epoch", None) == 1:
            return {"interval": "step", "frequency": every}
        return {"interval": "epoch"}

    def configure_optimizers(self):
        settings = self.hparams.optim
        optimizer_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[settings["optimizer"]]
        # The fused kernel updates every parameter in one pass (CPU and CUDA); on this model's 14.7 M
        # parameters it takes a quarter of the time of the default per-parameter loop (benchmarks/README.md).
        fused = all(parameter.device.type in ("cpu", "cuda") for parameter in self.parameters())
        optimizer = optimizer_class(
            self.parameters(),
            lr=settings["lr"],
            betas=tuple(settings["betas"]),
            weight_decay=settings["weight_decay"],
            fused=fused,
        )
        scheduler = settings["scheduler"]
        if scheduler == "none":
            return optimizer
        if scheduler == "plateau":
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode=self.hparams.monitor_mode,
                factor=settings["plateau_factor"],
                patience=settings["plateau_patience"],
                min_lr=settings["min_lr"],
            )
            return {
                "optimizer": optimizer,
                # Not strict: an epoch that ends before the run's first validation leaves the rate as it is.
                "lr_scheduler": {"scheduler": plateau, "monitor": self.hparams.monitor, "strict": False,
                                 **self._plateau_timing()},
            }
        warmup = max(settings["warmup_steps"], 0)
        if scheduler == "inverse_sqrt":

            def factor(step: int) -> float:
                step = step + 1
                if warmup and step < warmup:
                    return step / warmup
                return math.sqrt(max(warmup, 1) / step)

        else:  # cosine
            total = max(int(self.trainer.estimated_stepping_batches), 1)
            floor = settings["min_lr"] / settings["lr"]

            def factor(step: int) -> float:
                if warmup and step < warmup:
                    return (step + 1) / warmup
                progress = min((step - warmup) / max(total - warmup, 1), 1.0)
                return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        lambda_lr = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": lambda_lr, "interval": "step"}}

    # ---------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "src_tokenizer": self.src_tokenizer.to_json() if self.src_tokenizer else None,
            "tgt_tokenizer": self.tgt_tokenizer.to_json() if self.tgt_tokenizer else None,
            "data": self.data_config,
        }
        # The latest validation's metrics. Lightning writes a checkpoint during validation but updates a plateau
        # schedule only after it; a run resumed from that checkpoint makes that update when it restarts, and
        # needs the monitored value for it (see on_train_start).
        metrics = self._trainer.callback_metrics if self._trainer is not None else {}
        checkpoint[VALIDATION_METRICS_KEY] = {
            name: float(value) for name, value in metrics.items() if name.startswith("val/")
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._restored_validation_metrics = dict(checkpoint.get(VALIDATION_METRICS_KEY) or {})
        stored = checkpoint.get(CHECKPOINT_KEY) or {}
        self.data_config = stored.get("data") or self.data_config
        if stored.get("src_tokenizer") and stored.get("tgt_tokenizer"):
            self.attach_tokenizers(
                TextTokenizer.from_json(stored["src_tokenizer"]), TextTokenizer.from_json(stored["tgt_tokenizer"])
            )
