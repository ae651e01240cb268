"""``evaluate(cfg)``: score a checkpoint on a data split, or translate raw text with it.

``evaluate.py`` wraps this in ``@hydra.main``; tests call it directly with a composed config.

Everything comes from the checkpoint: the model's hyperparameters and weights, the tokenizers and (for
checkpoints that record them) the data settings, so ``ckpt_path`` alone is enough. ``data=...`` scores
another corpus instead; its tokenizer kinds must be the checkpoint's, since the checkpoint's tokenizers
are the ones used.

Files written by a split evaluation (``output=FILE`` names the first; the others are named after it, with
``.json`` and ``.nbest`` for its extension):

    <run>/eval/<checkpoint>.<split>.<search>.hyp     hypotheses, one per line, in the split's order
    <run>/eval/<checkpoint>.<split>.<search>.json    BLEU (with sacreBLEU's signature), chrF, exact match, speed
    <run>/eval/<checkpoint>.<split>.<search>.nbest   with decode.n_best > 1: Moses n-best lines

where ``<search>`` names every decode setting that changes the hypotheses, so scoring a checkpoint again with
other settings never overwrites an earlier result: ``beam<K>``, then for K > 1 ``.lp<alpha>`` (the length
penalty), then the length limits when they are not the defaults: ``.len<ratio>x+<constant>`` and ``.max<N>``
(e.g. ``last.test.beam5.lp1.hyp``, ``last.test.beam1.hyp``).
``<run>`` is the folder above ``checkpoints/`` (or the checkpoint's own folder when it is not in
one), and ``<checkpoint>`` is the file's stem, ``avg<N>`` with ``average_last=N``, and for ``data=...`` is
followed by the data name and root folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seq2seq.checkpoint import CheckpointError, StoredCheckpoint, read_checkpoint
from seq2seq.config import DataConfig, DecodeConfig
from seq2seq.config_checks import ConfigError, check_data, check_decode
from seq2seq.data import TranslationDataModule
from seq2seq.data.atomic import write_text_atomic
from seq2seq.data.in_memory import EVAL_OVERLONG_POLICIES
from seq2seq.data.tokenizer_store import SRC_FILE, TGT_FILE
from seq2seq.inference.metrics import score_translations
from seq2seq.inference.translator import (
    Translator,
    format_translations,
    load_translator,
    read_input,
    resolve_device,
    translate_ids,
    translate_lines,
    write_output,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_INPUT_TOKENS = 250


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score ``cfg.split`` (returns the metrics written to the JSON file), or translate ``cfg.input`` (returns {})."""
    check_evaluate_config(cfg)
    ckpt_path = Path(to_absolute_path(cfg.ckpt_path))
    stored, averaged = load_for_decoding(ckpt_path, cfg.average_last)
    device = resolve_device(cfg.device)
    translator = load_translator(stored, device)
    log.info(
        "%s: step %d, epoch %d; source %s, target %s; decoding on %s",
        ckpt_path, stored.global_step, stored.epoch, stored.src_tokenizer, stored.tgt_tokenizer, device,
    )
    if cfg.input is not None:
        translate_input(cfg, stored, translator)
        return {}
    return evaluate_split(cfg, stored, translator, averaged)


