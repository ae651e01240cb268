"""Multi30k task 1 (image captions, en/de/fr/cs): find local copies or download the raw files.

Files are named ``{split}.{lang}.gz`` as in the official repository
(https://github.com/multi30k/dataset, ``data/task1/raw``); uncompressed ``{split}.{lang}`` copies are used
as well. A download goes to a temporary file, is checked for the expected number of lines, and only then
renamed into place, so an interrupted or truncated download never looks like data.
"""

from __future__ import annotations

import gzip
import logging
import os
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from seq2seq.data.atomic import temporary_sibling

log = logging.getLogger(__name__)

MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw"
MULTI30K_SPLITS = ("train", "val", "test_2016_flickr")
MULTI30K_LINE_COUNTS: Mapping[str, int] = {"train": 29000, "val": 1014, "test_2016_flickr": 1000}

_CHUNK_BYTES = 1 << 16


def _count_gzip_lines(path: Path, url: str) -> int:
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise ValueError(f"{url}: the downloaded file is not valid gzip ({e}); it was discarded") from e
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _fetch(url: str, dest: Path, *, show_progress: bool, timeout_s: float) -> None:
    """Stream ``url`` into ``dest`` with a progress bar; ConnectionError saying how to work offline."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(dest, "wb") as out:
            total = response.headers.get("Content-Length")
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                disable=not show_progress,
            ) as progress:
                task = progress.add_task(f"download {url.rsplit('/', 1)[-1]}", total=int(total) if total else None)
                while chunk := response.read(_CHUNK_BYTES):
                    out.write(chunk)
                    progress.update(task, advance=len(chunk))
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        reason = getattr(e, "reason", e)
        raise ConnectionError(
            f"could not download {url} ({reason}). If you are offline, copy the Multi30k files "
            f"({url.rsplit('/', 1)[-1]} or its uncompressed form) into a directory and point data.root=DIR at it."
        ) from e


def ensure_multi30k(
    root: Path,
    *,
    langs: Sequence[str],
    base_url: str = MULTI30K_URL,
    splits: Sequence[str] = MULTI30K_SPLITS,
    expected_lines: Mapping[str, int] = MULTI30K_LINE_COUNTS,
    show_progress: bool = True,
    timeout_s: float = 30.0,
) -> dict[str, Path]:
    """Make sure ``root`` holds ``{split}.{lang}`` (or ``.gz``) for every split and language.

    Missing files are downloaded from ``{base_url}/{split}.{lang}.gz`` (any ``urllib`` URL, ``file://``
    included). Returns the path of each file keyed ``"{split}.{lang}"``.

    Raises:
        ConnectionError: a download failed; the message names the URL and the ``data.root`` escape hatch.
        ValueError: a downloaded file does not have ``expected_lines[split]`` lines (it is deleted).
            Splits missing from ``expected_lines`` are not checked.
    """
    root = Path(root)
    paths = {}
    for split in splits:
        for lang in langs:
            name = f"{split}.{lang}"
            local = [root / f"{name}.gz", root / name]
            existing = next((p for p in local if p.is_file()), None)
            if existing is not None:
                paths[name] = existing
                continue
            url = f"{base_url.rstrip('/')}/{name}.gz"
            dest = root / f"{name}.gz"
            tmp = temporary_sibling(dest)
            try:
                _fetch(url, tmp, show_progress=show_progress, timeout_s=timeout_s)
                num_lines = _count_gzip_lines(tmp, url)
                if split not in expected_lines:
                    log.warning("%s: no expected line count for split %r; %d lines not checked", url, split, num_lines)
                elif num_lines != expected_lines[split]:
                    raise ValueError(
                        f"{url}: expected {expected_lines[split]} lines for Multi30k split {split!r}, "
                        f"got {num_lines}; the download was discarded"
                    )
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            log.info("downloaded %s to %s", url, dest)
            paths[name] = dest
    return paths
