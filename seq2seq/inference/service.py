"""The translation service: an HTTP endpoint in front of a Translator, batching concurrent requests.

    GET  /            the page (static/index.html): a text box, the translation, its n-best, the attention
    GET  /health      {"status": "ok", ...} once the model is loaded
    POST /translate   {"text": ["...", "..."] or "...", "beam_size": 5, "n_best": 1, ...}
                      -> {"translations": [{"text", "score", "nbest", "alignment", "attention",
                                            "source_pieces", "output_pieces"}, ...]}

Requests are checked before they reach the model; a bad one gets a 4xx answer with a JSON body naming the
field, ``{"error": "...", "field": "..."}``, and the server goes on serving. 400: a body that is not JSON, or
JSON nested too deeply, or holding a non-finite number (``NaN``, ``Infinity``, ``1e999``), or a string with an
unpaired surrogate escape (``"\ud800"``, which is no Unicode text). 422: a missing or empty ``text``, an
unknown field, or a decoding option of the wrong type or out of its range (the options' own check,
:class:`~seq2seq.decode_options.DecodeOptions`: integers too large for a 64-bit seed or length included).
413: more than ``max_sentences`` sentences, more than ``max_characters`` characters in one sentence or
prefix, or a body over ``max_body_bytes`` (read no further than that). A request may set any decoding option
and ``prefixes``; the others take the server's defaults (``decode.*`` of ``conf/serve.yaml``). A 5xx means
the server's own failure, never the client's.

Decoding runs in one worker thread (:mod:`seq2seq.inference.batching`); the event loop only parses,
checks and waits, so requests keep arriving while a batch decodes. uvicorn serves it: on SIGTERM or
Ctrl-C it stops accepting connections, waits for the requests in flight to be answered, then the worker
thread is closed and the process exits with status 0. There is no authentication: it binds to 127.0.0.1
by default (docs/service.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from seq2seq.decode_options import DecodeOptionError, DecodeOptions
from seq2seq.inference.batching import BatchingTranslator

log = logging.getLogger(__name__)

PAGE = Path(__file__).resolve().parent / "static" / "index.html"
FIELDS = ("text", "prefixes", *DecodeOptions.names())  # what a request may hold


@dataclass(frozen=True)
class RequestLimits:
    max_sentences: int = 64  # sentences in one request
    max_characters: int = 1000  # characters in one sentence
    max_body_bytes: int = 1_000_000  # the whole JSON body
    max_beam_size: int = 16  # a request's beam_size (and so n_best)


class RequestError(ValueError):
    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field = status, field


def parse_request(body: bytes, defaults: DecodeOptions, limits: RequestLimits,
                  supported: Callable[[DecodeOptions], DecodeOptions] = lambda options: options,
                  ) -> tuple[list[str], DecodeOptions, Any]:
    """A /translate body -> (sentences, options, prefixes); RequestError naming the field otherwise. ``supported``:
    the decoder's own refusals (the ONNX runtime does not sample), DecodeOptionError naming the option."""
    if len(body) > limits.max_body_bytes:
        raise RequestError(413, "body", f"the request body has {len(body)} bytes; at most {limits.max_body_bytes}")
    payload = _json(body)
    if not isinstance(payload, dict):
        raise RequestError(422, "body", "must be a JSON object, e.g. {\"text\": [\"...\"]}")
    unknown = sorted(set(payload) - set(FIELDS))
    if unknown:
        raise RequestError(422, unknown[0], f"unknown field; valid: {', '.join(FIELDS)}")
    text = payload.get("text")
    sentences = [text] if isinstance(text, str) else text
    if not isinstance(sentences, list) or not sentences or not all(isinstance(s, str) for s in sentences):
        raise RequestError(422, "text", "must be a non-empty string or a non-empty list of strings")
    if len(sentences) > limits.max_sentences:
        raise RequestError(413, "text", f"{len(sentences)} sentences; at most {limits.max_sentences} per request")
    _check_strings("text", sentences, limits)
    prefixes = payload.get("prefixes")
    if prefixes is not None:
        if not isinstance(prefixes, list) or len(prefixes) != len(sentences) or not all(isinstance(p, str)
                                                                                        for p in prefixes):
            raise RequestError(422, "prefixes", f"must be a list of {len(sentences)} strings, one per sentence")
        _check_strings("prefixes", prefixes, limits)
    settings = {name: payload[name] for name in DecodeOptions.names() if name in payload}
    if isinstance(settings.get("sampling"), str):
        _check_strings("sampling", [settings["sampling"]], limits)
    try:
        options = supported(DecodeOptions.from_mapping(settings, defaults))
    except DecodeOptionError as error:
        raise RequestError(422, error.option, str(error)) from None
    if options.beam_size > limits.max_beam_size:
        raise RequestError(422, "beam_size", f"at most {limits.max_beam_size}, got {options.beam_size}")
    return sentences, options, prefixes


def _json(body: bytes) -> Any:
    """The parsed body; 400 for what is not JSON, or not JSON this service can take."""

    def refuse_constant(name: str) -> None:
        raise RequestError(400, "body", f"not valid JSON: {name} is not a JSON number (JSON numbers are finite)")

    def finite(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):  # 1e999: valid JSON, but no float holds it
            raise RequestError(400, "body", f"the number {number[:40]} is too large for a float")
        return value

    try:
        return json.loads(body, parse_constant=refuse_constant, parse_float=finite)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RequestError(400, "body", f"not valid JSON: {error}") from None
    except RecursionError:
        raise RequestError(400, "body", "the JSON is nested too deeply; a request is an object of strings, "
                                        "numbers and lists of strings") from None


