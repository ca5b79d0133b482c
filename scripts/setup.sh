#!/usr/bin/env bash
# Set up FaceUnlock in ./.venv. Idempotent: re-running only installs what is missing; pip
# runs only when pyproject.toml changed since the last install ($VENV/.faceunlock-installed).
#   bash scripts/setup.sh          runtime + desktop app (PyQt6), with every system library
#                                  Qt needs to open a window on X11 (xcb) and Wayland
#   bash scripts/setup.sh --dev    also the test, lint and training tools (+ xvfb, pamtester,
#                                  dbus, gnome-keyring, python3-dbusmock, and trayer + xdotool
#                                  for the real tray-host test, debootstrap + lintian for the
#                                  .deb's tests, from Debian's packages)
#   bash scripts/setup.sh --print-apt-runtime
#                                  print the runtime Debian packages, one a line, and exit
#                                  (tests/ui/test_runtime_deps.py reads the list from here)
# FACEUNLOCK_VENV=DIR puts the virtual environment in DIR instead of ./.venv.
# `faceunlock` and `faceunlock-gui` are linked into ~/.local/bin (scripts/link-commands.sh;
# FACEUNLOCK_BIN_DIR=DIR links them there instead).
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
PRINT_RUNTIME=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    --print-apt-runtime) PRINT_RUNTIME=1 ;;
    *) echo "setup.sh: unknown option $arg (use --dev or --print-apt-runtime)" >&2; exit 2 ;;
  esac
done
VENV="${FACEUNLOCK_VENV:-.venv}"

say() { printf '[setup] %s\n' "$*" >&2; }

# --- system packages (Debian/Ubuntu) -------------------------------------------------------
PY="${PYTHON:-python3}"
APT_RUNTIME=(
  # Qt itself (QtGui, fonts, the session bus)
  libgl1 libglib2.0-0 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3
  # Qt's xcb platform plugin (X11 desktops, and XWayland): what libqxcb.so links
  libx11-6 libx11-xcb1 libxcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
  libxcb-randr0 libxcb-render0 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1
  libxcb-util1 libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0
  # Qt's wayland platform plugin (Qt 6 picks it when WAYLAND_DISPLAY is set)
  libwayland-client0 libwayland-cursor0
)
if [ "$PRINT_RUNTIME" = 1 ]; then
  printf '%s\n' "${APT_RUNTIME[@]}"
  exit 0
fi
# Debian's python3 lacks venv/ensurepip until python3-venv is installed
"$PY" -c 'import venv, ensurepip' 2>/dev/null || APT_RUNTIME+=(python3-venv)
APT_DEV=(xvfb xauth pamtester dbus dbus-x11 gnome-keyring libpam-modules python3-dbusmock
         trayer xdotool
         gnome-shell gjs
         mate-screensaver
         # tests/packaging/test_deb.py: build the .deb, check it, install it into a chroot
         debootstrap lintian)
want=("${APT_RUNTIME[@]}")
[ "$DEV" = 1 ] && want+=("${APT_DEV[@]}")
installed() {  # Ubuntu 24.04 renamed some libraries with a t64 suffix (libglib2.0-0t64)
  local n
  for n in "$1" "${1}t64"; do
    dpkg-query -W -f='${Status}' "$n" 2>/dev/null | grep -q "install ok installed" && return 0
  done
  return 1
}
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${want[@]}"; do
    installed "$p" || missing+=("$p")
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
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
# pip runs only when the venv is not installed from this pyproject.toml yet: the stamp holds
# its hash, the checkout and the extras installed (delete the stamp to force a reinstall)
STAMP="$VENV/.faceunlock-installed"
EXTRAS=gui
[ "$DEV" = 1 ] && EXTRAS=gui,train,dev
want_stamp() {
  printf 'pyproject %s\ncheckout %s\nextras %s\n' \
    "$(sha256sum pyproject.toml | cut -d' ' -f1)" "$(pwd -P)" "$1"
}
up_to_date() {
  [ -f "$STAMP" ] && [ -x "$VENV/bin/faceunlock" ] || return 1
  local have
  have="$(cat "$STAMP")"
  # a dev install has the runtime extras too
  { [ "$have" = "$(want_stamp "$EXTRAS")" ] || [ "$have" = "$(want_stamp gui,train,dev)" ]; } \
    && "$VPY" -c 'import faceunlock' 2>/dev/null
}
INSTALLED=0
if ! up_to_date; then
  INSTALLED=1
  rm -f "$STAMP"
  # setuptools' "Editable installation" banner is information only
  export PYTHONWARNINGS="ignore:Editable installation${PYTHONWARNINGS:+,$PYTHONWARNINGS}"
  "$VPY" -m pip install -q --upgrade pip >/dev/null
  if [ "$DEV" = 1 ]; then
    # torch only for the train extra; the CPU build pinned here (a CUDA build is several GB).
    "$VPY" -c 'import torch' 2>/dev/null || { say "installing torch (CPU)"; "$VPY" -m pip install -q "torch==2.13.0"; }
  fi
  say "installing faceunlock[$EXTRAS]"
  "$VPY" -m pip install -q -e ".[$EXTRAS]"
  want_stamp "$EXTRAS" > "$STAMP"
fi
# the commands on the PATH (symlinks in ~/.local/bin; an existing file there is never replaced)
bash scripts/link-commands.sh "$VENV"
[ "$INSTALLED" = 1 ] && say "ready: $("$VENV/bin/faceunlock" --version)"
exit 0
