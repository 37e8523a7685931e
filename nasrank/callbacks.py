"""Lightning callbacks of nasrank."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import matplotlib.pyplot as plt
import numpy as np
from lightning.pytorch.loggers import WandbLogger

from nasrank.viz import pred_vs_true


class TestMediaLogger(L.Callback):
    """After testing: a predicted-vs-true scatter and the predicted top-k table.

    The PNG is written to `output_dir` (every logger gets a file to look at) and, for W&B, logged as
    an image and a table so dashboards show them next to the curves.
    """

    def __init__(self, output_dir: str, top_k: int = 20) -> None:
        self.output_dir, self.top_k = Path(output_dir), top_k

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or getattr(pl_module, "test_predictions", None) is None:
            return
        idx, preds, target = (np.asarray(a) for a in pl_module.test_predictions)
        ktau = pl_module.last_test.get("test/ktau", float("nan"))
        fig = pred_vs_true(preds, target, f"test split: Kendall tau {ktau:.3f}")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        png = self.output_dir / "pred_vs_true.png"
        fig.savefig(png)
        plt.close(fig)
        benchmark = trainer.datamodule.benchmark if trainer.datamodule is not None else None
        order = np.argsort(-preds, kind="stable")[: self.top_k]
        true_rank = 1 + np.argsort(np.argsort(-target, kind="stable"), kind="stable")
        rows = [[int(r + 1), benchmark.archs[idx[i]].to_str() if benchmark else int(idx[i]), float(preds[i]), float(target[i]), int(true_rank[i])]
                for r, i in enumerate(order)]
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("test/pred_vs_true", [str(png)])
                logger.log_table("test/top_k", columns=["pred_rank", "arch", "score", "true", "true_rank"], data=rows)