def _check_strings(field: str, strings: list[str], limits: RequestLimits) -> None:
    """Text the tokenizers can read: valid Unicode (JSON's \\u escapes can make unpaired surrogates, which are
    not) and at most ``max_characters`` characters each."""
    for index, string in enumerate(strings):
        where = f"{field} {index}" if field != "sampling" else field
        try:
            string.encode("utf-8")
        except UnicodeEncodeError as error:
            raise RequestError(400, field, f"{where} is not valid Unicode text: an unpaired surrogate "
                                           f"(\\u{ord(string[error.start]):04x}) at character {error.start}") from None
        if len(string) > limits.max_characters:
            raise RequestError(413, field, f"{where} has {len(string)} characters; at most {limits.max_characters}")


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body; 413 as soon as it is longer than ``limit`` bytes (the rest is not read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, "body", f"the request body has {int(declared)} bytes; at most {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise RequestError(413, "body", f"the request body has more than {limit} bytes; at most {limit}")
    return b"".join(chunks)


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII characters escaped: an error message may quote what the client sent, and what it sent
    may not be encodable as UTF-8."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def make_app(batching: BatchingTranslator, defaults: DecodeOptions, limits: RequestLimits) -> Starlette:
    translator = batching.translator

    async def page(request: Request) -> FileResponse:
        return FileResponse(PAGE, media_type="text/html")

    async def health(request: Request) -> JSONResponse:
        checkpoints = [str(c.path) for c in translator.checkpoints]
        return JSONResponse({"status": "ok", "checkpoints": checkpoints, "device": str(translator.device),
                             "max_batch_size": batching.max_batch_size, "batch_timeout": batching.batch_timeout,
                             "batches": batching.batches, "batched_sentences": batching.batched_sentences,
                             "pending_sentences": batching.pending_sentences,
                             "defaults": asdict(defaults), "limits": asdict(limits)})

    async def translate(request: Request) -> JSONResponse:
        try:
            sentences, options, prefixes = parse_request(await read_body(request, limits.max_body_bytes), defaults,
                                                         limits, translator.decoding.supported)
        except RequestError as error:
            return SafeJSONResponse({"error": str(error), "field": error.field}, status_code=error.status)
        future = batching.submit(sentences, options, prefixes)
        try:
            translations = await asyncio.wrap_future(future)
        except Exception as error:  # noqa: BLE001 - logged by the batcher; the caller gets a 500 naming it
            return JSONResponse({"error": f"decoding failed: {error}", "field": None}, status_code=500)
        return JSONResponse({"translations": [t.to_dict() for t in translations]})

    return Starlette(routes=[
        Route("/", page, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/translate", translate, methods=["POST"]),
    ])


# ---------------------------------------------------------------------------------------------- running
def serve(cfg) -> None:
    """``serve.py``: load the checkpoint(s), then serve until SIGTERM (exit 0) or Ctrl-C (130)."""
    import signal

    import uvicorn

    from seq2seq.config_checks import ConfigError, decode_options
    from seq2seq.decode_options import DecodeOptionError
    from seq2seq.inference.evaluation import load_translator

    check_serve_config(cfg)
    translator = load_translator(cfg)
    try:
        defaults = translator.decoding.supported(decode_options(cfg.decode))
    except DecodeOptionError as error:
        raise ConfigError(f"decode.{error.option}: {error.reason}") from None
    limits = RequestLimits(cfg.max_sentences, cfg.max_characters, cfg.max_body_bytes, cfg.max_beam_size)
    batching = BatchingTranslator(translator, cfg.max_batch_size, cfg.batch_timeout, cfg.max_tokens)
    log.info("serving %s on %s: batches of up to %d sentences, waiting up to %g s for them; no authentication",
             ", ".join(str(c.path) for c in translator.checkpoints), translator.device, cfg.max_batch_size,
             cfg.batch_timeout)
    server = uvicorn.Server(uvicorn.Config(make_app(batching, defaults, limits), host=cfg.host, port=cfg.port,
                                           log_level="info", access_log=cfg.access_log,
                                           timeout_graceful_shutdown=cfg.shutdown_timeout))
    # uvicorn stops gracefully on SIGTERM (no new connections, the requests in flight answered), then raises the
    # signal again for the handler it found: this one, so that the batcher is closed and the process exits with 0.
    stopped = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stopped.append(signum))
    try:
        server.run()
    finally:
        batching.close()
        signal.signal(signal.SIGTERM, previous)
    if not server.started and not stopped:
        raise OSError(f"port: could not serve on {cfg.host}:{cfg.port} (in use?); see the log above")
    log.info("stopped after %d batches of %d sentences in all", batching.batches, batching.batched_sentences)


def check_serve_config(cfg) -> None:
    from seq2seq.config_checks import ConfigError, decode_options
    from seq2seq.inference.evaluation import check_runtime

    check_runtime(cfg)
    decode_options(cfg.decode)
    if not 0 <= cfg.port <= 65535:
        raise ConfigError(f"port: must be in [0, 65535] (0: any free port), got {cfg.port}")
    for key in ("max_batch_size", "max_sentences", "max_characters", "max_body_bytes", "max_beam_size"):
        if cfg[key] < 1:
            raise ConfigError(f"{key}: must be at least 1, got {cfg[key]}")
    if cfg.max_tokens is not None and cfg.max_tokens < 1:
        raise ConfigError(f"max_tokens: must be at least 1 or null, got {cfg.max_tokens}")
    if cfg.batch_timeout < 0:
        raise ConfigError(f"batch_timeout: must be >= 0 seconds, got {cfg.batch_timeout}")
