"""Command-line interface: ``faceunlock VERB ...``.

One module per verb group, each registering its sub-parsers beside its handlers
(:mod:`.engine`, :mod:`.user`, :mod:`.system`, :mod:`.training`); a handler takes the typed
options of its verb (a frozen dataclass, see :func:`faceunlock.cli.common.bind`). Only
argument handling and output formatting live here; library code raises typed errors
(:mod:`faceunlock.errors`) that are turned into messages and exit codes in :func:`main`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from faceunlock import __version__
from faceunlock.cli import engine, system, training, user
from faceunlock.cli.common import RUN
from faceunlock.errors import AuthStatus, FaceUnlockError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="faceunlock", description="Face unlock for the Linux desktop")
    p.add_argument("--version", action="version", version=f"faceunlock {__version__}")
    p.add_argument(
        "--camera",
        metavar="SOURCE",
        help="with no VERB: start the desktop app on this camera index, /dev/videoN, video "
        "file or image folder, for this run only (not saved)",
    )
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    engine.register(sub)
    user.register(sub)
    system.register(sub)
    engine.register_tools(sub)
    training.register(sub)
    return p


def _gui(options: list[str]) -> int:
    """The desktop app (wizard or tray) with its own ``options`` (e.g. ``--camera X``)."""
    try:
        from faceunlock.ui.app import main as gui_main  # the entry point may import the UI
    except ImportError as e:
        print(
            f"faceunlock: the desktop app needs PyQt6 ({e}); install it with "
            "`pip install 'faceunlock[gui]'`, or run `faceunlock --help` for the commands",
            file=sys.stderr,
        )
        return 1
    return int(gui_main(options))


def main(argv: Sequence[str] | None = None) -> int:
    if not (sys.argv[1:] if argv is None else argv):
        return _gui([])  # no arguments: the desktop app
    parser = build_parser()
    args = parser.parse_args(argv)
    values = vars(args)
    if args.camera is not None:
        if values.get("verb"):
            parser.error("--camera goes with no VERB (it starts the desktop app); the verbs "
                         "that read a camera take --source")
        return _gui(["--camera", args.camera])
    run: Callable[[argparse.Namespace], int] | None = values.get(RUN)
    if run is None:
        parser.print_help()
        return int(AuthStatus.USAGE)
    try:
        return int(run(args))
    except FaceUnlockError as e:
        print(f"faceunlock: error: {e}", file=sys.stderr)
        return int(e.status)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os._exit(0)
    except OSError as e:  # not one of ours: still a message, not a traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"faceunlock: error: {where}{e.strerror or e}", file=sys.stderr)
        return int(AuthStatus.ERROR)


__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
