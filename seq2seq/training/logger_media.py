"""What each kind of logger is given besides scalars: every setting (hparams), the attention figures and the table of
sample translations, through that logger's own calls.

    TensorBoard  the HParams view (settings with the metric columns they are compared by), add_figure, add_text
    wandb        the run's config, log_image (one image per figure), log_table (source | reference | hypothesis)
    MLflow       params; artifacts on the run: <tag>/step_<step>.png per figure, samples/val/step_<step>.md
    CSV          hparams.yaml; no images or text
    other        log_hyperparams; no images or text

Lightning's logger classes import wandb and mlflow only once such a logger is made, and nothing here imports them:
a run without those loggers never loads them.
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger

from seq2seq.inference.figures import samples_table

SAMPLE_COLUMNS = ["source", "reference", "hypothesis"]


class LoggerMedia:
    """A logger that takes settings (Lightning's ``log_hyperparams``) and no figures or text."""

    takes_media = False

    def __init__(self, logger: Logger, name: str) -> None:
        self.logger = logger
        self.name = name

    def log_hparams(self, settings: Mapping[str, Any], metric_names: Sequence[str]) -> None:
        self.logger.log_hyperparams(dict(settings))

    def log_figure(self, tag: str, figure: Any, step: int) -> None:
        """``figure``: a matplotlib figure, closed by the caller once every logger has it."""

    def log_samples(self, tag: str, rows: Sequence[tuple[str, str, str]], step: int) -> None:
        """``rows``: (source, reference, hypothesis) strings."""

    def finish(self, succeeded: bool) -> None:
        """Called once, after training and testing."""

    def no_media_note(self) -> str:
        return (f"logger {self.name}: attention figures and sample translations are not logged "
                "(it takes no images or text)")


class TensorBoardMedia(LoggerMedia):
    takes_media = True

    def log_hparams(self, settings: Mapping[str, Any], metric_names: Sequence[str]) -> None:
        """The HParams view compares runs by the named metrics; their values are the scalars logged during training,
        so the NaN placeholders written here are never shown as results."""
        from torch.utils.tensorboard.summary import hparams

        experiment, session_start, session_end = hparams(dict(settings), {name: math.nan for name in metric_names})
        writer = self.logger.experiment._get_file_writer()
        for summary in (experiment, session_start, session_end):
            writer.add_summary(summary)

    def log_figure(self, tag: str, figure: Any, step: int) -> None:
        self.logger.experiment.add_figure(tag, figure, global_step=step, close=False)

    def log_samples(self, tag: str, rows: Sequence[tuple[str, str, str]], step: int) -> None:
        self.logger.experiment.add_text(tag, samples_table(rows), global_step=step)


class WandbMedia(LoggerMedia):
    takes_media = True

    def log_figure(self, tag: str, figure: Any, step: int) -> None:
        self.logger.log_image(key=tag, images=[figure], step=step)

    def log_samples(self, tag: str, rows: Sequence[tuple[str, str, str]], step: int) -> None:
        self.logger.log_table(key=tag, columns=SAMPLE_COLUMNS, data=[list(row) for row in rows], step=step)

    def finish(self, succeeded: bool) -> None:
        # Lightning leaves the wandb run open. Finished here, the next run in the same process (a Hydra sweep's next
        # job) starts its own instead of reusing this one; finish() returns before wandb's service has written the
        # run's file (measured: 7 bytes of it, then 16 kB), and teardown() waits for that service to end.
        import wandb

        if wandb.run is not None:
            wandb.run.finish(exit_code=0 if succeeded else 1)
        wandb.teardown()


class MLflowMedia(LoggerMedia):
    takes_media = True

    def log_figure(self, tag: str, figure: Any, step: int) -> None:
        self.logger.experiment.log_figure(self.logger.run_id, figure, f"{tag}/step_{step:06d}.png")

    def log_samples(self, tag: str, rows: Sequence[tuple[str, str, str]], step: int) -> None:
        self.logger.experiment.log_text(self.logger.run_id, samples_table(rows), f"{tag}/step_{step:06d}.md")


# The first class a logger is an instance of decides; a logger of none of them gets LoggerMedia under its class name.
KINDS = (
    (TensorBoardLogger, "tensorboard", TensorBoardMedia),
    (WandbLogger, "wandb", WandbMedia),
    (MLFlowLogger, "mlflow", MLflowMedia),
    (CSVLogger, "csv", LoggerMedia),
)


# Usage reports that a logger sends on its own, over the network, unless told not to; told here before any logger is
# made (MLflow 3 starts its reporter as it is imported). A value already in the environment is kept.
NO_USAGE_REPORTS = {"MLFLOW_DISABLE_TELEMETRY": "true"}


def keep_local() -> None:
    for name, value in NO_USAGE_REPORTS.items():
        os.environ.setdefault(name, value)


def media_for(logger: Logger) -> LoggerMedia:
    for kind, name, media in KINDS:
        if isinstance(logger, kind):
            return media(logger, name)
    return LoggerMedia(logger, type(logger).__name__)


def log_hparams(loggers: Sequence[Logger], settings: Mapping[str, Any], metric_names: Sequence[str]) -> None:
    for logger in loggers:
        media_for(logger).log_hparams(settings, metric_names)


def finish(loggers: Sequence[Logger], succeeded: bool) -> None:
    for logger in loggers:
        media_for(logger).finish(succeeded)


def takers(loggers: Sequence[Logger]) -> list[LoggerMedia]:
    """The loggers that take figures and text."""
    return [media for media in map(media_for, loggers) if media.takes_media]


def no_media_notes(loggers: Sequence[Logger]) -> list[str]:
    """One line for each logger that cannot take figures or text."""
    return [media.no_media_note() for media in map(media_for, loggers) if not media.takes_media]
