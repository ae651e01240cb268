"""Translating with a trained model: rebuild it from a checkpoint, decode batches, raw text in and out.

No Hydra here: callers pass plain values (``decode`` is a mapping with ``DecodeConfig``'s keys).

Decoding sorts sentences by source length (longest first) so that a batch pads little, then puts every
output back at its input's position: callers always get results in their own order.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from seq2seq.checkpoint import CheckpointError, StoredCheckpoint
from seq2seq.data.atomic import write_text_atomic
from seq2seq.data.tokenizer import PAD_ID, TextTokenizer
from seq2seq.inference.search import Hypotheses, beam_search, greedy_search
from seq2seq.models import Seq2Seq

log = logging.getLogger(__name__)

MODEL_PREFIX = "model."  # TranslationModule keeps its Seq2Seq as ``self.model``
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Translation:
    """One sentence's result: the best translation and, best first, the n-best (text, score) list."""

    text: str
    score: float
    nbest: list[tuple[str, float]]


EMPTY = Translation("", 0.0, [("", 0.0)])


@dataclass
class Translator:
    """A model in eval mode on ``device`` and the tokenizers it was trained with."""

    model: Seq2Seq
    src_tokenizer: TextTokenizer
    tgt_tokenizer: TextTokenizer
    device: torch.device


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), or a torch device string; ValueError naming ``device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"device: {name!r} is not a device; use auto, cpu, cuda or cuda:N") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name} but CUDA is not available here; use device=cpu or device=auto")
    return device


def build_model(stored: StoredCheckpoint, key: str = "ckpt_path") -> Seq2Seq:
    """``Seq2Seq(src_vocab_size, tgt_vocab_size, **hyper_parameters["model"])`` with the stored ``model.*`` weights."""
    path, hparams = stored.path, stored.hyper_parameters
    try:
        settings = dict(hparams["model"])
        vocab_sizes = {"source": int(hparams["src_vocab_size"]), "target": int(hparams["tgt_vocab_size"])}
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"{key}: {path} has no usable hyper_parameters ({error!r} missing or malformed)"
        ) from error
    for side, tokenizer in (("source", stored.src_tokenizer), ("target", stored.tgt_tokenizer)):
        if tokenizer.vocab_size != vocab_sizes[side]:
            raise CheckpointError(
                f"{key}: {path} has a {side} tokenizer of {tokenizer.vocab_size} tokens but a model built for "
                f"{vocab_sizes[side]}"
            )
    try:
        model = Seq2Seq(vocab_sizes["source"], vocab_sizes["target"], **settings)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{key}: {path}: cannot rebuild the model from its hyperparameters: {error}") from error
    weights = {
        name[len(MODEL_PREFIX):]: value for name, value in stored.state_dict.items() if name.startswith(MODEL_PREFIX)
    }
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        first_lines = " ".join(str(error).split())[:500]
        raise CheckpointError(f"{key}: {path}: its weights do not fit the model it describes: {first_lines}") from error
    return model.eval()


def load_translator(stored: StoredCheckpoint, device: torch.device) -> Translator:
    return Translator(build_model(stored).to(device), stored.src_tokenizer, stored.tgt_tokenizer, device)


