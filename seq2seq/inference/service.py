"""The translation service: an HTTP endpoint in front of a Translator, batching concurrent requests.

    GET  /            the page (static/index.html): a text box, the translation, its n-best, the attention
    GET  /health      {"status": "ok", ...} once the model is loaded
    POST /translate   {"text": ["...", "..."] or "...", "beam_size": 5, "n_best": 1, ...}
                      -> {"translations": [{"text", "score", "nbest", "alignment", "attention",
                                            "source_pieces", "output_pieces"}, ...]}

Requests are checked before they reach the model; a bad one gets a 4xx answer with a JSON body naming the
field, ``{"error": "...", "field": "..."}``, and the server goes on serving: a body that is not JSON (400),
a missing or empty ``text`` or an option of the wrong type or range (422, with the decoding options'
own rules), more than ``max_sentences`` sentences or ``max_characters`` characters in one sentence, or a
body over ``max_body_bytes`` (413). The decoding options a request may set are :class:`DecodeOptions`'
search options (not the batching ones, which are the server's) and ``prefixes``; the others take the
server's defaults (``conf/serve.yaml``).

Decoding runs in one worker thread (:mod:`seq2seq.inference.batching`); the event loop only parses,
checks and waits, so requests keep arriving while a batch decodes. uvicorn serves it: on SIGTERM or
Ctrl-C it stops accepting connections, waits for the requests in flight to be answered, then the worker
thread is closed and the process exits with status 0. There is no authentication: it binds to 127.0.0.1
by default (README, "Serve it").
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from seq2seq.inference.batching import BatchingTranslator
from seq2seq.inference.translator import DecodeOptions

log = logging.getLogger(__name__)

PAGE = Path(__file__).resolve().parent / "static" / "index.html"
# What a request may set: the search's options. batch_size and max_tokens are the server's to choose.
REQUEST_OPTIONS = ("beam_size", "n_best", "length_penalty", "max_length_ratio", "max_length_constant", "max_length",
                   "sampling", "top_k", "top_p", "temperature", "seed")


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


def parse_request(body: bytes, defaults: DecodeOptions, limits: RequestLimits) -> tuple[list[str], DecodeOptions, Any]:
    """A /translate body -> (sentences, options, prefixes); RequestError naming the field otherwise."""
    if len(body) > limits.max_body_bytes:
        raise RequestError(413, "body", f"the request body has {len(body)} bytes; at most {limits.max_body_bytes}")
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RequestError(400, "body", f"not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise RequestError(422, "body", "must be a JSON object, e.g. {\"text\": [\"...\"]}")
    unknown = sorted(set(payload) - {"text", "prefixes", *REQUEST_OPTIONS})
    if unknown:
        raise RequestError(422, unknown[0], f"unknown field; valid: text, prefixes, {', '.join(REQUEST_OPTIONS)}")
    text = payload.get("text")
    sentences = [text] if isinstance(text, str) else text
    if not isinstance(sentences, list) or not sentences or not all(isinstance(s, str) for s in sentences):
        raise RequestError(422, "text", "must be a non-empty string or a non-empty list of strings")
    if len(sentences) > limits.max_sentences:
        raise RequestError(413, "text", f"{len(sentences)} sentences; at most {limits.max_sentences} per request")
    for index, sentence in enumerate(sentences):
        if len(sentence) > limits.max_characters:
            raise RequestError(413, "text", f"sentence {index} has {len(sentence)} characters; at most "
                                            f"{limits.max_characters}")
    prefixes = payload.get("prefixes")
    if prefixes is not None and (not isinstance(prefixes, list) or len(prefixes) != len(sentences)
                                 or not all(isinstance(p, str) for p in prefixes)):
        raise RequestError(422, "prefixes", f"must be a list of {len(sentences)} strings, one per sentence")
    settings = {name: payload[name] for name in REQUEST_OPTIONS if name in payload}
    for name, value in settings.items():
        default = getattr(defaults, name)
        if value is None and default is None:
            continue
        # JSON types accepted for the option's Python type (an int is a number too; true/false is neither)
        accepted, described = (((str,), "a string") if isinstance(default, str) else
                               ((int, float), "a number") if isinstance(default, float) else ((int,), "an int"))
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise RequestError(422, name, f"must be {described}, got {json.dumps(value)}")
    if settings.get("beam_size", 1) > limits.max_beam_size:
        raise RequestError(422, "beam_size", f"at most {limits.max_beam_size}, got {settings['beam_size']}")
    options = replace(defaults, **settings)
    try:
        options.check()
    except ValueError as error:
        field = str(error).split(":", 1)[0]
        raise RequestError(422, field if field in REQUEST_OPTIONS else "body", str(error)) from None
    return sentences, options, prefixes


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
            sentences, options, prefixes = parse_request(await request.body(), defaults, limits)
        except RequestError as error:
            return JSONResponse({"error": str(error), "field": error.field}, status_code=error.status)
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
    from omegaconf import OmegaConf

    from seq2seq.inference.evaluation import checkpoint_paths
    from seq2seq.inference.translator import Translator

    check_serve_config(cfg)
    translator = Translator.from_checkpoint(checkpoint_paths(cfg), device=cfg.device, average_last=cfg.average_last,
                                            quantize=cfg.quantize, ensemble_combine=cfg.ensemble_combine)
    decode = {key: value for key, value in OmegaConf.to_container(cfg.decode, resolve=True).items() if key != "alignment"}
    defaults = DecodeOptions.from_mapping({**decode, "batch_size": cfg.max_batch_size, "max_tokens": cfg.max_tokens})
    limits = RequestLimits(cfg.max_sentences, cfg.max_characters, cfg.max_body_bytes, cfg.max_beam_size)
    batching = BatchingTranslator(translator, cfg.max_batch_size, cfg.batch_timeout)
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
    from omegaconf import OmegaConf

    from seq2seq.config_checks import ConfigError, check_decode

    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path: required, e.g. ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt")
    check_decode(cfg.decode)
    if not 0 <= cfg.port <= 65535:
        raise ConfigError(f"port: must be in [0, 65535] (0: any free port), got {cfg.port}")
    for key in ("max_batch_size", "max_sentences", "max_characters", "max_body_bytes", "max_beam_size"):
        if cfg[key] < 1:
            raise ConfigError(f"{key}: must be at least 1, got {cfg[key]}")
    if cfg.batch_timeout < 0:
        raise ConfigError(f"batch_timeout: must be >= 0 seconds, got {cfg.batch_timeout}")
