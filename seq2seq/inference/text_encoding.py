"""Raw text to token ids, as training read its data: the one place where user text becomes model input.

Sources, targets (to score) and target prefixes are stripped as training data is stripped, lowercased when
the model was trained on lowercased data, and encoded with the checkpoint's tokenizers; unknown pieces become
``<unk>``, so nothing here fails on odd text. A source longer than ``max_input_tokens`` tokens is cut to it,
with one warning naming the lines (so a pasted book cannot make one batch take all memory). No torch here: the
ONNX runtime (:mod:`seq2seq.runtime`) encodes text with this too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from seq2seq.data.tokenizer import TextTokenizer

log = logging.getLogger(__name__)

DEFAULT_LENGTH_LIMIT = 250  # tokens, for checkpoints that record no data.max_src_length / max_tgt_length


@dataclass
class TextEncoding:
    src_tokenizer: TextTokenizer
    tgt_tokenizer: TextTokenizer
    lowercase: bool = False  # lowercase inputs, as the training data was
    max_input_tokens: int = DEFAULT_LENGTH_LIMIT  # sources are cut to this many tokens

    def normalize(self, lines: Sequence[str]) -> list[str]:
        """Stripped, and lowercased when training was."""
        texts = [line.strip() for line in lines]
        return [text.lower() for text in texts] if self.lowercase else texts

    def sources(self, lines: Sequence[str], name: str = "input") -> list[list[int]]:
        """Source ids per line ([] for an empty one), cut to ``max_input_tokens`` with a warning naming ``name``
        and the lines."""
        if self.max_input_tokens < 1:
            raise ValueError(f"max_input_tokens: must be at least 1, got {self.max_input_tokens}")
        texts = self.normalize(lines)
        non_empty = [i for i, text in enumerate(texts) if text]
        ids: list[list[int]] = [[] for _ in texts]
        for i, encoded in zip(non_empty, self.src_tokenizer.encode_batch([texts[i] for i in non_empty])):
            ids[i] = encoded
        truncated = [(i + 1, len(line_ids)) for i, line_ids in enumerate(ids) if len(line_ids) > self.max_input_tokens]
        for line, _ in truncated:
            ids[line - 1] = ids[line - 1][: self.max_input_tokens]
        self._warn_truncated(truncated, name)
        return ids

    def targets(self, lines: Sequence[str]) -> list[list[int]]:
        """Target ids per line, to score (not cut: a score is of the whole target)."""
        return self.tgt_tokenizer.encode_batch(self.normalize(lines))

    def prefixes(self, prefixes: Optional[Sequence[str]], count: int) -> Optional[list[list[int]]]:
        """One forced output start per source ('' for none) -> target ids; None stays None."""
        if prefixes is None:
            return None
        if isinstance(prefixes, str) or len(prefixes) != count:
            raise ValueError(f"prefixes: give one per source ({count}), '' for none; got "
                             f"{'a string' if isinstance(prefixes, str) else len(prefixes)}")
        return [self.tgt_tokenizer.encode(text) if text else [] for text in self.normalize(prefixes)]

    def _warn_truncated(self, truncated: Sequence[tuple[int, int]], name: str, shown: int = 20) -> None:
        if not truncated:
            return
        listed = ", ".join(f"line {line} ({length} tokens)" for line, length in truncated[:shown])
        more = f" and {len(truncated) - shown} more" if len(truncated) > shown else ""
        log.warning("%s: %d line(s) longer than max_input_tokens=%d source tokens were truncated to %d tokens: %s%s",
                    name, len(truncated), self.max_input_tokens, self.max_input_tokens, listed, more)
