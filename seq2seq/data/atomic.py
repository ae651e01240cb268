"""Writing files so that a reader never sees a half-written one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    """A new empty file next to ``path`` (same file system, so ``os.replace`` is atomic), mode 0644.

    ``tempfile`` creates files readable by the owner only; data and tokenizer files are meant to be shared.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(name, 0o644)
    return Path(name)


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` with ``\\n`` line ends to a temporary sibling, then rename it onto ``path``."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
