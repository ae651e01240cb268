"""Does the ONNX runtime translate exactly as PyTorch does? python benchmarks/onnx_equality.py --ckpt PATH [--split test]

Exports the checkpoint (or takes --model-dir, a folder export.py wrote from it), translates the split's sources
with both runtimes, greedy and beam 5 (the checkpoint's output cap, batches of 64), and prints one JSON object per
search: how many outputs are the same, the largest per-sentence score difference where they are, both BLEUs, and
every sentence that differs, with what shows whether it is a near-tie: both outputs scored by the PyTorch model
(teacher forcing; for beam search, length-normalised as the search scores them). A near-tie is two outputs whose
scores differ by less than the runtimes' round-off can move them.

    python benchmarks/onnx_equality.py --ckpt <run>/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydra import compose, initialize_config_dir  # noqa: E402

from seq2seq import Translator  # noqa: E402
from seq2seq.config import register_configs  # noqa: E402
from seq2seq.decode_options import DecodeOptions  # noqa: E402
from seq2seq.export.exporter import export_checkpoints  # noqa: E402
from seq2seq.inference.evaluation import encoded_split  # noqa: E402
from seq2seq.inference.metrics import score_translations  # noqa: E402
from seq2seq.runtime import OnnxTranslator  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--model-dir", default=None, help="a folder export.py wrote from --ckpt (default: export now)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beam-size", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=[f"ckpt_path={args.ckpt}", f"split={args.split}"])
    pytorch = Translator.from_checkpoint(args.ckpt, device="cpu")
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(args.model_dir) if args.model_dir else Path(scratch) / "exported"
        if not args.model_dir:
            export_checkpoints([Path(args.ckpt)], model_dir)
        onnx = OnnxTranslator.from_dir(model_dir, threads=args.threads)
        _, encoded = encoded_split(cfg, pytorch)
        references = encoded.reference_sets()
        for options in (DecodeOptions(beam_size=1), DecodeOptions(beam_size=args.beam_size)):
            print(json.dumps(compare(pytorch, onnx, encoded.src_ids, references, options, args.batch_size)))


def compare(pytorch, onnx, src_ids, references, options: DecodeOptions, batch_size: int) -> dict:
    expected = pytorch.decoding.translate_ids(src_ids, options, batch_size=batch_size, max_tokens=None)
    got = onnx.decoding.translate_ids(src_ids, options, batch_size=batch_size, max_tokens=None)
    same = [index for index, (a, b) in enumerate(zip(got, expected)) if a.text == b.text]
    differing = []
    for index in sorted(set(range(len(got))) - set(same)):
        # Both outputs under the PyTorch model, scored as the search scores them.
        texts = [expected[index].text, got[index].text]
        scores = pytorch.decoding.score_ids([src_ids[index]] * 2, pytorch.text.targets(texts), batch_size=2,
                                            max_tokens=None)
        penalties = [((5.0 + s.num_tokens) / 6.0) ** options.length_penalty if options.beam_size > 1 else 1.0
                     for s in scores]
        differing.append({"index": index, "pytorch": texts[0], "onnx": texts[1],
                          "pytorch_model_scores": [s.log_prob / p for s, p in zip(scores, penalties)],
                          "search_scores": [expected[index].score, got[index].score]})
    score_gap = max((abs(got[i].score - expected[i].score) for i in same), default=0.0)
    bleu = [score_translations([t.text for t in result], references).bleu for result in (expected, got)]
    return {"search": "greedy" if options.beam_size == 1 else f"beam {options.beam_size}",
            "sentences": len(got), "same_output": len(same), "same_fraction": len(same) / len(got),
            "max_score_difference_where_same": score_gap, "bleu_pytorch": bleu[0], "bleu_onnx": bleu[1],
            "bleu_difference": bleu[1] - bleu[0], "differing": differing}


if __name__ == "__main__":
    main()
