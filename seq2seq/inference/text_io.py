"""Text in and out of decoding: reading input lines, and writing translations, n-best lists, alignments and scores.

Everything is UTF-8 whatever the locale, like the data files; files are written atomically (a temporary
file, then a rename), so an interrupted run never leaves half a file behind.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from seq2seq.data.atomic import write_text_atomic

_UTF8_BOM = b"\xef\xbb\xbf"


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


def format_translations(translations: Sequence) -> str:
    """One line per sentence: its best translation."""
    return "".join(f"{translation.text}\n" for translation in translations)


def format_nbest(translations: Sequence, n_best: int) -> str:
    """Moses' n-best format, ``index ||| text ||| score`` (0-based), the ``n_best`` best of each sentence."""
    return "".join(f"{index} ||| {text} ||| {score:.4f}\n" for index, translation in enumerate(translations)
                   for text, score in translation.nbest[:n_best])


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


def format_alignments(translations: Sequence) -> str:
    """One line per sentence in Pharaoh format, ``i-j`` pairs: source piece i is aligned with output piece j
    (both 0-based, eos excluded), from the attention of the best hypothesis (``Translation.alignment``)."""
    return "".join(" ".join(f"{i}-{j}" for i, j in translation.alignment) + "\n" for translation in translations)


def format_pair_scores(scores: Sequence) -> str:
    """One line per pair: log-probability, per-token average, perplexity (tab-separated; natural log)."""
    return "".join(f"{s.log_prob:.4f}\t{s.avg_log_prob:.4f}\t{s.perplexity:.4f}\n" for s in scores)


@contextmanager
def progress_bar(total: int, description: str) -> Iterator:
    """A rich progress bar on stderr (only when stderr is a terminal); yields ``advance(n)``."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(console=console, disable=not console.is_terminal, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda count: progress.advance(task, count)
