"""Score a checkpoint or translate with it: python evaluate.py ckpt_path=PATH [key=value ...]  (see conf/evaluate.yaml).

    python evaluate.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt              # BLEU on its test split
    python evaluate.py ckpt_path=... input=sentences.txt output=translations.txt         # raw text, one per line
    echo "dreihundertzwölf" | python evaluate.py ckpt_path=... input=-                   # stdin -> stdout

The same as the installed command seq2seq-evaluate (seq2seq/commands.py), over conf/ beside this file.
"""

import hydra
from omegaconf import DictConfig

from seq2seq.cli import run_reporting_errors
from seq2seq.commands import evaluate


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    # A missing, foreign or damaged checkpoint, a bad setting or bad input: the message names the file or
    # key, so a traceback would only hide it (hydra.verbose=true logs it, for bug reports).
    run_reporting_errors(evaluate, cfg, "python evaluate.py")


if __name__ == "__main__":
    main()
