"""Translating with an exported model, without PyTorch: :class:`OnnxTranslator`.

    from seq2seq.runtime import OnnxTranslator
    translator = OnnxTranslator.from_dir("exported/", threads=2)
    results = translator.translate(["zweiundvierzig", "elf"], beam_size=5, n_best=2)
    results[0].text, results[0].score, results[0].nbest, results[0].alignment

The same keywords and the same results (:class:`~seq2seq.inference.translation.Translation`) as
:meth:`seq2seq.Translator.translate`, and the same path inside: text encoded by
:class:`~seq2seq.inference.text_encoding.TextEncoding`, sentences grouped by
:func:`~seq2seq.inference.length_batches.length_batches`, searched by :mod:`seq2seq.runtime.search`, every
result back in its input's place. ``evaluate.py runtime=onnx`` and ``serve.py runtime=onnx`` decode through it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional, Union

from seq2seq.data.tokenizer import TextTokenizer
from seq2seq.decode_options import DecodeOptions
from seq2seq.inference.length_batches import decode_in_batches
from seq2seq.inference.text_encoding import TextEncoding
from seq2seq.inference.text_translator import LoadedCheckpoint, TextTranslator
from seq2seq.inference.translation import EMPTY, Translation, make_translation
from seq2seq.runtime.manifest import Manifest
from seq2seq.runtime.onnx_model import OnnxEnsemble, OnnxModel
from seq2seq.runtime.search import Hypotheses, Prefix, search, supported


class OnnxDecoding:
    """:class:`seq2seq.inference.decoding.Decoding`'s decoding half over an exported model: ``capped``, ``search``
    and ``translate_ids``, with the same arguments and results."""

    def __init__(self, model, src_tokenizer: TextTokenizer, tgt_tokenizer: TextTokenizer,
                 output_cap: Optional[int] = None) -> None:
        self.model = model
        self.src_tokenizer = src_tokenizer
        self.tgt_tokenizer = tgt_tokenizer
        self.output_cap = output_cap

    def supported(self, options: DecodeOptions) -> DecodeOptions:
        """``options``, or a DecodeOptionError naming what this runtime cannot do (sampling)."""
        return supported(options)

    def capped(self, options: DecodeOptions) -> DecodeOptions:
        """``options`` with ``max_length`` filled in from the output cap when it is None."""
        return options.capped(self.output_cap)

    def search(self, src, src_lengths, options: DecodeOptions, prefix: Optional[Prefix] = None) -> Hypotheses:
        return search(self.model, src, src_lengths, self.capped(options), prefix)

    def translate_ids(self, src_ids: Sequence[list[int]], options: DecodeOptions, *, batch_size: int,
                      max_tokens: Optional[int], prefixes: Optional[Sequence[list[int]]] = None,
                      on_batch: Optional[Callable[[int], None]] = None) -> list[Translation]:
        """Translations of ``src_ids`` in their order, as ``Decoding.translate_ids``."""
        supported(options)

        def decode_batch(chunk: list[int], src, src_lengths) -> list[Translation]:
            prefix = None
            if prefixes is not None and any(prefixes[i] for i in chunk):
                prefix = Prefix.from_lists([prefixes[i] for i in chunk])
            hypotheses = self.search(src, src_lengths, options, prefix)
            return [make_translation(hypotheses.tokens[row], hypotheses.scores[row], hypotheses.nbest[row],
                                     hypotheses.attention[row].astype(float).tolist(), src_ids[index],
                                     self.src_tokenizer, self.tgt_tokenizer) for row, index in enumerate(chunk)]

        return decode_in_batches(src_ids, batch_size, max_tokens, decode_batch, EMPTY, on_batch)

    def score_ids(self, *args, **kwargs):
        raise ValueError("score_targets: scoring given targets (teacher forcing) needs the PyTorch runtime "
                         "(runtime=torch ckpt_path=...)")


class OnnxTranslator(TextTranslator):
    """An exported model (or ensemble) in onnxruntime sessions, and its tokenizers: ``text`` and ``decoding``
    as a :class:`seq2seq.Translator` has them, so the service and ``evaluate.py`` take either; ``translate`` is
    :meth:`~seq2seq.inference.text_translator.TextTranslator.translate`, the same method as the Translator's."""

    def __init__(self, model, src_tokenizer: TextTokenizer, tgt_tokenizer: TextTokenizer,
                 output_cap: Optional[int], lowercase: bool, max_input_tokens: int, manifest: Manifest,
                 providers: Sequence[str]) -> None:
        self.text = TextEncoding(src_tokenizer, tgt_tokenizer, lowercase, max_input_tokens)
        self.decoding = OnnxDecoding(model, src_tokenizer, tgt_tokenizer, output_cap)
        self.manifest = manifest
        self.device = f"onnxruntime ({', '.join(providers)})"
        self.checkpoints = tuple(LoadedCheckpoint.from_record(recorded) for recorded in manifest.checkpoints)

    @classmethod
    def from_dir(cls, model_dir: Union[str, Path], *, threads: Optional[int] = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> "OnnxTranslator":
        """Load a folder written by ``export.py``; ``threads`` per operator (None: one per core)."""
        directory = Path(model_dir)
        manifest = Manifest.read(directory)
        spinning = len(manifest.members) == 1  # an ensemble's decoders take turns: none may hold a core waiting
        members = [OnnxModel(directory / m.encoder, directory / m.decoder_step, threads, providers, spinning)
                   for m in manifest.members]
        model = members[0] if len(members) == 1 else OnnxEnsemble(members, manifest.ensemble_combine)
        return cls(model, TextTokenizer.load(directory / manifest.src_tokenizer),
                   TextTokenizer.load(directory / manifest.tgt_tokenizer), manifest.output_cap, manifest.lowercase,
                   manifest.max_input_tokens, manifest, providers)
