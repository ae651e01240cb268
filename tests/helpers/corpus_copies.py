"""A tiny corpus as text files, and what a DataModule reads from it, for comparing the readers."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from seq2seq.data.datamodule import TranslationDataModule

TRAIN = [("ein hund", "a dog"), ("zwei katzen", "two cats"), ("ein Haus", "a house"), ("drei", "three"),
         ("vier hunde", "four dogs")]
# Validation: several references for the first pair, one for the others.
VAL = [("ein vogel", ["a bird", "one bird"]), ("zwei hunde", ["two dogs"]), ("drei katzen", ["three cats"])]


def module(root, format, **overrides):
    options = dict(name="text", root=str(root), src_lang="de", tgt_lang="en", splits={"train": "train", "val": "val"},
                   format=format, src_tokenizer="word", tgt_tokenizer="word", src_vocab_size=50, tgt_vocab_size=50,
                   batch_size=4, cache_dir=str(root.parent / f"cache-{root.name}"))
    options.update(overrides)
    return TranslationDataModule(**options)


def write_text_corpus(root: Path) -> Path:
    root.mkdir()
    (root / "train.de").write_text("".join(f"{s}\n" for s, _ in TRAIN), encoding="utf-8")
    (root / "train.en").write_text("".join(f"{t}\n" for _, t in TRAIN), encoding="utf-8")
    (root / "val.de").write_text("".join(f"{s}\n" for s, _ in VAL), encoding="utf-8")
    (root / "val.en").write_text("".join(f"{refs[0]}\n" for _, refs in VAL), encoding="utf-8")
    (root / "val.en.1").write_text("".join(f"{refs[1] if len(refs) > 1 else ''}\n" for _, refs in VAL),
                                   encoding="utf-8")
    return root


def jsonl_lines(records) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def write_jsonl_corpus(root: Path, *, nested: bool = False, gz: bool = False) -> Path:
    root.mkdir()

    def record(src, tgt):
        return {"translation": {"de": src, "en": tgt}} if nested else {"de": src, "en": tgt, "id": 7}

    files = {"train": jsonl_lines(record(s, t) for s, t in TRAIN),
             # nested: the translation layout has one target string, so the second reference is not kept
             "val": jsonl_lines(record(s, refs[0] if nested else refs) for s, refs in VAL)}
    for split, text in files.items():
        if gz:
            (root / f"{split}.jsonl.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (root / f"{split}.jsonl").write_text(text, encoding="utf-8")
    return root


def examples(dm: TranslationDataModule) -> dict:
    """Everything the readers decide: the tokenizers, the stored training split, the validation references."""
    dm.setup("fit")
    store = dm.train_split()
    return {
        "vocab": (dm.src_tokenizer.to_json(), dm.tgt_tokenizer.to_json()),
        "train": [(list(s), list(t)) for s, t in zip(store.src_ids, store.tgt_ids)],
        "train_lines": store.line_numbers.tolist(),
        "val": (dm.sources("val"), dm.reference_sets("val"), dm.encoded_split("val").line_numbers),
    }


