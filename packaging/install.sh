#!/usr/bin/env bash
# Install FaceUnlock's system files (PAM helper wrapper, pam-auth-update profile, systemd user
# unit, desktop entries, icons) from this checkout. Idempotent; every change is recorded in
# <root>/var/lib/faceunlock/install-manifest.json and every replaced file is backed up under
# <root>/var/lib/faceunlock/backup/<timestamp>/, so packaging/uninstall.sh can restore the system
# exactly. Face unlock at the login screen stays OFF: enable it with `faceunlock system enable`.
#
# usage: packaging/install.sh [--dry-run] [--root DIR] [--python PATH]
set -euo pipefail
umask 022

PROG=install.sh
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=/
DRY_RUN=0
PYTHON="$SRC/.venv/bin/python"
MANIFEST_REL=/var/lib/faceunlock/install-manifest.json
BACKUP_REL=/var/lib/faceunlock/backup

usage() {
    cat <<EOF
usage: $PROG [--dry-run] [--root DIR] [--python PATH]

Installs into <root>:
  /usr/local/bin/faceunlock-auth                     PAM helper wrapper (python -I), 0755 root
  /usr/local/bin/faceunlock                          command wrapper (desktop entries use it)
  /usr/share/pam-configs/faceunlock                  pam-auth-update profile (not enabled)
  /usr/lib/systemd/user/faceunlock-watch.service     lock-screen watcher user unit
  /usr/share/applications/faceunlock.desktop         menu entry
  /etc/xdg/autostart/faceunlock-autostart.desktop    tray autostart
  /usr/share/icons/hicolor/scalable/apps/faceunlock*.svg

  --dry-run      print a diff of every file it would create or change; change nothing
  --root DIR     prefix for every system path (default /)
  --python PATH  interpreter the wrappers run (default: this checkout's .venv/bin/python)
EOF
}

# shellcheck source=packaging/common.sh
. "$SRC/packaging/common.sh"

while [ $# -gt 0 ]; do
    common_arg "$@"
    if [ "$USED" -eq 0 ]; then
        USED=1
        case "$1" in
            --python) [ $# -ge 2 ] || die "--python needs a path"; PYTHON="$2"; USED=2 ;;
            --python=*) PYTHON="${1#--python=}" ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
    fi
    shift "$USED"
done

resolve_root installing
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
[ -x "$PYTHON" ] || die "$PYTHON: no such interpreter (create the venv with ./run.sh, or pass --python)"
PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"
case "$PYTHON$SRC" in *"'"*) die "paths containing a single quote are not supported" ;; esac

