"""The one decoding path: sentences batched by length, searched, and put back in their input's order.

:class:`~seq2seq.inference.translator.Translator`, ``evaluate.py`` and the translation service all decode
through :func:`translate_ids` (and score through :func:`score_ids`). Sentences are sorted by source length
(longest first) so that a batch pads little; every result goes back to its input's position.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor

from seq2seq.data.collate import Batch, collate
from seq2seq.data.tokenizer import PAD_ID, TextTokenizer
from seq2seq.inference.sampling import Sampler
from seq2seq.inference.scoring import PairScore, target_log_probs
from seq2seq.inference.search import Hypotheses, Prefix, beam_search, greedy_search

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Translation:
    """One sentence's result.

    ``text`` and ``score`` (sum of log-probs for greedy search and sampling, length-normalised for beam
    search) are the best hypothesis's; ``nbest`` its (text, score) list, best first. ``source_pieces`` and
    ``output_pieces`` are the tokenizer pieces the model read and wrote (``<eos>`` last when it ended);
    ``attention[j][i]`` is output piece j's weight on source piece i; ``alignment`` the hard alignment,
    (i, j) pairs: each output piece but eos with the source piece it attended to most.
    """

    text: str
    score: float
    nbest: list[tuple[str, float]]
    alignment: list[tuple[int, int]] = field(default_factory=list)
    attention: list[list[float]] = field(default_factory=list)
    source_pieces: list[str] = field(default_factory=list)
    output_pieces: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"text": self.text, "score": self.score, "nbest": [list(entry) for entry in self.nbest],
                "alignment": [list(pair) for pair in self.alignment], "attention": self.attention,
                "source_pieces": self.source_pieces, "output_pieces": self.output_pieces}


EMPTY = Translation("", 0.0, [("", 0.0)])


def resolve_max_length(translator, decode: Mapping) -> Optional[int]:
    return decode.get("max_length") or translator.output_cap


# ----------------------------------------------------------------------------------------------- decoding
def search(model, src: Tensor, src_lengths: Tensor, decode: Mapping, prefix: Optional[Prefix] = None,
           generator: Optional[torch.Generator] = None) -> Hypotheses:
    """Greedy search for ``beam_size`` 1 (sampling with ``decode["sampling"]``), beam search otherwise."""
    limits = dict(
        max_length_ratio=decode["max_length_ratio"],
        max_length_constant=decode["max_length_constant"],
        max_length=decode["max_length"],
    )
    sampling = decode.get("sampling", "none")
    if decode["beam_size"] == 1:
        sampler = None
        if sampling != "none":
            sampler = Sampler(sampling, decode.get("top_k", 10), decode.get("top_p", 0.9),
                              decode.get("temperature", 1.0), generator)
        return greedy_search(model, src, src_lengths, sampler=sampler, prefix=prefix, **limits)
    return beam_search(model, src, src_lengths, beam_size=decode["beam_size"],
                       length_penalty=decode["length_penalty"], n_best=decode["n_best"], prefix=prefix, **limits)


def pad_sources(sequences: Sequence[list[int]]) -> tuple[Tensor, Tensor]:
    """Non-empty id lists -> src (B, S) padded with ``PAD_ID``, src_lengths (B,)."""
    longest = max(len(ids) for ids in sequences)
    src = torch.tensor([ids + [PAD_ID] * (longest - len(ids)) for ids in sequences], dtype=torch.long)  # (B, S)
    return src, torch.tensor([len(ids) for ids in sequences], dtype=torch.long)


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: Optional[int] = None) -> list[list[int]]:
    """Indices of the non-empty entries of ``lengths`` in batches of similar length, longest first: at most
    ``batch_size`` sentences and ``max_tokens`` padded positions (sentences x the batch's longest) each; a
    sentence longer than ``max_tokens`` is a batch of its own. A batch that does not fit in memory fails at
    once, not at the end."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1 or null, got {max_tokens}")
    order = sorted((i for i, n in enumerate(lengths) if n), key=lambda i: -lengths[i])  # stable for ties
    batches: list[list[int]] = []
    for index in order:
        batch = batches[-1] if batches else None
        # The first sentence of a batch is its longest: adding one more makes len(batch) + 1 rows of that length.
        fits = batch is not None and len(batch) < batch_size and (
            max_tokens is None or (len(batch) + 1) * lengths[batch[0]] <= max_tokens)
        if fits:
            batch.append(index)
        else:
            batches.append([index])
    return batches


def translate_ids(
    translator,
    src_ids: Sequence[list[int]],
    decode: Mapping,
    batch_size: int,
    on_batch: Optional[Callable[[int], None]] = None,
    max_tokens: Optional[int] = None,
    prefixes: Optional[Sequence[list[int]]] = None,
) -> list[Translation]:
    """Translations of ``src_ids`` in their order; an empty id list gives an empty translation.

    ``decode`` has :class:`DecodeOptions`' keys (the search's: ``beam_size`` ... ``seed``; missing ones take
    their defaults); ``prefixes`` forced output starts, as id lists. Batches as :func:`length_batches`
    makes them. ``on_batch(n)`` is called after each batch of n sentences.
    """
    decode = dict(decode)
    decode["max_length"] = resolve_max_length(translator, decode)
    generator = None
    if decode.get("sampling", "none") != "none":
        generator = torch.Generator(device=translator.device)
        if decode.get("seed") is None:
            generator.seed()
        else:
            generator.manual_seed(int(decode["seed"]))
    results: list[Optional[Translation]] = [EMPTY if not ids else None for ids in src_ids]
    for chunk in length_batches([len(ids) for ids in src_ids], batch_size, max_tokens):
        src, src_lengths = pad_sources([src_ids[i] for i in chunk])
        prefix = None
        if prefixes is not None and any(prefixes[i] for i in chunk):
            prefix = Prefix.from_lists([prefixes[i] for i in chunk], translator.device)
        hypotheses = search(translator.model, src.to(translator.device), src_lengths.to(translator.device), decode,
                            prefix, generator)
        for row, index in enumerate(chunk):
            results[index] = _translation(translator, hypotheses, row, src_ids[index])
        if on_batch is not None:
            on_batch(len(chunk))
    return results  # type: ignore[return-value]  # every slot is filled


