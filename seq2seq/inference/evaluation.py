"""``evaluate(cfg)``: score a checkpoint on a data split, or translate (or score) raw text with it.

``evaluate.py`` wraps this in ``@hydra.main``; tests call it directly with a composed config. It loads a
:class:`~seq2seq.inference.translator.Translator` (one checkpoint, an ensemble of several, averaged, int8)
and decodes through it, as the Python API and the service do.

Everything comes from the checkpoint: the model's hyperparameters and weights, the tokenizers and (for
checkpoints that record them) the data settings, so ``ckpt_path`` alone is enough. ``data=...`` scores
another corpus instead; its tokenizer kinds must be the checkpoint's, since the checkpoint's tokenizers
are the ones used.

Files written by a split evaluation (``output=FILE`` names the first; the others are named after it, with
``.json``, ``.nbest`` and ``.align`` for its extension):

    <run>/eval/<checkpoint>.<split>.<search>.hyp     hypotheses, one per line, in the split's order
    <run>/eval/<checkpoint>.<split>.<search>.json    BLEU (with sacreBLEU's signature), chrF, exact match, speed
    <run>/eval/<checkpoint>.<split>.<search>.nbest   with decode.n_best > 1: Moses n-best lines
    <run>/eval/<checkpoint>.<split>.<search>.align   with alignment=true: Pharaoh "i-j" lines

where ``<search>`` names every decode setting that changes the hypotheses, so scoring a checkpoint again with
other settings never overwrites an earlier result: ``beam<K>``, then for K > 1 ``.lp<alpha>`` (the length
penalty), then the length limits when they are not the defaults: ``.len<ratio>x+<constant>`` and ``.max<N>``,
then sampling (``.topk10``, ``.topp0.9``, ``.temp<T>``, ``.seed<S>``), a prefix file (``.prefix``) and
``.int8`` (e.g. ``last.test.beam5.lp1.hyp``, ``last.test.beam1.hyp``). ``score_targets=true`` writes
``<checkpoint>.<split>.scores`` (one line per pair: log-probability, per-token average, perplexity) and
its ``.json`` instead. ``<run>`` is the folder above ``checkpoints/`` (or the checkpoint's own folder when
it is not in one), and ``<checkpoint>`` is the file's stem, ``avg<N>`` with ``average_last=N``,
``ensemble-<a>+<b>`` for several checkpoints, and for ``data=...`` is followed by the data name and root folder.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seq2seq.checkpoint import CheckpointError
from seq2seq.config import DataConfig
from seq2seq.config_checks import ConfigError, check_data, decode_options
from seq2seq.data.atomic import write_text_atomic
from seq2seq.data.datamodule import TranslationDataModule
from seq2seq.data.hf_dataset import is_hub_name
from seq2seq.data.in_memory import EVAL_OVERLONG_POLICIES
from seq2seq.data.tokenizer import TextTokenizer
from seq2seq.data.tokenizer_store import SRC_FILE, TGT_FILE
from seq2seq.data.vocabulary import fits_setting
from seq2seq.decode_options import DecodeOptions
from seq2seq.inference.ensemble import COMBINE_MODES
from seq2seq.inference.metrics import score_translations
from seq2seq.inference.quantize import QUANTIZE_MODES
from seq2seq.inference.raw_text import read_prefixes, score_input, translate_input
from seq2seq.inference.text_io import (
    format_alignments,
    format_nbest,
    format_pair_scores,
    format_translations,
    progress_bar,
)
from seq2seq.inference.translator import LoadedCheckpoint, Translator

log = logging.getLogger(__name__)

RUNTIMES = ("torch", "onnx")
# Settings of the PyTorch runtime, at their defaults; with runtime=onnx the exported folder fixes them (and
# onnxruntime decodes on the CPU, so device stays auto).
TORCH_ONLY_DEFAULTS = {"average_last": 0, "quantize": None, "ensemble_combine": "log_probability"}


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score ``cfg.split`` (returns the metrics written to the JSON file), or translate ``cfg.input`` (returns {})."""
    check_evaluate_config(cfg)
    translator = load_translator(cfg)
    if cfg.max_input_tokens is not None:
        translator.text.max_input_tokens = cfg.max_input_tokens
    for loaded in translator.checkpoints:
        log.info("%s: step %d, epoch %d%s", loaded.path, loaded.global_step, loaded.epoch,
                 f" (the average of {', '.join(p.name for p in loaded.averaged)})" if loaded.averaged else "")
    log.info("source %s, target %s; decoding on %s%s", translator.src_tokenizer, translator.tgt_tokenizer,
             translator.device, f" with {cfg.quantize} weights" if cfg.quantize else "")
    options = decode_options(cfg.decode)
    if cfg.input is not None:
        (score_input if cfg.score_targets else translate_input)(cfg, translator, options)
        return {}
    return evaluate_split(cfg, translator, options)


