#!/usr/bin/env bash
# Build the Debian package dist/faceunlock_<version>_<arch>.deb from this checkout.
#
#   bash packaging/deb/build.sh [--version V] [--out DIR] [--python PY] [--compression C]
#                               [--lintian] [--no-prune]
#
# The package is self-contained: FaceUnlock and its Python dependencies (from the package
# indexes pip is configured with, fetched NOW, at build time) go to /usr/lib/faceunlock/lib,
# the models to /usr/lib/faceunlock/models, the tray icons to /usr/lib/faceunlock/assets. It
# runs on Debian's own /usr/bin/python3 (never pip-installing into it) and depends on the
# Debian libraries the bundled OpenCV, onnxruntime and Qt 6 wheels link. Installing it needs
# no network. The file layout is documented in packaging/README.md (and tested against the
# .deb by tests/packaging/test_deb.py).
#
#   --version V      package version (default: pyproject.toml's)
#   --out DIR        where the .deb goes (default: dist/)
#   --python PY      the interpreter whose pip fetches the wheels (default: .venv/bin/python,
#                    else python3); it must have the same minor version as /usr/bin/python3
#   --compression C  dpkg-deb's -Z: zstd (default; dpkg 1.21.18+, Debian 12, Ubuntu 22.04), xz
#                    (smaller, slower, older dpkg too), gzip or none
#   --lintian        run lintian on the result (installs it with apt-get when missing and
#                    root); its findings are printed, not fatal
#   --no-prune       keep all of Qt from the PyQt6 wheels (by default packaging/deb/prune_qt.py
#                    drops the modules and plugins FaceUnlock never loads: QML, 3D, web, ...)
set -euo pipefail
umask 022
export LC_ALL=C.UTF-8

PROG=build.sh
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
VERSION=""
OUT="$SRC/dist"
BUILD_PY=""
COMPRESSION=zstd
LINTIAN=0
PRUNE=1
TARGET_PY=/usr/bin/python3
APP=/usr/lib/faceunlock

die() { echo "$PROG: error: $*" >&2; exit 1; }
say() { echo "$PROG: $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --version) [ $# -ge 2 ] || die "--version needs a value"; VERSION="$2"; shift ;;
        --version=*) VERSION="${1#--version=}" ;;
        --out) [ $# -ge 2 ] || die "--out needs a directory"; OUT="$2"; shift ;;
        --out=*) OUT="${1#--out=}" ;;
        --python) [ $# -ge 2 ] || die "--python needs a path"; BUILD_PY="$2"; shift ;;
        --python=*) BUILD_PY="${1#--python=}" ;;
        --compression) [ $# -ge 2 ] || die "--compression needs a value"; COMPRESSION="$2"; shift ;;
        --compression=*) COMPRESSION="${1#--compression=}" ;;
        --lintian) LINTIAN=1 ;;
        --no-prune) PRUNE=0 ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

for tool in dpkg-deb dpkg; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found: build on Debian or Ubuntu (package dpkg)"
done
case "$COMPRESSION" in xz|zstd|gzip|none) ;; *) die "--compression: xz, zstd, gzip or none" ;; esac
[ -x "$TARGET_PY" ] || die "$TARGET_PY not found: the package runs on Debian's python3 (apt-get install python3)"
if [ -z "$BUILD_PY" ]; then
    if [ -x "$SRC/.venv/bin/python" ]; then BUILD_PY="$SRC/.venv/bin/python"; else BUILD_PY=python3; fi
fi
command -v "$BUILD_PY" >/dev/null 2>&1 || die "--python $BUILD_PY: not found"
"$BUILD_PY" -m pip --version >/dev/null 2>&1 \
    || die "$BUILD_PY has no pip (run ./run.sh once to make .venv, or pass --python)"
PYVER="$("$TARGET_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
BUILD_PYVER="$("$BUILD_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$PYVER" = "$BUILD_PYVER" ] \
    || die "$BUILD_PY is Python $BUILD_PYVER but $TARGET_PY is $PYVER: the wheels must match (pass --python)"
PYNEXT="${PYVER%.*}.$((${PYVER#*.} + 1))"

