"""``from seq2seq import Translator`` loads what decoding needs and nothing of training or plotting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "numbers_tiny_v1.ckpt"
TRAINING_ONLY = ("lightning", "pytorch_lightning", "matplotlib", "tensorboard", "rich", "num2words", "hydra",
                 "omegaconf")

PROGRAM = f"""
import json, sys
from seq2seq import Translator
translator = Translator.from_checkpoint({str(FIXTURE)!r}, device="cpu")
text = translator.translate(["zweiundvierzig"], beam_size=2)[0].text
score = translator.score(["elf"], ["eleven"])[0].perplexity
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({TRAINING_ONLY!r}))
print(json.dumps({{"text": text, "loaded": loaded}}))
"""


def test_translating_from_python_loads_no_training_or_plotting_library():
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["text"] == "forty-two"
    assert result["loaded"] == [], f"imported for translation only: {result['loaded']}"


def test_the_translator_is_a_name_type_checkers_can_see():
    source = (REPO / "seq2seq" / "__init__.py").read_text()
    assert "if TYPE_CHECKING:" in source and "from seq2seq.inference.translator import Translator" in source
    assert (REPO / "seq2seq" / "py.typed").exists()
    import seq2seq
    from seq2seq.inference.translator import Translator

    assert seq2seq.Translator is Translator
