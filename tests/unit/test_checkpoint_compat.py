"""A checkpoint written by an earlier version of the project still loads and decodes to what it did then."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seq2seq.inference.translator import Translator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECORDED = json.loads((FIXTURES / "numbers_tiny_v1.json").read_text())


@pytest.mark.parametrize("recorded", RECORDED["decodes"], ids=lambda r: f"beam{r['decode']['beam_size']}")
def test_a_checkpoint_from_before_the_package_move_decodes_as_it_did(recorded):
    translator = Translator.from_checkpoint(FIXTURES / "numbers_tiny_v1.ckpt", device="cpu")
    results = translator.translate(RECORDED["inputs"], **recorded["decode"], batch_size=4)
    for result, expected in zip(results, recorded["translations"], strict=True):
        assert result.text == expected["text"]
        assert result.score == pytest.approx(expected["score"], abs=1e-5)
        assert [text for text, _ in result.nbest] == [text for text, _ in expected["nbest"]]
