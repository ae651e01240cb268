"""Preprocessing a training corpus once: streamed, encoded in chunks, cached by what decides the result.

``cached_tokenizers`` and ``cached_train_store`` are what the DataModule calls. Both look in the cache
folder (``data.cache_dir``) for a result made from the same inputs, and make it only when there is none:

- tokenizers: keyed by the training files' identity (resolved path, size, modification time), the file
  format and languages, lowercasing, empty-pair handling, the tokenizer kinds, vocabulary sizes, minimum
  frequency and ``data.tokenizer_sample_size``;
- the binarized split (:mod:`seq2seq.data.corpus_store`): keyed by the same file identity and reading
  settings, the two tokenizers' JSON, and the length limits.

Changing a file (its size or modification time), a tokenizer or a limit gives another key, so a stale
cache is never used; a later run with the same data and settings trains nothing and encodes nothing. Old
entries are not deleted automatically: the cache folder can be removed at any time.

Nothing holds the corpus in memory: files are read line by line (:class:`~seq2seq.data.corpus.PairReader`),
tokenizers train from a stream (or from a random sample of ``tokenizer_sample_size`` pairs), and pairs are
encoded ``CHUNK_SIZE`` at a time with the tokenizers' batch encoding (parallel in Rust, on every core) and
appended to the store's files. Progress (pairs/s, share of the files read, ETA) is logged every few seconds.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.data.corpus import PairReader, extra_reference_files, read_lines, resolve_text_file
from seq2seq.data.corpus_store import (
    StoredSplit,
    StoreWriter,
    exclusive,
    remove_leftovers,
    replace_folder,
    temporary_folder,
    token_dtype,
)
from seq2seq.data.tokenizer import TextTokenizer
from seq2seq.data.tokenizer_store import has_tokenizers, load_tokenizers, save_tokenizers
from seq2seq.data.vocabulary import file_digest, load_file, tokenizer_file

log = logging.getLogger(__name__)

CHUNK_SIZE = 10_000  # pairs encoded at once: large enough for the parallel encoder, small in memory
SAMPLE_SEED = 0  # the tokenizer sample does not depend on data.seed, so changing the seed reuses the cache
_REPORTED_LINES = 5


def default_cache_dir() -> Path:
    """``$SEQ2SEQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/seq2seq``, else ``~/.cache/seq2seq``."""
    if os.environ.get("SEQ2SEQ_CACHE_DIR"):
        return Path(os.environ["SEQ2SEQ_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "seq2seq"


@dataclass(frozen=True)
class PairSource:
    """Where a split's pairs come from and how they are read.

    ``description`` names the split and its files in messages, e.g. ``train (/x/train.de, /x/train.en)``.
    """

    paths: tuple[Path, ...]
    key: str
    description: str
    lowercase: bool
    drop_empty: bool
    # Further references of a validation or test split, ``{split}.{tgt_lang}.1``, ``.2``, …: one line per pair,
    # an empty line where a pair has no more (see seq2seq/data/in_memory.py).
    extra_reference_paths: tuple[Path, ...] = ()

    def reader(self) -> PairReader:
        """Yields ``(line number, source, target)``, with ``fraction_read`` for progress reports."""
        return PairReader(self.paths, self.key, lowercase=self.lowercase)

    def reading(self) -> dict[str, Any]:
        """What besides the files decides the pairs read (for the cache keys); text files: nothing, their names
        say it all (JSON Lines and datasets: the fields read)."""
        return {}

    def num_records(self) -> int:
        """At least the highest line number ``reader()`` yields."""
        return _count_lines(self.paths[0])

    def further_references(self, num_pairs: int) -> list[list[str]] | None:
        """Each pair's further references (none empty), for the ``num_pairs`` pairs ``reader()`` yields; None when
        the split has none. ValueError naming a further reference file whose line count differs."""
        if not self.extra_reference_paths:
            return None
        columns = []
        for path in self.extra_reference_paths:
            lines = read_lines(path, self.key)
            if len(lines) != num_pairs:
                raise ValueError(f"{self.key}: {path} has {len(lines)} lines but the split has {num_pairs} pairs: "
                                 f"each further reference file needs one line per pair (empty for none)")
            columns.append([line.lower() for line in lines] if self.lowercase else lines)
        return [[column[i] for column in columns if column[i]] for i in range(num_pairs)]

    def identity(self) -> list[dict[str, Any]]:
        """What tells whether the files changed: path, size and modification time of each."""
        identities = []
        for path in self.paths:
            stat = path.stat()
            identities.append({"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
        return identities

    def nonempty_pairs(self) -> Iterator[tuple[int, str, str]]:
        """``(line number, source, target)`` of every pair with both sides non-empty; an empty side is an error
        naming the line unless ``drop_empty``."""
        for line_number, src, tgt in self.reader():
            if src and tgt:
                yield line_number, src, tgt
            elif not self.drop_empty:
                raise ValueError(self.empty_pair_message(line_number, "source" if not src else "target"))

    def empty_pair_message(self, line_number: int, side: str) -> str:
        return (
            f"{self.description}: line {line_number} has an empty {side} sentence; "
            f"set data.drop_empty=true to drop such pairs"
        )


def split_source(root: Path, stem: str, split: str, key: str, *, format: str, src_lang: str, tgt_lang: str,
                 lowercase: bool, drop_empty: bool) -> PairSource:
    """The files of one split: ``{stem}.{src_lang}`` and ``{stem}.{tgt_lang}`` (``parallel``, plus the further
    references ``{stem}.{tgt_lang}.N`` of a validation or test split) or ``{stem}.tsv``."""
    extra: tuple[Path, ...] = ()
    if format == "parallel":
        paths = (resolve_text_file(root, f"{stem}.{src_lang}", key), resolve_text_file(root, f"{stem}.{tgt_lang}", key))
        if split != "train":
            extra = extra_reference_files(root, f"{stem}.{tgt_lang}", key)
    else:
        paths = (resolve_text_file(root, f"{stem}.tsv", key),)
    description = f"{split} ({', '.join(str(path) for path in paths + extra)})"
    return PairSource(paths, key, description, lowercase=lowercase, drop_empty=drop_empty, extra_reference_paths=extra)


def cache_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _reading(source: PairSource) -> dict[str, Any]:
    # Only where there is something to add: the keys of text files, and so their caches, stay as they were.
    reading = source.reading()
    return {"reading": reading} if reading else {}


class Progress:
    """Logs ``what: N pairs, R pairs/s, P% of the files, eta T`` at most every ``interval`` seconds."""

    def __init__(self, what: str, reader: PairReader, interval: float = 10.0) -> None:
        self.what, self.reader, self.interval = what, reader, interval
        self.start = self.last = time.monotonic()
        self.done = 0

    def advance(self, pairs: int) -> None:
        self.done += pairs
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        elapsed = now - self.start
        fraction = self.reader.fraction_read
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        log.info("%s: %s pairs, %s pairs/s, %.0f%% of the files, eta %s", self.what, f"{self.done:,}",
                 f"{self.done / elapsed:,.0f}", 100 * fraction, _clock(eta))

    def finish(self) -> float:
        elapsed = time.monotonic() - self.start
        log.info("%s: %s pairs in %.1f s (%s pairs/s)", self.what, f"{self.done:,}", elapsed,
                 f"{self.done / max(elapsed, 1e-9):,.0f}")
        return elapsed


def _clock(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# --- tokenizers -------------------------------------------------------------------------------------------


def _count_lines(path: Path) -> int:
    """Lines in a (possibly gzipped) file, counted in blocks without decoding (at most one too many)."""
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
        return 1 + sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


def _sample_mask(source: PairSource, sample_size: int) -> np.ndarray | None:
    """``mask[line_number]`` is True for a uniform random sample of ``sample_size`` lines (fixed seed), or None
    when the corpus has no more lines than that (then every pair is used)."""
    num_lines = source.num_records()
    if num_lines <= sample_size:
        return None
    chosen = np.zeros(num_lines + 2, dtype=bool)  # one byte per line: 4.5 MB for 4.5 M pairs
    chosen[np.random.default_rng(SAMPLE_SEED).choice(num_lines, sample_size, replace=False) + 1] = True
    return chosen


def _side(source: PairSource, side: int, mask: np.ndarray | None) -> Iterator[str]:
    """One side's sentences, streamed from the files (every pair, or the sampled lines only)."""
    for pair in source.nonempty_pairs():
        if mask is None or mask[pair[0]]:
            yield pair[side]


