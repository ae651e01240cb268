"""export.py, then evaluate.py and serve.py with runtime=onnx: the real scripts, and the PyTorch runtime's answers."""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch

from seq2seq import Translator
from seq2seq.inference.serve_process import ServeProcess
from seq2seq.training.run import train
from tests.e2e.conftest import compose_train, script_command, tiny_overrides

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                       reason="the ONNX tests need the onnx extra: pip install -e '.[onnx]' (.ci/run installs it)"),
]

ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}
SENTENCES = ["zweiundvierzig", "elf", "", "dreihundertzwölf", "neunhundertneunundneunzig", "sieben"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(compose_train(tiny_overrides(root) + ["trainer.max_epochs=1", "test_after_training=false"]))
    finally:
        torch.set_num_threads(previous)
    return root / "run" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def exported(trained) -> Path:
    output = trained.parent.parent / "exported"
    result = subprocess.run(script_command("export.py", f"ckpt_path={trained}", f"output_dir={output}"),
                            capture_output=True, text=True, env=ONE_THREAD, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "agree with PyTorch to" in result.stderr
    return output


def run(script: str, *overrides: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(script_command(script, *overrides), input=stdin, capture_output=True, text=True,
                          env=ONE_THREAD, timeout=300)


def test_export_writes_the_graphs_tokenizers_and_manifest(exported):
    names = {path.name for path in exported.iterdir()}
    assert {"encoder.onnx", "decoder_step.onnx", "src_tokenizer.json", "tgt_tokenizer.json", "manifest.json"} <= names


@pytest.mark.parametrize("beam_size", [1, 5])
def test_evaluate_scores_the_split_with_either_runtime_alike(trained, exported, beam_size):
    torch_run = run("evaluate.py", f"ckpt_path={trained}", "device=cpu", f"decode.beam_size={beam_size}")
    onnx_run = run("evaluate.py", "runtime=onnx", f"model_dir={exported}", f"decode.beam_size={beam_size}")
    assert torch_run.returncode == 0 and onnx_run.returncode == 0, onnx_run.stderr
    search = "beam1" if beam_size == 1 else "beam5.lp1"
    torch_metrics = json.loads((trained.parent.parent / "eval" / f"last.test.{search}.json").read_text())
    onnx_metrics = json.loads((exported / "eval" / f"last.test.{search}.onnx.json").read_text())
    assert Path(onnx_metrics["hypotheses"]).read_text() == Path(torch_metrics["hypotheses"]).read_text()
    assert onnx_metrics["bleu"] == torch_metrics["bleu"] and onnx_metrics["runtime"] == "onnx"
    assert "onnxruntime" in onnx_metrics["device"]


def test_evaluate_translates_raw_text_with_either_runtime_alike(trained, exported):
    text = "\n".join(SENTENCES) + "\n"
    torch_run = run("evaluate.py", f"ckpt_path={trained}", "device=cpu", "input=-", stdin=text)
    onnx_run = run("evaluate.py", "runtime=onnx", f"model_dir={exported}", "input=-", stdin=text)
    assert onnx_run.returncode == 0, onnx_run.stderr
    assert onnx_run.stdout == torch_run.stdout and len(onnx_run.stdout.split("\n")) == len(SENTENCES) + 1


@pytest.mark.parametrize("overrides, named", [
    (["runtime=onnx"], "model_dir: required with runtime=onnx"),
    (["model_dir=x"], "model_dir: an exported folder, decoded with runtime=onnx"),
    (["runtime=onnx", "model_dir=x", "quantize=int8"], "quantize: a PyTorch setting"),
    (["runtime=onnx", "model_dir=x", "score_targets=true"], "score_targets: scoring given targets"),
    (["runtime=tensorflow", "model_dir=x"], r"runtime: must be one of \['torch', 'onnx'\]"),
    (["runtime=onnx", "model_dir=does-not-exist"], r"model_dir: \S*/does-not-exist is not a folder"),
])
def test_runtime_settings_that_cannot_work_are_one_line_naming_the_key(tmp_path, overrides, named):
    result = subprocess.run(script_command("evaluate.py", *overrides, "input=-"), input="elf\n", capture_output=True,
                            text=True, cwd=tmp_path, env=ONE_THREAD, timeout=120)
    assert result.returncode == 1
    assert re.match(f"error: {named}", result.stderr.strip().splitlines()[-1]), result.stderr


def test_export_without_its_keys_or_into_a_full_folder_is_refused_in_one_line(trained, tmp_path):
    result = run("export.py", f"ckpt_path={trained}")
    assert result.returncode == 1 and "error: output_dir: required" in result.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    result = run("export.py", f"ckpt_path={trained}", f"output_dir={tmp_path / 'full'}")
    assert result.returncode == 1 and "exists and is not empty" in result.stderr.strip().splitlines()[-1]
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep"


@pytest.mark.skipif(importlib.util.find_spec("uvicorn") is None, reason="the service needs the serve extra")
def test_serve_with_the_onnx_runtime_answers_as_the_python_api(trained, exported, tmp_path):
    server = ServeProcess(["runtime=onnx", f"model_dir={exported}", "batch_timeout=0.05"], tmp_path / "serve.log",
                          cwd=tmp_path, timeout=120)
    try:
        def request(method, path, body=None):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
            connection.request(method, path, body=json.dumps(body).encode() if body else None,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, json.loads(response.read())

        status, answer = request("POST", "/translate", {"text": SENTENCES, "beam_size": 5, "n_best": 2})
        assert status == 200
        expected = Translator.from_checkpoint(trained, device="cpu").translate(SENTENCES, beam_size=5, n_best=2)
        for got, want in zip(answer["translations"], expected, strict=True):
            assert (got["text"], [n[0] for n in got["nbest"]]) == (want.text, [n[0] for n in want.nbest])
            assert got["score"] == pytest.approx(want.score, abs=1e-4)
        status, refused = request("POST", "/translate", {"text": "elf", "beam_size": 1, "sampling": "topk"})
        assert (status, refused["field"]) == (422, "sampling")
        status, health = request("GET", "/health")
        assert status == 200 and "onnxruntime" in health["device"] and health["checkpoints"] == [str(trained)]
    finally:
        assert server.stop() == 0
