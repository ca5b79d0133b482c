"""The verbs on the user's own face data and settings: ``enrol`` (``enroll``, ``add``),
``list``, ``remove``, ``clear``, ``calibrate``, ``auth``, ``test``, ``watch``, ``config``."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from faceunlock.cli import common
from faceunlock.cli.common import (
    SOURCE_HELP,
    Subparsers,
    bind,
    config_number,
    json_arg,
    number,
    print_json,
    user_arg,
    user_or_current,
)
from faceunlock.errors import AuthStatus, InputError

if TYPE_CHECKING:
    from faceunlock.config import ConfigFile
    from faceunlock.engine.auth import FrameResult
    from faceunlock.engine.enrolment import Feedback
    from faceunlock.unlock.watcher import WatcherEvent


# ---------------------------------------------------------------- enrol
@dataclass(frozen=True)
class EnrolArgs:
    user: str | None
    source: str | None
    label: str
    anchors: int | None
    replace: bool
    json: bool


def enrol(a: EnrolArgs) -> int:
    from faceunlock.app import service

    cfg = common.config()
    user = user_or_current(a.user)
    store = common.store()
    last = {"reason": ""}

    def show(fb: Feedback) -> None:
        if a.json:
            print_json(fb.to_json())
            return
        if fb.accepted:
            poses = "  ".join(f"{p.name} {p.taken}/{p.quota}" for p in fb.poses)
            nxt = "" if fb.done else f" Next: {fb.instruction}"
            print(f"  anchor {fb.progress}/{fb.target} captured ({poses}).{nxt}")
            last["reason"] = ""
        elif fb.reason and fb.reason != last["reason"]:  # each new prompt once, not per frame
            print(f"  {fb.reason}", file=sys.stderr)
            last["reason"] = fb.reason

    exists = store.exists(user)
    if not a.json:
        if a.replace and exists:
            print(f"Starting over: {user}'s current face data is replaced by this capture "
                  "(only when it completes).")
        elif exists:
            print(f"Adding appearance “{a.label}” to {user}'s face data. First, look at the "
                  "camera: only the enrolled owner can add an appearance.")
        print("Look at the camera and follow the prompts (about 10-20 s).")
    live = {"loop": True, **service.LIVE}  # a video file plays as a camera would
    out = service.enrol(
        store,
        user,
        cfg,
        service.source_for(cfg, a.source, **live),
        label=a.label,
        anchors=a.anchors,
        on_feedback=show,
        replace=a.replace,
        verify_source=service.source_for(cfg, a.source, **service.LIVE),
        on_prompt=show_prompt,
    )
    ch = out.choice
    summary = {
        "user": user,
        "added": out.added,
        "anchors": len(out.template.anchors),
        "threshold": round(ch.threshold, 4),
        "level": ch.level,
        "expected_frr": ch.to_json()["expected_frr"],
        "warnings": list(ch.warnings),
    }
    if a.json:
        print_json(summary)
    else:
        print(
            f"Enrolled {out.added} anchors ({summary['anchors']} in total) for {user}; "
            f"threshold {ch.threshold:.3f} ({ch.level})."
        )
        if out.session is not None:
            print(f"Captured {out.session.summary()}; {ch.frr_words()}.")
        for w in ch.warnings:
            print(f"warning: {w}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- list, remove, clear
@dataclass(frozen=True)
class ListArgs:
    user: str | None
    json: bool


def list_anchors(a: ListArgs) -> int:
    from faceunlock.app.service import appearances

    store = common.store()
    user = user_or_current(a.user)
    t = store.load(user)
    rows = appearances(t)
    if a.json:
        print_json(
            {
                "user": user,
                "threshold": t.threshold,
                "security_level": t.security_level,
                "scoring": t.calibration.get("scoring", "raw"),
                "lookalikes": t.calibration.get("lookalikes"),
                "anchors": rows,
            }
        )
    else:
        thr = "model default" if t.threshold is None else f"{t.threshold:.3f}"
        print(f"{user}: {len(rows)} anchors, threshold {thr} "
              f"({t.calibration.get('scoring', 'raw')} scores), level {t.security_level}")
        look = t.calibration.get("lookalikes")
        if isinstance(look, dict) and "margin" in look:
            print(f"  closest of {look.get('cohort_size', '?')} reference faces: "
                  f"{look['margin']:+.2f} from the threshold"
                  + (f"; {look['warning']}" if look.get("warning") else ""))
        for r in rows:
            print(f"  {r['id']}  {r['label']:<12} {r['created']}")
    return 0


@dataclass(frozen=True)
class RemoveArgs:
    user: str | None
    id: str


def remove(a: RemoveArgs) -> int:
    from faceunlock.app.service import remove_anchors

    n, t = remove_anchors(common.store(), user_or_current(a.user), a.id)
    print(f"removed {n} anchor(s); {len(t.anchors)} left")
    return 0


@dataclass(frozen=True)
class ClearArgs:
    user: str | None
    yes: bool


def clear(a: ClearArgs) -> int:
    store = common.store()
    user = user_or_current(a.user)
    if not a.yes:
        raise InputError("this deletes your face template and its backup; add --yes to confirm")
    files = [q for q in (store.path(user), store.backup_path(user)) if q.exists()]
    # the key goes first: a locked or missing keyring stops it before any file is deleted
    store.delete(user, remove_key=True)
    if files:
        print(f"deleted {' and '.join(str(q) for q in files)}, and the key in the keyring")
    else:
        print("no template to delete; the key in the keyring, if any, is gone too")
    return 0


# ---------------------------------------------------------------- calibrate, auth, test
@dataclass(frozen=True)
class CalibrateArgs:
    user: str | None
    source: str | None
    level: str | None
    seconds: float
    no_live: bool
    json: bool


def calibrate(a: CalibrateArgs) -> int:
    from faceunlock.app import service

    cfg = common.config()
    store, user = common.store(), user_or_current(a.user)
    src = None if a.no_live else service.source_for(cfg, a.source, **service.LIVE)
    if src is not None and store.exists(user):  # (no template: its error, no prompt)
        print(f"Look at the camera for {a.seconds:g} s, as you would to unlock...",
              file=sys.stderr if a.json else sys.stdout, flush=True)
    ch = service.calibrate(store, user, cfg, src, a.level, a.seconds)
    if a.json:
        print_json(ch.to_json())
    else:
        print(
            f"threshold {ch.threshold:.4f} for level {ch.level} "
            f"(per-attempt FAR {ch.per_attempt_far:g}); {ch.frr_words()}"
        )
        for w in ch.warnings:
            print(f"warning: {w}", file=sys.stderr)
    return 0


@dataclass(frozen=True)
class AuthArgs:
    user: str | None
    source: str | None
    timeout: float | None
    json: bool


def auth(a: AuthArgs, per_frame: bool = False) -> int:
    """One attempt; with ``per_frame`` (the `test` verb) every frame is printed too."""
    from faceunlock.app import service

    def show(fr: FrameResult) -> None:
        if a.json:
            print_json(fr.to_json())
        else:
            d = "   -  " if fr.faces == 0 else f"{fr.distance:.3f}"
            print(
                f"frame {fr.index:5d}  faces {fr.faces}  distance {d}  "
                f"{'MATCH' if fr.match else 'no'}  {fr.ms:.1f} ms"
            )

    cfg = common.config()
    res = service.authenticate_user(
        common.store(),
        user_or_current(a.user),
        cfg,
        service.source_for(cfg, a.source, **service.LIVE),
        timeout=a.timeout,
        on_frame=show if per_frame else None,
        on_prompt=show_prompt,
    )
    if a.json:
        print_json(res.to_json())
    else:
        print(res.message)
    return int(res.status)


def show_prompt(words: str) -> None:
    """The active challenge's prompt (``liveness.level = active``), on stderr (stdout stays
    the result, or the JSON lines), and on the controlling terminal when stderr is not one
    (``faceunlock auth 2>log``: the person at the camera still reads it)."""
    print(f">>> {words} <<<", file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        return
    try:
        with open("/dev/tty", "w") as tty:
            tty.write(f">>> {words} <<<\n")
    except OSError:
        pass


# ---------------------------------------------------------------- watch
@dataclass(frozen=True)
class WatchArgs:
    user: str | None
    backend: str | None
    source: str | None
    once: bool
    json: bool
    no_notify: bool


def watch(a: WatchArgs) -> int:
    from faceunlock.unlock.watch import desktop_notifier, watch

    cfg = common.config()
    user = user_or_current(a.user)
    if not cfg.watcher.enabled and not a.backend:
        print(
            "faceunlock: the lock-screen watcher is disabled (watcher.enabled = false); "
            "enable it with `faceunlock config set watcher.enabled true`",
            file=sys.stderr,
        )
        return int(AuthStatus.DISABLED)

    def show(ev: WatcherEvent) -> None:
        if a.json:
            print_json(ev.to_json())
        else:
            print(f"{ev.state.value}: {ev.detail}")
        sys.stdout.flush()

    watch(common.store(), user, cfg, a.backend or cfg.watcher.backend, a.source, once=a.once,
          on_event=show, notifier=None if a.no_notify else desktop_notifier)
    return 0


# ---------------------------------------------------------------- config
def _report_problems(cf: ConfigFile) -> None:
    """Each bad key of config file ``cf`` on stderr, with how to fix it."""
    if not cf.problems:
        return
    n = len(cf.problems)
    print(f"faceunlock: {cf.path} has {n} bad value{'s' if n > 1 else ''}; until "
          f"{'they are' if n > 1 else 'it is'} fixed, face unlock uses none of this file:",
          file=sys.stderr)
    for msg in cf.problems.values():
        print(f"  {msg}", file=sys.stderr)
    print("fix each with `faceunlock config set KEY VALUE` or `faceunlock config reset KEY` "
          "(or `faceunlock config edit`)", file=sys.stderr)


@dataclass(frozen=True)
class ConfigArgs:
    action: str
    key: str | None
    value: str | None
    json: bool


def config_verb(a: ConfigArgs) -> int:
    from faceunlock import config as C

    if a.action in ("set", "reset"):
        if not a.key or (a.action == "set" and a.value is None):
            raise InputError(f"usage: faceunlock config {a.action} KEY"
                             + (" VALUE" if a.action == "set" else ""))
        if a.action == "reset" and a.value is not None:
            raise InputError("usage: faceunlock config reset KEY (it takes no value)")
        cf = (C.set_in_file(a.key, a.value) if a.action == "set" and a.value is not None
              else C.reset_in_file(a.key))
        print(f"{a.key.strip()} = {json.dumps(C.config_get(cf.config, a.key))}")
        _report_problems(cf)
        return 0
    if a.action == "get":
        if a.value is not None:
            raise InputError("usage: faceunlock config get [KEY]")
        cf = C.read_config_file()
        if a.key:
            key = a.key.strip()
            C.config_get(cf.config, key)  # an unknown key: its error
            if key in cf.problems:
                _report_problems(cf)
                return int(AuthStatus.BAD_INPUT)
            v = C.config_get(cf.config, key)
            print(json.dumps(v) if a.json else v)
            _report_problems(cf)
            return 0
        items = [(k, v) for k, v in C.config_items(cf.config) if k not in cf.problems]
        if a.json:
            print_json(dict(items))
        else:
            for k, v in items:
                print(f"{k} = {json.dumps(v)}")
        _report_problems(cf)
        return int(AuthStatus.BAD_INPUT) if cf.problems else 0
    # edit
    import subprocess

    from faceunlock.app.editor import text_editor

    if a.key or a.value is not None:
        raise InputError("usage: faceunlock config edit (it takes no key)")
    cf = C.read_config_file()
    if cf.data is None:
        C.save_config(C.Config(), cf.path)
    editor = text_editor()
    subprocess.run([*editor, str(cf.path)], check=False)
    cf = C.read_config_file(cf.path)  # invalid TOML: a ConfigError naming line and column
    if cf.problems:
        _report_problems(cf)
        return int(AuthStatus.BAD_INPUT)
    print(f"{cf.path} is valid")
    return 0


def _config_epilog() -> str:
    from faceunlock.config import describe_keys

    lines = ["keys (TYPE, default; allowed values):"]
    for d in describe_keys():
        lines.append(f"  {d['key']:<22} {d['type']}, default {d['default']}; {d['allowed']}")
        lines.append(f"  {'':<22} {d['help']}")
    lines += ["", "A file with bad values is used by nothing until they are fixed; `config "
              "set` and `config reset KEY` fix them one key at a time."]
    return "\n".join(lines)


# ---------------------------------------------------------------- parsers
def register(sub: Subparsers) -> None:
    en = sub.add_parser("enrol", aliases=["enroll", "add"], help="capture face anchors")
    user_arg(en)
    en.add_argument("--source", help="camera index, /dev/videoN, video file or image folder")
    en.add_argument("--label", default="default", help="appearance label, e.g. glasses")
    en.add_argument("--anchors", type=config_number("enrol.anchors"), default=None,
                    help="how many, 3-50 (default: enrol.anchors)")
    en.add_argument(
        "--replace",
        action="store_true",
        help="start over: replace all face data of the user with this capture (without it, "
        "the capture is added as an appearance, after a live check that you are the owner)",
    )
    json_arg(en, "JSON lines: one per capture event, then the summary")
    bind(en, enrol, EnrolArgs)

    ls = sub.add_parser("list", help="list enrolled anchors")
    user_arg(ls)
    json_arg(ls)
    bind(ls, list_anchors, ListArgs)

    rm = sub.add_parser("remove", help="remove an anchor by id, or every anchor of a label")
    user_arg(rm)
    rm.add_argument("id", metavar="ID|LABEL")
    bind(rm, remove, RemoveArgs)

    cl = sub.add_parser("clear", help="delete the template and its key")
    user_arg(cl)
    cl.add_argument("--yes", action="store_true")
    bind(cl, clear, ClearArgs)

    ca = sub.add_parser("calibrate", help="re-measure and choose the threshold")
    user_arg(ca)
    ca.add_argument("--source", help=SOURCE_HELP)
    ca.add_argument("--level", choices=["convenient", "balanced", "secure"],
                    help="security level to choose the threshold for (default: the current one)")
    ca.add_argument("--seconds", type=number(float, 0.5, 60.0), default=3.0,
                    help="live capture length, 0.5-60 s")
    ca.add_argument("--no-live", action="store_true", help="use the anchors only")
    json_arg(ca)
    bind(ca, calibrate, CalibrateArgs)

    au = sub.add_parser("auth", help="one authentication attempt; exit code = AuthStatus")
    user_arg(au)
    au.add_argument("--source", help=SOURCE_HELP)
    au.add_argument("--timeout", type=config_number("auth.timeout"), default=None,
                    help="how long to look for your face, 0.5-30 s (default: auth.timeout)")
    json_arg(au)
    bind(au, auth, AuthArgs)

    te = sub.add_parser("test", help="live test: per-frame distance, decision and ms")
    user_arg(te)
    te.add_argument("--source", help=SOURCE_HELP)
    te.add_argument("--timeout", type=config_number("auth.timeout"), default=10.0,
                    help="how long to run, 0.5-30 s (default 10)")
    json_arg(te, "one JSON line per frame")
    bind(te, functools.partial(auth, per_frame=True), AuthArgs)

    wa = sub.add_parser("watch", help="unlock the lock screen when your face is seen")
    user_arg(wa)
    wa.add_argument(
        "--backend",
        choices=["auto", "logind", "freedesktop", "gnome", "mate"],
        help="lock-state service (default: watcher.backend)",
    )
    wa.add_argument("--source", help="camera index, /dev/videoN, video file or image folder")
    wa.add_argument("--once", action="store_true", help="exit after one lock/unlock cycle")
    json_arg(wa, "one JSON line per event")
    wa.add_argument(
        "--no-notify",
        action="store_true",
        help="no desktop notifications (by default the failures that matter are notified, "
        "each kind at most once every 5 minutes)",
    )
    bind(wa, watch, WatchArgs)

    co = sub.add_parser(
        "config", help="get, set, reset or edit settings",
        description="Show or change the settings in the config file "
        "(`faceunlock config get` lists them all).",
        epilog=_config_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    co.add_argument("action", choices=["get", "set", "reset", "edit"],
                    help="get [KEY], set KEY VALUE, reset KEY (to its default), or edit the "
                    "file in $EDITOR")
    co.add_argument("key", nargs="?", help="a key from the list below, e.g. auth.timeout")
    co.add_argument("value", nargs="?", help="the new value (for set)")
    json_arg(co)
    bind(co, config_verb, ConfigArgs)
