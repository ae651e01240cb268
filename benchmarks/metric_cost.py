"""What scoring a validation costs: python benchmarks/metric_cost.py REFERENCES [HYPOTHESES] [--repeat N]

Times, on one file of references (plain or .gz, one sentence per line), what every validation, test and
``evaluate.py`` run computes once the outputs are decoded: sacreBLEU's BLEU and chrF with exact match (what was
there before the error rates), and the token and character error rates (``seq2seq/inference/metrics.py``).
Without HYPOTHESES the references shifted by one line stand in for outputs (every output a different sentence:
the most edits, the slowest case). ``--times K`` scores K copies of the file together, for a larger set.
Prints one JSON object: seconds for each part (median of ``--repeat`` runs) and the error rates' share.

    python benchmarks/metric_cost.py ../shared/data/multi30k/val.en.gz
    python benchmarks/metric_cost.py data/numbers/val.en --times 6
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from pathlib import Path

import sacrebleu
import torch

from common import environment  # also puts the repository on sys.path
from seq2seq.inference.metrics import error_rates


def read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle]


def median_seconds(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("references", type=Path)
    parser.add_argument("hypotheses", type=Path, nargs="?", default=None)
    parser.add_argument("--times", type=int, default=1, help="score this many copies of the file together")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    references = read_lines(args.references)
    hypotheses = read_lines(args.hypotheses) if args.hypotheses else references[1:] + references[:1]
    if len(hypotheses) != len(references):
        parser.error(f"{len(hypotheses)} hypotheses but {len(references)} references")
    references, hypotheses = references * args.times, hypotheses * args.times

    def before() -> None:
        sacrebleu.metrics.BLEU().corpus_score(hypotheses, [references])
        sacrebleu.metrics.CHRF().corpus_score(hypotheses, [references])
        sum(h == r for h, r in zip(hypotheses, references))

    before_seconds = median_seconds(before, args.repeat)
    rates_seconds = median_seconds(lambda: error_rates(hypotheses, references), args.repeat)
    rates = error_rates(hypotheses, references)
    print(json.dumps({
        "references": str(args.references), "sentences": len(references),
        "bleu_chrf_exact_seconds": round(before_seconds, 4), "error_rates_seconds": round(rates_seconds, 4),
        "error_rates_share_of_scoring": round(rates_seconds / (before_seconds + rates_seconds), 4),
        "wer": round(rates.wer, 4), "cer": round(rates.cer, 4), **environment(torch.device("cpu")),
    }))


if __name__ == "__main__":
    main()
