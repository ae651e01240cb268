"""Inference: putting a trained model to work.

    search.py       greedy and beam search as functions over a model
    translator.py   rebuilding a model from a checkpoint, translating batches and raw text
    evaluation.py   evaluate(cfg): score a checkpoint on a split, or translate a file (evaluate.py)
    metrics.py      corpus BLEU, chrF and exact match (sacreBLEU)
    figures.py      attention heatmaps and sample tables (TensorBoard)

May import: ``seq2seq.models``, ``seq2seq.data`` and the shared top-level modules (``config``,
``config_checks``, ``checkpoint``). Never ``seq2seq.training``: a checkpoint is read as plain tensors and
values, so decoding needs no LightningModule.
"""
