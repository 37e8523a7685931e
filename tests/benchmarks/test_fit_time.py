"""The fit-time benchmark times each ranker the summary recommends, at its largest budget within the limit."""

from __future__ import annotations

import json

import pytest
from conftest import load_script

fit_time = load_script("fit_time")


def rows(method: str, n: int, val: float, bench: str = "nb201_cifar10", overrides: tuple[str, ...] = ()) -> list[dict]:
    return [{"method": method, "overrides": list(overrides), "benchmark": bench, "target": "cifar10/test_acc", "n_train": n,
             "n_val": 64, "seed": seed, "val_ktau": val, "test_ktau": 0.5, "fit_s": 1.0} for seed in (2, 3, 4)]


def test_each_chosen_ranker_at_its_largest_budget_within_the_limit():
    table = [*rows("nar", 156, 0.9), *rows("renas", 156, 0.8),          # nar chosen at 156
             *rows("nar", 781, 0.9, "nb201_cifar100"), *rows("renas", 781, 0.8, "nb201_cifar100"),  # and at 781
             *rows("renas", 1563, 0.9, overrides=("data.batch_size=64",)), *rows("nar", 1563, 0.8),  # renas at 1563
             *rows("renas", 4236, 0.9, "nb101_cifar10")]                 # above the limit
    got = {hint: (row.benchmark, row.n_train, row.seed, row.overrides) for hint, row in fit_time.cases(table, 1563)}
    assert got == {"`model=nar`": ("nb201_cifar100", 781, 0, ()),
                   "`model=renas data.batch_size=64`": ("nb201_cifar10", 1563, 0, ("data.batch_size=64",))}


def test_report_marks_fits_over_the_limit():
    result = {"rows": [{"run": "`model=nar`", "benchmark": "nb201_cifar10", "n_train": 1563, "fit_s": 121.0, "epochs": 9, "steps": 90},
                       {"run": "`model=renas`", "benchmark": "nb201_cifar10", "n_train": 78, "fit_s": 12.0, "epochs": 9, "steps": 90}],
              "threads": 2, "max_cells": 1563, "machine": "x86_64, 2 cores", "load_avg_1min": 1.0, "date": "2026-12-02 03:00"}
    table = [line for line in fit_time.markdown(result).splitlines() if line.startswith("| `")]
    assert [line.rsplit("|", 2)[1].strip() for line in table] == ["no", "yes"]


def test_summary_names_the_slowest_fit(tmp_path):
    summary = load_script("report_summary")
    result = {"rows": [{"run": "`model=nar`", "benchmark": "nb201_cifar10", "n_train": 1563, "fit_s": 101.4, "epochs": 9, "steps": 90},
                       {"run": "`model=renas`", "benchmark": "nb201_cifar10", "n_train": 78, "fit_s": 12.0, "epochs": 9, "steps": 90}],
              "threads": 2, "max_cells": 1563}
    (tmp_path / "fit_time.json").write_text(json.dumps(result))
    line = summary.fit_time_line(tmp_path / "fit_time.json")[0]
    assert "takes 12-101 s with 2 torch threads" in line and "slowest: `model=nar` at 1,563 cells" in line


def test_missing_times_only_new_choices_and_drops_old_ones(tmp_path, monkeypatch):
    stored = {"run": "`model=nar`", "benchmark": "nb201_cifar10", "n_train": 156, "fit_s": 50.0, "epochs": 9, "steps": 90,
              "date": "2026-12-01 10:00", "load_avg_1min": 0.5}
    gone = {**stored, "run": "`model=gin`"}
    (tmp_path / "fit_time.json").write_text(json.dumps({"rows": [stored, gone], "threads": 2, "max_cells": 1563}))
    todo = [("`model=nar`", fit_time.Row("nar", "nb201_cifar10", 156, 64, 0)),
            ("`model=renas`", fit_time.Row("renas", "nb201_cifar10", 1563, 256, 0))]
    timed = []
    monkeypatch.setattr(fit_time, "load_rows", lambda results: [])
    monkeypatch.setattr(fit_time, "cases", lambda rows, max_cells: todo)
    monkeypatch.setattr(fit_time, "timed_fit", lambda row, out: timed.append(row) or {"fit_s": 80.0, "epochs": 3, "steps": 30})
    assert fit_time.main(["--missing", "--results", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "fit_time.json").read_text())["rows"]
    assert [r["run"] for r in rows] == ["`model=nar`", "`model=renas`"] and rows[0] == stored
    assert [r.method for r in timed] == ["renas", "renas"]  # the cache-filling one-epoch run, then the timed fit
    assert timed[0].overrides == ("trainer.max_epochs=1",) and rows[1]["fit_s"] == 80.0 and "date" in rows[1]
    assert "measured 2026-12-01 10:00 to " in (tmp_path / "fit_time.md").read_text()


def test_missing_refuses_other_thread_counts_and_starts_from_nothing(tmp_path, capsys):
    assert fit_time.stored_rows(tmp_path / "fit_time.json", 2) == {}
    (tmp_path / "fit_time.json").write_text(json.dumps({"rows": [], "threads": 1, "max_cells": 1563}))
    with pytest.raises(SystemExit, match="timed with 1 threads, this run uses 2; pass --threads 1"):
        fit_time.stored_rows(tmp_path / "fit_time.json", 2)
