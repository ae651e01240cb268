"""python -m seq2seq.data.group_references: repeated sources become one source with several references."""

import subprocess
import sys

from seq2seq.data.group_references import group_references, main


def test_pairs_are_grouped_by_source_in_first_appearance_order_and_duplicates_count_once():
    pairs = [("b", "2"), ("a", "1"), ("b", "two"), ("a", "1"), ("c", "3"), ("b", "zwei")]
    assert group_references(pairs) == [("b", ["2", "two", "zwei"]), ("a", ["1"]), ("c", ["3"])]


def test_the_tool_writes_the_layout_evaluation_reads(tmp_path, capsys):
    (tmp_path / "pairs.src").write_text("colour\ncolor\ncolour\ntheatre\n", encoding="utf-8")
    (tmp_path / "pairs.tgt").write_text("k o l o r\nk o l o r\nk a l a\nt i a t r\n", encoding="utf-8")
    assert main([str(tmp_path / "pairs.src"), str(tmp_path / "pairs.tgt"), str(tmp_path / "test.src"),
                 str(tmp_path / "test.tgt")]) == 0
    assert (tmp_path / "test.src").read_text(encoding="utf-8") == "colour\ncolor\ntheatre\n"
    assert (tmp_path / "test.tgt").read_text(encoding="utf-8") == "k o l o r\nk o l o r\nt i a t r\n"
    assert (tmp_path / "test.tgt.1").read_text(encoding="utf-8") == "k a l a\n\n\n"
    assert not (tmp_path / "test.tgt.2").exists()
    assert "4 pairs -> 3 sources, 1 with several references (at most 2)" in capsys.readouterr().out


def test_aligned_files_of_different_lengths_are_an_error_naming_them(tmp_path):
    (tmp_path / "a.src").write_text("x\ny\n", encoding="utf-8")
    (tmp_path / "a.tgt").write_text("1\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "seq2seq.data.group_references", str(tmp_path / "a.src"),
                             str(tmp_path / "a.tgt"), str(tmp_path / "o.src"), str(tmp_path / "o.tgt")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "a.src has 2 lines" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o.src").exists()
