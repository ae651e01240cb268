"""Greedy and beam search in numpy: :mod:`seq2seq.inference.search`'s rules, step for step, without torch.

The same rules, so the same outputs: the same length limit per sentence, pad and bos never generated, greedy's
first most probable token, beam search's top 2K continuations per sentence, GNMT's length penalty
``lp(n) = ((5 + n) / 6) ** alpha``, a (B, K) pool of finished hypotheses, a sentence done when its pool is full
and no live hypothesis is ahead (or at its limit), done sentences leaving the batch, and the n-best backtracked
at the end. Read :mod:`seq2seq.inference.search` for why each rule is what it is; ``tests/unit/test_search.py``
runs every one of its cases against both implementations.

Ties: where two continuations score exactly the same, the one with the lower index (beam-major, then token id)
goes first; ``torch.topk`` promises no order for ties, so on an exact tie the two runtimes may differ.

``model`` is an :class:`~seq2seq.runtime.onnx_model.OnnxModel`, an ensemble of them, or anything with their
``encode(src, src_lengths) -> (memory, state)`` and ``step_log_probs(tokens, memory, state) -> (log_probs,
attention, state)`` on numpy arrays, whose memory and state have ``index_select(indices)``. A model that also has
``step_top_k(tokens, memory, state, k) -> (top_log_probs, top_ids, attention, state)`` (each row's k best tokens
but pad and bos, best first, equal ones by lower id) is asked for those instead when there is no prefix: greedy
search needs each row's best token, beam search each sentence's best 2K of K x V continuations, which are among its
beams' best 2K each; the results are the same, without copying and sorting the whole (N, V) array every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from seq2seq.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from seq2seq.decode_options import DecodeOptionError, DecodeOptions

NEG_INF = float("-inf")


@dataclass
class Hypotheses:
    """The search's results, one entry per sentence, as :class:`seq2seq.inference.search.Hypotheses`."""

    tokens: list[list[int]]  # the best hypothesis, without bos and eos
    scores: list[float]  # its score: sum of log-probs (greedy), length-normalised (beam)
    attention: list[np.ndarray]  # (its length, S_real): one row per generated token, eos included
    nbest: list[list[tuple[list[int], float]]]  # (tokens, score), best first; a single entry for greedy


class Prefix(NamedTuple):
    """Forced first output tokens: ``tokens`` (B, P) padded with pad, ``lengths`` (B,), 0 for no prefix."""

    tokens: np.ndarray
    lengths: np.ndarray

    @staticmethod
    def from_lists(prefixes: list[list[int]], pad_id: int = PAD_ID) -> "Prefix":
        longest = max((len(ids) for ids in prefixes), default=0)
        tokens = np.array([ids + [pad_id] * (longest - len(ids)) for ids in prefixes],
                          dtype=np.int64).reshape(len(prefixes), longest)  # (B, P)
        return Prefix(tokens, np.array([len(ids) for ids in prefixes], dtype=np.int64))

    def index_select(self, rows: np.ndarray) -> "Prefix":
        return Prefix(self.tokens[rows], self.lengths[rows])

    def force(self, log_probs: np.ndarray, step: int) -> np.ndarray:
        """(N, V) log-probs of step ``step`` (1-based): on rows still within their prefix, every token but the
        prefix's becomes -inf."""
        if step > self.tokens.shape[1]:
            return log_probs
        rows = np.nonzero(step <= self.lengths)[0]
        wanted = self.tokens[rows, step - 1]
        kept = log_probs[rows, wanted]
        log_probs[rows] = NEG_INF
        log_probs[rows, wanted] = kept
        return log_probs


def max_output_length(src_lengths: np.ndarray, ratio: float, constant: int, limit: Optional[int] = None) -> np.ndarray:
    """(B,) most steps per sentence: ``floor(ratio * src_length + constant)``, at most ``limit``, at least 1."""
    lengths = np.floor(src_lengths.astype(np.float64) * ratio + constant).astype(np.int64)
    if limit is not None:
        lengths = np.minimum(lengths, limit)
    return np.maximum(lengths, 1)


