"""Long runs in batch jobs: progress as plain log lines, the same command resuming a preempted job, runs shorter than
an epoch, validation every N steps.

One reference run, with its output redirected to a file as a batch job's is, and one "preempted" run: the same
command, stopped with SIGUSR1 (what docs/cluster.md's SLURM script sends before the time limit) right after a
mid-epoch validation, then started again unchanged. Both validate every 3 steps (epochs of 7) and stop early on
val/bleu, with dropout on: the resumed run matching the reference in losses, validations, early stop and best
checkpoint shows that weights, data order, dropout masks and the callbacks' state all continue.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seq2seq.checkpoint import read_checkpoint
from seq2seq.training.run import train
from tests.e2e.conftest import compose_train, script_command, tiny_overrides
from tests.helpers.signalled_run import run_and_signal, wait_for_signal_overrides

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]

ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
STEPS_PER_EPOCH = 7  # 200 training pairs in batches of 32
VALIDATED_STEPS = [3, 6, 10]  # every 3 steps of each epoch; the third without improvement stops the run
STOP_AT = 6  # the preempted run is signalled at this step, which a validation follows


def command_overrides(base: Path, run_name: str) -> list[str]:
    """tiny_overrides with the progress bar as configured (a file is no terminal: it is dropped there)."""
    tiny = [o for o in tiny_overrides(base) if not o.startswith(("output_dir=", "trainer.enable_progress_bar=",
                                                                 "trainer.log_every_n_steps=", "num_logged_samples="))]
    return tiny + [
        f"run_name={run_name}", "resume=auto", "model.dropout=0.2", "optim.lr=0.01", "num_logged_samples=0",
        "trainer.val_check_interval=3", "trainer.log_every_n_steps=2",
        # val/bleu stays near 0 on this tiny model: no validation improves it by a point.
        "callbacks.early_stopping.patience=2", "callbacks.early_stopping.min_delta=1.0",
    ]


def run_dir(base: Path, run_name: str) -> Path:
    return base / "logs" / "train" / "runs" / run_name


def scalars(run: Path) -> dict[str, dict[int, float]]:
    """Every scalar TensorBoard received, by tag and step (a resumed run's folder holds two event files)."""
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {event.step: event.value for event in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def event_steps(events_file: Path, tag: str) -> list[int]:
    events = EventAccumulator(str(events_file), size_guidance={"scalars": 0})
    events.Reload()
    return [event.step for event in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, its output redirected to run.log as in ``python train.py ... > run.log 2>&1``."""
    base = tmp_path_factory.mktemp("reference")
    log_file = base / "run.log"
    with open(log_file, "w") as output:
        result = subprocess.run(script_command("train.py", *command_overrides(base, "reference")), cwd=base,
                                stdout=output, stderr=subprocess.STDOUT, timeout=300, env=ONE_THREAD)
    assert result.returncode == 0, log_file.read_text()[-3000:]
    return base, log_file.read_text()


STEP_LINE = re.compile(
    r"epoch (\d+)/2 \| step (\d+)/(\d+) \| loss (\S+) \| ppl (\S+) \| lr (\S+) \| gnorm (\S+) \| (\d+) tgt tok/s \| "
    r"elapsed \d+:\d\d:\d\d \| eta \d+:\d\d:\d\d$"
)
VALIDATION_LINE = re.compile(r"validation \| epoch (\d+)/2 \| step (\d+) \| (.*)$")


def progress_lines(text: str) -> list[str]:
    return [line.split("[seq2seq.training.progress_log][INFO] - ", 1)[1] for line in text.splitlines()
            if "[seq2seq.training.progress_log][INFO] - " in line]


def test_a_redirected_run_logs_steps_and_validations_with_the_values_tensorboard_received(reference):
    base, output = reference
    run = run_dir(base, "reference")
    logged = scalars(run)
    lines = progress_lines(output)
    assert lines == progress_lines((run / "train.log").read_text())  # the run's train.log holds the same lines
    assert "it/s" not in output  # no frame of the rich progress bar ("Epoch 0/1 ━━━ 3/7 ... 28.57it/s") in a file

    # Every log_every_n_steps steps, with what TensorBoard plots at step - 1 (Lightning counts batches from 0).
    steps = [STEP_LINE.match(line) for line in lines if line.startswith("epoch ")]
    assert all(steps), lines
    final_step = VALIDATED_STEPS[-1]
    assert [int(m[2]) for m in steps] == list(range(2, final_step + 1, 2))
    for match in steps:
        epoch, step, total = int(match[1]), int(match[2]), int(match[3])
        assert epoch == (step - 1) // STEPS_PER_EPOCH + 1 and total == 2 * STEPS_PER_EPOCH
        for value, tag in ((match[4], "train/loss"), (match[5], "train/ppl"), (match[6], "lr-Adam"),
                           (match[7], "train/grad_norm")):
            assert float(value) == pytest.approx(logged[tag][step - 1], rel=1e-3), (tag, step)
        assert int(match[8]) == pytest.approx(logged["train/tgt_tokens_per_sec"][step - 1], abs=1)

    # After every validation: each val/* metric, the best so far and the checkpoint written.
    validations = [VALIDATION_LINE.match(line) for line in lines if line.startswith("validation ")]
    assert [int(m[2]) for m in validations] == VALIDATED_STEPS
    for match in validations:
        step = int(match[2])
        shown = dict(part.split(" ", 1) for part in match[3].split(" | ") if part.startswith("val/"))
        assert set(shown) == {"val/bleu", "val/cer", "val/chrf", "val/chrf_pp", "val/exact_match", "val/loss", "val/ppl",
                              "val/ter", "val/wer"}
        for tag, value in shown.items():
            assert float(value) == pytest.approx(logged[tag][step - 1], rel=1e-3, abs=1e-9), (tag, step)
    best = "checkpoints/best-epoch00-step3.ckpt"
    assert validations[0][3].endswith(f"new best val/bleu {lines_value(validations[0][3], 'val/bleu')}, saved {best}")
    assert f"best val/bleu 0 ({best}) | no improvement for 1/2 validations" in validations[1][3]
    assert validations[2][3].endswith("no improvement for 2/2 validations | early stopping")
    assert (run / best).is_file() and len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1

    # Early stopping acted at the mid-epoch validation, not at an epoch's end.
    assert read_checkpoint(run / "checkpoints" / "last.ckpt").global_step == final_step
    ended = rf"training ended \| epoch 2/2 \| step {final_step} \| elapsed \S+ \| best val/bleu \S+: {best}"
    assert re.fullmatch(ended, lines[-2]), lines[-2]
    test_line = lines[-1]
    assert test_line.startswith(f"test | {best} | test/bleu ")
    assert float(lines_value(test_line, "test/loss")) == pytest.approx(next(iter(logged["test/loss"].values())),
                                                                      rel=1e-3)


def lines_value(line: str, name: str) -> str:
    return re.search(rf"\b{re.escape(name)} (\S+?)(?:,| \||$)", line)[1]


def test_the_same_command_resumes_a_run_stopped_by_sigusr1_as_if_never_stopped(reference, tmp_path):
    reference_base, _ = reference
    expected = scalars(run_dir(reference_base, "reference"))
    # The reference's data folder, so both runs read byte-identical files.
    numbers = f"data.root={reference_base / 'numbers'}"
    marker = tmp_path / f"reached_step_{STOP_AT}"
    command = script_command("train.py", *[o if not o.startswith("data.root=") else numbers
                                           for o in command_overrides(tmp_path, "job42")],
                             *wait_for_signal_overrides(STOP_AT, marker))
    run = run_dir(tmp_path, "job42")

    stopped = run_and_signal(command, cwd=tmp_path, marker=marker, signum=signal.SIGUSR1, env=ONE_THREAD)
    stderr = stopped.stderr
    assert stopped.returncode == 128 + signal.SIGUSR1, stderr[-3000:]
    message = stderr.strip().splitlines()[-1]
    assert message.startswith(f"training stopped by SIGUSR1 at global step {STOP_AT}; saved {run / 'checkpoints'}")
    assert message.endswith(" ".join(command[2:]))  # "Resume with:" the very same command
    assert read_checkpoint(run / "checkpoints" / "last.ckpt").global_step == STOP_AT

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=ONE_THREAD)
    assert again.returncode == 0, again.stderr[-3000:]

    files = sorted((run / "tensorboard").glob("events.*"), key=lambda path: path.stat().st_mtime)
    segments = [steps for steps in (event_steps(path, "train/loss") for path in files) if steps]
    assert len(segments) == 2 and max(segments[0]) < STOP_AT <= min(segments[1])  # the second went on from step 6
    logged = scalars(run)  # both segments' events, in the one folder
    for tag in ("train/loss", "val/bleu", "val/loss"):
        assert logged[tag].keys() == expected[tag].keys(), tag  # no step missing or repeated
        for step, value in logged[tag].items():
            assert value == pytest.approx(expected[tag][step], rel=1e-5, abs=1e-6), (tag, step)
    assert read_checkpoint(run / "checkpoints" / "last.ckpt").global_step == VALIDATED_STEPS[-1]  # stopped early too
    assert sorted(path.name for path in (run / "checkpoints").glob("best-*.ckpt")) == ["best-epoch00-step3.ckpt"]
    train_log = (run / "train.log").read_text()
    assert "resume=auto: no " in train_log  # the first launch started from scratch, the second went on:
    assert f"resume=auto: continuing from {run / 'checkpoints' / 'last.ckpt'}" in train_log
    steps = [int(m[1]) for m in re.finditer(r"\| step (\d+)/", train_log)]
    assert steps == list(range(2, VALIDATED_STEPS[-1] + 1, 2))  # appended to: both segments' lines, in order


def test_a_resume_after_a_mid_epoch_validation_keeps_that_validations_plateau_update(tmp_path):
    """Lightning writes last.ckpt during a validation and updates the plateau schedule after it: the resumed run
    must still make that update (the checkpoint carries the validation's metrics for it). val/loss monitored for a
    maximum with patience 0: the rate halves after every validation but the first."""
    plateau = ["optim.scheduler=plateau", "optim.plateau_patience=0", "optim.plateau_factor=0.5",
               "monitor=val/loss", "monitor_mode=max", "callbacks.early_stopping.patience=100",
               "callbacks.early_stopping.min_delta=0", "trainer.max_epochs=2"]
    reference = subprocess.run(script_command("train.py", *command_overrides(tmp_path, "reference"), *plateau),
                               cwd=tmp_path, capture_output=True, text=True, timeout=300, env=ONE_THREAD)
    assert reference.returncode == 0, reference.stderr[-3000:]
    marker = tmp_path / f"reached_step_{STOP_AT}"
    command = script_command("train.py", *command_overrides(tmp_path, "job"), *plateau,
                             *wait_for_signal_overrides(STOP_AT, marker))
    stopped = run_and_signal(command, cwd=tmp_path, marker=marker, signum=signal.SIGUSR1, env=ONE_THREAD)
    assert stopped.returncode == 128 + signal.SIGUSR1, stopped.stderr[-3000:]
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=ONE_THREAD)
    assert again.returncode == 0, again.stderr[-3000:]

    expected, resumed = scalars(run_dir(tmp_path, "reference")), scalars(run_dir(tmp_path, "job"))
    assert resumed["lr-Adam"] == pytest.approx(expected["lr-Adam"])
    assert min(expected["lr-Adam"].values()) < max(expected["lr-Adam"].values())  # the schedule did act
    for step, loss in expected["train/loss"].items():
        assert resumed["train/loss"][step] == pytest.approx(loss, rel=1e-5, abs=1e-6), step


CUT_SHORT = {
    # max_steps within the first epoch, and in the middle of the second (epochs of 7 steps).
    "max_steps_within_an_epoch": (["trainer.max_steps=3"], 3, "epoch 1/2"),
    "max_steps_mid_epoch": (["trainer.max_steps=10"], 10, "epoch 2/2"),
    # Validation every 10 steps across epochs of 7: the only epoch ends between two validations.
    "last_epoch_between_validations": (["trainer.val_check_interval=10", "trainer.check_val_every_n_epoch=null",
                                        "trainer.max_epochs=1", "optim.scheduler=plateau"], STEPS_PER_EPOCH,
                                       "epoch 1/1"),
}


@pytest.mark.parametrize("extra, last_step, epoch", CUT_SHORT.values(), ids=CUT_SHORT.keys())
def test_a_run_cut_short_validates_its_last_weights_which_can_be_the_best(tmp_path, caplog, extra, last_step, epoch):
    caplog.set_level(logging.INFO, logger="seq2seq.training.progress_log")
    # val/loss falls while this tiny model learns, so the last weights are the best.
    metrics = train(compose_train(tiny_overrides(tmp_path) + extra + ["monitor=val/loss", "monitor_mode=min",
                                                                      "optim.lr=0.01"]))
    checkpoints = tmp_path / "run" / "checkpoints"
    assert read_checkpoint(checkpoints / "last.ckpt").global_step == last_step
    (best,) = checkpoints.glob("best-*.ckpt")
    assert read_checkpoint(best).global_step == last_step and best.name.endswith(f"-step{last_step}.ckpt")
    progress = [r.getMessage() for r in caplog.records if r.name == "seq2seq.training.progress_log"]
    closing = [line for line in progress if line.startswith(f"validation | {epoch} | step {last_step} |")]
    assert len(closing) == 1 and closing[0].endswith("closing validation (the run's last weights)")
    assert "val/loss" in metrics and progress[-1].startswith(f"test | checkpoints/{best.name} | test/bleu ")


def test_a_run_ended_by_max_time_validates_its_last_weights(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="seq2seq.training.progress_log")
    train(compose_train(tiny_overrides(tmp_path) + ["trainer.max_time=00:00:00:03", "trainer.max_epochs=1000",
                                                    "callbacks.early_stopping.patience=1000",
                                                    "test_after_training=false"]))
    last_step = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt").global_step
    progress = [r.getMessage() for r in caplog.records if r.name == "seq2seq.training.progress_log"]
    validations = [line for line in progress if line.startswith("validation |")]
    assert f"| step {last_step} |" in validations[-1] and validations[-1].endswith("closing validation (the run's "
                                                                                     "last weights)")


def test_a_run_without_any_validation_ends_cleanly_and_tests_its_final_weights(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="seq2seq.training.progress_log")
    metrics = train(compose_train(tiny_overrides(tmp_path) + ["trainer.max_steps=3", "trainer.limit_val_batches=0"]))
    checkpoints = tmp_path / "run" / "checkpoints"
    assert read_checkpoint(checkpoints / "last.ckpt").global_step == 3
    assert not list(checkpoints.glob("best-*.ckpt"))
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == "WARNING" and "no validation ran" in r.getMessage()]
    assert len(warnings) == 1 and "global step 3 without one" in warnings[0]
    assert str(checkpoints / "last.ckpt") in warnings[0]
    assert "val/bleu" not in metrics and "test/bleu" in metrics  # the final weights were tested
    progress = [r.getMessage() for r in caplog.records if r.name == "seq2seq.training.progress_log"]
    assert [line.split(" | ")[1] for line in progress[:3]] == [f"step {n}/3" for n in (1, 2, 3)]
    assert progress[-2].startswith("training ended | epoch 1/2 | step 3 |")
    assert progress[-2].endswith("no validation ran")
    assert progress[-1].startswith("test | the final weights | test/bleu ")


@pytest.mark.parametrize("val_check_interval", [2, None])
def test_the_plateau_schedule_counts_every_validation_within_an_epoch(tmp_path, val_check_interval):
    """Monitoring val/loss for a *maximum* makes every validation after the first one "no better": with patience 0
    the rate halves after each of them — if the scheduler sees them. One epoch of 7 steps (the tiny data's 200
    pairs in batches of 32); last.ckpt, written after the last one, holds the rate that step trained with."""
    extra = ["trainer.max_epochs=1", "trainer.limit_train_batches=7", "optim.scheduler=plateau",
             "optim.plateau_patience=0", "optim.plateau_factor=0.5", "monitor=val/loss", "monitor_mode=max",
             "test_after_training=false"]
    if val_check_interval:
        extra.append(f"trainer.val_check_interval={val_check_interval}")
    train(compose_train(tiny_overrides(tmp_path) + extra))
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    learning_rate = checkpoint["optimizer_states"][0]["param_groups"][0]["lr"]
    # validations after steps 2, 4 and 6: two reductions; one validation at the epoch's end: none
    assert learning_rate == pytest.approx(1e-3 * 0.5 ** 2 if val_check_interval else 1e-3)


def has_optuna_sweeper() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(not has_optuna_sweeper(),
                    reason="hydra-optuna-sweeper is an optional extra (pip install -e '.[optuna]')")
def test_an_optuna_sweep_fails_a_trial_without_validation_saying_why_and_goes_on(tmp_path):
    tiny = [o for o in tiny_overrides(tmp_path) if not o.startswith(("output_dir=", "model.hidden_size="))]
    result = subprocess.run(
        script_command(
            "train.py", "hparams_search=optuna", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path / 'sweep'}",
            # A trial that validates on no batches has no val/bleu. Seed 10 draws 0 first, then 1.0.
            '++hydra.sweeper.params={model.hidden_size:"choice(16)",model.dropout:"choice(0.0)",'
            'optim.lr:"choice(0.01)",trainer.limit_val_batches:"choice(0,1.0)"}', "hydra.sweeper.sampler.seed=10",
            *tiny, "trainer.max_epochs=1", "trainer.max_steps=3", "test_after_training=false", "num_logged_samples=0",
        ),
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=ONE_THREAD,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    launched = re.findall(r"#(\d) : .*trainer\.limit_val_batches=([\d.]+)", output)
    assert launched == [("0", "0"), ("1", "1.0")], launched
    assert re.search(r"Failed experiment: optimized_metric: this run has no val/bleu .*no validation ran", output)
    sweep = tmp_path / "sweep"
    assert read_checkpoint(sweep / "0" / "checkpoints" / "last.ckpt").global_step == 3  # the failed trial's work
    assert "trainer.limit_val_batches: 1.0" in (sweep / "optimization_results.yaml").read_text()  # the sweep went on to the next
