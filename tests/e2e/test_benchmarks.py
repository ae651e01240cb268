"""The benchmark scripts run end to end and print one JSON object each (their figures are not asserted)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq.checkpoint import read_checkpoint
from seq2seq.training.run import train
from tests.e2e.conftest import REPO, compose_train, tiny_overrides

pytestmark = pytest.mark.slow


def data_overrides(tmp_path) -> list[str]:
    """tiny_overrides less output_dir, which the benchmarks set themselves."""
    return [o for o in tiny_overrides(tmp_path) if not o.startswith("output_dir=")]


def run_benchmark(script: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--threads", "1", *args],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_train_speed_prints_its_figures(tmp_path):
    report = run_benchmark("train_speed.py", "--steps", "4", "--warmup", "1", "--block", "2",
                           *data_overrides(tmp_path), "optim.scheduler=cosine")
    assert report["benchmark"] == "train" and report["steps"] == 4
    assert report["tgt_tokens_per_sec"] > 0 and report["sentences_per_sec"] > 0
    assert report["tgt_tokens_per_sec_min"] <= report["tgt_tokens_per_sec"] <= report["tgt_tokens_per_sec_max"]
    assert report["threads"] == 1 and report["device"] == "cpu"


def test_train_speed_profile_prints_the_costliest_operators(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "train_speed.py"), "--threads", "1",
                             "--steps", "2", "--warmup", "1", "--block", "1", "--profile", *data_overrides(tmp_path)],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["steps"] == 2
    assert "Self CPU" in result.stderr and "aten::addmm" in result.stderr and "Input Shapes" in result.stderr


def test_decode_speed_uses_the_checkpoints_model_whatever_the_overrides(tmp_path):
    train(compose_train(tiny_overrides(tmp_path) + ["trainer.max_epochs=1", "test_after_training=false"]))
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    trained_size = sum(value.numel() for name, value in read_checkpoint(checkpoint).state_dict.items()
                       if name.startswith("model."))
    # The overrides describe another model size: the checkpoint's own settings must win.
    report = run_benchmark("decode_speed.py", "--ckpt", str(checkpoint), "--repeats", "1", "--max-length", "20",
                           "--int8", "--write-hypotheses", str(tmp_path / "hyps"),
                           *data_overrides(tmp_path), "model.hidden_size=32")
    assert report["parameters"] == trained_size
    assert report["sentences"] == 20
    assert report["greedy_sentences_per_sec"] > 0 and report["beam5_sentences_per_sec"] > 0
    # --int8: the int8 copy timed and scored in the same run, its outputs kept beside the fp32 ones.
    assert report["int8_beam5_sentences_per_sec"] > 0 and "int8_beam5_bleu" in report and "beam5_bleu" in report
    for name in ("fp32_greedy", "fp32_beam5", "int8_greedy", "int8_beam5"):
        assert len((tmp_path / "hyps" / f"{name}.hyp").read_text().splitlines()) == 20


def test_learning_curve_reports_validation_every_k_steps_and_the_final_test_scores(tmp_path):
    scorer = f"{sys.executable} -c \"import json, sys; print(json.dumps({{'lines': len(open(sys.argv[1]).readlines())}}))\" {{hyp}}"
    report = run_benchmark("learning_curve.py", "--steps", "6", "--eval-every", "3", "--seeds", "1", "2",
                           "--length-penalties", "0", "0.6", "--output-dir", str(tmp_path / "curves"),
                           "--score-command", scorer, "--", *data_overrides(tmp_path), "model.init=xavier")
    assert report["benchmark"] == "learning_curve" and report["seeds"] == [1, 2]
    for seed, run in zip((1, 2), report["runs"]):
        assert [row["step"] for row in run["validation"]] == [3, 6]  # optimizer steps done, not TensorBoard's
        assert all(row["loss"] > 0 and row["bleu"] is not None and row["train_loss"] > 0 for row in run["validation"])
        assert read_checkpoint(tmp_path / "curves" / f"seed{seed}" / "checkpoints" / "last.ckpt").global_step == 6
        assert [row["length_penalty"] for row in run["test"]] == [0.0, 0.6]
        for row in run["test"]:
            assert row["external"] == {"lines": 20}  # the scorer saw the whole test split's hypotheses
    # Different seeds, different runs; the mean is over both.
    first, second = (run["validation"][-1]["loss"] for run in report["runs"])
    assert first != second
    assert report["mean"]["validation"][-1]["loss"] == pytest.approx((first + second) / 2)
    assert report["mean"]["test"][0]["bleu_each"] == [run["test"][0]["bleu"] for run in report["runs"]]


def test_init_signal_shows_the_schemes_apart(tmp_path):
    report = run_benchmark("init_signal.py", "--variants", "model.init=pytorch",
                           "model.init=uniform model.init_range=0.5 model.embedding_init_std=0.1", "--",
                           *data_overrides(tmp_path))
    pytorch, wide = report["variants"].values()
    assert pytorch["src_embedding_rms"] == pytest.approx(1.0, rel=0.2)  # nn.Embedding's N(0, 1)
    assert wide["src_embedding_rms"] == pytest.approx(0.1, rel=0.2)
    assert wide["attentional_rms"] > pytorch["attentional_rms"]


def test_data_scale_reports_preprocessing_the_warm_start_and_each_ddp_rank(tmp_path):
    tiny_model = ["model.hidden_size=16", "model.encoder_hidden_size=8", "model.src_embedding_dim=8",
                  "model.tgt_embedding_dim=8", "data.batch_size=16"]
    report = run_benchmark("data_scale.py", "--pairs", "500", "--work", str(tmp_path / "work"), "--ddp",
                           "--ddp-steps", "2", *tiny_model)
    assert report["benchmark"] == "data_scale" and report["pairs"] == 500 == report["kept_pairs"]
    assert report["preprocess"]["seconds"] > 0 and report["cache_mb"] > 0
    assert report["warm_run"]["to_first_step_s"] < report["warm_run"]["wall_s"]
    assert [p["process"] for p in report["ddp_cpu"]["processes"]].count("rank") == 2
    assert all(p["uss_mb"] > 0 for p in report["ddp_cpu"]["processes"])
    assert report["sampler"]["batch_size=64"]["batches_per_rank"] > 0


@pytest.mark.skipif(importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("starlette") is None,
                    reason="the service needs the serve extra: pip install -e '.[serve]' (.ci/run installs it)")
def test_serve_load_runs_both_modes_and_checks_every_answer(tmp_path):
    source = tmp_path / "sentences.txt"
    source.write_text("zweiundvierzig\nelf\ndreihundertzwölf\nsieben\nachtzehn\n")
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "serve_load.py"), "--ckpt",
                             str(REPO / "tests" / "fixtures" / "numbers_tiny_v1.ckpt"), "--source", str(source),
                             "--clients", "3", "--requests", "2", "--threads", "1"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["benchmark"] == "serve_load" and report["all_answered_once"]
    assert report["answers_differing_between_modes"] == 0 and report["device"] == "cpu"
    for mode, max_batch_size in (("batched", 32), ("unbatched", 1)):
        run = report[mode]
        assert run["answered"] == run["requests"] == 6 and run["exit_code"] == 0
        assert run["max_batch_size"] == max_batch_size and run["latency_p50_ms"] <= run["latency_p99_ms"]
    assert report["unbatched"]["server_batches"] == 6  # one sentence per batch without batching


FAKE_ONMT = '''#!{python}
"""A stand-in for OpenNMT-py's {name}: the arguments side_by_side.py passes, log lines in OpenNMT-py's format."""
import datetime, sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
if "{name}" == "onmt_train":
    steps, every = int(args["-train_steps"]), int(args["-report_every"])
    start = datetime.datetime(2026, 1, 1, 12, 0, 0)
    for step in range(every, steps + 1, every):  # 4 steps/s
        at = (start + datetime.timedelta(seconds=step / 4)).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
        print(f"[{{at}} INFO] Step {{step}}/{{steps:>5}}; acc: 50.0; ppl: 2.0", file=sys.stderr)
    for step in range(int(args["-save_checkpoint_steps"]), steps + 1, int(args["-save_checkpoint_steps"])):
        open(args["-save_model"] + f"_step_{{step}}.pt", "w").write("weights")
    open(args["-save_model"] + ".args", "w").write(" ".join(sys.argv[1:]))
elif "{name}" == "onmt_translate":  # "translates" by copying the source characters
    assert args["-beam_size"] in ("1", "5") and args["-length_penalty"] == "none"
    open(args["-output"], "w").write(open(args["-src"]).read())
'''


def test_side_by_side_times_both_whole_loops_and_scores_both_outputs_alike(tmp_path):
    onmt = tmp_path / "onmt-bin"
    onmt.mkdir()
    for name in ("onmt_build_vocab", "onmt_train", "onmt_translate"):
        (onmt / name).write_text(FAKE_ONMT.format(python=sys.executable, name=name))
        (onmt / name).chmod(0o755)
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "side_by_side.py"), "--onmt", str(onmt), "--task", "short",
         "--task-size", "600", "20", "30", "--steps", "50", "--from-step", "25", "--seeds", "3", "--beams", "5", "1",
         "--checkpoint-every", "25", "--curve-split", "val",
         "--output-dir", str(tmp_path / "out"), "--onmt-option", "bucket_size=123", "model.hidden_size=16",
         "model.encoder_hidden_size=8", "model.src_embedding_dim=8", "model.tgt_embedding_dim=8", "data.batch_size=16"],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    ours, onmt_run = report["runs"][0]["ours"], report["runs"][0]["opennmt"]
    assert read_checkpoint(Path(ours["checkpoint"])).global_step == 50  # train.py itself ran the 50 steps
    assert onmt_run["steps_per_s_whole_run"] == 4.0  # read back from the log lines' times
    assert " -bucket_size 123" in (tmp_path / "out" / "seed3" / "onmt" / "model.args").read_text()
    assert report["onmt_options"] == ["bucket_size=123"]
    assert ours["steps_per_s_whole_run"] > 0
    references = (tmp_path / "out" / "task" / "test.tgt").read_text(encoding="utf-8").splitlines()
    copies = (tmp_path / "out" / "task" / "test.chars").read_text(encoding="utf-8").splitlines()
    wrong = sum(copy.split() != reference.split() for copy, reference in zip(copies, references))
    for search in ("beam5", "greedy"):
        assert onmt_run[f"{search}_sentence_error_rate"] == round(100 * wrong / len(references), 2)
        assert 0 <= ours[f"{search}_sentence_error_rate"] <= 100 and 0 <= ours[f"{search}_symbol_error_rate"]
        hypotheses = tmp_path / "out" / "seed3" / f"ours.test.{search}.hyp"
        assert len(hypotheses.read_text(encoding="utf-8").splitlines()) == 30
    # --checkpoint-every 25 --curve-split val: both sides' weights of steps 25 and 50 decoded the validation split.
    curve = report["runs"][0]["curve"]
    assert [row["step"] for row in curve] == [25, 50]
    assert read_checkpoint(tmp_path / "out" / "seed3" / "ours" / "checkpoints" / "step25.ckpt").global_step == 25
    assert all(0 <= row[side]["greedy_sentence_error_rate"] <= 100 for row in curve for side in ("ours", "opennmt"))
    basis = report["ratio_of"]  # side by side when the two logs overlapped in time, else the whole runs
    assert report["ours_over_opennmt_steps_per_s"] == pytest.approx(
        report["mean"]["ours"][basis]["mean"] / report["mean"]["opennmt"][basis]["mean"], rel=1e-2)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None,
                    reason="counts a CUDA benchmark's failure, which needs a machine without a GPU")
def test_gpu_checks_runs_the_steps_named_and_counts_the_failed_ones(tmp_path):
    """Without a GPU the CUDA tests skip (the step passes) and a CUDA benchmark fails: one failed step, exit 1."""
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_checks.sh"), str(tmp_path), str(tmp_path),
                             str(tmp_path / "out")], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "ONLY": "pytest train_speed"})
    assert result.returncode == 1, result.stderr[-3000:]
    assert re.search(r"^== pytest: ok", result.stderr, re.M)
    assert re.search(r"^== train_speed: FAILED", result.stderr, re.M)
    assert "== smoke" not in result.stderr and "== decode_speed" not in result.stderr  # not named in ONLY
    assert "skipped" in (tmp_path / "out" / "pytest.txt").read_text()
    assert "torch" in (tmp_path / "out" / "gpu.txt").read_text()
