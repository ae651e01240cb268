"""How big the signals are at initialization: python benchmarks/init_signal.py [--variants ...] [--] [overrides]

Builds the configured model once per variant (a space-separated set of overrides, e.g. "model.init=pytorch"),
runs one teacher-forced training batch through it in eval mode, and prints one JSON object: per variant the
root mean square of the source embeddings, the encoder's outputs and the decoder's attentional vectors (what
the output layer reads and input feeding feeds back), the spread of the logits, the attention's entropy
relative to uniform attention, and the loss. No training: it explains the learning curves of
``learning_curve.py`` (benchmarks/README.md, "Learning per step").

    python benchmarks/init_signal.py experiment=ref_bilstm data.root=../shared/data/multi30k-tok
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from common import build, compose_config
from seq2seq.data.tokenizer import PAD_ID

VARIANTS = [
    "model.init=pytorch",
    "model.init=xavier model.embedding_init_std=null",
    "model.init=uniform model.init_range=0.05 model.embedding_init_std=null",
    "model.init=uniform model.init_range=0.1 model.embedding_init_std=null",
    "model.init=uniform model.init_range=0.15 model.embedding_init_std=null",
    "model.init=pytorch model.embedding_init_std=0.0577",
    "model.init=uniform model.init_range=0.1 model.embedding_init_std=1.0",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=VARIANTS, help="one model per variant: overrides, space-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for train.py, shared by every variant")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    report = {"benchmark": "init_signal", "overrides": args.overrides, "seed": args.seed, "variants": {}}
    batch = None
    for variant in args.variants:
        torch.manual_seed(args.seed)
        datamodule, module = build(compose_config([*args.overrides, *variant.split()]))
        if batch is None:
            batch = next(iter(datamodule.train_dataloader()))  # the same batch for every variant
        report["variants"][variant] = signal_sizes(module.model.eval(), batch)
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
