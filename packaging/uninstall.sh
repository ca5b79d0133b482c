#!/usr/bin/env bash
# Undo packaging/install.sh using <root>/var/lib/faceunlock/install-manifest.json: removes the
# files it created (only when unchanged since install; a changed file is kept, with a warning),
# puts the backed-up originals back, removes the folders it created when empty, and removes the
# manifest. Running it again is a no-op. Templates in /var/lib/faceunlock are never touched.
#
# usage: packaging/uninstall.sh [--dry-run] [--root DIR]
set -euo pipefail
umask 022

PROG=uninstall.sh
ROOT=/
DRY_RUN=0
MANIFEST_REL=/var/lib/faceunlock/install-manifest.json
BACKUP_REL=/var/lib/faceunlock/backup

usage() {
    cat <<EOF
usage: $PROG [--dry-run] [--root DIR]

  --dry-run   print what it would remove or restore (with diffs); change nothing
  --root DIR  prefix for every system path (default /)
EOF
}

# shellcheck source=packaging/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

while [ $# -gt 0 ]; do
    common_arg "$@"
    [ "$USED" -eq 0 ] && { usage >&2; die "unknown argument: $1"; }
    shift "$USED"
done

resolve_root removing

MANIFEST="$ROOT$MANIFEST_REL"
if [ ! -f "$MANIFEST" ]; then
    echo "nothing to uninstall (no $MANIFEST)"
    exit 0
fi

sha256() { sha256sum "$1" | cut -d' ' -f1; }
field() {  # field LINE KEY -> value of "KEY": "value" on a manifest line
    if [[ $1 =~ \"$2\":\ \"([^\"]*)\" ]]; then printf '%s' "${BASH_REMATCH[1]}"; fi
}
run() {  # run CMD...: print in dry-run, do otherwise
    if [ "$DRY_RUN" -eq 1 ]; then echo "would run: $*"; else "$@"; fi
}

LINES=()
DIRS=()
while IFS= read -r line; do
    [ -n "$(field "$line" path)" ] && LINES+=("$line")
    d="$(field "$line" dir)"
    [ -n "$d" ] && DIRS+=("$d")
done <"$MANIFEST"

# ------------------------------------------------------------------ PAM first
# The profile is about to go: take the face line out of the PAM stack while pam-auth-update still
# knows about it. (A leftover line only costs a failed pam_exec; the password keeps working.)
COMMON_AUTH="$ROOT/etc/pam.d/common-auth"
if grep -qs faceunlock-auth "$COMMON_AUTH"; then
    if [ -z "$ROOT" ] && command -v pam-auth-update >/dev/null 2>&1; then
        run pam-auth-update --disable faceunlock
    else
        warn "$COMMON_AUTH still uses faceunlock-auth: run \`faceunlock system disable\` first"
    fi
fi
if [ -d "$ROOT/etc/pam.d" ]; then
    while IFS= read -r f; do
        [ "$f" = "$COMMON_AUTH" ] && continue
        warn "$f still calls faceunlock-auth: delete that line (the password keeps working)"
    done < <(grep -ls faceunlock-auth "$ROOT"/etc/pam.d/* 2>/dev/null || true)
fi

# ------------------------------------------------------------------ files, last installed first
for ((i = ${#LINES[@]} - 1; i >= 0; i--)); do
    line="${LINES[$i]}"
    rel="$(field "$line" path)"
    action="$(field "$line" action)"
    sha="$(field "$line" sha256)"
    bak="$(field "$line" backup)"
    abs="$ROOT$rel"
    cur=""
    [ -f "$abs" ] && cur="$(sha256 "$abs")"
    case "$action" in
        kept)
            echo "keep       $rel (it existed, identical, before install)"
            ;;
        created)
            if [ ! -e "$abs" ] && [ ! -L "$abs" ]; then
                echo "gone       $rel (already removed)"
            elif [ "$cur" = "$sha" ]; then
                echo "remove     $rel"
                run rm -f "$abs"
            else
                warn "$abs was changed after install: kept (delete it by hand if unwanted)"
            fi
            ;;
        replaced)
            if [ ! -e "$ROOT$bak" ] && [ ! -L "$ROOT$bak" ]; then
                warn "backup $ROOT$bak is missing: $abs left as it is"
            elif [ -n "$cur" ] && [ "$cur" != "$sha" ]; then
                warn "$abs was changed after install: kept; the original is still in $ROOT$bak"
            else
                echo "restore    $rel (from $ROOT$bak)"
                if [ "$DRY_RUN" -eq 1 ] && [ -n "$cur" ]; then
                    diff -u --label "a$rel" --label "b$rel" "$abs" "$ROOT$bak" || true
                fi
                run mv -f "$ROOT$bak" "$abs"
            fi
            ;;
        *)
            warn "unknown action '$action' for $rel in the manifest: left as it is"
            ;;
    esac
done

# ------------------------------------------------------------------ manifest, folders
echo "remove     $MANIFEST_REL"
run rm -f "$MANIFEST"
if [ -d "$ROOT$BACKUP_REL" ]; then
    # empty folders left in backup/ once the originals are back (non-empty ones hold kept copies)
    run find "$ROOT$BACKUP_REL" -depth -type d -empty -delete
fi
for ((i = ${#DIRS[@]} - 1; i >= 0; i--)); do
    d="$ROOT${DIRS[$i]}"
    [ -d "$d" ] || continue
    if [ "$DRY_RUN" -eq 1 ]; then
        echo "would remove the folder ${DIRS[$i]} if empty"
    elif rmdir "$d" 2>/dev/null; then
        echo "rmdir      ${DIRS[$i]}"
    fi
done
if [ -z "$ROOT" ] && [ "$DRY_RUN" -eq 0 ] && command -v gtk-update-icon-cache >/dev/null 2>&1 \
    && [ -f /usr/share/icons/hicolor/icon-theme.cache ]; then
    gtk-update-icon-cache -q -t /usr/share/icons/hicolor || true
fi
if [ "$DRY_RUN" -eq 1 ]; then
    echo "dry run: nothing was changed"
else
    echo "uninstalled"
fi