def load_translator(cfg: DictConfig):
    """``runtime=torch``: a :class:`Translator` of ``ckpt_path``; ``runtime=onnx``: an
    :class:`~seq2seq.runtime.OnnxTranslator` of ``model_dir`` (a folder written by export.py)."""
    if cfg.get("runtime", "torch") == "onnx":
        try:
            from seq2seq.runtime import OnnxTranslator
        except ModuleNotFoundError as error:
            raise ModuleNotFoundError(f"{error.name} is missing: runtime=onnx needs the onnx extra, "
                                      f"pip install \"seq2seq[onnx]\"") from None
        # Threads per operator as for PyTorch: OMP_NUM_THREADS when set, else onnxruntime's one per core.
        threads = int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS", "").isdigit() else None
        return OnnxTranslator.from_dir(Path(to_absolute_path(cfg.model_dir)), threads=threads)
    return Translator.from_checkpoint(checkpoint_paths(cfg), device=cfg.device, average_last=cfg.average_last,
                                      quantize=cfg.quantize, ensemble_combine=cfg.ensemble_combine)


def check_runtime(cfg: DictConfig) -> None:
    """``runtime`` and the keys it needs (evaluate.py's and serve.py's): ``ckpt_path`` for torch, ``model_dir`` for
    onnx, where the PyTorch-only keys (:data:`TORCH_ONLY_DEFAULTS`, which the exported folder fixes) keep their
    defaults."""
    if cfg.runtime not in RUNTIMES:
        raise ConfigError(f"runtime: must be one of {list(RUNTIMES)}, got {cfg.runtime!r}")
    if cfg.runtime == "torch":
        if cfg.model_dir is not None:
            raise ConfigError("model_dir: an exported folder, decoded with runtime=onnx; add runtime=onnx, or drop "
                              "model_dir and give ckpt_path")
        if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
            raise ConfigError("ckpt_path: required, e.g. ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt, or a "
                              "list for an ensemble: 'ckpt_path=[a.ckpt,b.ckpt]' (or runtime=onnx model_dir=DIR)")
        if isinstance(cfg.ckpt_path, (DictConfig,)) or (
                isinstance(cfg.ckpt_path, ListConfig) and not all(isinstance(p, str) and p for p in cfg.ckpt_path)):
            raise ConfigError(f"ckpt_path: a path or a list of paths, got {cfg.ckpt_path}")
        return
    if not cfg.model_dir:
        raise ConfigError("model_dir: required with runtime=onnx: a folder written by export.py ckpt_path=... "
                          "output_dir=DIR")
    if not OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("ckpt_path: runtime=onnx decodes model_dir, which holds the exported model; drop ckpt_path")
    if cfg.device != "auto":
        raise ConfigError(f"device: runtime=onnx decodes on the CPU with onnxruntime; drop device={cfg.device}")
    for key, default in TORCH_ONLY_DEFAULTS.items():
        if cfg[key] != default:
            raise ConfigError(f"{key}: a PyTorch setting; with runtime=onnx it is fixed at export "
                              f"(python export.py ... {key}=...)")


