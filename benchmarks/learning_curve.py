"""Learning per step: python benchmarks/learning_curve.py [--steps N] [--eval-every K] [--seeds S ...] [--] [overrides]

Trains a configuration for N optimizer steps with train.py's own code (``seq2seq.training.run.train``: same data
order, dropout masks, clipping, optimizer and schedule), validating every K steps (greedy, as training does),
then decodes the test split from the final weights with beam search, once per length penalty. With several
seeds, each is a run of its own. Prints one JSON object: for every run the validation loss, BLEU and chrF at
each K steps (read back from the run's TensorBoard events, the values TensorBoard shows), the mean training
loss over each K steps, and the test scores; then the mean over the seeds. Runs are kept under --output-dir.

    python benchmarks/learning_curve.py --steps 2000 experiment=ref_bilstm data.root=../shared/data/multi30k-tok
    python benchmarks/learning_curve.py --steps 500 --seeds 1 2 3 model.init=pytorch experiment=ref_bilstm ...

--score-command runs an extra scorer on every test hypotheses file ({hyp} is replaced by its path) and keeps
the JSON object it prints, e.g. ``--score-command "python ../shared/tools/bleu_lc_detok.py {hyp}"``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from common import REPO, compose_config, environment
from seq2seq.inference.evaluation import evaluate
from seq2seq.training import run as training

VALIDATION_METRICS = ("loss", "bleu", "chrf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps to train")
    parser.add_argument("--eval-every", type=int, default=250, help="validate every K steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234], help="one run per seed")
    parser.add_argument("--beam", type=int, default=5, help="beam size for the test split")
    parser.add_argument("--length-penalties", type=float, nargs="+", default=[0.0, 1.0],
                        help="GNMT length penalties (alpha) to decode the test split with")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where runs are kept (default: /tmp/seq2seq-learning-curve/<time>)")
    parser.add_argument("--score-command", default=None, help="extra scorer run on each hypotheses file ({hyp})")
    parser.add_argument("--reinit-embeddings", default=None, metavar="uniform:R|normal:S",
                        help="ablation only: after the model is built with its configured init, draw its embedding "
                             "matrices again from U(-R, R) or N(0, S^2) (padding rows stay 0)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for train.py")
    args = parser.parse_args()
    if args.steps < 1 or args.eval_every < 1:
        parser.error("--steps and --eval-every must be positive")

    torch.set_num_threads(args.threads)
    output_dir = args.output_dir or Path("/tmp/seq2seq-learning-curve") / time.strftime("%Y-%m-%d_%H-%M-%S")
    if args.reinit_embeddings is not None:
        reinit_embeddings(args.reinit_embeddings)

    runs = [run_one(args, seed, output_dir / f"seed{seed}") for seed in args.seeds]
    report = {
        "benchmark": "learning_curve",
        "overrides": args.overrides,
        "steps": args.steps,
        "eval_every": args.eval_every,
        "seeds": args.seeds,
        "reinit_embeddings": args.reinit_embeddings,
        "runs": runs,
        "mean": mean_over_runs(runs),
        **environment(torch.device("cpu")),
    }
    print(json.dumps(report))


def run_one(args: argparse.Namespace, seed: int, run_dir: Path) -> dict:
    cfg = compose_config([
        *args.overrides,
        f"seed={seed}",
        f"trainer.max_steps={args.steps}",
        "trainer.max_epochs=-1",
        "trainer.max_time=null",
        f"trainer.val_check_interval={args.eval_every}",
        "trainer.check_val_every_n_epoch=null",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "callbacks=none",  # no early stopping or best-checkpoint selection: N steps, then the final weights
        "test_after_training=false",
    ])
    cfg.output_dir = str(run_dir)
    start = time.perf_counter()
    training.train(cfg)
    train_seconds = time.perf_counter() - start
    scalars = read_scalars(run_dir / "tensorboard")

    validation = []
    for step, loss in sorted(scalars.get("val/loss", {}).items()):
        row = {"step": step}
        row.update({name: scalars[f"val/{name}"].get(step) for name in VALIDATION_METRICS})
        row["train_loss"] = interval_mean(scalars.get("train/loss", {}), step - args.eval_every, step)
        validation.append(row)

    test = []
    for alpha in args.length_penalties:
        hypotheses = run_dir / "eval" / f"test.beam{args.beam}.lp{alpha:g}.hyp"
        with contextlib.redirect_stdout(sys.stderr):  # its summary; stdout carries the JSON alone
            metrics = evaluate(compose_evaluate([
                f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
                f"decode.beam_size={args.beam}",
                f"decode.length_penalty={alpha}",
                f"output={hypotheses}",
            ]))
        row = {"beam": args.beam, "length_penalty": alpha, "bleu": metrics["bleu"], "chrf": metrics["chrf"],
               "hypotheses": str(hypotheses)}
        if args.score_command:
            row["external"] = external_score(args.score_command, hypotheses)
        test.append(row)
    return {"seed": seed, "run_dir": str(run_dir), "train_seconds": round(train_seconds, 1),
            "validation": validation, "test": test}


def compose_evaluate(overrides: list[str]):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="evaluate", overrides=overrides)


def read_scalars(event_dir: Path) -> dict[str, dict[int, float]]:
    """Every scalar TensorBoard received, as {tag: {optimizer steps done: value}} (a step's latest value wins).

    Lightning numbers TensorBoard's steps from 0: what it logs at step s was computed after s + 1 updates.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(event_dir.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            values = scalars.setdefault(tag, {})
            for event in accumulator.Scalars(tag):
                values[event.step + 1] = event.value
    return scalars


def interval_mean(values: dict[int, float], after: int, until: int) -> float | None:
    """Mean of the values logged at steps in (after, until]; None when there are none."""
    inside = [value for step, value in values.items() if after < step <= until]
    return statistics.fmean(inside) if inside else None


def external_score(command: str, hypotheses: Path) -> dict:
    argv = [part.replace("{hyp}", str(hypotheses)) for part in shlex.split(command)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"error: --score-command failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def mean_over_runs(runs: list[dict]) -> dict:
    """Validation metrics at each step and test scores, averaged over the seeds."""
    by_step: dict[int, list[dict]] = {}
    for run in runs:
        for row in run["validation"]:
            by_step.setdefault(row["step"], []).append(row)
    validation = []
    for step, rows in sorted(by_step.items()):
        mean = {"step": step, "runs": len(rows)}
        for name in (*VALIDATION_METRICS, "train_loss"):
            values = [row[name] for row in rows if row[name] is not None]
            mean[name] = statistics.fmean(values) if values else None
        validation.append(mean)
    test = []
    for index, first in enumerate(runs[0]["test"]):
        rows = [run["test"][index] for run in runs]
        mean = {"beam": first["beam"], "length_penalty": first["length_penalty"]}
        for name in ("bleu", "chrf"):
            values = [row[name] for row in rows]
            mean[name] = statistics.fmean(values)
            mean[f"{name}_each"] = values
        if "external" in first:
            mean["external_bleu_each"] = [row["external"].get("bleu") for row in rows]
        test.append(mean)
    return {"validation": validation, "test": test}


def reinit_embeddings(distribution: str) -> None:
    """Wrap train()'s module factory so that the embeddings are drawn again after the model's own init."""
    kind, _, size = distribution.partition(":")
    if kind not in ("uniform", "normal") or not size:
        raise SystemExit(f"error: --reinit-embeddings must be uniform:R or normal:S, got {distribution!r}")
    size = float(size)
    make_module = training.make_module

    def make_module_with_new_embeddings(cfg, datamodule):
        module = make_module(cfg, datamodule)
        with torch.no_grad():
            for embedding in (module.model.encoder.embedding, module.model.decoder.embedding):
                if kind == "uniform":
                    embedding.weight.uniform_(-size, size)
                else:
                    embedding.weight.normal_(0.0, size)
                embedding.weight[embedding.padding_idx].zero_()
        return module

    training.make_module = make_module_with_new_embeddings


if __name__ == "__main__":
    sys.exit(main())
