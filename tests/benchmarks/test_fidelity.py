"""The fidelity section of BENCHMARKS.md (`benchmarks/fidelity.py`): the committed readings of the official
code follow the schema, every deviation says why and has a measured effect, and effects are computed from
the stored rows over the seeds both variants ran."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from conftest import load_script

from nasrank.core import REPO_ROOT

fidelity = load_script("fidelity")
FOLDER = REPO_ROOT / "benchmarks" / "fidelity"
RESULTS = REPO_ROOT / "benchmarks" / "results"
METHODS = {"nar.yaml", "nar_tier.yaml", "renas.yaml", "landmark.yaml"}


def test_every_paper_method_has_a_fidelity_file() -> None:
    assert {p.name for p in FOLDER.glob("*.yaml")} == METHODS


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_method_with_deviations_has_a_measured_effect(name: str) -> None:
    doc = fidelity.load_fidelity(FOLDER / name)
    if any(a["status"] in fidelity.DEVIATIONS for a in doc["aspects"]):
        rows = [fidelity.effect_row(RESULTS, e) for e in doc["effects"]]
        assert any("not measured" not in r for r in rows), rows


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


HEADER = "method: M\nofficial_code: o\npaper_variant: p\nimproved_variant: i\n"


def test_a_deviation_without_why_and_an_unknown_status_are_refused(tmp_path: Path) -> None:
    no_why = write(tmp_path / "a.yaml", HEADER + "aspects:\n  - {aspect: Init, official: xavier, ours: default, status: unavoidable}\n")
    with pytest.raises(fidelity.FidelityError, match=r"a.yaml, aspect 1 \(Init\): a deviation needs a 'why'"):
        fidelity.load_fidelity(no_why)
    bad = write(tmp_path / "b.yaml", HEADER + "aspects:\n  - {aspect: Init, official: x, ours: y, status: close}\n")
    with pytest.raises(fidelity.FidelityError, match="status 'close'; allowed: same, unavoidable"):
        fidelity.load_fidelity(bad)
    with pytest.raises(fidelity.FidelityError, match="c.yaml: missing improved_variant, aspects"):
        fidelity.load_fidelity(write(tmp_path / "c.yaml", "method: M\nofficial_code: o\npaper_variant: p\n"))


def test_effects_average_over_common_seeds_and_subtract_per_seed(tmp_path: Path) -> None:
    rows = [{"method": "paper", "seed": 0, "test_ktau": 0.5}, {"method": "paper", "seed": 1, "test_ktau": 0.7},
            {"method": "paper", "seed": 2, "test_ktau": 0.9},  # seed 2: the improved variant lacks it
            {"method": "ours", "seed": 0, "test_ktau": 0.6}, {"method": "ours", "seed": 1, "test_ktau": 0.6},
            {"method": "ours", "seed": 1, "test_ktau": 0.6, "overrides": ["x=1"]},  # another variant
            {"method": "ours", "seed": 0, "error": "boom"},
            {"method": "spos", "seed": 0, "test_ktau": 0.1}, {"method": "spos", "seed": 1, "test_ktau": 0.3}]
    (tmp_path / "r.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\nnot json\n")
    effect = {"label": "KTau", "file": "r.jsonl", "metric": "test_ktau",
              "paper": {"method": "paper"}, "improved": {"method": "ours"}}
    assert fidelity.effect_row(tmp_path, effect) == "| KTau | 0.600 | 0.600 | +0.000 ± 0.141 | 2 |"
    gain = dict(effect, paper={"method": "paper", "minus": {"method": "spos"}},
                improved={"method": "ours", "minus": {"method": "spos"}})
    assert fidelity.effect_row(tmp_path, gain) == "| KTau | 0.400 | 0.400 | +0.000 ± 0.141 | 2 |"
    assert "not measured" in fidelity.effect_row(tmp_path, dict(effect, improved={"method": "other"}))


def test_search_effects_count_queries_to_the_optimum(tmp_path: Path) -> None:
    def run(strategy: str, seed: int, ranks: list[int]) -> dict:  # rank 1 = the space's optimum
        return {"strategy": strategy, "dataset": "d", "seed": seed, "values": [0.0] * len(ranks), "ranks": ranks,
                "optimum": 1.0}

    rows = [run("a", 0, [5, 1, 3, 4]), run("a", 1, [5, 4, 1, 3]), run("b", 0, [5, 4, 3, 2]), run("b", 1, [1, 5, 4, 3])]
    with gzip.open(tmp_path / "s.jsonl.gz", "wt") as fh:
        fh.write("\n".join(map(json.dumps, rows)) + "\n")
    effect = {"label": "queries", "file": "s.jsonl.gz", "metric": "queries_to_opt",
              "paper": {"strategy": "a"}, "improved": {"strategy": "b"}}
    # a: hits at 2 and 3 queries (median 2.5); b: never, then at 1 (median beyond the budget of 4)
    assert fidelity.effect_row(tmp_path, effect) == "| queries | 2 | > 4 | – | 2 |"
