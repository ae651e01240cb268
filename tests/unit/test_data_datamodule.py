"""TranslationDataModule on tiny data in tmp_path: batches, tokenizers, filters, errors naming config keys."""

import gzip
import logging
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from seq2seq.data.datamodule import TranslationDataModule
from seq2seq.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, TextTokenizer

SHARED_MULTI30K = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "multi30k"
NUMBERS = dict(seed=5, train_size=120, val_size=15, test_size=15, max_number=99_999)
SPLITS = {"train": "train", "val": "val", "test": "test"}


def numbers_module(root, **overrides):
    options = dict(
        name="numbers",
        root=str(root),
        src_lang="de",
        tgt_lang="en",
        splits=SPLITS,
        src_tokenizer="char",
        tgt_tokenizer="word",
        src_vocab_size=100,
        tgt_vocab_size=100,
        max_tokens=400,
        batch_size=None,
        eval_batch_size=8,
        numbers=NUMBERS,
    )
    options.update(overrides)
    dm = TranslationDataModule(**options)
    dm.prepare_data()
    return dm


def text_module(root, pairs_by_split, *, format="parallel", **overrides):
    root.mkdir(exist_ok=True)
    for split, pairs in pairs_by_split.items():
        if format == "tsv":
            (root / f"{split}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
        else:
            (root / f"{split}.de").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
            (root / f"{split}.en").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    options = dict(
        name="text",
        root=str(root),
        src_lang="de",
        tgt_lang="en",
        splits={s: s for s in pairs_by_split},
        format=format,
        src_tokenizer="word",
        tgt_tokenizer="word",
        src_vocab_size=50,
        tgt_vocab_size=50,
        max_tokens=None,
        batch_size=4,
    )
    options.update(overrides)
    return TranslationDataModule(**options)


TEXT = {
    "train": [("ein hund", "a dog"), ("zwei katzen", "two cats"), ("ein haus", "a house"), ("drei", "three")],
    "val": [("ein vogel", "a bird"), ("zwei hunde", "two dogs")],
}


def strip_padding(row):
    return [int(i) for i in row if i != PAD_ID]


def test_batches_have_the_right_shapes_padding_and_references(tmp_path):
    dm = numbers_module(tmp_path / "numbers")
    dm.setup("fit")
    seen = []
    for batch in dm.train_dataloader():
        B, S = batch.src.shape
        T = batch.tgt_in.shape[1]
        assert batch.tgt_out.shape == (B, T) and batch.src_lengths.shape == batch.indices.shape == (B,)
        tensors = (batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out, batch.indices)
        assert all(t.dtype == torch.long for t in tensors)
        assert B * max(S, T) <= dm.max_tokens
        assert torch.equal(batch.src_lengths, (batch.src != PAD_ID).sum(1))
        assert batch.src_lengths.max() == S  # no all-padding column
        assert (batch.tgt_in[:, 0] == BOS_ID).all()
        assert batch.num_tgt_tokens == int((batch.tgt_out != PAD_ID).sum()) and len(batch) == B
        for row_in, row_out, src, index in zip(batch.tgt_in, batch.tgt_out, batch.src, batch.indices.tolist()):
            tgt_in, tgt_out = strip_padding(row_in), strip_padding(row_out)
            assert tgt_in[1:] == tgt_out[:-1] and tgt_out[-1] == EOS_ID  # shifted by one
            assert dm.tgt_tokenizer.decode(tgt_out) == dm.references("train")[index]
            assert dm.src_tokenizer.decode(strip_padding(src)) == dm.sources("train")[index]
        seen += batch.indices.tolist()
    assert sorted(seen) == list(range(NUMBERS["train_size"]))


def test_eval_loader_is_deterministic_sorted_and_complete(tmp_path):
    dm = numbers_module(tmp_path / "numbers")
    dm.setup("validate")
    runs = [[b.indices.tolist() for b in dm.val_dataloader()] for _ in range(2)]
    assert runs[0] == runs[1]
    assert all(len(b) <= 8 for b in runs[0])
    assert sorted(i for b in runs[0] for i in b) == list(range(NUMBERS["val_size"]))
    widths = [max(b.src.shape[1], b.tgt_in.shape[1]) for b in dm.val_dataloader()]
    assert widths == sorted(widths)  # shortest first
    assert len(dm.references("val")) == len(dm.sources("val")) == NUMBERS["val_size"]
    assert len(dm.test_dataloader()) == 2  # 15 sentences in batches of 8


def test_batch_of_chosen_examples(tmp_path):
    dm = numbers_module(tmp_path / "numbers")
    batch = dm.batch("val", [3, 0, 7])
    assert batch.indices.tolist() == [3, 0, 7]
    for row, index in zip(batch.tgt_out, (3, 0, 7)):
        assert strip_padding(row) == dm.tgt_tokenizer.encode(dm.references("val")[index]) + [EOS_ID]
    with pytest.raises(IndexError, match="val has 15 examples; index 15 is out of range"):
        dm.batch("val", [15])


def test_tokenizers_are_saved_and_reused(tmp_path, monkeypatch):
    tokenizer_dir = tmp_path / "tok"
    first = numbers_module(tmp_path / "numbers", tokenizer_dir=str(tokenizer_dir))
    first.setup("fit")
    assert (tokenizer_dir / "src_tokenizer.json").is_file() and (tokenizer_dir / "tgt_tokenizer.json").is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("tokenizers were retrained instead of reused")

    monkeypatch.setattr(TextTokenizer, "train", no_training)
    second = numbers_module(tmp_path / "numbers", tokenizer_dir=str(tokenizer_dir))
    second.setup("test")
    assert second.src_tokenizer == first.src_tokenizer and second.tgt_tokenizer == first.tgt_tokenizer


def test_reusing_tokenizers_trained_with_other_settings_is_an_error(tmp_path):
    tokenizer_dir = str(tmp_path / "tok")
    numbers_module(tmp_path / "numbers", tokenizer_dir=tokenizer_dir).setup("fit")
    message = r"data\.tokenizer_dir=.*data\.src_tokenizer: saved 'char', config 'bpe'.*data\.tgt_vocab_size"
    with pytest.raises(ValueError, match=message):
        numbers_module(tmp_path / "numbers", tokenizer_dir=tokenizer_dir, src_tokenizer="bpe", tgt_vocab_size=60)


def test_tokenizers_learn_from_the_train_split_only(tmp_path):
    dm = text_module(tmp_path / "text", TEXT)
    dm.setup("fit")
    assert dm.src_tokenizer.encode("ein vogel") == [dm.src_tokenizer.token_to_id("ein"), UNK_ID]
    assert dm.references("val") == ["a bird", "two dogs"]  # raw text for BLEU, unknown words included


def test_tsv_format_and_lowercase(tmp_path):
    upper = {split: [(s.title(), t.upper()) for s, t in pairs] for split, pairs in TEXT.items()}
    dm = text_module(tmp_path / "text", upper, format="tsv", lowercase=True)
    dm.setup("fit")
    assert dm.sources("train")[0] == "ein hund" and dm.references("val")[0] == "a bird"


def test_missing_file_names_config_keys(tmp_path):
    dm = text_module(tmp_path / "text", TEXT, splits={"train": "train", "val": "val", "test": "test_2016"})
    message = r"data\.root \(test split, data\.splits\.test='test_2016'\): file not found: .*test_2016\.de"
    with pytest.raises(FileNotFoundError, match=message):
        dm.setup("test")


def test_numbers_data_is_generated_by_prepare_data(tmp_path):
    numbers_module(tmp_path / "numbers")
    assert sorted(p.name for p in (tmp_path / "numbers").iterdir()) == sorted(
        ["meta.json"] + [f"{s}.{lang}" for s in SPLITS for lang in ("de", "en")]
    )


def test_empty_line_is_an_error_unless_dropped(tmp_path, caplog):
    data = {"train": TEXT["train"] + [("", "nothing")], "val": TEXT["val"]}
    message = r"train \(.*train\.de, .*train\.en\): line 5 has an empty source.*data\.drop_empty"
    with pytest.raises(ValueError, match=message):
        text_module(tmp_path / "a", data).setup("fit")
    dm = text_module(tmp_path / "b", data, drop_empty=True)
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert len(dm.references("train")) == 4 and "dropped 1 of 5 pairs with an empty side" in caplog.text


LONG_SENTENCE = "ein sehr langer satz mit vielen wörtern"
LONG = {"train": TEXT["train"] + [(LONG_SENTENCE, "a long one")], "val": TEXT["val"] + [(LONG_SENTENCE, "x")]}


def test_example_over_the_token_budget_is_an_error_naming_line_and_keys(tmp_path):
    dm = text_module(tmp_path / "text", LONG, max_tokens=6, batch_size=None)
    message = r"train \(.*\): line 5 needs 7 padded tokens .*data\.max_tokens=6.*data\.max_src_length"
    with pytest.raises(ValueError, match=message):
        dm.setup("fit")


def test_length_filter_drops_long_training_pairs_and_handles_evaluation_pairs_as_eval_overlong_says(tmp_path, caplog):
    dm = text_module(tmp_path / "text", LONG, max_tokens=6, batch_size=None, max_src_length=5)
    with pytest.raises(ValueError, match=r"val \(.*val\.de.*\): 1 of 3 pairs .*line 3 \(source 7, target 1 tokens\).*"
                                         r"data\.eval_overlong=drop"):
        dm.setup("fit")
    dm = text_module(tmp_path / "text", LONG, max_tokens=6, batch_size=None, max_src_length=5, eval_overlong="truncate")
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert len(dm.sources("train")) == 4 and "data.max_src_length=5" in caplog.text
    assert len(dm.sources("val")) == 3 and dm.encoded_split("val").truncated_lines == [3]
    assert max(len(ids) for ids in dm.encoded_split("val").src_ids) == 5
    assert sum(len(b) for b in dm.val_dataloader()) == 3
    dm = text_module(tmp_path / "text", LONG, max_tokens=6, batch_size=None, max_src_length=5, eval_overlong="drop")
    dm.setup("fit")
    assert dm.sources("val") == [src for src, _ in TEXT["val"]] and dm.encoded_split("val").dropped_lines == [3]


@pytest.mark.parametrize("eval_max_tokens", [1000, 130])
def test_evaluation_batches_keep_to_eval_max_tokens_and_cover_every_pair_once(tmp_path, eval_max_tokens):
    dm = numbers_module(tmp_path / "numbers", eval_batch_size=8, eval_max_tokens=eval_max_tokens)
    seen = []
    for batch in dm.val_dataloader():
        padded = len(batch) * max(batch.src.size(1), batch.tgt_in.size(1))
        assert len(batch) <= 8 and (padded <= eval_max_tokens or len(batch) == 1)
        seen += batch.indices.tolist()
    assert sorted(seen) == list(range(len(dm.references("val"))))


def test_a_pair_longer_than_eval_max_tokens_alone_is_an_error_naming_its_line_and_the_key(tmp_path):
    dm = numbers_module(tmp_path / "numbers", eval_max_tokens=5)
    with pytest.raises(ValueError, match=r"val: line 1 needs \d+ padded tokens .* more than data\.eval_max_tokens=5"):
        dm.setup("fit")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(name="wmt"), r"data\.name='wmt' is not one of: numbers, multi30k, text"),
        (dict(format="csv"), r"data\.format='csv' is not one of: parallel, tsv"),
        (dict(src_tokenizer="sentencepiece"), r"data\.src_tokenizer='sentencepiece' is not one of: word, char, bpe"),
        (dict(splits={"train": "train"}), r"data\.splits must map train and val"),
        (dict(splits={"train": "a", "val": "b", "dev": "c"}), r"data\.splits .*got keys \['dev', 'train', 'val'\]"),
        (dict(max_tokens=None, batch_size=None), r"data\.max_tokens or data\.batch_size"),
        (dict(tgt_vocab_size=4), r"data\.tgt_vocab_size must exceed the 4 special tokens"),
        (dict(numbers={"seed": 1}), r"data\.numbers must have exactly the keys seed, train_size"),
        (dict(tgt_lang="fr"), r"data\.src_lang/data\.tgt_lang='fr' is not one of: de, en"),
    ],
)
def test_config_errors_name_the_key(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        numbers_module(tmp_path, **overrides)


def test_results_are_available_without_explicit_setup(tmp_path):
    dm = numbers_module(tmp_path / "numbers")
    assert dm.src_tokenizer.kind == "char" and len(dm.references("test")) == NUMBERS["test_size"]


def test_ranks_from_the_trainer_share_out_batches_equally(tmp_path):
    dm = numbers_module(tmp_path / "numbers", max_tokens=200)
    dm.setup("fit")
    single = len(dm.train_dataloader())
    per_rank = []
    for rank in range(2):
        connector = SimpleNamespace(use_distributed_sampler=False)
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank, _accelerator_connector=connector)
        per_rank.append([i for b in dm.train_dataloader() for i in b.indices.tolist()])
    assert len(per_rank[0]) > 0 and len(dm.train_dataloader()) == -(-single // 2)
    assert set(per_rank[0]) | set(per_rank[1]) == set(range(NUMBERS["train_size"]))
    dm.trainer.__dict__["_accelerator_connector"] = SimpleNamespace(use_distributed_sampler=True)
    with pytest.raises(ValueError, match="trainer.use_distributed_sampler=false"):
        dm.train_dataloader()


class _RecordingModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.orders = {}

    def training_step(self, batch, batch_idx):
        self.orders.setdefault(self.current_epoch, []).append(batch.indices.tolist())
        return self.weight * batch.src.float().mean()

    def validation_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_reshuffles_every_epoch(tmp_path):
    dm = numbers_module(tmp_path / "numbers", max_tokens=200)
    model = _RecordingModule()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, dm)
    assert model.orders[0] != model.orders[1]
    for order in model.orders.values():
        assert sorted(i for b in order for i in b) == list(range(NUMBERS["train_size"]))


