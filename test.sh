#!/usr/bin/env bash
# One command: set up (first time) and run every check: ruff, mypy, import-linter, pytest.
# Qt tests run offscreen; tests needing a real X server or session bus get Xvfb / D-Bus
# started by the test fixtures themselves.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh --dev
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check faceunlock tests benchmarks tools
echo "== mypy"; mypy
echo "== import-linter"; lint-imports
echo "== pytest"; QT_QPA_PLATFORM=offscreen pytest "$@"
