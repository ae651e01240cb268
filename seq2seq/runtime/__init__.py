"""Translating without PyTorch: an exported model (``export.py``) in onnxruntime.

    from seq2seq.runtime import OnnxTranslator
    OnnxTranslator.from_dir("exported/").translate(["zweiundvierzig"], beam_size=5)

    manifest.py     manifest.json: the folder's graphs, tokenizers, settings and checksums
    onnx_model.py   OnnxModel (encode, step_log_probs on numpy arrays) and OnnxEnsemble
    search.py       greedy and beam search in numpy: seq2seq.inference.search's rules, step for step
    translator.py   OnnxTranslator: the same keywords and results as seq2seq.Translator

Needs only ``numpy``, ``onnxruntime`` and ``tokenizers`` (docs/export.md, "Installing only the runtime");
``tests/unit/test_runtime_without_torch.py`` runs it where ``import torch`` fails.

May import: numpy, onnxruntime, tokenizers, and of ``seq2seq`` only modules that import no torch:
``seq2seq.decode_options``, ``seq2seq.data.tokenizer``, ``seq2seq.data.atomic``,
``seq2seq.inference.translation``, ``seq2seq.inference.text_encoding``, ``seq2seq.inference.text_translator``
and ``seq2seq.inference.length_batches``.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ imports it (and onnxruntime) on first use
    from seq2seq.runtime.translator import OnnxTranslator

__all__ = ["OnnxTranslator"]


def __getattr__(name: str):
    # seq2seq.runtime.search and .manifest need numpy alone: onnxruntime is imported only for the translator.
    if name == "OnnxTranslator":
        from seq2seq.runtime.translator import OnnxTranslator

        return OnnxTranslator
    raise AttributeError(f"module 'seq2seq.runtime' has no attribute {name!r}")
