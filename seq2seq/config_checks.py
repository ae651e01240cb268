"""Checks on a composed config, run before any data is read or any model is built.

Hydra and the structured schemas in :mod:`seq2seq.config` already refuse unknown keys and wrong types;
these checks refuse values that are well-typed but impossible, naming the key and what is allowed.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from seq2seq.data.in_memory import EVAL_OVERLONG_POLICIES
from seq2seq.data.split_sources import FORMATS
from seq2seq.data.vocabulary import check_settings as check_tokenizer_settings
from seq2seq.data.vocabulary import tokenizer_file
from seq2seq.decode_options import DecodeOptionError, DecodeOptions
from seq2seq.models.attention import KINDS as ATTENTION_KINDS
from seq2seq.models.bridge import STRATEGIES as BRIDGE_STRATEGIES
from seq2seq.models.encoder import RNN_TYPES
from seq2seq.models.initialization import SCHEMES as INIT_SCHEMES

DATA_NAMES = ("numbers", "multi30k", "text")
OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("none", "plateau", "inverse_sqrt", "cosine")
LOSS_NORMALIZATIONS = ("tokens", "sentences")
RESUME_MODES = ("never", "auto")


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key."""


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _one_of(value: Any, options: tuple, key: str) -> None:
    _require(value in options, key, f"must be one of {list(options)}, got {value!r}")


def check_model(model: DictConfig, key: str = "model") -> None:
    _one_of(model.rnn_type, tuple(RNN_TYPES), f"{key}.rnn_type")
    _one_of(model.attention, ATTENTION_KINDS, f"{key}.attention")
    _one_of(model.bridge, BRIDGE_STRATEGIES, f"{key}.bridge")
    for name in ("src_embedding_dim", "tgt_embedding_dim", "hidden_size", "encoder_num_layers", "decoder_num_layers"):
        _require(model[name] > 0, f"{key}.{name}", f"must be positive, got {model[name]}")
    for name in ("encoder_hidden_size", "attention_size"):
        _require(model[name] is None or model[name] > 0, f"{key}.{name}", f"must be positive or null, got {model[name]}")
    _require(0.0 <= model.dropout < 1.0, f"{key}.dropout", f"must be in [0, 1), got {model.dropout}")
    _one_of(model.init, INIT_SCHEMES, f"{key}.init")
    if model.init == "uniform":
        _require(0.0 < model.init_range <= 1.0, f"{key}.init_range", f"must be in (0, 1] for init 'uniform', got {model.init_range}")
    _require(
        model.embedding_init_std is None or model.embedding_init_std > 0,
        f"{key}.embedding_init_std",
        f"must be positive or null, got {model.embedding_init_std}",
    )
    _require(
        model.lstm_forget_bias is None or model.rnn_type == "lstm",
        f"{key}.lstm_forget_bias",
        f"sets an LSTM's forget gate; the model is a {model.rnn_type!r}: leave it null",
    )
    _require(
        model.bidirectional or model.bridge not in ("sum", "mean"),
        f"{key}.bridge",
        f"{model.bridge!r} merges two directions and needs model.bidirectional=true; use 'forward' or 'concat'",
    )
    directions = 2 if model.bidirectional else 1
    if model.encoder_hidden_size is None:
        _require(
            model.hidden_size % directions == 0,
            f"{key}.hidden_size",
            f"must be divisible by the {directions} encoder directions, got {model.hidden_size}",
        )
    encoder_hidden = model.encoder_hidden_size or model.hidden_size // directions
    if model.bridge == "concat_raw":
        _require(
            directions * encoder_hidden == model.hidden_size,
            f"{key}.bridge",
            f"'concat_raw' needs hidden_size == directions x encoder_hidden_size ({directions} x {encoder_hidden})",
        )
    if model.attention == "dot":
        _require(
            directions * encoder_hidden == model.hidden_size,
            f"{key}.attention",
            "'dot' needs the decoder's hidden_size to equal the encoder's output size; use 'general'",
        )
    if model.tie_embeddings:
        _require(
            model.tgt_embedding_dim == model.hidden_size,
            f"{key}.tie_embeddings",
            f"needs tgt_embedding_dim == hidden_size, got {model.tgt_embedding_dim} and {model.hidden_size}",
        )
    if model.get("share_embeddings", False):
        _require(
            model.src_embedding_dim == model.tgt_embedding_dim,
            f"{key}.share_embeddings",
            f"needs src_embedding_dim == tgt_embedding_dim, got {model.src_embedding_dim} and {model.tgt_embedding_dim}",
        )


def check_shared_embeddings(data: DictConfig, model: DictConfig) -> None:
    """model.share_embeddings needs one vocabulary: data.share_vocab, or one tokenizer file on both sides."""
    if not model.get("share_embeddings", False):
        return
    one_file = data.src_tokenizer == data.tgt_tokenizer and tokenizer_file(data.src_tokenizer) is not None
    _require(
        data.get("share_vocab", False) or one_file,
        "model.share_embeddings",
        "needs one vocabulary for both sides: set data.share_vocab=true (or the same file:PATH as "
        "data.src_tokenizer and data.tgt_tokenizer)",
    )


