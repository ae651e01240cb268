"""Hugging Face datasets, Parquet and Arrow (data.format=hf): the same examples as the text files they copy, and
errors that name the dataset and split, the row and the column."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.corpus_copies import TRAIN, VAL, examples, module, write_text_corpus

REPO = Path(__file__).resolve().parents[2]

datasets = pytest.importorskip("datasets", reason="the hf extra (pip install 'seq2seq[hf]') is not installed")


def hf_splits(nested: bool = True):
    def rows(pairs):
        if nested:
            return {"translation": [{"de": s, "en": t} for s, t in pairs]}
        return {"de": [s for s, _ in pairs], "en": [t for _, t in pairs]}

    return datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows(TRAIN)),
                                 "validation": datasets.Dataset.from_dict(rows([(s, r[0]) for s, r in VAL]))})


HF_SPLITS = {"train": "train", "val": "validation"}


def one_reference_text_corpus(root: Path) -> dict:
    write_text_corpus(root)
    (root / "val.en.1").unlink()
    return examples(module(root, "parallel"))


@pytest.mark.parametrize("layout", ["dataset_dict", "dataset_per_split", "parquet", "arrow"])
def test_a_dataset_copy_gives_the_same_examples_as_the_text_files(tmp_path, layout):
    expected = one_reference_text_corpus(tmp_path / "text")
    root = tmp_path / "hf"
    splits = hf_splits(nested=layout != "parquet")  # both layouts: the translation dicts, and plain columns
    if layout == "dataset_dict":
        splits.save_to_disk(str(root))
    else:
        root.mkdir()
        for name, split in splits.items():
            if layout == "dataset_per_split":
                split.save_to_disk(str(root / name))
            elif layout == "parquet":
                split.to_parquet(str(root / f"{name}.parquet"))
            else:
                split.save_to_disk(str(tmp_path / "saved" / name))
                (arrow,) = (tmp_path / "saved" / name).glob("*.arrow")
                arrow.rename(root / f"{name}.arrow")
    got = examples(module(root, "hf", splits=HF_SPLITS))
    assert got == expected


def test_the_tokenizers_can_learn_from_a_sample_of_the_rows(tmp_path):
    root = tmp_path / "hf"
    hf_splits(nested=False).save_to_disk(str(root))
    every = module(root, "hf", splits=HF_SPLITS)
    sampled = module(root, "hf", splits=HF_SPLITS, tokenizer_sample_size=2)
    assert sampled.tgt_tokenizer.vocab_size < every.tgt_tokenizer.vocab_size
    assert len(sampled.train_split()) == len(TRAIN)  # a sample for the tokenizers only


def test_a_list_column_gives_several_references(tmp_path):
    root = tmp_path / "hf"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"src": [s for s, _ in TRAIN], "refs": [[t] for _, t in TRAIN]}),
        "validation": datasets.Dataset.from_dict({"src": [s for s, _ in VAL], "refs": [r for _, r in VAL]}),
    }).save_to_disk(str(root))
    dm = module(root, "hf", splits=HF_SPLITS, src_field="src", tgt_field="refs")
    dm.setup("fit")
    assert dm.reference_sets("val") == [refs for _, refs in VAL]


def test_a_missing_column_is_named_with_the_dataset_split_and_the_columns_there_are(tmp_path):
    root = tmp_path / "hf"
    hf_splits(nested=True).save_to_disk(str(root))
    message = (rf"data\.root \(train split, data\.splits\.train='train'\): {root} split 'train': no column 'fr' or "
               r"'translation\.fr' for the target \(it has: translation, translation\.de, translation\.en\); set "
               r"data\.tgt_field")
    with pytest.raises(ValueError, match=message):
        module(root, "hf", splits=HF_SPLITS, tgt_lang="fr").setup("fit")
    with pytest.raises(ValueError, match=r"the DatasetDict .* has no split 'dev' \(it has: train, validation\)"):
        module(root, "hf", splits={"train": "train", "val": "dev"}).setup("fit")


def test_a_bad_row_is_named_by_its_index_and_column(tmp_path):
    root = tmp_path / "hf"
    root.mkdir()
    rows = {"de": ["eins", "zwei", None], "en": ["one", "two", "three"]}
    datasets.Dataset.from_dict(rows).to_parquet(str(root / "train.parquet"))
    with pytest.raises(ValueError, match=rf"{root / 'train.parquet'}: row 2: column 'de' is null, expected a string"):
        module(root, "hf", splits={"train": "train", "val": "train"}).setup("fit")


def test_no_dataset_for_a_split_names_every_place_looked(tmp_path):
    tmp_path.joinpath("hf").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no dataset for split 'train': tried .*dataset_dict\.json .*"
                                                r"train/ \(a saved Dataset\), .*train\.parquet and .*train\.arrow"):
        module(tmp_path / "hf", "hf").setup("fit")


def test_a_hub_name_without_a_network_is_one_line_saying_so():
    # In a child process, so that the offline setting is read when datasets is imported.
    program = ("from seq2seq.data.hf_dataset import dataset_source\n"
               "from seq2seq.data.record_fields import RecordFields\n"
               "dataset_source('hub:no-such/dataset:de-en', 'train', 'train', 'data.root', lowercase=False,"
               " drop_empty=False, fields=RecordFields.from_config(None, None, 'de', 'en'))\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1
    assert last.startswith("ValueError: data.root: could not load hub:no-such/dataset:de-en split 'train' by name (")
    assert last.endswith("without a network, save it with save_to_disk where there is one and set data.root to "
                         "that folder")


def test_datasets_is_imported_only_when_a_dataset_is_read():
    program = ("import sys\nimport seq2seq.data.datamodule, seq2seq.config_checks, seq2seq.data.hf_dataset\n"
               "print(sorted({'datasets', 'pyarrow'} & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr
