"""JSON Lines corpora (``data.format=jsonl``): ``{root}/{stem}.jsonl`` (or ``.jsonl.gz``), one object per line.

Each line is read as the text readers read lines (:class:`~seq2seq.data.corpus.LineReader`: streamed, UTF-8,
``.gz`` by suffix, a BOM dropped) and parsed on its own, so the whole file is never in memory. The fields read
are :mod:`seq2seq.data.record_fields`'. A blank line is an empty pair, as in a text file (an error naming it
unless ``data.drop_empty=true``); a line that is not a JSON object, or whose fields are missing or not text, is
an error naming the file, the line and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seq2seq.data.corpus import LineReader, resolve_text_file
from seq2seq.data.record_fields import RecordError, RecordFields, RecordSource, record_pairs


class JsonLinesReader:
    """``records()``: ``(line number, source, references)`` of every line; iterating: ``(line number, source,
    target)`` as :class:`~seq2seq.data.corpus.PairReader` yields them (the first reference, or one pair per
    reference with ``every_reference``)."""

    def __init__(self, path: Path, key: str, fields: RecordFields, *, lowercase: bool = False,
                 every_reference: bool = False) -> None:
        self.lines = LineReader(path, key)
        self.fields = fields
        self.lowercase = lowercase
        self.every_reference = every_reference

    @property
    def fraction_read(self) -> float:
        return self.lines.fraction_read

    def records(self) -> Iterator[tuple[int, str, list[str]]]:
        path, key = self.lines.path, self.lines.key
        for line_number, line in self.lines:
            if not line.strip():
                yield line_number, "", [""]
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{key}: {path}:{line_number}: not valid JSON ({error.msg} at column "
                                 f"{error.colno})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{key}: {path}:{line_number}: expected a JSON object {{...}}, found "
                                 f"{_json_kind(record)}")
            try:
                src, references = self.fields.read(record)
            except RecordError as error:
                raise ValueError(f"{key}: {path}:{line_number}: {error}") from None
            yield line_number, src, references

    def __iter__(self) -> Iterator[tuple[int, str, str]]:
        return record_pairs(self.records(), every_reference=self.every_reference, lowercase=self.lowercase)


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(type(value), "a number")


@dataclass(frozen=True)
class JsonLinesSource(RecordSource):
    """One split's ``.jsonl`` file; ``every_reference`` for the training split (one pair per reference)."""

    def reader(self) -> JsonLinesReader:
        return JsonLinesReader(self.paths[0], self.key, self.fields, lowercase=self.lowercase,
                               every_reference=self.every_reference)

    def reading(self) -> dict[str, Any]:
        return {"format": "jsonl", **self.fields.settings()}


def jsonl_source(root: Path, stem: str, split: str, key: str, *, fields: RecordFields, lowercase: bool,
                 drop_empty: bool) -> JsonLinesSource:
    path = resolve_text_file(root, f"{stem}.jsonl", key)
    return JsonLinesSource((path,), key, f"{split} ({path})", lowercase=lowercase, drop_empty=drop_empty,
                           fields=fields, every_reference=split == "train")