def train_tokenizers(source: PairSource, settings: dict[str, Any],
                     sample_size: int | None) -> tuple[TextTokenizer, TextTokenizer]:
    """Source and target tokenizers trained on the split's pairs (or a random sample of them), each side
    streamed from the files: memory does not grow with the corpus or the sample. A ``file:`` side is loaded
    instead; with ``share_vocab`` one tokenizer is trained on both sides' text, source then target."""
    start = time.monotonic()
    mask = _sample_mask(source, sample_size) if sample_size else None
    what = "every pair" if mask is None else f"a random sample of {sample_size:,} lines (data.tokenizer_sample_size)"

    def one(side: str, texts: Iterable[str]) -> TextTokenizer:
        setting = settings[f"{side}_tokenizer"]
        if tokenizer_file(setting) is not None:
            return load_file(setting, f"data.{side}_tokenizer")
        return TextTokenizer.train(texts, setting, settings[f"{side}_vocab_size"], settings["min_frequency"])

    if settings.get("share_vocab"):
        src = tgt = one("src", chain(_side(source, 1, mask), _side(source, 2, mask)))
    else:
        src, tgt = one("src", _side(source, 1, mask)), one("tgt", _side(source, 2, mask))
    log.info("tokenizers from %s of %s in %.1f s: source %s, target %s%s", what, source.description,
             time.monotonic() - start, src, tgt, " (one shared vocabulary)" if settings.get("share_vocab") else "")
    return src, tgt


