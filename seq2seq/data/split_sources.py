"""Which reader reads a split, by ``data.format``: text files, JSON Lines or a dataset (Parquet, Arrow, ``datasets``).

Every reader yields the same ``(line number, source, target)`` pairs, so tokenizer training, the length limits,
several references and the binarized training store are the same code whatever the format.
"""

from __future__ import annotations

from pathlib import Path

from seq2seq.data.hf_dataset import dataset_source
from seq2seq.data.jsonl import jsonl_source
from seq2seq.data.preprocess import PairSource, split_source
from seq2seq.data.record_fields import RecordFields

FORMATS = ("parallel", "tsv", "jsonl", "hf")


def pair_source(root: Path, stem: str, split: str, key: str, *, format: str, src_lang: str, tgt_lang: str,
                src_field: str | None, tgt_field: str | None, lowercase: bool, drop_empty: bool) -> PairSource:
    """The split ``split`` (``data.splits.<split>`` is ``stem``) of ``root``; ``key`` is named in its errors."""
    options = dict(lowercase=lowercase, drop_empty=drop_empty)
    if format in ("jsonl", "hf"):
        fields = RecordFields.from_config(src_field, tgt_field, src_lang, tgt_lang)
        make = jsonl_source if format == "jsonl" else dataset_source
        return make(root, stem, split, key, fields=fields, **options)
    return split_source(root, stem, split, key, format=format, src_lang=src_lang, tgt_lang=tgt_lang, **options)