PYPROJECT_VERSION="$("$TARGET_PY" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$SRC/pyproject.toml")"
[ -n "$VERSION" ] || VERSION="$PYPROJECT_VERSION"
[[ $VERSION =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "--version $VERSION: not a Debian version (digits first; letters, digits, . + ~)"
ARCH="$(dpkg --print-architecture)"
# Debian's usual variables name who built it (dch, debuild); the default is a placeholder
MAINTAINER="${DEBFULLNAME:-FaceUnlock contributors} <${DEBEMAIL:-faceunlock@localhost}>"

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
ROOT="$STAGE/root"
LIB="$ROOT$APP/lib"
mkdir -p "$ROOT/DEBIAN" "$LIB"

# ------------------------------------------------------------------ the Python part
# pip builds from a copy of just what setuptools needs, so nothing is written into the checkout
mkdir "$STAGE/src"
cp -a "$SRC/pyproject.toml" "$SRC/README.md" "$SRC/LICENSE" "$SRC/faceunlock" "$STAGE/src/"
find "$STAGE/src" -name __pycache__ -type d -prune -exec rm -rf {} +
say "installing faceunlock[gui] and its dependencies for Python $PYVER into $APP/lib"
PYTHONWARNINGS=ignore "$BUILD_PY" -m pip install --quiet --no-compile --no-warn-script-location \
    --disable-pip-version-check --target "$LIB" "$STAGE/src[gui]"
# pip's console scripts name the build interpreter; the package has its own wrappers below.
# direct_url.json records where pip installed from (a path on this machine).
rm -rf "$LIB/bin"
find "$LIB" -name direct_url.json -delete
find "$LIB" -name __pycache__ -type d -prune -exec rm -rf {} +
# pip's RECORD lists its scripts as ../../bin/...; harmless, but keep the lists honest
find "$LIB" -path '*.dist-info/RECORD' -exec sed -i '\#^\.\./\.\./bin/#d' {} +

# the PyQt6 wheels carry all of Qt (QML, 3D, multimedia, web, ...): keep what the app loads
if [ "$PRUNE" -eq 1 ]; then
    command -v readelf >/dev/null 2>&1 || die "readelf not found (apt-get install binutils, or pass --no-prune)"
    "$TARGET_PY" -I "$SRC/packaging/deb/prune_qt.py" "$LIB"
fi

cp -a "$SRC/models" "$ROOT$APP/models"
mkdir -p "$ROOT$APP/assets"
cp -a "$SRC/assets/icons" "$ROOT$APP/assets/icons"

# ------------------------------------------------------------------ commands
mkdir -p "$ROOT/usr/bin"
launcher() {  # launcher NAME MODULE FUNCTION: /usr/bin/NAME runs MODULE.FUNCTION() isolated
    cat >"$ROOT/usr/bin/$1" <<EOF
#!/bin/sh
# FaceUnlock: \`$1\` from the faceunlock package (the app lives in $APP).
# Python's isolated mode (-I): no PYTHON* variable, user site-packages or current folder is
# used; -B: nothing is written next to the installed code.
exec $TARGET_PY -I -B -c 'import sys; sys.path.insert(0, "$APP/lib"); sys.argv[0] = "$1"; from $2 import $3; sys.exit($3())' "\$@"
EOF
    chmod 755 "$ROOT/usr/bin/$1"
}
launcher faceunlock faceunlock.cli main
launcher faceunlock-gui faceunlock.ui.app main
# The PAM helper runs as root at the login screen: env -i keeps only a fixed environment and
# the PAM_* request variables (the same as faceunlock.unlock.pam_helper.ISOLATED_ENV), so no
# LD_PRELOAD, PYTHONPATH or HOME of the caller reaches it.
cat >"$ROOT/usr/bin/faceunlock-auth" <<EOF
#!/bin/sh
# FaceUnlock PAM helper (faceunlock package; see /usr/share/doc/faceunlock/README.pam.md).
# Runs as root: a clean, fixed environment (env -i) and Python's isolated mode (-I).
exec /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \\
    \${PAM_USER+"PAM_USER=\$PAM_USER"} \${PAM_RUSER+"PAM_RUSER=\$PAM_RUSER"} \\
    \${PAM_RHOST+"PAM_RHOST=\$PAM_RHOST"} \${PAM_SERVICE+"PAM_SERVICE=\$PAM_SERVICE"} \\
    \${PAM_TTY+"PAM_TTY=\$PAM_TTY"} \${PAM_TYPE+"PAM_TYPE=\$PAM_TYPE"} \\
    $TARGET_PY -I -B -c 'import sys; sys.path.insert(0, "$APP/lib"); sys.argv[0] = "faceunlock-auth"; from faceunlock.unlock.pam_helper import main; sys.exit(main())' "\$@"
EOF
chmod 755 "$ROOT/usr/bin/faceunlock-auth"

# ------------------------------------------------------------------ system integration
install -D -m 644 /dev/stdin "$ROOT/usr/share/pam-configs/faceunlock" \
    < <(sed 's|/usr/local/bin/faceunlock-auth|/usr/bin/faceunlock-auth|' "$SRC/packaging/pam/faceunlock")
grep -q 'pam_exec.so quiet stdout /usr/bin/faceunlock-auth$' "$ROOT/usr/share/pam-configs/faceunlock" \
    || die "packaging/pam/faceunlock has no pam_exec line for /usr/local/bin/faceunlock-auth"
# the unit without its checkout-install comments, run from /usr/bin
install -D -m 644 /dev/stdin "$ROOT/usr/lib/systemd/user/faceunlock-watch.service" < <(
    echo "# FaceUnlock lock-screen watcher (faceunlock package). Each user turns it on with"
    echo "#   systemctl --user enable --now faceunlock-watch"
    sed -n '/^\[Unit\]/,$p' "$SRC/packaging/systemd/faceunlock-watch.service" \
        | sed 's|^ExecStart=.*|ExecStart=/usr/bin/faceunlock watch|')
grep -qx 'ExecStart=/usr/bin/faceunlock watch' "$ROOT/usr/lib/systemd/user/faceunlock-watch.service" \
    || die "packaging/systemd/faceunlock-watch.service has no [Unit] or ExecStart line"
install -D -m 644 "$SRC/packaging/desktop/faceunlock.desktop" \
    "$ROOT/usr/share/applications/faceunlock.desktop"
install -D -m 644 "$SRC/packaging/desktop/faceunlock-autostart.desktop" \
    "$ROOT/etc/xdg/autostart/faceunlock-autostart.desktop"
ICON_DIR="$ROOT/usr/share/icons/hicolor/scalable/apps"
mkdir -p "$ICON_DIR"
APP_ICON="$SRC/assets/icons/watching.svg"
[ -f "$APP_ICON" ] || APP_ICON="$SRC/assets/icons/idle.svg"
install -m 644 "$APP_ICON" "$ICON_DIR/faceunlock.svg"
for icon in "$SRC"/assets/icons/*.svg; do
    install -m 644 "$icon" "$ICON_DIR/faceunlock-$(basename "$icon")"
done

DOC="$ROOT/usr/share/doc/faceunlock"
mkdir -p "$DOC"
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: faceunlock"
    echo "Comment: The package bundles FaceUnlock's Python dependencies in /usr/lib/faceunlock/lib;"
    echo " each keeps its licence file in its *.dist-info folder there. The models in"
    echo " /usr/lib/faceunlock/models name their source and licence in their .json sidecars."
    echo
    echo "Files: *"
    echo "Copyright: FaceUnlock contributors"
    echo "License: MIT"
    sed 's/^$/./; s/^/ /' "$SRC/LICENSE"
} >"$DOC/copyright"
{
    echo "faceunlock ($VERSION) unstable; urgency=medium"
    echo
    echo "  * Package built from the FaceUnlock checkout by packaging/deb/build.sh."
    echo
    echo " -- $MAINTAINER  $(date -u -R -d "@${SOURCE_DATE_EPOCH:-$(git -C "$SRC" log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n >"$DOC/changelog.gz"
install -m 644 "$SRC/packaging/pam/README.md" "$DOC/README.pam.md"

# ------------------------------------------------------------------ permissions
# root-owned (dpkg-deb --root-owner-group), writable by root only; the only executables are
# the three commands and the ELF executables the wheels ship
find "$ROOT" -type d -exec chmod 755 {} +
find "$ROOT" -type f ! -path "$ROOT/DEBIAN/*" -exec chmod 644 {} +
chmod 755 "$ROOT/usr/bin/"*

# ------------------------------------------------------------------ control
# the C library the wheels were built against: per wheel the oldest glibc its manylinux tags
# allow, the newest of those over all wheels
GLIBC="$("$TARGET_PY" - "$LIB" <<'PY'
import re, sys
from pathlib import Path
legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
need = (2, 17)
for wheel in Path(sys.argv[1]).glob("*.dist-info/WHEEL"):
    plats = set(re.findall(r"^Tag: [^-]+-[^-]+-(manylinux(?:_\d+_\d+|1|2010|2014))_",
                           wheel.read_text(), re.M))
    versions = []
    for plat in plats:
        m = re.fullmatch(r"manylinux_(\d+)_(\d+)", plat)
        versions.append((int(m[1]), int(m[2])) if m else legacy.get(plat, (2, 17)))
    if versions:
        need = max(need, min(versions))
print("%d.%d" % need)
PY
)"
DEPENDS="libc6 (>= $GLIBC), python3 (>= $PYVER), python3 (<< $PYNEXT), libpam-modules, libpam-runtime"
# the Debian libraries the bundled Qt 6, OpenCV and onnxruntime wheels link (the list
# scripts/setup.sh installs for a checkout)
while IFS= read -r lib; do DEPENDS="$DEPENDS, $lib"; done < <(bash "$SRC/scripts/setup.sh" --print-apt-runtime)
SIZE="$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)"
cat >"$ROOT/DEBIAN/control" <<EOF
Package: faceunlock
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $SIZE
Depends: $DEPENDS
Section: admin
Priority: optional
Homepage: https://github.com/faceunlock/faceunlock
Description: face unlock for the Linux desktop (password still works)
 FaceUnlock verifies one enrolled face with the webcam and unlocks the locked
 session; if you turn it on, it also answers the login screen, sudo and polkit
 through a pam_exec line (sufficient: the password always keeps working).
 .
 Everything runs locally on onnxruntime, OpenCV and numpy, bundled in
 /usr/lib/faceunlock. Installing the package does not enable face login:
 run "faceunlock system enable" for that.
EOF
echo /etc/xdg/autostart/faceunlock-autostart.desktop >"$ROOT/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    sed "s|@APP@|$APP|g; s|@PYTHON@|$TARGET_PY|g" "$SRC/packaging/deb/$script" >"$ROOT/DEBIAN/$script"
    chmod 755 "$ROOT/DEBIAN/$script"
done
(cd "$ROOT" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) \
    >"$ROOT/DEBIAN/md5sums"
chmod 644 "$ROOT/DEBIAN/md5sums" "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/conffiles"

# nothing of this machine may end up in the package: not the checkout, not the staging folder
if grep -rlF -e "$SRC" -e "$STAGE" "$ROOT" >"$STAGE/leaks"; then
    die "the package would contain this machine's paths ($SRC or $STAGE) in: $(tr '\n' ' ' <"$STAGE/leaks")"
fi

mkdir -p "$OUT"
DEB="$OUT/faceunlock_${VERSION}_${ARCH}.deb"
say "building $DEB"
dpkg-deb --root-owner-group -Z"$COMPRESSION" --build "$ROOT" "$DEB" >/dev/null
say "built $DEB ($(du -h "$DEB" | cut -f1))"

if [ "$LINTIAN" -eq 1 ]; then
    if ! command -v lintian >/dev/null 2>&1; then
        if [ "$(id -u)" -eq 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >/dev/null
        else
            die "lintian is not installed (sudo apt-get install lintian)"
        fi
    fi
    say "lintian (findings are explained in packaging/deb/README.md):"
    lintian --no-tag-display-limit --info "$DEB" || true
fi
printf '%s\n' "$DEB"
