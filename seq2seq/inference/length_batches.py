"""Sentences grouped for decoding: similar lengths together, so that a batch pads little.

How sentences are grouped changes no result (each one is searched as if alone; ``tests/unit/test_search.py``),
only the speed and the memory a batch takes. No torch here: the ONNX runtime (:mod:`seq2seq.runtime`) batches
the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional, TypeVar

import numpy as np

from seq2seq.data.tokenizer import PAD_ID

Result = TypeVar("Result")


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: Optional[int] = None) -> list[list[int]]:
    """Indices of the non-empty entries of ``lengths`` in batches of similar length, longest first: at most
    ``batch_size`` sentences and ``max_tokens`` padded positions (sentences x the batch's longest) each; a
    sentence longer than ``max_tokens`` is a batch of its own. A batch that does not fit in memory fails at
    once, not at the end."""
    if batch_size < 1:
        raise ValueError(f"batch_size: must be at least 1, got {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens: must be at least 1 or null, got {max_tokens}")
    order = sorted((i for i, n in enumerate(lengths) if n), key=lambda i: -lengths[i])  # stable for ties
    batches: list[list[int]] = []
    for index in order:
        batch = batches[-1] if batches else None
        # The first sentence of a batch is its longest: adding one more makes len(batch) + 1 rows of that length.
        fits = batch is not None and len(batch) < batch_size and (
            max_tokens is None or (len(batch) + 1) * lengths[batch[0]] <= max_tokens)
        if fits:
            batch.append(index)
        else:
            batches.append([index])
    return batches


def pad_sources(sequences: Sequence[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Non-empty id lists -> src (B, S) int64 padded with ``PAD_ID``, src_lengths (B,) int64: numpy arrays, which
    both runtimes take (``torch.from_numpy`` shares their memory)."""
    longest = max(len(ids) for ids in sequences)
    src = np.array([ids + [PAD_ID] * (longest - len(ids)) for ids in sequences], dtype=np.int64)  # (B, S)
    return src, np.array([len(ids) for ids in sequences], dtype=np.int64)


def decode_in_batches(
    src_ids: Sequence[list[int]],
    batch_size: int,
    max_tokens: Optional[int],
    decode_batch: Callable[[list[int], np.ndarray, np.ndarray], list[Result]],
    empty: Result,
    on_batch: Optional[Callable[[int], None]] = None,
) -> list[Result]:
    """Every non-empty id list of ``src_ids`` decoded in :func:`length_batches`, each result back at its input's
    position; an empty one gets ``empty``. ``decode_batch(indices, src, src_lengths)`` decodes one padded batch
    (:func:`pad_sources`) and returns its results in ``indices``' order; ``on_batch(n)`` follows each batch of n.
    Both runtimes' ``translate_ids`` are this loop."""
    results: list[Optional[Result]] = [empty if not ids else None for ids in src_ids]
    for chunk in length_batches([len(ids) for ids in src_ids], batch_size, max_tokens):
        src, src_lengths = pad_sources([src_ids[i] for i in chunk])
        for index, result in zip(chunk, decode_batch(chunk, src, src_lengths), strict=True):
            results[index] = result
        if on_batch is not None:
            on_batch(len(chunk))
    return results  # type: ignore[return-value]  # every slot is filled