def cached_tokenizers(cache_dir: Path, source: PairSource, settings: dict[str, Any],
                      sample_size: int | None) -> tuple[TextTokenizer, TextTokenizer]:
    """The tokenizers for ``settings`` (the ``data.*`` tokenizer settings), trained once and kept in the cache."""
    key = cache_key({"files": source.identity(), "settings": settings, "sample_size": sample_size,
                     "drop_empty": source.drop_empty, "lowercase": source.lowercase, **_reading(source),
                     **_tokenizer_file_digests(settings)})
    directory = Path(cache_dir) / f"tokenizers-{key}"
    with exclusive(directory, "the tokenizers"):
        if has_tokenizers(directory):
            return load_tokenizers(directory, settings)
        remove_leftovers(directory)
        src, tgt = train_tokenizers(source, settings, sample_size)
        temporary = temporary_folder(directory)
        try:
            save_tokenizers(temporary, src, tgt, settings)
            replace_folder(temporary, directory)
            log.info("cached the tokenizers in %s", directory)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        return src, tgt


def _tokenizer_file_digests(settings: dict[str, Any]) -> dict[str, str]:
    """The contents of ``file:`` tokenizers, for the cache key (none for trained kinds: keys stay as they were)."""
    digests = {f"{side}_tokenizer_file": file_digest(settings[f"{side}_tokenizer"], f"data.{side}_tokenizer")
               for side in ("src", "tgt")}
    return {name: digest for name, digest in digests.items() if digest is not None}


# --- the binarized training split -------------------------------------------------------------------------


@dataclass(frozen=True)
class LengthLimits:
    """``data.max_src_length`` / ``data.max_tgt_length``: training pairs with more tokens are dropped."""

    max_src_length: int | None
    max_tgt_length: int | None

    def describe(self) -> str:
        return f"data.max_src_length={self.max_src_length}, data.max_tgt_length={self.max_tgt_length}"


def _lengths(ids: Sequence[list[int]]) -> np.ndarray:
    return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))  # (n,)


def _flat(ids: Sequence[list[int]], keep: np.ndarray) -> np.ndarray:
    return np.fromiter(chain.from_iterable(ids[i] for i in keep), dtype=np.int64)


def _chunks(pairs: Iterable[tuple[int, str, str]], size: int) -> Iterator[list[tuple[int, str, str]]]:
    """Consecutive lists of ``size`` pairs (the last one shorter)."""
    iterator = iter(pairs)
    while chunk := list(islice(iterator, size)):
        yield chunk