def checkpoint_paths(cfg: DictConfig) -> list[Path]:
    """``ckpt_path``: one path, or a list of them (an ensemble), relative to where the command ran."""
    given = cfg.ckpt_path
    paths = list(given) if isinstance(given, (list, tuple, ListConfig)) else [given]
    return [Path(to_absolute_path(str(path))) for path in paths]


def check_evaluate_config(cfg: DictConfig) -> None:
    check_runtime(cfg)
    if cfg.runtime == "onnx" and cfg.score_targets:
        raise ConfigError("score_targets: scoring given targets (teacher forcing) needs the PyTorch runtime: "
                          "runtime=torch ckpt_path=...")
    decode_options(cfg.decode)
    for key, value, least in (("batch_size", cfg.batch_size, 1), ("average_last", cfg.average_last, 0)):
        if value < least:
            raise ConfigError(f"{key}: must be at least {least}, got {value}")
    for key in ("max_tokens", "max_input_tokens"):
        if cfg[key] is not None and cfg[key] < 1:
            raise ConfigError(f"{key}: must be at least 1 or null, got {cfg[key]}")
    for key, valid in (("eval_overlong", EVAL_OVERLONG_POLICIES), ("quantize", QUANTIZE_MODES)):
        if cfg[key] is not None and cfg[key] not in valid:
            raise ConfigError(f"{key}: must be one of {list(valid)} or null, got {cfg[key]!r}")
    if cfg.ensemble_combine not in COMBINE_MODES:
        raise ConfigError(f"ensemble_combine: must be one of {list(COMBINE_MODES)}, got {cfg.ensemble_combine!r}")
    if cfg.input is not None and cfg.data is not None:
        raise ConfigError("data: input=... translates raw text and reads no data set; drop data=... or input=...")
    if cfg.input is None and cfg.output == "-":
        raise ConfigError("output: '-' (stdout) is for input=...; a split evaluation writes hypotheses to a file")
    if cfg.targets is not None and not (cfg.score_targets and cfg.input is not None):
        raise ConfigError("targets: the reference file scored with input=... and score_targets=true; a split's "
                          "references are its own")
    if cfg.score_targets and cfg.input is not None and cfg.targets is None:
        raise ConfigError("targets: score_targets=true with input=... needs the target file, targets=FILE")
    if cfg.score_targets and cfg.prefix is not None:
        raise ConfigError("prefix: forces the start of a search; score_targets=true scores given targets")
    if cfg.alignment and cfg.input is not None and cfg.output in (None, "-"):
        raise ConfigError("alignment: writes <output>.align beside the translations; set output=FILE")
    if cfg.data is not None:
        if OmegaConf.is_missing(cfg.data, "root"):
            raise ConfigError(f"data.root: required with data={cfg.data.name}: the folder holding the files")
        check_data(cfg.data)


# -------------------------------------------------------------------------------------- split scoring
def split_data_settings(cfg: DictConfig, checkpoint: LoadedCheckpoint, src_tokenizer: TextTokenizer,
                        tgt_tokenizer: TextTokenizer) -> dict[str, Any]:
    """``data.*`` for the split: ``cfg.data`` when given, else the checkpoint's. Relative roots are taken
    from the current directory. ConfigError when the tokenizer kinds are not the checkpoint's."""
    if cfg.data is not None:
        data = OmegaConf.to_container(cfg.data, resolve=True)
    elif checkpoint.data is not None:
        try:
            data = OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(DataConfig), checkpoint.data))
        except OmegaConfBaseException as error:
            raise CheckpointError(
                f"ckpt_path: {checkpoint.path}: its stored data settings do not fit this version's data config "
                f"({' '.join(str(error).split())}); pass data=<name> data.root=... to name the files"
            ) from error
        check_data(OmegaConf.create(data), key=f"data (stored in {checkpoint.path})")
    else:
        raise ConfigError(
            f"data: {checkpoint.path} does not record which data it was trained on; name the files to score with "
            f"data=<numbers|multi30k|text> data.root=DIR (and data.src_tokenizer/data.tgt_tokenizer as trained)"
        )
    if not is_hub_name(data["root"]):
        data["root"] = to_absolute_path(data["root"])
    if cfg.eval_overlong is not None:
        data["eval_overlong"] = cfg.eval_overlong
    for side, tokenizer in (("src", src_tokenizer), ("tgt", tgt_tokenizer)):
        if not fits_setting(tokenizer, data[f"{side}_tokenizer"]):
            raise ConfigError(
                f"data.{side}_tokenizer={data[f'{side}_tokenizer']!r} does not match the checkpoint's vocabulary: "
                f"{checkpoint.path} has a {tokenizer.kind!r} {side} tokenizer; set data.{side}_tokenizer={tokenizer.kind}"
            )
    if cfg.split not in data["splits"]:
        raise ConfigError(f"split: {cfg.split!r} is not in data.splits (valid: {', '.join(data['splits'])})")
    return data