def check_evaluate_config(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path: required, e.g. ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt")
    check_decode(cfg.decode)
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size: must be at least 1, got {cfg.batch_size}")
    if cfg.average_last < 0:
        raise ConfigError(f"average_last: must be >= 0 (0 or 1: no averaging), got {cfg.average_last}")
    if cfg.max_tokens is not None and cfg.max_tokens < 1:
        raise ConfigError(f"max_tokens: must be at least 1 or null, got {cfg.max_tokens}")
    if cfg.eval_overlong is not None and cfg.eval_overlong not in EVAL_OVERLONG_POLICIES:
        raise ConfigError(f"eval_overlong: must be one of {list(EVAL_OVERLONG_POLICIES)} or null, got {cfg.eval_overlong!r}")
    if cfg.max_input_tokens is not None and cfg.max_input_tokens < 1:
        raise ConfigError(f"max_input_tokens: must be at least 1 or null, got {cfg.max_input_tokens}")
    if cfg.input is not None and cfg.data is not None:
        raise ConfigError("data: input=... translates raw text and reads no data set; drop data=... or input=...")
    if cfg.input is None and cfg.output == "-":
        raise ConfigError("output: '-' (stdout) is for input=...; a split evaluation writes hypotheses to a file")
    if cfg.data is not None:
        if OmegaConf.is_missing(cfg.data, "root"):
            raise ConfigError(f"data.root: required with data={cfg.data.name}: the folder holding the files")
        check_data(cfg.data)


# ------------------------------------------------------------------------------------------ checkpoints
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


# -------------------------------------------------------------------------------------- split scoring
def split_data_settings(cfg: DictConfig, stored: StoredCheckpoint) -> dict[str, Any]:
    """``data.*`` for the split: ``cfg.data`` when given, else the checkpoint's. Relative roots are taken
    from the current directory. ConfigError when the tokenizer kinds are not the checkpoint's."""
    if cfg.data is not None:
        data = OmegaConf.to_container(cfg.data, resolve=True)
    elif stored.data is not None:
        try:
            data = OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(DataConfig), stored.data))
        except OmegaConfBaseException as error:
            raise CheckpointError(
                f"ckpt_path: {stored.path}: its stored data settings do not fit this version's data config "
                f"({' '.join(str(error).split())}); pass data=<name> data.root=... to name the files"
            ) from error
        check_data(OmegaConf.create(data), key=f"data (stored in {stored.path})")
    else:
        raise ConfigError(
            f"data: {stored.path} does not record which data it was trained on; name the files to score with "
            f"data=<numbers|multi30k|text> data.root=DIR (and data.src_tokenizer/data.tgt_tokenizer as trained)"
        )
    data["root"] = to_absolute_path(data["root"])
    if cfg.eval_overlong is not None:
        data["eval_overlong"] = cfg.eval_overlong
    for side, tokenizer in (("src", stored.src_tokenizer), ("tgt", stored.tgt_tokenizer)):
        if data[f"{side}_tokenizer"] != tokenizer.kind:
            raise ConfigError(
                f"data.{side}_tokenizer={data[f'{side}_tokenizer']!r} does not match the checkpoint's vocabulary: "
                f"{stored.path} has a {tokenizer.kind!r} {side} tokenizer; set data.{side}_tokenizer={tokenizer.kind}"
            )
    if cfg.split not in data["splits"]:
        raise ConfigError(f"split: {cfg.split!r} is not in data.splits (valid: {', '.join(data['splits'])})")
    return data


def output_paths(cfg: DictConfig, ckpt_path: Path, data: dict[str, Any], averaged: Sequence[Path]) -> tuple[Path, Path]:
    """(hypotheses file, metrics JSON) of a split evaluation; see the module docstring."""
    if cfg.output is not None:
        hypotheses = Path(to_absolute_path(cfg.output))
    else:
        folder = ckpt_path.parent
        eval_dir = (folder.parent if folder.name == "checkpoints" else folder) / "eval"
        name = f"avg{len(averaged)}" if averaged else ckpt_path.stem
        if cfg.data is not None:
            name += f".{data['name']}-{Path(data['root']).name}"
        hypotheses = eval_dir / f"{name}.{cfg.split}.{search_name(cfg.decode)}.hyp"
    metrics = hypotheses.with_suffix(".json")
    if metrics == hypotheses:
        raise ConfigError(f"output: {hypotheses} ends in .json, the name of the metrics file beside it; choose another")
    return hypotheses, metrics


