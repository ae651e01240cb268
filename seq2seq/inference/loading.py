"""Loading checkpoints for decoding: the model rebuilt from one, the average of several, the device, the cap.

No Lightning here: a checkpoint is read as plain tensors and values (:mod:`seq2seq.checkpoint`), and the
network rebuilt from its stored hyperparameters.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from seq2seq.checkpoint import CheckpointError, StoredCheckpoint, read_checkpoint
from seq2seq.inference.text_encoding import DEFAULT_LENGTH_LIMIT
from seq2seq.models import Seq2Seq

log = logging.getLogger(__name__)

MODEL_PREFIX = "model."  # TranslationModule keeps its Seq2Seq as ``self.model``


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), or a torch device string; ValueError naming ``device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"device: {name!r} is not a device; use auto, cpu, cuda or cuda:N") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name} but CUDA is not available here; use device=cpu or device=auto")
    return device


def build_model(stored: StoredCheckpoint, key: str = "ckpt_path") -> Seq2Seq:
    """``Seq2Seq(src_vocab_size, tgt_vocab_size, **hyper_parameters["model"])`` with the stored ``model.*`` weights."""
    path, hparams = stored.path, stored.hyper_parameters
    try:
        settings = dict(hparams["model"])
        vocab_sizes = {"source": int(hparams["src_vocab_size"]), "target": int(hparams["tgt_vocab_size"])}
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"{key}: {path} has no usable hyper_parameters ({error!r} missing or malformed)"
        ) from error
    for side, tokenizer in (("source", stored.src_tokenizer), ("target", stored.tgt_tokenizer)):
        if tokenizer.vocab_size != vocab_sizes[side]:
            raise CheckpointError(
                f"{key}: {path} has a {side} tokenizer of {tokenizer.vocab_size} tokens but a model built for "
                f"{vocab_sizes[side]}"
            )
    try:
        model = Seq2Seq(vocab_sizes["source"], vocab_sizes["target"], **settings)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{key}: {path}: cannot rebuild the model from its hyperparameters: {error}") from error
    weights = {
        name[len(MODEL_PREFIX):]: value for name, value in stored.state_dict.items() if name.startswith(MODEL_PREFIX)
    }
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        first_lines = " ".join(str(error).split())[:500]
        raise CheckpointError(f"{key}: {path}: its weights do not fit the model it describes: {first_lines}") from error
    return model.eval()


def load_for_decoding(ckpt_path: Path, average_last: int) -> tuple[StoredCheckpoint, list[Path]]:
    """The checkpoint, or with ``average_last`` > 1 the average of its folder's latest ones (and their paths)."""
    if average_last <= 1:
        return read_checkpoint(ckpt_path), []
    if not ckpt_path.exists():
        raise FileNotFoundError(f"ckpt_path: checkpoint not found: {ckpt_path}")
    paths = latest_checkpoints(ckpt_path.parent, average_last)
    log.info("averaging the weights of %s", ", ".join(path.name for path in paths))
    return average_checkpoints(paths), paths


def latest_checkpoints(directory: Path, count: int) -> list[Path]:
    """The ``count`` ``*.ckpt`` files of ``directory`` with the highest global steps, newest first.

    Files of the same step (``last.ckpt`` is usually also the newest ``best-*.ckpt``) count once.
    """
    by_step: dict[int, Path] = {}
    for path in sorted(directory.glob("*.ckpt")):
        by_step.setdefault(read_checkpoint(path).global_step, path)
    if len(by_step) < count:
        found = ", ".join(f"{path.name} (step {step})" for step, path in sorted(by_step.items())) or "none"
        raise CheckpointError(
            f"average_last={count}: {directory} holds checkpoints of only {len(by_step)} distinct steps ({found}); "
            f"lower average_last, or keep more when training (callbacks.model_checkpoint.save_top_k=-1)"
        )
    return [by_step[step] for step in sorted(by_step, reverse=True)[:count]]


def average_checkpoints(paths: Sequence[Path]) -> StoredCheckpoint:
    """The first checkpoint, its ``model.*`` tensors replaced by their mean over all ``paths``.

    They must describe the same model (hyperparameters, tokenizers, parameter names and shapes).
    """
    first = read_checkpoint(paths[0])
    model_keys = [name for name, value in first.state_dict.items() if name.startswith("model.")]
    sums = {name: first.state_dict[name].double() for name in model_keys if first.state_dict[name].is_floating_point()}
    for path in paths[1:]:
        other = read_checkpoint(path)
        problem = _difference(first, other)
        if problem:
            raise CheckpointError(f"average_last: {path} and {paths[0]} cannot be averaged: {problem}")
        for name in sums:
            sums[name] += other.state_dict[name].double()
    state_dict = dict(first.state_dict)
    for name, total in sums.items():
        state_dict[name] = (total / len(paths)).to(first.state_dict[name].dtype)
    return dataclasses.replace(first, state_dict=state_dict)


def _difference(a: StoredCheckpoint, b: StoredCheckpoint) -> str:
    """What makes two checkpoints' models incompatible, or ''."""
    for key in ("model", "src_vocab_size", "tgt_vocab_size"):
        if a.hyper_parameters.get(key) != b.hyper_parameters.get(key):
            return f"hyper_parameters[{key!r}] differ"
    if a.src_tokenizer != b.src_tokenizer or a.tgt_tokenizer != b.tgt_tokenizer:
        return "their tokenizers differ"
    keys_a = {name: tuple(value.shape) for name, value in a.state_dict.items() if name.startswith("model.")}
    keys_b = {name: tuple(value.shape) for name, value in b.state_dict.items() if name.startswith("model.")}
    if keys_a != keys_b:
        return "their parameters differ in names or shapes"
    return ""


def output_cap(stored: StoredCheckpoint) -> int:
    """The most decoding steps when ``decode.max_length`` is null: the cap training stored in the checkpoint; for
    checkpoints written before it was stored, the longest target training allowed (and its eos), else 251."""
    stored_cap = (stored.hyper_parameters.get("decode") or {}).get("max_length")
    if stored_cap:
        return int(stored_cap)
    max_tgt_length = (stored.data or {}).get("max_tgt_length")
    return int(max_tgt_length or DEFAULT_LENGTH_LIMIT) + 1


def same_vocabularies(paths: Sequence[Path], stored: Sequence[StoredCheckpoint]) -> None:
    """CheckpointError naming both files when checkpoints meant to decode together have different tokenizers."""
    for path, other in zip(paths[1:], stored[1:]):
        for side in ("src", "tgt"):
            if getattr(other, f"{side}_tokenizer") != getattr(stored[0], f"{side}_tokenizer"):
                raise CheckpointError(
                    f"ckpt_path: {paths[0]} and {path} have different {'source' if side == 'src' else 'target'} "
                    f"tokenizers ({getattr(stored[0], f'{side}_tokenizer')} and {getattr(other, f'{side}_tokenizer')}): "
                    f"an ensemble's models must share their vocabularies"
                )
