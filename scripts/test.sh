#!/usr/bin/env bash
# Set up, then run what CI runs: ruff, mypy, and the default (non-slow) test suite.
#   bash scripts/test.sh             # everything CI runs
#   bash scripts/test.sh -k config   # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all,dev
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
.venv/bin/ruff check rlft envs policies tests benchmarks
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/python -m pytest "$@"