def test_real_multi30k_copies(tmp_path):
    if not (SHARED_MULTI30K / "train.de.gz").is_file():
        pytest.skip(f"no local Multi30k copy at {SHARED_MULTI30K}")
    dm = TranslationDataModule(
        name="multi30k",
        root=str(SHARED_MULTI30K),
        src_lang="de",
        tgt_lang="en",
        splits={"train": "train", "val": "val", "test": "test_2016_flickr"},
        src_tokenizer="word",
        tgt_tokenizer="word",
        src_vocab_size=4000,
        tgt_vocab_size=4000,
        min_frequency=2,
        max_tokens=2000,
        batch_size=None,
        download_url="http://127.0.0.1:9/",  # everything is local: a download attempt would fail
    )
    dm.prepare_data()
    dm.setup("test")
    assert len(dm.references("test")) == 1000
    assert dm.src_tokenizer.vocab_size == 4000
    batch = next(iter(dm.test_dataloader()))
    assert batch.src.shape[0] == dm.eval_batch_size


# --- several references ---------------------------------------------------------------------------------------

def test_further_reference_files_give_each_example_all_its_references_kept_aligned_when_pairs_are_dropped(tmp_path):
    root = tmp_path / "text"
    dm = text_module(root, LONG, max_tokens=6, batch_size=None, max_src_length=5, eval_overlong="drop",
                     lowercase=True)
    (root / "val.en.1").write_text("A Bird\n\nmany\n", encoding="utf-8")  # line 2: no second reference
    with gzip.open(root / "val.en.2.gz", "wt", encoding="utf-8") as handle:
        handle.write("one bird\ndogs, two\nlots\n")
    (root / "val.en.4").write_text("after a gap: not read\n\n\n", encoding="utf-8")
    dm.setup("fit")
    # line 3 is over the length limit and dropped: its references go with it
    assert dm.reference_sets("val") == [["a bird", "a bird", "one bird"], ["two dogs", "dogs, two"]]
    assert dm.references("val") == ["a bird", "two dogs"]  # the loss's reference is the first
    assert dm.reference_sets("train") == [[target] for target in dm.references("train")]


def test_a_further_reference_file_of_another_length_is_an_error_naming_it(tmp_path):
    root = tmp_path / "text"
    dm = text_module(root, TEXT)
    (root / "val.en.1").write_text("a bird\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"val\.en\.1 has 1 lines but the split has 2 pairs"):
        dm.setup("fit")
