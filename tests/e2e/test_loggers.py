"""logger=csv, logger=wandb (offline), logger=mlflow (a store in the run's folder) and several at once: a short run
each, with no network, and what it left on disk: metrics, settings, attention figures and sample tables."""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import struct
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seq2seq.checkpoint import read_checkpoint
from seq2seq.training.run import train

pytestmark = pytest.mark.slow

NOTE = "logger csv: attention figures and sample translations are not logged (it takes no images or text)"
SHORT = ("trainer.max_epochs=1", "test_after_training=false")  # one epoch, then one validation


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def notes(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if "are not logged" in record.getMessage()]


def steps(run: Path) -> int:
    return read_checkpoint(run / "checkpoints" / "last.ckpt").global_step


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_csv_logger_writes_metrics_and_settings_and_says_once_that_it_takes_no_figures(train_config, tmp_path,
                                                                                       caplog):
    caplog.set_level(logging.INFO, logger="seq2seq.training.samples")
    train(train_config("logger=csv", "test_after_training=false"))  # two epochs: two validations
    folder = tmp_path / "run" / "csv"
    rows = csv_rows(folder / "metrics.csv")
    losses = [row["train/loss"] for row in rows if row["train/loss"]]
    bleus = [row["val/bleu"] for row in rows if row["val/bleu"]]
    assert len(losses) == steps(tmp_path / "run") and all(float(loss) > 0 for loss in losses)  # logged every step
    assert len(bleus) == 2
    assert "model.hidden_size: 16" in (folder / "hparams.yaml").read_text()
    assert sorted(path.name for path in folder.iterdir()) == ["hparams.yaml", "metrics.csv"]  # nothing for figures
    assert notes(caplog) == [NOTE]


def test_several_loggers_at_once_each_get_what_they_take(train_config, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="seq2seq.training.samples")
    train(train_config("logger=[tensorboard,csv]", *SHORT))
    run = tmp_path / "run"
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    assert sorted(events.Tags()["images"]) == ["attention/val_0", "attention/val_1"]  # num_logged_samples=2
    assert "samples/val/text_summary" in events.Tags()["tensors"]
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")
    assert "train/loss" in events.Tags()["scalars"]
    assert [row["val/bleu"] for row in csv_rows(run / "csv" / "metrics.csv") if row["val/bleu"]]
    assert notes(caplog) == [NOTE]  # about csv; tensorboard takes them


def wandb_records(path: Path):
    """The records of a wandb run file (``run-<id>.wandb``): a 7-byte header, then LevelDB's log format (32 KiB
    blocks of chunks: checksum, length, type; FULL=1, FIRST=2, MIDDLE=3, LAST=4), each record a protobuf."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    position, pending = 7, b""
    while position + 7 <= len(data):
        left_in_block = 32768 - position % 32768
        if left_in_block < 7:  # a block's tail too short for a chunk header is padding
            position += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if kind == 0:
            position += left_in_block
            continue
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def item_key(item) -> str:
    return item.key or "/".join(item.nested_key)


@pytest.mark.skipif(not installed("wandb"), reason="wandb is an optional extra: pip install -e '.[loggers]'")
def test_wandb_logger_runs_offline_with_metrics_settings_figures_and_samples(train_config, tmp_path, monkeypatch):
    # No API key, and the environment asking for online: offline comes from conf/logger/wandb.yaml.
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # nor a key saved by `wandb login`
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    train(train_config("logger=wandb", *SHORT))
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    history, settings, kinds, projects = [], {}, set(), []
    for record in wandb_records(next(runs[0].glob("run-*.wandb"))):
        kind = record.WhichOneof("record_type")
        kinds.add(kind)
        if kind == "run":
            projects.append(record.run.project)
        elif kind == "history":
            history.append({item_key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "config":
            settings.update({item_key(item): json.loads(item.value_json) for item in record.config.update})
    assert "exit" in kinds  # the run was finished, so its file is complete
    assert set(projects) == {"train"}  # task_name
    assert len([row for row in history if "train/loss" in row]) == steps(tmp_path / "run")
    assert len([row for row in history if "val/bleu" in row]) == 1
    assert settings["model.hidden_size"] == 16
    for tag in ("attention/val_0", "attention/val_1"):  # num_logged_samples=2
        (files,) = [row[f"{tag}/filenames"] for row in history if f"{tag}/filenames" in row]
        assert len(files) == 1 and (runs[0] / "files" / files[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tables = [row["samples/val/path"] for row in history if "samples/val/path" in row]
    assert len(tables) == 1
    table = json.loads((runs[0] / "files" / tables[0]).read_text())
    assert table["columns"] == ["source", "reference", "hypothesis"] and len(table["data"]) == 2


@pytest.mark.skipif(not installed("mlflow"), reason="mlflow is an optional extra: pip install -e '.[loggers]'")
def test_mlflow_logger_writes_metrics_params_figures_and_samples_to_the_run_folder(train_config, tmp_path,
                                                                                    monkeypatch):
    from mlflow.tracking import MlflowClient

    elsewhere = tmp_path / "elsewhere.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{elsewhere}")  # not used: conf/logger/mlflow.yaml says where
    train(train_config("logger=mlflow", *SHORT))
    run_dir = tmp_path / "run"
    assert not elsewhere.exists()
    client = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("train")  # task_name
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    last_step = steps(run_dir)
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == last_step
    assert len(client.get_metric_history(run.info.run_id, "val/bleu")) == 1
    assert run.data.params["model.hidden_size"] == "16"
    artifacts = run_dir / "mlflow" / run.info.run_id / "artifacts"
    figures = sorted(path.relative_to(artifacts).as_posix() for path in artifacts.glob("attention/*/*.png"))
    assert figures == [f"attention/val_{index}/step_{last_step:06d}.png" for index in (0, 1)]  # num_logged_samples=2
    assert (artifacts / figures[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (artifacts / "samples" / "val" / f"step_{last_step:06d}.md").read_text().splitlines()
    assert table[0] == "| source | reference | hypothesis |" and len(table) == 2 + 2  # header, rule, two samples
