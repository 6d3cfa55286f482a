#!/usr/bin/env bash
# Second command of the README: set up, then run the whole test suite (pytest arguments pass through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
status=0
.venv/bin/python -m pytest "$@" || status=$?
# pytest exits 5 when it collected no tests; that is not a failure of the suite.
if [ "$status" -eq 5 ]; then status=0; fi
exit "$status"
