#!/usr/bin/env bash
# One command: set up (first time) and run FaceUnlock. Arguments go to `faceunlock`;
# with none, the desktop app starts (the enrolment wizard on first run, then the tray).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec "${FACEUNLOCK_VENV:-.venv}/bin/faceunlock" "$@"
