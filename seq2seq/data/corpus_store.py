"""A binarized split on disk: flat token-id arrays with offsets, opened as memory maps.

One folder per split and per everything that decides its contents (see :mod:`seq2seq.data.preprocess`)::

    {folder}/src.tokens   all source ids, one example after another (uint16, or int32 for vocabularies > 65535)
    {folder}/src.offsets  int64, N + 1 entries: example i is src.tokens[offsets[i]:offsets[i + 1]]
    {folder}/tgt.tokens   the same for the target side
    {folder}/tgt.offsets
    {folder}/lines        int64, N entries: the 1-based line of example i in the split's files (error messages)
    {folder}/meta.json    counts, dtypes, what was dropped and why; written last

The arrays are ``numpy.memmap``-ed read-only, so every process that opens the folder — each DDP rank, each
DataLoader worker — reads the same pages of the operating system's page cache: the corpus costs memory once
per machine, not once per process, and opening it takes milliseconds whatever its size. Pickling a
:class:`StoredSplit` (``ddp_spawn``, spawned workers) sends the folder's path, not the arrays.

A folder is written under a temporary name and renamed into place only when complete (``publish``), so a
reader never sees half of one; a writer killed half-way leaves a temporary folder that the next build
removes. :func:`exclusive` serializes the processes that would build the same folder: the first builds, the
others wait and then open what it built.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

log = logging.getLogger(__name__)

STORE_VERSION = 1
META_FILE = "meta.json"
_TOKEN_DTYPES = {"uint16": np.uint16, "int32": np.int32}


def token_dtype(vocab_size: int) -> str:
    """The smallest id type that holds every id of a vocabulary of ``vocab_size``."""
    return "uint16" if vocab_size <= np.iinfo(np.uint16).max + 1 else "int32"


def _open_array(path: Path, dtype: Any, count: int) -> np.ndarray:
    expected = count * np.dtype(dtype).itemsize
    actual = path.stat().st_size if path.is_file() else -1
    if actual != expected:
        raise ValueError(f"{path}: {actual} bytes, expected {expected}; the cache is damaged")
    if count == 0:  # numpy cannot map an empty file
        return np.empty(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,))


class TokenSequences:
    """Read-only sequence of examples' token ids over a flat array and its offsets.

    ``sequences[i]`` is a list of ints (what ``collate`` takes); ``lengths()`` all lengths as one array.
    """

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray) -> None:
        self.tokens = tokens  # (num_tokens,)
        self.offsets = offsets  # (N + 1,)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> list[int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} examples")
        index %= len(self)
        return self.tokens[self.offsets[index] : self.offsets[index + 1]].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        return (self[i] for i in range(len(self)))

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)  # (N,)


class StoredSplit:
    """An opened store folder: ``src_ids``, ``tgt_ids`` (:class:`TokenSequences`), ``line_numbers`` and
    ``meta`` (the dict in ``meta.json``). Raises ValueError when the folder is incomplete or damaged."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        meta_path = self.directory / META_FILE
        try:
            self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"{meta_path}: cannot be read ({error}); the cache is damaged") from error
        if self.meta.get("version") != STORE_VERSION:
            raise ValueError(f"{meta_path}: store version {self.meta.get('version')}, expected {STORE_VERSION}")
        num_examples = int(self.meta["num_examples"])
        self.name = str(self.meta["name"])
        self.src_ids = self._sequences("src", num_examples)
        self.tgt_ids = self._sequences("tgt", num_examples)
        self.line_numbers = _open_array(self.directory / "lines", np.int64, num_examples)  # (N,)

    def _sequences(self, side: str, num_examples: int) -> TokenSequences:
        dtype = _TOKEN_DTYPES[self.meta[f"{side}_dtype"]]
        offsets = _open_array(self.directory / f"{side}.offsets", np.int64, num_examples + 1)
        if offsets[-1] != int(self.meta[f"{side}_num_tokens"]):
            raise ValueError(f"{self.directory}/{side}.offsets: does not end at the token count; the cache is damaged")
        return TokenSequences(_open_array(self.directory / f"{side}.tokens", dtype, int(offsets[-1])), offsets)

    def __len__(self) -> int:
        return len(self.line_numbers)

    def bucket_lengths(self) -> np.ndarray:
        """Padded length of each example in a batch: ``tgt_in``/``tgt_out`` are one longer than the target."""
        src_lengths = self.src_ids.lengths().astype(np.int32)
        return np.maximum(src_lengths, self.tgt_ids.lengths().astype(np.int32) + 1, out=src_lengths)  # (N,)

    def source_and_decoder_lengths(self) -> np.ndarray:
        """Each example's source length, and the decoder's steps (``tgt_in`` is the target and a start token)."""
        return np.stack([self.src_ids.lengths(), self.tgt_ids.lengths() + 1]).astype(np.int32)  # (2, N)

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": str(self.directory)}  # the receiving process maps the same files

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(Path(state["directory"]))

    def __repr__(self) -> str:
        return f"StoredSplit({self.name!r}, {len(self):,} examples, {self.directory})"


