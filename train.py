"""Train a translator: python train.py [group=option ...] [key=value ...]  (see conf/train.yaml)."""

from typing import Optional

import hydra
from omegaconf import DictConfig

from seq2seq.config import register_configs
from seq2seq.training import train

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> Optional[float]:
    metrics = train(cfg)
    # A sweeper (hparams_search=optuna) optimises the value returned here.
    return metrics.get(cfg.optimized_metric) if cfg.optimized_metric else None


if __name__ == "__main__":
    main()
