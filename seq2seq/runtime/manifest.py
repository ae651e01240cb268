"""``manifest.json``: what an exported model folder holds, written by ``export.py`` and read by the runtime.

It names the graphs (one encoder and one decoder step per ensemble member) and the tokenizers, and records
everything decoding needs besides them -- the special ids the graphs were trained with, the output cap,
lowercasing, the source length limit, how an ensemble combines -- and, for people, the model's settings, the
checkpoints it came from, the ONNX opset and the library versions. Every file's SHA-256 is recorded and checked
on loading, so a folder with a truncated or replaced file is refused, naming the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from seq2seq.data.atomic import write_text_atomic
from seq2seq.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID

MANIFEST_FILE = "manifest.json"
FORMAT = "seq2seq-onnx"
FORMAT_VERSION = 1
SPECIAL_IDS = {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID}


class ModelDirError(ValueError):
    """An exported model folder that cannot be used; the message names the folder or file and why."""


@dataclass
class Member:
    encoder: str  # file names inside the folder
    decoder_step: str


@dataclass
class Manifest:
    members: list[Member]
    src_tokenizer: str
    tgt_tokenizer: str
    output_cap: Optional[int]  # the most decoding steps when max_length is null (the checkpoint's cap)
    lowercase: bool  # inputs are lowercased, as the training data was
    max_input_tokens: int  # raw-text sources are cut to this many tokens
    ensemble_combine: str = "log_probability"
    quantize: Optional[str] = None  # int8: the graphs' weights are 8-bit (onnxruntime's dynamic quantization)
    special_ids: dict[str, int] = field(default_factory=lambda: dict(SPECIAL_IDS))
    model: dict[str, Any] = field(default_factory=dict)  # the first member's hyperparameters, for people
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # where each member came from
    opset: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # file name -> SHA-256
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def write(self, directory: Path) -> None:
        """Checksum every named file of ``directory``, then write the manifest (atomically, last)."""
        names = [self.src_tokenizer, self.tgt_tokenizer] + [n for m in self.members for n in (m.encoder, m.decoder_step)]
        self.files = {name: sha256(directory / name) for name in names}
        write_text_atomic(directory / MANIFEST_FILE, json.dumps(asdict(self), indent=2) + "\n")

    @staticmethod
    def read(directory: Path, key: str = "model_dir") -> "Manifest":
        """The manifest of ``directory``, its files checked; :class:`ModelDirError` naming what is wrong."""
        path = directory / MANIFEST_FILE
        if not directory.is_dir():
            raise ModelDirError(f"{key}: {directory} is not a folder (make one with export.py ckpt_path=... "
                                f"output_dir={directory})")
        if not path.is_file():
            raise ModelDirError(f"{key}: {directory} has no {MANIFEST_FILE}: not a folder written by export.py")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("format") != FORMAT:
                raise ModelDirError(f"{key}: {path} is not a {FORMAT} manifest (format {raw.get('format')!r})")
            if raw.get("format_version") != FORMAT_VERSION:
                raise ModelDirError(f"{key}: {path} has format_version {raw.get('format_version')!r}; this version "
                                    f"reads {FORMAT_VERSION}: export the checkpoint again")
            raw["members"] = [Member(**member) for member in raw["members"]]
            manifest = Manifest(**raw)
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as error:
            raise ModelDirError(f"{key}: {path} is not a readable manifest ({error})") from error
        if manifest.special_ids != SPECIAL_IDS:
            raise ModelDirError(f"{key}: {path}: the graphs use special ids {manifest.special_ids}, this version "
                                f"{SPECIAL_IDS}")
        for name, digest in manifest.files.items():
            file = directory / name
            if not file.is_file():
                raise ModelDirError(f"{key}: {file} is missing (listed in {MANIFEST_FILE})")
            if sha256(file) != digest:
                raise ModelDirError(f"{key}: {file} does not match its checksum in {MANIFEST_FILE}: "
                                    "it was changed or cut short since export")
        return manifest


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
