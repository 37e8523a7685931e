"""Plots shared by training and search, drawn the same way everywhere (Agg backend, no display)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def pred_vs_true(preds: np.ndarray, target: np.ndarray, title: str = "") -> Figure:
    """Scatter of predicted score vs true value over a split (the picture behind Kendall tau)."""
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.scatter(target, preds, s=3, alpha=0.35, linewidths=0)
    ax.set_xlabel("true value")
    ax.set_ylabel("predicted score")
    ax.set_title(title)
    fig.tight_layout()
    return fig
