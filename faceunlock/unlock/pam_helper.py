"""``faceunlock-auth``: the PAM helper, run as root by ``pam_exec.so`` at the login screen,
the lock screen, ``sudo`` and friends.

One attempt against the root-only system copy of the user's template
(:class:`~faceunlock.engine.templates.SystemTemplateStore`, never the user's keyring). The exit
status is :class:`~faceunlock.errors.AuthStatus`: 0 only when the face was really recognised;
every other outcome is non-zero, so a ``sufficient`` PAM line (packaging/pam/README.md gives
the tested lines) falls through to the password.

Order of work (cheap first, so a user without a template pays ~50 ms, not a model load):

1. ``PAM_TYPE`` must be ``auth`` (or unset, for manual runs);
2. remote session (``PAM_RHOST`` not local, service ``sshd``, tty ``ssh``; then, from the
   PAM application's process tree and logind, :mod:`faceunlock.unlock.origin`: SSH variables
   in its or an ancestor's environment, its logind session ``Remote``, or doubt) -> REMOTE;
3. config (``--config``, default ``/etc/faceunlock/config.toml``; missing = defaults; as root
   it must be root-owned and not group/world-writable), ``general.disabled`` -> DISABLED;
4. no ``<system-dir>/<user>.tpl`` -> NO_TEMPLATE;
5. a closed laptop lid (``/proc/acpi/button/lid/*/state``) -> LID_CLOSED;
6. only then OpenCV/onnxruntime are imported: a camera held by a FaceUnlock process (the
   user's own watcher), or a missing or inaccessible camera node -> CAMERA_ERROR at once,
   before any model is loaded; otherwise one attempt with
   :func:`faceunlock.app.service.authenticate_user`, the failure counter kept in
   ``<system-dir>/state/`` (counted before the first face, forgiven on success). The system
   folder, ``state/`` and the files in them must be root's and not writable by others, and are
   never reached through a symlink (:func:`check_system_dir`, :func:`state_dir`), else
   TEMPLATE_ERROR.

A hard wall-clock cap (``--timeout``, default ``auth.timeout`` + 1 s) is enforced with
``setitimer`` (SIGALRM -> TIMEOUT) and, should the interpreter be stuck inside C code, a
watchdog thread that exits the process half a second later. SIGTERM/SIGINT -> ABORTED.

As root it runs isolated: the installed wrapper starts ``python -I`` with a fixed environment
(:data:`ISOLATED_ENV` plus the ``PAM_*`` variables); the console script re-executes itself
that way when it finds itself root and not isolated (:func:`main`).

Output: one short line on stdout for the greeter (pam_exec's ``stdout`` option shows it; while
the attempt runs fd 1, and fd 2 when it is the same pipe, point at /dev/null), one
diagnostic line on stderr (skipped when stderr is the same pipe as stdout, which is how
pam_exec's ``stdout`` option wires it: the greeter would show it), and one syslog line
(LOG_AUTH) per attempt.

Only the standard library, jeepney and ``faceunlock.config``/``faceunlock.errors``/
``faceunlock.paths`` are imported before step 6. No Qt, no torch.
"""

# ruff: noqa: E402
from __future__ import annotations

import os
import sys

from faceunlock import MAX_IMAGE_PIXELS

# --------------------------------------------------------------------------- isolation
# Before any other import: run as root without isolation (pip's console script
# ``.venv/bin/faceunlock-auth``, or ``python -m`` without ``-I``), the helper re-executes itself
# isolated at once, so no module planted on PYTHONPATH or in the current folder loads.

#: the whole environment of the helper when it runs as root (plus the PAM variables):
#: packaging/install.sh writes the same into the wrapper /usr/local/bin/faceunlock-auth
ISOLATED_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
#: what pam_exec passes about the request
PAM_VARIABLES = ("PAM_USER", "PAM_RUSER", "PAM_RHOST", "PAM_SERVICE", "PAM_TTY", "PAM_TYPE")
#: set by Python itself where the C.UTF-8 locale is missing (locale coercion)
_PYTHON_SETS = ("LC_CTYPE",)
#: set by ``faceunlock/__init__.py`` itself, which runs before this module (onnxruntime's
#: telemetry off, OpenCV's decoding limit)
_OWN_SETS = {"ORT_DISABLE_TELEMETRY": "1", "OPENCV_IO_MAX_IMAGE_PIXELS": str(MAX_IMAGE_PIXELS)}
_REEXEC_FLAG = "--reexecuted-from"


