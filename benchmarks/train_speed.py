"""Training speed of any configuration: python benchmarks/train_speed.py [--steps N] [--] [hydra overrides]

Runs the model's real training step (the LightningModule's loss, backward, gradient clipping, optimizer
step) on real batches from the configured data, and prints one JSON object: target tokens/s and
sentences/s in the steady state (after --warmup steps, median over blocks of --block steps, with the
spread), peak RSS, parameter count, torch version, threads and device.

    python benchmarks/train_speed.py experiment=ref_bilstm data.root=../shared/data/multi30k-tok
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from common import build, compose_config, environment
from seq2seq.inference.loading import resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150, help="measured steps (after warm-up)")
    parser.add_argument("--warmup", type=int, default=20, help="steps run before measuring")
    parser.add_argument("--block", type=int, default=25, help="steps per measured block")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed", "16-mixed"])
    parser.add_argument("--profile", action="store_true",
                        help="also run the measured steps under torch.profiler and print its table of the costliest "
                             "operators (by input shape) to stderr; the figures are then the profiled ones")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for train.py")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    cfg = compose_config(args.overrides)
    cfg.optim.scheduler = "none"  # a schedule changes no step's cost, and cosine would need a Trainer
    datamodule, module = build(cfg)
    module.to(device).train()
    optimizer = module.configure_optimizers()  # the optimizer training uses (scheduler "none": just that)
    clip = cfg.trainer.gradient_clip_val
    autocast_dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(args.precision)

    def batches():
        epoch = 0
        while True:
            loader = datamodule.train_dataloader()
            loader.batch_sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    durations, tokens, sentences = [], [], []
    stream = batches()
    profiler = torch.profiler.profile(record_shapes=True) if args.profile else contextlib.nullcontext()
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            profiler.__enter__()
        batch = next(stream)
        num_tokens, num_sentences = batch.num_tgt_tokens, len(batch)
        batch = move_data_to_device(batch, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss_sum, count = module.loss(batch)
        loss = loss_sum / count
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            durations.append(time.perf_counter() - start)
            tokens.append(num_tokens)
            sentences.append(num_sentences)

    profiler.__exit__(None, None, None)
    if args.profile:
        table = profiler.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=25)
        print(table, file=sys.stderr)
    blocks = range(0, args.steps - args.block + 1, args.block)
    token_rates = [sum(tokens[i:i + args.block]) / sum(durations[i:i + args.block]) for i in blocks]
    sentence_rates = [sum(sentences[i:i + args.block]) / sum(durations[i:i + args.block]) for i in blocks]
    result = {
        "benchmark": "train",
        "overrides": args.overrides,
        "steps": args.steps,
        "warmup": args.warmup,
        "precision": args.precision,
        "tgt_tokens_per_sec": round(statistics.median(token_rates), 1),
        "tgt_tokens_per_sec_min": round(min(token_rates), 1),
        "tgt_tokens_per_sec_max": round(max(token_rates), 1),
        "sentences_per_sec": round(statistics.median(sentence_rates), 2),
        "tgt_tokens_per_sec_overall": round(sum(tokens) / sum(durations), 1),
        "parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "final_loss": round(loss.item(), 4),
        **environment(device),
    }
    if device.type == "cuda":
        result["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
