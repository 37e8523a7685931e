#!/usr/bin/env bash
# Time a fresh clone: install (scripts/setup.sh) and the default `python train.py` (embedded benchmark).
# Writes benchmarks/results/fresh_clone.{json,md}.  pip's download cache of this machine is used, as a
# second install on any machine would.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/nasrank"
cd "$work/nasrank"
SECONDS=0; bash scripts/setup.sh; install=$SECONDS
SECONDS=0; NASRANK_CACHE_DIR="$work/cache" .venv/bin/python train.py logger=csv > "$work/train.out" 2>&1; run=$SECONDS
ktau=$(awk '$1=="test/ktau"{print $2}' "$work/train.out")
commit=$(git rev-parse --short HEAD)
mkdir -p "$repo/benchmarks/results"
printf '{"commit": "%s", "install_s": %d, "train_default_s": %d, "train_default_test_ktau": %s}\n' "$commit" "$install" "$run" "$ktau" > "$repo/benchmarks/results/fresh_clone.json"
cat > "$repo/benchmarks/results/fresh_clone.md" <<MD
## Fresh clone (\`bash benchmarks/fresh_clone.sh\`, commit $commit)

| step | wall time (s) |
|---|---|
| \`bash scripts/setup.sh\` (venv, torch==2.13.0, \`pip install -e ".[dev]"\`) | $install |
| \`python train.py\` (GIN regressor, AnalogNAS-Bench, cold cache; test KTau $ktau) | $run |
MD
cat "$repo/benchmarks/results/fresh_clone.md"
