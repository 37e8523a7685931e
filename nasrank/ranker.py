"""`Ranker`: a trained ranker as a product — load it, score any architecture of its space, save it,
or fit one from Python through the same configs as train.py.

    from nasrank import Ranker
    ranker = Ranker.load("outputs/train/runs/<time>")   # a train.py run dir, or its ranker.pt
    ranker.score(["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"])
    ranker.top("space", k=5)                            # the 5 best cells of the space

README.md's "Use a trained ranker" runs the same calls (tests/test_ranker_api.py executes it).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from nasrank import artifact
from nasrank.artifact import Member
from nasrank.core import ConfigError
from nasrank.encodings.archs import EncodedArchs, EncodingSpec, as_encoded, representatives
from nasrank.encodings.graph import DenseGraphs, dense_graphs
from nasrank.models.ranker import score_batches
from nasrank.spaces import Arch, Space, as_arch, get_space


class Ranker:
    """A fitted ranker: one model, or an ensemble of models whose z-scored scores are averaged.

    Scores are higher = better and comparable only with scores of the same ranker.  A cell's score
    does not depend on which other cells are scored with it (up to float32 rounding: batched kernels
    may round the last bit differently for other batch sizes).

    Args:
        members: the fitted networks (`nasrank.artifact.Member`), all of one search space.
        ensemble: per-member (mean, std) of their scores on the training cells; None for one model.
        representatives: isomorphism-class representatives of a canonical encoding (see
            `nasrank.encodings.archs.representatives`).
        meta: provenance (target, its normalisation, benchmark, training size, seed, ...).
    """

    def __init__(self, members: Sequence[Member], ensemble: tuple[torch.Tensor, torch.Tensor] | None = None,
                 representatives: Iterable[str] = (), meta: dict | None = None) -> None:
        if not members:
            raise ConfigError("a Ranker needs at least one fitted model")
        spaces = {m.encoding.space for m in members}
        if len(spaces) != 1:
            raise ConfigError(f"a Ranker's models must share one search space, got {sorted(spaces)}")
        if ensemble is not None and (len(members) < 2 or any(len(t) != len(members) for t in ensemble)):
            raise ConfigError(f"ensemble statistics must have one (mean, std) per member ({len(members)})")
        self.members, self.ensemble = list(members), ensemble
        self.representatives, self.meta = list(representatives), dict(meta or {})
        self.space: Space = get_space(spaces.pop())

    @classmethod
    def of_fitted(cls, parts: Sequence[tuple[str, torch.nn.Module, Any, Any]], datamodule: Any,
                  ensemble: tuple[torch.Tensor, torch.Tensor] | None = None, **meta: Any) -> "Ranker":
        """A ranker from modules fitted on a labelled datamodule: `parts` are (name, module, its model
        config, the datamodule view it read), `datamodule` the run's (its table, target and scaling)."""
        from omegaconf import OmegaConf

        members = [Member(name, module, OmegaConf.to_container(conf, resolve=True) if OmegaConf.is_config(conf) else dict(conf),
                          view.data_info(), view.encoding) for name, module, conf, view in parts]
        reps = representatives(datamodule.benchmark.archs) if any(m.encoding.canonical_iso for m in members) else []
        meta = dict(target=datamodule.hparams.target, fit_target=datamodule.fit_target, y_mean=datamodule.y_mean, y_std=datamodule.y_std,
                    benchmark=datamodule.benchmark.name, n_train=len(datamodule.split.train),
                    members=[m.name for m in members], **meta)
        return cls(members, ensemble, reps, meta)

    # -- files --------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "Ranker":
        """A ranker from its artifact (`ranker.pt`) or the train.py run dir holding it.

        Read with `torch.load(weights_only=True)`; needs no benchmark table, data folder or Hydra run."""
        data = artifact.read(path)
        ensemble = (data["ensemble"]["mean"], data["ensemble"]["std"]) if data["ensemble"] else None
        return cls(artifact.members_of(data, str(path)), ensemble, data["representatives"], data["meta"])

    def save(self, path: str | Path) -> Path:
        """Write the artifact atomically to `path` (a file, or a directory that gets `ranker.pt`)."""
        path = Path(path)
        if path.is_dir():
            path = path / artifact.FILENAME
        return artifact.save(path, artifact.to_dict(self.members, self.ensemble, self.representatives, self.meta))

    # -- scoring ------------------------------------------------------------------------------------
    def archs(self, items: Iterable[Any]) -> list[Arch]:
        """Cells of this ranker's space from strings, arch objects or (NB101) matrix + ops; one line
        naming the first bad item otherwise."""
        out = []
        for i, item in enumerate(items):
            try:
                out.append(as_arch(self.space, item))
            except ValueError as err:
                raise type(err)(f"architecture #{i + 1}: {err}") from None
        return out

    def score(self, archs: Iterable[Any], batch_size: int = 4096) -> np.ndarray:
        """Scores (float64, higher = better) of `archs`, in order.

        >>> ranker.score(["|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"])
        array([0.8731])
        """
        return self._score_cells(self.archs(archs), batch_size)

    def _score_cells(self, cells: list[Arch], batch_size: int = 4096) -> np.ndarray:
        """`score` of cells already in their space's stored form."""
        if not cells:
            return np.empty(0)
        graphs: dict[bool, DenseGraphs] = {}  # members that read cells alike share one stacking (NB101: all do)
        encoded: dict[EncodingSpec, EncodedArchs] = {}
        columns = []
        for m in self.members:
            canonical = m.encoding.canonical_iso and bool(self.representatives)
            if canonical not in graphs:
                graphs[canonical] = dense_graphs(as_encoded(cells, self.space, self.representatives) if canonical else cells, self.space)
            if m.encoding not in encoded:
                encoded[m.encoding] = EncodedArchs(graphs[canonical], m.encoding)
            columns.append(score_batches(m.module, encoded[m.encoding].batches(batch_size))[0])
        if self.ensemble is None:
            return columns[0]
        mean, std = self.ensemble  # as ScoreEnsemble: float32 z-scores of each member, averaged
        z = (torch.from_numpy(np.stack(columns)).float() - mean[:, None]) / std[:, None]
        return z.mean(0).double().numpy()

    def score_space(self, batch_size: int = 4096) -> tuple[list[Arch], np.ndarray]:
        """Every cell of the space (`space.enumerate()` order; NB101: one per isomorphism class) and its score."""
        cells = list(self.space.enumerate())  # already in stored (NB101: canonical) form
        return cells, self._score_cells(cells, batch_size)

    def top(self, archs: Iterable[Any] | str = "space", k: int = 10) -> list[tuple[str, float]]:
        """The `k` best of `archs` (or of the whole space, ``"space"``) as (arch string, score), best first.

        >>> ranker.top("space", k=3)
        [('|nor_conv_3x3~0|+|...|', 1.93), ...]
        """
        if isinstance(archs, str) and archs == "space":
            cells, scores = self.score_space()
        else:
            cells = self.archs(archs)
            scores = self._score_cells(cells)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(cells):
            raise ConfigError(f"k={k!r} but there are {len(cells)} candidates; allowed: 1..{len(cells)}")
        order = np.argsort(-scores, kind="stable")[:k]
        return [(cells[i].to_str(), float(scores[i])) for i in order]

    # -- fitting ------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, *overrides: str, archs: Iterable[Any] | None = None, accuracies: Iterable[float] | None = None,
            space: str | None = None, output_dir: str | Path | None = None, **options: Any) -> "Ranker":
        """Fit a ranker exactly as ``python train.py <overrides>`` would (same configs, defaults, seed
        handling and run dir contents) and return it.

        With `archs` and `accuracies` (and the `space` they belong to), the ranker trains on those
        measurements (`data=custom`: split into train/val as any table); without them, on the `data=`
        the overrides name.  Overrides are Hydra strings (``"model=nar"``, ``"data.n_train=200"``) or
        keywords, with ``__`` for dots (``model="nar", data__n_train=200``).

        >>> ranker = Ranker.fit("model=renas_gin", archs=archs, accuracies=accs, space="nb201", data__n_val=32)
        """
        from nasrank.cli import compose_config
        from nasrank.training import train

        overrides = list(overrides) + [f"{k.replace('__', '.')}={v}" for k, v in options.items()]
        out = Path(output_dir) if output_dir else Path("outputs") / "fit" / time.strftime("%Y-%m-%d_%H-%M-%S")
        if archs is not None or accuracies is not None:
            if archs is None or accuracies is None or space is None:
                raise ConfigError("Ranker.fit needs archs, accuracies and space together (or none of them, with data=... among the overrides)")
            path = write_measurements(out / "measurements.csv", get_space(space), archs, accuracies)
            overrides = ["data=custom", f"data.path={path}", f"data.space={space}", *overrides]
        train(compose_config("train", overrides, out))
        return cls.load(out)


def write_measurements(path: Path, space: Space, archs: Iterable[Any], accuracies: Iterable[float]) -> Path:
    """Write (arch, accuracy) pairs as the CSV `data=custom` reads (arch strings in the space's form)."""
    cells = [as_arch(space, a) for a in archs]
    values = [float(v) for v in accuracies]
    if len(cells) != len(values):
        raise ConfigError(f"{len(cells)} architectures but {len(values)} accuracies; give one accuracy per architecture")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arch", "accuracy"])
        writer.writerows((c.to_str(), repr(v)) for c, v in zip(cells, values))
    return path
