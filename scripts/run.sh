#!/usr/bin/env bash
# Set up (scripts/setup.sh) and train the default ranker on the embedded default benchmark.
# Extra arguments are Hydra overrides, e.g.: bash scripts/run.sh model=nar data=nb201_cifar100
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python train.py "$@"
