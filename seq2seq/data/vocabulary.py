"""What each side's vocabulary is: a tokenizer trained on the data, or a tokenizer file reused as it is; and one
vocabulary for both sides (``data.share_vocab``).

``data.src_tokenizer`` / ``data.tgt_tokenizer`` is a kind (``word``, ``char``, ``bpe``: trained on the training
split) or ``file:PATH``: a ``tokenizers`` JSON file (``tokenizer.json``) or, with the ``sentencepiece`` package,
a SentencePiece ``.model``, loaded and never retrained. Its normalisation (lowercasing, Unicode forms) is the
file's own; truncation and padding saved in a JSON file are switched off, since they would cut or pad sentences
silently. The file's special tokens must sit at the project's fixed ids (``<pad>`` 0, ``<unk>`` 1, ``<bos>`` 2,
``<eos>`` 3): a file that has them elsewhere, or not at all, is refused naming the file, the token, the id
expected and the one found. The run's tokenizer folder and every checkpoint keep a copy, so the file may go
later.

``data.share_vocab=true``: one tokenizer for both sides, trained on the source and the target text of the
training split together (or one file named on both sides); ``model.share_embeddings`` builds on it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from seq2seq.data.tokenizer import SPECIAL_TOKENS, TOKENIZER_KINDS, UNK, UNK_ID, TextTokenizer

FILE_PREFIX = "file:"
SENTENCEPIECE_SUFFIX = ".model"


def tokenizer_file(setting: str) -> Optional[Path]:
    """The path of a ``file:PATH`` setting, or None for a kind."""
    return Path(setting[len(FILE_PREFIX):]).expanduser() if setting.startswith(FILE_PREFIX) else None


def resolve_setting(setting: str) -> str:
    """``file:PATH`` with PATH made absolute (relative to the current directory); a kind as it is."""
    path = tokenizer_file(setting)
    return setting if path is None else FILE_PREFIX + str(path.resolve())


def fits_setting(tokenizer: TextTokenizer, setting: str) -> bool:
    """Whether ``tokenizer`` can be the one ``setting`` asks for: the same kind, or any tokenizer for ``file:``
    (the run's copy of the file is what counts once it is made)."""
    return setting.startswith(FILE_PREFIX) or tokenizer.kind == setting


def check_settings(src_tokenizer: str, tgt_tokenizer: str, src_vocab_size: int, tgt_vocab_size: int,
                   share_vocab: bool, key: str = "data") -> None:
    """ValueError naming the keys of tokenizer settings that cannot work (nothing is read)."""
    for side, setting in (("src", src_tokenizer), ("tgt", tgt_tokenizer)):
        path = tokenizer_file(setting)
        if path is None and setting not in TOKENIZER_KINDS:
            raise ValueError(f"{key}.{side}_tokenizer={setting!r} is not one of: {', '.join(TOKENIZER_KINDS)}, "
                             f"file:PATH")
        if path is not None and not path.name:
            raise ValueError(f"{key}.{side}_tokenizer={setting!r}: file: needs the path of a tokenizer file")
    for name, size in (("src_vocab_size", src_vocab_size), ("tgt_vocab_size", tgt_vocab_size)):
        if size <= len(SPECIAL_TOKENS):
            raise ValueError(f"{key}.{name} must exceed the {len(SPECIAL_TOKENS)} special tokens, got {size}")
    if not share_vocab:
        return
    if src_tokenizer != tgt_tokenizer:
        raise ValueError(
            f"{key}.share_vocab=true builds one tokenizer for both sides, but {key}.src_tokenizer={src_tokenizer!r} "
            f"and {key}.tgt_tokenizer={tgt_tokenizer!r} differ; set both to the same kind or the same file:PATH"
        )
    if tokenizer_file(src_tokenizer) is None and src_vocab_size != tgt_vocab_size:
        raise ValueError(
            f"{key}.share_vocab=true builds one vocabulary, but {key}.src_vocab_size={src_vocab_size} and "
            f"{key}.tgt_vocab_size={tgt_vocab_size} differ; set both to its size"
        )


def file_digest(setting: str, key: str) -> Optional[str]:
    """The SHA-256 of a ``file:`` setting's file (for cache keys: the same path with new contents is a new
    tokenizer), or None for a kind."""
    path = tokenizer_file(setting)
    return None if path is None else hashlib.sha256(_read(path, f"{key}={setting}")).hexdigest()


def load_file(setting: str, key: str) -> TextTokenizer:
    """The tokenizer of a ``file:PATH`` setting, reused as it is; errors name ``key`` and the file."""
    path = tokenizer_file(setting)
    content = _read(path, f"{key}={setting}")
    try:
        if path.suffix == SENTENCEPIECE_SUFFIX:
            from seq2seq.data.sentencepiece_tokenizer import SentencePieceTokenizer

            return SentencePieceTokenizer(content)
        return _from_json_file(content.decode("utf-8"))
    except ValueError as error:
        raise ValueError(f"{key}={setting}: {error}") from None
    except Exception as error:  # tokenizers and sentencepiece raise their own types for malformed files
        raise ValueError(f"{key}={setting}: not a readable tokenizer file ({error})") from None


def _from_json_file(text: str) -> TextTokenizer:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(text)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    try:
        loaded = TextTokenizer.from_json(tokenizer.to_str())
    except ValueError as error:
        raise ValueError(f"{error} (a tokenizer file needs {', '.join(SPECIAL_TOKENS)} at ids 0 to "
                         f"{len(SPECIAL_TOKENS) - 1}, as this project's tokenizers have them)") from None
    model = json.loads(tokenizer.to_str())["model"]
    # What the model reads an unknown piece as must be <unk> (id 1): another token would stand for it unseen.
    unknown = model.get("unk_token", UNK) if "unk_id" not in model else model["unk_id"]
    if unknown not in (None, UNK, UNK_ID):
        raise ValueError(f"its {model.get('type')} model reads unknown pieces as {unknown!r}, not {UNK} (id {UNK_ID})")
    return loaded


def _read(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"{what}: tokenizer file not found: {path}")
    return path.read_bytes()