# The PAM helper runs this interpreter and this package AS ROOT at the login screen: whoever can
# write them can become root. Warn when they are not root-owned or are group/world-writable.
for p in "$PYTHON" "$SRC/faceunlock" "$SRC/faceunlock/unlock"; do
    read -r uid perm < <(stat -L -c '%u %a' "$p")
    if [ "$uid" -ne 0 ] || [ $((8#$perm & 8#022)) -ne 0 ]; then
        warn "$p is owned by uid $uid with mode $perm: the PAM helper runs it as root, so it"
        warn "  should be root-owned and not writable by others (e.g. a root-owned /opt/faceunlock)"
    fi
done

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT

sha256() { sha256sum "$1" | cut -d' ' -f1; }
filemode() { stat -c '%a' "$1"; }
json_str() { local s="${1//\\/\\\\}"; s="${s//\"/\\\"}"; printf '"%s"' "$s"; }

# ------------------------------------------------------------------ manifest (previous install)
declare -A M_ACTION=() M_SHA=() M_MODE=() M_BACKUP=() M_BACKUP_SHA=()
M_ORDER=()
M_DIRS=()
INSTALLED_AT=""
CHANGED=0
MANIFEST="$ROOT$MANIFEST_REL"

field() {  # field LINE KEY -> value of "KEY": "value" on a manifest line
    if [[ $1 =~ \"$2\":\ \"([^\"]*)\" ]]; then printf '%s' "${BASH_REMATCH[1]}"; fi
}

if [ -f "$MANIFEST" ]; then
    while IFS= read -r line; do
        p="$(field "$line" path)"
        d="$(field "$line" dir)"
        t="$(field "$line" installed_at)"
        [ -n "$t" ] && INSTALLED_AT="$t"
        [ -n "$d" ] && M_DIRS+=("$d")
        if [ -n "$p" ]; then
            M_ORDER+=("$p")
            M_ACTION[$p]="$(field "$line" action)"
            M_SHA[$p]="$(field "$line" sha256)"
            M_MODE[$p]="$(field "$line" mode)"
            M_BACKUP[$p]="$(field "$line" backup)"
            M_BACKUP_SHA[$p]="$(field "$line" backup_sha256)"
        fi
    done <"$MANIFEST"
fi

# ------------------------------------------------------------------ helpers that change things
BACKUP_TS=""
choose_backup_ts() {  # the backup folder of this run, chosen once
    if [ -z "$BACKUP_TS" ]; then
        BACKUP_TS="$(date -u +%Y%m%dT%H%M%SZ)"
        local n=1 base="$BACKUP_TS"
        while [ -e "$ROOT$BACKUP_REL/$BACKUP_TS" ]; do BACKUP_TS="$base-$n"; n=$((n + 1)); done
    fi
}

mkdirs() {  # mkdirs REL_DIR [MODE]: create missing components, recording the ones created
    local rel="$1" mode="${2:-755}" cur="" part
    local IFS=/
    for part in $rel; do
        [ -z "$part" ] && continue
        cur="$cur/$part"
        if [ ! -d "$ROOT$cur" ]; then
            [ "$DRY_RUN" -eq 1 ] && continue
            mkdir -m "$mode" "$ROOT$cur"
            M_DIRS+=("$cur")
            CHANGED=1
        fi
    done
}

ensure_state_dir() {  # /var/lib/faceunlock is root-only (templates live there)
    mkdirs /var/lib 755
    mkdirs /var/lib/faceunlock 700
}

BACKUP_PATH=""
backup() {  # backup REL: copy to the backup folder; BACKUP_PATH = its path relative to root
    choose_backup_ts
    BACKUP_PATH="$BACKUP_REL/$BACKUP_TS$1"
    ensure_state_dir
    # folders inside backup/ are not recorded: uninstall removes the empty ones itself
    [ -d "$ROOT$BACKUP_REL" ] || mkdir -m 700 "$ROOT$BACKUP_REL"
    mkdir -p "$ROOT$(dirname "$BACKUP_PATH")"
    cp -a "$ROOT$1" "$ROOT$BACKUP_PATH"
}

put() {  # put STAGED REL MODE: atomic write
    local abs="$ROOT$2"
    install -m "$3" "$1" "$abs.faceunlock-new"
    [ "$IS_ROOT" -eq 1 ] && chown 0:0 "$abs.faceunlock-new"
    mv -f "$abs.faceunlock-new" "$abs"
}

show_diff() {  # show_diff OLD NEW LABEL
    diff -u --label "a$3" --label "b$3" "$1" "$2" || true
}

# ------------------------------------------------------------------ one file
install_file() {  # install_file STAGED REL MODE
    local src="$1" rel="$2" mode="$3" abs="$ROOT$2" new cur curmode b
    new="$(sha256 "$src")"
    [ -d "$abs" ] && [ ! -L "$abs" ] && die "$abs is a directory"
    if [ -e "$abs" ] && [ ! -L "$abs" ]; then
        cur="$(sha256 "$abs")"
        curmode="$(filemode "$abs")"
    else
        cur=""
        curmode=""
    fi
    if [ -n "${M_ACTION[$rel]:-}" ]; then
        # installed before: update in place; the original backup stays the one to restore
        if [ "$cur" = "$new" ] && [ "$curmode" = "$mode" ]; then
            echo "unchanged  $rel"
            return
        fi
        if [ "$DRY_RUN" -eq 1 ]; then
            echo "update     $rel (mode $mode)"
            if [ -n "$cur" ]; then show_diff "$abs" "$src" "$rel"; else show_diff /dev/null "$src" "$rel"; fi
            return
        fi
        if [ -n "$cur" ] && [ "$cur" != "${M_SHA[$rel]}" ] && [ "$cur" != "$new" ]; then
            backup "$rel"
            warn "$abs was changed since the last install; that version is kept in $ROOT$BACKUP_PATH"
        fi
        mkdirs "$(dirname "$rel")"
        put "$src" "$rel" "$mode"
        if [ "${M_ACTION[$rel]}" = kept ]; then
            # it was already identical at first install: keep a copy of that to restore
            warn "$abs now differs from the file that existed before installing"
        fi
        M_SHA[$rel]="$new"
        M_MODE[$rel]="$mode"
        CHANGED=1
        echo "updated    $rel"
        return
    fi
    M_ORDER+=("$rel")
    if [ -n "$cur" ] || [ -L "$abs" ]; then
        if [ "$cur" = "$new" ] && [ "$curmode" = "$mode" ] && [ ! -L "$abs" ]; then
            echo "present    $rel (identical, left as it was)"
            M_ACTION[$rel]=kept
            M_SHA[$rel]="$new"
            M_MODE[$rel]="$mode"
            CHANGED=1
            return
        fi
        if [ "$DRY_RUN" -eq 1 ]; then
            echo "replace    $rel (mode $mode; old file backed up under $ROOT$BACKUP_REL/<timestamp>/)"
            show_diff "$abs" "$src" "$rel"
            return
        fi
        backup "$rel"
        b="$BACKUP_PATH"
        M_ACTION[$rel]=replaced
        M_BACKUP[$rel]="$b"
        M_BACKUP_SHA[$rel]="$(sha256 "$ROOT$b" 2>/dev/null || true)"
        [ -L "$abs" ] && rm -f "$abs"
        put "$src" "$rel" "$mode"
        echo "replaced   $rel (backup: $ROOT$b)"
    else
        if [ "$DRY_RUN" -eq 1 ]; then
            echo "create     $rel (mode $mode)"
            show_diff /dev/null "$src" "$rel"
            return
        fi
        mkdirs "$(dirname "$rel")"
        put "$src" "$rel" "$mode"
        M_ACTION[$rel]=created
        echo "created    $rel"
    fi
    M_SHA[$rel]="$new"
    M_MODE[$rel]="$mode"
    CHANGED=1
}

# ------------------------------------------------------------------ staged contents
ENV_BIN="$(command -v env)" || die "no env(1) found"
# The PAM helper wrapper. It runs as root with the PAM environment: `env -i` starts Python with a
# fixed environment (the same as faceunlock.unlock.pam_helper.ISOLATED_ENV, plus the PAM_*
# variables pam_exec passes), so no LD_PRELOAD, PYTHONPATH or HOME of a caller reaches it, and
# -I (isolated mode) keeps PYTHON* variables, the current folder and user site-packages off
# the import path.
HELPER_WRAPPER="$(cat <<'EOF'
#!/bin/sh
# FaceUnlock PAM helper (installed by packaging/install.sh; see packaging/pam/README.md).
# Runs as root: a clean, fixed environment (env -i) and Python's isolated mode (-I).
exec '@ENV@' -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    ${PAM_USER+"PAM_USER=$PAM_USER"} ${PAM_RUSER+"PAM_RUSER=$PAM_RUSER"} \
    ${PAM_RHOST+"PAM_RHOST=$PAM_RHOST"} ${PAM_SERVICE+"PAM_SERVICE=$PAM_SERVICE"} \
    ${PAM_TTY+"PAM_TTY=$PAM_TTY"} ${PAM_TYPE+"PAM_TYPE=$PAM_TYPE"} \
    '@PYTHON@' -I -m faceunlock.unlock.pam_helper "$@"
EOF
)"
HELPER_WRAPPER="${HELPER_WRAPPER//@ENV@/$ENV_BIN}"
printf '%s\n' "${HELPER_WRAPPER//@PYTHON@/$PYTHON}" >"$STAGE/faceunlock-auth"
cat >"$STAGE/faceunlock" <<EOF
#!/bin/sh
# FaceUnlock command (installed by packaging/install.sh from $SRC).
exec '$PYTHON' -I -m faceunlock "\$@"
EOF
sed 's|^ExecStart=.*|ExecStart=/usr/local/bin/faceunlock watch|' \
    "$SRC/packaging/systemd/faceunlock-watch.service" >"$STAGE/faceunlock-watch.service"
grep -q '^ExecStart=/usr/local/bin/faceunlock watch$' "$STAGE/faceunlock-watch.service" \
    || die "packaging/systemd/faceunlock-watch.service has no ExecStart line"

ICONS="$SRC/assets/icons"
APP_ICON="$ICONS/watching.svg"
[ -f "$APP_ICON" ] || APP_ICON="$ICONS/idle.svg"
[ -f "$APP_ICON" ] || die "no assets/icons/watching.svg or idle.svg"

ICON_DIR=/usr/share/icons/hicolor/scalable/apps
install_file "$STAGE/faceunlock-auth" /usr/local/bin/faceunlock-auth 755
install_file "$STAGE/faceunlock" /usr/local/bin/faceunlock 755
install_file "$SRC/packaging/pam/faceunlock" /usr/share/pam-configs/faceunlock 644
install_file "$STAGE/faceunlock-watch.service" /usr/lib/systemd/user/faceunlock-watch.service 644
install_file "$SRC/packaging/desktop/faceunlock.desktop" /usr/share/applications/faceunlock.desktop 644
install_file "$SRC/packaging/desktop/faceunlock-autostart.desktop" \
    /etc/xdg/autostart/faceunlock-autostart.desktop 644
install_file "$APP_ICON" "$ICON_DIR/faceunlock.svg" 644
for icon in "$ICONS"/*.svg; do
    install_file "$icon" "$ICON_DIR/faceunlock-$(basename "$icon")" 644
done

# ------------------------------------------------------------------ manifest
if [ "$DRY_RUN" -eq 1 ]; then
    if [ "$CHANGED" -eq 1 ]; then
        echo "would record the changes in $MANIFEST"
    fi
    echo "dry run: nothing was changed"
    exit 0
fi
if [ "$CHANGED" -eq 1 ]; then
    ensure_state_dir
    [ -n "$INSTALLED_AT" ] || INSTALLED_AT="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    {
        echo "{"
        echo "  \"format\": 1,"
        echo "  \"installed_at\": \"$INSTALLED_AT\","
        echo "  \"source\": $(json_str "$SRC"),"
        echo "  \"python\": $(json_str "$PYTHON"),"
        echo "  \"created_dirs\": ["
        n=${#M_DIRS[@]}
        i=0
        for d in "${M_DIRS[@]}"; do
            i=$((i + 1))
            sep=","
            [ "$i" -eq "$n" ] && sep=""
            echo "    {\"dir\": \"$d\"}$sep"
        done
        echo "  ],"
        echo "  \"files\": ["
        n=${#M_ORDER[@]}
        i=0
        for p in "${M_ORDER[@]}"; do
            i=$((i + 1))
            sep=","
            [ "$i" -eq "$n" ] && sep=""
            entry="{\"path\": \"$p\", \"action\": \"${M_ACTION[$p]}\", \"mode\": \"${M_MODE[$p]}\""
            entry="$entry, \"sha256\": \"${M_SHA[$p]}\""
            if [ -n "${M_BACKUP[$p]:-}" ]; then
                entry="$entry, \"backup\": \"${M_BACKUP[$p]}\""
                entry="$entry, \"backup_sha256\": \"${M_BACKUP_SHA[$p]}\""
            fi
            echo "    $entry}$sep"
        done
        echo "  ]"
        echo "}"
    } >"$MANIFEST.new"
    chmod 600 "$MANIFEST.new"
    mv -f "$MANIFEST.new" "$MANIFEST"
    echo "manifest: $MANIFEST"
    if [ -z "$ROOT" ] && command -v gtk-update-icon-cache >/dev/null 2>&1 \
        && [ -f /usr/share/icons/hicolor/icon-theme.cache ]; then
        gtk-update-icon-cache -q -t /usr/share/icons/hicolor || true
    fi
else
    echo "already installed: nothing to do"
fi
echo "face unlock at the login screen is NOT enabled: run \`sudo faceunlock system enable\`"
