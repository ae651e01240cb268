"""A SentencePiece model (``data.src_tokenizer=file:x.model``) behind the :class:`TextTokenizer` interface.

The model is used as it is, by the ``sentencepiece`` library itself (an optional dependency: ``pip install
sentencepiece``, or the project's ``sentencepiece`` extra), so its normalisation, pieces and decoding are
exactly the file's. Its four special pieces must have the project's fixed ids: SentencePiece declares which
piece is pad, unk, bos and eos (``--pad_id=0 --unk_id=1 --bos_id=2 --eos_id=3`` when training it), and a model
whose roles sit elsewhere, or are disabled (SentencePiece's default has no pad), is refused naming the role.

Saved (in a run's tokenizer folder, in checkpoints) as one line of JSON text holding the serialized model, so
that a checkpoint alone still rebuilds it: ``{"sentencepiece_model": "<base64>"}``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path

from seq2seq.data.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SENTENCEPIECE_JSON_PREFIX,
    UNK_ID,
    TextTokenizer,
)

KIND = "sentencepiece"
_SKIPPED_ON_DECODE = frozenset({PAD_ID, BOS_ID, EOS_ID})
_ROLES = (("pad", PAD_ID), ("unk", UNK_ID), ("bos", BOS_ID), ("eos", EOS_ID))


def _processor(model: bytes):
    try:
        import sentencepiece
    except ImportError:
        raise ValueError(
            "a SentencePiece model needs the sentencepiece package: pip install sentencepiece"
        ) from None
    return sentencepiece.SentencePieceProcessor(model_proto=model)


class SentencePieceTokenizer(TextTokenizer):
    """A SentencePiece model with the fixed special ids; encodes and decodes as ``sentencepiece`` does."""

    def __init__(self, model: bytes) -> None:
        # Not TextTokenizer.__init__: that one wraps a tokenizers Tokenizer; this wraps the SentencePiece processor.
        processor = _processor(model)
        for role, expected_id in _ROLES:
            found = getattr(processor, f"{role}_id")()
            if found != expected_id:
                found_text = "it is disabled (-1)" if found < 0 else f"found id {found}"
                raise ValueError(
                    f"the SentencePiece {role} piece must have id {expected_id}, {found_text}; train the model with "
                    f"--pad_id={PAD_ID} --unk_id={UNK_ID} --bos_id={BOS_ID} --eos_id={EOS_ID}"
                )
        self._model = model
        self._processor = processor
        self.kind = KIND

    @classmethod
    def from_file(cls, path: Path) -> SentencePieceTokenizer:
        return cls(Path(path).read_bytes())

    @property
    def vocab_size(self) -> int:
        return self._processor.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self._processor.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self._processor.encode(list(texts))

    def decode(self, ids: Sequence[int]) -> str:
        return self._processor.decode([int(i) for i in ids if int(i) not in _SKIPPED_ON_DECODE])

    def tokens(self, text: str) -> list[str]:
        return self._processor.encode(text, out_type=str)

    def id_to_token(self, token_id: int) -> str:
        if not 0 <= int(token_id) < self.vocab_size:
            raise IndexError(f"token id {token_id} out of range [0, {self.vocab_size})")
        return self._processor.id_to_piece(int(token_id))

    def token_to_id(self, token: str) -> int:
        return self._processor.piece_to_id(token)  # the unk id for a piece it does not have

    def to_json(self) -> str:
        return SENTENCEPIECE_JSON_PREFIX + json.dumps(base64.b64encode(self._model).decode("ascii")) + "}"

    @classmethod
    def from_json(cls, text: str) -> SentencePieceTokenizer:
        return cls(base64.b64decode(json.loads(text)["sentencepiece_model"]))
