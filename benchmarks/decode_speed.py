"""Decoding speed: python benchmarks/decode_speed.py [--ckpt PATH [--ckpt PATH ...]] [--int8] [--] [hydra overrides]

Translates a split (default: test) with greedy search and with beam search (beam 5), batches of 64
sentences, at most 100 output tokens, and prints one JSON object with sentences/s for each, and the
sacreBLEU of each against the split's references as read (for ``ref_bilstm``'s lowercased, tokenized
copy, ``--write-hypotheses DIR`` keeps the outputs for ``../shared/tools/bleu_lc_detok.py``). With --ckpt
the checkpoint's trained model and tokenizers are used (several checkpoints: an ensemble); without, an
untrained model of the configured size (same cost per step, but its outputs run to the length limit more
often, so that is a harsher test). ``--int8`` also times and scores the int8 copy of the model in the same
run (``quantize=int8``; CPU only). ``--runtime onnx`` (one --ckpt) also exports the checkpoint and times the
ONNX runtime (seq2seq/runtime/) on the same batches, and with ``--int8`` its int8 export too: keys ``onnx_*``
and ``onnx_int8_*`` beside PyTorch's. ``--limit N`` times the first N sentences of the split only.

    python benchmarks/decode_speed.py experiment=ref_bilstm data.root=../shared/data/multi30k-tok
    python benchmarks/decode_speed.py --ckpt <run>/checkpoints/last.ckpt --int8 experiment=ref_bilstm data.root=...
    python benchmarks/decode_speed.py --ckpt <run>/checkpoints/last.ckpt --int8 --runtime onnx --batch-size 1 ...
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
from seq2seq.decode_options import DecodeOptions
from seq2seq.inference.ensemble import Ensemble
from seq2seq.inference.loading import build_model, resolve_device, same_vocabularies
from seq2seq.inference.metrics import score_translations
from seq2seq.inference.quantize import quantize_int8
from seq2seq.inference.search import search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", action="append", default=None,
                        help="a checkpoint of train.py; repeat it for an ensemble (--ckpt a --ckpt b)")
    parser.add_argument("--int8", action="store_true", help="also decode with the int8 copy of the model")
    parser.add_argument("--write-hypotheses", default=None, help="a folder for the outputs, in the split's order")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the split; the median is kept")
    parser.add_argument("--runtime", choices=["torch", "onnx"], default="torch",
                        help="onnx: also time the exported model in onnxruntime (needs one --ckpt)")
    parser.add_argument("--limit", type=int, default=None, help="time the first N sentences of the split only")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for train.py")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    cfg = compose_config(args.overrides)
    if args.ckpt:
        # The model as the checkpoint describes it (whatever the overrides say), and its own tokenizers to
        # encode the split, so that token ids mean what the weights learned.
        stored = [read_checkpoint(Path(path), key="--ckpt") for path in args.ckpt]
        same_vocabularies([Path(path) for path in args.ckpt], stored)
        models = [build_model(checkpoint, key="--ckpt") for checkpoint in stored]
        model = models[0] if len(models) == 1 else Ensemble(models)
        tokenizer = stored[0].tgt_tokenizer
        with tempfile.TemporaryDirectory(prefix="seq2seq-bench-") as tokenizer_dir:
            stored[0].src_tokenizer.save(Path(tokenizer_dir) / "src_tokenizer.json")
            stored[0].tgt_tokenizer.save(Path(tokenizer_dir) / "tgt_tokenizer.json")
            datamodule, _ = build(cfg, Path(tokenizer_dir))
    else:
        datamodule, module = build(cfg)
        model, tokenizer = module.model, datamodule.tgt_tokenizer
    def torch_decoder(model):
        return lambda src, src_lengths, options: search(model, src, src_lengths, options).tokens

    variants = {"": torch_decoder(model.to(device).eval())}
    if args.int8:
        if device.type != "cpu" or len(args.ckpt or []) > 1:
            parser.error("--int8 compares one model's int8 copy on the CPU: --device cpu and one --ckpt")
        variants["int8_"] = torch_decoder(quantize_int8(model))
    scratch = tempfile.TemporaryDirectory(prefix="seq2seq-onnx-")
    if args.runtime == "onnx":
        if not args.ckpt or len(args.ckpt) > 1 or device.type != "cpu":
            parser.error("--runtime onnx times one exported checkpoint on the CPU: one --ckpt, --device cpu")
        variants |= onnx_decoders(Path(args.ckpt[0]), Path(scratch.name), args.threads, args.int8)
    split = datamodule.encoded_split(args.split)
    kept = range(min(args.limit, len(split))) if args.limit else range(len(split))
    order = sorted(kept, key=lambda i: len(split.src_ids[i]))  # length-sorted batches, as evaluate.py does
    batches = [datamodule.batch(args.split, order[i:i + args.batch_size]) for i in range(0, len(order), args.batch_size)]
    batches = [(b.src.to(device), b.src_lengths.to(device)) for b in batches]

    references = [split.references[i] for i in order]

    def run(decode, options: DecodeOptions) -> tuple[float, int, list[str]]:
        times, outputs = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            outputs = []
            for src, src_lengths in batches:
                outputs += decode(src, src_lengths, options)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        # Outside the timing: the token ids to text, for BLEU.
        return sorted(times)[len(times) // 2], sum(len(t) for t in outputs), [tokenizer.decode(t) for t in outputs]

    sentences = len(order)
    results = {}
    for prefix, variant in variants.items():
        for name, beam_size in (("greedy", 1), (f"beam{args.beam_size}", args.beam_size)):
            seconds, tokens, texts = run(variant, DecodeOptions(beam_size=beam_size, max_length=args.max_length))
            results |= {
                f"{prefix}{name}_sentences_per_sec": round(sentences / seconds, 1),
                f"{prefix}{name}_seconds": round(seconds, 2),
                f"{prefix}{name}_output_tokens": tokens,
                f"{prefix}{name}_bleu": round(score_translations(texts, references).bleu, 2),
            }
            if args.write_hypotheses:
                in_split_order = [""] * sentences
                for position, index in enumerate(order):
                    in_split_order[index] = texts[position]
                folder = Path(args.write_hypotheses)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{prefix or 'fp32_'}{name}.hyp").write_text("".join(f"{line}\n" for line in in_split_order))
    for prefix in [p for p in variants if p]:
        for name in ("greedy", f"beam{args.beam_size}"):
            results[f"{prefix}speedup_{name}"] = round(results[f"{prefix}{name}_sentences_per_sec"]
                                                       / results[f"{name}_sentences_per_sec"], 3)
    if args.int8 and args.runtime == "onnx":
        for name in ("greedy", f"beam{args.beam_size}"):
            results[f"onnx_int8_over_torch_int8_{name}"] = round(
                results[f"onnx_int8_{name}_sentences_per_sec"] / results[f"int8_{name}_sentences_per_sec"], 3)
    scratch.cleanup()
    if args.int8:
        results["int8_speedup_beam"] = round(results[f"int8_beam{args.beam_size}_sentences_per_sec"]
                                             / results[f"beam{args.beam_size}_sentences_per_sec"], 3)
        results["int8_speedup_greedy"] = round(results["int8_greedy_sentences_per_sec"]
                                               / results["greedy_sentences_per_sec"], 3)
    print(json.dumps({
        "benchmark": "decode",
        "overrides": args.overrides,
        "checkpoint": args.ckpt,
        "split": args.split,
        "sentences": sentences,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        **results,
        "bleu_note": "sacreBLEU (13a, cased) against the split's references as read",
        "runtime": args.runtime,
        "parameters": sum(p.numel() for p in model.parameters()),
        **environment(device),
    }))


def onnx_decoders(ckpt: Path, scratch: Path, threads: int, int8: bool) -> dict:
    """The checkpoint exported (and with ``int8`` its int8 export), each as a decode function over the same
    batches: the ONNX runtime's search on numpy copies of them."""
    from seq2seq.export.exporter import export_checkpoints
    from seq2seq.runtime import OnnxTranslator
    from seq2seq.runtime.search import search as onnx_search

    decoders = {}
    for prefix, quantize in [("onnx_", None)] + ([("onnx_int8_", "int8")] if int8 else []):
        export_checkpoints([ckpt], scratch / prefix, quantize=quantize)
        decoding = OnnxTranslator.from_dir(scratch / prefix, threads=threads).decoding

        def decode(src, src_lengths, options, decoding=decoding):
            return onnx_search(decoding.model, src.numpy(), src_lengths.numpy(), options).tokens

        decoders[prefix] = decode
    return decoders


if __name__ == "__main__":
    main()