def _translation(translator, hypotheses: Hypotheses, row: int, src_ids: list[int]) -> Translation:
    decode_text = translator.tgt_tokenizer.decode
    tokens = hypotheses.tokens[row]
    attention = hypotheses.attention[row].float()  # (output pieces, eos included when it ended; source pieces)
    output_pieces = [translator.tgt_tokenizer.id_to_token(token) for token in tokens]
    if attention.size(0) > len(tokens):
        output_pieces.append("<eos>")
    alignment = [(int(i), j) for j, i in enumerate(attention[: len(tokens)].argmax(dim=1).tolist())]
    return Translation(
        text=decode_text(tokens),
        score=hypotheses.scores[row],
        nbest=[(decode_text(candidate), score) for candidate, score in hypotheses.nbest[row]],
        alignment=alignment,
        attention=[[round(weight, 6) for weight in weights] for weights in attention.tolist()],
        source_pieces=[translator.src_tokenizer.id_to_token(token) for token in src_ids],
        output_pieces=output_pieces,
    )


def score_ids(translator, src_ids: Sequence[list[int]], tgt_ids: Sequence[list[int]], batch_size: int,
              max_tokens: Optional[int] = None) -> list[PairScore]:
    """Teacher-forced scores of (source, target) id lists, in order, in length-sorted batches."""
    for index, (src, tgt) in enumerate(zip(src_ids, tgt_ids)):
        if not src:
            raise ValueError(f"score: pair {index + 1} has an empty source, which the model cannot score")
    lengths = [max(len(src), len(tgt) + 1) for src, tgt in zip(src_ids, tgt_ids)]
    results: list[Optional[PairScore]] = [None] * len(src_ids)
    for chunk in length_batches(lengths, batch_size, max_tokens):
        batch = collate([(i, src_ids[i], tgt_ids[i]) for i in chunk])
        batch = Batch(*(tensor.to(translator.device) for tensor in (batch.src, batch.src_lengths, batch.tgt_in,
                                                                     batch.tgt_out, batch.indices)))
        sums, counts = target_log_probs(translator.model, batch)
        for index, total, count in zip(chunk, sums.tolist(), counts.tolist()):
            results[index] = PairScore(total, int(count))
    return results  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------- raw text
@dataclass
class EncodedLines:
    """Source ids per input line ([] for an empty line), and the lines cut to the token limit."""

    ids: list[list[int]]
    truncated: list[tuple[int, int]]  # (1-based line number, its length in tokens before truncation)


def encode_lines(
    lines: Sequence[str], tokenizer: TextTokenizer, max_tokens: int, lowercase: bool = False
) -> EncodedLines:
    """Strip (as training data is stripped), optionally lowercase, encode, and cut to ``max_tokens``.

    Unknown pieces become ``<unk>``; nothing here fails on odd text.
    """
    if max_tokens < 1:
        raise ValueError(f"max_input_tokens must be at least 1, got {max_tokens}")
    texts = [line.strip() for line in lines]
    if lowercase:
        texts = [text.lower() for text in texts]
    non_empty = [i for i, text in enumerate(texts) if text]
    ids: list[list[int]] = [[] for _ in texts]
    for i, encoded in zip(non_empty, tokenizer.encode_batch([texts[i] for i in non_empty])):
        ids[i] = encoded
    truncated = []
    for i, line_ids in enumerate(ids):
        if len(line_ids) > max_tokens:
            truncated.append((i + 1, len(line_ids)))
            ids[i] = line_ids[:max_tokens]
    return EncodedLines(ids, truncated)


def warn_truncated(truncated: Sequence[tuple[int, int]], max_tokens: int, name: str, shown: int = 20) -> None:
    if not truncated:
        return
    listed = ", ".join(f"line {line} ({length} tokens)" for line, length in truncated[:shown])
    more = f" and {len(truncated) - shown} more" if len(truncated) > shown else ""
    log.warning(
        "%s: %d line(s) longer than max_input_tokens=%d source tokens were truncated to %d tokens: %s%s",
        name, len(truncated), max_tokens, max_tokens, listed, more,
    )


def translate_lines(
    translator,
    lines: Sequence[str],
    decode: Mapping,
    batch_size: int,
    max_input_tokens: int,
    lowercase: bool = False,
    name: str = "input",
    on_batch: Optional[Callable[[int], None]] = None,
    max_tokens: Optional[int] = None,
    prefixes: Optional[Sequence[list[int]]] = None,
) -> list[Translation]:
    """One translation per line, in order; empty lines give empty translations without touching the model,
    and lines longer than ``max_input_tokens`` source tokens are truncated with a warning naming them."""
    encoded = encode_lines(lines, translator.src_tokenizer, max_input_tokens, lowercase)
    warn_truncated(encoded.truncated, max_input_tokens, name)
    return translate_ids(translator, encoded.ids, decode, batch_size, on_batch, max_tokens, prefixes)
