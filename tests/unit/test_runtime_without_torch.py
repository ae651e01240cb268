"""The ONNX runtime needs no PyTorch: it translates in a process where ``import torch`` fails, and gives the
PyTorch Translator's results there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="the ONNX tests need the onnx extra: pip install -e '.[onnx]'")

from seq2seq import Translator  # noqa: E402
from seq2seq.export.exporter import export_checkpoints  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "numbers_tiny_v1.ckpt"
SOURCES = ["zweiundvierzig", "elf", "", "dreihundertzwölf", "neunhundertneunundneunzig"]

CHILD = """
import json, sys
from seq2seq.runtime import OnnxTranslator
translator = OnnxTranslator.from_dir(sys.argv[1], threads=1)
results = {
    "greedy": [t.to_dict() for t in translator.translate(SOURCES, beam_size=1)],
    "beam": [t.to_dict() for t in translator.translate(SOURCES, beam_size=5, n_best=2)],
    "modules": sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "lightning", "matplotlib")),
}
print(json.dumps(results))
"""


def test_the_runtime_translates_where_torch_cannot_be_imported(tmp_path):
    model_dir = tmp_path / "exported"
    export_checkpoints([FIXTURE], model_dir)
    blocker = tmp_path / "blocked" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is not installed here')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), str(REPO)])}
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert check.returncode != 0 and "torch is not installed here" in check.stderr  # the blocker works
    code = f"SOURCES = {SOURCES!r}\n" + textwrap.dedent(CHILD)
    child = subprocess.run([sys.executable, "-c", code, str(model_dir)], env=env, capture_output=True, text=True,
                           cwd=tmp_path, timeout=120)
    assert child.returncode == 0, child.stderr
    results = json.loads(child.stdout)
    assert results["modules"] == []
    translator = Translator.from_checkpoint(FIXTURE, device="cpu")
    for name, options in (("greedy", dict(beam_size=1)), ("beam", dict(beam_size=5, n_best=2))):
        expected = [t.to_dict() for t in translator.translate(SOURCES, **options)]
        assert [r["text"] for r in results[name]] == [e["text"] for e in expected]
        assert [[n for n, _ in r["nbest"]] for r in results[name]] == [[n for n, _ in e["nbest"]] for e in expected]
        assert [r["score"] for r in results[name]] == pytest.approx([e["score"] for e in expected], abs=1e-4)
        assert [r["alignment"] for r in results[name]] == [e["alignment"] for e in expected]
