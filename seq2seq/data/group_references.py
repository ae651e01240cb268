"""Turn pairs with repeated sources into one source with several references, the layout evaluation reads.

A training-style file lists one line per (source, target) pair, so a source with two accepted targets appears
twice. Evaluating it that way counts each output wrong against one of its two lines. This groups the pairs by
source (in the order sources first appear) and writes the split as validation and test read it:

    python -m seq2seq.data.group_references data/names/pairs.src data/names/pairs.tgt \
        data/names/test.src data/names/test.tgt

writes ``test.src`` (each source once), ``test.tgt`` (its first target) and ``test.tgt.1``, ``test.tgt.2``, …
(its further targets, an empty line where a source has fewer), so that ``data.splits.test=test`` scores with
every reference. Identical (source, target) pairs count once. Files are read as the corpus reader reads them
(UTF-8, ``.gz`` by suffix, stripped lines; an empty line is an error naming it) and written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seq2seq.data.atomic import write_text_atomic
from seq2seq.data.corpus import read_parallel


def group_references(pairs: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """``(source, [target, ...])`` for each distinct source, in order of first appearance, targets deduplicated
    in order."""
    grouped: dict[str, list[str]] = {}
    for source, target in pairs:
        targets = grouped.setdefault(source, [])
        if target not in targets:
            targets.append(target)
    return list(grouped.items())


def write_grouped(grouped: list[tuple[str, list[str]]], src_out: Path, tgt_out: Path) -> list[Path]:
    """Write the sources, first targets and ``tgt_out.N`` files of further targets; returns every path written."""
    width = max(len(targets) for _, targets in grouped)
    written = [src_out, tgt_out]
    write_text_atomic(src_out, "".join(f"{source}\n" for source, _ in grouped))
    write_text_atomic(tgt_out, "".join(f"{targets[0]}\n" for _, targets in grouped))
    for k in range(1, width):
        path = tgt_out.with_name(f"{tgt_out.name}.{k}")
        write_text_atomic(path, "".join(f"{targets[k] if k < len(targets) else ''}\n" for _, targets in grouped))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path, help="source side, one sentence per line")
    parser.add_argument("tgt", type=Path, help="target side, aligned with src")
    parser.add_argument("src_out", type=Path, help="where each distinct source goes, once")
    parser.add_argument("tgt_out", type=Path, help="its first target; further ones go to TGT_OUT.1, TGT_OUT.2, ...")
    args = parser.parse_args(argv)
    if {args.src_out.resolve(), args.tgt_out.resolve()} & {args.src.resolve(), args.tgt.resolve()}:
        parser.error("the outputs must not overwrite the inputs")
    try:
        pairs = read_parallel(args.src, args.tgt, "group_references")
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    empty = next((i for i, (source, target) in enumerate(pairs) if not source or not target), None)
    if empty is not None:
        print(f"error: {args.src}, {args.tgt}: line {empty + 1} has an empty side", file=sys.stderr)
        return 1
    grouped = group_references(pairs)
    written = write_grouped(grouped, args.src_out, args.tgt_out)
    most = max(len(targets) for _, targets in grouped)
    several = sum(len(targets) > 1 for _, targets in grouped)
    print(f"{len(pairs)} pairs -> {len(grouped)} sources, {several} with several references (at most {most}): "
          + ", ".join(str(path) for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