class StoreWriter:
    """Appends examples to a new store folder under a temporary name; ``publish`` renames it into place.

    Use as a context manager: leaving it without ``publish`` (an error, a Ctrl-C) deletes the temporary folder.
    """

    def __init__(self, directory: Path, *, src_dtype: str, tgt_dtype: str) -> None:
        self.directory = Path(directory)
        self.temporary = temporary_folder(self.directory)
        self.dtypes = {"src": src_dtype, "tgt": tgt_dtype}
        self.num_examples = 0
        self.num_tokens = {"src": 0, "tgt": 0}
        self._files: dict[str, BinaryIO] = {}

    def __enter__(self) -> StoreWriter:
        shutil.rmtree(self.temporary, ignore_errors=True)
        self.temporary.mkdir(parents=True)
        for name in ("src.tokens", "src.offsets", "tgt.tokens", "tgt.offsets", "lines"):
            self._files[name] = open(self.temporary / name, "wb")
        for side in ("src", "tgt"):
            np.zeros(1, dtype=np.int64).tofile(self._files[f"{side}.offsets"])
        return self

    def append(self, src: tuple[np.ndarray, np.ndarray], tgt: tuple[np.ndarray, np.ndarray],
               line_numbers: np.ndarray) -> None:
        """Add examples: per side ``(flat ids, lengths)`` of the same examples, and their line numbers."""
        for side, (flat_ids, lengths) in (("src", src), ("tgt", tgt)):
            assert len(lengths) == len(line_numbers) and int(lengths.sum()) == len(flat_ids)
            flat_ids.astype(_TOKEN_DTYPES[self.dtypes[side]], copy=False).tofile(self._files[f"{side}.tokens"])
            offsets = self.num_tokens[side] + np.cumsum(lengths, dtype=np.int64)
            offsets.tofile(self._files[f"{side}.offsets"])
            self.num_tokens[side] += int(lengths.sum())
        np.asarray(line_numbers, dtype=np.int64).tofile(self._files["lines"])
        self.num_examples += len(line_numbers)

    def publish(self, meta: dict[str, Any]) -> StoredSplit:
        """Flush everything to disk, write ``meta.json``, and rename the folder to its final name."""
        for file in self._files.values():
            file.flush()
            os.fsync(file.fileno())
            file.close()
        meta = {
            **meta,
            "version": STORE_VERSION,
            "num_examples": self.num_examples,
            "src_dtype": self.dtypes["src"],
            "tgt_dtype": self.dtypes["tgt"],
            "src_num_tokens": self.num_tokens["src"],
            "tgt_num_tokens": self.num_tokens["tgt"],
        }
        with open(self.temporary / META_FILE, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        replace_folder(self.temporary, self.directory)
        return StoredSplit(self.directory)

    def __exit__(self, *exc_info: Any) -> None:
        for file in self._files.values():
            file.close()
        shutil.rmtree(self.temporary, ignore_errors=True)


def temporary_folder(directory: Path) -> Path:
    """Where this process builds ``directory`` before :func:`replace_folder` moves it into place."""
    return directory.with_name(f".{directory.name}.tmp-{os.getpid()}")


def replace_folder(temporary: Path, directory: Path) -> None:
    """Move a complete ``temporary`` folder to ``directory``, replacing a (damaged) folder of that name."""
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(temporary, directory)


def remove_leftovers(directory: Path) -> None:
    """Delete temporary folders that killed writers left beside ``directory`` (call while holding ``exclusive``)."""
    for leftover in directory.parent.glob(f".{directory.name}.tmp-*"):
        log.info("removing %s, left by an interrupted preprocessing", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def exclusive(directory: Path, what: str) -> Iterator[None]:
    """Hold a lock file beside ``directory`` so that one process at a time builds it (others wait here).

    The lock is released by the operating system when its holder dies, so a killed builder never blocks
    the next run.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock_path = directory.with_name(f".{directory.name}.lock")
    with open(lock_path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process that is preparing %s (%s)", what, directory)
            start = time.monotonic()
            fcntl.flock(lock, fcntl.LOCK_EX)
            log.info("%s is ready after %.0f s of waiting", what, time.monotonic() - start)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