def build_train_store(directory: Path, source: PairSource, tokenizers: tuple[TextTokenizer, TextTokenizer],
                      limits: LengthLimits, chunk_size: int = CHUNK_SIZE) -> StoredSplit:
    """Read, encode, filter and write the split into ``directory`` (see :mod:`seq2seq.data.corpus_store`)."""
    src_tokenizer, tgt_tokenizer = tokenizers
    reader = source.reader()
    progress = Progress(f"preprocessing {source.description}", reader)
    num_read = num_empty = num_too_long = 0
    too_long_lines: list[int] = []
    writer = StoreWriter(directory, src_dtype=token_dtype(src_tokenizer.vocab_size),
                         tgt_dtype=token_dtype(tgt_tokenizer.vocab_size))
    with writer:
        for chunk in _chunks(reader, chunk_size):
            line_numbers = np.fromiter((n for n, _, _ in chunk), dtype=np.int64, count=len(chunk))  # (n,)
            src_ids = src_tokenizer.encode_batch([src for _, src, _ in chunk])
            tgt_ids = tgt_tokenizer.encode_batch([tgt for _, _, tgt in chunk])
            src_lengths, tgt_lengths = _lengths(src_ids), _lengths(tgt_ids)  # (n,) each
            # A side that is empty, or that encodes to nothing (it cannot be packed), is an empty pair.
            empty = (src_lengths == 0) | (tgt_lengths == 0)
            if empty.any():
                if not source.drop_empty:
                    first = int(np.flatnonzero(empty)[0])
                    side = "source" if src_lengths[first] == 0 else "target"
                    raise ValueError(source.empty_pair_message(int(line_numbers[first]), side))
                num_empty += int(empty.sum())
            too_long = np.zeros(len(chunk), dtype=bool)  # (n,)
            if limits.max_src_length is not None:
                too_long |= src_lengths > limits.max_src_length
            if limits.max_tgt_length is not None:
                too_long |= tgt_lengths > limits.max_tgt_length
            too_long &= ~empty
            num_too_long += int(too_long.sum())
            too_long_lines.extend(line_numbers[too_long][: _REPORTED_LINES - len(too_long_lines)].tolist())
            keep = np.flatnonzero(~empty & ~too_long)
            writer.append((_flat(src_ids, keep), src_lengths[keep]), (_flat(tgt_ids, keep), tgt_lengths[keep]),
                          line_numbers[keep])
            num_read += len(chunk)
            progress.advance(len(chunk))
        seconds = progress.finish()
        if writer.num_examples == 0:
            raise ValueError(
                f"{source.description}: all {num_read} pairs were filtered out ({num_empty} empty, {num_too_long} "
                f"too long with {limits.describe()}, data.drop_empty={source.drop_empty})"
            )
        return writer.publish({
            "name": source.description,
            "files": source.identity(),
            "num_read": num_read,
            "num_empty_dropped": num_empty,
            "num_too_long_dropped": num_too_long,
            "first_too_long_lines": too_long_lines,
            "limits": limits.describe(),
            "seconds": round(seconds, 1),
        })


def cached_train_store(cache_dir: Path, source: PairSource, tokenizers: tuple[TextTokenizer, TextTokenizer],
                       limits: LengthLimits) -> StoredSplit:
    """The binarized training split: opened from the cache, or built into it once (other processes wait)."""
    key = cache_key({
        "files": source.identity(),
        "lowercase": source.lowercase,
        "drop_empty": source.drop_empty,
        "tokenizers": [hashlib.sha256(t.to_json().encode()).hexdigest() for t in tokenizers],
        "max_src_length": limits.max_src_length,
        "max_tgt_length": limits.max_tgt_length,
        **_reading(source),
    })
    directory = Path(cache_dir) / f"train-{key}"
    with exclusive(directory, f"the binarized {source.description}"):
        stored = None
        if directory.is_dir():
            try:
                stored = StoredSplit(directory)
            except (ValueError, KeyError) as error:
                log.warning("rebuilding %s: %s", directory, error)
        if stored is None:
            remove_leftovers(directory)
            stored = build_train_store(directory, source, tokenizers, limits)
        else:
            log.info("%s: %s pairs from the cache %s", source.description, f"{len(stored):,}", directory)
    report_dropped(stored)
    return stored


def report_dropped(stored: StoredSplit) -> None:
    """Warn, at every start, about what preprocessing dropped (the numbers are in the store's ``meta.json``)."""
    meta = stored.meta
    if meta["num_empty_dropped"]:
        log.warning("%s: dropped %d of %d pairs with an empty side (data.drop_empty=true)", stored.name,
                    meta["num_empty_dropped"], meta["num_read"])
    if meta["num_too_long_dropped"]:
        lines = ", ".join(str(n) for n in meta["first_too_long_lines"])
        more = ", ..." if meta["num_too_long_dropped"] > len(meta["first_too_long_lines"]) else ""
        log.warning("%s: dropped %d of %d pairs longer than the limits (%s tokens): lines %s%s", stored.name,
                    meta["num_too_long_dropped"], meta["num_read"], meta["limits"], lines, more)
