"""Config schemas, registered in Hydra's ConfigStore.

Every field maps one-to-one onto a constructor argument (``ModelConfig`` -> ``Seq2Seq``, ``DataConfig`` ->
``TranslationDataModule``, ``OptimConfig`` -> ``TranslationModule``'s optimizer settings). Because the
YAML files in ``conf/`` are merged into these typed schemas, a mistyped key (``model.hiden_size=3``)
or a wrong type (``model.hidden_size=big``) fails when the config is composed, naming the key.
``trainer`` holds Lightning ``Trainer`` arguments and is checked against the Trainer's signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from seq2seq.decode_options import DEFAULT_BATCH_SIZE, DEFAULT_MAX_TOKENS, DecodeOptions


@dataclass
class ModelConfig:
    """Arguments of :class:`seq2seq.models.Seq2Seq` except the vocabulary sizes, which come from the data."""

    src_embedding_dim: int = 256
    tgt_embedding_dim: int = 256
    hidden_size: int = 256
    encoder_hidden_size: Optional[int] = None
    encoder_num_layers: int = 1
    decoder_num_layers: int = 1
    rnn_type: str = "lstm"
    bidirectional: bool = True
    bridge: str = "concat"
    attention: str = "bahdanau"
    attention_size: Optional[int] = None
    input_feeding: bool = True
    dropout: float = 0.2
    tie_embeddings: bool = False
    # One embedding table for the encoder and the decoder (needs data.share_vocab); with tie_embeddings the output
    # layer's too.
    share_embeddings: bool = False
    # How parameters start (seq2seq/models/initialization.py): uniform (every weight and bias from
    # U(-init_range, init_range)), xavier (Glorot matrices, zero biases) or pytorch (each module's default).
    init: str = "uniform"
    init_range: float = 0.1
    # LSTM forget-gate bias at the start (null: as the scheme draws it).
    lstm_forget_bias: Optional[float] = None
    # Embedding tables from N(0, embedding_init_std^2), as nn.Embedding draws them (null: drawn by init like
    # every other parameter, as OpenNMT-py does).
    embedding_init_std: Optional[float] = 1.0


@dataclass
class NumbersConfig:
    """How the built-in numbers data set is generated."""

    seed: int = 1234
    train_size: int = 20000
    val_size: int = 1000
    test_size: int = 1000
    max_number: int = 999_999


@dataclass
class DataConfig:
    """Arguments of :class:`seq2seq.data.TranslationDataModule` (its ``tokenizer_dir`` is the run's)."""

    name: str = "numbers"
    # No default: merging data/text.yaml's ``root: ???`` onto a default would silently keep the default.
    root: str = MISSING
    src_lang: str = "de"
    tgt_lang: str = "en"
    splits: Dict[str, str] = field(default_factory=lambda: {"train": "train", "val": "val", "test": "test"})
    format: str = "parallel"  # parallel | tsv | jsonl | hf
    # jsonl and hf: the field (column) holding each side; null: the language code, else translation.<code>.
    src_field: Optional[str] = None
    tgt_field: Optional[str] = None
    # word | char | bpe (trained on the training split), or file:PATH (a tokenizer.json or SentencePiece .model)
    src_tokenizer: str = "char"
    tgt_tokenizer: str = "word"
    # One tokenizer, trained on both sides' text, for source and target (seq2seq/data/vocabulary.py).
    share_vocab: bool = False
    src_vocab_size: int = 8000
    tgt_vocab_size: int = 8000
    min_frequency: int = 1
    lowercase: bool = False
    max_tokens: Optional[int] = None
    batch_size: Optional[int] = 64
    # Validation and test batches: at most eval_batch_size sentences and eval_max_tokens padded positions.
    eval_batch_size: int = 200
    eval_max_tokens: int = 20000
    # Training pairs with more tokens than this are dropped (counted in the log); null keeps every length.
    max_src_length: Optional[int] = 200
    max_tgt_length: Optional[int] = 200
    # Validation and test pairs over those limits: error (stop before training, naming the lines) | truncate | drop.
    eval_overlong: str = "error"
    drop_empty: bool = False
    num_workers: int = 0
    seed: int = 1234
    # Trained tokenizers and the binarized training split are kept here between runs (null: $SEQ2SEQ_CACHE_DIR,
    # else $XDG_CACHE_HOME/seq2seq, else ~/.cache/seq2seq).
    cache_dir: Optional[str] = None
    # Train the tokenizers on a random sample of this many training pairs (null: all of them); a smaller
    # corpus uses every pair.
    tokenizer_sample_size: Optional[int] = 1_000_000
    numbers: NumbersConfig = field(default_factory=NumbersConfig)
    download_url: str = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw"


@dataclass
class OptimConfig:
    optimizer: str = "adam"  # adam | adamw
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    label_smoothing: float = 0.0
    # What a batch's summed loss is divided by before backward: "tokens" (its target tokens: every batch weighs the
    # same) or "sentences" (its sentences, as OpenNMT-py's default: every target token weighs the same, so a batch
    # of long targets weighs more than one of short targets). The logged train/loss is per token either way.
    loss_normalization: str = "tokens"
    scheduler: str = "none"  # none | plateau | inverse_sqrt | cosine
    warmup_steps: int = 0  # inverse_sqrt and cosine
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    min_lr: float = 1e-6
    # A batch whose loss is NaN or infinite is skipped (no update) with a warning; this many in a row stop training.
    max_nonfinite_in_a_row: int = 5


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    # Validation's search (conf/train.yaml: greedy); decoding options and defaults: seq2seq/decode_options.py.
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    trainer: Dict[str, Any] = field(default_factory=dict)
    logger: Any = None
    callbacks: Any = None
    task_name: str = "train"
    seed: int = 1234
    # Resume: the checkpoint (e.g. a run's checkpoints/last.ckpt) to continue training from.
    ckpt_path: Optional[str] = None
    # never | auto: continue from the run folder's own checkpoints/last.ckpt when there is one (a re-launched or
    # requeued job), else start from ckpt_path or from scratch. Needs a stable run folder: run_name.
    resume: str = "never"
    # The run's folder is logs/<task_name>/runs/<run_name>; by default the date and time, so every run gets a new
    # one. A fixed name (run_name=$SLURM_JOB_ID) lets the same command find the folder again.
    run_name: str = "${now:%Y-%m-%d_%H-%M-%S}"
    # Also write checkpoints/last.ckpt every N optimizer steps (null: only after each validation), so that a
    # killed run loses at most N steps.
    checkpoint_every_n_steps: Optional[int] = None
    # Where this run's files go; Hydra fills it in, tests set it directly.
    output_dir: str = "${hydra:runtime.output_dir}"
    # Source sentences of the validation set whose attention maps and translations are logged.
    num_logged_samples: int = 4
    # Evaluate the best checkpoint on the test split when training ends.
    test_after_training: bool = True
    matmul_precision: Optional[str] = None
    # Metric that picks the best checkpoint and drives plateau scheduling and early stopping.
    monitor: str = "val/bleu"
    monitor_mode: str = "max"
    # The metric a hyperparameter sweeper optimises (train.py returns its final value).
    optimized_metric: Optional[str] = None


@dataclass
class EvaluateConfig:
    """``evaluate.py``: score a checkpoint on a data split, or translate raw text with it (``input``)."""

    # A checkpoint, or a list of them decoding as an ensemble: 'ckpt_path=[a.ckpt,b.ckpt]'.
    ckpt_path: Any = MISSING
    # torch: decode ckpt_path with PyTorch. onnx: decode model_dir, a folder written by export.py, with onnxruntime.
    runtime: str = "torch"
    model_dir: Optional[str] = None
    # Split to score; its files come from the checkpoint's data settings, or from ``data`` when given.
    split: str = "test"
    # Another aligned corpus to score (data=text data.root=DIR ...); null: the checkpoint's own data.
    data: Optional[DataConfig] = None
    decode: DecodeOptions = field(default_factory=DecodeOptions)  # seq2seq/decode_options.py
    # Also write the hard alignment of each hypothesis (Pharaoh "i-j", source piece i, output piece j): <hyp>.align.
    alignment: bool = False
    # Raw text to translate, one sentence per line: a file, or "-" for stdin. null: score ``split``.
    input: Optional[str] = None
    # Translations: null -> stdout. Split scores: null -> <run>/eval/<checkpoint>.<split>.beam<K>[.lp<alpha>...].hyp.
    output: Optional[str] = None
    # Sentences per decoding batch, and padded source positions (sentences x the longest): a long sentence sits in a
    # small batch.
    batch_size: int = DEFAULT_BATCH_SIZE
    max_tokens: Optional[int] = DEFAULT_MAX_TOKENS
    # Pairs of the scored split over the length limits: error | truncate | drop; null: as the data settings say.
    eval_overlong: Optional[str] = None
    # Average the weights of the N checkpoints with the highest global step in ckpt_path's folder (0, 1: off).
    average_last: int = 0
    # auto (cuda when available, else cpu), cpu, cuda, cuda:N.
    device: str = "auto"
    # Raw-text inputs longer than this many source tokens are truncated, with a warning. null: the
    # checkpoint's data.max_src_length when it had one, else 250.
    max_input_tokens: Optional[int] = None
    # Several checkpoints: average their next-token log-probabilities (log_probability, better on Multi30k
    # validation: benchmarks/README.md#ensembles) or probabilities (probability).
    ensemble_combine: str = "log_probability"
    # int8: quantize the RNNs and linear layers for CPU decoding (null: float32).
    quantize: Optional[str] = None
    # A file of target prefixes, one per sentence ('' for none): each output starts with its prefix.
    prefix: Optional[str] = None
    # Score the given targets instead of decoding: a split's references, or targets=FILE with input=...
    score_targets: bool = False
    targets: Optional[str] = None


@dataclass
class ServeConfig:
    """``serve.py``: a translation service over HTTP (seq2seq/inference/service.py)."""

    # A checkpoint, or a list of them decoding as an ensemble.
    ckpt_path: Any = MISSING
    # torch: serve ckpt_path with PyTorch. onnx: serve model_dir, a folder written by export.py, with onnxruntime.
    runtime: str = "torch"
    model_dir: Optional[str] = None
    # 127.0.0.1: this machine only. 0.0.0.0 exposes it to the network, with no authentication (docs/service.md).
    host: str = "127.0.0.1"
    port: int = 8080  # 0: any free port (the log names it)
    device: str = "auto"
    average_last: int = 0
    ensemble_combine: str = "log_probability"
    quantize: Optional[str] = None
    # Dynamic batching: concurrent requests' sentences decoded together, up to max_batch_size sentences, waiting at
    # most batch_timeout seconds for more after the first. max_batch_size=1: every sentence decoded alone.
    max_batch_size: int = 32
    batch_timeout: float = 0.01
    max_tokens: Optional[int] = DEFAULT_MAX_TOKENS
    # Requests' defaults: a request may set any decoding option (seq2seq/decode_options.py) for itself.
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    # Limits on one request: more is refused with 413 (or 422 for beam_size), naming the field.
    max_sentences: int = 64
    max_characters: int = 1000
    max_body_bytes: int = 1_000_000
    max_beam_size: int = 16
    # Seconds to wait for the requests in flight on SIGTERM (null: as long as they take).
    shutdown_timeout: Optional[float] = None
    access_log: bool = False


@dataclass
class ExportConfig:
    """``export.py``: a checkpoint as ONNX graphs for :mod:`seq2seq.runtime` (seq2seq/export/exporter.py)."""

    # A checkpoint, or a list of them exported as an ensemble.
    ckpt_path: Any = MISSING
    output_dir: str = MISSING
    average_last: int = 0
    ensemble_combine: str = "log_probability"
    # int8: 8-bit weights (onnxruntime's dynamic quantization). null: float32.
    quantize: Optional[str] = None
    # Replace output_dir when it already holds files.
    overwrite: bool = False


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="serve_schema", node=ServeConfig)
    cs.store(name="export_schema", node=ExportConfig)
    cs.store(group="data", name="data_schema", node=DataConfig)
    cs.store(group="model", name="model_schema", node=ModelConfig)
