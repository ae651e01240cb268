"""Writing checkpoints so that a crash, a power cut or ``kill -9`` never leaves a damaged one behind.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction: the bytes go to a temporary file
that is moved into place, but nothing is flushed to disk first, so after a power cut the new name can
point at a file whose data never reached the disk. :class:`AtomicCheckpointIO` writes the checkpoint to
a temporary file *in the same directory*, ``fsync``\\ s it, renames it onto the target with ``os.replace``
(atomic on POSIX and Windows) and ``fsync``\\ s the directory, so ``last.ckpt`` is at every moment either
the complete old checkpoint or the complete new one.

A process killed mid-write leaves its temporary file (``.last.ckpt.<random>.tmp``) behind; the next save
of the same checkpoint removes it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import IO, Any, Optional

import fsspec.utils
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from seq2seq.data.atomic import temporary_sibling

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose ``save_checkpoint`` is atomic and durable for local paths.

    Remote paths (``s3://``, ...) are left to Lightning: object stores have no partially visible writes.
    """

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
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_directory(path.parent)
        log.debug("saved checkpoint %s", path)

    def _write(self, checkpoint: dict[str, Any], file: IO[bytes]) -> None:
        """Serialize ``checkpoint`` into the open temporary file."""
        torch.save(checkpoint, file)


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
