"""Writing checkpoints so that a crash, a power cut or ``kill -9`` never leaves a damaged one behind.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction: the bytes go to a temporary file
that is moved into place, but nothing is flushed to disk first, so after a power cut the new name can
point at a file whose data never reached the disk. :class:`AtomicCheckpointIO` writes the checkpoint to
a temporary file *in the same directory*, ``fsync``\\ s it, renames it onto the target with ``os.replace``
(atomic on POSIX and Windows) and ``fsync``\\ s the directory, so ``last.ckpt`` is at every moment either
the complete old checkpoint or the complete new one.

A process killed mid-write leaves its temporary file (``.last.ckpt.<random>.tmp``) behind; the next save
of the same checkpoint removes it.

A write that fails (a full disk, a quota, an I/O error) removes its temporary file and raises
:class:`CheckpointWriteError`: one line naming the file that could not be written, why, and the last checkpoint
this run did write whole, which is where to resume from. The files already there are untouched.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import IO, Any, Optional

import fsspec.utils
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from seq2seq.data.atomic import temporary_sibling

log = logging.getLogger(__name__)


FULL_BELOW = 16 * 2**20  # bytes: less free space than this after a failed write means the disk was full


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written; the message names it, the cause and the last whole checkpoint."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose ``save_checkpoint`` is atomic and durable for local paths.

    Remote paths (``s3://``, ...) are left to Lightning: object stores have no partially visible writes.
    ``last_written``: the path and global step of the last checkpoint this process wrote whole.
    """

    def __init__(self) -> None:
        super().__init__()
        self.last_written: Optional[tuple[Path, int]] = None

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or fsspec.utils.get_protocol(str(path)) != "file":
            super().save_checkpoint(checkpoint, path, storage_options)  # raises on storage_options, as Lightning does
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
        tmp = temporary_sibling(path)
        try:
            with open(tmp, "wb") as file:
                self._write(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except (OSError, RuntimeError) as error:  # torch's zip writer reports a failed write as a RuntimeError
            written = tmp.stat().st_size if tmp.exists() else 0
            message = self._failure(path, error, written)  # measured before `finally` removes the partial file
            raise CheckpointWriteError(message) from error
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_directory(path.parent)
        self.last_written = (path, int(checkpoint.get("global_step", 0)))
        log.debug("saved checkpoint %s", path)

    def _failure(self, path: Path, error: BaseException, written: int) -> str:
        """could not write checkpoint PATH: WHY; the last whole checkpoint is ... (one line)."""
        free = _free_bytes(path.parent)
        if isinstance(error, OSError) and error.strerror:
            why = error.strerror
        elif free is not None and free < max(FULL_BELOW, written):
            why = "no space left on device"
        else:
            why = " ".join(str(error).split()) or type(error).__name__
        if free is not None:
            why += f" ({_size(written)} written, {_size(free)} left free)"
        if self.last_written is not None:
            last, step = self.last_written
            kept = f"the last whole checkpoint is {last} (global step {step})"
        else:
            kept = "this run has written no checkpoint yet"
        return f"could not write checkpoint {path}: {why}; nothing was left half-written, and {kept}"

    def _write(self, checkpoint: dict[str, Any], file: IO[bytes]) -> None:
        """Serialize ``checkpoint`` into the open temporary file."""
        torch.save(checkpoint, file)


def _free_bytes(directory: Path) -> Optional[int]:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def _size(count: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable. Not possible on every platform (Windows has no directory handles)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
