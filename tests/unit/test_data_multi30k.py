"""Multi30k: local copies are used, downloads are checked, failures say what to do."""

import gzip
from pathlib import Path

import pytest

from seq2seq.data.corpus import read_parallel
from seq2seq.data.multi30k import MULTI30K_LINE_COUNTS, ensure_multi30k

SHARED_MULTI30K = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "multi30k"
COUNTS = {"train": 5, "val": 3}


def make_remote(folder: Path, counts=COUNTS, langs=("de", "en")) -> str:
    folder.mkdir()
    for split, count in counts.items():
        for lang in langs:
            lines = "".join(f"{split} {lang} {i}\n" for i in range(count))
            (folder / f"{split}.{lang}.gz").write_bytes(gzip.compress(lines.encode()))
    return folder.as_uri()


def test_download_from_file_url_with_line_check(tmp_path, capsys):
    base_url = make_remote(tmp_path / "remote")
    root = tmp_path / "root"
    paths = ensure_multi30k(root, langs=("de", "en"), base_url=base_url, splits=("train", "val"), expected_lines=COUNTS)
    assert sorted(paths) == ["train.de", "train.en", "val.de", "val.en"]
    assert paths["val.en"] == root / "val.en.gz"
    assert read_parallel(paths["val.de"], paths["val.en"], "data.root")[2] == ("val de 2", "val en 2")
    assert sorted(p.name for p in root.iterdir()) == ["train.de.gz", "train.en.gz", "val.de.gz", "val.en.gz"]
    assert "download val.en.gz" in capsys.readouterr().out  # the progress bar


def test_existing_local_copies_are_used_without_downloading(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "val.de").write_text("a\n")
    (root / "val.en.gz").write_bytes(gzip.compress(b"b\n"))
    unreachable = "http://127.0.0.1:9/nothing"
    paths = ensure_multi30k(root, langs=("de", "en"), base_url=unreachable, splits=("val",), expected_lines=COUNTS)
    assert paths == {"val.de": root / "val.de", "val.en": root / "val.en.gz"}


def test_wrong_line_count_is_an_error_and_leaves_no_file(tmp_path):
    base_url = make_remote(tmp_path / "remote", counts={"val": 4})
    root = tmp_path / "root"
    message = r"val\.de\.gz: expected 3 lines for Multi30k split 'val', got 4; the download was discarded"
    with pytest.raises(ValueError, match=message):
        ensure_multi30k(root, langs=("de",), base_url=base_url, splits=("val",), expected_lines=COUNTS)
    assert list(root.iterdir()) == []


def test_corrupt_download_is_an_error_and_leaves_no_file(tmp_path):
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "val.de.gz").write_bytes(b"<html>rate limited</html>")
    root = tmp_path / "root"
    with pytest.raises(ValueError, match="not valid gzip"):
        ensure_multi30k(root, langs=("de",), base_url=remote.as_uri(), splits=("val",), expected_lines=COUNTS)
    assert list(root.iterdir()) == []


def test_offline_error_names_url_and_data_root(tmp_path):
    root = tmp_path / "root"
    # Port 9 (discard) on loopback is closed: the connection is refused at once.
    message = r"could not download http://127\.0\.0\.1:9/train\.de\.gz .*data\.root=DIR"
    with pytest.raises(ConnectionError, match=message):
        ensure_multi30k(root, langs=("de",), base_url="http://127.0.0.1:9/", splits=("train",), timeout_s=5)
    assert list(root.iterdir()) == []


def test_missing_remote_file_names_url(tmp_path):
    base_url = make_remote(tmp_path / "remote")
    with pytest.raises(ConnectionError, match=r"could not download .*remote/test_2016_flickr\.de\.gz"):
        ensure_multi30k(tmp_path / "root", langs=("de",), base_url=base_url, splits=("test_2016_flickr",))


def test_shared_copies_have_the_expected_line_counts():
    if not SHARED_MULTI30K.is_dir():
        pytest.skip(f"no local Multi30k copy at {SHARED_MULTI30K}")
    paths = ensure_multi30k(SHARED_MULTI30K, langs=("de", "en"), base_url="http://127.0.0.1:9/")
    for split, count in MULTI30K_LINE_COUNTS.items():
        pairs = read_parallel(paths[f"{split}.de"], paths[f"{split}.en"], "data.root")
        assert len(pairs) == count
        assert all(src and tgt for src, tgt in pairs)
