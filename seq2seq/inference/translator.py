"""The Python API: load a trained model once, then translate or score with it.

    from seq2seq import Translator
    translator = Translator.from_checkpoint("logs/train/runs/<run>/checkpoints/last.ckpt", device="auto")
    results = translator.translate(["zweiundvierzig", "elf"], beam_size=5, n_best=2)
    results[0].text, results[0].score, results[0].nbest, results[0].alignment
    translator.score(["elf"], ["eleven"])[0].perplexity

``from_checkpoint`` takes one path, several (an ensemble: :mod:`seq2seq.inference.ensemble`),
``average_last=N`` (each path's folder's N newest checkpoints averaged first) and ``quantize="int8"``
(:mod:`seq2seq.inference.quantize`). Every decoding option of ``translate`` is a keyword with
``evaluate.py``'s default (:class:`DecodeOptions`); an unknown or impossible one is a ``ValueError`` naming
it. ``evaluate.py`` and the translation service decode through :func:`translate_ids`, as ``translate``
does: there is one decoding path.

Results come back in the callers' order (:mod:`seq2seq.inference.decoding`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional, Union

import torch

from seq2seq.checkpoint import StoredCheckpoint
from seq2seq.config_checks import check_decode
from seq2seq.data.tokenizer import TextTokenizer
from seq2seq.inference.decoding import Translation, encode_lines, score_ids, translate_lines, warn_truncated
from seq2seq.inference.ensemble import COMBINE_MODES, Ensemble
from seq2seq.inference.loading import (
    DEFAULT_MAX_TOKENS,
    build_model,
    load_for_decoding,
    output_cap,
    resolve_device,
    same_vocabularies,
)
from seq2seq.inference.quantize import QUANTIZE_MODES, quantize_int8
from seq2seq.inference.scoring import PairScore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeOptions:
    """Every decoding setting, with ``evaluate.py``'s defaults (``decode.*``, ``batch_size``, ``max_tokens``)."""

    beam_size: int = 5  # 1: greedy search
    length_penalty: float = 1.0  # GNMT's alpha; 0: none
    n_best: int = 1
    max_length_ratio: float = 1.5  # at most ratio * source length + constant output tokens ...
    max_length_constant: int = 10
    max_length: Optional[int] = None  # ... and at most this many; None: the checkpoint's cap
    sampling: str = "none"  # none | topk | topp (with beam_size 1)
    top_k: int = 10
    top_p: float = 0.9
    temperature: float = 1.0
    seed: Optional[int] = None  # sampling: the same seed gives the same samples; None: fresh ones
    batch_size: int = 64  # sentences per batch ...
    max_tokens: Optional[int] = 20000  # ... and padded source positions per batch

    @classmethod
    def from_mapping(cls, options: Mapping) -> "DecodeOptions":
        """Options by name (defaults for the missing ones); ValueError naming an unknown or impossible one."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown decoding option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        decoded = cls(**options)
        decoded.check()
        return decoded

    def check(self) -> None:
        check_decode(asdict(self), key="")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be at least 1, got {self.batch_size}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens: must be at least 1 or None, got {self.max_tokens}")


@dataclass(frozen=True)
class LoadedCheckpoint:
    """What a translator was loaded from: the file, its step, its data settings, the files averaged into it."""

    path: Path
    global_step: int
    epoch: int
    data: Optional[dict]
    averaged: tuple[Path, ...] = ()

    @staticmethod
    def of(stored: StoredCheckpoint, averaged: Sequence[Path] = ()) -> "LoadedCheckpoint":
        return LoadedCheckpoint(stored.path, stored.global_step, stored.epoch, stored.data, tuple(averaged))


@dataclass
class Translator:
    """A model (or an ensemble) in eval mode on ``device``, and the tokenizers it was trained with."""

    model: object
    src_tokenizer: TextTokenizer
    tgt_tokenizer: TextTokenizer
    device: torch.device
    output_cap: Optional[int] = None  # most decoding steps when max_length is None (None: no cap)
    lowercase: bool = False  # lowercase inputs, as the training data was
    max_input_tokens: int = DEFAULT_MAX_TOKENS  # raw-text inputs are cut to this many source tokens
    checkpoints: tuple[LoadedCheckpoint, ...] = ()

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
            max_input_tokens=int(data.get("max_src_length") or DEFAULT_MAX_TOKENS), checkpoints=tuple(loaded),
        )

    def translate(
        self,
        sources: Union[str, Sequence[str]],
        *,
        prefixes: Optional[Sequence[str]] = None,
        beam_size: int = 5,
        length_penalty: float = 1.0,
        n_best: int = 1,
        max_length_ratio: float = 1.5,
        max_length_constant: int = 10,
        max_length: Optional[int] = None,
        sampling: str = "none",
        top_k: int = 10,
        top_p: float = 0.9,
        temperature: float = 1.0,
        seed: Optional[int] = None,
        batch_size: int = 64,
        max_tokens: Optional[int] = 20000,
        **unknown,
    ) -> list[Translation]:
        """One :class:`Translation` per source sentence (a single string: a list of one), in order.

        ``prefixes``: per source, the start its translation must have ('' for none); the search goes on
        after it. Empty sources give empty translations; sources over ``max_input_tokens`` source tokens are
        cut, with a warning naming them. Options: see :class:`DecodeOptions`.
        """
        if unknown:
            DecodeOptions.from_mapping(unknown)  # raises, naming them
        options = DecodeOptions(beam_size, length_penalty, n_best, max_length_ratio, max_length_constant, max_length,
                                sampling, top_k, top_p, temperature, seed, batch_size, max_tokens)
        options.check()
        lines = [sources] if isinstance(sources, str) else list(sources)
        return self.translate_lines(lines, options, prefixes=prefixes)

    def translate_lines(self, lines: Sequence[str], options: DecodeOptions, *, prefixes: Optional[Sequence[str]] = None,
                        name: str = "input", on_batch: Optional[Callable[[int], None]] = None) -> list[Translation]:
        """Raw text (stripped, lowercased as training was, cut to ``max_input_tokens``) -> translations."""
        return translate_lines(self, lines, asdict(options), options.batch_size, self.max_input_tokens, self.lowercase,
                               name, on_batch, options.max_tokens, prefixes=self.encode_prefixes(prefixes, len(lines)))

    def encode_sources(self, lines: Sequence[str], name: str) -> list[list[int]]:
        """Raw text -> source ids as training read it: stripped, lowercased when training was, cut to
        ``max_input_tokens`` with a warning naming ``name`` and the lines (empty lines give [])."""
        encoded = encode_lines(lines, self.src_tokenizer, self.max_input_tokens, self.lowercase)
        warn_truncated(encoded.truncated, self.max_input_tokens, name)
        return encoded.ids

    def encode_prefixes(self, prefixes: Optional[Sequence[str]], count: int) -> Optional[list[list[int]]]:
        if prefixes is None:
            return None
        if isinstance(prefixes, str) or len(prefixes) != count:
            raise ValueError(f"prefixes: give one per source ({count}), '' for none; got "
                             f"{'a string' if isinstance(prefixes, str) else len(prefixes)}")
        texts = [prefix.strip().lower() if self.lowercase else prefix.strip() for prefix in prefixes]
        return [self.tgt_tokenizer.encode(text) if text else [] for text in texts]

    def score(self, sources: Sequence[str], targets: Sequence[str], *, batch_size: int = 64,
              max_tokens: Optional[int] = 20000) -> list[PairScore]:
        """Each pair's log-probability under the model (teacher forcing), in order; see :mod:`.scoring`."""
        if len(sources) != len(targets):
            raise ValueError(f"score: {len(sources)} sources but {len(targets)} targets")
        src_ids = self.encode_sources(sources, "score")
        targets = [target.strip().lower() if self.lowercase else target.strip() for target in targets]
        tgt_ids = self.tgt_tokenizer.encode_batch(targets)
        return score_ids(self, src_ids, tgt_ids, batch_size, max_tokens)


