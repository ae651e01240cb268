"""Data: reading and validating corpora, tokenizers, length-bucketed batching, the DataModule.

Plain Python, torch, ``tokenizers`` and Lightning; no Hydra — callers pass plain values.

Its modules are imported one by one (``from seq2seq.data.tokenizer import TextTokenizer``): this package
imports none of them itself, so decoding, which needs the tokenizers and ``collate`` only, never loads
Lightning (``datamodule.py``) or ``num2words`` (``numbers.py``).

May import: nothing of ``seq2seq`` outside this package (not the models, not training, not inference).
"""
