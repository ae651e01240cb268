"""One vocabulary and one embedding table for both sides, end to end: train.py with data.share_vocab=true
model.share_embeddings=true, then evaluate.py on its checkpoint; a later run reusing its tokenizer as a file."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from seq2seq.checkpoint import read_checkpoint
from seq2seq.inference.loading import build_model
from seq2seq.training.run import train
from tests.e2e.conftest import compose_train, script_command, tiny_overrides

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]

SHARED = ["data.tgt_tokenizer=char", "data.share_vocab=true", "model.share_embeddings=true",
          "model.tie_embeddings=true", "trainer.max_epochs=1"]


def test_a_shared_run_trains_evaluates_and_its_tokenizer_file_starts_another(tmp_path, monkeypatch):
    first = tmp_path / "first"
    metrics = train(compose_train(tiny_overrides(first) + SHARED))
    assert "test/bleu" in metrics
    ckpt = first / "run" / "checkpoints" / "last.ckpt"
    stored = read_checkpoint(ckpt)
    assert stored.src_tokenizer == stored.tgt_tokenizer
    assert stored.hyper_parameters["model"]["share_embeddings"] is True
    network = build_model(stored)
    assert network.encoder.embedding.weight is network.decoder.embedding.weight is network.output_layer.weight

    result = subprocess.run(script_command("evaluate.py", f"ckpt_path={ckpt}", "device=cpu", "decode.beam_size=2"),
                            cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    scored = json.loads(next((first / "run" / "eval").glob("last.test.*.json")).read_text())
    assert 0.0 <= scored["exact_match"] <= 1.0 and "bleu" in scored

    # The first run's tokenizer, reused as a file on both sides (relative to the directory the run starts in).
    monkeypatch.chdir(tmp_path)
    tokenizer = "file:first/run/tokenizers/src_tokenizer.json"
    second = tmp_path / "second"
    train(compose_train(tiny_overrides(second) + [f"data.src_tokenizer={tokenizer}", f"data.tgt_tokenizer={tokenizer}",
                                                 "data.share_vocab=true", "model.share_embeddings=true",
                                                 "trainer.max_epochs=1", "test_after_training=false"]))
    reused = read_checkpoint(second / "run" / "checkpoints" / "last.ckpt")
    assert reused.src_tokenizer == reused.tgt_tokenizer == stored.src_tokenizer
    assert reused.data["src_tokenizer"] == f"file:{tmp_path / 'first/run/tokenizers/src_tokenizer.json'}"
