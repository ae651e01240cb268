"""Decoding speed: python benchmarks/decode_speed.py [--ckpt PATH] [--] [hydra overrides]

Translates a split (default: test) with greedy search and with beam search (beam 5), batches of 64
sentences, at most 100 output tokens, and prints one JSON object with sentences/s for each. With --ckpt
the checkpoint's trained model and tokenizers are used; without, an untrained model of the configured
size (same cost per step, but its outputs run to the length limit more often, so that is a harsher test).

    python benchmarks/decode_speed.py experiment=ref_bilstm data.root=../shared/data/multi30k-tok
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from common import build, compose_config, environment
from seq2seq.checkpoint import read_checkpoint
from seq2seq.inference.search import beam_search, greedy_search
from seq2seq.inference.translator import build_model, resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default=None, help="a checkpoint of train.py to load the weights from")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the split; the median is kept")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for train.py")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    cfg = compose_config(args.overrides)
    if args.ckpt:
        # The model as the checkpoint describes it (whatever the overrides say), and its own tokenizers to
        # encode the split, so that token ids mean what the weights learned.
        stored = read_checkpoint(Path(args.ckpt), key="--ckpt")
        model = build_model(stored, key="--ckpt")
        with tempfile.TemporaryDirectory(prefix="seq2seq-bench-") as tokenizer_dir:
            stored.src_tokenizer.save(Path(tokenizer_dir) / "src_tokenizer.json")
            stored.tgt_tokenizer.save(Path(tokenizer_dir) / "tgt_tokenizer.json")
            datamodule, _ = build(cfg, Path(tokenizer_dir))
    else:
        datamodule, module = build(cfg)
        model = module.model
    model = model.to(device).eval()
    split = datamodule.encoded_split(args.split)
    order = sorted(range(len(split)), key=lambda i: len(split.src_ids[i]))  # length-sorted batches, as evaluate.py does
    batches = [datamodule.batch(args.split, order[i:i + args.batch_size]) for i in range(0, len(order), args.batch_size)]
    batches = [(b.src.to(device), b.src_lengths.to(device)) for b in batches]

    def run(search, **settings) -> tuple[float, int]:
        times, tokens = [], 0
        for _ in range(args.repeats):
            start = time.perf_counter()
            tokens = 0
            for src, src_lengths in batches:
                hypotheses = search(model, src, src_lengths, max_length=args.max_length, **settings)
                tokens += sum(len(t) for t in hypotheses.tokens)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2], tokens

    greedy_time, greedy_tokens = run(greedy_search)
    beam_time, beam_tokens = run(beam_search, beam_size=args.beam_size)
    sentences = len(order)
    print(json.dumps({
        "benchmark": "decode",
        "overrides": args.overrides,
        "checkpoint": args.ckpt,
        "split": args.split,
        "sentences": sentences,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "greedy_sentences_per_sec": round(sentences / greedy_time, 1),
        "greedy_seconds": round(greedy_time, 2),
        "greedy_output_tokens": greedy_tokens,
        f"beam{args.beam_size}_sentences_per_sec": round(sentences / beam_time, 1),
        f"beam{args.beam_size}_seconds": round(beam_time, 2),
        f"beam{args.beam_size}_output_tokens": beam_tokens,
        "parameters": sum(p.numel() for p in model.parameters()),
        **environment(device),
    }))


if __name__ == "__main__":
    main()
