#!/usr/bin/env bash
# Set up .venv (if needed) and run the checks: ruff lint + the full pytest suite.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Two workers (pytest-xdist): the suite is half subprocesses and Lava workers that wait.
.venv/bin/python -m pytest -n 2 "$@"