# ----------------------------------------------------------------------------------------------- decoding
def search(model, src: Tensor, src_lengths: Tensor, decode: Mapping) -> Hypotheses:
    """Greedy search for ``beam_size`` 1, beam search otherwise, with ``decode``'s length limits."""
    limits = dict(
        max_length_ratio=decode["max_length_ratio"],
        max_length_constant=decode["max_length_constant"],
        max_length=decode["max_length"],
    )
    if decode["beam_size"] == 1:
        return greedy_search(model, src, src_lengths, **limits)
    return beam_search(
        model,
        src,
        src_lengths,
        beam_size=decode["beam_size"],
        length_penalty=decode["length_penalty"],
        n_best=decode["n_best"],
        **limits,
    )


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
    translator: Translator,
    src_ids: Sequence[list[int]],
    decode: Mapping,
    batch_size: int,
    on_batch: Optional[Callable[[int], None]] = None,
    max_tokens: Optional[int] = None,
) -> list[Translation]:
    """Translations of ``src_ids`` in their order; an empty id list gives an empty translation.

    Batches as :func:`length_batches` makes them. ``on_batch(n)`` is called after each batch of n sentences.
    """
    results: list[Optional[Translation]] = [EMPTY if not ids else None for ids in src_ids]
    decode_text = translator.tgt_tokenizer.decode
    for chunk in length_batches([len(ids) for ids in src_ids], batch_size, max_tokens):
        src, src_lengths = pad_sources([src_ids[i] for i in chunk])
        hypotheses = search(translator.model, src.to(translator.device), src_lengths.to(translator.device), decode)
        for row, index in enumerate(chunk):
            nbest = [(decode_text(tokens), score) for tokens, score in hypotheses.nbest[row]]
            results[index] = Translation(decode_text(hypotheses.tokens[row]), hypotheses.scores[row], nbest)
        if on_batch is not None:
            on_batch(len(chunk))
    return results  # type: ignore[return-value]  # every slot is filled


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
    translator: Translator,
    lines: Sequence[str],
    decode: Mapping,
    batch_size: int,
    max_input_tokens: int,
    lowercase: bool = False,
    name: str = "input",
    on_batch: Optional[Callable[[int], None]] = None,
    max_tokens: Optional[int] = None,
) -> list[Translation]:
    """One translation per line, in order; empty lines give empty translations without touching the model,
    and lines longer than ``max_input_tokens`` source tokens are truncated with a warning naming them."""
    encoded = encode_lines(lines, translator.src_tokenizer, max_input_tokens, lowercase)
    warn_truncated(encoded.truncated, max_input_tokens, name)
    return translate_ids(translator, encoded.ids, decode, batch_size, on_batch, max_tokens)


def read_input(source: str) -> list[str]:
    """Lines of a UTF-8 file, or of stdin for ``-``: split on ``\\n`` only (as training data is; CRLF and a
    BOM are fine), a final newline making no extra line. Errors name ``input``, the file and the line."""
    if source == "-":
        data, name = sys.stdin.buffer.read(), "<stdin>"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"input: file not found: {path}")
        data, name = path.read_bytes(), str(path)
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM):]
    raw_lines = data.split(b"\n")
    if raw_lines[-1] == b"":
        raw_lines.pop()
    lines = []
    for line_number, raw in enumerate(raw_lines, start=1):
        try:
            lines.append(raw.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as error:
            raise ValueError(
                f"input: {name}:{line_number}: not valid UTF-8 "
                f"(byte {raw[error.start]:#04x} at column {error.start + 1})"
            ) from error
    return lines


def format_translations(translations: Sequence[Translation], n_best: int = 1) -> str:
    """One line per sentence; with ``n_best > 1`` Moses' n-best format ``index ||| text ||| score`` (0-based)."""
    if n_best == 1:
        lines = [translation.text for translation in translations]
    else:
        lines = [
            f"{index} ||| {text} ||| {score:.4f}"
            for index, translation in enumerate(translations)
            for text, score in translation.nbest[:n_best]
        ]
    return "".join(f"{line}\n" for line in lines)


def write_output(text: str, destination: Optional[Path]) -> None:
    """To stdout (``None``), or atomically to a file (a temp file, then ``os.replace``)."""
    if destination is not None:
        write_text_atomic(destination, text)
        return
    try:
        # UTF-8 whatever the locale, like the files read and written everywhere else.
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            sys.stdout.flush()
            buffer.write(text.encode("utf-8"))
        else:
            sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early (``| head``): not an error. Point stdout at /dev/null so that the
        # interpreter's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
