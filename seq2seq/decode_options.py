"""The decoding options: each defined once here, with its default and its check.

Every way of decoding takes exactly these: ``decode.*`` of ``train.py`` (validation), ``evaluate.py`` and
``serve.py`` (this dataclass is their Hydra schema), the keywords of ``Translator.translate``, and the fields
of a ``POST /translate`` request. No other place states a default (``tests/unit/test_decode_options.py``
looks for second copies) or repeats a check: :meth:`DecodeOptions.check` is the one check, and it names the
option. How sentences are grouped into batches does not change any result and is the caller's choice
(``DEFAULT_BATCH_SIZE``, ``DEFAULT_MAX_TOKENS``).

This module imports nothing of the package and nothing but the standard library.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

SAMPLING_METHODS = ("none", "topk", "topp")  # seq2seq/inference/sampling.py

DEFAULT_BATCH_SIZE = 64  # sentences per decoding batch ...
DEFAULT_MAX_TOKENS = 20000  # ... and padded source positions per batch (sentences x the longest)

INT64 = (-(2**63), 2**63 - 1)  # what a tensor index or length can hold
SEEDS = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed accepts


class DecodeOptionError(ValueError):
    """An option that cannot work: ``option`` is its name (``beam_size``), ``reason`` what is wrong with it; the
    message names it as the caller does (``decode.beam_size: must be at least 1, got 0``)."""

    def __init__(self, option: str, reason: str, key: str = "") -> None:
        super().__init__(f"{_name(key, option)}: {reason}")
        self.option, self.reason = option, reason


@dataclass
class DecodeOptions:
    """How to search for a translation. Defaults: beam 5 with GNMT's length penalty 1.0, one output each.

    Every instance is checked when it is made (``check``), so code that receives one need not check it again.
    """

    beam_size: int = 5  # 1: greedy search
    # GNMT's alpha, score = log-prob / ((5 + length) / 6) ** alpha; 0: none. 1.0 scored above 0.6 on validation in
    # both Multi30k experiments (benchmarks/README.md, "Before and after, 2000 steps").
    length_penalty: float = 1.0
    n_best: int = 1  # hypotheses returned per sentence, best first (at most beam_size)
    max_length_ratio: float = 1.5  # at most ratio * source length + constant output tokens ...
    max_length_constant: int = 10
    # ... and at most this many; None: the checkpoint's cap (its data.max_tgt_length + 1).
    max_length: Optional[int] = None
    # none | topk | topp: draw each token (beam_size 1) from the top_k most probable, or from the smallest set holding
    # top_p of the probability, after dividing log-probs by temperature (< 1 sharper, > 1 flatter).
    sampling: str = "none"
    top_k: int = 10
    top_p: float = 0.9
    temperature: float = 1.0
    seed: Optional[int] = None  # sampling: the same seed draws the same samples; None: fresh ones

    def __post_init__(self) -> None:
        self.check()

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], defaults: Optional["DecodeOptions"] = None,
                     key: str = "") -> "DecodeOptions":
        """``defaults`` (the defaults above when None) with ``options`` set by name, checked.

        DecodeOptionError names an unknown option or one that cannot work (``key`` prefixes the names).
        """
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise DecodeOptionError(unknown[0], f"unknown decoding option; valid: {', '.join(cls.names())}", key)
        try:
            return dataclasses.replace(defaults if defaults is not None else cls(), **dict(options))
        except DecodeOptionError as error:
            raise DecodeOptionError(error.option, error.reason, key) from None

    def capped(self, output_cap: Optional[int]) -> "DecodeOptions":
        """These options with ``max_length`` filled in from a checkpoint's ``output_cap`` when it is None (a None cap:
        no cap). Both runtimes' decoding does this, so an exported model stops where its checkpoint does."""
        if self.max_length is not None or output_cap is None:
            return self
        return dataclasses.replace(self, max_length=output_cap)

    def check(self, key: str = "") -> "DecodeOptions":
        """``self`` if every option can work; otherwise DecodeOptionError naming the first that cannot."""
        for name in ("beam_size", "n_best", "max_length_constant", "top_k"):
            _integer(self, name, key)
        _integer(self, "max_length", key, optional=True)
        _integer(self, "seed", key, optional=True, bounds=SEEDS)
        for name in ("length_penalty", "max_length_ratio", "top_p", "temperature"):
            _number(self, name, key)
        _require(self.beam_size >= 1, key, "beam_size", f"must be at least 1, got {self.beam_size}")
        _require(1 <= self.n_best <= self.beam_size, key, "n_best",
                 f"must be in [1, beam_size={self.beam_size}], got {self.n_best}")
        _require(self.length_penalty >= 0, key, "length_penalty", f"must be >= 0, got {self.length_penalty}")
        _require(self.max_length_ratio > 0, key, "max_length_ratio", f"must be positive, got {self.max_length_ratio}")
        _require(self.max_length is None or self.max_length > 0, key, "max_length",
                 f"must be positive or null, got {self.max_length}")
        _require(isinstance(self.sampling, str) and self.sampling in SAMPLING_METHODS, key, "sampling",
                 f"must be one of {list(SAMPLING_METHODS)}, got {self.sampling!r}")
        if self.sampling != "none":
            _require(self.beam_size == 1, key, "sampling",
                     f"draws one hypothesis per sentence: it needs beam_size 1 (got {self.beam_size})")
        if self.sampling == "topk":
            _require(self.top_k >= 1, key, "top_k", f"must be at least 1, got {self.top_k}")
        if self.sampling == "topp":
            _require(0 < self.top_p <= 1, key, "top_p", f"must be in (0, 1], got {self.top_p}")
        _require(self.temperature > 0, key, "temperature", f"must be positive, got {self.temperature}")
        return self


def _name(key: str, option: str) -> str:
    return f"{key}.{option}" if key else option


def _require(condition: bool, key: str, option: str, reason: str) -> None:
    if not condition:
        raise DecodeOptionError(option, reason, key)


def _integer(options: DecodeOptions, option: str, key: str, optional: bool = False,
             bounds: tuple[int, int] = INT64) -> None:
    value = getattr(options, option)
    if value is None and optional:
        return
    # bool is an int to Python, never to a user
    _require(isinstance(value, int) and not isinstance(value, bool), key, option,
             f"must be an integer{' or null' if optional else ''}, got {value!r}")
    _require(bounds[0] <= value <= bounds[1], key, option, f"must be in [{bounds[0]}, {bounds[1]}], got {value}")


def _number(options: DecodeOptions, option: str, key: str) -> None:
    value = getattr(options, option)
    _require(isinstance(value, (int, float)) and not isinstance(value, bool), key, option,
             f"must be a number, got {value!r}")
    _require(math.isfinite(value), key, option, f"must be a finite number, got {value}")
