"""``export.py``: a checkpoint (or an ensemble, or the average of the last few) as an ONNX model folder.

    output_dir/
      manifest.json           what the folder holds (seq2seq/runtime/manifest.py), with every file's checksum
      encoder.onnx            sources and lengths -> memory, mask, the decoder's first state
      decoder_step.onnx       one output token for every live hypothesis
      src_tokenizer.json      the checkpoint's tokenizers, as they are
      tgt_tokenizer.json

An ensemble's members are ``encoder.<i>.onnx`` and ``decoder_step.<i>.onnx``. ``quantize=int8`` writes graphs
with 8-bit weights (onnxruntime's dynamic quantization of the matrix products, RNNs and embeddings).

Before anything is written, every member's graphs are run on a sample batch against the PyTorch model: an
encoder or a decoder step that differs by more than ``tolerance`` is refused, not shipped. The folder is
built beside ``output_dir`` and renamed into place at the end, so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
import torch

from seq2seq.data.tokenizer import BOS_ID, PAD_ID
from seq2seq.export.decoder_graph import decoder_step_graph
from seq2seq.export.encoder_graph import encoder_graph
from seq2seq.export.onnx_graph import OPSET
from seq2seq.inference.loading import build_model, load_for_decoding, output_cap, same_vocabularies
from seq2seq.inference.text_encoding import DEFAULT_LENGTH_LIMIT
from seq2seq.inference.text_translator import LoadedCheckpoint
from seq2seq.models import Seq2Seq
from seq2seq.runtime.manifest import MANIFEST_FILE, Manifest, Member

log = logging.getLogger(__name__)

QUANTIZE_MODES = ("int8",)
TOLERANCE = 1e-4  # the largest difference from PyTorch, in log-probabilities or state values, that is accepted


class ExportError(ValueError):
    """A model that cannot be exported, or whose exported graphs do not compute what it does."""


def check_exportable(model: Seq2Seq, path: Path) -> None:
    """ExportError naming the setting that the graphs cannot carry."""
    if model.decoder.step_cells is not None:
        raise ExportError(f"ckpt_path: {path}: a decoder with replaced step cells (quantize) cannot be exported; "
                          "export the float model and use quantize=int8 here")
    if model.encoder.rnn_type not in ("lstm", "gru"):
        raise ExportError(f"model.rnn_type={model.encoder.rnn_type!r} ({path}): only lstm and gru export")


def export_checkpoints(paths: Sequence[Path], output_dir: Path, *, average_last: int = 0,
                       ensemble_combine: str = "log_probability", quantize: Optional[str] = None,
                       overwrite: bool = False, tolerance: float = TOLERANCE) -> Manifest:
    """Export the checkpoint(s) at ``paths`` into ``output_dir``; the manifest written there."""
    if quantize not in (None, *QUANTIZE_MODES):
        raise ExportError(f"quantize: must be one of {list(QUANTIZE_MODES)} or null, got {quantize!r}")
    if output_dir.exists() and not overwrite and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise ExportError(f"output_dir: {output_dir} exists and is not empty; choose another or pass overwrite=true")
    stored, models = [], []
    for path in paths:
        checkpoint, averaged = load_for_decoding(path, average_last)
        model = build_model(checkpoint).float().eval()
        check_exportable(model, path)
        stored.append((checkpoint, averaged))
        models.append(model)
    same_vocabularies(list(paths), [checkpoint for checkpoint, _ in stored])

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # a folder as mkdir makes it, not mkdtemp's owner-only one
    try:
        members = []
        for index, (model, (checkpoint, _)) in enumerate(zip(models, stored)):
            suffix = "" if len(models) == 1 else f".{index}"
            member = Member(f"encoder{suffix}.onnx", f"decoder_step{suffix}.onnx")
            graphs = {member.encoder: encoder_graph(model), member.decoder_step: decoder_step_graph(model)}
            for name, graph in graphs.items():
                onnx.save(graph, str(staging / name))
            difference = compare_with_pytorch(model, staging / member.encoder, staging / member.decoder_step)
            if difference > tolerance:
                raise ExportError(f"ckpt_path: {checkpoint.path}: the exported graphs differ from the PyTorch model by "
                                  f"{difference:.2e} (more than {tolerance:g}); nothing was written")
            log.info("%s: exported; on a sample batch the graphs agree with PyTorch to %.1e", checkpoint.path,
                     difference)
            if quantize == "int8":
                for name in graphs:
                    quantize_graph(staging / name)
            members.append(member)
        first = stored[0][0]
        first.src_tokenizer.save(staging / "src_tokenizer.json")
        first.tgt_tokenizer.save(staging / "tgt_tokenizer.json")
        data = first.data or {}
        manifest = Manifest(
            members=members, src_tokenizer="src_tokenizer.json", tgt_tokenizer="tgt_tokenizer.json",
            output_cap=output_cap(first), lowercase=bool(data.get("lowercase", False)),
            max_input_tokens=int(data.get("max_src_length") or DEFAULT_LENGTH_LIMIT),
            ensemble_combine=ensemble_combine, quantize=quantize,
            model=dict(first.hyper_parameters.get("model") or {}),
            checkpoints=[LoadedCheckpoint.of(checkpoint, averaged).record() for checkpoint, averaged in stored],
            opset=OPSET, versions=library_versions())
        manifest.write(staging)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        staging.rename(output_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("wrote %s (%s)", output_dir, ", ".join(sorted(manifest.files) + [MANIFEST_FILE]))
    return manifest


def quantize_graph(path: Path) -> None:
    """``path`` rewritten with 8-bit weights: onnxruntime's dynamic quantization (activations quantized per call)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = path.with_suffix(".int8.onnx")
    quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
    quantized.replace(path)


