"""serve.py end to end: the real script on the fixture checkpoint, over HTTP on 127.0.0.1, and its page in a real
headless browser. Skipped, saying why, without the serve extra (or, for the page, without Chromium)."""

from __future__ import annotations

import http.client
import importlib.util
import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from seq2seq import Translator
from seq2seq.inference.serve_process import ServeProcess
from tests.e2e.conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "numbers_tiny_v1.ckpt"
SENTENCES = ["zweiundvierzig", "elf", "dreihundertzwölf", "neunhundertneunundneunzig", "sieben", "hundertundeins",
             "achtzehn", "sechshundertvierzig", "dreizehn", "vierhundertfünfundfünfzig", "zwölf", "neunzehn",
             "achthundertachtzig", "siebenundsiebzig", "fünfhundertdrei", "sechzig"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("starlette") is None,
                       reason="the service needs the serve extra: pip install -e '.[serve]' (.ci/run installs it)"),
]


class Server(ServeProcess):
    """serve.py on the fixture checkpoint in a subprocess, and requests to it."""

    def __init__(self, tmp_path: Path, *overrides: str) -> None:
        super().__init__([f"ckpt_path={FIXTURE}", "device=cpu", *overrides], tmp_path / "serve.log", cwd=tmp_path,
                         timeout=120)

    def request(self, method: str, path: str, body=None, raw: bytes | None = None) -> tuple[int, object]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        content = response.read()
        connection.close()
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(content) if kind.startswith("application/json") else content.decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("serve"), "batch_timeout=0.05", "max_sentences=20", "max_characters=60")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def offline() -> Translator:
    return Translator.from_checkpoint(FIXTURE, device="cpu")


def test_translate_answers_as_the_python_api_does(server, offline):
    status, answer = server.request("POST", "/translate", {"text": SENTENCES[:3], "beam_size": 5, "n_best": 2})
    assert status == 200
    expected = offline.translate(SENTENCES[:3], beam_size=5, n_best=2)
    for got, want in zip(answer["translations"], expected, strict=True):
        assert (got["text"], [n[0] for n in got["nbest"]]) == (want.text, [n[0] for n in want.nbest])
        assert got["score"] == pytest.approx(want.score, abs=1e-4)
        assert [tuple(pair) for pair in got["alignment"]] == want.alignment
    status, single = server.request("POST", "/translate", {"text": "elf"})  # a single string, the defaults
    assert status == 200 and len(single["translations"]) == 1
    status, health = server.request("GET", "/health")
    assert status == 200 and health["status"] == "ok"


