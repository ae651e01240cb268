"""Export a checkpoint as ONNX graphs: python export.py ckpt_path=PATH output_dir=DIR [key=value ...]  (conf/export.yaml).

    python export.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt output_dir=exported
    python evaluate.py runtime=onnx model_dir=exported                 # BLEU on its test split, no PyTorch in the loop
    python serve.py runtime=onnx model_dir=exported

The same as the installed command seq2seq-export (seq2seq/commands.py), over conf/ beside this file.
"""

import hydra
from omegaconf import DictConfig

from seq2seq.cli import run_reporting_errors
from seq2seq.commands import export


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg: DictConfig) -> None:
    run_reporting_errors(export, cfg, "python export.py")


if __name__ == "__main__":
    main()
