"""Padding encoded examples into a ``Batch`` for teacher forcing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from seq2seq.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

Example = tuple[int, list[int], list[int]]  # (index within the split, source ids, target ids)


@dataclass
class Batch:
    """A padded batch; every tensor is padded with ``PAD_ID`` (0).

    Shapes:
        src: (B, S) source ids, no ``<bos>``/``<eos>``.
        src_lengths: (B,) real source lengths. It moves to the device with the batch;
            ``pack_padded_sequence`` wants it on the CPU, so call ``.cpu()`` there.
        tgt_in: (B, T) decoder input ``<bos> y1 .. yn``.
        tgt_out: (B, T) decoder target ``y1 .. yn <eos>``, aligned with ``tgt_in``.
        indices: (B,) position of each example in its split, to look up ``references(split)[i]``.

    Not frozen: Lightning moves a dataclass to the device by setting its fields.
    """

    src: torch.Tensor
    src_lengths: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    indices: torch.Tensor

    @property
    def num_tgt_tokens(self) -> int:
        """Real (non-pad) target tokens, ``<eos>`` included: the denominator of a per-token loss."""
        return int((self.tgt_out != PAD_ID).sum())

    def __len__(self) -> int:
        return self.src.size(0)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return self.src, self.src_lengths, self.tgt_in, self.tgt_out, self.indices

    def to(self, device: torch.device) -> Batch:
        return Batch(*(t.to(device) for t in self.tensors()))

    def pin_memory(self) -> Batch:
        """Called by ``DataLoader(pin_memory=True)`` for custom batch types."""
        return Batch(*(t.pin_memory() for t in self.tensors()))


def _pad(sequences: Sequence[list[int]]) -> torch.Tensor:
    longest = max(len(s) for s in sequences)
    return torch.tensor([s + [PAD_ID] * (longest - len(s)) for s in sequences], dtype=torch.long)


def collate(examples: Sequence[Example]) -> Batch:
    """Pad ``(index, src_ids, tgt_ids)`` examples into a ``Batch`` and add ``<bos>``/``<eos>`` to the target."""
    if not examples:
        raise ValueError("collate got an empty list of examples")
    for index, src_ids, _ in examples:
        if not src_ids:
            raise ValueError(f"example {index} has an empty source; empty lines must be dropped before batching")
    return Batch(
        src=_pad([src for _, src, _ in examples]),  # (B, S)
        src_lengths=torch.tensor([len(src) for _, src, _ in examples], dtype=torch.long),  # (B,)
        tgt_in=_pad([[BOS_ID, *tgt] for _, _, tgt in examples]),  # (B, T)
        tgt_out=_pad([[*tgt, EOS_ID] for _, _, tgt in examples]),  # (B, T)
        indices=torch.tensor([index for index, _, _ in examples], dtype=torch.long),  # (B,)
    )
