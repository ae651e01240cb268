"""What the loggers show besides curves (TensorBoard, wandb, MLflow): attention heatmaps and a table of sample
translations."""

from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # no display needed; figures go to the loggers or files
import matplotlib.pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402


def attention_figure(weights: Tensor, src_tokens: Sequence[str], out_tokens: Sequence[str]):
    """A heatmap of (len(out_tokens), len(src_tokens)) attention weights: output tokens down, source across."""
    weights = weights.detach().float().cpu()[: len(out_tokens), : len(src_tokens)]
    width = min(2 + 0.3 * len(src_tokens), 30)
    height = min(1.5 + 0.3 * len(out_tokens), 30)
    figure, axes = plt.subplots(figsize=(width, height))
    axes.imshow(weights.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(src_tokens)), labels=list(src_tokens), rotation=90, fontsize=8)
    axes.set_yticks(range(len(out_tokens)), labels=list(out_tokens), fontsize=8)
    axes.set_xlabel("source")
    axes.set_ylabel("output")
    figure.tight_layout()
    return figure


def close_figure(figure) -> None:
    """Free a figure: pyplot keeps every figure it made until it is closed."""
    plt.close(figure)


def samples_table(rows: Sequence[tuple[str, str, str]]) -> str:
    """A Markdown table (source | reference | hypothesis), as TensorBoard's text view and MLflow's artifacts show it."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ") or " "

    lines = ["| source | reference | hypothesis |", "|---|---|---|"]
    lines += [f"| {cell(src)} | {cell(ref)} | {cell(hyp)} |" for src, ref, hyp in rows]
    return "\n".join(lines)
