"""An exported model in onnxruntime: ``encode`` once per batch, ``step_log_probs`` once per output token.

It offers the search what :class:`seq2seq.models.Seq2Seq` offers PyTorch's (``encode`` and ``step_log_probs``),
on numpy arrays. Memory and state are :class:`Batched`: named arrays whose batch axis is known, so that beam
search can expand and reorder them (``index_select``) without knowing what is inside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import onnxruntime as ort

# The batch axis of each array passed between the graphs (the names are the graphs' interface:
# seq2seq/export/encoder_graph.py and decoder_graph.py). RNN states are (L, N, H); the rest are batch-first.
BATCH_AXES = {"memory_keys": 0, "memory_mask": 0, "memory_projected_keys": 0,
              "state_h": 1, "state_c": 1, "state_attentional": 0}
COMBINE_MODES = ("probability", "log_probability")


@dataclass(frozen=True)
class Batched:
    """Named arrays, each with a batch axis (:data:`BATCH_AXES`): a batch's memory, or its decoder state."""

    arrays: dict[str, np.ndarray]

    def index_select(self, indices: np.ndarray) -> "Batched":
        """Rows ``indices`` of every array, e.g. sentences expanded to beams."""
        return Batched({name: np.take(array, indices, axis=BATCH_AXES[name]) for name, array in self.arrays.items()})


def session_options(threads: Optional[int], spinning: bool = True) -> ort.SessionOptions:
    """``threads`` for each operator (None: onnxruntime's choice, one per core); one operator at a time, as the
    graphs are chains. ``spinning``: the session's idle worker threads keep spinning for a moment after each call,
    waiting for the next one.

    Spinning is what makes the decoder step fast with several threads (at batch 1 on 2 cores, `ref_bilstm`: 0.81 ms
    a step spinning, 1.26 ms not), and what makes two sessions slow each other: every session has its own threads,
    and the encoder's, left spinning after its call, took a core from the decoder's steps (1.6 ms a step). So only
    a session called step after step spins (:class:`OnnxModel`).
    """
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if threads is not None:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


class OnnxModel:
    """The encoder and decoder-step graphs of one exported model, in onnxruntime sessions."""

    def __init__(self, encoder_path: Path, decoder_path: Path, threads: Optional[int] = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",), spinning: bool = True) -> None:
        """``spinning``: the decoder step's threads wait spinning between steps (see :func:`session_options`); off
        for an ensemble's members, whose decoders take turns. The encoder, called once per batch, never spins."""
        self.encoder = ort.InferenceSession(str(encoder_path), session_options(threads, spinning=False),
                                            providers=list(providers))
        self.decoder = ort.InferenceSession(str(decoder_path), session_options(threads, spinning),
                                            providers=list(providers))
        self._encoder_outputs = [output.name for output in self.encoder.get_outputs()]
        self._state_names = [name for name in self._encoder_outputs if name.startswith("state_")]
        # The decoder's outputs in a fixed order: log-probs (or the top k), attention, then the new state.
        new_state = ["new_" + name for name in self._state_names]
        self._step_outputs = ["log_probs", "attention"] + new_state
        self._top_k_outputs = ["top_log_probs", "top_ids", "attention"] + new_state
        self._one = np.ones(1, dtype=np.int64)
        self.vocab_size = int(self.decoder.get_outputs()[0].shape[-1])

    def encode(self, src: np.ndarray, src_lengths: np.ndarray) -> tuple[Batched, Batched]:
        """src (B, S) and src_lengths (B,), int64 -> memory and the decoder's initial state."""
        outputs = dict(zip(self._encoder_outputs, self.encoder.run(None, {"src": src, "src_lengths": src_lengths})))
        memory = {name: value for name, value in outputs.items() if name.startswith("memory_")}
        return Batched(memory), Batched({name: outputs[name] for name in self._state_names})

    def step_log_probs(self, tokens: np.ndarray, memory: Batched, state: Batched
                       ) -> tuple[np.ndarray, np.ndarray, Batched]:
        """tokens (N,) -> log-probabilities (N, V) of the next token, attention (N, S) and the new state."""
        feeds = {"tokens": tokens, "top_k": self._one, **memory.arrays, **state.arrays}
        log_probs, attention, *new_state = self.decoder.run(self._step_outputs, feeds)
        return log_probs, attention, Batched(dict(zip(self._state_names, new_state)))

    def step_top_k(self, tokens: np.ndarray, memory: Batched, state: Batched, k: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Batched]:
        """tokens (N,) -> each row's ``k`` best next tokens but pad and bos, best first (an equal log-prob: the
        lower id first): log-probs and ids (N, k), attention (N, S) and the new state. The search's shortcut past
        the whole (N, V) array; ``k`` at most V."""
        feeds = {"tokens": tokens, "top_k": np.array([k], dtype=np.int64), **memory.arrays, **state.arrays}
        top_log_probs, top_ids, attention, *new_state = self.decoder.run(self._top_k_outputs, feeds)
        return top_log_probs, top_ids, attention, Batched(dict(zip(self._state_names, new_state)))


class Stacked(tuple):
    """One entry per ensemble member (memories or states), selectable along the batch like a single model's."""

    def index_select(self, indices: np.ndarray) -> "Stacked":
        return Stacked(part.index_select(indices) for part in self)


def combine_log_probs(log_probs: Sequence[np.ndarray], combine: str) -> np.ndarray:
    """M arrays of log-probabilities -> one, as :func:`seq2seq.inference.ensemble.combine_log_probs`."""
    if len(log_probs) == 1:
        return log_probs[0]
    stacked = np.stack(log_probs)  # (M, ...)
    if combine == "probability":
        top = stacked.max(axis=0)
        with np.errstate(invalid="ignore"):  # rows where every member says -inf stay -inf
            summed = top + np.log(np.exp(stacked - top).sum(axis=0))
        return np.where(np.isneginf(top), top, summed) - math.log(len(log_probs))
    return stacked.mean(axis=0)


class OnnxEnsemble:
    """Exported models decoding together, their next-token distributions combined at every step
    (:mod:`seq2seq.inference.ensemble` says how); attention is averaged over the members."""

    def __init__(self, members: Sequence[OnnxModel], combine: str = "log_probability") -> None:
        if combine not in COMBINE_MODES:
            raise ValueError(f"ensemble_combine must be one of {list(COMBINE_MODES)}, got {combine!r}")
        self.members = list(members)
        self.combine = combine

    def encode(self, src: np.ndarray, src_lengths: np.ndarray) -> tuple[Stacked, Stacked]:
        encoded = [member.encode(src, src_lengths) for member in self.members]
        return Stacked(memory for memory, _ in encoded), Stacked(state for _, state in encoded)

    def step_log_probs(self, tokens: np.ndarray, memory: Stacked, state: Stacked
                       ) -> tuple[np.ndarray, np.ndarray, Stacked]:
        results = [member.step_log_probs(tokens, m, s) for member, m, s in zip(self.members, memory, state)]
        attention = np.mean([attention for _, attention, _ in results], axis=0).astype(np.float32)  # (N, S)
        return (combine_log_probs([log_probs for log_probs, _, _ in results], self.combine), attention,
                Stacked(new_state for _, _, new_state in results))
