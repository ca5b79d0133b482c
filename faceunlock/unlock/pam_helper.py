"""``faceunlock-auth``: the PAM helper, run as root by ``pam_exec.so`` at the login screen,
the lock screen, ``sudo`` and friends.

One attempt against the root-only system copy of the user's template
(:class:`~faceunlock.engine.templates.SystemTemplateStore`, never the user's keyring). The exit
status is :class:`~faceunlock.errors.AuthStatus`: 0 only when the face was really recognised;
every other outcome is non-zero, so a ``sufficient`` (or ``[success=end default=ignore]``) PAM
line falls through to the password.

Order of work (cheap first, so a user without a template pays ~50 ms, not a model load):

1. ``PAM_TYPE`` must be ``auth`` (or unset, for manual runs);
2. remote session (``PAM_RHOST`` not local, service ``sshd``, tty ``ssh``) -> REMOTE;
3. config (``--config``, default ``/etc/faceunlock/config.toml``; missing = defaults; as root
   it must be root-owned and not group/world-writable), ``general.disabled`` -> DISABLED;
4. no ``<system-dir>/<user>.tpl`` -> NO_TEMPLATE;
5. a closed laptop lid (``/proc/acpi/button/lid/*/state``) -> LID_CLOSED;
6. only then OpenCV/onnxruntime are imported: a camera held by a FaceUnlock process (the
   user's own watcher), or a missing or inaccessible camera node -> CAMERA_ERROR at once,
   before any model is loaded; otherwise one attempt with
   :func:`faceunlock.engine.service.authenticate_user`, the failure counter kept in
   ``<system-dir>/state/``.

A hard wall-clock cap (``--timeout``, default ``auth.timeout`` + 1 s) is enforced with
``setitimer`` (SIGALRM -> TIMEOUT) and, should the interpreter be stuck inside C code, a
watchdog thread that exits the process half a second later. SIGTERM/SIGINT -> ABORTED.

Output: one short line on stdout for the greeter (pam_exec's ``stdout`` option shows it), one
diagnostic line on stderr (skipped when stderr is the same pipe as stdout, which is how
pam_exec's ``stdout`` option wires it: the greeter would show it), and one syslog line
(LOG_AUTH) per attempt.

Only the standard library and ``faceunlock.config``/``faceunlock.errors`` are imported before
step 6. No Qt, no torch.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import signal
import socket
import stat
import sys
import syslog
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from faceunlock.errors import AuthStatus, CameraError, FaceUnlockError, TemplateError

if TYPE_CHECKING:
    from faceunlock.config import Config

PROG = "faceunlock-auth"
DEFAULT_CONFIG = Path("/etc/faceunlock/config.toml")
DEFAULT_SYSTEM_DIR = Path("/var/lib/faceunlock")
DEFAULT_LID_GLOB = "/proc/acpi/button/lid/*/state"
#: seconds the watchdog thread waits after the SIGALRM deadline before it kills the process
WATCHDOG_GRACE = 0.5
#: deadline used until the config (and so ``auth.timeout``) has been read
PRECONFIG_TIMEOUT = 5.0
#: the frame loop stops this long before the hard deadline, so it reports its own result
LOOP_MARGIN = 0.3

_LOCAL_HOSTS = frozenset({"", "localhost", "localhost.localdomain", "127.0.0.1", "::1"})
_REMOTE_SERVICES = frozenset({"sshd", "ssh"})

#: greeter lines (the AuthResult message is preferred when the engine gives one)
MESSAGES: dict[AuthStatus, str] = {
    AuthStatus.OK: "Face recognised",
    AuthStatus.NO_MATCH: "Face not recognised, type your password",
    AuthStatus.NO_TEMPLATE: "No face enrolled, type your password",
    AuthStatus.CAMERA_ERROR: "Camera unavailable, type your password",
    AuthStatus.TIMEOUT: "No face seen, type your password",
    AuthStatus.DISABLED: "Face unlock is disabled, type your password",
    AuthStatus.REMOTE: "Face unlock is off for remote sessions, type your password",
    AuthStatus.LID_CLOSED: "Lid closed, type your password",
    AuthStatus.ABORTED: "Face check cancelled",
    AuthStatus.TOO_DARK: "Too dark to see your face, type your password",
    AuthStatus.LOCKED_OUT: "Face unlock paused after failed attempts, type your password",
    AuthStatus.TEMPLATE_ERROR: "Face data unreadable, type your password",
    AuthStatus.PRESENTATION_ATTACK: "Face not accepted: this looks like a photo or a screen. "
                                    "Type your password.",
}
DEFAULT_MESSAGE = "Face not recognised, type your password"
#: outcomes where face auth does not apply at all: ``--quiet`` prints nothing for them
NOT_APPLICABLE = frozenset(
    {AuthStatus.USAGE, AuthStatus.REMOTE, AuthStatus.NO_TEMPLATE, AuthStatus.DISABLED}
)


@dataclass
class Request:
    """What PAM tells the helper (pam_exec passes these as environment variables)."""

    user: str
    service: str = ""
    rhost: str = ""
    tty: str = ""
    pam_type: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Request:
        user = env.get("PAM_USER", "")
        if not user and "PAM_TYPE" not in env:  # manual run from a shell
            import getpass

            user = env.get("USER") or getpass.getuser()
        return cls(
            user=user,
            service=env.get("PAM_SERVICE", ""),
            rhost=env.get("PAM_RHOST", ""),
            tty=env.get("PAM_TTY", ""),
            pam_type=env.get("PAM_TYPE", ""),
        )


@dataclass
class Options:
    config: Path = DEFAULT_CONFIG
    system_dir: Path = DEFAULT_SYSTEM_DIR
    lid_glob: str = DEFAULT_LID_GLOB
    timeout: float | None = None  #: hard cap; None: ``auth.timeout`` + 1 s


@dataclass
class Decision:
    """The helper's verdict. ``attempted``: the camera was used (only then may it be OK)."""

    status: AuthStatus
    reason: str
    message: str = ""
    attempted: bool = False
    show: bool = True  #: print the greeter line (False: not an auth call at all)

    @property
    def exit_code(self) -> int:
        if self.status == AuthStatus.OK:
            return 0 if self.attempted else int(AuthStatus.ERROR)
        return int(self.status) or int(AuthStatus.ERROR)

    @property
    def line(self) -> str:
        return self.message or MESSAGES.get(self.status, DEFAULT_MESSAGE)


