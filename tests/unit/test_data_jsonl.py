"""JSON Lines (data.format=jsonl): the same examples as the text files they copy, and errors that name the file,
the line and the field."""

from __future__ import annotations

import pytest

from seq2seq.data.jsonl import JsonLinesReader
from seq2seq.data.record_fields import RecordFields
from tests.helpers.corpus_copies import (
    TRAIN,
    VAL,
    examples,
    jsonl_lines,
    module,
    write_jsonl_corpus,
    write_text_corpus,
)

FIELDS = RecordFields.from_config(None, None, "de", "en")
KEY = "data.root"


@pytest.mark.parametrize("gz,lowercase,sample", [(False, False, None), (True, True, 3)])
def test_a_jsonl_copy_gives_the_same_examples_as_the_text_files(tmp_path, gz, lowercase, sample):
    options = dict(lowercase=lowercase, tokenizer_sample_size=sample)  # 3: the tokenizers see the same 3 lines
    expected = examples(module(write_text_corpus(tmp_path / "text"), "parallel", **options))
    got = examples(module(write_jsonl_corpus(tmp_path / "jsonl", gz=gz), "jsonl", **options))
    assert got == expected
    assert got["val"][1][0] == ["a bird", "one bird"]
    assert ('"Haus"' in got["vocab"][0]) != lowercase  # the source vocabulary saw "ein Haus"


def test_the_translation_layout_and_configured_field_names_are_read(tmp_path):
    nested = examples(module(write_jsonl_corpus(tmp_path / "nested", nested=True), "jsonl"))
    root = tmp_path / "named"
    root.mkdir()
    for split, pairs in (("train", TRAIN), ("val", [(s, refs[0]) for s, refs in VAL])):
        (root / f"{split}.jsonl").write_text(jsonl_lines({"q": {"text": s}, "a": t} for s, t in pairs))
    named = examples(module(root, "jsonl", src_field="q.text", tgt_field="a"))
    assert named == nested
    assert nested["val"][1] == [[refs[0]] for _, refs in VAL]


def test_a_list_of_references_in_the_training_split_gives_one_pair_per_reference(tmp_path):
    root = tmp_path / "jsonl"
    root.mkdir()
    (root / "train.jsonl").write_text(jsonl_lines([{"de": "ein hund", "en": ["a dog", "one dog"]},
                                                   {"de": "drei", "en": "three"}]))
    (root / "val.jsonl").write_text(jsonl_lines([{"de": "drei", "en": "three"}]))
    dm = module(root, "jsonl")
    store = dm.train_split()
    targets = [dm.tgt_tokenizer.decode(list(ids)) for ids in store.tgt_ids]
    assert sorted(zip(store.line_numbers.tolist(), targets)) == [(1, "a dog"), (1, "one dog"), (2, "three")]


