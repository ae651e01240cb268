"""``evaluate.py input=...``: translate raw text, one sentence per line, or score given targets for it."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from seq2seq.config_checks import ConfigError
from seq2seq.data.atomic import write_text_atomic
from seq2seq.decode_options import DecodeOptions
from seq2seq.inference.text_io import (
    format_alignments,
    format_nbest,
    format_pair_scores,
    format_translations,
    progress_bar,
    read_input,
    write_output,
)
from seq2seq.inference.translator import Translator

log = logging.getLogger(__name__)


def read_prefixes(cfg: DictConfig, count: int, translator: Translator) -> list[list[int]] | None:
    """``prefix=FILE``: one forced target prefix per input line or split pair ('' for none), encoded."""
    if cfg.prefix is None:
        return None
    lines = read_input(to_absolute_path(cfg.prefix))
    if len(lines) != count:
        raise ConfigError(f"prefix: {cfg.prefix} has {len(lines)} lines for {count} sentences; give one per sentence "
                          f"(an empty line for none)")
    return translator.text.prefixes(lines, count)


def _input_name(cfg: DictConfig) -> str:
    return "<stdin>" if cfg.input == "-" else to_absolute_path(cfg.input)


def _destination(cfg: DictConfig) -> Path | None:
    return None if cfg.output in (None, "-") else Path(to_absolute_path(cfg.output))


def translate_input(cfg: DictConfig, translator: Translator, options: DecodeOptions) -> None:
    """``cfg.input`` (a file or ``-``) -> one translation per line, to ``cfg.output`` or stdout."""
    lines = read_input(cfg.input)
    src_ids = translator.text.sources(lines, _input_name(cfg))
    prefixes = read_prefixes(cfg, len(lines), translator)
    with progress_bar(len(lines), "translating") as advance:
        translations = translator.decoding.translate_ids(src_ids, options, batch_size=cfg.batch_size,
                                                         max_tokens=cfg.max_tokens, prefixes=prefixes,
                                                         on_batch=advance)
    destination = _destination(cfg)
    formatted = format_nbest(translations, options.n_best) if options.n_best > 1 else format_translations(translations)
    write_output(formatted, destination)
    if destination is not None:
        if cfg.alignment:
            write_text_atomic(destination.with_suffix(destination.suffix + ".align"), format_alignments(translations))
        log.info("%d translations written to %s", len(translations), destination)


def score_input(cfg: DictConfig, translator: Translator, options: DecodeOptions) -> None:
    """``cfg.input`` and ``cfg.targets`` (aligned files) -> one line of scores per pair, to ``cfg.output`` or stdout."""
    sources = read_input(cfg.input)
    targets = read_input(to_absolute_path(cfg.targets))
    if len(sources) != len(targets):
        raise ConfigError(f"targets: {cfg.targets} has {len(targets)} lines for the {len(sources)} of {_input_name(cfg)}")
    src_ids_per_line = translator.text.sources(sources, _input_name(cfg))
    for line, (src_ids, target) in enumerate(zip(src_ids_per_line, targets), start=1):
        if not src_ids or not target.strip():
            raise ConfigError(f"input: line {line} has an empty {'source' if not src_ids else 'target'}; "
                              f"there is nothing to score")
    with progress_bar(len(sources), "scoring") as advance:
        scores = translator.decoding.score_ids(src_ids_per_line, translator.text.targets(targets),
                                               batch_size=cfg.batch_size, max_tokens=cfg.max_tokens)
        advance(len(sources))
    write_output(format_pair_scores(scores), _destination(cfg))