def checkpoint_name(checkpoints: Sequence[LoadedCheckpoint]) -> str:
    """``last``, ``avg3``, or ``ensemble-<run>.<stem>+<run>.<stem>`` for several checkpoints."""
    def one(checkpoint: LoadedCheckpoint) -> str:
        return f"avg{len(checkpoint.averaged)}" if checkpoint.averaged else checkpoint.path.stem

    if len(checkpoints) == 1:
        return one(checkpoints[0])
    return "ensemble-" + "+".join(f"{_run_folder(c.path).name}.{one(c)}" for c in checkpoints)


def _run_folder(ckpt_path: Path) -> Path:
    folder = ckpt_path.parent
    return folder.parent if folder.name == "checkpoints" else folder


def output_paths(cfg: DictConfig, ckpt_path: Path, data: dict[str, Any], averaged: Sequence[Path],
                 name: str | None = None) -> tuple[Path, Path]:
    """(hypotheses or scores file, metrics JSON) of a split evaluation; see the module docstring."""
    if cfg.output is not None:
        main = Path(to_absolute_path(cfg.output))
    else:
        name = name or (f"avg{len(averaged)}" if averaged else ckpt_path.stem)
        if cfg.data is not None:
            name += f".{data['name']}-{Path(data['root']).name}"
        what = "scores" if cfg.get("score_targets") else f"{search_name(cfg.decode, cfg)}.hyp"
        # runtime=onnx: beside the exported model, which may be far from the run it came from.
        folder = Path(to_absolute_path(cfg.model_dir)) if cfg.get("runtime") == "onnx" else _run_folder(ckpt_path)
        main = folder / "eval" / f"{name}.{cfg.split}.{what}"
    metrics = main.with_suffix(".scores.json" if main.suffix == ".scores" else ".json")
    if metrics == main:
        raise ConfigError(f"output: {main} ends in .json, the name of the metrics file beside it; choose another")
    return main, metrics


def search_name(decode: DictConfig | DecodeOptions, cfg: DictConfig | None = None) -> str:
    """The settings that change the hypotheses, for file names: ``beam5.lp1``, ``beam1.len2x+5.max80.int8``."""
    defaults = DecodeOptions()
    name = f"beam{decode.beam_size}"
    if decode.beam_size > 1:  # one beam is greedy search, which no length penalty changes
        name += f".lp{decode.length_penalty:g}"
    if (decode.max_length_ratio, decode.max_length_constant) != (defaults.max_length_ratio, defaults.max_length_constant):
        name += f".len{decode.max_length_ratio:g}x+{decode.max_length_constant}"
    if decode.max_length is not None:
        name += f".max{decode.max_length}"
    sampling = decode.sampling
    if sampling != "none":
        name += f".topk{decode.top_k}" if sampling == "topk" else f".topp{decode.top_p:g}"
        if decode.temperature != 1.0:
            name += f".temp{decode.temperature:g}"
        if decode.seed is not None:
            name += f".seed{decode.seed}"
    if cfg is not None and cfg.get("prefix"):
        name += ".prefix"
    if cfg is not None and cfg.get("quantize"):
        name += f".{cfg.quantize}"
    if cfg is not None and cfg.get("runtime") == "onnx":
        name += ".onnx"
    return name