def check_data(data: DictConfig, key: str = "data") -> None:
    _one_of(data.name, DATA_NAMES, f"{key}.name")
    _one_of(data.format, FORMATS, f"{key}.format")
    for side in ("src_field", "tgt_field"):
        _require(data[side] is None or data.format in ("jsonl", "hf"), f"{key}.{side}",
                 f"names a record's field, read only with data.format=jsonl or hf (not {data.format})")
    try:
        check_tokenizer_settings(data.src_tokenizer, data.tgt_tokenizer, data.src_vocab_size, data.tgt_vocab_size,
                                 data.get("share_vocab", False), key=key)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    _require(
        data.batch_size is not None or data.max_tokens is not None,
        f"{key}.batch_size",
        "set data.batch_size (sentences) or data.max_tokens (tokens) per batch",
    )
    for name in ("batch_size", "max_tokens", "max_src_length", "max_tgt_length"):
        _require(data[name] is None or data[name] > 0, f"{key}.{name}", f"must be positive or null, got {data[name]}")
    _require(data.eval_batch_size > 0, f"{key}.eval_batch_size", f"must be positive, got {data.eval_batch_size}")
    _require(data.eval_max_tokens > 0, f"{key}.eval_max_tokens", f"must be positive, got {data.eval_max_tokens}")
    _one_of(data.eval_overlong, EVAL_OVERLONG_POLICIES, f"{key}.eval_overlong")
    for name in ("src_vocab_size", "tgt_vocab_size", "min_frequency"):
        _require(data[name] > 0, f"{key}.{name}", f"must be positive, got {data[name]}")
    _require(data.num_workers >= 0, f"{key}.num_workers", f"must be >= 0, got {data.num_workers}")
    for split in ("train", "val", "test"):
        _require(split in data.splits, f"{key}.splits", f"needs a file name for the {split!r} split")


def check_optim(optim: DictConfig, key: str = "optim") -> None:
    _one_of(optim.optimizer, OPTIMIZERS, f"{key}.optimizer")
    _one_of(optim.scheduler, SCHEDULERS, f"{key}.scheduler")
    _one_of(optim.loss_normalization, LOSS_NORMALIZATIONS, f"{key}.loss_normalization")
    _require(optim.lr > 0, f"{key}.lr", f"must be positive, got {optim.lr}")
    _require(optim.weight_decay >= 0, f"{key}.weight_decay", f"must be >= 0, got {optim.weight_decay}")
    _require(0.0 <= optim.label_smoothing < 1.0, f"{key}.label_smoothing", f"must be in [0, 1), got {optim.label_smoothing}")
    _require(optim.warmup_steps >= 0, f"{key}.warmup_steps", f"must be >= 0, got {optim.warmup_steps}")
    _require(len(optim.betas) == 2, f"{key}.betas", f"needs two values, got {list(optim.betas)}")
    _require(
        optim.max_nonfinite_in_a_row >= 1,
        f"{key}.max_nonfinite_in_a_row",
        f"must be at least 1, got {optim.max_nonfinite_in_a_row}",
    )


def decode_options(decode: Mapping, key: str = "decode") -> DecodeOptions:
    """``decode.*`` of a composed config as :class:`DecodeOptions` (its check is the one check of every option);
    ConfigError naming the key when one cannot work."""
    plain = OmegaConf.to_container(decode, resolve=True) if isinstance(decode, DictConfig) else dict(decode)
    try:
        return DecodeOptions.from_mapping(plain, key=key)
    except DecodeOptionError as error:
        raise ConfigError(str(error)) from None


def check_trainer(trainer: DictConfig, key: str = "trainer") -> None:
    accepted = set(inspect.signature(L.Trainer.__init__).parameters) - {"self", "logger", "callbacks"}
    for name in trainer:
        _require(name in accepted, f"{key}.{name}", "is not a Lightning Trainer argument")


def check_known_keys(node: DictConfig, schema: type, key: str) -> None:
    """Keys added with a leading + (``+model.hiden_size=3``) get past composition; refuse them here."""
    known = set(schema.__dataclass_fields__)
    for name in node:
        _require(name in known, f"{key}.{name}", f"unknown key; valid keys: {sorted(known)}")


def check_train_config(cfg: DictConfig) -> None:
    from seq2seq.config import DataConfig, ModelConfig, OptimConfig

    for name, schema in (("data", DataConfig), ("model", ModelConfig), ("optim", OptimConfig), ("decode", DecodeOptions)):
        check_known_keys(cfg[name], schema, name)
    check_data(cfg.data)
    check_model(cfg.model)
    check_shared_embeddings(cfg.data, cfg.model)
    check_optim(cfg.optim)
    decode_options(cfg.decode)
    check_trainer(cfg.trainer)
    _one_of(cfg.monitor_mode, ("min", "max"), "monitor_mode")
    _one_of(cfg.get("resume", "never"), RESUME_MODES, "resume")
    every = cfg.get("checkpoint_every_n_steps")
    _require(every is None or every >= 1, "checkpoint_every_n_steps", f"must be positive or null, got {every}")
