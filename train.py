"""Train a translator: python train.py [group=option ...] [key=value ...]  (see conf/train.yaml)."""

from typing import Optional

import hydra
from omegaconf import DictConfig

from seq2seq.cli import run_reporting_errors
from seq2seq.config import register_configs
from seq2seq.training.run import optimized_value, train

register_configs()


def train_and_score(cfg: DictConfig) -> Optional[float]:
    return optimized_value(cfg, train(cfg))


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> Optional[float]:
    # A bad setting, file or checkpoint is one line on stderr, naming it; SIGTERM/Ctrl-C print how to resume.
    # A sweeper (hparams_search=optuna) optimises the value returned here.
    return run_reporting_errors(train_and_score, cfg, "train.py")


if __name__ == "__main__":
    main()
