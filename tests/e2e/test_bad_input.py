"""Bad input through ``train()``: every kind is refused with one message naming the file, line or key, before
a model is built; config errors and unusable output locations before any data is read.

The readers' own cases (gzip, every tab count, empty lines, ...) are unit-tested in tests/unit/test_data_*.py;
these check that the errors reach the user from a whole run, unchanged.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import time
from pathlib import Path

import pytest

from seq2seq.checkpoint import CheckpointError
from seq2seq.config_checks import ConfigError
from seq2seq.training.run import train
from tests.e2e.conftest import compose_train, script_command

pytestmark = pytest.mark.usefixtures("single_thread")

GOOD_SRC = ["ein haus", "zwei häuser", "drei kleine häuser", "ein großes haus", "vier"]
GOOD_TGT = ["a house", "two houses", "three small houses", "a big house", "four"]


def write_corpus(root: Path, files: dict[str, bytes] | None = None) -> Path:
    """A tiny aligned corpus {root}/{split}.{src,tgt}; ``files`` replaces or adds files by name."""
    root.mkdir(parents=True, exist_ok=True)
    corpus = {}
    for split in ("train", "val", "test"):
        corpus[f"{split}.src"] = ("\n".join(GOOD_SRC) + "\n").encode()
        corpus[f"{split}.tgt"] = ("\n".join(GOOD_TGT) + "\n").encode()
    corpus.update(files or {})
    for name, content in corpus.items():
        if content is not None:
            (root / name).write_bytes(content)
    return root


def text_config(tmp_path: Path, *extra: str):
    return compose_train([
        f"output_dir={tmp_path / 'run'}", "data=text", f"data.root={tmp_path / 'corpus'}",
        "data.src_tokenizer=char", "data.tgt_tokenizer=word", "data.src_vocab_size=100", "data.tgt_vocab_size=100",
        "data.min_frequency=1", "data.batch_size=2", "model.src_embedding_dim=8", "model.tgt_embedding_dim=8",
        "model.hidden_size=8", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "trainer.log_every_n_steps=1", *extra,
    ])


# --- config and output locations: refused before any data is read ---------------------------------------

@pytest.mark.parametrize("override,key", [
    ("optim.lr=-1", "optim.lr"),
    ("data.batch_size=0", "data.batch_size"),
    ("decode.beam_size=0", "decode.beam_size"),
    ("model.dropout=1.0", "model.dropout"),
    ("checkpoint_every_n_steps=-2", "checkpoint_every_n_steps"),
])
def test_an_impossible_setting_fails_before_any_data_is_read(train_config, tmp_path, override, key):
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        train(train_config(override))
    assert not (tmp_path / "numbers").exists() and not (tmp_path / "run").exists()


def test_a_merging_bridge_without_two_directions_fails_before_any_data_is_read(train_config, tmp_path):
    with pytest.raises(ConfigError, match=r"^model.bridge: 'sum' merges two directions"):
        train(train_config("model.bridge=sum", "model.bidirectional=false"))
    assert not (tmp_path / "numbers").exists()


def test_an_output_dir_that_cannot_be_created_fails_before_any_data_is_read(train_config, tmp_path):
    # Tests run as root, for whom permissions do not block writes: a path below a regular file cannot exist for anyone.
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    with pytest.raises(PermissionError, match="^output_dir: cannot write to " + re.escape(str(blocker / "sub"))):
        train(train_config(f"output_dir={blocker / 'sub'}"))
    assert not (tmp_path / "numbers").exists()


@pytest.mark.parametrize("content,words", [
    (None, "checkpoint not found"),
    (b"certainly not a checkpoint\n", "not a readable checkpoint"),
])
def test_resuming_from_a_missing_or_bad_checkpoint_fails_before_any_data_is_read(train_config, tmp_path, content,
                                                                                  words):
    path = tmp_path / "last.ckpt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises((CheckpointError, FileNotFoundError)) as caught:
        train(train_config(f"ckpt_path={path}"))
    message = str(caught.value)
    assert message.startswith("ckpt_path: ") and str(path) in message and words in message
    assert not (tmp_path / "numbers").exists()


# --- data: refused, naming the file and line, before a model is built --------------------------------------

DATA_CASES = {
    "missing_file": ({"val.tgt": None}, FileNotFoundError, r"data.root \(val split.*file not found: .*val\.tgt"),
    "line_counts": ({"train.tgt": b"a house\ntwo houses\n"}, ValueError,
                    r"different line counts: .*train\.src has 5 lines, .*train\.tgt has 2"),
    "empty_file": ({"test.src": b""}, ValueError, r"test\.src is empty"),
    "not_utf8": ({"train.src": b"ein haus\nzwei\nh\xe4user\n"}, ValueError, r"train\.src:3: not valid UTF-8"),
    "binary": ({"val.src": b"\x00\x01\x02PK\x03\x04"}, ValueError, r"val\.src:1: contains NUL bytes"),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_files_are_errors_naming_file_and_line(tmp_path, case, monkeypatch):
    files, error, pattern = DATA_CASES[case]
    write_corpus(tmp_path / "corpus", files)
    _no_model_may_be_built(monkeypatch)
    with pytest.raises(error, match=pattern):
        train(text_config(tmp_path))


def test_a_tsv_line_without_exactly_one_tab_is_an_error_naming_it(tmp_path, monkeypatch):
    tsv = "ein haus\ta house\nzwei häuser two houses\n".encode()
    write_corpus(tmp_path / "corpus", {f"{split}.tsv": tsv for split in ("train", "val", "test")})
    _no_model_may_be_built(monkeypatch)
    with pytest.raises(ValueError, match=r"train\.tsv:2: expected 'source<TAB>target' \(exactly one tab\), found 0"):
        train(text_config(tmp_path, "data.format=tsv"))


def test_length_limits_that_filter_out_every_pair_say_so_with_the_limit(tmp_path, monkeypatch):
    write_corpus(tmp_path / "corpus")
    _no_model_may_be_built(monkeypatch)
    with pytest.raises(ValueError, match=r"all 5 pairs were filtered out .*data\.max_src_length=1"):
        train(text_config(tmp_path, "data.max_src_length=1"))


def test_a_sentence_longer_than_the_token_budget_is_an_error_naming_its_line(tmp_path, monkeypatch):
    long_line = "ein sehr sehr sehr langes haus mit vielen fenstern"
    write_corpus(tmp_path / "corpus", {"train.src": ("\n".join(GOOD_SRC[:3] + [long_line] + GOOD_SRC[4:]) + "\n").encode()})
    _no_model_may_be_built(monkeypatch)
    with pytest.raises(ValueError, match=r"train .*: line 4 needs \d+ padded tokens .*more than data\.max_tokens=30"):
        train(text_config(tmp_path, "data.max_tokens=30", "data.batch_size=null"))


def test_crlf_and_a_bom_are_accepted(tmp_path):
    crlf = {name: b"\xef\xbb\xbf" + content.replace(b"\n", b"\r\n")
            for name, content in _corpus_bytes().items()}
    write_corpus(tmp_path / "corpus", crlf)
    metrics = train(text_config(tmp_path, "trainer.max_epochs=1"))
    assert "val/bleu" in metrics and "test/bleu" in metrics


def _corpus_bytes() -> dict[str, bytes]:
    return {f"{split}.{side}": ("\n".join(lines) + "\n").encode()
            for split in ("train", "val", "test") for side, lines in (("src", GOOD_SRC), ("tgt", GOOD_TGT))}


def _no_model_may_be_built(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a model was built although the data is bad")

    monkeypatch.setattr("seq2seq.training.run.TranslationModule", refuse)


def test_relative_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    """data.root, output_dir and ckpt_path typed relative mean relative to where the command runs."""
    write_corpus(tmp_path / "here" / "corpus")
    monkeypatch.chdir(tmp_path / "here")
    cfg = compose_train(["data=text", "data.root=corpus", "output_dir=out", "ckpt_path=nothing/last.ckpt"])
    expected = tmp_path / "here" / "nothing" / "last.ckpt"
    with pytest.raises(FileNotFoundError, match="checkpoint not found: " + re.escape(str(expected))):
        train(cfg)
    assert (tmp_path / "here" / "out").is_dir()  # output_dir, relative to the working directory
    assert cfg.data.root == str(tmp_path / "here" / "corpus")


@pytest.mark.slow
def test_train_script_reports_an_error_as_one_line_without_a_traceback(tmp_path):
    result = subprocess.run(script_command("train.py", "optim.lr=-1", f"hydra.run.dir={tmp_path / 'run'}"),
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == ["error: optim.lr: must be positive, got -1.0"]


def test_a_100000_token_line_is_dropped_and_counted_by_default_not_an_out_of_memory_kill(tmp_path):
    """A malformed line (here 100,000 words) under the default length limits: dropped, its line named, the run
    finishes in seconds with little memory (without the limits such a line grew a run to 22 GB)."""
    huge = " ".join(["haus"] * 100_000)
    src = GOOD_SRC[:2] + [huge] + GOOD_SRC[2:]
    tgt = GOOD_TGT[:2] + [huge.replace("haus", "house")] + GOOD_TGT[2:]
    write_corpus(tmp_path / "corpus", {"train.src": ("\n".join(src) + "\n").encode(),
                                       "train.tgt": ("\n".join(tgt) + "\n").encode()})
    command = script_command(
        "train.py", f"output_dir={tmp_path / 'run'}", "data=text", f"data.root={tmp_path / 'corpus'}",
        "data.batch_size=2", "model.src_embedding_dim=8", "model.tgt_embedding_dim=8", "model.hidden_size=8",
        "trainer.accelerator=cpu", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "test_after_training=false",
    )
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 0, output
    assert time.monotonic() - start < 60
    # the largest peak of any child process so far, this run's included: an upper bound on its memory
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 3 * 1024 * 1024  # KiB
    assert "dropped 1 of 6 pairs longer than the limits (data.max_src_length=200, data.max_tgt_length=200 tokens): " \
           "lines 3" in output


# --- a 100,000-token line in a validation or test file -----------------------------------------------------

HUGE = " ".join(["wort"] * 100_000)


def overlong_corpus(root: Path, splits=("train", "val", "test"), pairs: int = 60) -> Path:
    """``pairs`` short pairs per split; line ``pairs`` of the source file of each split in ``splits`` is HUGE."""
    words = ["ein haus", "zwei häuser", "drei kleine häuser", "ein großes haus", "vier"]
    english = ["a house", "two houses", "three small houses", "a big house", "four"]
    files = {}
    for split in ("train", "val", "test"):
        src = [words[i % 5] for i in range(pairs)]
        tgt = [english[i % 5] for i in range(pairs)]
        if split in splits:
            src[-1] = HUGE
        files[f"{split}.src"] = ("\n".join(src) + "\n").encode()
        files[f"{split}.tgt"] = ("\n".join(tgt) + "\n").encode()
    return write_corpus(root, files)


def overlong_command(tmp_path: Path, *extra: str) -> list[str]:
    return script_command(
        "train.py", f"output_dir={tmp_path / 'run'}", "data=text", f"data.root={tmp_path / 'corpus'}",
        "data.src_lang=src", "data.tgt_lang=tgt", "trainer.max_steps=2", "trainer.limit_val_batches=1",
        "test_after_training=false", "callbacks=none", "model.src_embedding_dim=8", "model.tgt_embedding_dim=8",
        "model.hidden_size=8", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", *extra,
    )


@pytest.mark.parametrize("splits, named", [(("train", "val", "test"), "val"), (("val",), "val"), (("test",), "test")])
def test_a_100000_token_line_in_an_evaluation_split_stops_the_run_before_training_naming_it(tmp_path, splits, named):
    overlong_corpus(tmp_path / "corpus", splits)
    start = time.monotonic()
    # test_after_training on: the test split is checked before training too.
    result = subprocess.run(overlong_command(tmp_path, "test_after_training=true"), cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1, result.stderr[-3000:]
    assert time.monotonic() - start < 60
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in result.stderr
    assert re.search(rf"error: {named} \(.*/corpus/{named}\.src, .*/corpus/{named}\.tgt\): 1 of 60 pairs are longer "
                     r"than the length limits \(data\.max_src_length=200, data\.max_tgt_length=200 tokens\): "
                     r"line 60 \(source \d+, target 1 tokens\); set data\.eval_overlong=drop", error[0]), error[0]
    assert not (tmp_path / "run" / "checkpoints").exists()  # not one training step


def test_eval_overlong_drop_trains_validates_and_says_on_how_many_pairs(tmp_path):
    overlong_corpus(tmp_path / "corpus")
    result = subprocess.run(overlong_command(tmp_path, "data.eval_overlong=drop", "test_after_training=true"),
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert re.search(r"val \(.*\): dropped 1 of 60 pairs longer than the length limits .*: line 60 \(source 100000", output)
    assert re.search(r"validation \| epoch \d+/\d+ \| step 2 \| .* \| on 59 of 60 pairs: data\.eval_overlong=drop left "
                     r"out line 60 \| closing validation", output), output[-3000:]
    assert re.search(r"test \| .* \| on 59 of 60 pairs: data\.eval_overlong=drop left out line 60", output)


def test_evaluate_applies_the_same_rule_to_the_split_it_scores(tmp_path):
    overlong_corpus(tmp_path / "corpus", splits=("train",))
    trained = subprocess.run(overlong_command(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr[-3000:]
    overlong_corpus(tmp_path / "other", splits=("test",))
    common = [f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "data=text",
              f"data.root={tmp_path / 'other'}", "data.src_lang=src", "data.tgt_lang=tgt",
              "decode.beam_size=2", f"output={tmp_path / 'hyp.txt'}"]
    refused = subprocess.run(script_command("evaluate.py", *common), cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 1
    assert re.search(r"error: test \(.*/other/test\.src, .*\): 1 of 60 pairs .* line 60 \(source \d+",
                     refused.stderr), refused.stderr[-2000:]
    dropped = subprocess.run(script_command("evaluate.py", *common, "eval_overlong=drop"), cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert dropped.returncode == 0, dropped.stderr[-3000:]
    assert "scored on 59 of 60 pairs: 1 over the length limits left out" in dropped.stdout
    assert len((tmp_path / "hyp.txt").read_text().splitlines()) == 59
