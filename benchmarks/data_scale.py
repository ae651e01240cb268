"""How data handling scales with corpus size: python benchmarks/data_scale.py --pairs N [options] [-- overrides]

Synthesizes a training corpus of N pairs with a WMT-like length distribution (each pair joins two random
sentence pairs of --source, ~26 tokens a side for tokenized Multi30k; without --source, of the built-in
numbers data) in a work folder, then measures, for ``experiment=ref_bilstm`` on it (or the overrides given):

1. preprocessing, cold cache (in this process, as ``prepare_data`` does it): seconds, pairs/s, its peak RSS,
   and the cache's size on disk;
2. a short training run with the cache warm (``train.py ... trainer.max_steps=3``, a separate process):
   wall seconds from start to exit (an upper bound on the time to the first training step) and its peak RSS;
3. with --ddp, the same run with ``trainer=ddp_cpu`` (2 ranks): every process's largest USS (memory only it
   holds) and PSS (its share of what it shares) from ``/proc/<pid>/smaps_rollup``, sampled while it trains.

Prints one JSON object.

    python benchmarks/data_scale.py --pairs 1000000 --source ../shared/data/multi30k-tok --ddp
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import REPO, compose_config, environment
from seq2seq.data.corpus import read_lines, resolve_text_file
from seq2seq.data.numbers import make_numbers
from seq2seq.data.sampler import BucketBatchSampler
from seq2seq.training.run import make_datamodule


def synthesize(work: Path, num_pairs: int, source: Path | None) -> Path:
    """{work}/corpus/{train,val,test}.{de,en}: N joined training pairs; val and test copied from the source."""
    if source is None:
        source = work / "numbers"
        make_numbers(source, seed=1234, train_size=2000, val_size=100, test_size=100, max_number=999999)
    src_lines = read_lines(resolve_text_file(source, "train.de", "--source"), "--source")
    tgt_lines = read_lines(resolve_text_file(source, "train.en", "--source"), "--source")
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    with open(corpus / "train.de", "w", encoding="utf-8") as src, open(corpus / "train.en", "w", encoding="utf-8") as tgt:
        for _ in range(num_pairs):
            i, j = rng.randrange(len(src_lines)), rng.randrange(len(src_lines))
            src.write(f"{src_lines[i]} {src_lines[j]}\n")
            tgt.write(f"{tgt_lines[i]} {tgt_lines[j]}\n")
    for split in ("val", "test"):
        for lang in ("de", "en"):
            path = resolve_text_file(source, f"{split}.{lang}", "--source")
            shutil.copy(path, corpus / path.name)
    return corpus


def folder_size_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 3)


def train_command(corpus: Path, cache: Path, run: Path, overrides: list[str], *extra: str) -> list[str]:
    return [
        sys.executable, str(REPO / "train.py"), "experiment=ref_bilstm", f"data.root={corpus}",
        f"data.cache_dir={cache}", f"output_dir={run}", "trainer.max_steps=3", "trainer.limit_val_batches=1",
        "test_after_training=false", "callbacks=none", *overrides, *extra,
    ]


FIRST_STEP = "+callbacks.first_step._target_=first_step.FirstStepClock"  # benchmarks/first_step.py


def timed_run(command: list[str], log_path: Path) -> dict:
    """Wall seconds, seconds to the first training step, and peak RSS of one process (``os.wait4`` gives that
    child's own rusage)."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "benchmarks"),
                                                                os.environ.get("PYTHONPATH", "")])}
    start_clock, start = time.time(), time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen([*command, FIRST_STEP], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                   env=environment)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed; see {log_path}")
    first_step = [float(line.split()[1]) for line in log_path.read_text().splitlines()
                  if line.startswith("FIRST_TRAINING_STEP ")]
    return {"wall_s": round(wall, 1), "to_first_step_s": round(first_step[0] - start_clock, 1) if first_step else None,
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def memory_of(pid: int) -> dict[str, int] | None:
    """USS and PSS of a process in KiB, from /proc/<pid>/smaps_rollup (None once it has exited)."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    except (OSError, ValueError):
        return None
    kib = {name: int(value.split()[0]) for name, value in fields.items()}
    return {"uss": kib["Private_Clean"] + kib["Private_Dirty"], "pss": kib["Pss"], "rss": kib["Rss"]}


def descendants(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return children + [d for c in children for d in descendants(c)]


def ddp_memory(command: list[str], log_path: Path) -> dict:
    """Largest USS/PSS of the launching process and of each DDP rank, sampled every 0.2 s while it runs."""
    start = time.perf_counter()
    peaks: dict[int, dict[str, int]] = {}
    names: dict[int, str] = {}
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        while process.poll() is None:
            for pid in [process.pid, *descendants(process.pid)]:
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                if "resource_tracker" in cmdline:
                    continue
                sample = memory_of(pid)
                if sample is not None:
                    names[pid] = "launcher" if pid == process.pid else "rank"
                    peak = peaks.setdefault(pid, sample)
                    for key, value in sample.items():
                        peak[key] = max(peak[key], value)
            time.sleep(0.2)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed; see {log_path}")
    processes = [{"process": names[pid], **{f"{k}_mb": round(v / 1024, 1) for k, v in peak.items()}}
                 for pid, peak in peaks.items()]
    return {"wall_s": round(time.perf_counter() - start, 1), "processes": processes}


def sampler_seconds(lengths) -> dict:
    """Seconds to plan the batches of this many examples and to deal out one epoch of them, two ranks."""
    timings = {}
    for name, limits in (("batch_size=64", dict(max_tokens=None, batch_size=64)),
                         ("max_tokens=8000", dict(max_tokens=8000, batch_size=None))):
        start = time.perf_counter()
        sampler = BucketBatchSampler(lengths, shuffle=True, seed=1, num_replicas=2, rank=1, **limits)
        planned = time.perf_counter() - start
        sampler.set_epoch(1)
        num_batches = sum(1 for _ in sampler)
        timings[name] = {"plan_s": round(planned, 2), "epoch_s": round(time.perf_counter() - start - planned, 2),
                         "batches_per_rank": num_batches}
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, required=True, help="training pairs to synthesize")
    parser.add_argument("--source", type=Path, default=None, help="folder with train.de/.en (plain or .gz) to join")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    parser.add_argument("--ddp", action="store_true", help="also measure a trainer=ddp_cpu run (2 ranks)")
    parser.add_argument("--ddp-steps", type=int, default=20, help="training steps of the DDP run")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of every process (default: all cores)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run, as for train.py")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)  # progress
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the training processes started below

    work = args.work or Path(tempfile.mkdtemp(prefix="seq2seq-data-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    try:
        start = time.perf_counter()
        corpus = synthesize(work, args.pairs, args.source)
        synthesis_s = time.perf_counter() - start

        # 1. preprocessing, cold: what prepare_data does before the first run's first step
        cfg = compose_config(["experiment=ref_bilstm", f"data.root={corpus}", f"data.cache_dir={cache}",
                              *args.overrides])
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        datamodule = make_datamodule(cfg.data, tokenizer_dir=None)  # as train() makes it
        datamodule.prepare_data()
        preprocess_s = time.perf_counter() - start
        stored = datamodule.train_split()
        report = {
            "benchmark": "data_scale",
            "pairs": args.pairs,
            "kept_pairs": len(stored),
            "tokens_per_side": round(len(stored.src_ids.tokens) / len(stored), 1),
            "corpus_mb": folder_size_mb(corpus),
            "synthesis_s": round(synthesis_s, 1),
            "preprocess": {
                "seconds": round(preprocess_s, 3),
                "pairs_per_s": round(args.pairs / preprocess_s),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "peak_rss_mb_before": round(rss_before / 1024, 1),
            },
            "cache_mb": folder_size_mb(cache),
        }
        report["sampler"] = sampler_seconds(stored.bucket_lengths())
        del datamodule, stored

        # 2. a training run with the cache warm
        command = train_command(corpus, cache, work / "run", args.overrides)
        report["warm_run"] = timed_run(command, work / "warm_run.log")
        report["warm_run"]["command"] = " ".join(command[1:])

        # 3. DDP on CPU: is the corpus shared?
        if args.ddp:
            command = train_command(corpus, cache, work / "run_ddp", args.overrides, "trainer=ddp_cpu",
                                    f"trainer.max_steps={args.ddp_steps}")
            report["ddp_cpu"] = ddp_memory(command, work / "ddp_run.log")
        report["environment"] = environment(torch.device("cpu"))
        report["environment"].pop("peak_rss_mb")  # this process's peak is the preprocessing one, reported above
        print(json.dumps(report))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
