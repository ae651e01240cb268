"""Serve translations over HTTP: python serve.py ckpt_path=PATH [port=8080] [host=127.0.0.1]  (see conf/serve.yaml).

    python serve.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt        # http://127.0.0.1:8080/
    curl -s localhost:8080/translate -H 'Content-Type: application/json' -d '{"text": "zweiundvierzig"}'

Needs the serve extra. The same as the installed command seq2seq-serve (seq2seq/commands.py), over conf/
beside this file.
"""

import hydra
from omegaconf import DictConfig

from seq2seq.cli import run_reporting_errors
from seq2seq.commands import serve


@hydra.main(version_base="1.3", config_path="conf", config_name="serve")
def main(cfg: DictConfig) -> None:
    run_reporting_errors(serve, cfg, "python serve.py")


if __name__ == "__main__":
    main()