def encoded_split(cfg: DictConfig, translator: Translator):
    """The split's pairs, read and checked as training reads them, with the checkpoint's tokenizers."""
    checkpoint = translator.checkpoints[0]
    data = split_data_settings(cfg, checkpoint, translator.src_tokenizer, translator.tgt_tokenizer)
    with tempfile.TemporaryDirectory(prefix="seq2seq-eval-") as tokenizer_dir:
        # The DataModule reuses tokenizers found in tokenizer_dir: give it the checkpoint's.
        translator.src_tokenizer.save(Path(tokenizer_dir) / SRC_FILE)
        translator.tgt_tokenizer.save(Path(tokenizer_dir) / TGT_FILE)
        datamodule = TranslationDataModule(**data, tokenizer_dir=tokenizer_dir)
        try:
            datamodule.download()
            return data, datamodule.encoded_split(cfg.split)
        except FileNotFoundError as error:
            if cfg.data is not None:
                raise
            raise FileNotFoundError(
                f"{error} (these data settings are stored in the checkpoint; score other files with data=text "
                f"data.root=DIR ...)"
            ) from error


def evaluate_split(cfg: DictConfig, translator: Translator, options: DecodeOptions) -> dict[str, Any]:
    """Decode the split (or score its references), write the results and metrics, print a summary."""
    checkpoints = translator.checkpoints
    first = checkpoints[0]
    data, encoded = encoded_split(cfg, translator)
    main_path, metrics_path = output_paths(cfg, first.path, data, first.averaged, checkpoint_name(checkpoints))
    _ensure_writable(main_path.parent)
    metrics: dict[str, Any] = {
        "checkpoint": str(first.path),
        "checkpoints": [str(c.path) for c in checkpoints],
        "averaged_checkpoints": [str(path) for c in checkpoints for path in c.averaged],
        "global_step": first.global_step,
        "split": cfg.split,
        "data": {key: data[key] for key in ("name", "root", "src_lang", "tgt_lang", "format", "lowercase")}
        | {"file_stem": data["splits"][cfg.split]},
        "num_sentences": len(encoded),
        # Pairs over the length limits that data.eval_overlong (or eval_overlong=) left out or cut: the
        # scores are on num_sentences pairs.
        "dropped_lines": encoded.dropped_lines,
        "truncated_lines": encoded.truncated_lines,
        "quantize": cfg.quantize or (translator.manifest.quantize if cfg.get("runtime") == "onnx" else None),
        "ensemble_combine": cfg.ensemble_combine if len(checkpoints) > 1 else None,
        "runtime": cfg.get("runtime", "torch"),
        "batch_size": cfg.batch_size,
        "device": str(translator.device),
    }
    start = time.perf_counter()
    if cfg.score_targets:
        with progress_bar(len(encoded), f"scoring {cfg.split}") as advance:
            pair_scores = translator.decoding.score_ids(encoded.src_ids, encoded.tgt_ids, batch_size=cfg.batch_size,
                                                        max_tokens=cfg.max_tokens)
            advance(len(encoded))
        total, tokens = sum(s.log_prob for s in pair_scores), sum(s.num_tokens for s in pair_scores)
        write_text_atomic(main_path, format_pair_scores(pair_scores))
        metrics |= {"log_prob": total, "num_tokens": tokens, "avg_log_prob": total / tokens,
                    "perplexity": math.exp(-total / tokens), "scores": str(main_path)}
    else:
        prefixes = read_prefixes(cfg, len(encoded), translator)
        with progress_bar(len(encoded), f"decoding {cfg.split}") as advance:
            translations = translator.decoding.translate_ids(encoded.src_ids, options, batch_size=cfg.batch_size,
                                                             max_tokens=cfg.max_tokens, prefixes=prefixes,
                                                             on_batch=advance)
        hypotheses = [translation.text for translation in translations]
        scores = score_translations(hypotheses, encoded.reference_sets())
        write_text_atomic(main_path, format_translations(translations))
        extra = {}
        if options.n_best > 1:
            extra["nbest"] = main_path.with_suffix(".nbest")
            write_text_atomic(extra["nbest"], format_nbest(translations, options.n_best))
        if cfg.alignment:
            extra["alignment"] = main_path.with_suffix(".align")
            write_text_atomic(extra["alignment"], format_alignments(translations))
        metrics |= {"bleu": scores.bleu, "chrf": scores.chrf, "chrf_pp": scores.chrf_pp, "ter": scores.ter,
                    "exact_match": scores.exact_match, "wer": scores.wer, "cer": scores.cer,
                    "signature": scores.bleu_signature, "chrf_signature": scores.chrf_signature,
                    "chrf_pp_signature": scores.chrf_pp_signature, "ter_signature": scores.ter_signature,
                    "decode": asdict(translator.decoding.capped(options)),
                    "hypotheses": str(main_path), "nbest": None, "alignment": None}
        metrics |= {key: str(path) for key, path in extra.items()}
    if isinstance(translator.device, torch.device) and translator.device.type == "cuda":
        torch.cuda.synchronize(translator.device)
    seconds = time.perf_counter() - start
    metrics |= {"decode_seconds": seconds, "sentences_per_sec": len(encoded) / seconds if seconds > 0 else float("inf")}
    write_text_atomic(metrics_path, json.dumps(metrics, indent=2) + "\n")
    print(_summary(metrics, metrics_path))
    return metrics