def search_name(decode: DictConfig) -> str:
    """The decode settings that change the hypotheses, for file names: ``beam5.lp1``, ``beam1.len2x+5.max80``."""
    defaults = DecodeConfig()
    name = f"beam{decode.beam_size}"
    if decode.beam_size > 1:  # one beam is greedy search, which no length penalty changes
        name += f".lp{decode.length_penalty:g}"
    if (decode.max_length_ratio, decode.max_length_constant) != (defaults.max_length_ratio, defaults.max_length_constant):
        name += f".len{decode.max_length_ratio:g}x+{decode.max_length_constant}"
    if decode.max_length is not None:
        name += f".max{decode.max_length}"
    return name


def evaluate_split(
    cfg: DictConfig, stored: StoredCheckpoint, translator: Translator, averaged: Sequence[Path]
) -> dict[str, Any]:
    """Decode the split, score it against its references, write hypotheses and metrics, print a summary."""
    data = split_data_settings(cfg, stored)
    hypotheses_path, metrics_path = output_paths(cfg, stored.path, data, averaged)
    _ensure_writable(hypotheses_path.parent)
    with tempfile.TemporaryDirectory(prefix="seq2seq-eval-") as tokenizer_dir:
        # The DataModule reuses tokenizers found in tokenizer_dir: give it the checkpoint's.
        stored.src_tokenizer.save(Path(tokenizer_dir) / SRC_FILE)
        stored.tgt_tokenizer.save(Path(tokenizer_dir) / TGT_FILE)
        datamodule = TranslationDataModule(**data, tokenizer_dir=tokenizer_dir)
        try:
            datamodule.download()
            encoded = datamodule.encoded_split(cfg.split)
        except FileNotFoundError as error:
            if cfg.data is not None:
                raise
            raise FileNotFoundError(
                f"{error} (these data settings are stored in the checkpoint; score other files with data=text "
                f"data.root=DIR ...)"
            ) from error

    decode = decode_settings(cfg, stored)
    with _progress(len(encoded), f"decoding {cfg.split}") as advance:
        start = time.perf_counter()
        translations = translate_ids(translator, encoded.src_ids, decode, cfg.batch_size, on_batch=advance,
                                     max_tokens=cfg.max_tokens)
        if translator.device.type == "cuda":
            torch.cuda.synchronize(translator.device)
        seconds = time.perf_counter() - start
    hypotheses = [translation.text for translation in translations]
    scores = score_translations(hypotheses, encoded.references)

    write_text_atomic(hypotheses_path, format_translations(translations))
    nbest_path = None
    if decode["n_best"] > 1:
        nbest_path = hypotheses_path.with_suffix(".nbest")
        write_text_atomic(nbest_path, format_translations(translations, decode["n_best"]))
    metrics = {
        "checkpoint": str(stored.path),
        "averaged_checkpoints": [str(path) for path in averaged],
        "global_step": stored.global_step,
        "split": cfg.split,
        "data": {key: data[key] for key in ("name", "root", "src_lang", "tgt_lang", "format", "lowercase")}
        | {"file_stem": data["splits"][cfg.split]},
        "num_sentences": len(hypotheses),
        # Pairs over the length limits that data.eval_overlong (or eval_overlong=) left out or cut: the
        # scores above are on num_sentences pairs.
        "dropped_lines": encoded.dropped_lines,
        "truncated_lines": encoded.truncated_lines,
        "bleu": scores.bleu,
        "chrf": scores.chrf,
        "exact_match": scores.exact_match,
        "signature": scores.bleu_signature,
        "chrf_signature": scores.chrf_signature,
        "decode": decode,
        "batch_size": cfg.batch_size,
        "device": str(translator.device),
        "decode_seconds": seconds,
        "sentences_per_sec": len(hypotheses) / seconds if seconds > 0 else float("inf"),
        "hypotheses": str(hypotheses_path),
        "nbest": str(nbest_path) if nbest_path else None,
    }
    write_text_atomic(metrics_path, json.dumps(metrics, indent=2) + "\n")
    print(_summary(metrics, metrics_path))
    return metrics


