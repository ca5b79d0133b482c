#!/usr/bin/env bash
# Set up FaceUnlock in ./.venv. Idempotent: re-running only installs what is missing.
#   bash scripts/setup.sh          runtime + desktop app (PyQt6)
#   bash scripts/setup.sh --dev    also the test, lint and training tools (+ xvfb, pamtester,
#                                  dbus, gnome-keyring, python3-dbusmock, and trayer + xdotool
#                                  for the real tray-host test, from Debian's packages)
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
[ "${1:-}" = "--dev" ] && DEV=1

say() { printf '[setup] %s\n' "$*" >&2; }

# --- system packages (Debian/Ubuntu) -------------------------------------------------------
PY="${PYTHON:-python3}"
APT_RUNTIME=(libgl1 libglib2.0-0 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3)
# Debian's python3 lacks venv/ensurepip until python3-venv is installed
"$PY" -c 'import venv, ensurepip' 2>/dev/null || APT_RUNTIME+=(python3-venv)
APT_DEV=(xvfb xauth pamtester dbus dbus-x11 gnome-keyring libpam-modules python3-dbusmock
         trayer xdotool
         gnome-shell gjs
         libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0
         libxcb-randr0 libxcb-render-util0 libxcb-image0 libxkbcommon-x11-0)
want=("${APT_RUNTIME[@]}")
[ "$DEV" = 1 ] && want+=("${APT_DEV[@]}")
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python ---------------------------------------------------------------------------------
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "FaceUnlock needs Python 3.11 or newer ($PY is $("$PY" -V 2>&1))" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip >/dev/null

if [ "$DEV" = 1 ]; then
  # torch only for the train extra; the CPU build pinned here (a CUDA build is several GB).
  "$VPY" -c 'import torch' 2>/dev/null || { say "installing torch (CPU)"; "$VPY" -m pip install -q "torch==2.13.0"; }
  say "installing faceunlock[gui,train,dev]"
  "$VPY" -m pip install -q -e ".[gui,train,dev]"
else
  say "installing faceunlock[gui]"
  "$VPY" -m pip install -q -e ".[gui]"
fi
say "ready: $(.venv/bin/faceunlock --version)"
