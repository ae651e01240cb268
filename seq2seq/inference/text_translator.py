"""What both runtimes' translators share: raw text in, :class:`Translation` results out, in the callers' order.

:class:`~seq2seq.inference.translator.Translator` (PyTorch) and :class:`~seq2seq.runtime.OnnxTranslator`
(onnxruntime) are each a ``text`` (:class:`TextEncoding`) and a ``decoding`` (their runtime's ``translate_ids``);
``translate`` is this one method for both, so the keywords, the checks and the results cannot drift apart. No torch
here: the ONNX runtime imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from seq2seq.data.tokenizer import TextTokenizer
from seq2seq.decode_options import DEFAULT_BATCH_SIZE, DEFAULT_MAX_TOKENS, DecodeOptions
from seq2seq.inference.text_encoding import TextEncoding
from seq2seq.inference.translation import Translation

if TYPE_CHECKING:
    from seq2seq.checkpoint import StoredCheckpoint


@dataclass(frozen=True)
class LoadedCheckpoint:
    """What a translator was loaded from: the file, its step, its data settings, the files averaged into it. An
    exported model records its checkpoints' in its manifest (``record``), and its translator reads them back."""

    path: Path
    global_step: int
    epoch: int
    data: Optional[dict]
    averaged: tuple[Path, ...] = ()

    @staticmethod
    def of(stored: "StoredCheckpoint", averaged: Sequence[Path] = ()) -> "LoadedCheckpoint":
        return LoadedCheckpoint(stored.path, stored.global_step, stored.epoch, stored.data, tuple(averaged))

    def record(self) -> dict[str, Any]:
        return {"path": str(self.path), "global_step": self.global_step, "epoch": self.epoch,
                "averaged": [str(path) for path in self.averaged], "data": self.data}

    @staticmethod
    def from_record(record: dict[str, Any]) -> "LoadedCheckpoint":
        return LoadedCheckpoint(Path(record["path"]), int(record.get("global_step", 0)), int(record.get("epoch", 0)),
                                record.get("data"), tuple(Path(path) for path in record.get("averaged", ())))


class TextTranslator:
    """``text`` encodes raw text as training read it; ``decoding`` has ``translate_ids`` and ``output_cap``;
    ``checkpoints`` are what the model came from."""

    text: TextEncoding
    decoding: Any
    checkpoints: tuple[LoadedCheckpoint, ...] = ()

    @property
    def src_tokenizer(self) -> TextTokenizer:
        return self.text.src_tokenizer

    @property
    def tgt_tokenizer(self) -> TextTokenizer:
        return self.text.tgt_tokenizer

    @property
    def output_cap(self) -> Optional[int]:
        return self.decoding.output_cap

    def translate(
        self,
        sources: Union[str, Sequence[str]],
        *,
        prefixes: Optional[Sequence[str]] = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_tokens: Optional[int] = DEFAULT_MAX_TOKENS,
        **options: Any,
    ) -> list[Translation]:
        """One :class:`Translation` per source sentence (a single string: a list of one), in order.

        ``options``: any :class:`~seq2seq.decode_options.DecodeOptions` field by name (``beam_size=1``,
        ``n_best=3``, ``sampling="topk"``, ...), the others at their defaults. ``prefixes``: per source, the
        start its translation must have ('' for none); the search goes on after it. Empty sources give empty
        translations; sources over ``max_input_tokens`` source tokens are cut, with a warning naming them.
        ``batch_size`` sentences and ``max_tokens`` padded source positions per batch (speed only).
        """
        decode_options = DecodeOptions.from_mapping(options)
        lines = [sources] if isinstance(sources, str) else list(sources)
        encoded_prefixes = self.text.prefixes(prefixes, len(lines))
        return self.decoding.translate_ids(self.text.sources(lines), decode_options, batch_size=batch_size,
                                           max_tokens=max_tokens, prefixes=encoded_prefixes)
