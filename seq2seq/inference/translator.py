"""The Python API: load a trained model once, then translate or score with it.

    from seq2seq import Translator
    translator = Translator.from_checkpoint("logs/train/runs/<run>/checkpoints/last.ckpt", device="auto")
    results = translator.translate(["zweiundvierzig", "elf"], beam_size=5, n_best=2)
    results[0].text, results[0].score, results[0].nbest, results[0].alignment
    translator.score(["elf"], ["eleven"])[0].perplexity

``from_checkpoint`` takes one path, several (an ensemble: :mod:`seq2seq.inference.ensemble`),
``average_last=N`` (each path's folder's N newest checkpoints averaged first) and ``quantize="int8"``
(:mod:`seq2seq.inference.quantize`). The keywords of ``translate`` are the decoding options
(:class:`~seq2seq.decode_options.DecodeOptions`, with their defaults); an unknown or impossible one is a
``ValueError`` naming it.

A Translator is two objects: ``text`` (:class:`~seq2seq.inference.text_encoding.TextEncoding`, raw text to ids
as training read it) and ``decoding`` (:class:`~seq2seq.inference.decoding.Decoding`, the one decoding path,
which ``evaluate.py``, the service and validation use too). Results come back in the callers' order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

import torch

from seq2seq.data.tokenizer import TextTokenizer
from seq2seq.decode_options import DEFAULT_BATCH_SIZE, DEFAULT_MAX_TOKENS
from seq2seq.inference.decoding import Decoding
from seq2seq.inference.ensemble import COMBINE_MODES, Ensemble
from seq2seq.inference.loading import (
    DEFAULT_LENGTH_LIMIT,
    build_model,
    load_for_decoding,
    output_cap,
    resolve_device,
    same_vocabularies,
)
from seq2seq.inference.quantize import QUANTIZE_MODES, quantize_int8
from seq2seq.inference.scoring import PairScore
from seq2seq.inference.text_encoding import TextEncoding
from seq2seq.inference.text_translator import LoadedCheckpoint, TextTranslator

log = logging.getLogger(__name__)


class Translator(TextTranslator):
    """A model (or an ensemble) in eval mode on ``device``, and the tokenizers it was trained with; ``translate``
    is :meth:`TextTranslator.translate`, shared with the ONNX runtime's translator.

    ``output_cap``: the most decoding steps when ``max_length`` is None (None: no cap); ``lowercase``: inputs
    are lowercased, as the training data was; ``max_input_tokens``: raw-text sources are cut to this many tokens.
    """

    def __init__(self, model, src_tokenizer: TextTokenizer, tgt_tokenizer: TextTokenizer, device: torch.device,
                 output_cap: Optional[int] = None, lowercase: bool = False,
                 max_input_tokens: int = DEFAULT_LENGTH_LIMIT, checkpoints: Sequence[LoadedCheckpoint] = ()) -> None:
        self.text = TextEncoding(src_tokenizer, tgt_tokenizer, lowercase, max_input_tokens)
        self.decoding = Decoding(model, src_tokenizer, tgt_tokenizer, output_cap, device)
        self.device = device
        self.checkpoints = tuple(checkpoints)

    @property
    def model(self):
        return self.decoding.model

    @classmethod
    def from_checkpoint(
        cls,
        path: Union[str, Path, Sequence[Union[str, Path]]],
        *,
        device: str = "auto",
        average_last: int = 0,
        quantize: Optional[str] = None,
        ensemble_combine: str = "log_probability",
    ) -> "Translator":
        """Load ``path`` (several paths: an ensemble) for decoding on ``device`` (auto: CUDA when available)."""
        paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
        if not paths:
            raise ValueError("ckpt_path: no checkpoint given")
        if average_last < 0:
            raise ValueError(f"average_last: must be >= 0 (0 or 1: no averaging), got {average_last}")
        if quantize not in (None, *QUANTIZE_MODES):
            raise ValueError(f"quantize: must be one of {list(QUANTIZE_MODES)} or None, got {quantize!r}")
        if ensemble_combine not in COMBINE_MODES:
            raise ValueError(f"ensemble_combine: must be one of {list(COMBINE_MODES)}, got {ensemble_combine!r}")
        torch_device = resolve_device(device)
        if quantize and torch_device.type != "cpu":
            raise ValueError(f"quantize={quantize} decodes on the CPU; use device=cpu (this is {torch_device})")
        stored, loaded = [], []
        for ckpt_path in paths:
            checkpoint, averaged = load_for_decoding(ckpt_path, average_last)
            stored.append(checkpoint)
            loaded.append(LoadedCheckpoint.of(checkpoint, averaged))
        same_vocabularies(paths, stored)
        models = [build_model(checkpoint) for checkpoint in stored]
        if quantize:
            models = [quantize_int8(model) for model in models]
        model = models[0] if len(models) == 1 else Ensemble(models, ensemble_combine)
        first, data = stored[0], stored[0].data or {}
        return cls(
            model.to(torch_device).eval(), first.src_tokenizer, first.tgt_tokenizer, torch_device,
            output_cap=output_cap(first), lowercase=bool(data.get("lowercase", False)),
            max_input_tokens=int(data.get("max_src_length") or DEFAULT_LENGTH_LIMIT), checkpoints=loaded,
        )

    def score(self, sources: Sequence[str], targets: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE,
              max_tokens: Optional[int] = DEFAULT_MAX_TOKENS) -> list[PairScore]:
        """Each pair's log-probability under the model (teacher forcing), in order; see :mod:`.scoring`."""
        if len(sources) != len(targets):
            raise ValueError(f"score: {len(sources)} sources but {len(targets)} targets")
        return self.decoding.score_ids(self.text.sources(sources, "score"), self.text.targets(targets),
                                       batch_size=batch_size, max_tokens=max_tokens)