@pytest.mark.parametrize("line,message", [
    ('{"de": "drei", "en": "three"', r"3: not valid JSON \(Expecting ',' delimiter at column 29\)"),
    ('["drei", "three"]', r"3: expected a JSON object \{\.\.\.\}, found an array"),
    ('{"de": "drei"}', r"3: no field 'en' or 'translation\.en' for the target; set data\.tgt_field"),
    ('{"de": 3, "en": "three"}', r"3: field 'de' is a number, expected a string"),
    ('{"de": "drei", "en": null}', r"3: field 'en' is null, expected a string"),
    ('{"translation": {"de": ["drei"], "en": "three"}}', r"3: field 'translation\.de' is a list, expected a string"),
    ('{"de": "drei", "en": []}', r"3: field 'en' is an empty list"),
    ('{"de": "drei", "en": ["three", " "]}', r"3: field 'en': reference 1 of 2 is empty"),
    ('{"de": "drei\\nvier", "en": "three"}', r"3: field 'de' holds a line break"),
])
def test_a_corrupt_record_is_named_by_its_file_line_and_field(tmp_path, line, message):
    good = jsonl_lines([{"de": "eins", "en": "one"}, {"de": "zwei", "en": "two"}])
    path = tmp_path / "train.jsonl"
    path.write_text(good + line + "\n" + good, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{KEY}: .*train\.jsonl:{message}"):
        list(JsonLinesReader(path, KEY, FIELDS))


def test_a_blank_jsonl_line_is_an_empty_pair_an_error_naming_it_unless_dropped(tmp_path, caplog):
    root = write_jsonl_corpus(tmp_path / "jsonl")
    (root / "val.jsonl").write_text(jsonl_lines([{"de": "eins", "en": "one"}]) + "\n"
                                    + jsonl_lines([{"de": "zwei", "en": ""}, {"de": "drei", "en": "three"}]))
    with pytest.raises(ValueError, match=r"val \(.*val\.jsonl\): line 2 has an empty source sentence; set "
                                         r"data\.drop_empty=true"):
        module(root, "jsonl").setup("fit")
    dm = module(root, "jsonl", drop_empty=True)
    dm.setup("fit")
    assert dm.sources("val") == ["eins", "drei"] and dm.encoded_split("val").line_numbers == [1, 4]
    assert "dropped 2 of 4 pairs with an empty side" in caplog.text


def test_over_long_jsonl_pairs_follow_the_same_length_rules_naming_their_lines(tmp_path):
    root = write_jsonl_corpus(tmp_path / "jsonl")
    (root / "val.jsonl").write_text(jsonl_lines([{"de": "ein sehr großer vogel", "en": "bird"},
                                                 {"de": "zwei", "en": "two"}]))
    limits = dict(max_src_length=3, max_tgt_length=1)
    with pytest.raises(ValueError, match=r"val \(.*val\.jsonl\): 1 of 2 pairs are longer than the length limits "
                                         r"\(data\.max_src_length=3.*: line 1 \(source 4, target 1 tokens\)"):
        module(root, "jsonl", **limits).setup("fit")
    dm = module(root, "jsonl", **limits, eval_overlong="drop")
    dm.setup("fit")
    assert dm.sources("val") == ["zwei"]
    assert dm.train_split().line_numbers.tolist() == [4]  # the only training pair with a one-word target


def test_the_cache_changes_with_the_fields_read(tmp_path):
    root = tmp_path / "jsonl"
    root.mkdir()
    records = [{"de": s, "en": t, "en2": t.upper()} for s, t in TRAIN]
    (root / "train.jsonl").write_text(jsonl_lines(records))
    (root / "val.jsonl").write_text(jsonl_lines(records[:2]))
    first = module(root, "jsonl").train_split()
    second = module(root, "jsonl", tgt_field="en2").train_split()
    assert first.directory != second.directory
    again = module(root, "jsonl", tgt_field="en2").train_split()
    assert again.directory == second.directory


def test_config_checks_and_the_datamodule_accept_the_new_formats_and_refuse_others(tmp_path):
    from omegaconf import OmegaConf

    from seq2seq.config import DataConfig
    from seq2seq.config_checks import ConfigError, check_data

    for format in ("jsonl", "hf"):
        check_data(OmegaConf.merge(OmegaConf.structured(DataConfig), {"root": "x", "format": format}))
    with pytest.raises(ConfigError, match=r"^data\.format: "):
        check_data(OmegaConf.merge(OmegaConf.structured(DataConfig), {"root": "x", "format": "json"}))
    with pytest.raises(ConfigError, match=r"^data\.tgt_field: .* read only with data\.format=jsonl or hf"):
        check_data(OmegaConf.merge(OmegaConf.structured(DataConfig), {"root": "x", "tgt_field": "en"}))
    with pytest.raises(ValueError, match=r"data\.format must be 'parallel' for data\.name='numbers'"):
        module(tmp_path, "jsonl", name="numbers")


