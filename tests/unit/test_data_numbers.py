"""The generated numbers data set: deterministic, disjoint splits, regenerated only when asked."""

import json
import random
import re
import runpy
from pathlib import Path

import pytest
from num2words import num2words

from seq2seq.data.numbers import ensure_numbers, make_numbers, sample_numbers

PARAMS = dict(seed=3, train_size=60, val_size=10, test_size=10, max_number=99_999)
FILES = [f"{split}.{lang}" for split in ("train", "val", "test") for lang in ("de", "en")]


def generate(out_dir, **overrides):
    make_numbers(out_dir, **{**PARAMS, **overrides})
    return {name: (out_dir / name).read_bytes() for name in FILES + ["meta.json"]}


def test_same_seed_gives_identical_bytes(tmp_path):
    assert generate(tmp_path / "a") == generate(tmp_path / "b")


def test_different_seed_gives_different_data(tmp_path):
    assert generate(tmp_path / "a")["train.de"] != generate(tmp_path / "b", seed=4)["train.de"]


def test_splits_are_disjoint_aligned_and_sized(tmp_path):
    generate(tmp_path, max_number=999)
    words_to_number = {num2words(n, lang="en"): n for n in range(1000)}
    numbers = {}
    for split, size in (("train", 60), ("val", 10), ("test", 10)):
        de = (tmp_path / f"{split}.de").read_text(encoding="utf-8").splitlines()
        en = (tmp_path / f"{split}.en").read_text(encoding="utf-8").splitlines()
        assert len(de) == len(en) == size
        numbers[split] = [words_to_number[e] for e in en]
        assert de == [num2words(n, lang="de") for n in numbers[split]]
    assert not set(numbers["train"]) & (set(numbers["val"]) | set(numbers["test"]))
    assert not set(numbers["val"]) & set(numbers["test"])


def test_german_side_is_one_lowercase_word(tmp_path):
    generate(tmp_path)
    for line in (tmp_path / "train.de").read_text(encoding="utf-8").splitlines():
        assert re.fullmatch(r"[a-zäöüß]+", line), line


def test_sampling_mixes_magnitudes_and_exhausts_small_classes():
    numbers = sample_numbers(random.Random(0), 3000, 999_999)
    assert len(set(numbers)) == 3000
    by_digits = {d: sum(len(str(n)) == d for n in numbers) for d in range(1, 7)}
    assert by_digits[1] == 10 and by_digits[2] == 90  # every small number drawn
    assert all(by_digits[d] > 500 for d in (4, 5, 6))


def test_too_many_numbers_is_an_error():
    with pytest.raises(ValueError, match=r"cannot draw 12 distinct numbers from \[0, 10\].*max_number"):
        sample_numbers(random.Random(0), 12, 10)


def test_meta_records_parameters(tmp_path):
    meta = json.loads(generate(tmp_path)["meta.json"])
    assert {k: meta[k] for k in PARAMS} == PARAMS


def test_ensure_generates_only_when_missing_or_changed(tmp_path):
    assert ensure_numbers(tmp_path, **PARAMS) is True
    stamp = (tmp_path / "train.de").stat().st_mtime_ns
    assert ensure_numbers(tmp_path, **PARAMS) is False
    assert (tmp_path / "train.de").stat().st_mtime_ns == stamp
    assert ensure_numbers(tmp_path, **{**PARAMS, "seed": 4}) is True
    (tmp_path / "val.en").unlink()
    assert ensure_numbers(tmp_path, **{**PARAMS, "seed": 4}) is True
    assert (tmp_path / "val.en").is_file()
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


def test_cli_script(tmp_path, capsys):
    # In-process (runpy) rather than a subprocess: same code path, without re-importing torch.
    script = Path(__file__).resolve().parents[2] / "data" / "make_numbers.py"
    main = runpy.run_path(str(script), run_name="make_numbers")["main"]
    args = ["--out-dir", str(tmp_path), "--seed", "3", "--train-size", "60", "--val-size", "10", "--test-size", "10"]
    args += ["--max-number", "99999"]
    main(args)
    assert "wrote" in capsys.readouterr().out
    main(args)
    assert "up to date" in capsys.readouterr().out
    assert (tmp_path / "train.de").read_bytes() == generate(tmp_path / "lib")["train.de"]
