"""A folder holding a run's source and target tokenizers, with the settings they were trained with.

    {directory}/src_tokenizer.json  {directory}/tgt_tokenizer.json  {directory}/tokenizer_settings.json

Reusing tokenizers trained with other settings (another vocabulary size, the other direction) would
silently break a model, so ``load_tokenizers`` compares the saved settings with the wanted ones and refuses
a mismatch. A folder without the settings file (e.g. tokenizers written from a checkpoint) is accepted when
the tokenizer kinds match (any kind, for a ``file:`` setting: the folder holds the run's copy of the file).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from seq2seq.data.atomic import write_text_atomic
from seq2seq.data.tokenizer import TextTokenizer
from seq2seq.data.vocabulary import fits_setting

log = logging.getLogger(__name__)

SRC_FILE = "src_tokenizer.json"
TGT_FILE = "tgt_tokenizer.json"
SETTINGS_FILE = "tokenizer_settings.json"
# Settings added later, and what their absence from a folder's (or a caller's) settings means.
_ABSENT_MEANS = {"share_vocab": False}


def has_tokenizers(directory: Path) -> bool:
    return (directory / SRC_FILE).is_file() and (directory / TGT_FILE).is_file()


def save_tokenizers(directory: Path, src: TextTokenizer, tgt: TextTokenizer, settings: Mapping[str, object]) -> None:
    """Write both tokenizers and ``settings`` (the ``data.*`` values they were trained with)."""
    src.save(directory / SRC_FILE)
    tgt.save(directory / TGT_FILE)
    write_text_atomic(directory / SETTINGS_FILE, json.dumps(dict(settings), indent=2, sort_keys=True) + "\n")
    log.debug("saved tokenizers to %s", directory)


def load_tokenizers(directory: Path, settings: Mapping[str, object]) -> tuple[TextTokenizer, TextTokenizer]:
    """Both tokenizers, after checking they match ``settings`` (keys named as ``data.<key>``).

    ``settings`` must hold ``src_tokenizer`` and ``tgt_tokenizer`` (the kinds); ValueError naming
    ``data.tokenizer_dir`` and each differing key otherwise.
    """
    settings_path = directory / SETTINGS_FILE
    settings = {**_ABSENT_MEANS, **settings}
    if settings_path.is_file():
        saved = {**_ABSENT_MEANS, **json.loads(settings_path.read_text(encoding="utf-8"))}
        differences = [
            f"data.{key}: saved {saved.get(key)!r}, config {value!r}"
            for key, value in settings.items()
            if saved.get(key) != value
        ]
        if differences:
            raise ValueError(
                f"data.tokenizer_dir={directory} holds tokenizers trained with other settings "
                f"({'; '.join(differences)}); delete that folder or point data.tokenizer_dir elsewhere"
            )
    src, tgt = TextTokenizer.load(directory / SRC_FILE), TextTokenizer.load(directory / TGT_FILE)
    for side, tokenizer in (("src", src), ("tgt", tgt)):
        wanted_kind = settings[f"{side}_tokenizer"]
        if not fits_setting(tokenizer, wanted_kind):
            raise ValueError(
                f"data.tokenizer_dir={directory}: {side}_tokenizer.json is a {tokenizer.kind!r} tokenizer "
                f"but data.{side}_tokenizer={wanted_kind!r}"
            )
    if settings["share_vocab"] and src != tgt:
        raise ValueError(f"data.tokenizer_dir={directory} holds two different tokenizers but data.share_vocab=true")
    log.info("reusing tokenizers from %s: source %s, target %s", directory, src, tgt)
    return src, tgt
