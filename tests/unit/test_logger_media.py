"""Which logger gets what (seq2seq/training/logger_media.py), the note for those that take no figures, the error for
a logger whose package is missing, and that wandb and mlflow load only for their own loggers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from omegaconf import OmegaConf

from seq2seq.training import logger_media
from seq2seq.training.run import instantiate_loggers

REPO = Path(__file__).resolve().parents[2]


class NotebookLogger(Logger):
    """A logger of the user's own, known to nothing here."""

    name = "notebook"
    version = "0"

    def __init__(self) -> None:
        super().__init__()
        self.settings = {}

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        self.settings.update(params)

    def log_metrics(self, metrics, step=None) -> None:
        pass


def test_tensorboard_takes_figures_and_csv_and_unknown_loggers_get_one_note_each(tmp_path):
    loggers = [TensorBoardLogger(tmp_path, name="tb"), CSVLogger(tmp_path, name="csv"), NotebookLogger()]
    assert [media.name for media in logger_media.takers(loggers)] == ["tensorboard"]
    assert logger_media.no_media_notes(loggers) == [
        "logger csv: attention figures and sample translations are not logged (it takes no images or text)",
        "logger NotebookLogger: attention figures and sample translations are not logged (it takes no images or text)",
    ]


def test_every_logger_gets_the_settings(tmp_path):
    tensorboard, notebook = TensorBoardLogger(tmp_path, name="tb"), NotebookLogger()
    logger_media.log_hparams([tensorboard, notebook], {"model.hidden_size": 16, "seed": 1}, ["val/bleu"])
    assert notebook.settings == {"model.hidden_size": 16, "seed": 1}
    tensorboard.experiment.flush()
    assert list((tmp_path / "tb").rglob("events.*"))


def test_a_logger_whose_package_is_missing_names_its_key_and_the_extra(monkeypatch):
    import lightning.pytorch.loggers.wandb as lightning_wandb

    class Missing:
        def __bool__(self) -> bool:
            return False

        def __str__(self) -> str:
            return "Module not found: 'wandb'"

    monkeypatch.setattr(lightning_wandb, "_WANDB_AVAILABLE", Missing())
    node = OmegaConf.create({"wandb": {"_target_": "lightning.pytorch.loggers.WandbLogger", "offline": True}})
    with pytest.raises(ModuleNotFoundError, match=r"logger\.wandb .*wandb.*pip install -e '\.\[loggers\]'"):
        instantiate_loggers(node)


PROGRAM = """
import json, sys, tempfile
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from seq2seq.training import logger_media
from seq2seq.training.run import train
folder = tempfile.mkdtemp()
loggers = [TensorBoardLogger(folder), CSVLogger(folder)]
logger_media.log_hparams(loggers, {"seed": 1}, ["val/bleu"])
logger_media.takers(loggers), logger_media.no_media_notes(loggers), logger_media.finish(loggers, True)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & {"wandb", "mlflow"})))
"""


def test_wandb_and_mlflow_are_not_loaded_without_their_loggers():
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_loggers_are_told_to_send_no_usage_reports(monkeypatch):
    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    instantiate_loggers(OmegaConf.create({}))
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")  # a user's own choice stands
    instantiate_loggers(OmegaConf.create({}))
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"
