"""Reading and validating sentence-aligned text.

Every reader takes the config ``key`` that set the path, so an error says both *which file* and *which
setting* to fix: ``data.root: file not found: /x/train.de``. Lines are split on ``\\n`` only — never with
``str.splitlines``, which also breaks on U+2028, U+0085, form feeds and lone ``\\r`` and would silently
misalign two parallel files.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

log = logging.getLogger(__name__)

_UTF8_BOM = b"\xef\xbb\xbf"


def resolve_text_file(root: Path, name: str, key: str) -> Path:
    """``root/name.gz`` when it exists, else ``root/name``; FileNotFoundError naming both when neither does."""
    gz_path = root / f"{name}.gz"
    plain_path = root / name
    if gz_path.is_file():
        return gz_path
    if plain_path.is_file():
        return plain_path
    raise FileNotFoundError(f"{key}: file not found: {plain_path} (also tried {gz_path})")


class LineReader:
    """The lines of a UTF-8 text file (``.gz`` decided by suffix), decoded but not stripped, read as a stream.

    Iterating yields ``(line_number, text)``; the whole file is never in memory, so a corpus of any size can
    be read. Lines are split on ``\\n`` only; a leading BOM is dropped; a final newline does not make an
    extra empty line. ``fraction_read`` (0 to 1, bytes of the file on disk) drives progress reports.

    Raises (while iterating), naming ``key``, the file and the line:
        FileNotFoundError: the file does not exist (when constructed).
        ValueError: the file is empty or blank, contains NUL bytes, is not UTF-8, or is not valid gzip.
    """

    def __init__(self, path: Path, key: str) -> None:
        self.path = Path(path)
        self.key = key
        if not self.path.is_file():
            raise FileNotFoundError(f"{key}: file not found: {self.path}")
        self._size = max(self.path.stat().st_size, 1)
        self._raw = None

    @property
    def fraction_read(self) -> float:
        if self._raw is None or self._raw.closed:
            return 0.0
        return min(self._raw.tell() / self._size, 1.0)

    def __iter__(self) -> Iterator[tuple[int, str]]:
        path, key = self.path, self.key
        with open(path, "rb") as raw:
            self._raw = raw
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if path.suffix == ".gz" else raw
            seen_text = False
            try:
                for line_number, line in enumerate(stream, start=1):
                    if line.endswith(b"\n"):
                        line = line[:-1]
                    if line_number == 1 and line.startswith(_UTF8_BOM):
                        line = line[len(_UTF8_BOM) :]
                    if b"\x00" in line:
                        raise ValueError(f"{key}: {path}:{line_number}: contains NUL bytes; is this a binary file?")
                    try:
                        text = line.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise ValueError(
                            f"{key}: {path}:{line_number}: not valid UTF-8 "
                            f"(byte {line[e.start]:#04x} at column {e.start + 1})"
                        ) from e
                    seen_text = seen_text or bool(text.strip())
                    yield line_number, text
            except (gzip.BadGzipFile, EOFError, zlib.error) as e:
                raise ValueError(f"{key}: {path} is not a valid gzip file ({e})") from e
            if not seen_text:
                raise ValueError(f"{key}: {path} is empty")


def extra_reference_files(root: Path, name: str, key: str) -> tuple[Path, ...]:
    """``root/name.1``, ``root/name.2``, … (each plain or ``.gz``) as far as they go without a gap."""
    found = []
    while True:
        try:
            found.append(resolve_text_file(root, f"{name}.{len(found) + 1}", key))
        except FileNotFoundError:
            return tuple(found)


def _decode_lines(path: Path, key: str) -> list[str]:
    """The file's lines, decoded but not stripped (see ``read_lines``)."""
    return [text for _, text in LineReader(path, key)]


def read_lines(path: Path, key: str) -> list[str]:
    """All lines of a UTF-8 text file (``.gz`` decided by suffix), each ``.strip()``-ed.

    CRLF line ends and a leading BOM are accepted. A final newline does not make an extra empty line;
    empty lines in the middle are kept (``filter_pairs`` decides what to do with them) so that line
    numbers stay aligned with the file.

    Raises:
        FileNotFoundError: the file does not exist (message names ``key``).
        ValueError: the file is empty, contains NUL bytes, or is not UTF-8 (message names the line).
    """
    return [line.strip() for line in _decode_lines(path, key)]


def read_parallel(src_path: Path, tgt_path: Path, key: str) -> list[tuple[str, str]]:
    """Line-aligned pairs from two files; ValueError naming both files and counts when they differ."""
    src_lines = read_lines(src_path, key)
    tgt_lines = read_lines(tgt_path, key)
    if len(src_lines) != len(tgt_lines):
        raise ValueError(
            f"{key}: parallel files have different line counts: "
            f"{src_path} has {len(src_lines)} lines, {tgt_path} has {len(tgt_lines)}"
        )
    return list(zip(src_lines, tgt_lines))


def read_tsv(path: Path, key: str) -> list[tuple[str, str]]:
    """Pairs from a ``source<TAB>target`` file; ValueError naming the line that lacks exactly one tab."""
    return [_split_tsv_line(line, Path(path), n, key) for n, line in LineReader(path, key)]


