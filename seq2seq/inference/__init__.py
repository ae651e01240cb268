"""Inference: putting a trained model to work.

    translator.py   the Python API: Translator.from_checkpoint(...).translate(...) / .score(...)
    decoding.py     Decoding, the one decoding path: validation, evaluate.py, the Translator, the service
    translation.py  Translation, the result of decoding one sentence
    text_encoding.py  raw text <-> token ids in one place (sources, targets, prefixes)
    length_batches.py  sentences grouped by length under a budget, then padded
    search.py       greedy and beam search as functions over a model (target prefixes)
    sampling.py     top-k and top-p sampling
    ensemble.py     several models decoding as one
    scoring.py      the log-probability of given targets (teacher forcing)
    quantize.py     int8 copies of a model for CPU decoding
    loading.py      checkpoints for decoding: rebuilding, averaging, the device, the output cap
    evaluation.py   evaluate(cfg): score a checkpoint on a split (evaluate.py)
    raw_text.py     evaluate.py input=...: translate or score raw text
    text_io.py      reading input lines, writing translations, n-best lists, alignments, scores
    metrics.py      corpus BLEU, chrF (sacreBLEU), exact match, token and character error rates
    figures.py      attention heatmaps and sample tables (TensorBoard)
    batching.py     dynamic batching: concurrent requests' sentences decoded together (the service)
    service.py      serve.py's HTTP service (Starlette on uvicorn) and its page, static/index.html
    serve_process.py  serve.py in a child process, for benchmarks and tests that act as its clients

May import: ``seq2seq.models``, ``seq2seq.data`` and the shared top-level modules (``decode_options``,
``config``, ``config_checks``, ``checkpoint``). Never ``seq2seq.training``: a checkpoint is read as plain tensors and
values, so decoding needs no LightningModule.
"""
