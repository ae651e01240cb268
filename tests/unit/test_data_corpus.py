"""Reading and validating aligned text: every error names the file, the line and the config key."""

import gzip
import logging
from pathlib import Path

import pytest

from seq2seq.data.corpus import filter_pairs, read_lines, read_parallel, read_tsv, resolve_text_file

KEY = "data.root"


def write(path: Path, data: bytes) -> Path:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_lines_plain_and_gzip_give_the_same_lines(tmp_path, suffix):
    path = write(tmp_path / f"a.de{suffix}", "Über  \nzwei Äpfel\n".encode())
    assert read_lines(path, KEY) == ["Über", "zwei Äpfel"]


def test_crlf_and_bom_are_normalized(tmp_path):
    path = write(tmp_path / "a.de", b"\xef\xbb\xbfeins\r\nzwei\r\n")
    assert read_lines(path, KEY) == ["eins", "zwei"]


def test_no_final_newline_and_inner_empty_lines_keep_line_numbers(tmp_path):
    path = write(tmp_path / "a.de", b"eins\n\ndrei")
    assert read_lines(path, KEY) == ["eins", "", "drei"]


def test_only_newline_splits_lines(tmp_path):
    # str.splitlines would also split at U+2028 and form feed and misalign parallel files.
    path = write(tmp_path / "a.de", "a\u2028b\x0cc\nd\n".encode())
    assert len(read_lines(path, KEY)) == 2


def test_missing_file_names_path_and_key(tmp_path):
    path = tmp_path / "train.de"
    with pytest.raises(FileNotFoundError, match=rf"{KEY}: file not found: .*train\.de"):
        read_lines(path, KEY)


def test_resolve_text_file_prefers_gzip_and_names_both_candidates(tmp_path):
    message = r"data\.root: file not found: .*train\.de \(also tried .*train\.de\.gz\)"
    with pytest.raises(FileNotFoundError, match=message):
        resolve_text_file(tmp_path, "train.de", KEY)
    write(tmp_path / "train.de", b"a\n")
    assert resolve_text_file(tmp_path, "train.de", KEY) == tmp_path / "train.de"
    write(tmp_path / "train.de.gz", b"a\n")
    assert resolve_text_file(tmp_path, "train.de", KEY) == tmp_path / "train.de.gz"


def test_invalid_utf8_names_file_and_line(tmp_path):
    path = write(tmp_path / "a.de", b"gut\nauch gut\nkaputt \xff hier\n")
    with pytest.raises(ValueError, match=r"data\.root: .*a\.de:3: not valid UTF-8 \(byte 0xff at column 8\)"):
        read_lines(path, KEY)


def test_nul_bytes_are_rejected_as_binary(tmp_path):
    path = write(tmp_path / "a.de", b"text\n\x00\x01\x02\n")
    with pytest.raises(ValueError, match=r"a\.de:2: contains NUL bytes"):
        read_lines(path, KEY)


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n"])
def test_empty_file_is_an_error(tmp_path, content):
    path = write(tmp_path / "a.de", content)
    with pytest.raises(ValueError, match=r"data\.root: .*a\.de is empty"):
        read_lines(path, KEY)


def test_corrupt_gzip_names_file(tmp_path):
    path = tmp_path / "a.de.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"a\.de\.gz is not a valid gzip file"):
        read_lines(path, KEY)


def test_read_parallel_pairs_lines(tmp_path):
    src = write(tmp_path / "a.de", b"eins\nzwei\n")
    tgt = write(tmp_path / "a.en.gz", b"one\ntwo\n")
    assert read_parallel(src, tgt, KEY) == [("eins", "one"), ("zwei", "two")]


def test_read_parallel_count_mismatch_names_both_files_and_counts(tmp_path):
    src = write(tmp_path / "a.de", b"eins\nzwei\ndrei\n")
    tgt = write(tmp_path / "a.en", b"one\ntwo\n")
    with pytest.raises(ValueError, match=r"a\.de has 3 lines, .*a\.en has 2"):
        read_parallel(src, tgt, KEY)


def test_read_tsv(tmp_path):
    path = write(tmp_path / "a.tsv", b"eins\tone\r\nzwei \t two\n\nvier\t\n")
    assert read_tsv(path, KEY) == [("eins", "one"), ("zwei", "two"), ("", ""), ("vier", "")]


@pytest.mark.parametrize("bad_line", [b"no tab here", b"a\tb\tc"])
def test_read_tsv_wrong_tab_count_names_line(tmp_path, bad_line):
    path = write(tmp_path / "a.tsv", b"eins\tone\n" + bad_line + b"\n")
    with pytest.raises(ValueError, match=r"a\.tsv:2: expected 'source<TAB>target'"):
        read_tsv(path, KEY)


PAIRS = [("a b", "x"), ("", "y"), ("c", "z z z"), ("d", "")]


def test_empty_side_is_an_error_naming_the_first_line():
    with pytest.raises(ValueError, match=r"train \(f\): line 2 has an empty source sentence.*data\.drop_empty"):
        filter_pairs(PAIRS, name="train (f)", drop_empty=False)


def test_drop_empty_drops_and_logs(caplog):
    with caplog.at_level(logging.WARNING):
        kept = filter_pairs(PAIRS, name="train (f)", drop_empty=True)
    assert kept.pairs == [("a b", "x"), ("c", "z z z")]
    assert kept.indices == [0, 2]
    assert kept.num_empty_dropped == 2
    assert "train (f): dropped 2 of 4 pairs with an empty side" in caplog.text


def test_length_limits_drop_only_when_set_and_log_split_and_limit(caplog):
    words = lambda s: len(s.split())  # noqa: E731
    pairs = [("a b", "x"), ("c", "z z z"), ("d", "y")]
    assert filter_pairs(pairs, name="train", drop_empty=False, src_len_fn=words, tgt_len_fn=words).pairs == pairs
    with caplog.at_level(logging.WARNING):
        kept = filter_pairs(
            pairs,
            name="train",
            drop_empty=False,
            max_src_length=1,
            max_tgt_length=2,
            src_len_fn=words,
            tgt_len_fn=words,
        )
    assert kept.pairs == [("d", "y")]
    assert kept.num_too_long_dropped == 2
    expected = "train: dropped 2 of 3 pairs longer than the limits (data.max_src_length=1, data.max_tgt_length=2"
    assert expected in caplog.text


def test_length_limits_keep_short_pairs():
    words = lambda s: len(s.split())  # noqa: E731
    pairs = [("a b", "x"), ("c", "z z z"), ("d", "y")]
    kept = filter_pairs(pairs, name="train", drop_empty=False, max_src_length=1, src_len_fn=words)
    assert kept.pairs == [("c", "z z z"), ("d", "y")]
    assert kept.indices == [1, 2]
    assert kept.num_too_long_dropped == 1


def test_everything_filtered_is_an_error_naming_the_limits():
    words = lambda s: len(s.split())  # noqa: E731
    message = r"train: all 2 pairs were filtered out .*data\.max_src_length=None, data\.max_tgt_length=1"
    with pytest.raises(ValueError, match=message):
        filter_pairs([("a", "x y"), ("b", "z z")], name="train", drop_empty=False, max_tgt_length=1, tgt_len_fn=words)


def test_limit_without_length_function_is_rejected():
    with pytest.raises(ValueError, match="max_src_length is set but no length function"):
        filter_pairs([("a", "b")], name="train", drop_empty=False, max_src_length=3)
