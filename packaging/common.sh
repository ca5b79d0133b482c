# Shared by packaging/install.sh and packaging/uninstall.sh (sourced, not run). They set PROG,
# ROOT, DRY_RUN and a usage function first.

die() { echo "$PROG: error: $*" >&2; exit 1; }
warn() { echo "$PROG: warning: $*" >&2; }

# common_arg "$@": takes --dry-run, --root DIR, --root=DIR and --help off the front of the
# arguments; sets USED to how many it took (0: the first argument is not one of these).
common_arg() {
    USED=1
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT="$2"; USED=2 ;;
        --root=*) ROOT="${1#--root=}" ;;
        -h|--help) usage; exit 0 ;;
        *) USED=0 ;;
    esac
}

# resolve_root ACTION: ROOT made absolute ("" for /); changing the real / needs root unless
# --dry-run ("ACTION system files must run as root").
resolve_root() {
    [ -d "$ROOT" ] || die "--root $ROOT: not a directory"
    ROOT="$(cd "$ROOT" && pwd -P)"
    [ "$ROOT" = / ] && ROOT=""
    if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ] && [ "$DRY_RUN" -eq 0 ]; then
        die "$1 system files must run as root (sudo $0), or use --dry-run / --root DIR"
    fi
}
