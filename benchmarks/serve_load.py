"""Load on the translation service: python benchmarks/serve_load.py --ckpt PATH --source FILE [options]

Starts ``serve.py`` on 127.0.0.1 twice — with dynamic batching (``max_batch_size``, default 32) and without
(``max_batch_size=1``) — and each time runs N concurrent clients (threads, one keep-alive connection each)
that send a fixed number of requests, one after the other, each request one sentence of ``--source``
(client c's request r carries sentence ``(c * requests + r) mod lines``). Prints one JSON object:
requests/s, sentences/s and p50/p99 latency per mode, how many decoding batches the server made, and the
checks that every request was answered once, with 200, with its own sentence's translation (the batched
run's answers equal the unbatched run's, sentence by sentence).

    python benchmarks/serve_load.py --ckpt <ref_bilstm run>/checkpoints/last.ckpt \\
        --source ../shared/data/multi30k-tok/test.de.gz --clients 16 --requests 20

``--model-dir DIR`` (instead of ``--ckpt``) serves a folder written by export.py with the ONNX runtime
(``serve.py runtime=onnx model_dir=DIR``), which uses every core for each operator.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from seq2seq.inference.serve_process import ServeProcess  # noqa: E402


def read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line.strip()]


class Service(ServeProcess):
    """serve.py with the benchmark's settings, and its /health counters."""

    def __init__(self, args: argparse.Namespace, max_batch_size: int) -> None:
        log_path = Path(tempfile.mkdtemp(prefix="serve-load-")) / "serve.log"
        model = (["runtime=onnx", f"model_dir={Path(args.model_dir).resolve()}"] if args.model_dir else
                 [f"ckpt_path={Path(args.ckpt).resolve()}", f"device={args.device}"])
        overrides = [*model, f"max_batch_size={max_batch_size}", f"batch_timeout={args.batch_timeout}", f"decode.beam_size={args.beam_size}",
                     f"hydra.run.dir={log_path.parent}", *([f"quantize={args.quantize}"] if args.quantize else [])]
        try:
            super().__init__(overrides, log_path, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        except RuntimeError as error:
            raise SystemExit(str(error)) from None

    def health(self) -> dict:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        connection.request("GET", "/health")
        return json.loads(connection.getresponse().read())


def run_clients(port: int, sentences: list[str], clients: int, requests: int, beam_size: int) -> dict:
    latencies: list[float] = []
    answers: dict[tuple[int, int], str] = {}
    failures: list[str] = []
    lock = threading.Lock()
    start_line = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        start_line.wait()
        for number in range(requests):
            sentence = sentences[(index * requests + number) % len(sentences)]
            body = json.dumps({"text": [sentence], "beam_size": beam_size})
            began = time.perf_counter()
            try:
                connection.request("POST", "/translate", body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = json.loads(response.read())
            except Exception as error:  # noqa: BLE001 - counted as a failure
                with lock:
                    failures.append(f"client {index} request {number}: {error!r}")
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                continue
            elapsed = time.perf_counter() - began
            with lock:
                if response.status != 200 or len(payload.get("translations", [])) != 1:
                    failures.append(f"client {index} request {number}: {response.status} {payload}")
                    continue
                if (index, number) in answers:
                    failures.append(f"client {index} request {number}: answered twice")
                answers[(index, number)] = payload["translations"][0]["text"]
                latencies.append(elapsed)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    ordered = sorted(latencies)
    percentile = lambda q: round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)  # noqa: E731
    return {
        "requests": clients * requests,
        "answered": len(answers),
        "failures": failures[:10],
        "seconds": round(seconds, 2),
        "requests_per_sec": round(len(answers) / seconds, 1),
        "sentences_per_sec": round(len(answers) / seconds, 1),  # one sentence a request
        "latency_p50_ms": percentile(0.50),
        "latency_p99_ms": percentile(0.99),
        "latency_mean_ms": round(1000 * statistics.fmean(latencies), 1) if latencies else None,
        "_answers": answers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--ckpt", help="a checkpoint, served with PyTorch")
    model.add_argument("--model-dir", help="a folder written by export.py, served with the ONNX runtime")
    parser.add_argument("--source", required=True, help="sentences, one per line (plain or .gz)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=20, help="requests per client")
    parser.add_argument("--beam-size", type=int, default=1, help="1: greedy")
    parser.add_argument("--max-batch-size", type=int, default=32, help="the batched run's (the other runs with 1)")
    parser.add_argument("--batch-timeout", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=2, help="the server's intra-op threads")
    parser.add_argument("--quantize", default=None, help="int8: serve the int8 copy")
    parser.add_argument("--device", default="cpu", help="the server's device: cpu, cuda, cuda:N")
    args = parser.parse_args()

    sentences = read_lines(Path(args.source))
    results = {}
    for mode, max_batch_size in (("batched", args.max_batch_size), ("unbatched", 1)):
        service = Service(args, max_batch_size)
        try:
            run_clients(service.port, sentences, 2, 2, args.beam_size)  # warm-up
            before = service.health()
            results[mode] = run_clients(service.port, sentences, args.clients, args.requests, args.beam_size)
            after = service.health()
            results[mode] |= {"max_batch_size": max_batch_size,
                              "server_batches": after["batches"] - before["batches"],
                              "server_sentences": after["batched_sentences"] - before["batched_sentences"]}
        finally:
            results.setdefault(mode, {})["exit_code"] = service.stop()  # also when the clients failed
    batched, unbatched = results["batched"].pop("_answers"), results["unbatched"].pop("_answers")
    differing = [key for key in batched if key in unbatched and batched[key] != unbatched[key]]
    print(json.dumps({
        "benchmark": "serve_load",
        "checkpoint": args.ckpt,
        "model_dir": args.model_dir,
        "runtime": "onnx" if args.model_dir else "torch",
        "clients": args.clients,
        "requests_per_client": args.requests,
        "sentences_per_request": 1,
        "beam_size": args.beam_size,
        "batch_timeout": args.batch_timeout,
        "server_threads": args.threads,
        "quantize": args.quantize,
        "device": args.device,
        **results,
        "speedup_sentences_per_sec": round(results["batched"]["sentences_per_sec"]
                                           / results["unbatched"]["sentences_per_sec"], 2),
        "all_answered_once": all(r["answered"] == r["requests"] and not r["failures"] for r in results.values()),
        "answers_differing_between_modes": len(differing),
        "cpu_count": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