class PairReader:
    """Sentence pairs streamed from two line-aligned files or one ``source<TAB>target`` file.

    Iterating yields ``(line_number, source, target)``, both sides ``.strip()``-ed, with the same checks as
    ``read_parallel`` / ``read_tsv`` (which read everything at once): different line counts are an error
    naming both files and their counts, found when the shorter file ends.
    """

    def __init__(self, paths: Sequence[Path], key: str, *, lowercase: bool = False) -> None:
        if len(paths) not in (1, 2):
            raise ValueError(f"PairReader takes one TSV file or two parallel files, got {len(paths)}")
        self.readers = [LineReader(path, key) for path in paths]
        self.key = key
        self.lowercase = lowercase

    @property
    def paths(self) -> list[Path]:
        return [reader.path for reader in self.readers]

    @property
    def fraction_read(self) -> float:
        return min(reader.fraction_read for reader in self.readers)

    def __iter__(self) -> Iterator[tuple[int, str, str]]:
        pairs = self._parallel() if len(self.readers) == 2 else self._tsv()
        if not self.lowercase:
            return pairs
        return ((n, src.lower(), tgt.lower()) for n, src, tgt in pairs)

    def _parallel(self) -> Iterator[tuple[int, str, str]]:
        src_reader, tgt_reader = self.readers
        src_count = tgt_count = 0
        for src_line, tgt_line in zip_longest(src_reader, tgt_reader):
            src_count += src_line is not None
            tgt_count += tgt_line is not None
            if src_line is not None and tgt_line is not None:
                yield src_line[0], src_line[1].strip(), tgt_line[1].strip()
        if src_count != tgt_count:
            raise ValueError(
                f"{self.key}: parallel files have different line counts: "
                f"{src_reader.path} has {src_count} lines, {tgt_reader.path} has {tgt_count}"
            )

    def _tsv(self) -> Iterator[tuple[int, str, str]]:
        (reader,) = self.readers
        for line_number, line in reader:
            src, tgt = _split_tsv_line(line, reader.path, line_number, self.key)
            yield line_number, src, tgt


def _split_tsv_line(line: str, path: Path, line_number: int, key: str) -> tuple[str, str]:
    line = line.rstrip("\r\n")  # not strip(): "source<TAB>" is an empty target, not a missing tab
    fields = line.split("\t")
    if not line.strip():
        return "", ""
    if len(fields) != 2:
        raise ValueError(
            f"{key}: {path}:{line_number}: expected 'source<TAB>target' (exactly one tab), found {len(fields) - 1} tabs"
        )
    return fields[0].strip(), fields[1].strip()


@dataclass
class FilteredPairs:
    """What ``filter_pairs`` kept: ``pairs[i]`` was at position ``indices[i]`` of the input."""

    pairs: list[tuple[str, str]]
    indices: list[int]
    num_empty_dropped: int
    num_too_long_dropped: int


def filter_pairs(
    pairs: Sequence[tuple[str, str]],
    *,
    name: str,
    drop_empty: bool,
    max_src_length: int | None = None,
    max_tgt_length: int | None = None,
    src_len_fn: Callable[[str], int] | None = None,
    tgt_len_fn: Callable[[str], int] | None = None,
) -> FilteredPairs:
    """Drop empty and over-long pairs, explicitly and loudly.

    Args:
        pairs: (source, target) strings; position ``i`` is reported as line ``i + 1``.
        name: the split and its files, used in messages, e.g. ``"train (/x/train.de, /x/train.en)"``.
        drop_empty: drop pairs where either side is empty; otherwise the first one is an error.
        max_src_length, max_tgt_length: drop pairs longer than this, measured by ``src_len_fn`` /
            ``tgt_len_fn`` (tokens); ``None`` keeps all lengths.

    Raises:
        ValueError: an empty side while ``drop_empty`` is False (naming the line), a limit without its
            length function, or nothing left after filtering (naming the limits).
    """
    for limit_name, limit, len_fn in (
        ("max_src_length", max_src_length, src_len_fn),
        ("max_tgt_length", max_tgt_length, tgt_len_fn),
    ):
        if limit is not None and limit < 1:
            raise ValueError(f"data.{limit_name} must be >= 1 or null, got {limit}")
        if limit is not None and len_fn is None:
            raise ValueError(f"filter_pairs: {limit_name} is set but no length function was given")

    kept, indices = [], []
    num_empty = num_too_long = 0
    for i, (src, tgt) in enumerate(pairs):
        if not src or not tgt:
            if not drop_empty:
                side = "source" if not src else "target"
                raise ValueError(
                    f"{name}: line {i + 1} has an empty {side} sentence; "
                    f"set data.drop_empty=true to drop such pairs"
                )
            num_empty += 1
            continue
        if (max_src_length is not None and src_len_fn(src) > max_src_length) or (
            max_tgt_length is not None and tgt_len_fn(tgt) > max_tgt_length
        ):
            num_too_long += 1
            continue
        kept.append((src, tgt))
        indices.append(i)

    limits = f"data.max_src_length={max_src_length}, data.max_tgt_length={max_tgt_length}"
    if num_empty:
        log.warning("%s: dropped %d of %d pairs with an empty side (data.drop_empty=true)", name, num_empty, len(pairs))
    if num_too_long:
        log.warning(
            "%s: dropped %d of %d pairs longer than the limits (%s tokens)", name, num_too_long, len(pairs), limits
        )
    if not kept:
        raise ValueError(
            f"{name}: all {len(pairs)} pairs were filtered out "
            f"({num_empty} empty, {num_too_long} too long with {limits}, data.drop_empty={drop_empty})"
        )
    return FilteredPairs(kept, indices, num_empty, num_too_long)
