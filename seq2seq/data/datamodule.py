"""``TranslationDataModule``: from files on disk to padded ``Batch``es, for Lightning.

Pipeline: ``prepare_data`` (one process per node) generates the numbers data, downloads Multi30k, trains
the tokenizers and binarizes the training split into the cache (:mod:`seq2seq.data.preprocess`), each only
when the cache has no result for the same files and settings; ``setup`` (every process) opens the
binarized training split as memory maps (shared by every process on the machine, see
:mod:`seq2seq.data.corpus_store`) and reads, validates and encodes the validation and test splits, which
are small and whose raw strings BLEU is computed against.

Distributed training: the train loader shards batches across ranks itself (``BucketBatchSampler`` with
the trainer's world size and rank, equal batch counts on every rank), so Lightning must not swap in a
``DistributedSampler``: set ``trainer.use_distributed_sampler: false`` (checked in ``train_dataloader``).
Validation and test loaders are not sharded: every rank evaluates the whole (small) split, so metrics need
no gathering and no example is counted twice.

Resuming: the training loader implements Lightning's ``state_dict``/``load_state_dict`` interface for data
loaders. Every checkpoint records the epoch and how many of its batches are done; a run restarted from a
mid-epoch checkpoint continues that epoch with the next batch, in the same order, instead of replaying it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from seq2seq.data.collate import Batch, collate
from seq2seq.data.corpus_store import StoredSplit
from seq2seq.data.dataset import EncodedSplit, TranslationDataset
from seq2seq.data.in_memory import EVAL_OVERLONG_POLICIES, check_fits_token_budget, encode_in_memory
from seq2seq.data.multi30k import MULTI30K_URL, ensure_multi30k
from seq2seq.data.numbers import LANGS as NUMBERS_LANGS
from seq2seq.data.numbers import ensure_numbers
from seq2seq.data.preprocess import (
    LengthLimits,
    PairSource,
    cached_tokenizers,
    cached_train_store,
    default_cache_dir,
)
from seq2seq.data.resumable_loader import ResumableLoader
from seq2seq.data.sampler import BucketBatchSampler
from seq2seq.data.split_sources import FORMATS, pair_source
from seq2seq.data.tokenizer import TextTokenizer
from seq2seq.data.tokenizer_store import has_tokenizers, load_tokenizers, save_tokenizers
from seq2seq.data.vocabulary import check_settings as check_tokenizer_settings

log = logging.getLogger(__name__)

DATASET_NAMES = ("numbers", "multi30k", "text")
SPLIT_NAMES = ("train", "val", "test")
NUMBERS_KEYS = ("seed", "train_size", "val_size", "test_size", "max_number")
_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}


class TranslationDataModule(L.LightningDataModule):
    """Sentence pairs for one translation direction, batched by length.

    Args (each is the ``data.<name>`` config key):
        name: ``numbers`` (generated into ``root``), ``multi30k`` (downloaded into ``root`` when
            missing) or ``text`` (your own files in ``root``).
        root: folder holding the files.
        src_lang, tgt_lang: file suffixes of the two sides, e.g. ``de`` and ``en``.
        splits: ``train``/``val`` (required) and ``test`` (optional) to file stems, e.g.
            ``{"train": "train", "val": "val", "test": "test_2016_flickr"}``.
        format: ``parallel`` (``{root}/{stem}.{lang}``, or ``.gz``), ``tsv`` (``{root}/{stem}.tsv``:
            ``source<TAB>target``), ``jsonl`` or ``hf`` (:mod:`seq2seq.data.split_sources`).
        src_field, tgt_field: ``jsonl`` and ``hf``: each side's field (:mod:`seq2seq.data.record_fields`).
        src_tokenizer, tgt_tokenizer, share_vocab: ``word``, ``char``, ``bpe`` or ``file:PATH``; one for both sides.
        src_vocab_size, tgt_vocab_size: maximum vocabulary sizes, special tokens included.
        min_frequency: minimum count for a vocabulary entry (or a BPE merge).
        lowercase: lowercase both sides when reading; the references are lowercased too.
        max_tokens: training batches hold at most this many padded tokens (null: no budget).
        batch_size: training batches hold at most this many sentences (null: no limit).
        eval_batch_size: at most this many sentences per validation/test batch ...
        eval_max_tokens: ... and at most this many padded positions (sentences × the longest source or
            target + 1 in the batch), so that one long sentence sits in a small batch instead of padding
            ``eval_batch_size`` others to its length.
        max_src_length, max_tgt_length: drop *training* pairs with more tokens than this (null: keep
            all), counted in the log with the first line numbers. Validation and test pairs over them are
            handled as ``eval_overlong`` says.
        eval_overlong: ``error`` (stop before training, naming the lines), ``truncate`` or ``drop`` for
            validation and test pairs over the length limits (:mod:`seq2seq.data.in_memory`).
        drop_empty: drop pairs with an empty side (otherwise they are an error naming the line).
        num_workers: DataLoader worker processes.
        seed: base seed of the per-epoch batch shuffling.
        tokenizer_dir: where ``src_tokenizer.json``/``tgt_tokenizer.json`` are saved and, when present,
            reused (the run's own copy; null: only the cache keeps them).
        cache_dir: where trained tokenizers and the binarized training split are kept between runs
            (null: ``$SEQ2SEQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/seq2seq``, else ``~/.cache/seq2seq``).
        tokenizer_sample_size: train the tokenizers on a random sample of this many training pairs
            (null: on all of them, streamed).
        numbers: generation parameters of the numbers data (``seed``, ``train_size``, ``val_size``,
            ``test_size``, ``max_number``); ignored for other data sets.
        download_url: base URL of the Multi30k files.

    Results: ``src_tokenizer``, ``tgt_tokenizer``, ``sources(split)``, ``references(split)``,
    ``batch(split, indices)``, ``dataloader(split)``. ``setup`` prepares them eagerly; used before it, each
    reads and encodes what it needs on first use.
    """

    def __init__(
        self,
        *,
        name: str,
        root: str,
        src_lang: str,
        tgt_lang: str,
        splits: Mapping[str, str],
        format: str = "parallel",
        src_field: str | None = None,
        tgt_field: str | None = None,
        src_tokenizer: str = "word",
        tgt_tokenizer: str = "word",
        share_vocab: bool = False,
        src_vocab_size: int = 8000,
        tgt_vocab_size: int = 8000,
        min_frequency: int = 1,
        lowercase: bool = False,
        max_tokens: int | None = None,
        batch_size: int | None = 64,
        eval_batch_size: int = 64,
        eval_max_tokens: int = 20000,
        eval_overlong: str = "error",
        max_src_length: int | None = 200,
        max_tgt_length: int | None = 200,
        drop_empty: bool = False,
        num_workers: int = 0,
        seed: int = 1234,
        tokenizer_dir: str | None = None,
        cache_dir: str | None = None,
        tokenizer_sample_size: int | None = 1_000_000,
        numbers: Mapping[str, int] | None = None,
        download_url: str = MULTI30K_URL,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        _check_choice("data.name", name, DATASET_NAMES)
        _check_choice("data.format", format, FORMATS)
        check_tokenizer_settings(src_tokenizer, tgt_tokenizer, src_vocab_size, tgt_vocab_size, share_vocab)
        splits = dict(splits)
        unknown_splits = sorted(set(splits) - set(SPLIT_NAMES))
        if unknown_splits or "train" not in splits or "val" not in splits:
            raise ValueError(
                f"data.splits must map train and val (and optionally test) to file stems; "
                f"got keys {sorted(splits)}, valid keys: {', '.join(SPLIT_NAMES)}"
            )
        if src_lang == tgt_lang:
            raise ValueError(f"data.src_lang and data.tgt_lang are both {src_lang!r}")
        if name != "text" and format != "parallel":
            raise ValueError(f"data.format must be 'parallel' for data.name={name!r}, got {format!r}")
        if max_tokens is None and batch_size is None:
            raise ValueError("set data.max_tokens or data.batch_size (or both); both are null")
        optional_positive = dict(max_tokens=max_tokens, batch_size=batch_size, max_src_length=max_src_length,
                                 max_tgt_length=max_tgt_length, tokenizer_sample_size=tokenizer_sample_size)
        for key, value in optional_positive.items():
            if value is not None and value < 1:
                raise ValueError(f"data.{key} must be >= 1 or null, got {value}")
        for key, value, least in (("eval_batch_size", eval_batch_size, 1), ("eval_max_tokens", eval_max_tokens, 1),
                                  ("num_workers", num_workers, 0)):
            if value < least:
                raise ValueError(f"data.{key} must be >= {least}, got {value}")
        _check_choice("data.eval_overlong", eval_overlong, EVAL_OVERLONG_POLICIES)
        if name == "numbers":
            numbers = dict(numbers or {})
            if sorted(numbers) != sorted(NUMBERS_KEYS):
                raise ValueError(
                    f"data.numbers must have exactly the keys {', '.join(NUMBERS_KEYS)}; got {sorted(numbers)}"
                )
            for lang in (src_lang, tgt_lang):
                _check_choice("data.src_lang/data.tgt_lang", lang, NUMBERS_LANGS)

        self.name = name
        self.root = Path(root)
        self.src_lang = src_lang
        self.tgt_lang = tgt_lang
        self.splits = splits
        self.format = format
        self.src_field, self.tgt_field = src_field, tgt_field
        self.src_tokenizer_kind = src_tokenizer
        self.tgt_tokenizer_kind = tgt_tokenizer
        self.share_vocab = share_vocab
        self.src_vocab_size = src_vocab_size
        self.tgt_vocab_size = tgt_vocab_size
        self.min_frequency = min_frequency
        self.lowercase = lowercase
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.eval_max_tokens = eval_max_tokens
        self.eval_overlong = eval_overlong
        self.max_src_length = max_src_length
        self.max_tgt_length = max_tgt_length
        self.drop_empty = drop_empty
        self.num_workers = num_workers
        self.seed = seed
        self.tokenizer_dir = None if tokenizer_dir is None else Path(tokenizer_dir)
        self.cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
        self.tokenizer_sample_size = tokenizer_sample_size
        self.numbers = dict(numbers) if numbers else None
        self.download_url = download_url

        self._tokenizers: tuple[TextTokenizer, TextTokenizer] | None = None
        self._encoded: dict[str, EncodedSplit] = {}
        self._train_store: StoredSplit | None = None

    # --- Lightning hooks ------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Create what is missing on disk, then preprocess the training split into the cache (a no-op when the
        cache has it). Lightning runs this on one process per node; other processes that reach
        ``train_split`` meanwhile wait for it (a lock file), then open the result."""
        self.download()
        self.train_split()  # trains the tokenizers first when needed

    def download(self) -> None:
        """Generate the numbers data or download Multi30k when their files are missing (``text``: nothing)."""
        if self.name == "numbers":
            ensure_numbers(self.root, **self.numbers)
        elif self.name == "multi30k":
            ensure_multi30k(
                self.root,
                langs=(self.src_lang, self.tgt_lang),
                base_url=self.download_url,
                splits=tuple(self.splits.values()),
            )

    def setup(self, stage: str | None = None) -> None:
        """Read, validate and encode the splits ``stage`` needs (all of them for ``None``)."""
        if stage is not None and stage not in _STAGE_SPLITS:
            raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(_STAGE_SPLITS)}")
        needed = _STAGE_SPLITS[stage] if stage else tuple(self.splits)
        self._load_or_train_tokenizers()
        for split in needed:
            if split == "train":
                self.train_split()
            else:
                self.encoded_split(split)

    def train_dataloader(self) -> DataLoader:
        """Token-budget batches of similar length, reshuffled every epoch from ``seed + epoch`` (Lightning
        calls ``set_epoch``), sharded across DDP ranks with the same number of batches on each."""
        num_replicas, rank = 1, 0
        if self.trainer is not None:
            num_replicas, rank = self.trainer.world_size, self.trainer.global_rank
            connector = getattr(self.trainer, "_accelerator_connector", None)
            if num_replicas > 1 and getattr(connector, "use_distributed_sampler", False):
                raise ValueError(
                    "set trainer.use_distributed_sampler=false: TranslationDataModule shards the training "
                    "batches across ranks itself, and Lightning would otherwise replace its sampler"
                )
        split = self.train_split()
        sampler = BucketBatchSampler(
            split.bucket_lengths(), tie_lengths=split.source_and_decoder_lengths(),
            max_tokens=self.max_tokens,
            batch_size=self.batch_size,
            shuffle=True,
            seed=self.seed,
            num_replicas=num_replicas,
            rank=rank,
        )
        return ResumableLoader(
            TranslationDataset(split),
            batches_done=self._train_batches_done,
            batch_sampler=sampler,
            **self._loader_options(),
        )

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")

    # --- public helpers -------------------------------------------------------------------------------

    def dataloader(self, split: str) -> DataLoader:
        """At most ``eval_batch_size`` sentences and ``eval_max_tokens`` padded positions per batch, sorted by
        length (shortest first), every example once.

        ``Batch.indices`` give each example's position in ``sources(split)``/``references(split)``, so
        outputs can be put back in corpus order.
        """
        encoded = self.encoded_split(split)
        sampler = BucketBatchSampler(
            encoded.bucket_lengths(), max_tokens=self.eval_max_tokens, batch_size=self.eval_batch_size,
            shuffle=False, seed=self.seed,
        )
        return self._loader(encoded, sampler)

    def batch(self, split: str, indices: Sequence[int]) -> Batch:
        """A ``Batch`` of the given examples of ``split``, in that order (e.g. fixed samples to log)."""
        dataset = TranslationDataset(self.encoded_split(split))
        for index in indices:
            if not 0 <= index < len(dataset):
                raise IndexError(f"{split} has {len(dataset)} examples; index {index} is out of range")
        return collate([dataset[index] for index in indices])

    @property
    def src_tokenizer(self) -> TextTokenizer:
        return self._load_or_train_tokenizers()[0]

    @property
    def tgt_tokenizer(self) -> TextTokenizer:
        return self._load_or_train_tokenizers()[1]

    def sources(self, split: str) -> list[str]:
        """Source sentences of ``split`` as read (lowercased when ``lowercase``), after filtering."""
        return self.encoded_split(split).sources

    def references(self, split: str) -> list[str]:
        """Target sentences of ``split``, aligned with ``sources`` and ``Batch.indices``."""
        return self.encoded_split(split).references

    def reference_sets(self, split: str) -> list[list[str]]:
        """Every reference of each example of ``split``: its target, then those of ``{split}.{tgt_lang}.N``."""
        return self.encoded_split(split).reference_sets()

    def train_split(self) -> StoredSplit:
        """The binarized training split, memory-mapped from the cache (built there on first use)."""
        if self._train_store is None:
            tokenizers = self._load_or_train_tokenizers()
            limits = LengthLimits(self.max_src_length, self.max_tgt_length)
            stored = cached_train_store(self.cache_dir, self._pair_source("train"), tokenizers, limits)
            if self.max_tokens is not None:
                self._check_fits_max_tokens(stored)
            self._train_store = stored
        return self._train_store

    def encoded_split(self, split: str) -> EncodedSplit:
        """The split's strings and ids, read and encoded in memory on first use: for validation and test (small,
        and scored against their strings); training uses :meth:`train_split`."""
        if split not in self._encoded:
            self._encoded[split] = self._encode(split)
        return self._encoded[split]

    # --- internals ------------------------------------------------------------------------------------

    def _loader(self, encoded: EncodedSplit, sampler: BucketBatchSampler) -> DataLoader:
        return DataLoader(TranslationDataset(encoded), batch_sampler=sampler, **self._loader_options())

    def _loader_options(self) -> dict[str, Any]:
        return dict(
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def _train_batches_done(self) -> int:
        """Training batches this rank has finished in the current epoch: Lightning's own count, which is where
        a run restarted from a checkpoint written now carries on (0 outside a fit)."""
        epoch_loop = getattr(getattr(self.trainer, "fit_loop", None), "epoch_loop", None)
        return int(epoch_loop.batch_progress.current.processed) if epoch_loop is not None else 0

    def _split_key(self, split: str) -> str:
        if split not in self.splits:
            raise ValueError(f"data.splits has no {split!r} entry (it has {', '.join(self.splits)})")
        return f"data.root ({split} split, data.splits.{split}={self.splits[split]!r})"

    def _pair_source(self, split: str) -> PairSource:
        return pair_source(self.root, self.splits[split], split, self._split_key(split), format=self.format,
                           src_lang=self.src_lang, tgt_lang=self.tgt_lang, src_field=self.src_field,
                           tgt_field=self.tgt_field, lowercase=self.lowercase, drop_empty=self.drop_empty)

    def _tokenizer_settings(self) -> dict:
        return {
            "src_lang": self.src_lang,
            "tgt_lang": self.tgt_lang,
            "src_tokenizer": self.src_tokenizer_kind,
            "tgt_tokenizer": self.tgt_tokenizer_kind,
            "src_vocab_size": self.src_vocab_size,
            "tgt_vocab_size": self.tgt_vocab_size,
            "min_frequency": self.min_frequency,
            "lowercase": self.lowercase,
            **({"share_vocab": True} if self.share_vocab else {}),  # absent when false: earlier caches still fit
        }

    def _load_or_train_tokenizers(self) -> tuple[TextTokenizer, TextTokenizer]:
        """Load from ``tokenizer_dir`` or train on the train split, once."""
        if self._tokenizers is not None:
            return self._tokenizers
        directory = self.tokenizer_dir
        if directory is not None and has_tokenizers(directory):
            self._tokenizers = load_tokenizers(directory, self._tokenizer_settings())
            return self._tokenizers
        src, tgt = cached_tokenizers(self.cache_dir, self._pair_source("train"), self._tokenizer_settings(),
                                     self.tokenizer_sample_size)
        if directory is not None:  # the run's own copy
            save_tokenizers(directory, src, tgt, self._tokenizer_settings())
        self._tokenizers = (src, tgt)
        return self._tokenizers

    def _encode(self, split: str) -> EncodedSplit:
        src_tokenizer, tgt_tokenizer = self._load_or_train_tokenizers()
        encoded = encode_in_memory(
            split, self._pair_source(split), src_tokenizer, tgt_tokenizer,
            max_src_length=self.max_src_length, max_tgt_length=self.max_tgt_length, overlong=self.eval_overlong,
        )
        if split == "train" and self.max_tokens is not None:
            self._check_fits_max_tokens(encoded)
        if split != "train":
            check_fits_token_budget(encoded, self.eval_max_tokens, "data.eval_max_tokens")
        return encoded

    def _check_fits_max_tokens(self, split: EncodedSplit | StoredSplit) -> None:
        check_fits_token_budget(split, self.max_tokens, "data.max_tokens")


def _check_choice(key: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"{key}={value!r} is not one of: {', '.join(valid)}")