def _summary(metrics: dict[str, Any], metrics_path: Path) -> str:
    count = metrics["num_sentences"]
    dropped = metrics["dropped_lines"]
    lines = []
    if "perplexity" in metrics:
        lines.append(f"log-probability = {metrics['log_prob']:.2f} over {metrics['num_tokens']} target tokens: "
                     f"{metrics['avg_log_prob']:.4f} per token, perplexity {metrics['perplexity']:.3f}")
        what = "scored"
    else:
        decode = metrics["decode"]
        exact = round(metrics["exact_match"] * count)
        lines += [f"BLEU = {metrics['bleu']:.2f}  {metrics['signature']}",
                  f"chrF = {metrics['chrf']:.2f}  {metrics['chrf_signature']}",
                  f"chrF++ = {metrics['chrf_pp']:.2f}  {metrics['chrf_pp_signature']}",
                  f"TER = {metrics['ter']:.2f}  {metrics['ter_signature']}",
                  f"exact match = {metrics['exact_match']:.4f} ({exact} of {count})",
                  f"error rates: tokens (WER) = {metrics['wer']:.4f}, characters (CER) = {metrics['cer']:.4f}"]
        what = "greedy" if decode["beam_size"] == 1 else f"beam {decode['beam_size']}"
        if decode["sampling"] != "none":
            what = f"{decode['sampling']} sampling"
    if dropped:
        lines.append(f"scored on {count} of {count + len(dropped)} pairs: {len(dropped)} over the length limits "
                     f"left out (eval_overlong=drop)")
    lines.append(f"speed: {count} sentences in {metrics['decode_seconds']:.2f} s = {metrics['sentences_per_sec']:.1f} "
                 f"sentences/s ({what}, batch {metrics['batch_size']}, {metrics['device']}"
                 f"{', ' + metrics['quantize'] if metrics['quantize'] else ''})")
    lines.append(f"{'scores' if 'perplexity' in metrics else 'hypotheses'}: "
                 f"{metrics.get('scores') or metrics.get('hypotheses')}")
    lines += [f"{key}: {metrics[key]}" for key in ("nbest", "alignment") if metrics.get(key)]
    lines.append(f"metrics: {metrics_path}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- helpers
def _ensure_writable(directory: Path) -> None:
    """Fail before decoding, not after, when the results cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write_test"):
            pass
    except OSError as error:
        raise PermissionError(f"output: cannot write to {directory}: {error.strerror or error}") from error

