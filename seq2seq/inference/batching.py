"""Dynamic batching: the sentences of concurrent requests decoded together, each result back to its caller.

One worker thread owns the model. It takes the oldest waiting request, then every request that arrives
within ``batch_timeout`` seconds with the same decoding options, until the batch holds ``max_batch_size``
sentences; decodes them in one call of the decoding path (``Decoding.translate_ids``, which sorts them by
length); and hands each request its own results, in its own order, through a
``concurrent.futures.Future``. Requests whose options differ from the batch's wait for the next batch, in
arrival order. With ``max_batch_size=1`` every sentence is searched alone (a request of several sentences
is one round, searched sentence by sentence): no batching, the baseline ``benchmarks/serve_load.py``
compares with.

A request is never split across callers, lost or answered twice: each owns one future, set exactly once,
with its results or with the error its decoding raised. ``close()`` answers every request already
submitted, then stops the thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Optional

from seq2seq.decode_options import DEFAULT_MAX_TOKENS, DecodeOptions
from seq2seq.inference.translation import Translation
from seq2seq.inference.translator import Translator

log = logging.getLogger(__name__)

_STOP = object()


@dataclass
class _Request:
    ids: list[list[int]]  # source ids per sentence
    prefixes: list[list[int]] | None
    options: DecodeOptions
    future: Future


class BatchingTranslator:
    """``submit(sentences, options)`` from any thread -> a Future of the sentences' translations."""

    def __init__(self, translator: Translator, max_batch_size: int = 32, batch_timeout: float = 0.01,
                 max_tokens: Optional[int] = DEFAULT_MAX_TOKENS) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size: must be at least 1, got {max_batch_size}")
        if batch_timeout < 0:
            raise ValueError(f"batch_timeout: must be >= 0 seconds, got {batch_timeout}")
        self.translator = translator
        self.max_batch_size = max_batch_size
        self.batch_timeout = batch_timeout
        self.max_tokens = max_tokens  # padded source positions per decoding batch
        self._queue: queue.Queue = queue.Queue()
        self._waiting: deque[_Request] = deque()  # taken from the queue, left for a later batch
        self._closed = False
        self.batches = 0  # decoding calls made, and the sentences in them: for the log and the tests
        self.batched_sentences = 0
        self.pending_sentences = 0  # submitted and not yet answered: the queue's depth, for /health
        self._pending_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="seq2seq-batching", daemon=True)
        self._thread.start()

    def submit(self, sentences: list[str], options: DecodeOptions, prefixes: list[str] | None = None) -> Future:
        """Encode now (in the caller's thread), decode in the next batch that has room."""
        future: Future = Future()
        if self._closed:
            future.set_exception(RuntimeError("the translator is shutting down"))
            return future
        ids = self.translator.text.sources(sentences, "request")
        encoded_prefixes = self.translator.text.prefixes(prefixes, len(sentences))
        self._count_pending(len(ids))
        future.add_done_callback(lambda _: self._count_pending(-len(ids)))
        self._queue.put(_Request(ids, encoded_prefixes, options, future))
        return future

    def close(self) -> None:
        """Answer everything submitted so far, then stop the worker thread."""
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()

    def _count_pending(self, sentences: int) -> None:
        with self._pending_lock:
            self.pending_sentences += sentences

    # ------------------------------------------------------------------------------------ the worker
    def _next(self, timeout: float | None) -> object:
        if self._waiting:
            return self._waiting.popleft()
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def _run(self) -> None:
        stopping = False
        while True:
            first = self._next(timeout=None if not stopping else 0)
            if first is _STOP:
                stopping = True
                continue
            if first is None:  # stopping, and nothing is left
                return
            batch, size = [first], len(first.ids)
            deadline = time.monotonic() + self.batch_timeout
            deferred = []
            while size < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 and not self._waiting and self._queue.empty():
                    break
                item = self._next(timeout=max(remaining, 0.0))
                if item is None:
                    break
                if item is _STOP:
                    stopping = True
                    continue
                if item.options != first.options:  # another kind of search: a later batch
                    deferred.append(item)
                    continue
                if size + len(item.ids) > self.max_batch_size:  # no room: it starts the next batch
                    deferred.append(item)
                    break
                batch.append(item)
                size += len(item.ids)
            self._waiting.extendleft(reversed(deferred))  # first in the next rounds, in arrival order
            self._decode(batch)

    def _decode(self, batch: list[_Request]) -> None:
        options = batch[0].options
        ids = [sentence for request in batch for sentence in request.ids]
        prefixes = None
        if any(request.prefixes for request in batch):
            prefixes = [p for r in batch for p in (r.prefixes or [[] for _ in r.ids])]
        try:
            results = self.translator.decoding.translate_ids(ids, options, batch_size=self.max_batch_size,
                                                             max_tokens=self.max_tokens, prefixes=prefixes)
        except Exception as error:  # noqa: BLE001 - each caller gets it; the service answers 500
            log.exception("decoding a batch of %d sentences failed", len(ids))
            for request in batch:
                request.future.set_exception(error)
            return
        self.batches += 1
        self.batched_sentences += len(ids)
        start = 0
        for request in batch:
            translations: list[Translation] = results[start : start + len(request.ids)]
            start += len(request.ids)
            request.future.set_result(translations)
