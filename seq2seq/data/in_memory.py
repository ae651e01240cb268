"""A split read, checked and encoded in memory: validation and test (and, in tests, the training split).

Validation and test splits are small and scored against their raw text, so they are read whole at every
start. Their pairs get the same length limits as training (``data.max_src_length`` /
``data.max_tgt_length``), because one malformed line (a whole document on one line) would otherwise pad
every sentence of its evaluation batch to its length and decode for as many steps: an out-of-memory kill
an hour into training. What happens to a pair over the limits is ``data.eval_overlong``:

* ``error`` (default): the run stops before training, naming the split, its files, the first offending
  lines and their lengths, and the keys to change;
* ``truncate``: the pair's token ids are cut to the limits (its reference text, which BLEU reads, stays
  whole), counted in the log;
* ``drop``: the pair is left out, counted in the log; metrics are then computed on the pairs kept
  (``EncodedSplit.num_dropped`` says how many were not).

The training split is never truncated: its over-long pairs are dropped, counted with their line numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from seq2seq.data.corpus import filter_pairs
from seq2seq.data.dataset import EncodedSplit
from seq2seq.data.preprocess import PairSource
from seq2seq.data.tokenizer import TextTokenizer

log = logging.getLogger(__name__)

EVAL_OVERLONG_POLICIES = ("error", "truncate", "drop")
SHOWN_LINES = 5  # offending lines named in a message; the count says how many there are in all


def encode_in_memory(
    split: str,
    source: PairSource,
    src_tokenizer: TextTokenizer,
    tgt_tokenizer: TextTokenizer,
    *,
    max_src_length: int | None,
    max_tgt_length: int | None,
    overlong: str = "error",
) -> EncodedSplit:
    """Read ``source``, encode both sides and apply the length limits (``overlong`` for val/test; train drops).

    Raises ValueError naming the split, file, lines and keys when a pair is over the limits and ``overlong``
    is ``error``, or when an empty side is met without ``data.drop_empty``.
    """
    if overlong not in EVAL_OVERLONG_POLICIES:
        raise ValueError(f"data.eval_overlong={overlong!r} is not one of: {', '.join(EVAL_OVERLONG_POLICIES)}")
    records = list(source.reader())
    empty = next(((n, src) for n, src, tgt in records if not src or not tgt), None)
    if empty is not None and not source.drop_empty:  # named by the reader's line, which need not be its position
        raise ValueError(source.empty_pair_message(empty[0], "target" if empty[1] else "source"))
    kept = filter_pairs([(src, tgt) for _, src, tgt in records], name=source.description,
                        drop_empty=source.drop_empty)
    sources = [src for src, _ in kept.pairs]
    references = [tgt for _, tgt in kept.pairs]
    line_numbers = [records[i][0] for i in kept.indices]
    src_ids = src_tokenizer.encode_batch(sources)
    tgt_ids = tgt_tokenizer.encode_batch(references)
    encoded = EncodedSplit(split, sources, references, src_ids, tgt_ids, line_numbers)
    further = source.further_references(len(records))
    if further is not None:
        encoded.extra_references = [further[i] for i in kept.indices]

    over = _over_limits(encoded, max_src_length, max_tgt_length)
    if len(over):
        policy = "drop" if split == "train" else overlong
        limits = _limits_text(max_src_length, max_tgt_length)
        if policy == "error":
            raise ValueError(
                f"{source.description}: {len(over)} of {len(encoded)} pairs are longer than the length limits "
                f"({limits}): {_lines_text(encoded, over)}; set data.eval_overlong=drop to score without them or "
                f"data.eval_overlong=truncate to cut them to the limits, or raise the limits"
            )
        if policy == "truncate":
            for i in over.tolist():
                encoded.src_ids[i] = encoded.src_ids[i][:max_src_length] if max_src_length else encoded.src_ids[i]
                encoded.tgt_ids[i] = encoded.tgt_ids[i][:max_tgt_length] if max_tgt_length else encoded.tgt_ids[i]
            log.warning("%s: truncated %d of %d pairs to the length limits (%s): %s", source.description,
                        len(over), len(encoded), limits, _lines_text(encoded, over))
            encoded.truncated_lines = [encoded.line_numbers[i] for i in over.tolist()]
        else:
            log.warning("%s: dropped %d of %d pairs longer than the length limits (%s): %s", source.description,
                        len(over), len(encoded), limits, _lines_text(encoded, over))
            encoded = _without(encoded, set(over.tolist()))
    log.info("%s: %d pairs", source.description, len(encoded))
    return encoded


def _over_limits(split: EncodedSplit, max_src_length: int | None, max_tgt_length: int | None) -> np.ndarray:
    """Indices of the pairs with more source or target tokens than the limits (None: no limit)."""
    over = np.zeros(len(split), dtype=bool)
    if max_src_length is not None:
        over |= np.fromiter((len(ids) for ids in split.src_ids), dtype=np.int64, count=len(split)) > max_src_length
    if max_tgt_length is not None:
        over |= np.fromiter((len(ids) for ids in split.tgt_ids), dtype=np.int64, count=len(split)) > max_tgt_length
    return np.flatnonzero(over)


def _limits_text(max_src_length: int | None, max_tgt_length: int | None) -> str:
    return f"data.max_src_length={max_src_length}, data.max_tgt_length={max_tgt_length} tokens"


def _lines_text(split: EncodedSplit, indices: Sequence[int]) -> str:
    """``line 60 (source 100000, target 3 tokens), ...`` for the first few, and how many more."""
    shown = [
        f"line {split.line_numbers[i]} (source {len(split.src_ids[i])}, target {len(split.tgt_ids[i])} tokens)"
        for i in list(indices)[:SHOWN_LINES]
    ]
    more = f" and {len(indices) - SHOWN_LINES} more" if len(indices) > SHOWN_LINES else ""
    return ", ".join(shown) + more


def _without(split: EncodedSplit, dropped: set[int]) -> EncodedSplit:
    keep = [i for i in range(len(split)) if i not in dropped]
    return EncodedSplit(
        split.name,
        [split.sources[i] for i in keep],
        [split.references[i] for i in keep],
        [split.src_ids[i] for i in keep],
        [split.tgt_ids[i] for i in keep],
        [split.line_numbers[i] for i in keep],
        dropped_lines=sorted(split.line_numbers[i] for i in dropped),
        extra_references=[split.extra_references[i] for i in keep] if split.extra_references else [],
    )


_BUDGET_HINTS = {
    "data.max_tokens": "raise data.max_tokens or drop long pairs with data.max_src_length/data.max_tgt_length",
    "data.eval_max_tokens": "raise data.eval_max_tokens, or lower data.max_src_length/data.max_tgt_length (pairs "
    "over them are handled as data.eval_overlong says)",
}


def check_fits_token_budget(split, max_tokens: int, key: str) -> None:
    """ValueError naming the first pair whose padded length alone exceeds ``max_tokens`` (the config key ``key``)."""
    lengths = np.asarray(split.bucket_lengths())
    too_long = np.flatnonzero(lengths > max_tokens)
    if len(too_long):
        i = int(too_long[0])
        raise ValueError(
            f"{split.name}: line {split.line_numbers[i]} needs {lengths[i]} padded tokens "
            f"({len(split.src_ids[i])} source, {len(split.tgt_ids[i])} + 1 target), more than {key}={max_tokens}; "
            f"{_BUDGET_HINTS[key]}"
        )