@pytest.mark.parametrize("raw, status, field", [
    (b"{not json", 400, "body"),
    (b'["elf"]', 422, "body"),
    (b'{"txt": "elf"}', 422, "txt"),
    (b'{"text": []}', 422, "text"),
    (b'{"text": ["elf", 3]}', 422, "text"),
    (b'{"text": "elf", "beam_size": "five"}', 422, "beam_size"),
    (b'{"text": "elf", "beam_size": 0}', 422, "beam_size"),
    (b'{"text": "elf", "beam_size": 99}', 422, "beam_size"),
    (b'{"text": "elf", "beam_size": 2, "n_best": 3}', 422, "n_best"),
    (b'{"text": "elf", "sampling": "always"}', 422, "sampling"),
    (json.dumps({"text": ["elf"] * 21}).encode(), 413, "text"),
    (json.dumps({"text": "elf" * 21}).encode(), 413, "text"),
    (b'{"text": "' + b"x" * 1_000_001 + b'"}', 413, "body"),
    # Each of these was a 500 once: JSON nested too deeply, a non-finite number, an integer too large for a
    # 64-bit seed, an unpaired surrogate escape (in the text, and as an unknown field's name).
    (b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "body"),
    (b'{"text": "elf", "length_penalty": Infinity}', 400, "body"),
    (b'{"text": "elf", "seed": 36893488147419103232}', 422, "seed"),
    (b'{"text": "\\ud800"}', 400, "text"),
    (b'{"text": "elf", "\\udfff": 1}', 422, "\udfff"),
], ids=lambda value: value[:50].decode("latin-1") if isinstance(value, bytes) else str(value))
def test_malformed_and_oversized_requests_get_a_4xx_naming_the_field_and_the_server_keeps_serving(server, raw,
                                                                                                   status, field):
    got, answer = server.request("POST", "/translate", raw=raw)
    assert (got, answer["field"]) == (status, field), answer
    assert answer["error"]
    assert server.request("POST", "/translate", {"text": "elf"})[0] == 200


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer_once(server, offline):
    before = server.request("GET", "/health")[1]
    answers: dict[int, list] = {}
    errors = []

    def client(index: int) -> None:
        for round_ in range(3):
            status, answer = server.request("POST", "/translate", {"text": [SENTENCES[index]], "beam_size": 1})
            if status != 200:
                errors.append((index, status, answer))
                continue
            answers.setdefault(index, []).extend(t["text"] for t in answer["translations"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(SENTENCES))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    expected = [t.text for t in offline.translate(SENTENCES, beam_size=1)]
    assert {i: texts for i, texts in answers.items()} == {i: [expected[i]] * 3 for i in range(len(SENTENCES))}
    after = server.request("GET", "/health")[1]
    batches = after["batches"] - before["batches"]
    sentences = after["batched_sentences"] - before["batched_sentences"]
    assert sentences == 3 * len(SENTENCES) and batches < sentences  # some requests shared a batch
    assert after["pending_sentences"] == 0  # every one answered, none counted twice


def test_sigterm_answers_the_requests_in_flight_then_exits_0(tmp_path):
    busy = Server(tmp_path, "max_batch_size=1")  # every sentence searched alone ...
    answers, errors = [], []
    sentences = ["neunhundertneunundneunzig" * 2] * 40
    hot = {"text": sentences, "beam_size": 1, "sampling": "topk", "temperature": 50.0}  # ... to the length cap

    def client() -> None:
        try:
            answers.append(busy.request("POST", "/translate", hot))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(repr(error))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    while True:  # all three received (seconds of work); the signal comes while nearly all of it still waits
        health = busy.request("GET", "/health")[1]
        if health["pending_sentences"] + health["batched_sentences"] == 3 * len(sentences):
            break
        time.sleep(0.01)
    assert health["pending_sentences"] > len(sentences), "the requests were answered before the signal was sent"
    code = busy.stop()
    for thread in threads:
        thread.join()
    log = busy.log_text()
    assert code == 0, log[-3000:]
    assert not errors and len(answers) == 3 and all(status == 200 for status, _ in answers)
    assert all(len(answer["translations"]) == len(sentences) for _, answer in answers)
    assert "Waiting for connections to close" in log  # uvicorn saw them open when the signal came


# --------------------------------------------------------------------------------------------- the page
def chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver and importlib.util.find_spec("selenium") else None


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium and chromium-driver and selenium "
                                                "(.ci/run installs them)")
def test_the_page_translates_and_draws_the_attention(server, offline, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver_path = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(f"http://127.0.0.1:{server.port}/")
        driver.find_element(By.ID, "source").send_keys("dreihundertzwölf")
        driver.find_element(By.ID, "beam").clear()
        driver.find_element(By.ID, "beam").send_keys("4")
        driver.find_element(By.ID, "translate").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "translation").text)
        expected = offline.translate("dreihundertzwölf", beam_size=4, n_best=3)[0]
        assert driver.find_element(By.ID, "translation").text == expected.text
        nbest = [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#nbest li")]
        assert [line.rsplit(" ", 1)[0] for line in nbest] == [text for text, _ in expected.nbest]
        cells = driver.find_elements(By.CSS_SELECTOR, "#heatmap td.cell")
        assert len(cells) == len(expected.output_pieces) * len(expected.source_pieces)
        columns = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#heatmap thead th")][1:]
        assert len(columns) == len(expected.source_pieces)  # source pieces across, output pieces down
        driver.save_screenshot(str(tmp_path / "page.png"))
    finally:
        driver.quit()
