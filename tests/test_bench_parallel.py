"""benchmarks/parallel.py: every job gets exactly one result, also when its process dies."""

from __future__ import annotations

import os
import sys

import pytest

from nasrank.core import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from parallel import run_forked  # noqa: E402


def job(n: int) -> dict:
    if n == 3:
        os._exit(7)  # a crash (e.g. out of memory) that sends nothing
    return {"square": n * n, "pid": os.getpid()}


@pytest.mark.parametrize("workers", [1, 3])
def test_results_for_every_job_even_when_one_dies(workers):
    results = dict(run_forked(job, range(6), workers, on_death=lambda n, why: {"error": why, "n": n}))
    assert sorted(results) == list(range(6))
    assert results[3] == {"error": "the job's process exited with code 7 without a result", "n": 3}
    assert all(results[n]["square"] == n * n for n in (0, 1, 2, 4, 5))
    assert len({results[n]["pid"] for n in (0, 1, 2, 4, 5)} | {os.getpid()}) == 6  # each in its own process
    with pytest.raises(ValueError, match="workers must be at least 1"):
        next(run_forked(job, [1], 0))
