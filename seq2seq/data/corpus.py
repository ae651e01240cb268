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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


def _read_bytes(path: Path, key: str) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"{key}: file not found: {path}")
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise ValueError(f"{key}: {path} is not a valid gzip file ({e})") from e
    return path.read_bytes()


def _decode_lines(path: Path, key: str) -> list[str]:
    """The file's lines, decoded but not stripped (see ``read_lines``)."""
    path = Path(path)
    data = _read_bytes(path, key)
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    if not data.strip():
        raise ValueError(f"{key}: {path} is empty")
    raw_lines = data.split(b"\n")
    if raw_lines[-1] == b"":  # the file ends with a newline
        raw_lines.pop()
    lines = []
    for line_number, raw in enumerate(raw_lines, start=1):
        if b"\x00" in raw:
            raise ValueError(f"{key}: {path}:{line_number}: contains NUL bytes; is this a binary file?")
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(
                f"{key}: {path}:{line_number}: not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})"
            ) from e
    return lines


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
    pairs = []
    for line_number, line in enumerate(_decode_lines(path, key), start=1):
        line = line.rstrip("\r\n")  # not strip(): "source<TAB>" is an empty target, not a missing tab
        fields = line.split("\t")
        if line.strip() and len(fields) != 2:
            raise ValueError(
                f"{key}: {path}:{line_number}: expected 'source<TAB>target' (exactly one tab), "
                f"found {len(fields) - 1} tabs"
            )
        src, tgt = fields if line.strip() else ("", "")
        pairs.append((src.strip(), tgt.strip()))
    return pairs


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
