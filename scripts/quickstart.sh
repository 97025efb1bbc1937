#!/usr/bin/env bash
# Set up, then run the headline pipeline on its built-in default config and print the result table.
#   bash scripts/quickstart.sh                 # default config
#   bash scripts/quickstart.sh configs/X.yaml  # another config
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all
export HF_HUB_OFFLINE=1
config="${1:-}"
run_dir="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
.venv/bin/rlft train ${config} --run-dir "${run_dir}"
echo
echo "Next: .venv/bin/rlft eval ${run_dir} --episodes 50     |     .venv/bin/tensorboard --logdir runs/"
