"""Train a translator: python train.py [group=option ...] [key=value ...]  (see conf/train.yaml).

The same as the installed command seq2seq-train (seq2seq/commands.py), over conf/ beside this file.
"""

from typing import Optional

import hydra
from omegaconf import DictConfig

from seq2seq.cli import run_reporting_errors
from seq2seq.commands import train_and_score


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> Optional[float]:
    # A bad setting, file or checkpoint is one line on stderr, naming it; SIGTERM/Ctrl-C print how to resume.
    # A sweeper (hparams_search=optuna) optimises the value returned here.
    return run_reporting_errors(train_and_score, cfg, "python train.py")


if __name__ == "__main__":
    main()
