"""Train a translator: python train.py [group=option ...] [key=value ...]  (see conf/train.yaml)."""

from typing import Optional

import hydra
from omegaconf import DictConfig

from seq2seq.cli import run_reporting_errors
from seq2seq.config import register_configs
from seq2seq.training import train

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> Optional[float]:
    # A bad setting, file or checkpoint is one line on stderr, naming it; SIGTERM/Ctrl-C print how to resume.
    metrics = run_reporting_errors(train, cfg, "train.py")
    # A sweeper (hparams_search=optuna) optimises the value returned here.
    return metrics.get(cfg.optimized_metric) if cfg.optimized_metric and metrics else None


if __name__ == "__main__":
    main()