def isolated_environment(env: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """:data:`ISOLATED_ENV` plus the PAM variables of ``env``; nothing else."""
    return {**ISOLATED_ENV, **{k: env[k] for k in PAM_VARIABLES if k in env}}


def needs_isolation() -> bool:
    """Running as root, but not as ``python -I`` with exactly :func:`isolated_environment`."""
    if os.geteuid() != 0:
        return False
    if not sys.flags.isolated:
        return True
    extra = set(os.environ) - set(ISOLATED_ENV) - set(PAM_VARIABLES) - set(_PYTHON_SETS)
    extra -= {k for k, v in _OWN_SETS.items() if os.environ.get(k) == v}
    return bool(extra) or any(os.environ.get(k) != v for k, v in ISOLATED_ENV.items())


def reexec_isolated(argv: list[str], started_as: str) -> None:
    """Replace this process (same pid: pam_exec's child stays the PAM application's child) by
    ``python -I -m faceunlock.unlock.pam_helper`` in the isolated environment. Defence in
    depth only: what ran before (``sitecustomize`` on PYTHONPATH, LD_PRELOAD) already ran,
    which is why /etc/pam.d must name the installed wrapper, never the console script."""
    os.execve(
        sys.executable,
        [sys.executable, "-I", "-m", "faceunlock.unlock.pam_helper",
         _REEXEC_FLAG, started_as or "?", *argv],
        isolated_environment(os.environ),
    )


_PROGRAM = os.path.basename(sys.argv[0]) if sys.argv else ""
if (
    (__name__ == "__main__" or _PROGRAM == "faceunlock-auth")
    and _REEXEC_FLAG not in sys.argv
    and needs_isolation()
):
    reexec_isolated(sys.argv[1:], sys.argv[0])

# the imports below come after the re-exec above, on purpose (hence the file-wide E402)
import argparse
import contextlib
import signal
import socket
import stat
import syslog
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from faceunlock.errors import (
    AuthStatus,
    CameraError,
    FaceUnlockError,
    InsecurePathError,
    TemplateError,
)
from faceunlock.paths import system_data_dir
from faceunlock.unlock.hardware import DEFAULT_LID_GLOB, lid_closed

if TYPE_CHECKING:
    from faceunlock.config import Config
    from faceunlock.unlock.origin import Origin

PROG = "faceunlock-auth"
DEFAULT_CONFIG = Path("/etc/faceunlock/config.toml")
DEFAULT_SYSTEM_DIR = system_data_dir()
#: the system bus (never from the environment; ``--system-bus`` in /etc/pam.d, for tests)
DEFAULT_SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
#: seconds the watchdog thread waits after the SIGALRM deadline before it kills the process
WATCHDOG_GRACE = 0.5
#: deadline used until the config (and so ``auth.timeout``) has been read
PRECONFIG_TIMEOUT = 5.0
#: the frame loop stops this long before the hard deadline, so it reports its own result
LOOP_MARGIN = 0.3

_LOCAL_HOSTS = frozenset({"", "localhost", "localhost.localdomain", "127.0.0.1", "::1"})
_REMOTE_SERVICES = frozenset({"sshd", "ssh"})

#: the greeter line when the helper could not even try (bad config, no PAM_USER, a bad model,
#: an insecure system folder): no face was looked at, so never "not recognised"
SETUP_MESSAGE = "Face unlock not set up correctly, type your password"
#: greeter lines (the AuthResult message is preferred when the engine gives one)
MESSAGES: dict[AuthStatus, str] = {
    AuthStatus.ERROR: "Face unlock failed, type your password",
    AuthStatus.USAGE: SETUP_MESSAGE,
    AuthStatus.BAD_INPUT: SETUP_MESSAGE,
    AuthStatus.MODEL_ERROR: SETUP_MESSAGE,
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
DEFAULT_MESSAGE = SETUP_MESSAGE
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
    system_bus: str = DEFAULT_SYSTEM_BUS  #: where logind is asked about the session
    caller_pid: int | None = None  #: the PAM application; None: this process's parent
    #: shows the active challenge's prompt to the greeter during the attempt (run() writes
    #: a line to the real stdout: pam_exec's ``stdout`` option turns each line into a
    #: PAM_TEXT_INFO message at once); None: the prompt cannot be shown
    prompt: Callable[[str], None] | None = None


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


def session_origin(req: Request, opts: Options) -> Origin:
    """Where the request comes from (:func:`faceunlock.unlock.origin.request_origin`: the
    PAM application's process tree, its environment and logind); any failure -> remote."""
    from faceunlock.unlock.origin import Origin, request_origin

    pid = opts.caller_pid if opts.caller_pid is not None else os.getppid()
    try:
        return request_origin(
            pid, tty=req.tty, user=req.user, service=req.service, bus=opts.system_bus
        )
    except Exception as e:  # never let a bug here open the camera for a remote session
        return Origin(True, f"session check failed ({type(e).__name__}: {e})")


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
    if not check_system_dir(opts.system_dir):
        return Decision(AuthStatus.NO_TEMPLATE, f"no system folder {opts.system_dir}")
    check_template_file(tpl)
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
    from faceunlock.engine.v4l2 import processes_using

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


def _check_entry(path: Path, st: os.stat_result, *, folder: bool, forbidden: int) -> None:
    """Refuse (InsecurePathError) a symlink, the wrong kind, an owner other than root (or the
    running user, for unprivileged test runs) or any of the ``forbidden`` mode bits."""
    kind = "folder" if folder else "file"
    if stat.S_ISLNK(st.st_mode):
        raise InsecurePathError(path, "is a symbolic link: refusing to follow it")
    if not (stat.S_ISDIR(st.st_mode) if folder else stat.S_ISREG(st.st_mode)):
        raise InsecurePathError(path, f"is not a {kind}")
    if st.st_uid not in (0, os.geteuid()):
        raise InsecurePathError(path, f"is owned by uid {st.st_uid}, not by root")
    mode = stat.S_IMODE(st.st_mode)
    if mode & forbidden:
        raise InsecurePathError(
            path,
            f"has mode {mode:04o}; this {kind} must be root-only (at most "
            f"{0o777 & ~forbidden:04o}): fix it with `chown root: {path}; "
            f"chmod {0o700 if folder else 0o600:o} {path}`",
        )


def check_system_dir(system_dir: Path) -> bool:
    """Refuse a system folder (or an ancestor of it, or its ``keys`` folder) that someone
    other than root could change; False when it does not exist. Never follows a symlink at
    the folder itself."""
    parent = Path(os.path.realpath(system_dir.parent))
    for anc in (parent, *parent.parents):
        st = os.lstat(anc)
        if st.st_uid not in (0, os.geteuid()):
            raise InsecurePathError(anc, f"(above {system_dir}) is owned by uid {st.st_uid}")
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise InsecurePathError(
                anc, f"(above {system_dir}) is writable by others "
                f"(mode {stat.S_IMODE(st.st_mode):04o})"
            )
    try:
        st = os.lstat(system_dir)
    except FileNotFoundError:
        return False
    _check_entry(system_dir, st, folder=True, forbidden=0o022)
    with contextlib.suppress(FileNotFoundError):
        keys = system_dir / "keys"
        _check_entry(keys, os.lstat(keys), folder=True, forbidden=0o022)
    return True


def check_template_file(tpl: Path) -> None:
    """A system template must be a root-owned 0600 (or stricter) regular file."""
    with contextlib.suppress(FileNotFoundError):
        _check_entry(tpl, os.lstat(tpl), folder=False, forbidden=0o077)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def state_dir(system_dir: Path, user: str) -> Path:
    """``<system_dir>/state`` (created 0700), checked through file descriptors without
    following a symlink: the folder and the user's failure counter and snapshot folder in it
    must be root-owned and not writable by others, else InsecurePathError. A root-owned folder
    that others may only read is made 0700 (on its descriptor)."""
    state = system_dir / "state"
    try:
        fd = os.open(system_dir, _DIR_FLAGS)
    except OSError as e:
        raise InsecurePathError(system_dir, f"cannot be opened as a folder ({e.strerror})") from e
    try:
        _check_entry(system_dir, os.fstat(fd), folder=True, forbidden=0o022)
        with contextlib.suppress(FileExistsError):
            os.mkdir("state", 0o700, dir_fd=fd)
        try:
            sfd = os.open("state", _DIR_FLAGS, dir_fd=fd)
        except OSError as e:
            st = os.stat("state", dir_fd=fd, follow_symlinks=False)
            _check_entry(state, st, folder=True, forbidden=0o022)
            raise InsecurePathError(state, f"cannot be opened ({e.strerror})") from e
        try:
            st = os.fstat(sfd)
            _check_entry(state, st, folder=True, forbidden=0o022)
            if st.st_mode & 0o077:
                os.fchmod(sfd, 0o700)
            for name, folder, forbidden in (
                (f"failures-{user}.json", False, 0o077),
                ("snapshots", True, 0o022),
            ):
                try:
                    st = os.stat(name, dir_fd=sfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                _check_entry(state / name, st, folder=folder, forbidden=forbidden)
        finally:
            os.close(sfd)
    finally:
        os.close(fd)
    return state


def attempt(req: Request, cfg: Config, opts: Options, remaining: float | None) -> Decision:
    """One face attempt (imports OpenCV and onnxruntime). ``remaining``: seconds left before
    the hard deadline, to stop the frame loop a little before it."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # errors only (stdout is /dev/null anyway)

    from faceunlock.app import service
    from faceunlock.engine.sources import CameraSource
    from faceunlock.engine.templates import SystemTemplateStore
    from faceunlock.engine.v4l2 import probe_camera

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
        timeout = max(0.1, min(timeout, remaining - LOOP_MARGIN - challenge_reserve(cfg)))
    res = service.authenticate_user(
        store,
        req.user,
        cfg,
        source,
        timeout=timeout,
        state_dir=state_dir(opts.system_dir, req.user),
        on_prompt=opts.prompt,
    )
    best = res.best_distance
    dist = f"best distance {best:.3f}, threshold {res.threshold:.3f}" if best < 9 else "no face"
    return Decision(
        res.status,
        f"{len(res.frames)} frame(s), {dist}, {res.elapsed:.2f} s in the frame loop",
        res.message,
        attempted=True,
    )


def challenge_reserve(cfg: Config) -> float:
    """Seconds the active challenge may add to an attempt (its window plus the engine's wall
    clock slack; 0 below ``active``): added to the default hard cap, kept out of the frame
    loop's search for a match."""
    from faceunlock.config import CHALLENGE_CLOCK_SLACK, CHALLENGE_MAX_DELAY

    if cfg.liveness.level != "active":
        return 0.0
    return float(cfg.liveness.challenge_seconds) + CHALLENGE_MAX_DELAY + CHALLENGE_CLOCK_SLACK


def _from_exception(e: BaseException) -> Decision:
    if isinstance(e, Stop):
        return Decision(e.status, e.reason)
    if isinstance(e, InsecurePathError):
        return Decision(AuthStatus.TEMPLATE_ERROR, str(e), SETUP_MESSAGE)
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
    origin = session_origin(req, opts)
    if origin.remote:
        return Decision(AuthStatus.REMOTE, f"remote session ({origin.reason}); camera not used")
    try:
        from faceunlock.config import load_config

        check_config_trust(opts.config)
        cfg = load_config(opts.config)
        limit = (opts.timeout if opts.timeout is not None
                 else cfg.auth.timeout + 1.0 + challenge_reserve(cfg))
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


def _syslog_warning(text: str) -> None:
    with contextlib.suppress(Exception):
        syslog.openlog(PROG, syslog.LOG_PID, syslog.LOG_AUTH)
        syslog.syslog(syslog.LOG_WARNING, text)
        syslog.closelog()


def emit(
    req: Request,
    d: Decision,
    elapsed: float,
    *,
    quiet: bool = False,
    stderr_shared: bool | None = None,
) -> None:
    """The greeter line (stdout), the diagnostic line (stderr, unless it is the greeter's pipe
    too: ``stderr_shared``, default: look now) and the syslog line."""
    shared = _stderr_shares_stdout_pipe() if stderr_shared is None else stderr_shared
    with contextlib.suppress(OSError, ValueError):
        if d.show and not (quiet and d.status in NOT_APPLICABLE):
            sys.stdout.write(d.line + "\n")
            sys.stdout.flush()
    with contextlib.suppress(OSError, ValueError):
        if not quiet and not shared:
            sys.stderr.write(
                f"{PROG}: {d.status.name} ({d.exit_code}) after {elapsed:.2f} s: "
                f"{d.reason.splitlines()[0] if d.reason else ''}\n"
            )
            sys.stderr.flush()
    _syslog(req, d, elapsed)


class _Silence:
    """While an attempt runs, fd 1 (and fd 2 when it is the same pipe: pam_exec's ``stdout``
    option) point at /dev/null, so nothing that OpenCV, FFmpeg, onnxruntime or a library
    prints reaches the greeter; :meth:`restore` puts them back for the one greeter line.
    ``fd``: the real stdout meanwhile (the watchdog writes its line there)."""

    def __init__(self, stderr_shared: bool) -> None:
        self.fd = 1
        self._saved: list[tuple[int, int]] = []
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        try:
            null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            for target in (1, 2) if stderr_shared else (1,):
                try:
                    self._saved.append((target, os.dup(target)))
                except OSError:
                    continue
                os.dup2(null, target)
        finally:
            os.close(null)
        if self._saved and self._saved[0][0] == 1:
            self.fd = self._saved[0][1]

    def restore(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()  # Python-level output of the attempt goes to /dev/null too
            sys.stderr.flush()
        for target, saved in self._saved:
            with contextlib.suppress(OSError):
                os.dup2(saved, target)
                os.close(saved)
        self._saved = []
        self.fd = 1


#: variables whose value would change what a root Python process or the libraries it loads do
_SCRUB_PREFIXES = ("FACEUNLOCK_", "XDG_", "OPENCV_", "ORT_", "OMP_", "PYTHON", "LD_", "DBUS_")


def _scrub_environment() -> None:
    """Drop variables that could redirect a root process (models, config, data dirs, the
    loader, D-Bus) and silence the libraries' own logging (the greeter must see one line)."""
    for k in list(os.environ):
        if k.startswith(_SCRUB_PREFIXES):
            del os.environ[k]
    os.environ["OPENCV_LOG_LEVEL"] = "SILENT"
    os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "-8"  # AV_LOG_QUIET


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
        "--system-bus",
        default=DEFAULT_SYSTEM_BUS,
        help="D-Bus address of the system bus where logind is asked (for testing)",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no stderr diagnostics; no stdout line when face auth does not apply",
    )
    p.add_argument(_REEXEC_FLAG, dest="reexecuted_from", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The program (``faceunlock-auth``): as root, first re-executes itself isolated unless it
    already is (see :func:`reexec_isolated`), then :func:`run`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if _REEXEC_FLAG not in args and needs_isolation():
        try:
            reexec_isolated(args, sys.argv[0] if sys.argv else "?")
        except OSError as e:  # cannot re-execute: refuse rather than run unisolated as root
            d = Decision(AuthStatus.ERROR, f"cannot re-execute isolated: {e}")
            emit(Request.from_env(os.environ), d, 0.0)
            return d.exit_code
    return run(args)


def run(argv: Sequence[str] | None = None) -> int:
    """One PAM call in this process (tests call it directly): decide, then print the greeter
    line, the diagnostic line and the syslog line; the exit status."""
    started = time.monotonic()
    env = dict(os.environ)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return int(AuthStatus.USAGE) if e.code else int(AuthStatus.OK)
    _scrub_environment()
    req = Request.from_env(env)
    if args.reexecuted_from is not None:
        _syslog_warning(
            f"started as root without isolation ({args.reexecuted_from!r}) and re-executed "
            "isolated: point /etc/pam.d at the installed wrapper (/usr/bin/faceunlock-auth from "
            "the package, /usr/local/bin/faceunlock-auth from packaging/install.sh)"
        )
    opts = Options(
        config=args.config,
        system_dir=args.system_dir,
        lid_glob=args.lid_glob,
        timeout=args.timeout,
        system_bus=args.system_bus,
    )
    shared = _stderr_shares_stdout_pipe()
    if opts.timeout is not None and not opts.timeout > 0:
        d = Decision(AuthStatus.USAGE, f"--timeout must be positive, got {opts.timeout}")
        emit(req, d, time.monotonic() - started, quiet=args.quiet, stderr_shared=shared)
        return d.exit_code
    silence = _Silence(shared)

    def prompt(words: str) -> None:  # the challenge's prompt: a greeter line, now
        with contextlib.suppress(OSError):
            os.write(silence.fd, (" ".join(words.split()) + "\n").encode())

    opts.prompt = prompt

    def hard_exit() -> None:  # watchdog thread: the main thread is stuck in C code
        d = Decision(AuthStatus.TIMEOUT, "hard timeout: watchdog killed a stuck attempt")
        with contextlib.suppress(Exception):
            os.write(silence.fd, (d.line + "\n").encode())
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
    silence.restore()
    emit(req, d, time.monotonic() - started, quiet=args.quiet, stderr_shared=shared)
    for s, h in old.items():
        signal.signal(s, h)
    return d.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
