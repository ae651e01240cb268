"""The one decoding path: :class:`Decoding` owns a model and turns token ids into translations.

Validation during training, ``evaluate.py``, the :class:`~seq2seq.inference.translator.Translator` and the
translation service all decode through a ``Decoding`` (each over its own model): the same search, with the
same options (:class:`~seq2seq.decode_options.DecodeOptions`), the same output cap and the same results.
Sentences are grouped by length (:mod:`seq2seq.inference.length_batches`), searched
(:func:`seq2seq.inference.search.search`), and every result goes back to its input's position. Scoring
given targets (teacher forcing) goes through the same object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Optional

import torch
from torch import Tensor

from seq2seq.data.collate import collate
from seq2seq.data.tokenizer import TextTokenizer
from seq2seq.decode_options import DecodeOptions
from seq2seq.inference.length_batches import decode_in_batches, length_batches
from seq2seq.inference.scoring import PairScore, target_log_probs
from seq2seq.inference.search import Hypotheses, Prefix, search
from seq2seq.inference.translation import EMPTY, Translation, make_translation

log = logging.getLogger(__name__)


class Decoding:
    """A model (a :class:`~seq2seq.models.Seq2Seq` or an ensemble; the caller puts it in eval mode), the target
    tokenizers it reads and writes, and ``output_cap``: the most steps a search takes when
    ``options.max_length`` is None (a checkpoint's cap; None: no cap). Tensors go to ``device``; None: to
    wherever the model's parameters are (a training module that Lightning moves)."""

    def __init__(self, model, src_tokenizer: TextTokenizer, tgt_tokenizer: TextTokenizer,
                 output_cap: Optional[int] = None, device: Optional[torch.device] = None) -> None:
        self.model = model
        self.src_tokenizer = src_tokenizer
        self.tgt_tokenizer = tgt_tokenizer
        self.output_cap = output_cap
        self._device = device

    @property
    def device(self) -> torch.device:
        if self._device is not None:
            return self._device
        return next(self.model.parameters()).device

    def supported(self, options: DecodeOptions) -> DecodeOptions:
        """``options``: this runtime does all that DecodeOptions allows (the ONNX one refuses sampling)."""
        return options

    def capped(self, options: DecodeOptions) -> DecodeOptions:
        """``options`` with ``max_length`` filled in from the output cap when it is None."""
        return options.capped(self.output_cap)

    def generator(self, options: DecodeOptions) -> Optional[torch.Generator]:
        """Sampling's random draws: seeded by ``options.seed`` (the same seed, the same draws), else fresh."""
        if options.sampling == "none":
            return None
        generator = torch.Generator(device=self.device)
        if options.seed is None:
            generator.seed()
        else:
            generator.manual_seed(options.seed)
        return generator

    # ------------------------------------------------------------------------------------------ search
    def search(self, src: Tensor, src_lengths: Tensor, options: DecodeOptions, prefix: Optional[Prefix] = None,
               generator: Optional[torch.Generator] = None) -> Hypotheses:
        """One padded batch, src (B, S) and src_lengths (B,) on the model's device, searched as ``options`` say."""
        if generator is None:
            generator = self.generator(options)
        return search(self.model, src, src_lengths, self.capped(options), prefix, generator)

    def texts(self, hypotheses: Hypotheses) -> list[str]:
        """The best hypothesis of each sentence as text."""
        return [self.tgt_tokenizer.decode(tokens) for tokens in hypotheses.tokens]

    def translate_ids(
        self,
        src_ids: Sequence[list[int]],
        options: DecodeOptions,
        *,
        batch_size: int,
        max_tokens: Optional[int],
        prefixes: Optional[Sequence[list[int]]] = None,
        on_batch: Optional[Callable[[int], None]] = None,
    ) -> list[Translation]:
        """Translations of ``src_ids`` in their order; an empty id list gives an empty translation.

        ``prefixes``: forced output starts, as id lists. Batches of at most ``batch_size`` sentences and
        ``max_tokens`` padded source positions; ``on_batch(n)`` is called after each batch of n sentences.
        """
        device, generator = self.device, self.generator(options)  # one generator: draws go on across batches

        def decode_batch(chunk: list[int], src, src_lengths) -> list[Translation]:
            prefix = None
            if prefixes is not None and any(prefixes[i] for i in chunk):
                prefix = Prefix.from_lists([prefixes[i] for i in chunk], device)
            hypotheses = self.search(torch.from_numpy(src).to(device), torch.from_numpy(src_lengths).to(device),
                                     options, prefix, generator)
            return [self.translation(hypotheses, row, src_ids[index]) for row, index in enumerate(chunk)]

        return decode_in_batches(src_ids, batch_size, max_tokens, decode_batch, EMPTY, on_batch)

    def translation(self, hypotheses: Hypotheses, row: int, src_ids: list[int]) -> Translation:
        """Sentence ``row`` of a searched batch as a :class:`Translation` (``src_ids``: its source)."""
        attention = hypotheses.attention[row].float().tolist()  # (output pieces, eos included when it ended; source)
        return make_translation(hypotheses.tokens[row], hypotheses.scores[row], hypotheses.nbest[row], attention,
                                src_ids, self.src_tokenizer, self.tgt_tokenizer)

    # ------------------------------------------------------------------------------------------ scoring
    def score_ids(self, src_ids: Sequence[list[int]], tgt_ids: Sequence[list[int]], *, batch_size: int,
                  max_tokens: Optional[int]) -> list[PairScore]:
        """Teacher-forced scores of (source, target) id lists, in order, in length-sorted batches."""
        for index, src in enumerate(src_ids):
            if not src:
                raise ValueError(f"score: pair {index + 1} has an empty source, which the model cannot score")
        lengths = [max(len(src), len(tgt) + 1) for src, tgt in zip(src_ids, tgt_ids)]
        results: list[Optional[PairScore]] = [None] * len(src_ids)
        device = self.device
        for chunk in length_batches(lengths, batch_size, max_tokens):
            batch = collate([(i, src_ids[i], tgt_ids[i]) for i in chunk]).to(device)
            sums, counts = target_log_probs(self.model, batch)
            for index, total, count in zip(chunk, sums.tolist(), counts.tolist()):
                results[index] = PairScore(total, int(count))
        return results  # type: ignore[return-value]
