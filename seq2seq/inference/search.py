"""Greedy and beam search over a :class:`~seq2seq.models.Seq2Seq`, batched.

Both advance the whole batch as one tensor per step: B rows for greedy search, B*K rows for beam search
(sentence-major: row ``b * K + k`` is beam k of sentence b). The encoder runs once; beam search expands
its memory to beams by indexing and reorders the decoder state with ``index_select`` each step.

A hypothesis's *length* counts the tokens it generated, eos included. Sentence b may take at most
``max_output_length(...)[b]`` steps; a hypothesis that reaches it without eos is kept as it is.

Beam search keeps K beams live per sentence (fairseq's bookkeeping; GNMT's length penalty):

* each step takes the top 2K of a sentence's K*V continuations. Those among the first K that end in eos
  are finished, scored ``logprob / lp(length)`` with ``lp(n) = ((5 + n) / 6) ** alpha``; the best K that
  do not end in eos stay live (at most K of the 2K end in eos, one per beam, so there are always K).
* each sentence keeps its K best finished hypotheses in a (B, K) pool of tensors. Tokens are not copied
  from step to step: per-step tokens and backpointers are kept and the n-best are backtracked at the end.
* a sentence is done when its pool is full and its best live hypothesis, scored at the current length, is
  not ahead of its best finished one, or at its maximum length, where its live hypotheses join the pool.
  Done sentences leave the batch: they cost nothing more and cannot touch the others' results.

``model`` is a :class:`~seq2seq.models.Seq2Seq`, an :class:`~seq2seq.inference.ensemble.Ensemble`, or
anything else with their ``encode`` and ``step_log_probs``. Pad and bos are never generated. What to search
for (beam size, length penalty, n-best, length limits, sampling) is a checked
:class:`~seq2seq.decode_options.DecodeOptions`; ``max_length`` None there means no cap (the caller, who knows
the checkpoint's, puts it in).

A *prefix* forces the first tokens of each sentence's output (a target prefix, as OpenNMT-py's
``-tgt_file_prefix``): while a sentence is within its prefix, every token but the prefix's is ruled out,
so the search continues from it; the prefix's log-probabilities count in the score. Greedy search can
*sample* instead of taking the most probable token (:mod:`seq2seq.inference.sampling`). The only host syncs
inside the step loop are one "is any sentence done?" check per step and, on steps where one is, the indices of those that remain.
Callers put the model in eval mode (dropout would make the search random); both functions run under
``torch.inference_mode()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from seq2seq.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from seq2seq.decode_options import DecodeOptions
from seq2seq.inference.sampling import Sampler

NEG_INF = float("-inf")


@dataclass
class Hypotheses:
    """The search's results, one entry per sentence in the batch's order."""

    tokens: list[list[int]]  # the best hypothesis, without bos and eos
    scores: list[float]  # its score: sum of log-probs (greedy), length-normalised (beam)
    attention: list[Tensor]  # (its length, S_real) on the CPU: one row per generated token, eos included
    nbest: list[list[tuple[list[int], float]]]  # (tokens, score), best first; a single entry for greedy


class _Pool(NamedTuple):
    """Finished hypotheses, (B, K) each and best first. Hypothesis (b, i) generated ``lengths[b, i]``
    tokens; the last one is ``last_tokens[b, i]``, which extended live beam ``origins[b, i]`` of step
    ``lengths[b, i] - 1``. Empty slots score -inf."""

    scores: Tensor
    lengths: Tensor
    origins: Tensor
    last_tokens: Tensor

    @staticmethod
    def empty(batch_size: int, k: int, dtype: torch.dtype, device: torch.device, pad_id: int) -> "_Pool":
        long = dict(dtype=torch.long, device=device)
        return _Pool(
            torch.full((batch_size, k), NEG_INF, dtype=dtype, device=device),
            torch.ones(batch_size, k, **long),  # length 1, not 0, so that backtracking empty slots stays in range
            torch.zeros(batch_size, k, **long),
            torch.full((batch_size, k), pad_id, **long),
        )

    def merge(self, rows: Tensor, new: "_Pool") -> None:
        """Keep, in place, the K best of pool rows ``rows`` (A,) and ``new`` (A, M)."""
        merged = [torch.cat([old[rows], extra], dim=1) for old, extra in zip(self, new)]  # (A, K + M) each
        _, best = merged[0].topk(self.scores.size(1), dim=1)  # (A, K), sorted
        for old, values in zip(self, merged):
            old[rows] = values.gather(1, best)


class Prefix(NamedTuple):
    """Forced first output tokens: ``tokens`` (B, P) padded with pad, ``lengths`` (B,), 0 for no prefix."""

    tokens: Tensor
    lengths: Tensor

    @staticmethod
    def from_lists(prefixes: list[list[int]], device: torch.device, pad_id: int = PAD_ID) -> "Prefix":
        longest = max((len(ids) for ids in prefixes), default=0)
        tokens = torch.tensor([ids + [pad_id] * (longest - len(ids)) for ids in prefixes], dtype=torch.long,
                              device=device).view(len(prefixes), longest)  # (B, P)
        return Prefix(tokens, torch.tensor([len(ids) for ids in prefixes], dtype=torch.long, device=device))

    def index_select(self, rows: Tensor) -> "Prefix":
        return Prefix(self.tokens.index_select(0, rows), self.lengths.index_select(0, rows))

    def force(self, log_probs: Tensor, step: int) -> Tensor:
        """(N, V) log-probs of step ``step`` (1-based) for the N rows of this prefix: on rows still within their
        prefix, every token but the prefix's becomes -inf (the prefix's keeps its log-prob)."""
        if step > self.tokens.size(1):
            return log_probs
        forced = (step <= self.lengths).unsqueeze(1)  # (N, 1)
        wanted = self.tokens[:, step - 1].unsqueeze(1)  # (N, 1)
        only = torch.full_like(log_probs, NEG_INF).scatter(1, wanted, log_probs.gather(1, wanted))  # (N, V)
        return torch.where(forced, only, log_probs)


def max_output_length(src_lengths: Tensor, ratio: float, constant: int, limit: Optional[int] = None) -> Tensor:
    """(B,) most steps per sentence: ``floor(ratio * src_length + constant)``, at most ``limit``, at least 1."""
    lengths = torch.floor(src_lengths.double() * ratio + constant).long()
    if limit is not None:
        lengths = lengths.clamp(max=limit)
    return lengths.clamp(min=1)


def _next_log_probs(model, tokens: Tensor, memory, state, never: tuple[int, ...]):
    """One decoder step for tokens (N,): log-probs (N, V), attention (N, S) and the new state.

    Tokens in ``never`` (pad, bos) get -inf: they are never targets. The others keep their log-probs, not
    renormalised, so that scores stay the model's.
    """
    log_probs, attention, state = model.step_log_probs(tokens, memory, state)  # (N, V) in float32 at least
    for token in never:
        log_probs[:, token] = NEG_INF
    return log_probs, attention, state


def _collect(
    tokens: Tensor, lengths: Tensor, scores: Tensor, attention: Tensor, src_lengths: Tensor, eos_id: int
) -> Hypotheses:
    """tokens (B, N, T) with eos where a hypothesis ended with one, lengths and scores (B, N) best first,
    attention (B, T, S) of the best hypotheses -> lists. Empty (-inf) n-best slots are left out."""
    nbest = []
    for rows, row_lengths, row_scores in zip(tokens.tolist(), lengths.tolist(), scores.tolist()):
        entries = []
        for row, length, score in zip(rows, row_lengths, row_scores):
            if score == NEG_INF:
                continue
            row = row[:length]
            entries.append((row[:-1] if row and row[-1] == eos_id else row, score))
        nbest.append(entries)
    attention = attention.cpu()
    best_lengths = lengths[:, 0].tolist()
    return Hypotheses(
        tokens=[entries[0][0] for entries in nbest],
        scores=[entries[0][1] for entries in nbest],
        attention=[attention[b, :n, :s] for b, (n, s) in enumerate(zip(best_lengths, src_lengths.tolist()))],
        nbest=nbest,
    )


def search(model, src: Tensor, src_lengths: Tensor, options: DecodeOptions, prefix: Optional[Prefix] = None,
           generator: Optional[torch.Generator] = None) -> Hypotheses:
    """Greedy search for ``beam_size`` 1 (drawing tokens with ``generator`` when ``options.sampling`` says so),
    beam search otherwise."""
    if options.beam_size == 1:
        sampler = Sampler(options, generator) if options.sampling != "none" else None
        return greedy_search(model, src, src_lengths, options, sampler=sampler, prefix=prefix)
    return beam_search(model, src, src_lengths, options, prefix=prefix)


@torch.inference_mode()
def greedy_search(
    model,
    src: Tensor,
    src_lengths: Tensor,
    options: DecodeOptions,
    *,
    sampler: Optional[Sampler] = None,
    prefix: Optional[Prefix] = None,
) -> Hypotheses:
    """The most probable token at every step (or one drawn by ``sampler``); score = sum of its log-probs.

    ``options``: the length limits (the beam settings are beam search's). Shapes: src (B, S), src_lengths (B,);
    ``prefix`` rows as src's. Finished sentences keep being fed pad until every sentence is done, but their
    outputs are frozen. A prefix longer than the length limit raises the limit to the prefix and its eos.
    """
    pad_id, bos_id, eos_id = PAD_ID, BOS_ID, EOS_ID
    batch_size = src.size(0)
    memory, state = model.encode(src, src_lengths)
    src_lengths = src_lengths.to(src.device)
    max_lengths = max_output_length(src_lengths, options.max_length_ratio, options.max_length_constant,
                                    options.max_length)  # (B,)
    if prefix is not None:
        max_lengths = torch.maximum(max_lengths, prefix.lengths + 1)
    tokens = src.new_full((batch_size,), bos_id)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=src.device)
    lengths = torch.zeros_like(max_lengths)
    scores = torch.zeros(batch_size, device=src.device)
    step_tokens, step_attention = [], []
    for step in range(1, int(max_lengths.max()) + 1):
        log_probs, attention, state = _next_log_probs(model, tokens, memory, state, (pad_id, bos_id))  # (B, V)
        if prefix is not None:
            log_probs = prefix.force(log_probs, step)
        if sampler is None:
            best_log_probs, best = log_probs.max(dim=-1)  # (B,)
        else:
            best = sampler.pick(log_probs)  # (B,)
            best_log_probs = log_probs.gather(1, best.unsqueeze(1)).squeeze(1)
        scores = scores + best_log_probs.masked_fill(finished, 0.0)
        tokens = best.masked_fill(finished, pad_id)
        lengths += (~finished).long()
        step_tokens.append(tokens)
        step_attention.append(attention)
        finished |= (tokens == eos_id) | (step >= max_lengths)
        if finished.all():
            break
    return _collect(
        torch.stack(step_tokens, dim=1).unsqueeze(1),  # (B, 1, T)
        lengths.unsqueeze(1),
        scores.unsqueeze(1),
        torch.stack(step_attention, dim=1),  # (B, T, S)
        src_lengths,
        eos_id,
    )


@torch.inference_mode()
def beam_search(
    model,
    src: Tensor,
    src_lengths: Tensor,
    options: DecodeOptions,
    *,
    prefix: Optional[Prefix] = None,
) -> Hypotheses:
    """Beam search of ``options.beam_size`` beams with GNMT's length penalty ``alpha = options.length_penalty``
    (0: none), returning ``options.n_best`` hypotheses per sentence; see the module docstring.

    A sentence ends once it has ``beam_size`` finished hypotheses and its best live one, scored at the current
    length, is not ahead of the best finished one. A full pool alone (fairseq's rule) can end the search while
    the best hypothesis is still live, when weak ones happen to end first: on the short-sequence task it
    returned outputs far less probable than greedy search's (benchmarks/README.md, "The search's stopping
    rule"). Without a length penalty the returned best is the best the beams can reach (a live log-prob only
    falls); ``beam_size=1`` gives exactly greedy search's tokens, with or without one.

    Shapes: src (B, S), src_lengths (B,). Returned scores are length-normalised log-probs.
    """
    pad_id, bos_id, eos_id = PAD_ID, BOS_ID, EOS_ID
    length_penalty, n_best = options.length_penalty, options.n_best
    device, batch_size, k = src.device, src.size(0), options.beam_size

    memory, state = model.encode(src, src_lengths)
    expand = torch.arange(batch_size, device=device).repeat_interleave(k)  # (B*K,) sentence of each row
    memory, state = memory.index_select(expand), state.index_select(expand)
    max_lengths = max_output_length(src_lengths.to(device), options.max_length_ratio, options.max_length_constant,
                                    options.max_length)  # (B,)
    if prefix is not None:
        max_lengths = torch.maximum(max_lengths, prefix.lengths + 1)
    final_steps = set(max_lengths.tolist())  # steps at which some sentence must stop, known before the loop

    alive = torch.arange(batch_size, device=device)  # (A,) sentences still being decoded
    tokens = src.new_full((batch_size * k,), bos_id)  # (A*K,) last token of each live beam
    live = torch.full((batch_size, k), NEG_INF, device=device)  # (A, K) log-probs of the live beams
    live[:, 0] = 0.0  # one start hypothesis per sentence, or the K beams would be K copies of it
    pool = None  # made at the first step, in the dtype of the scores

    def full_batch(values: Tensor, fill: float) -> Tensor:
        """(A, ...) rows of the alive sentences -> (B, ...), ``fill`` for the others."""
        return values.new_full((batch_size,) + values.shape[1:], fill).index_copy_(0, alive, values)

    history_tokens, history_origins, history_attention = [], [], []  # per step: (B, K), (B, K), (B, K, S)
    for step in range(1, max(final_steps) + 1):
        num_alive = alive.numel()
        log_probs, attention, state = _next_log_probs(model, tokens, memory, state, (pad_id, bos_id))  # (A*K, V)
        if prefix is not None:
            log_probs = prefix.index_select(alive.repeat_interleave(k)).force(log_probs, step)
        vocab_size = log_probs.size(-1)
        candidates = live.unsqueeze(-1) + log_probs.view(num_alive, k, vocab_size)  # (A, K, V)
        candidate_scores, candidate_ids = candidates.view(num_alive, k * vocab_size).topk(2 * k, dim=1)  # (A, 2K)
        candidate_origins, candidate_tokens = candidate_ids // vocab_size, candidate_ids % vocab_size
        candidate_eos = candidate_tokens == eos_id

        penalty = ((5.0 + step) / 6.0) ** length_penalty
        lengths = torch.full_like(candidate_origins[:, :k], step)  # (A, K)
        finished = _Pool(
            candidate_scores[:, :k].masked_fill(~candidate_eos[:, :k], NEG_INF) / penalty,
            lengths,
            candidate_origins[:, :k],
            candidate_tokens[:, :k],
        )
        live, picks = candidate_scores.masked_fill(candidate_eos, NEG_INF).topk(k, dim=1)  # (A, K)
        origins, tokens = candidate_origins.gather(1, picks), candidate_tokens.gather(1, picks)  # (A, K)
        history_tokens.append(full_batch(tokens, pad_id))
        history_origins.append(full_batch(origins, 0))
        history_attention.append(full_batch(attention.view(num_alive, k, -1), 0.0))

        at_limit = max_lengths[alive] <= step  # (A,)
        if step in final_steps:  # live hypotheses of sentences at their limit are finished as they are
            cut = _Pool((live / penalty).masked_fill(~at_limit.unsqueeze(1), NEG_INF), lengths, origins, tokens)
            finished = _Pool(*(torch.cat(pair, dim=1) for pair in zip(finished, cut)))  # (A, 2K) each
        if pool is None:
            pool = _Pool.empty(batch_size, k, candidate_scores.dtype, device, pad_id)
        pool.merge(alive, finished)

        done = pool.scores[alive, -1] > NEG_INF  # (A,) the pool is full (-inf: an empty slot) ...
        done &= pool.scores[alive, 0] >= live[:, 0] / penalty  # ... and no live one is ahead (column 0: the best)
        done |= at_limit
        rows = (torch.arange(num_alive, device=device) * k).unsqueeze(1) + origins  # (A, K) rows that go on
        if done.any():  # the one host sync of a step
            keep = (~done).nonzero().squeeze(1)  # (A',)
            if keep.numel() == 0:
                break
            alive, live, tokens, rows = alive[keep], live[keep], tokens[keep], rows[keep]
            memory = memory.index_select(rows.flatten())  # a sentence's K rows of memory are all the same
        state = state.index_select(rows.flatten())
        tokens = tokens.flatten()

    # Backtrack the n-best, (B, N) each. A hypothesis of length n ends with its pool's last token, read
    # from live beam ``cur`` of step n - 1 (so its attention is that row's at step n). Walking back, its
    # token at step j is live beam cur's token of step j, whose decoder step read beam origins[cur] of j - 1.
    history_tokens, history_origins = torch.stack(history_tokens), torch.stack(history_origins)  # (T, B, K)
    history_attention = torch.stack(history_attention)  # (T, B, K, S)
    num_steps, sentences = history_tokens.size(0), torch.arange(batch_size, device=device)
    scores, lengths, cur = pool.scores[:, :n_best], pool.lengths[:, :n_best], pool.origins[:, :n_best]
    best_attention = history_attention.new_zeros(batch_size, num_steps, history_attention.size(-1))  # (B, T, S)
    best_attention[sentences, lengths[:, 0] - 1] = history_attention[lengths[:, 0] - 1, sentences, cur[:, 0]]
    tokens = torch.full((batch_size, n_best, num_steps), pad_id, dtype=torch.long, device=device)  # (B, N, T)
    for j in range(num_steps - 1, 0, -1):  # step j is index j - 1 of the history
        active = j < lengths  # (B, N)
        tokens[:, :, j - 1] = torch.where(active, history_tokens[j - 1].gather(1, cur), pad_id)
        previous = torch.where(active, history_origins[j - 1].gather(1, cur), cur)
        best_attention[:, j - 1] = torch.where(
            active[:, :1], history_attention[j - 1, sentences, previous[:, 0]], best_attention[:, j - 1]
        )
        cur = previous
    tokens.scatter_(2, (lengths - 1).unsqueeze(-1), pool.last_tokens[:, :n_best].unsqueeze(-1))
    return _collect(tokens, lengths, scores, best_attention, src_lengths, eos_id)
