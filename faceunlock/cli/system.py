"""The system verbs: ``system-copy``, ``system enable|disable|status``, and ``enable`` /
``disable`` (the ``general.disabled`` switch)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from faceunlock.cli import common
from faceunlock.cli.common import Subparsers, bind, json_arg, print_json, user_arg, user_or_current
from faceunlock.errors import AuthStatus


# ---------------------------------------------------------------- system-copy
@dataclass(frozen=True)
class SystemCopyArgs:
    user: str | None
    stdin: bool


def system_copy(a: SystemCopyArgs) -> int:
    """Install the root-only copy of a template for the login screen: as the user, elevate
    (:func:`faceunlock.unlock.system_copy.request`); as root with ``--stdin``, write it
    (:func:`faceunlock.unlock.system_copy.install_from`)."""
    from faceunlock.unlock import system_copy as sc

    user = user_or_current(a.user)
    if not a.stdin:
        return sc.request(user, common.store(), os.environ)
    path = sc.install_from(user, sys.stdin.buffer, os.environ)
    print(f"system copy written: {path}")
    return 0


# ---------------------------------------------------------------- system
@dataclass(frozen=True)
class SystemArgs:
    action: str
    root: str
    dry_run: bool
    json: bool


def system(a: SystemArgs) -> int:
    """``faceunlock system enable|disable|status``: the PAM face line, system-wide."""
    from faceunlock.unlock import system as sy

    if a.action == "status":
        st = sy.status(a.root)
        if a.json:
            print_json(st)
        else:
            print(sy.format_status(st))
        return 0
    if a.action == "enable" and a.dry_run:
        return _enable_preview(a)
    fn = sy.enable if a.action == "enable" else sy.disable
    plan = fn(a.root, dry_run=a.dry_run)
    if a.json:
        print_json(
            {
                "action": plan.action,
                "command": plan.command,
                "ran": plan.ran,
                "returncode": plan.returncode,
                "messages": plan.messages,
            }
        )
    else:
        for line in plan.messages:
            print(line)
    return 0


def _enable_preview(a: SystemArgs) -> int:
    """``system enable --dry-run``: the exact change, shown even where enable would refuse now
    (helper not installed yet: exit 4, with what to do first); no root rights needed."""
    from faceunlock.unlock import system as sy

    pv = sy.enable_preview(a.root)
    messages = ["dry run: nothing is changed", pv.summary, *(f"    {ln}" for ln in pv.lines)]
    if pv.problem:
        messages.append(f"enable cannot run yet: {pv.problem}")
    messages.append(f"undo after enabling: {pv.undo}")
    if a.json:
        print_json({
            "action": "enable",
            "command": ["pam-auth-update", "--enable", "faceunlock"] if pv.automatic else None,
            "ran": False,
            "returncode": None,
            "lines": pv.lines,
            "problem": pv.problem,
            "messages": messages,
        })
    else:
        for line in messages:
            print(line)
    return int(AuthStatus.BAD_INPUT) if pv.problem else 0


# ---------------------------------------------------------------- enable, disable
@dataclass(frozen=True)
class SwitchArgs:
    disable: bool


def switch(a: SwitchArgs) -> int:
    from faceunlock import config as C

    C.save_config(C.config_set(C.load_config(), "general.disabled", a.disable))
    print(f"face unlock {'disabled' if a.disable else 'enabled'}")
    return 0


# ---------------------------------------------------------------- parsers
def register(sub: Subparsers) -> None:
    sc = sub.add_parser(
        "system-copy",
        help="install the root-only template copy for the login screen (asks for admin rights)",
    )
    user_arg(sc)
    sc.add_argument("--stdin", action="store_true", help=argparse.SUPPRESS)
    bind(sc, system_copy, SystemCopyArgs)

    sy = sub.add_parser(
        "system", help="login screen / sudo / polkit (PAM): enable, disable, status"
    )
    sy.add_argument("action", choices=["enable", "disable", "status"])
    sy.add_argument("--root", default="/", metavar="DIR",
                    help="prefix for every system path (tests; nothing is run)")
    sy.add_argument("--dry-run", action="store_true",
                    help="show the exact change (the PAM lines, the file they go in); change "
                    "nothing, no root needed; exit 4 when it could not be made yet")
    json_arg(sy)
    bind(sy, system, SystemArgs)

    for name, text in (("enable", "turn face unlock on"), ("disable", "turn face unlock off")):
        x = sub.add_parser(name, help=text)
        x.set_defaults(disable=name == "disable")
        bind(x, switch, SwitchArgs)
