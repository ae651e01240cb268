"""Whole runs from JSON Lines and from a Parquet dataset: they train, validate and test like text files, and a
corrupt record stops the run before training, named by its file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seq2seq.checkpoint import read_checkpoint
from seq2seq.training.run import train
from tests.e2e.conftest import compose_train

pytestmark = pytest.mark.usefixtures("single_thread")

PAIRS = [("ein haus", "a house"), ("zwei häuser", "two houses"), ("drei kleine häuser", "three small houses"),
         ("ein großes haus", "a big house"), ("vier", "four")]


def tiny_run(tmp_path: Path, *extra: str):
    return compose_train([
        f"output_dir={tmp_path / 'run'}", "data.src_tokenizer=char", "data.tgt_tokenizer=word",
        "data.src_vocab_size=100", "data.tgt_vocab_size=100", "data.min_frequency=1", "data.batch_size=2",
        f"data.cache_dir={tmp_path / 'cache'}", "model.src_embedding_dim=8", "model.tgt_embedding_dim=8",
        "model.hidden_size=8", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "trainer.max_steps=2", "trainer.log_every_n_steps=1", "callbacks=none",
        *extra,
    ])


def write_jsonl(root: Path, lines: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        text = "".join(json.dumps({"id": i, "source": s, "target": t}) + "\n" for i, (s, t) in enumerate(PAIRS))
        (root / f"{split}.jsonl").write_text((lines or {}).get(split, text), encoding="utf-8")
    return root


def test_a_run_from_json_lines_trains_tests_and_records_how_it_read_them(tmp_path):
    root = write_jsonl(tmp_path / "corpus")
    metrics = train(tiny_run(tmp_path, "data=text", "data.format=jsonl", f"data.root={root}",
                             "data.src_field=source", "data.tgt_field=target"))
    assert 0.0 <= metrics["test/exact_match"] <= 1.0 and metrics["test/wer"] >= 0.0
    stored = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert stored.global_step == 2
    assert (stored.data["format"], stored.data["src_field"], stored.data["tgt_field"]) == ("jsonl", "source", "target")


def test_a_corrupt_json_lines_record_stops_the_run_before_training_naming_file_line_and_field(tmp_path):
    good = "".join(json.dumps({"source": s, "target": t}) + "\n" for s, t in PAIRS)
    root = write_jsonl(tmp_path / "corpus", {"val": good + '{"source": "fünf", "target": 5}\n'})
    with pytest.raises(ValueError, match=r"^data\.root \(val split, data\.splits\.val='val'\): .*/corpus/val\.jsonl:6: "
                                         r"field 'target' is a number, expected a string$"):
        train(tiny_run(tmp_path, "data=text", "data.format=jsonl", f"data.root={root}", "data.src_field=source",
                       "data.tgt_field=target"))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_run_from_a_parquet_dataset_in_the_translation_layout(tmp_path):
    datasets = pytest.importorskip("datasets", reason="the hf extra (pip install 'seq2seq[hf]') is not installed")
    root = tmp_path / "dataset"
    root.mkdir()
    rows = {"translation": [{"de": s, "en": t} for s, t in PAIRS]}
    for split in ("train", "validation", "test"):
        datasets.Dataset.from_dict(rows).to_parquet(str(root / f"{split}.parquet"))
    metrics = train(tiny_run(tmp_path, "data=hf", f"data.root={root}"))
    assert 0.0 <= metrics["test/exact_match"] <= 1.0
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt").global_step == 2
