"""The package installed as a tool: a plain (non-editable) ``pip install`` into a fresh virtual environment, the
console commands run from an empty folder, with the configs shipped inside the package, and a user's own
config folder on Hydra's search path."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TORCH = "torch==2.13.0"  # the CPU build .ci/run installs first; a bare "torch" would pull a CUDA build

pytestmark = pytest.mark.slow

TINY = ["data.numbers.train_size=200", "data.numbers.val_size=20", "data.numbers.test_size=20",
        "data.numbers.max_number=999", "data.batch_size=32", "model.src_embedding_dim=16",
        "model.tgt_embedding_dim=16", "model.hidden_size=16", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def run(command: list[str], cwd: Path, timeout: int = 900, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, input=stdin)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh virtual environment holding torch (CPU) and this package, installed from a copy of the
    source as a user would from a clone: not editable, so nothing of the checkout is on its path."""
    root = tmp_path_factory.mktemp("installed")
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run([*pip, TORCH], cwd=root)
    run([*pip, f"{REPO}[onnx]"], cwd=root)  # onnx: the export command and the ONNX runtime come installed too
    return bin_dir


def test_the_installed_commands_train_and_evaluate_from_an_empty_folder(installed, tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    python = str(installed / "python")
    where = run([python, "-c", "import seq2seq, sys; print(seq2seq.__file__)"], cwd=work).stdout.strip()
    assert str(REPO) not in where and "site-packages" in where, where  # the installed copy, not the checkout

    run([str(installed / "seq2seq-train"), "trainer.fast_dev_run=true", *TINY], cwd=work)
    run([str(installed / "seq2seq-train"), "run_name=short", "trainer.max_steps=6", "test_after_training=false",
         *TINY], cwd=work)
    run_dir = work / "logs" / "train" / "runs" / "short"
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file() and (run_dir / "train.log").is_file()
    assert (work / "data" / "numbers" / "train.de").is_file()  # the built-in task, made in the user's folder

    evaluated = run([str(installed / "seq2seq-evaluate"), f"ckpt_path={checkpoint}", "split=val",
                     "decode.beam_size=2"], cwd=work)
    assert "bleu" in (evaluated.stdout + evaluated.stderr).lower()
    assert list((run_dir / "eval").glob("*.json"))

    exported = work / "exported"
    run([str(installed / "seq2seq-export"), f"ckpt_path={checkpoint}", f"output_dir={exported}"], cwd=work)
    translated = run([str(installed / "seq2seq-evaluate"), "runtime=onnx", f"model_dir={exported}", "input=-"],
                     cwd=work, stdin="elf\nzweiundvierzig\n")
    torch_translated = run([str(installed / "seq2seq-evaluate"), f"ckpt_path={checkpoint}", "input=-"], cwd=work,
                           stdin="elf\nzweiundvierzig\n")
    assert translated.stdout == torch_translated.stdout and len(translated.stdout.splitlines()) == 2

    helped = run([python, "-m", "seq2seq", "train", "--help"], cwd=work)
    assert "seq2seq-train" in helped.stdout and "experiment:" in helped.stdout
    refused = subprocess.run([python, "-m", "seq2seq", "trian"], cwd=work, capture_output=True, text=True)
    assert refused.returncode != 0 and "unknown command 'trian'" in refused.stderr


def test_a_users_experiment_from_their_own_config_folder(installed, tmp_path):
    experiment = tmp_path / "my_conf" / "experiment"
    experiment.mkdir(parents=True)
    (experiment / "mine.yaml").write_text("# @package _global_\nmodel:\n  hidden_size: 24\noptim:\n  lr: 0.003\n")
    work = tmp_path / "work"
    work.mkdir()
    run([str(installed / "seq2seq-train"), "--config-dir", str(tmp_path / "my_conf"), "experiment=mine",
         "run_name=mine", "trainer.fast_dev_run=true", *[o for o in TINY if "hidden_size" not in o]], cwd=work)
    composed = yaml.safe_load((work / "logs" / "train" / "runs" / "mine" / ".hydra" / "config.yaml").read_text())
    assert composed["model"]["hidden_size"] == 24 and composed["optim"]["lr"] == 0.003
    # The same folder through Hydra's search path, without --config-dir:
    run([str(installed / "python"), "-m", "seq2seq", "train",
         f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]", "experiment=mine", "run_name=again",
         "trainer.fast_dev_run=true", *[o for o in TINY if "hidden_size" not in o]], cwd=work)
    again = yaml.safe_load((work / "logs" / "train" / "runs" / "again" / ".hydra" / "config.yaml").read_text())
    assert again["model"]["hidden_size"] == 24
