"""POST /translate bodies that are the client's mistake get a 4xx naming the field, never a 5xx: each class of
malformed request found by trying, checked on the parser the service runs (the e2e tests send some of them to the
real server)."""

from __future__ import annotations

import importlib.util
import json

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("starlette") is None,
                                reason="the service needs the serve extra: pip install -e '.[serve]'")

LIMITS = dict(max_sentences=4, max_characters=30, max_body_bytes=20_000, max_beam_size=8)


def parse(body: bytes):
    from seq2seq.decode_options import DecodeOptions
    from seq2seq.inference.service import RequestLimits, parse_request

    return parse_request(body, DecodeOptions(), RequestLimits(**LIMITS))


@pytest.mark.parametrize("body, status, field", [
    # JSON the service cannot take
    (b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "body"),  # nested too deeply for the parser
    (b'{"text": "elf", "length_penalty": Infinity}', 400, "body"),  # not JSON numbers, though Python accepts them
    (b'{"text": "elf", "length_penalty": -Infinity}', 400, "body"),
    (b'{"text": "elf", "temperature": NaN}', 400, "body"),
    (b'{"text": "elf", "max_length_ratio": 1e999}', 400, "body"),  # valid JSON, too large for a float
    (b'{"text": "\\ud800"}', 400, "text"),  # an unpaired surrogate: no Unicode text
    (b'{"text": ["elf", "zw\\udfffei"]}', 400, "text"),
    (b'{"text": ["elf"], "prefixes": ["\\ud83d"]}', 400, "prefixes"),
    (b'{"text": "elf", "sampling": "\\udc00"}', 400, "sampling"),
    (b"\xff\xfe{}", 400, "body"),  # not UTF-8
    (b"", 400, "body"),
    # fields of the wrong type or out of range
    (b'{"text": "elf", "seed": 18446744073709551616}', 422, "seed"),  # 2**64: too large for a 64-bit seed
    (b'{"text": "elf", "seed": -9223372036854775809}', 422, "seed"),
    (b'{"text": "elf", "max_length": 100000000000000000000000000000}', 422, "max_length"),
    (b'{"text": "elf", "max_length_constant": 9223372036854775808}', 422, "max_length_constant"),
    (b'{"text": "elf", "beam_size": 1e30}', 422, "beam_size"),  # a float where an integer belongs
    (b'{"text": "elf", "beam_size": 100000000000000000000}', 422, "beam_size"),  # over max_beam_size
    (b'{"text": "elf", "beam_size": true}', 422, "beam_size"),
    (b'{"text": "elf", "beam_size": null}', 422, "beam_size"),
    (b'{"text": "elf", "length_penalty": "1"}', 422, "length_penalty"),
    (b'{"text": "elf", "length_penalty": -1}', 422, "length_penalty"),
    (b'{"text": "elf", "top_p": 2, "sampling": "topp", "beam_size": 1}', 422, "top_p"),
    (b'{"text": "elf", "n_best": 6, "beam_size": 5}', 422, "n_best"),
    (b'{"text": "elf", "\\ud800": 1}', 422, "\ud800"),  # an unknown field, itself no Unicode text
    (b'{"text": "elf", "prefixes": "forty"}', 422, "prefixes"),
    (b'{"text": {"de": "elf"}}', 422, "text"),
    # too much
    (b'{"text": ["elf", "elf", "elf", "elf", "elf"]}', 413, "text"),
    (b'{"text": "' + b"a" * 31 + b'"}', 413, "text"),
    (b'{"text": ["elf"], "prefixes": ["' + b"a" * 31 + b'"]}', 413, "prefixes"),  # a prefix as long as a sentence
    (b'{"text": "' + b"a" * 20_001 + b'"}', 413, "body"),
], ids=lambda value: value[:60].decode("latin-1") if isinstance(value, bytes) else str(value))
def test_a_malformed_request_is_a_4xx_naming_the_field(body, status, field):
    from seq2seq.inference.service import RequestError

    with pytest.raises(RequestError) as caught:
        parse(body)
    assert (caught.value.status, caught.value.field) == (status, field), str(caught.value)
    assert str(caught.value)


def test_the_error_answer_renders_whatever_the_client_sent():
    """The error quotes the client's field name, which may be no Unicode text: the answer still renders, as ASCII."""
    from seq2seq.inference.service import RequestError, SafeJSONResponse

    with pytest.raises(RequestError) as caught:
        parse(b'{"text": "elf", "\\ud800": 1}')
    response = SafeJSONResponse({"error": str(caught.value), "field": caught.value.field}, status_code=422)
    assert json.loads(response.body)["field"] == "\ud800" and response.body.isascii()


def test_a_good_request_keeps_its_options_and_takes_the_defaults_for_the_rest():
    sentences, options, prefixes = parse(b'{"text": ["elf", "zw\\u00f6lf"], "beam_size": 3, "length_penalty": 0,'
                                         b' "seed": 18446744073709551615, "prefixes": ["", "t"]}')
    assert sentences == ["elf", "zwölf"] and prefixes == ["", "t"]
    assert (options.beam_size, options.length_penalty, options.seed, options.n_best) == (3, 0, 2**64 - 1, 1)
