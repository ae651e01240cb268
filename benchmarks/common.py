"""What both benchmarks share: a composed config, the data, and a model built as train.py builds it."""

from __future__ import annotations

import platform
import resource
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from seq2seq.config import register_configs  # noqa: E402
from seq2seq.training.run import make_datamodule, make_module  # noqa: E402

register_configs()


def compose_config(overrides: list[str]):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=[*overrides, "output_dir=/tmp/seq2seq-benchmark"])


def build(cfg, tokenizer_dir: Path | None = None):
    """The DataModule (set up) and the TranslationModule, exactly as ``train()`` makes them."""
    cfg.data.root = str(Path(cfg.data.root).expanduser().resolve())
    datamodule = make_datamodule(cfg.data, tokenizer_dir)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule, make_module(cfg, datamodule)


def environment(device: torch.device) -> dict:
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})",
        "cpu": platform.processor() or platform.machine(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }

