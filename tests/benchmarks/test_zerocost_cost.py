"""The zero-cost cost benchmark: networks per space, the extrapolated total, the written section."""

from __future__ import annotations

import json

from conftest import load_script

zc = load_script("zerocost_cost")


def test_nb201_needs_one_network_per_isomorphism_class():
    assert zc.networks_to_score("nb201") == 6466  # NATS-Bench's UniqueString count


def test_total_is_the_mean_times_the_networks():
    result = {"spaces": {"nb201": {"cpu_s": [1.0, 3.0], "networks": 3600}}, "threads": 1, "load_avg": 0.5,
              "date": "d", "machine": "m", "command": "c"}
    assert "| nb201 | 2 | 2.00 (1.00–3.00) | 3,600 | 2.0 |" in zc.markdown(result).splitlines()


def test_run_writes_both_files(tmp_path):
    assert zc.main(["--spaces", "nb201", "--cells", "2", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "zerocost_cost.json").read_text())
    assert len(result["spaces"]["nb201"]["cpu_s"]) == 2 and all(s > 0 for s in result["spaces"]["nb201"]["cpu_s"])
    assert (tmp_path / "zerocost_cost.md").read_text() == zc.markdown(result)
