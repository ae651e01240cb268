"""One split of a translation corpus: raw strings for scoring, token ids for training."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch.utils.data import Dataset

from seq2seq.data.collate import Example


@dataclass
class EncodedSplit:
    """Aligned lists for one split, after filtering; position ``i`` is example ``i`` everywhere.

    ``line_numbers[i]`` is the 1-based line of example ``i`` in the split's files, for error messages.
    ``dropped_lines`` and ``truncated_lines`` are the lines ``data.eval_overlong`` dropped or cut to the
    length limits (see :mod:`seq2seq.data.in_memory`). ``extra_references`` are the further references of a
    validation or test split with several (``reference_sets()`` gives all of each example's).
    """

    name: str
    sources: list[str]
    references: list[str]
    src_ids: list[list[int]]
    tgt_ids: list[list[int]]
    line_numbers: list[int]
    dropped_lines: list[int] = field(default_factory=list)
    truncated_lines: list[int] = field(default_factory=list)
    # Per example, its further references (``{split}.{tgt_lang}.N``), none empty; [] when the split has none.
    extra_references: list[list[str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sources)

    def reference_sets(self) -> list[list[str]]:
        """Each example's references: ``references[i]`` first (the one the loss is computed on), then the others."""
        if not self.extra_references:
            return [[reference] for reference in self.references]
        return [[reference, *extra] for reference, extra in zip(self.references, self.extra_references)]

    def bucket_lengths(self) -> list[int]:
        """Padded length of each example in a batch: ``tgt_in``/``tgt_out`` are one longer than the target."""
        return [max(len(src), len(tgt) + 1) for src, tgt in zip(self.src_ids, self.tgt_ids)]

    def source_and_decoder_lengths(self) -> list[list[int]]:
        """Each example's source length, and the decoder's steps (``tgt_in`` is the target and a start token)."""
        return [[len(src) for src in self.src_ids], [len(tgt) + 1 for tgt in self.tgt_ids]]


class TranslationDataset(Dataset[Example]):
    """Map-style view of an ``EncodedSplit`` yielding ``(index, src_ids, tgt_ids)`` for ``collate``."""

    def __init__(self, split: EncodedSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> Example:
        return index, self.split.src_ids[index], self.split.tgt_ids[index]
