#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the test suite (slow tests excluded; pass -m slow to run them).
# pytest's exit code 5 ("no tests collected") is a failure here, never a pass.
# Test files run in NASRANK_TEST_WORKERS processes (default 2, the reference machine's cores; pytest-xdist,
# one file per worker so a module's fixtures are built once): the suite's fits are mostly single-threaded
# Python, so two workers take about 6 minutes where one takes 9.  `-n 0` runs everything in one process.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
if [ "$#" -eq 0 ]; then set -- -m "not slow"; fi
.venv/bin/python -m pytest -n "${NASRANK_TEST_WORKERS:-2}" --dist loadfile "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi
exit "$rc"
