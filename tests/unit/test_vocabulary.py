"""data.*_tokenizer=file:PATH (a tokenizer.json or a SentencePiece model reused as it is), data.share_vocab (one
tokenizer for both sides), and the settings that cannot work, refused naming their keys."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from seq2seq.config import TrainConfig
from seq2seq.config_checks import ConfigError, check_train_config
from seq2seq.data.tokenizer import FILE_KIND, SPECIAL_TOKENS, TextTokenizer
from seq2seq.data.tokenizer_store import SRC_FILE, TGT_FILE
from seq2seq.data.vocabulary import check_settings, load_file, resolve_setting
from tests.unit.test_data_datamodule import TEXT, text_module

SOURCES = [s for s, _ in TEXT["train"]]
TARGETS = [t for _, t in TEXT["train"]]


def word_piece_file(path, specials=SPECIAL_TOKENS, unk="<unk>", **options):
    """A tokenizers file of a structure this project never trains (WordPiece), with the given special tokens."""
    tokenizer = Tokenizer(models.WordPiece(unk_token=unk))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordPieceTrainer(vocab_size=60, special_tokens=list(specials), show_progress=False)
    tokenizer.train_from_iterator(SOURCES + TARGETS, trainer)
    if options.get("truncate"):
        tokenizer.enable_truncation(max_length=1)
    tokenizer.save(str(path))
    return path


def test_a_tokenizer_file_is_reused_as_it_is_and_the_run_keeps_a_copy(tmp_path):
    trained = TextTokenizer.train(SOURCES, "bpe", 40, 1)
    path = tmp_path / "elsewhere" / "tokenizer.json"
    trained.save(path)
    run = tmp_path / "run_tokenizers"
    dm = text_module(tmp_path / "data", TEXT, src_tokenizer=f"file:{path}", tokenizer_dir=str(run))
    assert dm.src_tokenizer == trained  # not retrained on the data
    assert [dm.src_tokenizer.encode(s) for s in SOURCES] == [trained.encode(s) for s in SOURCES]
    assert dm.tgt_tokenizer.kind == "word"  # the other side trained as before
    assert TextTokenizer.load(run / SRC_FILE) == trained
    path.unlink()  # the run's copy is what a later start (a resumed run, evaluate.py) reads
    again = text_module(tmp_path / "data", TEXT, src_tokenizer=f"file:{path}", tokenizer_dir=str(run))
    assert again.src_tokenizer == trained


def test_a_file_of_another_structure_encodes_as_the_library_does_without_its_truncation(tmp_path):
    path = word_piece_file(tmp_path / "wordpiece.json", truncate=True)
    tokenizer = load_file(f"file:{path}", "data.src_tokenizer")
    assert tokenizer.kind == FILE_KIND
    library = Tokenizer.from_file(str(path))
    library.no_truncation()
    text = "ein hund und zwei katzen"
    assert tokenizer.encode(text) == library.encode(text, add_special_tokens=False).ids
    assert len(tokenizer.encode(text)) > 1  # the file's truncation to one token is switched off
    assert TextTokenizer.from_json(tokenizer.to_json()) == tokenizer  # as a checkpoint stores it


@pytest.mark.parametrize(
    "specials, unk, message",
    [
        (("<unk>", "<bos>", "<eos>"), "<unk>", r"special token <pad> must have id 0, it is not in the vocabulary"),
        (("<unk>", "<pad>", "<bos>", "<eos>"), "<unk>", r"special token <pad> must have id 0, found id 1"),
        (("[PAD]", "[UNK]", "[CLS]", "[SEP]"), "[UNK]", r"special token <pad> must have id 0"),
        (SPECIAL_TOKENS + ("[UNK]",), "[UNK]", r"its WordPiece model reads unknown pieces as '\[UNK\]', not <unk> \(id 1\)"),
    ],
)
def test_a_file_whose_special_tokens_are_not_the_fixed_ids_is_refused_naming_file_and_token(
        tmp_path, specials, unk, message):
    path = word_piece_file(tmp_path / "foreign.json", specials, unk)
    with pytest.raises(ValueError, match=rf"data\.src_tokenizer=file:.*foreign\.json: {message}"):
        text_module(tmp_path / "data", TEXT, src_tokenizer=f"file:{path}").src_tokenizer


def test_a_missing_or_unreadable_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data\.tgt_tokenizer=file:.*nowhere\.json: tokenizer file not found"):
        text_module(tmp_path / "data", TEXT, tgt_tokenizer=f"file:{tmp_path / 'nowhere.json'}").tgt_tokenizer
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"data\.src_tokenizer=file:.*broken\.json: not a readable tokenizer file"):
        load_file(f"file:{broken}", "data.src_tokenizer")


def test_a_changed_file_at_the_same_path_is_a_new_tokenizer_not_a_stale_cache(tmp_path):
    path = tmp_path / "tokenizer.json"
    first = TextTokenizer.train(SOURCES, "word", 40, 1)
    first.save(path)
    assert text_module(tmp_path / "data", TEXT, src_tokenizer=f"file:{path}").src_tokenizer == first
    second = TextTokenizer.train(SOURCES + ["neue wörter hier"], "word", 40, 1)
    second.save(path)
    assert text_module(tmp_path / "data", TEXT, src_tokenizer=f"file:{path}").src_tokenizer == second


def test_relative_paths_are_taken_from_the_directory_the_command_ran_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_setting("file:toks/src.json") == f"file:{tmp_path / 'toks' / 'src.json'}"
    assert resolve_setting("bpe") == "bpe"


@pytest.mark.parametrize("kind", ["word", "char", "bpe"])
def test_share_vocab_trains_one_tokenizer_on_both_sides(tmp_path, kind):
    dm = text_module(tmp_path / "data", TEXT, src_tokenizer=kind, tgt_tokenizer=kind, share_vocab=True,
                     tokenizer_dir=str(tmp_path / "run"))
    assert dm.src_tokenizer == dm.tgt_tokenizer
    assert dm.src_tokenizer.vocab_size == dm.tgt_tokenizer.vocab_size
    unknown = dm.src_tokenizer.token_to_id("<unk>")
    # Words (or their pieces) of either side's text are in the one vocabulary: no <unk> on any training sentence.
    for text in SOURCES + TARGETS:
        assert unknown not in dm.src_tokenizer.encode(text)
    separate = text_module(tmp_path / "data", TEXT, src_tokenizer=kind, tgt_tokenizer=kind)
    assert unknown in separate.src_tokenizer.encode(TARGETS[0]) or kind != "word"
    # A run folder trained without share_vocab is not taken for one trained with it.
    with pytest.raises(ValueError, match=r"data\.share_vocab: saved True, config False"):
        text_module(tmp_path / "data", TEXT, src_tokenizer=kind, tgt_tokenizer=kind,
                    tokenizer_dir=str(tmp_path / "run")).src_tokenizer


def test_share_vocab_with_one_file_on_both_sides_uses_it_for_both(tmp_path):
    path = tmp_path / "joint.json"
    TextTokenizer.train(SOURCES + TARGETS, "word", 60, 1).save(path)
    dm = text_module(tmp_path / "data", TEXT, src_tokenizer=f"file:{path}", tgt_tokenizer=f"file:{path}",
                     share_vocab=True, tokenizer_dir=str(tmp_path / "run"))
    assert dm.src_tokenizer == dm.tgt_tokenizer == TextTokenizer.load(path)
    assert (tmp_path / "run" / TGT_FILE).read_text() == (tmp_path / "run" / SRC_FILE).read_text()


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(src_tokenizer="char", tgt_tokenizer="word"),
         r"data\.share_vocab=true builds one tokenizer.*data\.src_tokenizer='char' and data\.tgt_tokenizer='word'"),
        (dict(src_tokenizer="file:a.json", tgt_tokenizer="bpe"),
         r"data\.src_tokenizer='file:a\.json' and data\.tgt_tokenizer='bpe' differ"),
        (dict(tgt_vocab_size=900),
         r"data\.src_vocab_size=8000 and data\.tgt_vocab_size=900 differ"),
    ],
)
def test_share_vocab_refuses_what_cannot_be_one_vocabulary(settings, message):
    base = dict(src_tokenizer="bpe", tgt_tokenizer="bpe", src_vocab_size=8000, tgt_vocab_size=8000)
    with pytest.raises(ValueError, match=message):
        check_settings(**{**base, **settings}, share_vocab=True)
    check_settings(**{**base, **settings}, share_vocab=False)  # each side its own: fine


def test_an_unknown_tokenizer_setting_lists_the_kinds_and_file():
    with pytest.raises(ValueError, match=r"data\.tgt_tokenizer='sentencepiece' is not one of: word, char, bpe, file:PATH"):
        check_settings("bpe", "sentencepiece", 100, 100, False)


def train_config(**sections):
    cfg = OmegaConf.structured(TrainConfig)
    cfg.data.root = "x"
    cfg.trainer = {}
    for section, values in sections.items():
        for name, value in values.items():
            cfg[section][name] = value
    return cfg


@pytest.mark.parametrize(
    "data, model, message",
    [
        (dict(src_tokenizer="bpe", tgt_tokenizer="bpe"), dict(share_embeddings=True),
         r"model\.share_embeddings: needs one vocabulary for both sides: set data\.share_vocab=true"),
        (dict(src_tokenizer="bpe", tgt_tokenizer="bpe", share_vocab=True),
         dict(share_embeddings=True, tgt_embedding_dim=128),
         r"model\.share_embeddings: needs src_embedding_dim == tgt_embedding_dim, got 256 and 128"),
        (dict(src_tokenizer="char", tgt_tokenizer="word", share_vocab=True), dict(),
         r"data\.share_vocab=true builds one tokenizer for both sides"),
    ],
)
def test_train_configs_that_cannot_share_are_refused_naming_the_keys(data, model, message):
    with pytest.raises(ConfigError, match=message):
        check_train_config(train_config(data=data, model=model))


def test_a_train_config_sharing_everything_passes():
    check_train_config(train_config(data=dict(src_tokenizer="bpe", tgt_tokenizer="bpe", share_vocab=True),
                                    model=dict(share_embeddings=True, tie_embeddings=True, hidden_size=256)))
    one_file = dict(src_tokenizer="file:t.json", tgt_tokenizer="file:t.json")
    check_train_config(train_config(data=one_file, model=dict(share_embeddings=True)))


# --- SentencePiece --------------------------------------------------------------------------------------------


def sentencepiece_model(tmp_path, **options):
    spm = pytest.importorskip("sentencepiece", reason="SentencePiece models need the sentencepiece package")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join((SOURCES + TARGETS) * 20) + "\n", encoding="utf-8")
    prefix = tmp_path / "sp"
    settings = dict(vocab_size=30, model_type="unigram", pad_id=0, unk_id=1, bos_id=2, eos_id=3,
                    hard_vocab_limit=False, minloglevel=2)
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(prefix), **{**settings, **options})
    return spm, prefix.with_suffix(".model")


def test_a_sentencepiece_model_encodes_as_sentencepiece_does_and_survives_a_checkpoint(tmp_path):
    spm, path = sentencepiece_model(tmp_path)
    tokenizer = load_file(f"file:{path}", "data.src_tokenizer")
    processor = spm.SentencePieceProcessor(model_file=str(path))
    for text in SOURCES + ["ein unbekanntes wort"]:
        assert tokenizer.encode(text) == processor.encode(text)
        assert tokenizer.decode([2, *tokenizer.encode(text), 3, 0]) == processor.decode(processor.encode(text))
    assert tokenizer.encode_batch(SOURCES) == processor.encode(SOURCES)
    assert tokenizer.vocab_size == processor.get_piece_size()
    restored = TextTokenizer.from_json(tokenizer.to_json())  # as a checkpoint and the run's folder keep it
    assert restored == tokenizer and restored.encode(SOURCES[0]) == tokenizer.encode(SOURCES[0])
    json.loads(tokenizer.to_json())  # plain JSON text, as checkpoints store tokenizers
    dm = text_module(tmp_path / "data", TEXT, src_tokenizer=f"file:{path}", tokenizer_dir=str(tmp_path / "run"))
    assert dm.src_tokenizer == tokenizer
    assert TextTokenizer.load(tmp_path / "run" / SRC_FILE) == tokenizer


def test_a_sentencepiece_model_with_its_default_special_ids_is_refused_naming_the_role(tmp_path):
    _, path = sentencepiece_model(tmp_path, pad_id=-1, unk_id=0, bos_id=1, eos_id=2)
    with pytest.raises(ValueError, match=r"data\.src_tokenizer=file:.*sp\.model: the SentencePiece pad piece must have id 0, it is disabled "
                                         r"\(-1\); train the model with --pad_id=0 --unk_id=1 --bos_id=2 --eos_id=3"):
        load_file(f"file:{path}", "data.src_tokenizer")
