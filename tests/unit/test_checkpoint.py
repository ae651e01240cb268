"""read_checkpoint: a good checkpoint round-trips; every kind of bad file is a one-line error naming it."""

from __future__ import annotations

import os
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import pytest
import torch

from seq2seq.checkpoint import CHECKPOINT_KEY, CheckpointError, read_checkpoint
from seq2seq.config import OptimConfig
from seq2seq.data.tokenizer import TextTokenizer
from seq2seq.decode_options import DecodeOptions
from seq2seq.training.module import TranslationModule

SRC_TEXTS = ["ein zwei drei", "zwei drei vier", "fünf sechs"]
TGT_TEXTS = ["one two three", "two three four", "five six"]
TINY_MODEL = {"src_embedding_dim": 4, "tgt_embedding_dim": 4, "hidden_size": 4, "dropout": 0.0}


def make_module(seed: int = 0, model: Optional[dict[str, Any]] = None) -> TranslationModule:
    """A tiny TranslationModule with word tokenizers attached, as training builds it."""
    torch.manual_seed(seed)
    src = TextTokenizer.train(SRC_TEXTS, "word", 50, 1)
    tgt = TextTokenizer.train(TGT_TEXTS, "word", 50, 1)
    module = TranslationModule(
        model=dict(TINY_MODEL if model is None else model),
        src_vocab_size=src.vocab_size,
        tgt_vocab_size=tgt.vocab_size,
        optim=asdict(OptimConfig()),
        decode=asdict(DecodeOptions(beam_size=1)),
    )
    module.attach_tokenizers(src, tgt)
    return module


def write_checkpoint(
    path: Path,
    module: Optional[TranslationModule] = None,
    global_step: int = 3,
    data: Optional[dict[str, Any]] = None,
) -> Path:
    """What Lightning's checkpoint holds for us: weights, hyperparameters, step, and our own section
    filled by the module's real ``on_save_checkpoint`` hook."""
    module = module or make_module()
    module.data_config = data
    checkpoint = {
        "epoch": 0,
        "global_step": global_step,
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
    }
    module.on_save_checkpoint(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


class RunsCode:
    """Unpickling this runs a shell command: what a malicious "checkpoint" would do."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_written_checkpoint_reads_back(tmp_path):
    module = make_module()
    data = {"name": "text", "root": "/somewhere"}
    stored = read_checkpoint(write_checkpoint(tmp_path / "good.ckpt", module, global_step=7, data=data))
    assert stored.global_step == 7
    assert stored.src_tokenizer == module.src_tokenizer and stored.tgt_tokenizer == module.tgt_tokenizer
    assert stored.hyper_parameters["model"] == module.hparams["model"]
    assert stored.data == data
    assert set(stored.state_dict) == set(module.state_dict())


def test_a_checkpoint_without_data_settings_reads_as_none(tmp_path):
    assert read_checkpoint(write_checkpoint(tmp_path / "old.ckpt", data=None)).data is None


# Each maker writes a bad file at ``path`` (or nothing) and returns the words its error must contain.
def _missing(path: Path) -> str:
    return "not found"


def _directory(path: Path) -> str:
    path.mkdir()
    return "directory"


def _plain_dict(path: Path) -> str:
    torch.save({"weights": torch.zeros(3), "step": 1}, path)
    return "not a checkpoint of this project"


def _tensor(path: Path) -> str:
    torch.save(torch.zeros(3), path)
    return "not a checkpoint of this project"


def _random_bytes(path: Path) -> str:
    path.write_bytes(random.Random(0).randbytes(4096))
    return "not a readable checkpoint"


def _text(path: Path) -> str:
    path.write_text("this is not a checkpoint\n")
    return "not a readable checkpoint"


def _empty(path: Path) -> str:
    path.write_bytes(b"")
    return "not a readable checkpoint"


def _truncated(path: Path) -> str:
    write_checkpoint(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return "not a readable checkpoint"


def _future_version(path: Path) -> str:
    write_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint[CHECKPOINT_KEY]["format_version"] = 99
    torch.save(checkpoint, path)
    return "format version 99"


def _no_tokenizers(path: Path) -> str:
    write_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint[CHECKPOINT_KEY]["src_tokenizer"] = None
    torch.save(checkpoint, path)
    return "no tokenizers"


def _broken_tokenizer(path: Path) -> str:
    write_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint[CHECKPOINT_KEY]["tgt_tokenizer"] = "{not json"
    torch.save(checkpoint, path)
    return "unreadable tokenizers"


BAD_FILES = [_missing, _directory, _plain_dict, _tensor, _random_bytes, _text, _empty, _truncated, _future_version,
             _no_tokenizers, _broken_tokenizer]


@pytest.mark.parametrize("make_bad_file", BAD_FILES, ids=[maker.__name__.strip("_") for maker in BAD_FILES])
def test_a_bad_checkpoint_is_a_one_line_error_naming_the_file(tmp_path, make_bad_file):
    path = tmp_path / "model.ckpt"
    expected = make_bad_file(path)
    with pytest.raises((CheckpointError, FileNotFoundError)) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message
    assert expected in message
    assert message.startswith("ckpt_path: ")
    assert "\n" not in message


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.ckpt"
    checkpoint = {"state_dict": {}, "hyper_parameters": {}, "payload": RunsCode(f"touch {marker}")}
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert not marker.exists()
    assert str(path) in message and "refused" in message and "\n" not in message
    # The file is a real threat: unpickling it without weights_only runs the command.
    torch.load(path, weights_only=False)
    assert marker.exists()