class Stop(BaseException):
    """Raised from a signal handler (timeout, SIGTERM, SIGINT). A BaseException so that no
    ``except Exception`` in library code swallows it."""

    def __init__(self, status: AuthStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# --------------------------------------------------------------------------- cheap checks


def remote_reason(req: Request) -> str | None:
    """Why this looks like a remote session, or None for a local one."""
    host = req.rhost.strip().lower()
    if host and host not in _LOCAL_HOSTS and not host.startswith(":"):
        with contextlib.suppress(OSError):  # no getfqdn(): DNS may hang at the greeter
            if host == socket.gethostname().lower():
                return None
        return f"remote host {req.rhost!r}"
    if req.service in _REMOTE_SERVICES:
        return f"PAM service {req.service!r}"
    if req.tty == "ssh":
        return "PAM tty 'ssh'"
    return None


def lid_closed(pattern: str = DEFAULT_LID_GLOB) -> str | None:
    """The lid state file that says ``closed``, or None (no lid, open, unreadable)."""
    for path in sorted(glob.glob(pattern)):
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                text = f.read(256)
        except OSError:
            continue
        if "closed" in text.lower():
            return path
    return None


def check_config_trust(path: Path) -> None:
    """As root, refuse a config file (or its folder) that another user could have written:
    it names the camera source, so it decides what the helper looks at. Missing is fine."""
    from faceunlock.errors import ConfigError

    if os.geteuid() != 0:
        return
    for p in (path, path.parent):
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        if st.st_uid != 0 or st.st_mode & 0o022:
            raise ConfigError(
                f"{p}: must be owned by root and not group/world-writable "
                f"(owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})"
            )


def template_path(system_dir: Path, user: str) -> Path | None:
    """``<system_dir>/<user>.tpl`` for a plausible user name (full validation happens when the
    store loads it), else None."""
    if not user or "/" in user or "\0" in user or user.startswith((".", "-")) or len(user) > 128:
        return None
    return system_dir / f"{user}.tpl"


def cheap_checks(req: Request, cfg: Config, opts: Options) -> Decision | None:
    """Every check that needs no camera and no model, in order; None when all pass."""
    if cfg.general.disabled:
        return Decision(AuthStatus.DISABLED, "general.disabled is set in " + str(opts.config))
    tpl = template_path(opts.system_dir, req.user)
    if tpl is None:
        return Decision(AuthStatus.NO_TEMPLATE, f"user name {req.user!r} cannot have a template")
    if not tpl.is_file():
        return Decision(AuthStatus.NO_TEMPLATE, f"no system template {tpl}")
    lid = lid_closed(opts.lid_glob)
    if lid is not None:
        return Decision(AuthStatus.LID_CLOSED, f"lid closed ({lid})")
    return None


# --------------------------------------------------------------------------- the attempt


def faceunlock_holders(device: str) -> list[str]:
    """``"comm pid N"`` of FaceUnlock processes (the user's watcher, a running ``faceunlock
    test``) holding the camera node open."""
    from faceunlock.engine.sources import processes_using

    out = []
    for pid, comm in processes_using(device):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read(4096)
        except OSError:
            continue
        if b"faceunlock" in cmd:
            out.append(f"{comm} pid {pid}")
    return out


def _private_dir(d: Path) -> Path:
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    if d.stat().st_mode & 0o077:
        os.chmod(d, 0o700)
    return d


def attempt(req: Request, cfg: Config, opts: Options, remaining: float | None) -> Decision:
    """One face attempt (imports OpenCV and onnxruntime). ``remaining``: seconds left before
    the hard deadline, to stop the frame loop a little before it."""
    from faceunlock.engine import service
    from faceunlock.engine.sources import CameraSource, probe_camera
    from faceunlock.engine.templates import SystemTemplateStore

    store = SystemTemplateStore(opts.system_dir)
    source = service.source_for(cfg)
    if isinstance(source, CameraSource):
        holders = faceunlock_holders(source.path)
        if holders:
            return Decision(
                AuthStatus.CAMERA_ERROR,
                f"camera {source.path} is in use by FaceUnlock ({', '.join(holders)}); "
                "not competing for it",
            )
        probe_camera(source.path)  # missing / no permission / busy: fail before loading models
    timeout = cfg.auth.timeout
    if remaining is not None:
        timeout = max(0.1, min(timeout, remaining - LOOP_MARGIN))
    res = service.authenticate_user(
        store,
        req.user,
        cfg,
        source,
        timeout=timeout,
        state_dir=_private_dir(opts.system_dir / "state"),
    )
    best = res.best_distance
    dist = f"best distance {best:.3f}, threshold {res.threshold:.3f}" if best < 9 else "no face"
    return Decision(
        res.status,
        f"{len(res.frames)} frame(s), {dist}, {res.elapsed:.2f} s in the frame loop",
        res.message,
        attempted=True,
    )


def _from_exception(e: BaseException) -> Decision:
    if isinstance(e, Stop):
        return Decision(e.status, e.reason)
    if isinstance(e, TemplateError):
        status = AuthStatus.NO_TEMPLATE if e.status == AuthStatus.NO_TEMPLATE else None
        return Decision(status or AuthStatus.TEMPLATE_ERROR, str(e))
    if isinstance(e, CameraError):
        return Decision(AuthStatus.CAMERA_ERROR, str(e))
    if isinstance(e, FaceUnlockError):
        return Decision(e.status, str(e))
    return Decision(AuthStatus.ERROR, f"unexpected {type(e).__name__}: {e}")


def decide(
    env: Mapping[str, str],
    opts: Options,
    *,
    started: float | None = None,
    arm: Callable[[float], None] | None = None,
) -> Decision:
    """The whole decision for one PAM call, without printing. Never raises except
    :class:`Stop` (from signal handlers). ``arm(seconds)`` is called once the hard timeout is
    known (after the config was read); ``started``: ``time.monotonic()`` at process start."""
    t0 = time.monotonic() if started is None else started
    req = Request.from_env(env)
    if req.pam_type and req.pam_type != "auth":
        return Decision(
            AuthStatus.USAGE, f"PAM_TYPE {req.pam_type!r}: only 'auth' is handled", show=False
        )
    why = remote_reason(req)
    if why is not None:
        return Decision(AuthStatus.REMOTE, f"remote session ({why}); camera not used")
    if not req.user:
        return Decision(AuthStatus.USAGE, "no PAM_USER")
    try:
        from faceunlock.config import load_config

        check_config_trust(opts.config)
        cfg = load_config(opts.config)
        limit = opts.timeout if opts.timeout is not None else cfg.auth.timeout + 1.0
        remaining = limit - (time.monotonic() - t0)
        if remaining <= 0:
            return Decision(AuthStatus.TIMEOUT, f"hard timeout of {limit:g} s reached")
        if arm is not None:
            arm(remaining)
        early = cheap_checks(req, cfg, opts)
        if early is not None:
            return early
        return attempt(req, cfg, opts, limit - (time.monotonic() - t0))
    except Exception as e:
        return _from_exception(e)


# --------------------------------------------------------------------------- process glue


class _Timers:
    """SIGALRM deadline plus a watchdog thread in case the interpreter never gets control."""

    def __init__(self, on_hard_exit: Callable[[], None]) -> None:
        self._on_hard_exit = on_hard_exit
        self._watchdog: threading.Timer | None = None

    def arm(self, seconds: float) -> None:
        self.disarm()
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
        self._watchdog = threading.Timer(max(seconds, 0.001) + WATCHDOG_GRACE, self._on_hard_exit)
        self._watchdog.daemon = True
        self._watchdog.start()

    def disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None


#: every Stop raised by a signal handler: library code may turn it into another exception
#: (numpy's import turns it into ImportError), so main() consults this, not the exception
_STOPS: list[Stop] = []


def _raise_timeout(signum: int, frame: FrameType | None) -> None:
    _STOPS.append(Stop(AuthStatus.TIMEOUT, "hard timeout reached (SIGALRM)"))
    raise _STOPS[-1]


def _raise_abort(signum: int, frame: FrameType | None) -> None:
    _STOPS.append(Stop(AuthStatus.ABORTED, f"interrupted by {signal.Signals(signum).name}"))
    raise _STOPS[-1]


def _stderr_shares_stdout_pipe() -> bool:
    """True when fd 2 is the very pipe fd 1 is (pam_exec's ``stdout`` option: every stderr
    line would reach the greeter as a message)."""
    try:
        a, b = os.fstat(1), os.fstat(2)
    except OSError:
        return True
    return stat.S_ISFIFO(a.st_mode) and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _syslog(req: Request, d: Decision, elapsed: float) -> None:
    prio = {
        AuthStatus.OK: syslog.LOG_NOTICE,
        AuthStatus.NO_MATCH: syslog.LOG_NOTICE,
        AuthStatus.LOCKED_OUT: syslog.LOG_NOTICE,
        AuthStatus.ERROR: syslog.LOG_ERR,
        AuthStatus.TEMPLATE_ERROR: syslog.LOG_WARNING,
    }.get(d.status, syslog.LOG_INFO)
    reason = d.reason.replace("\n", " ")[:300]
    with contextlib.suppress(Exception):
        syslog.openlog(PROG, syslog.LOG_PID, syslog.LOG_AUTH)
        syslog.syslog(
            prio,
            f"user={req.user!r} service={req.service!r} status={d.status.name} "
            f"code={d.exit_code} elapsed={elapsed:.2f}s: {reason}",
        )
        syslog.closelog()


def emit(req: Request, d: Decision, elapsed: float, *, quiet: bool = False) -> None:
    """The greeter line (stdout), the diagnostic line (stderr) and the syslog line."""
    with contextlib.suppress(OSError, ValueError):
        if d.show and not (quiet and d.status in NOT_APPLICABLE):
            sys.stdout.write(d.line + "\n")
            sys.stdout.flush()
    with contextlib.suppress(OSError, ValueError):
        if not quiet and not _stderr_shares_stdout_pipe():
            sys.stderr.write(
                f"{PROG}: {d.status.name} ({d.exit_code}) after {elapsed:.2f} s: "
                f"{d.reason.splitlines()[0] if d.reason else ''}\n"
            )
            sys.stderr.flush()
    _syslog(req, d, elapsed)


def _scrub_environment() -> None:
    """Drop variables that could redirect a root process (models, config, data dirs)."""
    for k in list(os.environ):
        if k.startswith(("FACEUNLOCK_", "XDG_", "OPENCV_", "ORT_", "OMP_")):
            del os.environ[k]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="One face attempt for pam_exec.so; exit 0 only when the face is recognised.",
    )
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config file (TOML)")
    p.add_argument(
        "--system-dir", type=Path, default=DEFAULT_SYSTEM_DIR, help="system template store"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="hard wall-clock cap in seconds (default: auth.timeout + 1)",
    )
    p.add_argument(
        "--lid-glob", default=DEFAULT_LID_GLOB, help="lid state files (glob), for testing"
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no stderr diagnostics; no stdout line when face auth does not apply",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()
    env = dict(os.environ)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return int(AuthStatus.USAGE) if e.code else int(AuthStatus.OK)
    _scrub_environment()
    req = Request.from_env(env)
    opts = Options(
        config=args.config,
        system_dir=args.system_dir,
        lid_glob=args.lid_glob,
        timeout=args.timeout,
    )
    if opts.timeout is not None and not opts.timeout > 0:
        d = Decision(AuthStatus.USAGE, f"--timeout must be positive, got {opts.timeout}")
        emit(req, d, time.monotonic() - started, quiet=args.quiet)
        return d.exit_code

    def hard_exit() -> None:  # watchdog thread: the main thread is stuck in C code
        d = Decision(AuthStatus.TIMEOUT, "hard timeout: watchdog killed a stuck attempt")
        with contextlib.suppress(Exception):
            os.write(1, (d.line + "\n").encode())
            _syslog(req, d, time.monotonic() - started)
        os._exit(d.exit_code)

    timers = _Timers(hard_exit)
    old = {s: signal.getsignal(s) for s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGALRM, _raise_timeout)
    signal.signal(signal.SIGTERM, _raise_abort)
    signal.signal(signal.SIGINT, _raise_abort)
    try:
        try:
            timers.arm(opts.timeout if opts.timeout is not None else PRECONFIG_TIMEOUT)
            d = decide(env, opts, started=started, arm=timers.arm)
        finally:
            timers.disarm()
    except Stop as e:
        d = Decision(e.status, e.reason)
    except BaseException as e:  # never let anything escape as exit 0 or a traceback
        d = _from_exception(e)
    finally:
        for s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
    if _STOPS and not (d.status == AuthStatus.OK and d.attempted):
        stop = _STOPS[0]
        extra = f" (surfaced as: {d.reason})" if d.reason != stop.reason else ""
        d = Decision(stop.status, stop.reason + extra)
    _STOPS.clear()
    emit(req, d, time.monotonic() - started, quiet=args.quiet)
    for s, h in old.items():
        signal.signal(s, h)
    return d.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
