"""Hugging Face ``datasets`` and Parquet / Arrow files as corpora (``data.format=hf``, ``data=hf``).

``data.root`` is one of:

- a ``DatasetDict`` saved with ``save_to_disk`` (a folder with ``dataset_dict.json``): ``data.splits`` name
  its splits, e.g. ``{train: train, val: validation, test: test}``;
- a folder with one split per ``data.splits`` entry ``{stem}``: a ``Dataset`` saved with ``save_to_disk``
  (``{root}/{stem}/``), or a file ``{root}/{stem}.parquet`` or ``{root}/{stem}.arrow``;
- ``hub:NAME`` or ``hub:NAME:CONFIG``: ``datasets.load_dataset(NAME, CONFIG, split=stem)``, where the network
  allows (or from the ``datasets`` cache); without a network this fails in one line saying so.

Rows are read in batches from memory-mapped Arrow (Parquet: streamed by row group), never all at once. The
columns are :mod:`seq2seq.data.record_fields`' fields, checked against the schema before the first row. Errors
name the dataset, the split, the row (its index, from 0) and the column. Elsewhere a pair is named by its "line":
for these sources that is the row index + 1, as the split's description says.

``datasets`` (the ``hf`` extra) and ``pyarrow`` are imported only when such a source is opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seq2seq.data.record_fields import RecordError, RecordFields, RecordSource, record_pairs

HUB_PREFIX = "hub:"
BATCH_ROWS = 1000  # rows converted to Python at once


def is_hub_name(root: str) -> bool:
    """``hub:NAME``: a dataset by name, not a path (so not to be made absolute)."""
    return str(root).startswith(HUB_PREFIX)


def _import_datasets():
    try:
        import datasets
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(f"data.format=hf reads with the datasets package, which is not installed: "
                                  f"pip install 'seq2seq[hf]' (or datasets) ({error})") from error
    return datasets


class _Rows:
    """A split's rows: ``num_rows``, the Arrow ``schema``, ``batches(columns)`` (dicts of lists), ``files``."""

    def __init__(self, dataset: Any = None, parquet: Path | None = None) -> None:
        if parquet is not None:
            import pyarrow.parquet as pq

            self._parquet = pq.ParquetFile(parquet)
            self.num_rows = self._parquet.metadata.num_rows
            self.schema = self._parquet.schema_arrow
            self.files = [parquet]
        else:
            self._parquet = None
            self._dataset = dataset.with_format(None)
            self.num_rows = dataset.num_rows
            self.schema = dataset.data.schema
            self.files = [Path(entry["filename"]) for entry in dataset.cache_files]

    def batches(self, columns: list[str]) -> Iterator[dict[str, list]]:
        if self._parquet is not None:
            for batch in self._parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
                yield batch.to_pydict()
        else:
            yield from self._dataset.select_columns(columns).iter(batch_size=BATCH_ROWS)

    def columns(self) -> list[str]:
        """Every column, and each field of a struct column as ``column.field`` (``translation.de``)."""
        import pyarrow as pa

        names = []
        for column in self.schema:
            names.append(column.name)
            if pa.types.is_struct(column.type):
                names.extend(f"{column.name}.{field.name}" for field in column.type)
        return names


def _open(root: str, stem: str, key: str) -> tuple[str, _Rows]:
    """``(where, rows)``: a description of the split for messages, and its rows."""
    datasets = _import_datasets()
    if is_hub_name(root):
        name, _, config = root[len(HUB_PREFIX):].partition(":")
        where = f"{root} split {stem!r}"
        try:
            dataset = datasets.load_dataset(name, config or None, split=stem)
        except Exception as error:  # noqa: BLE001 - whatever the hub or a loading script raised, in one line
            first_line = (str(error).strip().splitlines() or [""])[0]
            raise ValueError(f"{key}: could not load {where} by name ({type(error).__name__}: {first_line}); "
                             f"without a network, save it with save_to_disk where there is one and set data.root "
                             f"to that folder") from error
        return where, _Rows(dataset)
    folder = Path(root)
    if (folder / "dataset_dict.json").is_file():
        splits = datasets.load_from_disk(str(folder))
        if stem not in splits:
            raise ValueError(f"{key}: the DatasetDict {folder} has no split {stem!r} (it has: {', '.join(splits)})")
        return f"{folder} split {stem!r}", _Rows(splits[stem])
    if (folder / stem / "state.json").is_file():
        dataset = datasets.load_from_disk(str(folder / stem))
        return f"{folder / stem}", _Rows(dataset)
    if (folder / f"{stem}.parquet").is_file():
        return f"{folder / f'{stem}.parquet'}", _Rows(parquet=folder / f"{stem}.parquet")
    if (folder / f"{stem}.arrow").is_file():
        return f"{folder / f'{stem}.arrow'}", _Rows(datasets.Dataset.from_file(str(folder / f"{stem}.arrow")))
    raise FileNotFoundError(
        f"{key}: no dataset for split {stem!r}: tried {folder / 'dataset_dict.json'} (a saved DatasetDict), "
        f"{folder / stem}/ (a saved Dataset), {folder / f'{stem}.parquet'} and {folder / f'{stem}.arrow'}"
    )


class DatasetReader:
    """``records()``: ``(row index + 1, source, references)``; iterating: ``(row index + 1, source, target)``
    as :class:`~seq2seq.data.corpus.PairReader` yields pairs (one per reference with ``every_reference``)."""

    def __init__(self, rows: _Rows, where: str, key: str, fields: RecordFields, *, lowercase: bool = False,
                 every_reference: bool = False) -> None:
        self.rows, self.where, self.key = rows, where, key
        self.fields = fields.resolved(rows.columns(), f"{key}: {where}")
        self.lowercase = lowercase
        self.every_reference = every_reference
        self._done = 0

    @property
    def fraction_read(self) -> float:
        return min(self._done / max(self.rows.num_rows, 1), 1.0)

    def records(self) -> Iterator[tuple[int, str, list[str]]]:
        columns = sorted({name.split(".")[0] for name in self.fields.src + self.fields.tgt})
        index = 0
        for batch in self.rows.batches(columns):
            for values in zip(*(batch[column] for column in columns)):
                try:
                    src, references = self.fields.read(dict(zip(columns, values)))
                except RecordError as error:
                    raise ValueError(f"{self.key}: {self.where}: row {index}: {error}") from None
                index += 1
                self._done = index
                yield index, src, references
        if index == 0:
            raise ValueError(f"{self.key}: {self.where} is empty")

    def __iter__(self) -> Iterator[tuple[int, str, str]]:
        return record_pairs(self.records(), every_reference=self.every_reference, lowercase=self.lowercase)


@dataclass(frozen=True)
class DatasetSource(RecordSource):
    """One split of a dataset; ``paths`` are the files behind it (their identity keys the cache)."""

    where: str = ""
    rows: Any = None

    def reader(self) -> DatasetReader:
        return DatasetReader(self.rows, self.where, self.key, self.fields, lowercase=self.lowercase,
                             every_reference=self.every_reference)

    def reading(self) -> dict[str, Any]:
        return {"format": "hf", "where": self.where, **self.fields.settings()}

    def num_records(self) -> int:
        return self.rows.num_rows


def dataset_source(root: str, stem: str, split: str, key: str, *, fields: RecordFields, lowercase: bool,
                   drop_empty: bool) -> DatasetSource:
    where, rows = _open(str(root), stem, key)
    return DatasetSource(tuple(rows.files), key, f"{split} ({where}; line N is row N-1)", lowercase=lowercase,
                         drop_empty=drop_empty, where=where, rows=rows, fields=fields,
                         every_reference=split == "train")
