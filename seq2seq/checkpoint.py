"""Reading our checkpoints safely, with errors that say what is wrong instead of a torch traceback.

A checkpoint is loaded with ``torch.load(..., weights_only=True)``: only tensors and plain Python values
are accepted, so a file crafted to run code when unpickled is refused, not executed. Everything that
decoding needs travels inside it as plain values: the model's hyperparameters, and the tokenizers as
JSON text.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from seq2seq.data.tokenizer import TextTokenizer

# Where this project's own section of a Lightning checkpoint lives, and the version of its layout.
CHECKPOINT_KEY = "seq2seq"
CHECKPOINT_FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint of this project; the message names the file and why."""


@dataclass
class StoredCheckpoint:
    path: Path
    hyper_parameters: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    src_tokenizer: TextTokenizer
    tgt_tokenizer: TextTokenizer
    global_step: int
    epoch: int
    # The ``data.*`` settings the model was trained with (keys as ``DataConfig``); None in checkpoints
    # written before they were stored.
    data: Optional[dict[str, Any]] = None


def write_payload(checkpoint: dict[str, Any], src_tokenizer: Optional[TextTokenizer],
                  tgt_tokenizer: Optional[TextTokenizer], data: Optional[dict[str, Any]]) -> None:
    """Put this project's section into a Lightning checkpoint as it is saved: the layout's version, the
    tokenizers as JSON text and the data settings, which :func:`read_checkpoint` reads back."""
    checkpoint[CHECKPOINT_KEY] = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "src_tokenizer": src_tokenizer.to_json() if src_tokenizer else None,
        "tgt_tokenizer": tgt_tokenizer.to_json() if tgt_tokenizer else None,
        "data": data,
    }


def stored_tokenizers(checkpoint: dict[str, Any]) -> Optional[tuple[TextTokenizer, TextTokenizer]]:
    """The (source, target) tokenizers of a checkpoint dict as Lightning loads it; None when it has none."""
    stored = checkpoint.get(CHECKPOINT_KEY) or {}
    if not (stored.get("src_tokenizer") and stored.get("tgt_tokenizer")):
        return None
    return TextTokenizer.from_json(stored["src_tokenizer"]), TextTokenizer.from_json(stored["tgt_tokenizer"])


def load_safely(path: Path, key: str) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``, turning each way it fails into a one-line error naming ``path``."""
    if path.is_dir():
        raise CheckpointError(f"{key}: {path} is a directory; give the checkpoint file in it (e.g. last.ckpt)")
    if not path.is_file():
        raise FileNotFoundError(f"{key}: checkpoint not found: {path}")
    # torch.save has written zip archives since torch 1.6, and so does Lightning. Anything else (random
    # bytes, text, a file cut short before its zip directory) would otherwise reach torch's legacy
    # unpickler and fail with a misleading or raw error (a bare KeyError for a text file).
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{key}: {path} is not a readable checkpoint: not a PyTorch zip archive (truncated, corrupt, or another "
            f"kind of file?)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message is several paragraphs (suggesting weights_only=False); keep the line naming the culprit.
        lines = [line.strip() for line in str(error).splitlines()]
        detail = next((line for line in lines if "GLOBAL" in line or "global" in line), "")
        raise CheckpointError(
            f"{key}: {path} was refused: it holds objects other than tensors and plain values, which loading "
            f"would have to execute code for (this project never writes such checkpoints)"
            + (f". Detail: {detail}" if detail else "")
        ) from error
    except Exception as error:  # torch raises RuntimeError, EOFError, KeyError, ... for damaged archives
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{key}: {path} is not a readable checkpoint (truncated or corrupt?): {first_line}"
        ) from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{key}: {path} is not a checkpoint of this project (it holds a {type(checkpoint).__name__})")
    return checkpoint


def read_checkpoint(path: Path, key: str = "ckpt_path") -> StoredCheckpoint:
    path = Path(path)
    checkpoint = load_safely(path, key)
    stored = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(stored, dict) or "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise CheckpointError(f"{key}: {path} is not a checkpoint of this project (no '{CHECKPOINT_KEY}' section)")
    version = stored.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{key}: {path} has checkpoint format version {version!r}; this version of seq2seq reads version "
            f"{CHECKPOINT_FORMAT_VERSION}"
        )
    if not stored.get("src_tokenizer") or not stored.get("tgt_tokenizer"):
        raise CheckpointError(f"{key}: {path} carries no tokenizers, so it cannot be used to translate")
    data = stored.get("data")
    if data is not None and not isinstance(data, dict):
        raise CheckpointError(f"{key}: {path} stores its data settings as a {type(data).__name__}, not a dict")
    try:
        src_tokenizer = TextTokenizer.from_json(stored["src_tokenizer"])
        tgt_tokenizer = TextTokenizer.from_json(stored["tgt_tokenizer"])
    except Exception as error:  # tokenizers raises its own Exception type on malformed JSON
        raise CheckpointError(f"{key}: {path} carries unreadable tokenizers: {error}") from error
    return StoredCheckpoint(
        path=path,
        hyper_parameters=dict(checkpoint["hyper_parameters"]),
        state_dict=checkpoint["state_dict"],
        src_tokenizer=src_tokenizer,
        tgt_tokenizer=tgt_tokenizer,
        global_step=int(checkpoint.get("global_step", 0)),
        epoch=int(checkpoint.get("epoch", 0)),
        data=data,
    )