@torch.inference_mode()
def compare_with_pytorch(model: Seq2Seq, encoder_path: Path, decoder_path: Path, steps: int = 3) -> float:
    """The largest difference between the graphs and ``model`` on a padded, unsorted sample batch: memory, the
    first state, and ``steps`` decoder steps' log-probabilities and attention."""
    from seq2seq.runtime.onnx_model import OnnxModel

    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor([3, 7, 1, 5])  # unsorted, one of length 1, padding in all but one
    src = torch.randint(4, model.encoder.embedding.num_embeddings, (4, 7), generator=generator)
    src[torch.arange(7) >= lengths.unsqueeze(1)] = PAD_ID
    exported = OnnxModel(encoder_path, decoder_path, threads=1)
    memory, state = model.encode(src, lengths)
    onnx_memory, onnx_state = exported.encode(src.numpy(), lengths.numpy())
    differences = [np.abs(onnx_memory.arrays["memory_keys"] - memory.keys.numpy()).max()]
    tokens = torch.full((4,), BOS_ID)
    for _ in range(steps):
        log_probs, attention, state = model.step_log_probs(tokens, memory, state)
        onnx_log_probs, onnx_attention, onnx_state = exported.step_log_probs(tokens.numpy(), onnx_memory, onnx_state)
        differences += [np.abs(onnx_log_probs - log_probs.numpy()).max(), np.abs(onnx_attention - attention.numpy()).max()]
        tokens = log_probs.argmax(dim=-1)
    return float(max(differences))


def library_versions() -> dict[str, str]:
    versions = {}
    for package in ("seq2seq", "torch", "onnx", "onnxruntime", "tokenizers", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def export_from_config(cfg) -> Manifest:
    """``export.py``'s config (conf/export.yaml) -> :func:`export_checkpoints`."""
    from hydra.utils import to_absolute_path
    from omegaconf import OmegaConf

    from seq2seq.config_checks import ConfigError
    from seq2seq.inference.ensemble import COMBINE_MODES
    from seq2seq.inference.evaluation import checkpoint_paths

    for key in ("ckpt_path", "output_dir"):
        if OmegaConf.is_missing(cfg, key) or not cfg[key]:
            raise ConfigError(f"{key}: required: python export.py ckpt_path=PATH output_dir=DIR")
    if cfg.average_last < 0:
        raise ConfigError(f"average_last: must be at least 0, got {cfg.average_last}")
    if cfg.ensemble_combine not in COMBINE_MODES:
        raise ConfigError(f"ensemble_combine: must be one of {list(COMBINE_MODES)}, got {cfg.ensemble_combine!r}")
    if cfg.quantize is not None and cfg.quantize not in QUANTIZE_MODES:
        raise ConfigError(f"quantize: must be one of {list(QUANTIZE_MODES)} or null, got {cfg.quantize!r}")
    return export_checkpoints(checkpoint_paths(cfg), Path(to_absolute_path(cfg.output_dir)),
                              average_last=cfg.average_last, ensemble_combine=cfg.ensemble_combine,
                              quantize=cfg.quantize, overwrite=cfg.overwrite)
