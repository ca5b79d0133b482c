#!/usr/bin/env bash
# Put `faceunlock` and `faceunlock-gui` on the PATH: symlinks in ~/.local/bin (or
# $FACEUNLOCK_BIN_DIR) to the scripts of the virtual environment VENV, so the commands the
# README and the app name work from any new shell. Run by scripts/setup.sh (and so by
# ./run.sh). A file there that is not one of FaceUnlock's symlinks is never replaced.
#   bash scripts/link-commands.sh VENV
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: link-commands.sh VENV" >&2; exit 2; }
venv="$(cd "$1" && pwd)"
bin="${FACEUNLOCK_BIN_DIR:-$HOME/.local/bin}"
shown="${bin/#$HOME/\~}"
say() { printf '[setup] %s\n' "$*" >&2; }

ours() {  # a symlink we made: into a FaceUnlock venv's bin/, which may since have gone
  local cur="$1" cmd="$2"
  case "$cur" in */bin/"$cmd") ;; *) return 1 ;; esac
  local env_dir
  env_dir="$(dirname "$(dirname "$cur")")"
  [ -f "$env_dir/pyvenv.cfg" ] || [ ! -e "$cur" ]
}

made=()
for cmd in faceunlock faceunlock-gui; do
  target="$venv/bin/$cmd"
  [ -x "$target" ] || continue
  link="$bin/$cmd"
  if [ -L "$link" ]; then
    cur="$(readlink "$link")"
    [ "$cur" = "$target" ] && continue
    if ! ours "$cur" "$cmd"; then
      say "not replacing $link: it points to $cur, which is not FaceUnlock's (run $target directly, or remove the link)"
      continue
    fi
  elif [ -e "$link" ]; then
    say "not replacing $link: FaceUnlock did not make that file (run $target directly, or remove it)"
    continue
  fi
  mkdir -p "$bin"
  ln -sfn "$target" "$link"
  made+=("$cmd")
done
[ "${#made[@]}" -gt 0 ] || exit 0
case ":$PATH:" in
  *":$bin:"*) say "${made[*]} now on your PATH via $shown" ;;
  *) say "${made[*]} linked in $shown, which is not on your PATH: add it with"
     say "  echo 'export PATH=\"$bin:\$PATH\"' >> ~/.bashrc"
     say "then open a new terminal (or run $venv/bin/faceunlock directly)" ;;
esac
