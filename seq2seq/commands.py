"""The console commands, for an installed package: ``seq2seq-train``, ``seq2seq-evaluate``, ``seq2seq-serve``,
``seq2seq-export``, and the same as ``python -m seq2seq train|evaluate|serve|export``.

Each is a Hydra application over the configs shipped inside the package (``pkg://seq2seq.conf``, the
repository's ``conf/`` folder installed as ``seq2seq/conf``), so it works from any folder after a plain
``pip install .``; runs, logs and the built-in task's files go under the current folder, as from a checkout.
A user's own configs join with Hydra's search path: ``--config-dir my_conf`` (or
``hydra.searchpath=[file://my_conf]``) adds ``my_conf/experiment/mine.yaml`` as ``experiment=mine``.

``train.py``, ``evaluate.py``, ``serve.py`` and ``export.py`` at the repository root run the same functions below over
``conf/`` beside them. The heavy imports (Lightning, the service) wait until a command runs.
"""

from __future__ import annotations

import sys
from typing import Optional

import hydra
from omegaconf import DictConfig

from seq2seq.cli import run_reporting_errors
from seq2seq.config import register_configs

CONFIGS = "pkg://seq2seq.conf"

register_configs()


def train_and_score(cfg: DictConfig) -> Optional[float]:
    """Train; the value a sweeper (``hparams_search=optuna``) optimises."""
    from seq2seq.training.run import optimized_value, train

    return optimized_value(cfg, train(cfg))


def evaluate(cfg: DictConfig) -> None:
    """Score a checkpoint on a split, or translate raw text with it."""
    from seq2seq.inference.evaluation import evaluate as run_evaluation

    run_evaluation(cfg)


def serve(cfg: DictConfig) -> None:
    """The translation service; it needs the ``serve`` extra."""
    try:
        from seq2seq.inference.service import serve as run_service
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(f"{error.name} is missing: the service needs the serve extra, "
                                  f"pip install \"seq2seq[serve]\"") from None
    run_service(cfg)


def export(cfg: DictConfig) -> None:
    """Write a checkpoint as ONNX graphs; it needs the ``onnx`` extra."""
    try:
        from seq2seq.export.exporter import export_from_config
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(f"{error.name} is missing: export needs the onnx extra, "
                                  f"pip install \"seq2seq[onnx]\"") from None
    export_from_config(cfg)


# A bad setting, file or checkpoint is one line on stderr, naming it; SIGTERM/Ctrl-C print how to resume.
@hydra.main(version_base="1.3", config_path=CONFIGS, config_name="train")
def train_command(cfg: DictConfig) -> Optional[float]:
    return run_reporting_errors(train_and_score, cfg, "seq2seq-train")


@hydra.main(version_base="1.3", config_path=CONFIGS, config_name="evaluate")
def evaluate_command(cfg: DictConfig) -> None:
    run_reporting_errors(evaluate, cfg, "seq2seq-evaluate")


@hydra.main(version_base="1.3", config_path=CONFIGS, config_name="serve")
def serve_command(cfg: DictConfig) -> None:
    run_reporting_errors(serve, cfg, "seq2seq-serve")


@hydra.main(version_base="1.3", config_path=CONFIGS, config_name="export")
def export_command(cfg: DictConfig) -> None:
    run_reporting_errors(export, cfg, "seq2seq-export")


COMMANDS = {"train": train_command, "evaluate": evaluate_command, "serve": serve_command, "export": export_command}


def main(argv: Optional[list[str]] = None) -> None:
    """``python -m seq2seq COMMAND [overrides ...]``: the command, then Hydra's own arguments."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        given = f"unknown command {argv[0]!r}; " if argv and not argv[0].startswith("-") else ""
        sys.exit(f"usage: python -m seq2seq {{{','.join(COMMANDS)}}} [key=value ...] [--help]\n"
                 f"error: {given}choose one of: {', '.join(COMMANDS)}")
    sys.argv = [f"seq2seq-{argv[0]}", *argv[1:]]  # Hydra reads its overrides (and --help, -m) from sys.argv
    COMMANDS[argv[0]]()
