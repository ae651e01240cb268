"""How big the signals are at initialization: python benchmarks/init_signal.py [--schemes ...] [--] [overrides]

Builds the configured model once per initialization scheme (``model.init`` and ``model.init_range``; e.g.
``uniform:0.1``, ``xavier``, ``pytorch``), runs one teacher-forced training batch through it in eval mode,
and prints one JSON object: per scheme the root mean square of the embeddings, the encoder's outputs and the
decoder's attentional vectors (what the output layer reads and input feeding feeds back), the spread of the
logits, the attention's entropy relative to uniform attention, and the loss. No training: it explains the
learning curves of ``learning_curve.py`` (benchmarks/README.md, "Learning per step").

    python benchmarks/init_signal.py experiment=ref_bilstm data.root=../shared/data/multi30k-tok
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from common import build, compose_config
from seq2seq.data.tokenizer import PAD_ID


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schemes", nargs="+", default=["pytorch", "xavier", "uniform:0.05", "uniform:0.1", "uniform:0.15"],
                        help="scheme or uniform:RANGE, one model each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for train.py")
    args = parser.parse_args()
    torch.set_num_threads(1)

    report = {"benchmark": "init_signal", "overrides": args.overrides, "seed": args.seed, "schemes": {}}
    batch = None
    for scheme in args.schemes:
        name, _, init_range = scheme.partition(":")
        overrides = [*args.overrides, f"model.init={name}"] + ([f"model.init_range={init_range}"] if init_range else [])
        torch.manual_seed(args.seed)
        datamodule, module = build(compose_config(overrides))
        if batch is None:
            batch = next(iter(datamodule.train_dataloader()))  # the same batch for every scheme
        report["schemes"][scheme] = signal_sizes(module.model.eval(), batch)
    print(json.dumps(report))


@torch.no_grad()
def signal_sizes(model, batch) -> dict[str, float]:
    def rms(tensor: torch.Tensor) -> float:
        return float(tensor.pow(2).mean().sqrt())

    encoded = model.encoder(batch.src, batch.src_lengths)
    decoded = model.decode(batch.src, batch.src_lengths, batch.tgt_in)
    real = batch.tgt_out != PAD_ID  # (B, T)
    logits = model.output_layer(decoded.outputs[real])  # (N, V)
    weights = decoded.attention[real]  # (N, S)
    entropy = -(weights * weights.clamp_min(1e-12).log()).sum(-1)  # (N,)
    source_lengths = batch.src_lengths.unsqueeze(1).expand_as(real)[real].float()  # (N,)
    uniform_entropy = source_lengths.log().clamp_min(1e-6)  # one-token sources have no choice to make
    return {
        "src_embedding_rms": rms(model.encoder.embedding(batch.src)[encoded.mask]),
        "encoder_output_rms": rms(encoded.outputs[encoded.mask]),
        "attentional_rms": rms(decoded.outputs[real]),
        "logit_std": float(logits.std()),
        "attention_entropy_vs_uniform": float((entropy / uniform_entropy)[source_lengths > 1].mean()),
        "loss": float(F.cross_entropy(logits, batch.tgt_out[real])),
    }


if __name__ == "__main__":
    main()
