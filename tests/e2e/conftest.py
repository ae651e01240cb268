"""Fixtures for whole runs of the real entry points on tiny data in ``tmp_path``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from seq2seq.config import register_configs

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"

register_configs()


def tiny_overrides(tmp_path: Path) -> list[str]:
    """A numbers data set of a few hundred pairs and a model of a few thousand parameters."""
    return [
        f"output_dir={tmp_path / 'run'}",
        f"data.root={tmp_path / 'numbers'}",
        "data.numbers.train_size=200",
        "data.numbers.val_size=20",
        "data.numbers.test_size=20",
        "data.numbers.max_number=9999",
        "data.batch_size=32",
        "model.src_embedding_dim=16",
        "model.tgt_embedding_dim=16",
        "model.hidden_size=16",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "num_logged_samples=2",
    ]


def compose_train(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


@pytest.fixture
def train_config(tmp_path):
    """``train_config(*extra_overrides)`` -> a composed config for a tiny run in tmp_path."""

    def make(*extra: str):
        return compose_train(tiny_overrides(tmp_path) + list(extra))

    return make


def script_command(script: str, *overrides: str) -> list[str]:
    return [sys.executable, str(REPO / script), *overrides]