def top_k(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest of each row of (N, M) ``values``, largest first (an equal value: lower index first),
    and their indices: (N, k) each. A partition first, so that only k entries per row are sorted."""
    if k < values.shape[1]:
        part = np.argpartition(-values, k - 1, axis=1)[:, :k]  # (N, k), unordered
    else:
        part = np.broadcast_to(np.arange(values.shape[1]), values.shape)
    part_values = np.take_along_axis(values, part, axis=1)
    order = np.lexsort((part, -part_values), axis=1)[:, :k]  # by value, then by index
    indices = np.take_along_axis(part, order, axis=1)
    return np.take_along_axis(values, indices, axis=1), indices


NEVER = np.array([PAD_ID, BOS_ID])  # never generated: they are never targets


def _next_log_probs(model, tokens: np.ndarray, memory, state):
    """One decoder step for tokens (N,); pad and bos get -inf, the others keep their log-probs (not renormalised)."""
    log_probs, attention, state = model.step_log_probs(tokens, memory, state)  # (N, V)
    log_probs[:, NEVER] = NEG_INF
    return log_probs, attention, state


def _collect(tokens: np.ndarray, lengths: np.ndarray, scores: np.ndarray, attention: np.ndarray,
             src_lengths: np.ndarray, eos_id: int) -> Hypotheses:
    """tokens (B, N, T), lengths and scores (B, N) best first, attention (B, T, S) of the best -> lists."""
    nbest = []
    for rows, row_lengths, row_scores in zip(tokens.tolist(), lengths.tolist(), scores.tolist()):
        entries = []
        for row, length, score in zip(rows, row_lengths, row_scores):
            if score == NEG_INF:
                continue
            row = row[:length]
            entries.append((row[:-1] if row and row[-1] == eos_id else row, score))
        nbest.append(entries)
    best_lengths = lengths[:, 0].tolist()
    return Hypotheses(
        tokens=[entries[0][0] for entries in nbest],
        scores=[entries[0][1] for entries in nbest],
        attention=[attention[b, :n, :s] for b, (n, s) in enumerate(zip(best_lengths, src_lengths.tolist()))],
        nbest=nbest,
    )


def supported(options: DecodeOptions) -> DecodeOptions:
    """``options``, or a DecodeOptionError naming what this runtime cannot do: sampling draws from torch's
    generator (the same seed, the same draws), so it is the PyTorch runtime's alone."""
    if options.sampling != "none":
        raise DecodeOptionError("sampling", f"the ONNX runtime decodes with greedy or beam search only (none); "
                                f"got {options.sampling!r}: sample with the PyTorch runtime")
    return options


def search(model, src: np.ndarray, src_lengths: np.ndarray, options: DecodeOptions,
           prefix: Optional[Prefix] = None) -> Hypotheses:
    """Greedy search for ``beam_size`` 1, beam search otherwise (sampling: refused, see :func:`supported`)."""
    supported(options)
    if options.beam_size == 1:
        return greedy_search(model, src, src_lengths, options, prefix=prefix)
    return beam_search(model, src, src_lengths, options, prefix=prefix)


def greedy_search(model, src: np.ndarray, src_lengths: np.ndarray, options: DecodeOptions, *,
                  prefix: Optional[Prefix] = None) -> Hypotheses:
    """The most probable token at every step; score = sum of its log-probs. Shapes: src (B, S), src_lengths (B,)."""
    batch_size = src.shape[0]
    memory, state = model.encode(src, src_lengths)
    max_lengths = max_output_length(src_lengths, options.max_length_ratio, options.max_length_constant,
                                    options.max_length)  # (B,)
    if prefix is not None:
        max_lengths = np.maximum(max_lengths, prefix.lengths + 1)
    tokens = np.full(batch_size, BOS_ID, dtype=np.int64)
    finished = np.zeros(batch_size, dtype=bool)
    lengths = np.zeros(batch_size, dtype=np.int64)
    scores = np.zeros(batch_size, dtype=np.float32)
    rows = np.arange(batch_size)
    step_tokens, step_attention = [], []
    shortcut = prefix is None and hasattr(model, "step_top_k")
    for step in range(1, int(max_lengths.max()) + 1):
        if shortcut:
            top_log_probs, top_ids, attention, state = model.step_top_k(tokens, memory, state, 1)  # (B, 1) each
            best, best_log_probs = top_ids[:, 0], top_log_probs[:, 0]
        else:
            log_probs, attention, state = _next_log_probs(model, tokens, memory, state)  # (B, V)
            if prefix is not None:
                log_probs = prefix.force(log_probs, step)
            best = log_probs.argmax(axis=-1)  # (B,) the first of equal maxima, as torch's max
            best_log_probs = log_probs[rows, best]
        scores = scores + np.where(finished, best_log_probs.dtype.type(0), best_log_probs)
        tokens = np.where(finished, PAD_ID, best)
        lengths += ~finished
        step_tokens.append(tokens)
        step_attention.append(attention)
        finished |= (tokens == EOS_ID) | (step >= max_lengths)
        if finished.all():
            break
    return _collect(np.stack(step_tokens, axis=1)[:, None], lengths[:, None], scores[:, None],
                    np.stack(step_attention, axis=1), src_lengths, EOS_ID)  # (B, 1, T), ..., (B, T, S)


class _Pool(NamedTuple):
    """Finished hypotheses, (B, K) each and best first, as in :mod:`seq2seq.inference.search`."""

    scores: np.ndarray
    lengths: np.ndarray
    origins: np.ndarray
    last_tokens: np.ndarray

    @staticmethod
    def empty(batch_size: int, k: int, dtype) -> "_Pool":
        return _Pool(np.full((batch_size, k), NEG_INF, dtype=dtype), np.ones((batch_size, k), dtype=np.int64),
                     np.zeros((batch_size, k), dtype=np.int64), np.full((batch_size, k), PAD_ID, dtype=np.int64))

    def merge(self, rows: np.ndarray, new: "_Pool") -> None:
        """Keep, in place, the K best of pool rows ``rows`` (A,) and ``new`` (A, M)."""
        merged = [np.concatenate([old[rows], extra.astype(old.dtype)], axis=1) for old, extra in zip(self, new)]
        _, best = top_k(merged[0], self.scores.shape[1])  # (A, K)
        for old, values in zip(self, merged):
            old[rows] = np.take_along_axis(values, best, axis=1)


def beam_search(model, src: np.ndarray, src_lengths: np.ndarray, options: DecodeOptions, *,
                prefix: Optional[Prefix] = None) -> Hypotheses:
    """Beam search of ``options.beam_size`` beams, ``options.n_best`` hypotheses per sentence; scores are
    length-normalised log-probs. Shapes: src (B, S), src_lengths (B,); rows ``b * K + k``: beam k of sentence b."""
    length_penalty, n_best = options.length_penalty, options.n_best
    batch_size, k = src.shape[0], options.beam_size

    memory, state = model.encode(src, src_lengths)
    expand = np.repeat(np.arange(batch_size), k)  # (B*K,) the sentence of each row
    memory, state = memory.index_select(expand), state.index_select(expand)
    max_lengths = max_output_length(src_lengths, options.max_length_ratio, options.max_length_constant,
                                    options.max_length)  # (B,)
    if prefix is not None:
        max_lengths = np.maximum(max_lengths, prefix.lengths + 1)
    final_steps = set(max_lengths.tolist())

    alive = np.arange(batch_size)  # (A,)
    tokens = np.full(batch_size * k, BOS_ID, dtype=np.int64)  # (A*K,)
    live = np.full((batch_size, k), NEG_INF, dtype=np.float32)  # (A, K)
    live[:, 0] = 0.0
    pool = None

    def full_batch(values: np.ndarray, fill: float) -> np.ndarray:
        """(A, ...) rows of the alive sentences -> (B, ...), ``fill`` for the others."""
        out = np.full((batch_size,) + values.shape[1:], fill, dtype=values.dtype)
        out[alive] = values
        return out

    shortcut = prefix is None and hasattr(model, "step_top_k")
    history_tokens, history_origins, history_attention = [], [], []  # per step: (B, K), (B, K), (B, K, S)
    for step in range(1, max(final_steps) + 1):
        num_alive = alive.size
        if shortcut:  # each beam's best 2K (all V when V is smaller), in place of all V
            width = min(2 * k, model.vocab_size)
            top_log_probs, top_ids, attention, state = model.step_top_k(tokens, memory, state, width)  # (A*K, W)
            candidates = live[:, :, None] + top_log_probs.reshape(num_alive, k, width)  # (A, K, W)
            candidate_scores, flat = top_k(candidates.reshape(num_alive, k * width), 2 * k)  # (A, 2K)
            candidate_origins = flat // width
            candidate_tokens = np.take_along_axis(top_ids.reshape(num_alive, k * width), flat, axis=1)
        else:
            log_probs, attention, state = _next_log_probs(model, tokens, memory, state)  # (A*K, V)
            if prefix is not None:
                log_probs = prefix.index_select(np.repeat(alive, k)).force(log_probs, step)
            vocab_size = log_probs.shape[-1]
            candidates = live[:, :, None] + log_probs.reshape(num_alive, k, vocab_size)  # (A, K, V)
            candidate_scores, candidate_ids = top_k(candidates.reshape(num_alive, k * vocab_size), 2 * k)  # (A, 2K)
            candidate_origins, candidate_tokens = candidate_ids // vocab_size, candidate_ids % vocab_size
        candidate_eos = candidate_tokens == EOS_ID

        penalty = ((5.0 + step) / 6.0) ** length_penalty
        lengths = np.full_like(candidate_origins[:, :k], step)  # (A, K)
        finished = _Pool(np.where(candidate_eos[:, :k], candidate_scores[:, :k], NEG_INF) / penalty,
                         lengths, candidate_origins[:, :k], candidate_tokens[:, :k])
        live, picks = top_k(np.where(candidate_eos, NEG_INF, candidate_scores), k)  # (A, K)
        origins = np.take_along_axis(candidate_origins, picks, axis=1)
        tokens = np.take_along_axis(candidate_tokens, picks, axis=1)  # (A, K)
        history_tokens.append(full_batch(tokens, PAD_ID))
        history_origins.append(full_batch(origins, 0))
        history_attention.append(full_batch(attention.reshape(num_alive, k, -1), 0.0))

        at_limit = max_lengths[alive] <= step  # (A,)
        if step in final_steps:  # live hypotheses of sentences at their limit are finished as they are
            cut = _Pool(np.where(at_limit[:, None], live / penalty, NEG_INF), lengths, origins, tokens)
            finished = _Pool(*(np.concatenate(pair, axis=1) for pair in zip(finished, cut)))  # (A, 2K) each
        if pool is None:
            pool = _Pool.empty(batch_size, k, candidate_scores.dtype)
        pool.merge(alive, finished)

        done = pool.scores[alive, -1] > NEG_INF  # the pool is full ...
        done &= pool.scores[alive, 0] >= live[:, 0] / penalty  # ... and no live one is ahead
        done |= at_limit
        rows = (np.arange(num_alive) * k)[:, None] + origins  # (A, K) rows that go on
        if done.any():
            keep = np.nonzero(~done)[0]  # (A',)
            if keep.size == 0:
                break
            alive, live, tokens, rows = alive[keep], live[keep], tokens[keep], rows[keep]
            memory = memory.index_select(rows.reshape(-1))
        state = state.index_select(rows.reshape(-1))
        tokens = tokens.reshape(-1)

    # Backtrack the n-best, as seq2seq.inference.search does.
    history_tokens, history_origins = np.stack(history_tokens), np.stack(history_origins)  # (T, B, K)
    history_attention = np.stack(history_attention)  # (T, B, K, S)
    num_steps, sentences = history_tokens.shape[0], np.arange(batch_size)
    scores, lengths, cur = pool.scores[:, :n_best], pool.lengths[:, :n_best], pool.origins[:, :n_best]
    best_attention = np.zeros((batch_size, num_steps, history_attention.shape[-1]), dtype=history_attention.dtype)
    best_attention[sentences, lengths[:, 0] - 1] = history_attention[lengths[:, 0] - 1, sentences, cur[:, 0]]
    tokens = np.full((batch_size, n_best, num_steps), PAD_ID, dtype=np.int64)  # (B, N, T)
    for j in range(num_steps - 1, 0, -1):
        active = j < lengths  # (B, N)
        tokens[:, :, j - 1] = np.where(active, np.take_along_axis(history_tokens[j - 1], cur, axis=1), PAD_ID)
        previous = np.where(active, np.take_along_axis(history_origins[j - 1], cur, axis=1), cur)
        best_attention[:, j - 1] = np.where(active[:, :1], history_attention[j - 1, sentences, previous[:, 0]],
                                            best_attention[:, j - 1])
        cur = previous
    np.put_along_axis(tokens, (lengths - 1)[:, :, None], pool.last_tokens[:, :n_best, None], axis=2)
    return _collect(tokens, lengths, scores, best_attention, src_lengths, EOS_ID)
