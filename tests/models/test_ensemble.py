"""ScoreEnsemble: members weigh equally whatever their scale; `ensemble=` fits each member on its own
(own checkpoints, own best epoch) and the run validates and tests the ensemble as one ranker."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import compose_train
from torch import nn
from torchmetrics.functional.regression import kendall_rank_corrcoef

from nasrank.core import ConfigError
from nasrank.models.ensemble import ScoreEnsemble
from nasrank.training import score_rows, train

SMALL_NAR = ["model.encoder.hidden=16", "model.encoder.layers=1", "model.tier_hidden=16", "model.score_hidden=16"]


class Affine(nn.Module):
    """A stand-in member: scores = a · x + b of a tensor "batch"."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a * x + self.b


def test_members_weigh_equally_whatever_their_scale() -> None:
    x = torch.randn(50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    agree = ScoreEnsemble({"big": Affine(100.0, 5.0), "small": Affine(0.01, -3.0)})
    agree.standardize(agree.member_scores(x[:20]))
    expected = (x - x[:20].mean()) / x[:20].std()
    assert torch.allclose(agree(x).double(), expected, atol=1e-5)
    opposed = ScoreEnsemble({"up": Affine(100.0, 5.0), "down": Affine(-0.01, 1.0)})
    opposed.standardize(opposed.member_scores(x[:20]))
    assert opposed(x).abs().max() < 1e-5, "a member and its reverse cancel, however differently scaled"
    assert torch.equal(opposed(x[7:9]), opposed(x)[7:9]), "a row's score does not depend on the other rows"


def test_bad_ensembles_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="at least 2 members, got 1"):
        ScoreEnsemble({"only": Affine(1.0, 0.0)})
    ensemble = ScoreEnsemble({"a": Affine(1.0, 0.0), "b": Affine(2.0, 0.0)})
    with pytest.raises(ConfigError, match=r"standardize needs \(2, N ≥ 2\) member scores, got \(3, 10\)"):
        ensemble.standardize(torch.zeros(3, 10))
    with pytest.raises(ConfigError, match="cannot be trained"):
        ensemble.configure_optimizers()
    with pytest.raises(ConfigError, match=r"views \['a'\] must name exactly the members \['a', 'b'\]"):
        ScoreEnsemble({"a": Affine(1.0, 0.0), "b": Affine(2.0, 0.0)}, views={"a": None})


def test_ensemble_run_fits_members_apart_and_scores_as_one(tmp_path, one_thread) -> None:
    overrides = ["debug=fast", "model=nar", *SMALL_NAR, "ensemble=renas_gin", "ensemble.trainer.renas_gin.max_epochs=3",
                 "+model@ensemble.members.cnn=renas", "+ensemble.trainer.cnn.max_epochs=2",  # a member added on the command line
                 "callbacks=default", "callbacks.progress_bar=null", "callbacks.early_stopping=null"]
    metrics, objs = train(compose_train(overrides, tmp_path))
    model, dm = objs["model"], objs["datamodule"]
    assert isinstance(model, ScoreEnsemble) and list(model.members) == ["model", "renas_gin", "cnn"]
    assert objs["trainer"].current_epoch == 2  # the run's trainer fitted the run's model (debug: 2 epochs)
    # each member reads its own encoding of the same split, from the one loaded benchmark table
    views = {name: view or dm for name, view in model.views.items()}
    assert model.views["model"] is None, "the run's model reads the run's batches as they are"
    assert [views[n].hparams.canonical_iso for n in views] == [True, False, False]
    assert list(views["model"].hparams.tensors) == ["nar"] and list(views["cnn"].hparams.tensors) == ["renas"]
    for view in views.values():
        assert view.benchmark is dm.benchmark and np.array_equal(view.split.train, dm.split.train)
        assert np.array_equal(view.split.val, dm.split.val) and np.array_equal(view.split.test, dm.split.test)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt"))
    for folder in (tmp_path / "checkpoints", tmp_path / "members" / "renas_gin" / "checkpoints", tmp_path / "members" / "cnn" / "checkpoints"):
        names = sorted(p.name for p in folder.glob("*.ckpt"))
        assert len(names) == 2 and names[0].startswith("epoch_") and names[1] == "last.ckpt", (folder, names)
    val = dm.split.val
    expected = kendall_rank_corrcoef(torch.from_numpy(score_rows(model, dm, val)), torch.from_numpy(dm.values[val]))
    assert metrics["val/ktau"] == pytest.approx(float(expected), abs=1e-5), "val/ktau is the ensemble's"
    assert metrics["test/ktau"] > 0.3 and metrics["time/fit_s"] > 0, metrics["test/ktau"]  # seed 0: 0.45
    train_scores = score_rows(model, dm, dm.split.train)
    assert abs(np.mean(train_scores)) < 1e-4, "members are centred on the training rows"


@pytest.mark.parametrize("bad, message", [
    (["ckpt_path=last"], "cannot be combined with ckpt_path, self_training or train=false"),
    (["train=false"], "cannot be combined with ckpt_path, self_training or train=false"),
    (["+ensemble.trainer.gni.max_epochs=2"], r"ensemble.trainer names \['gni'\], which are not ensemble members; allowed: \['renas_gin'\]"),
    (["+model@ensemble.members.model=regressor"], "name 'model' is reserved for the run's model; rename it"),
])
def test_bad_ensemble_runs_are_refused_before_fitting(bad, message, tmp_path) -> None:
    with pytest.raises(ConfigError, match=message):
        train(compose_train(["debug=fast", "ensemble=renas_gin", *bad], tmp_path))
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "members").exists()


def test_member_with_the_runs_encoding_reads_the_runs_batches(tmp_path, one_thread) -> None:
    overrides = ["debug=fast", "model=regressor", "ensemble=renas_gin", "ensemble.trainer.renas_gin.max_epochs=2"]
    metrics, objs = train(compose_train(overrides, tmp_path))
    assert objs["model"].views == {"model": None, "renas_gin": None}, "same data config: no second datamodule, no re-collate"
    assert metrics["test/ktau"] > 0.3, metrics["test/ktau"]  # seed 0: 0.41; the untrained GIN scores -0.43
