"""Which fields of a record (a JSON object, a dataset row) hold the source and the target, and their checks.

``data.src_field`` / ``data.tgt_field`` name the fields; a dotted name reads a nested one (``translation.de``).
Left null, a side is read from the field named by its language code (``data.src_lang``), else from
``translation.<code>``, the layout of Hugging Face translation datasets: ``{"translation": {"de": ..., "en": ...}}``.

A source is a string. A target is a string, or a list of strings: several references. A validation or test
split scores against all of them (the first is the one the loss uses), as with ``{split}.{tgt_lang}.N`` files;
the training split learns from each, one pair per reference, as a file listing the source once per target would.
Strings are ``.strip()``-ed like lines of text; one holding a line break is refused, since sentences are one line
everywhere else (hypothesis files, ``evaluate.py input=...``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from seq2seq.data.preprocess import PairSource

_MISSING = object()


class RecordError(ValueError):
    """What is wrong with one field of one record; the reader adds the file and the line (or row)."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def lookup(record: Mapping[str, Any], name: str) -> Any:
    """``record[name]``, following dots into nested objects; ``_MISSING`` when a step is absent, None when one
    is null."""
    value: Any = record
    for part in name.split("."):
        if value is None:
            return None
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _sentence(value: Any, name: str, noun: str) -> str:
    if not isinstance(value, str):
        raise RecordError(f"{noun} {name!r} is {_kind(value)}, expected a string")
    if "\n" in value:
        raise RecordError(f"{noun} {name!r} holds a line break; a sentence is one line")
    return value.strip()


@dataclass(frozen=True)
class RecordFields:
    """The candidate names of each side's field, the first present in a record wins (see the module's doc)."""

    src: tuple[str, ...]
    tgt: tuple[str, ...]
    noun: str = "field"  # what messages call them: a JSON object's fields, a dataset's columns

    @classmethod
    def from_config(cls, src_field: str | None, tgt_field: str | None, src_lang: str, tgt_lang: str) -> RecordFields:
        def candidates(field: str | None, lang: str) -> tuple[str, ...]:
            return (field,) if field else (lang, f"translation.{lang}")

        return cls(candidates(src_field, src_lang), candidates(tgt_field, tgt_lang))

    def settings(self) -> dict[str, list[str]]:
        """What goes into the cache keys: other fields read other text."""
        return {"src_field": list(self.src), "tgt_field": list(self.tgt)}

    def resolved(self, available: Iterable[str], where: str) -> RecordFields:
        """The one name of each side found in ``available`` (a dataset's columns, nested ones dotted);
        ValueError naming ``where``, what was looked for and what there is."""
        available = list(available)
        chosen = []
        for side, names in (("src", self.src), ("tgt", self.tgt)):
            found = next((name for name in names if name in available), None)
            if found is None:
                raise ValueError(f"{where}: no column {_either(names)} for the {_SIDES[side]} (it has: "
                                 f"{', '.join(available)}); set data.{side}_field to the one that holds it")
            chosen.append((found,))
        return RecordFields(*chosen, noun="column")

    def read(self, record: Mapping[str, Any]) -> tuple[str, list[str]]:
        """The record's source and its references (at least one); RecordError naming the field."""
        noun = self.noun
        src_name, src_value = _find(record, "src", self.src, noun)
        src = _sentence(src_value, src_name, noun)
        name, value = _find(record, "tgt", self.tgt, noun)
        if not isinstance(value, (list, tuple)):
            return src, [_sentence(value, name, noun)]
        if not value:
            raise RecordError(f"{noun} {name!r} is an empty list; a target is a string or a list of references")
        references = [_sentence(item, f"{name}[{i}]", noun) for i, item in enumerate(value)]
        if len(references) > 1 and not all(references):
            raise RecordError(f"{noun} {name!r}: reference {references.index('')} of {len(references)} is empty")
        return src, references


def _find(record: Mapping[str, Any], side: str, names: tuple[str, ...], noun: str) -> tuple[str, Any]:
    """The first of ``names`` present in ``record``, and its value."""
    for name in names:
        value = lookup(record, name)
        if value is not _MISSING:
            return name, value
    raise RecordError(f"no {noun} {_either(names)} for the {_SIDES[side]}; set data.{side}_field to the one that "
                      f"holds it ({noun}s: {', '.join(map(repr, record))})")


_SIDES = {"src": "source", "tgt": "target"}


def _either(names: tuple[str, ...]) -> str:
    return " or ".join(repr(name) for name in names)


def record_pairs(records: Iterable[tuple[int, str, list[str]]], *, every_reference: bool,
                 lowercase: bool) -> Iterator[tuple[int, str, str]]:
    """``(number, source, target)`` from ``(number, source, references)``: the first reference, or with
    ``every_reference`` (the training split) one pair per reference."""
    for number, src, references in records:
        if lowercase:
            src, references = src.lower(), [reference.lower() for reference in references]
        for reference in references if every_reference else references[:1]:
            yield number, src, reference


@dataclass(frozen=True)
class RecordSource(PairSource):
    """A split whose pairs are records (JSON Lines, a dataset's rows): its ``fields``, and ``every_reference``
    for the training split (one pair per reference); further references come from the records themselves."""

    fields: RecordFields = RecordFields(("src",), ("tgt",))
    every_reference: bool = False

    def records(self) -> Iterator[tuple[int, str, list[str]]]:
        return self.reader().records()

    def further_references(self, num_pairs: int) -> list[list[str]] | None:
        if self.every_reference:
            return None
        further = [references[1:] for _, _, references in self.records()]
        if self.lowercase:
            further = [[reference.lower() for reference in references] for references in further]
        return further if any(further) else None
