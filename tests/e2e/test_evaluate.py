"""evaluate(cfg) and evaluate.py end to end, on a checkpoint trained once for this module on tiny data:
scoring a split, beam search, other aligned files, raw text from stdin and files, averaging, bad checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import sacrebleu
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from seq2seq.checkpoint import read_checkpoint
from seq2seq.config_checks import ConfigError
from seq2seq.decode_options import DecodeOptions
from seq2seq.inference.evaluation import evaluate
from seq2seq.inference.loading import build_model
from seq2seq.inference.metrics import error_rates
from seq2seq.inference.search import greedy_search
from seq2seq.training.run import train
from tests.e2e.conftest import REPO, compose_train, script_command, tiny_overrides
from tests.unit.test_checkpoint import RunsCode

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]

# An untrained model decodes every sentence to its maximum length; on a small busy machine intra-op
# threads then cost far more than they save (see tests/conftest.py's single_thread).
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """last.ckpt of a one-epoch tiny run (20 test sentences in data/numbers beside it)."""
    root = tmp_path_factory.mktemp("trained")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # validation decodes too: one thread, as for the tests (ONE_THREAD's comment)
    try:
        train(compose_train(tiny_overrides(root) + ["trainer.max_epochs=1", "test_after_training=false"]))
    finally:
        torch.set_num_threads(previous)
    return root / "run" / "checkpoints" / "last.ckpt"


def compose_evaluate(ckpt_path: Path, *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="evaluate", overrides=[f"ckpt_path={ckpt_path}", "device=cpu", *overrides])


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def test_training_checkpoints_record_their_data(trained):
    data = read_checkpoint(trained).data
    assert data is not None and data["name"] == "numbers" and Path(data["root"]).is_absolute()


def test_scoring_the_test_split_writes_hypotheses_in_order_and_metrics(trained):
    metrics = evaluate(compose_evaluate(trained, "decode.beam_size=1"))
    eval_dir = trained.parent.parent / "eval"
    hypotheses = lines(eval_dir / "last.test.beam1.hyp")
    saved = json.loads((eval_dir / "last.test.beam1.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert len(hypotheses) == saved["num_sentences"] == 20
    for key in ("bleu", "chrf", "chrf_pp", "ter", "exact_match", "wer", "cer", "signature", "chrf_pp_signature",
                "ter_signature", "sentences_per_sec", "decode_seconds"):
        assert key in saved
    assert saved["ter"] == pytest.approx(sacrebleu.corpus_ter(hypotheses, [lines(
        trained.parent.parent.parent / "numbers" / "test.en")]).score)
    assert saved["signature"].startswith("nrefs:1|") and saved["sentences_per_sec"] > 0
    assert 0.0 <= saved["exact_match"] <= 1.0
    references = lines(trained.parent.parent.parent / "numbers" / "test.en")
    assert saved["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score)
    rates = error_rates(hypotheses, references)
    assert (saved["wer"], saved["cer"]) == pytest.approx((rates.wer, rates.cer))
    # Line i is the translation of source line i, decoded alone.
    stored = read_checkpoint(trained)
    model = build_model(stored)
    sources = lines(trained.parent.parent.parent / "numbers" / "test.de")
    for i in (0, 7, 19):
        ids = stored.src_tokenizer.encode(sources[i])
        alone = greedy_search(model, torch.tensor([ids]), torch.tensor([len(ids)]), DecodeOptions(beam_size=1))
        assert hypotheses[i] == stored.tgt_tokenizer.decode(alone.tokens[0])



def test_a_further_reference_file_counts_its_sentences_as_right_too(trained, tmp_path):
    """test.en.1 beside test.en: an output equal to either reference is right, and the error rates take the closer."""
    first = evaluate(compose_evaluate(trained, "decode.beam_size=1", f"output={tmp_path / 'one.hyp'}"))
    hypotheses = lines(tmp_path / "one.hyp")
    further = trained.parent.parent.parent / "numbers" / "test.en.1"
    further.write_text("".join(f"{h or 'x'}\n" for h in hypotheses), encoding="utf-8")  # the outputs themselves
    try:
        both = evaluate(compose_evaluate(trained, "decode.beam_size=1", f"output={tmp_path / 'two.hyp'}"))
    finally:
        further.unlink()
    assert lines(tmp_path / "two.hyp") == hypotheses  # the same outputs, scored against two references each
    assert first["exact_match"] < 1.0 and first["wer"] > 0.0
    expected_exact = sum(bool(h) for h in hypotheses) / len(hypotheses)
    assert both["exact_match"] == pytest.approx(expected_exact) and both["signature"].startswith("nrefs:2|")
    assert both["wer"] <= first["wer"] and both["bleu"] >= first["bleu"]

def test_beam_search_with_an_nbest_list_and_an_output_path(trained, tmp_path):
    output = tmp_path / "out" / "hyps.txt"
    metrics = evaluate(compose_evaluate(trained, "decode.beam_size=5", "decode.n_best=2", f"output={output}",
                                        "batch_size=7"))
    assert len(lines(output)) == 20
    assert json.loads((tmp_path / "out" / "hyps.json").read_text())["decode"]["beam_size"] == 5
    nbest = lines(tmp_path / "out" / "hyps.nbest")
    assert {line.split(" ||| ")[0] for line in nbest} == {str(i) for i in range(20)}
    assert metrics["nbest"] == str(tmp_path / "out" / "hyps.nbest")


def test_other_aligned_files_with_data_text(trained, tmp_path):
    numbers = trained.parent.parent.parent / "numbers"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "test.src").write_text("\n".join(lines(numbers / "test.de")[:7]) + "\n")
    (corpus / "test.tgt").write_text("\n".join(lines(numbers / "test.en")[:7]) + "\n")
    overrides = ["data=text", f"data.root={corpus}", "decode.beam_size=2"]
    with pytest.raises(ConfigError, match="does not match the checkpoint's vocabulary"):
        evaluate(compose_evaluate(trained, *overrides))
    metrics = evaluate(compose_evaluate(trained, *overrides, "data.src_tokenizer=char", "data.tgt_tokenizer=word"))
    assert metrics["num_sentences"] == 7 and metrics["data"]["root"] == str(corpus)
    assert len(lines(Path(metrics["hypotheses"]))) == 7
    assert Path(metrics["hypotheses"]).name == "last.text-corpus.test.beam2.lp1.hyp"


def test_a_long_input_is_truncated_with_a_warning(trained, tmp_path, caplog):
    source = tmp_path / "in.txt"
    source.write_text("dreizehn\n" + "neunhundertneunundneunzigtausend" * 3 + "\nzwei\n")
    output = tmp_path / "out.txt"
    evaluate(compose_evaluate(trained, f"input={source}", f"output={output}", "max_input_tokens=20"))
    assert len(lines(output)) == 3
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert any("line 2 (96 tokens)" in message and "truncated to 20 tokens" in message for message in warnings)


def test_averaging_the_last_checkpoints(trained, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    checkpoint = torch.load(trained, weights_only=True)
    torch.save(checkpoint, checkpoints / "a.ckpt")
    checkpoint["global_step"] += 1
    checkpoint["state_dict"] = {name: value * 3 for name, value in checkpoint["state_dict"].items()}
    torch.save(checkpoint, checkpoints / "b.ckpt")
    metrics = evaluate(compose_evaluate(checkpoints / "a.ckpt", "average_last=2", "decode.beam_size=1"))
    assert metrics["averaged_checkpoints"] == [str(checkpoints / "b.ckpt"), str(checkpoints / "a.ckpt")]
    assert Path(metrics["hypotheses"]) == tmp_path / "eval" / "avg2.test.beam1.hyp"


def test_translating_stdin_keeps_order_and_empty_lines(trained, tmp_path):
    text = "dreihundertzwölf\n\nQuatsch€ zwei\nsieben\n"  # an empty line; characters the model never saw
    result = subprocess.run(
        script_command("evaluate.py", f"ckpt_path={trained}", "input=-", "device=cpu", "decode.beam_size=1"),
        input=text, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout.split("\n")[:-1]
    assert len(output) == 4 and output[1] == ""
    # stdout holds nothing but the translations: each equals the sentence translated alone.
    for line, translation in zip(text.split("\n"), output):
        if line:
            single = tmp_path / "single.txt"
            single.write_text(line + "\n")
            evaluate(compose_evaluate(trained, f"input={single}", f"output={tmp_path / 'alone.txt'}",
                                      "decode.beam_size=1"))
            assert lines(tmp_path / "alone.txt") == [translation]
    assert "INFO" in result.stderr  # the logs went to stderr


def test_a_checkpoint_that_would_run_code_fails_with_one_line_and_runs_nothing(tmp_path):
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": RunsCode(f"touch {marker}")}, evil)
    result = subprocess.run(script_command("evaluate.py", f"ckpt_path={evil}"), cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env=ONE_THREAD)
    assert result.returncode != 0
    assert not marker.exists()
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ckpt_path: ") and str(evil) in last_line and "refused" in last_line


# --- ensembles, scoring given targets, alignments, prefixes, int8, from evaluate.py --------------------------

@pytest.mark.parametrize("combine", ["probability", "log_probability"])
def test_an_ensemble_of_a_checkpoint_with_itself_decodes_as_the_checkpoint(trained, tmp_path, combine):
    single = evaluate(compose_evaluate(trained, "decode.beam_size=3", f"output={tmp_path / 'single.hyp'}"))
    ensemble = evaluate(compose_evaluate(f"[{trained},{trained}]", "decode.beam_size=3",
                                         f"ensemble_combine={combine}"))
    assert lines(Path(ensemble["hypotheses"])) == lines(Path(single["hypotheses"]))
    assert ensemble["bleu"] == single["bleu"] and ensemble["checkpoints"] == [str(trained)] * 2
    assert Path(ensemble["hypotheses"]).name == "ensemble-run.last+run.last.test.beam3.lp1.hyp"


def test_scoring_the_references_of_a_split(trained):
    metrics = evaluate(compose_evaluate(trained, "score_targets=true"))
    scores = [[float(value) for value in line.split("\t")] for line in lines(Path(metrics["scores"]))]
    assert Path(metrics["scores"]).name == "last.test.scores" and len(scores) == 20
    assert all(log_prob < 0 and average == pytest.approx(log_prob / round(log_prob / average), abs=1e-3)
               and perplexity == pytest.approx(2.718281828 ** -average, rel=1e-3) for log_prob, average, perplexity in scores)
    assert metrics["log_prob"] == pytest.approx(sum(s[0] for s in scores), abs=0.01)


def test_alignments_and_prefixes_from_files(trained, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("dreihundertzwölf\nelf\n\nsiebzehn\n")
    (tmp_path / "prefixes.txt").write_text("seven\n\n\none hundred\n")
    output = tmp_path / "out.txt"
    evaluate(compose_evaluate(trained, f"input={source}", f"output={output}", f"prefix={tmp_path / 'prefixes.txt'}",
                              "alignment=true"))
    translations = lines(output)
    assert translations[0].startswith("seven") and translations[3].startswith("one hundred") and translations[2] == ""
    alignments = lines(tmp_path / "out.txt.align")
    assert len(alignments) == 4 and alignments[2] == ""
    pairs = [tuple(map(int, pair.split("-"))) for pair in alignments[1].split()]
    assert [j for _, j in pairs] == list(range(len(pairs))) and all(0 <= i < 3 for i, _ in pairs)  # "elf": 3 pieces


def test_scoring_given_targets_of_raw_text_and_int8_decoding(trained, tmp_path):
    (tmp_path / "src.txt").write_text("elf\nzwölf\n")
    (tmp_path / "tgt.txt").write_text("eleven\ntwelve\n")
    result = subprocess.run(
        script_command("evaluate.py", f"ckpt_path={trained}", "device=cpu", f"input={tmp_path / 'src.txt'}",
                       "score_targets=true", f"targets={tmp_path / 'tgt.txt'}"),
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [len(line.split("\t")) for line in result.stdout.splitlines()] == [3, 3]
    metrics = evaluate(compose_evaluate(trained, "quantize=int8", "decode.beam_size=2"))
    assert metrics["quantize"] == "int8" and Path(metrics["hypotheses"]).name == "last.test.beam2.lp1.int8.hyp"
