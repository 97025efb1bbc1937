#!/usr/bin/env bash
# Mutation testing of the modules that carry rlft's headline claims (not part of CI: it is slow).
# Which modules and which tests: [tool.mutmut] in pyproject.toml. How to read the result: docs/testing.md.
#   bash scripts/mutation.sh             # run; results are kept in mutants/, so a second run only redoes what changed
#   bash scripts/mutation.sh --fresh     # forget earlier results first
#   bash scripts/mutation.sh --survivors # list the surviving mutants of the last run (`mutmut show NAME` for a diff)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all,dev >/dev/null
.venv/bin/python -m pip install --quiet "mutmut==3.8.1"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
case "${1:-}" in
  --survivors) .venv/bin/mutmut results; exit 0 ;;
  --fresh) rm -rf mutants ;;
esac
start=$(date +%s)
.venv/bin/python scripts/mutmut_run.py run --max-children "${MUTMUT_CHILDREN:-2}" | tr '\r' '\n' | grep -v '^⠋\|^⠙\|^⠹\|^⠸\|^⠼\|^⠴\|^⠦\|^⠧\|^⠇\|^⠏' | tail -n 5
.venv/bin/mutmut export-cicd-stats >/dev/null
.venv/bin/python - "$(( $(date +%s) - start ))" <<'PY'
import json, sys
s = json.load(open("mutants/mutmut-cicd-stats.json"))
detected = s["killed"] + s["timeout"]
scored = detected + s["survived"] + s["no_tests"] + s["suspicious"]
print(f"mutants: {s['total']}  killed {s['killed']}  timeout {s['timeout']}  survived {s['survived']}  "
      f"no tests {s['no_tests']}  suspicious {s['suspicious']}  skipped {s['skipped']}  ({sys.argv[1]} s)")
print(f"mutation score: {detected / max(scored, 1):.3f}  (killed + timeout) / (all but skipped)")
print("survivors: bash scripts/mutation.sh --survivors; each is killed by a test or listed in docs/testing.md")
PY
