#!/usr/bin/env bash
# One command: set up (first time) and run FaceUnlock. Arguments go to `faceunlock`;
# with none, the engine runs live on the default camera.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then set -- live --source 0; fi
exec .venv/bin/faceunlock "$@"
