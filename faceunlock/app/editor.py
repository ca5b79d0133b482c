"""The user's text editor, for ``faceunlock config edit``."""

from __future__ import annotations

import os
import shlex
import shutil

from faceunlock.errors import InputError


def text_editor() -> list[str]:
    """The command line of the text editor for `config edit`: $VISUAL, $EDITOR, or the first
    of nano, vi and editor on the PATH. InputError, saying what to set, when there is none."""
    for var in ("VISUAL", "EDITOR"):
        text = os.environ.get(var, "").strip()
        if text:
            cmd = shlex.split(text)
            if not shutil.which(cmd[0]):
                raise InputError(f"${var} is {text!r}, but {cmd[0]!r} is not an installed "
                                 f"program; set {var} to your text editor, e.g. "
                                 f"`{var}=vim faceunlock config edit`")
            return cmd
    for name in ("nano", "vi", "editor"):
        if shutil.which(name):
            return [name]
    raise InputError("no text editor found ($EDITOR is not set, and neither nano nor vi is "
                     "installed): set EDITOR, e.g. `EDITOR=vim faceunlock config edit`, or "
                     "change one key with `faceunlock config set KEY VALUE`")
