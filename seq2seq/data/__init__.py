"""Data: reading and validating corpora, tokenizers, length-bucketed batching, the DataModule.

Plain Python, torch, ``tokenizers`` and Lightning; no Hydra — callers pass plain values.

May import: nothing of ``seq2seq`` outside this package (not the models, not training, not inference).
"""

from seq2seq.data.collate import Batch, collate
from seq2seq.data.corpus import FilteredPairs, filter_pairs, read_lines, read_parallel, read_tsv, resolve_text_file
from seq2seq.data.datamodule import TranslationDataModule
from seq2seq.data.dataset import EncodedSplit, TranslationDataset
from seq2seq.data.multi30k import MULTI30K_LINE_COUNTS, MULTI30K_URL, ensure_multi30k
from seq2seq.data.numbers import ensure_numbers, make_numbers
from seq2seq.data.sampler import BucketBatchSampler
from seq2seq.data.tokenizer import (
    BOS,
    BOS_ID,
    EOS,
    EOS_ID,
    PAD,
    PAD_ID,
    SPECIAL_TOKENS,
    TOKENIZER_KINDS,
    UNK,
    UNK_ID,
    TextTokenizer,
)
from seq2seq.data.tokenizer_store import has_tokenizers, load_tokenizers, save_tokenizers

__all__ = [
    "BOS",
    "BOS_ID",
    "Batch",
    "BucketBatchSampler",
    "EOS",
    "EOS_ID",
    "EncodedSplit",
    "FilteredPairs",
    "MULTI30K_LINE_COUNTS",
    "MULTI30K_URL",
    "PAD",
    "PAD_ID",
    "SPECIAL_TOKENS",
    "TOKENIZER_KINDS",
    "TextTokenizer",
    "TranslationDataModule",
    "TranslationDataset",
    "UNK",
    "UNK_ID",
    "collate",
    "ensure_multi30k",
    "ensure_numbers",
    "filter_pairs",
    "has_tokenizers",
    "load_tokenizers",
    "make_numbers",
    "read_lines",
    "read_parallel",
    "read_tsv",
    "resolve_text_file",
    "save_tokenizers",
]
