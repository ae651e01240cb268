"""Serve translations over HTTP: python serve.py ckpt_path=PATH [port=8080] [host=127.0.0.1]  (see conf/serve.yaml).

    python serve.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt        # http://127.0.0.1:8080/
    curl -s localhost:8080/translate -H 'Content-Type: application/json' -d '{"text": "zweiundvierzig"}'

Needs the serve extra: pip install -e ".[serve]".
"""

import hydra
from omegaconf import DictConfig

from seq2seq.cli import run_reporting_errors
from seq2seq.config import register_configs

register_configs()


def serve(cfg: DictConfig) -> None:
    try:
        from seq2seq.inference.service import serve as run_service
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(f"{error.name} is missing: the service needs the serve extra, "
                                  f"pip install -e \".[serve]\"") from None
    run_service(cfg)


@hydra.main(version_base="1.3", config_path="conf", config_name="serve")
def main(cfg: DictConfig) -> None:
    run_reporting_errors(serve, cfg, "serve.py")


if __name__ == "__main__":
    main()
