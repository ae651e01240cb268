"""seq2seq: attention-based RNN encoder-decoders, trained with Lightning and configured with Hydra.

Packages, and what each may import (``tests/unit/test_layout.py`` checks it):

    models/      the network, plain nn.Modules             -> nothing of seq2seq
    data/        corpora, tokenizers, batches, DataModule   -> nothing of seq2seq
    inference/   search, translation, evaluation, metrics   -> models, data, shared modules
    training/    LightningModule, callbacks, train(cfg)     -> models, data, inference, shared modules
    export/      ONNX graphs of a trained model (export.py) -> models, data, inference, runtime, shared modules
    runtime/     translating in onnxruntime, without torch  -> only seq2seq modules that import no torch

``from seq2seq import Translator`` is the Python API (``seq2seq/inference/translator.py``). The shared
modules at the top: ``decode_options`` (every decoding option, its default and its check, once),
``config`` (the Hydra schemas), ``config_checks`` (values that cannot
work, refused before any data is read), ``checkpoint`` (reading a checkpoint safely) and ``cli`` (how the
entry points report errors; it may also import training, for the ways a run stops) and ``commands`` (the
console commands and ``python -m seq2seq``, run through ``__main__``: they import training and inference
when a command runs).

Shape legend used in every docstring and comment of the package:

    B  batch size             S  source length (padded)     T  target length (padded)
    E  embedding size         H  hidden size per direction  D  directions (1 or 2)
    L  number of layers       V  vocabulary size            K  beam size
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports it on first use
    from seq2seq.inference.translator import Translator

__version__ = "0.1.0"

__all__ = ["Translator"]


def __getattr__(name: str):
    # ``from seq2seq import Translator`` without importing torch and Lightning for ``import seq2seq.config``.
    if name == "Translator":
        from seq2seq.inference.translator import Translator

        return Translator
    raise AttributeError(f"module 'seq2seq' has no attribute {name!r}")
