"""Word, character and BPE tokenizers on Hugging Face ``tokenizers``, with fixed special-token ids.

Every kind reserves the same four ids, so models and search can rely on them without a tokenizer at hand:
``<pad>`` = 0, ``<unk>`` = 1, ``<bos>`` = 2, ``<eos>`` = 3. ``encode`` never adds ``<bos>``/``<eos>``;
``collate`` does.

- ``word``: split on whitespace, one token per word; ``decode`` joins with single spaces. For text that is
  already tokenized (e.g. Moses-tokenized Multi30k), where that is lossless.
- ``char``: one token per character; spaces become the visible symbol ``▁`` so ``decode`` restores the
  exact text (and attention-map labels show where the spaces are).
- ``bpe``: Metaspace pre-tokenizer + byte-pair merges + Metaspace decoder; lossless on raw text with
  single spaces.

The saved file is a plain ``tokenizers`` JSON (loadable with ``tokenizers.Tokenizer.from_file``); the kind is
recognised from its model and pre-tokenizer, and a file of another structure (``data.src_tokenizer=file:PATH``)
is of the kind ``file``. A SentencePiece model is saved as its own JSON wrapper (``sentencepiece_tokenizer.py``).

Note: as with every ``tokenizers`` special token, a literal ``<unk>`` (etc.) in the input text is read as
that special token.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from seq2seq.data.atomic import write_text_atomic

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)  # position = id
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPACE_SYMBOL = "▁"
# How a SentencePiece model's JSON text (seq2seq/data/sentencepiece_tokenizer.py) begins.
SENTENCEPIECE_JSON_PREFIX = '{"sentencepiece_model": '
TOKENIZER_KINDS = ("word", "char", "bpe")  # the kinds trained on a corpus
FILE_KIND = "file"  # a tokenizers file of another structure, reused as it is (seq2seq/data/vocabulary.py)

_SKIPPED_ON_DECODE = frozenset({PAD_ID, BOS_ID, EOS_ID})
_LIBRARY_ONLY = re.compile("[<\x1c-\x1f]")


def _untrained(kind: str) -> tuple[Tokenizer, type]:
    """An empty tokenizer of ``kind`` and the trainer class that fills its vocabulary."""
    if kind == "word":
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        # No decoder: Tokenizer.decode then joins tokens with single spaces.
        return tokenizer, trainers.WordLevelTrainer
    if kind == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token=UNK))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE_SYMBOL, prepend_scheme="always")
        tokenizer.decoder = decoders.Metaspace(replacement=SPACE_SYMBOL, prepend_scheme="always")
        return tokenizer, trainers.BpeTrainer
    raise ValueError(f"unknown tokenizer kind {kind!r}; valid kinds: {', '.join(TOKENIZER_KINDS)}")


def _char_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int) -> Tokenizer:
    """One token per character: a BPE model without merges over the whole (space-marked) sentence.

    Counting characters in Python and using BPE without merges encodes ~4x faster than a per-character
    regex pre-tokenizer with a word-level model, for the same tokens.
    """
    counts = Counter()
    for text in texts:
        counts.update(text.replace(" ", SPACE_SYMBOL))
    for token in SPECIAL_TOKENS:
        counts.pop(token, None)
    frequent = sorted((c for c, n in counts.items() if n >= min_frequency), key=lambda c: (-counts[c], c))
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for char in frequent[: vocab_size - len(SPECIAL_TOKENS)]:
        vocab[char] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer.normalizer = normalizers.Replace(" ", SPACE_SYMBOL)
    tokenizer.decoder = decoders.Sequence([decoders.Replace(SPACE_SYMBOL, " "), decoders.Fuse()])
    return tokenizer


def _kind_of(tokenizer: Tokenizer) -> str:
    """Recognise which of our kinds a loaded tokenizer is, from its serialized structure."""
    spec = json.loads(tokenizer.to_str())
    model_type = spec["model"]["type"]
    pre_tokenizer_type = (spec.get("pre_tokenizer") or {}).get("type")
    if model_type == "BPE" and pre_tokenizer_type == "Metaspace":
        return "bpe"
    if model_type == "WordLevel" and pre_tokenizer_type == "WhitespaceSplit":
        return "word"
    if model_type == "BPE" and pre_tokenizer_type is None and not spec["model"]["merges"]:
        return "char"
    return FILE_KIND  # another structure: a tokenizer file reused as it is (data.src_tokenizer=file:PATH)


class TextTokenizer:
    """A trained ``tokenizers.Tokenizer`` of one kind, with the fixed special ids above.

    Build with ``TextTokenizer.train`` or ``TextTokenizer.load`` / ``from_json``.
    """

    def __init__(self, tokenizer: Tokenizer, kind: str) -> None:
        if kind not in TOKENIZER_KINDS + (FILE_KIND,):
            raise ValueError(f"unknown tokenizer kind {kind!r}; valid kinds: {', '.join(TOKENIZER_KINDS)}")
        for expected_id, token in enumerate(SPECIAL_TOKENS):
            actual_id = tokenizer.token_to_id(token)
            if actual_id != expected_id:
                found = "it is not in the vocabulary" if actual_id is None else f"found id {actual_id}"
                raise ValueError(f"special token {token} must have id {expected_id}, {found}")
        self._tokenizer = tokenizer
        self.kind = kind
        # Word vocabularies encode in Python: a dict lookup per word is ~5x faster than the library's
        # per-text Encoding objects, and gives the same ids (tested); lines it could read differently fall back.
        plain_words = kind == "word" and tokenizer.normalizer is None
        self._word_ids = tokenizer.get_vocab(with_added_tokens=True) if plain_words else None

    @classmethod
    def train(cls, texts: Iterable[str], kind: str, vocab_size: int, min_frequency: int) -> TextTokenizer:
        """Learn a vocabulary of at most ``vocab_size`` entries (special tokens included) from ``texts``.

        ``min_frequency`` is the minimum count of a word (``word``), a character (``char``) or a merged
        pair (``bpe``). Deterministic for the same texts and settings.
        """
        if kind not in TOKENIZER_KINDS:
            raise ValueError(f"unknown tokenizer kind {kind!r}; valid kinds: {', '.join(TOKENIZER_KINDS)}")
        if vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}")
        if kind == "char":
            return cls(_char_tokenizer(texts, vocab_size, min_frequency), kind)
        tokenizer, trainer_class = _untrained(kind)
        trainer = trainer_class(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer)
        return cls(tokenizer, kind)

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included: the embedding / output layer size."""
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, without ``<bos>``/``<eos>``; unknown pieces become ``UNK_ID``."""
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """``encode`` for many texts at once (parallel inside ``tokenizers``)."""
        if self._word_ids is not None:
            return self._encode_words(texts)
        return [e.ids for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def _encode_words(self, texts: Sequence[str]) -> list[list[int]]:
        """Split on whitespace and look each word up, as the library's WhitespaceSplit + WordLevel do.

        Two cases read differently are left to the library: text with ``<`` (a special token such as ``<unk>``
        is matched anywhere, even inside a word) and the ASCII separators U+001C..U+001F (whitespace to
        ``str.split``, not to the library).
        """
        lookup = self._word_ids.get
        ids: list[list[int] | None] = []
        library: list[int] = []
        for i, text in enumerate(texts):
            if _LIBRARY_ONLY.search(text):
                library.append(i)
                ids.append(None)
            else:
                ids.append([lookup(word, UNK_ID) for word in text.split()])
        if library:
            encoded = self._tokenizer.encode_batch([texts[i] for i in library], add_special_tokens=False)
            for i, encoding in zip(library, encoded):
                ids[i] = encoding.ids
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Plain text from ids. ``<pad>``, ``<bos>`` and ``<eos>`` are skipped wherever they occur
        (decoding does not stop at ``<eos>``; cut the sequence first). ``<unk>`` is kept as the text
        ``<unk>`` so an unknown word stays visible instead of silently vanishing."""
        kept = [int(i) for i in ids if int(i) not in _SKIPPED_ON_DECODE]
        return self._tokenizer.decode(kept, skip_special_tokens=False)

    def tokens(self, text: str) -> list[str]:
        """The token strings ``encode`` would produce (labels for attention-map axes)."""
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def id_to_token(self, token_id: int) -> str:
        token = self._tokenizer.id_to_token(int(token_id))
        if token is None:
            raise IndexError(f"token id {token_id} out of range [0, {self.vocab_size})")
        return token

    def token_to_id(self, token: str) -> int:
        """Id of ``token``, or ``UNK_ID`` when it is not in the vocabulary."""
        token_id = self._tokenizer.token_to_id(token)
        return UNK_ID if token_id is None else token_id

    def to_json(self) -> str:
        return self._tokenizer.to_str()

    @classmethod
    def from_json(cls, text: str) -> TextTokenizer:
        if text.startswith(SENTENCEPIECE_JSON_PREFIX):
            from seq2seq.data.sentencepiece_tokenizer import SentencePieceTokenizer

            return SentencePieceTokenizer.from_json(text)
        tokenizer = Tokenizer.from_str(text)
        return cls(tokenizer, _kind_of(tokenizer))

    def save(self, path: Path) -> None:
        """Write the JSON atomically (a temp file then ``os.replace``), creating parent folders."""
        write_text_atomic(Path(path), self.to_json())

    @classmethod
    def load(cls, path: Path) -> TextTokenizer:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e
        except Exception as e:  # tokenizers raises its own Exception type on malformed JSON
            raise ValueError(f"{path}: not a valid tokenizer file ({e})") from e

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextTokenizer) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"TextTokenizer(kind={self.kind!r}, vocab_size={self.vocab_size})"
