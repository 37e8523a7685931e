"""Bad input to a trained ranker, rank.py and data=custom: one line saying what is wrong, exit ≠ 0 from the
command, nothing written.  One tiny ranker is trained once (embedded AnalogNAS table) and reused."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from conftest import compose_train, run_entry

from nasrank import Ranker
from nasrank.artifact import FILENAME
from nasrank.benchmarks.custom import load_custom_csv
from nasrank.cli import compose_config, user_error
from nasrank.core import NasrankError
from nasrank.ranking import rank
from nasrank.training import train

GOOD = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
OTHER = "|none~0|+|avg_pool_3x3~0|none~1|+|none~0|skip_connect~1|none~2|"


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ranker_run")
    torch.set_num_threads(1)
    train(compose_train(["model=renas_gin", "data.n_train=64", "data.n_val=32", "trainer.max_epochs=1", "logger=none",
                         "callbacks=none"], out))
    return out


def edited(run_dir: Path, tmp_path: Path, **changes) -> Path:
    data = torch.load(run_dir / FILENAME, weights_only=True)
    for key, value in changes.items():
        if key == "target":
            data["members"][0]["config"]["encoder"]["_target_"] = value
        else:
            data[key] = value
    torch.save(data, tmp_path / "edited.pt")
    return tmp_path / "edited.pt"


@pytest.mark.parametrize("case,match", [
    ("version", r"format 99 .* reads format 1"),
    ("target", r"may only name classes under nasrank\.models"),
    ("not_artifact", r"is not a nasrank ranker artifact"),
    ("lightning_ckpt", r"is not a nasrank ranker artifact \(a Lightning checkpoint"),
    ("pickle", r"torch.load\(weights_only=True\) refused it .* nothing in it was run"),
    ("pickle2", r"torch.load\(weights_only=True\) refused it .* nothing in it was run"),
    ("missing", r"not found; give a train.py run dir"),
    ("dir_without", r"is a directory without ranker.pt"),
])
def test_bad_artifact(case, match, run_dir, tmp_path):
    marker = tmp_path / "pwned"
    path = {
        "version": lambda: edited(run_dir, tmp_path, format_version=99),
        "target": lambda: edited(run_dir, tmp_path, target="os.system"),
        "not_artifact": lambda: (tmp_path / "x.pt").write_text("hello") and tmp_path / "x.pt",
        "lightning_ckpt": lambda: torch.save({"state_dict": {}}, tmp_path / "c.ckpt") or tmp_path / "c.ckpt",
        "pickle": lambda: (tmp_path / "evil.pt").write_bytes(pickle.dumps(_Evil(marker))) and tmp_path / "evil.pt",
        "pickle2": lambda: torch.save({"format": _Evil(marker)}, tmp_path / "evil2.pt") or tmp_path / "evil2.pt",
        "missing": lambda: tmp_path / "nope.pt",
        "dir_without": lambda: tmp_path,
    }[case]()
    with pytest.raises(NasrankError, match=match):
        Ranker.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("arch,match", [
    ("|nor_conv_3x3~0|+|bad~0|", r"architecture #2: malformed NB201 arch string"),
    ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", r"architecture #2: unknown NB201 op 'conv_5x5'"),
    ("input|conv3x3|output;011|001|000", r"architecture #2: malformed NB201 arch string"),
    (42, r"architecture #2: cannot read a nb201 cell from int"),
])
def test_bad_architectures(arch, match, run_dir):
    with pytest.raises(NasrankError, match=match):
        Ranker.load(run_dir).score([GOOD, arch])


@pytest.mark.parametrize("spec,match", [
    ({"matrix": [[0, 1, 0], [0, 0, 1], [1, 0, 0]], "ops": ["input", "conv3x3-bn-relu", "output"]}, r"(?i)not upper.triangular|cycl|DAG"),
    ({"matrix": [[0, 0, 0], [0, 0, 0], [0, 0, 0]], "ops": ["input", "conv3x3-bn-relu", "output"]}, r"no input->output path"),
    ({"matrix": [[0] + [1] * 6] + [[0] * (i + 2) + [1] * (5 - i) for i in range(5)] + [[0] * 7],
      "ops": ["input"] + ["conv3x3-bn-relu"] * 5 + ["output"]}, r"(?i)edges"),
])
def test_bad_nb101_cells_are_one_line(spec, match):
    from nasrank.spaces import as_arch, get_space

    with pytest.raises(NasrankError, match=match):
        as_arch(get_space("nb101"), spec)


@pytest.mark.parametrize("text,match", [
    ("name,accuracy\nx,1\n", r"lacks column\(s\) 'arch'; it has 'name', 'accuracy'"),
    (f"arch,accuracy\n{GOOD},\n{OTHER},3\n", r"line 2: accuracy value \(empty\) is not a finite number"),
    (f"arch,accuracy\n{GOOD},91.2\n{OTHER},high\n", r"line 3: accuracy value 'high' is not a finite number"),
    (f"arch,accuracy\n{GOOD},91.2\n{OTHER},40\n{GOOD},90.0\n", r"1 architecture\(s\) listed more than once .* lines 2, 4\); fix the file, or set data.duplicates=mean"),
    (f"arch,accuracy\n{GOOD},91.2\n|x~0|,40\n", r"line 3: malformed NB201 arch string"),
    ("arch,accuracy\n", r"has a header but no measurements"),
])
def test_bad_measurement_csv(text, match, tmp_path):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(NasrankError, match=match):
        load_custom_csv(tmp_path / "m.csv", "nb201")


def test_duplicates_resolved_on_request(tmp_path):
    (tmp_path / "m.csv").write_text(f"arch,accuracy,params\n{GOOD},91.0,1.2\n{OTHER},40,0.1\n{GOOD},90.0,1.2\n")
    bench = load_custom_csv(tmp_path / "m.csv", "nb201", duplicates="mean")
    assert [a.to_str() for a in bench.archs] == [GOOD, OTHER]
    assert bench.target("custom/accuracy").tolist() == [90.5, 40.0] and bench.cost("custom/params").tolist() == [1.2, 0.1]
    assert load_custom_csv(tmp_path / "m.csv", "nb201", duplicates="first").target("custom/accuracy").tolist() == [91.0, 40.0]


@pytest.mark.parametrize("overrides,match", [
    (["archs={tmp}/empty.txt"], r"holds no architectures"),
    (["archs={tmp}/two.txt", "k=3"], r"k=3 but there are only 2 candidates; allowed: 1..2"),
    (["archs={tmp}/two.txt", "k=0"], r"k=0; allowed: an integer ≥ 1"),
    (["archs={tmp}/cells.csv", "column=cell"], r"has no column 'cell'; it has 'arch'"),
    (["archs={tmp}/nothere.txt"], r"candidate architectures file not found"),
])
def test_bad_rank_inputs_write_nothing(overrides, match, run_dir, tmp_path):
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    (tmp_path / "two.txt").write_text(f"{GOOD}\n{OTHER}\n")
    (tmp_path / "cells.csv").write_text(f"arch\n{GOOD}\n")
    cfg = compose_config("rank", [f"ranker={run_dir}", *(o.format(tmp=tmp_path) for o in overrides)], tmp_path / "out")
    with pytest.raises(NasrankError, match=match):
        rank(cfg)
    assert not (tmp_path / "out").exists()


def test_rank_command_bad_input_is_one_line(run_dir, tmp_path):
    """Through the command: exit 2, one stderr line, no run dir left behind."""
    (tmp_path / "bad.txt").write_text(f"{GOOD}\nnot-a-cell\n")
    for args, match in ([f"ranker={run_dir}", f"archs={tmp_path / 'bad.txt'}"], "architecture #2: malformed NB201"), \
                       (["archs=space"], "needs a trained ranker"):
        code, stderr = run_entry("rank.py", [*args, f"hydra.run.dir={tmp_path / 'run'}"])
        assert code == 2 and stderr.count("\n") == 1 and match in stderr, stderr
        assert not (tmp_path / "run").exists()


def user_error_of(task) -> str:
    """The one line an entry point would print for the error `task` raises (Hydra wraps it)."""
    with pytest.raises(Exception) as info:
        task()
    err = user_error(info.value)
    assert err is not None, info.value
    return str(err)


def test_custom_data_and_search_misuse(tmp_path):
    assert "data=custom needs the measurements file: data.path=<csv>" in user_error_of(
        lambda: train(compose_train(["data=custom"], tmp_path)))
    assert "unknown search space 'nb999'; allowed: nb201, nb101, nbgraph" in user_error_of(
        lambda: train(compose_train(["data=custom", f"data.path={tmp_path}/m.csv", "data.space=nb999"], tmp_path)))
    from nasrank.search.runner import search

    with pytest.raises(NasrankError, match=r"search needs a benchmark that measured every cell"):
        search(compose_train(["data=custom", "data.path=x.csv"], tmp_path, "search"))
    with pytest.raises(NasrankError, match=r"needs archs, accuracies and space together"):
        Ranker.fit(archs=[GOOD, OTHER], accuracies=[1.0, 2.0])