def _summary(metrics: dict[str, Any], metrics_path: Path) -> str:
    decode = metrics["decode"]
    search = "greedy" if decode["beam_size"] == 1 else f"beam {decode['beam_size']}"
    exact = round(metrics["exact_match"] * metrics["num_sentences"])
    return "\n".join(
        [
            f"BLEU = {metrics['bleu']:.2f}  {metrics['signature']}",
            f"chrF = {metrics['chrf']:.2f}  {metrics['chrf_signature']}",
            f"exact match = {metrics['exact_match']:.4f} ({exact} of {metrics['num_sentences']})",
            *([f"scored on {metrics['num_sentences']} of {metrics['num_sentences'] + len(metrics['dropped_lines'])} "
               f"pairs: {len(metrics['dropped_lines'])} over the length limits left out (eval_overlong=drop)"]
              if metrics["dropped_lines"] else []),
            f"speed: {metrics['num_sentences']} sentences in {metrics['decode_seconds']:.2f} s = "
            f"{metrics['sentences_per_sec']:.1f} sentences/s ({search}, batch {metrics['batch_size']}, "
            f"{metrics['device']})",
            f"hypotheses: {metrics['hypotheses']}",
            f"metrics: {metrics_path}",
        ]
    )


# -------------------------------------------------------------------------------------------- raw text
def translate_input(cfg: DictConfig, stored: StoredCheckpoint, translator: Translator) -> None:
    """``cfg.input`` (a file or ``-``) -> one translation per line, to ``cfg.output`` or stdout."""
    lines = read_input(cfg.input)
    stored_data = stored.data or {}
    max_tokens = cfg.max_input_tokens or stored_data.get("max_src_length") or DEFAULT_MAX_INPUT_TOKENS
    decode = decode_settings(cfg, stored)
    name = "<stdin>" if cfg.input == "-" else to_absolute_path(cfg.input)
    with _progress(len(lines), "translating") as advance:
        translations = translate_lines(
            translator, lines, decode, cfg.batch_size, max_tokens,
            lowercase=bool(stored_data.get("lowercase", False)), name=name, on_batch=advance, max_tokens=cfg.max_tokens,
        )
    destination = None if cfg.output in (None, "-") else Path(to_absolute_path(cfg.output))
    write_output(format_translations(translations, decode["n_best"]), destination)
    if destination is not None:
        log.info("%d translations written to %s", len(translations), destination)


# ------------------------------------------------------------------------------------------- helpers
def output_cap(stored: StoredCheckpoint) -> int:
    """The most decoding steps when ``decode.max_length`` is null: the cap training stored in the checkpoint; for
    checkpoints written before it was stored, the longest target training allowed (and its eos), else 251."""
    stored_cap = (stored.hyper_parameters.get("decode") or {}).get("max_length")
    if stored_cap:
        return int(stored_cap)
    max_tgt_length = (stored.data or {}).get("max_tgt_length")
    return int(max_tgt_length or DEFAULT_MAX_INPUT_TOKENS) + 1


def decode_settings(cfg: DictConfig, stored: StoredCheckpoint) -> dict[str, Any]:
    """``cfg.decode`` as plain values, with the checkpoint's output cap when ``decode.max_length`` is null."""
    decode = OmegaConf.to_container(cfg.decode, resolve=True)
    if decode["max_length"] is None:
        decode["max_length"] = output_cap(stored)
    return decode


@contextmanager
def _progress(total: int, description: str) -> Iterator:
    """A rich progress bar on stderr (only when stderr is a terminal); yields ``advance(n)``."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(console=console, disable=not console.is_terminal, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda count: progress.advance(task, count)


def _ensure_writable(directory: Path) -> None:
    """Fail before decoding, not after, when the results cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write_test"):
            pass
    except OSError as error:
        raise PermissionError(f"output: cannot write to {directory}: {error.strerror or error}") from error
