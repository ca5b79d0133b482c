"""Where a PAM request comes from: a local seat, or a remote (SSH) session.

The PAM helper (:mod:`faceunlock.unlock.pam_helper`) is started by ``pam_exec.so`` inside the
PAM application (``sudo``, ``su``, the display manager's worker, polkit's agent helper): its
parent process is that application. ``PAM_RHOST`` and ``PAM_TTY`` are whatever the
application sets, and ``sudo`` inside an SSH session sets neither to anything remote, so they
cannot decide alone. :func:`request_origin` decides from the process tree and logind:

1. ``SSH_CONNECTION``, ``SSH_CLIENT`` or ``SSH_TTY`` in the environment (``/proc/<pid>/
   environ``, as it was at exec) of the application or any ancestor -> remote;
2. logind (``org.freedesktop.login1`` on the system bus, short timeouts): the session of the
   application, else of its nearest ancestor that has one (``GetSessionByPID``): ``Remote``
   (or a ``RemoteHost``, or service ``sshd``) -> remote; otherwise local (its ``Type`` and
   ``Class`` go in the reason);
3. no ancestor in any session (a GNOME terminal or polkit agent runs under the user's
   systemd manager, a display manager's worker before the session is opened, ``login`` on a
   VT):

   - the PAM tty is a local console (``/dev/ttyN``, ``ttyN``) or an X display (``:N``) ->
     local;
   - every process in the chain runs as root (a system daemon asks, not a user's shell) and
     the service is a local login service (``gdm-password``, ``lightdm``, ``sddm``, ``login``)
     -> local;
   - otherwise the sessions of the caller's user and of ``PAM_USER``: at least one, and none
     remote -> local (a local desktop's terminal); any remote, or none -> remote.

Whenever logind cannot answer (no bus, no logind, an error, a timeout) only the console rule
of step 3 can still say local: in doubt, remote. So without logind, face unlock still works
at the login screen and on a VT, not for ``sudo`` in a terminal window.
"""

from __future__ import annotations

import contextlib
import pwd
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: where the system bus listens (never taken from the environment: the helper runs as root in
#: an environment partly controlled by the user)
DEFAULT_SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
#: seconds for connecting to the bus and for each logind call
LOGIND_TIMEOUT = 1.0
#: how far up the process tree to look
MAX_ANCESTORS = 64

SSH_VARIABLES = ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY")
#: PAM services of display managers and the console ``login``, run by root daemons
LOCAL_LOGIN_SERVICES = frozenset({"gdm-password", "gdm-autologin", "lightdm", "sddm", "login"})

_CONSOLE_TTY = re.compile(r"(/dev/)?tty[0-9]+|:[0-9]+(\.[0-9]+)?")

LOGIND = "org.freedesktop.login1"
LOGIND_PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"
SESSION = "org.freedesktop.login1.Session"
NO_SESSION_ERRORS = frozenset(
    {"org.freedesktop.login1.NoSessionForPID", "org.freedesktop.login1.NoSuchSession"}
)


@dataclass(frozen=True)
class Origin:
    remote: bool
    reason: str


class _LogindError(Exception):
    pass


# --------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", "rb") as f:
        text = f.read().decode("ascii", "replace")
    return text[text.rindex(")") + 2 :].split()


def ancestors(pid: int) -> list[int]:
    """``pid`` and its ancestors, nearest first, up to (not including) pid 1."""
    out: list[int] = []
    while pid > 1 and pid not in out and len(out) < MAX_ANCESTORS:
        out.append(pid)
        try:
            pid = int(_stat_fields(pid)[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return "?"


def real_uid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def environment(pid: int) -> dict[str, str]:
    """The environment ``pid`` was started with (empty when unreadable)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return {}
    out = {}
    for item in data.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            out[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
    return out


def ssh_reason(chain: Iterable[int]) -> str | None:
    for pid in chain:
        env = environment(pid)
        for var in SSH_VARIABLES:
            if env.get(var):
                return f"{var} is set in the environment of {comm(pid)} (pid {pid})"
    return None


def is_console_tty(tty: str) -> bool:
    return bool(_CONSOLE_TTY.fullmatch(tty.strip()))


# --------------------------------------------------------------------------- logind


class _Logind:
    def __init__(self, address: str, timeout: float) -> None:
        from jeepney.io.blocking import open_dbus_connection

        self.timeout = timeout
        try:
            self.conn = open_dbus_connection(address, auth_timeout=timeout)
        except Exception as e:  # OSError, timeouts, bad address, refused auth
            raise _LogindError(f"cannot connect to the system bus {address}: {e}") from e

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    def call(
        self, path: str, iface: str, method: str, sig: str | None = None, body: tuple = ()
    ) -> tuple[Any, ...]:
        """The reply body; a D-Bus error reply raises _LogindError(error name)."""
        from jeepney import DBusAddress, HeaderFields, MessageType, new_method_call

        msg = new_method_call(DBusAddress(path, LOGIND, iface), method, sig, body)
        try:
            reply = self.conn.send_and_get_reply(msg, timeout=self.timeout)
        except Exception as e:
            raise _LogindError(f"logind {method}: {type(e).__name__} {e}".strip()) from e
        if reply.header.message_type == MessageType.error:
            raise _LogindError(str(reply.header.fields.get(HeaderFields.error_name, "error")))
        return tuple(reply.body)

    def session_of(self, pid: int) -> str | None:
        try:
            return str(self.call(LOGIND_PATH, MANAGER, "GetSessionByPID", "u", (pid,))[0])
        except _LogindError as e:
            if str(e) in NO_SESSION_ERRORS:
                return None
            raise

    def properties(self, path: str) -> dict[str, Any]:
        (props,) = self.call(
            path, "org.freedesktop.DBus.Properties", "GetAll", "s", (SESSION,)
        )
        return {k: v[1] for k, v in props.items()}

    def sessions(self) -> list[tuple[str, int, str]]:
        """(id, uid, object path) of every session."""
        (rows,) = self.call(LOGIND_PATH, MANAGER, "ListSessions")
        return [(str(r[0]), int(r[1]), str(r[4])) for r in rows]


def _remote_session(props: dict[str, Any]) -> str | None:
    if props.get("Remote"):
        host = props.get("RemoteHost") or "?"
        return f"is remote (host {host})"
    if props.get("RemoteHost"):
        return f"has remote host {props['RemoteHost']}"
    if props.get("Service") == "sshd":
        return "was opened by sshd"
    return None


def _describe(props: dict[str, Any]) -> str:
    return (
        f"session {props.get('Id', '?')} (type {props.get('Type', '?')}, "
        f"class {props.get('Class', '?')})"
    )


def _user_uids(chain: Sequence[int], user: str) -> set[int]:
    uids: set[int] = set()
    for pid in chain:
        uid = real_uid(pid)
        if uid:
            uids.add(uid)
            break
    if user:
        with contextlib.suppress(KeyError, ValueError):
            uids.add(pwd.getpwnam(user).pw_uid)
    uids.discard(0)
    return uids


def request_origin(
    pid: int,
    *,
    tty: str = "",
    user: str = "",
    service: str = "",
    bus: str = DEFAULT_SYSTEM_BUS,
    timeout: float = LOGIND_TIMEOUT,
) -> Origin:
    """Whether the PAM request made by process ``pid`` (the PAM application: the helper's
    parent) comes from a remote session. See the module docstring for the rules."""
    chain = ancestors(pid)
    why = ssh_reason(chain)
    if why is not None:
        return Origin(True, why)
    try:
        logind: _Logind | None = _Logind(bus, timeout)
        problem = ""
    except _LogindError as e:
        logind, problem = None, str(e)
    try:
        if logind is not None:
            try:
                found = _session_of_chain(logind, chain)
            except _LogindError as e:
                logind.close()
                logind, problem = None, f"logind did not answer ({e})"
            else:
                if found is not None:
                    return found
        if is_console_tty(tty):
            return Origin(False, f"no logind session; PAM tty {tty!r} is a local console")
        all_root = bool(chain) and all(real_uid(p) == 0 for p in chain)
        if all_root and service in LOCAL_LOGIN_SERVICES:
            return Origin(
                False, f"no logind session; {service!r} asked from a root daemon "
                f"({comm(chain[0])} pid {chain[0]})"
            )
        if logind is None:
            return Origin(
                True, f"{problem}, and PAM tty {tty!r} is no local console: treated as remote"
            )
        return _by_user_sessions(logind, _user_uids(chain, user))
    except _LogindError as e:
        return Origin(True, f"logind did not answer ({e}): treated as remote")
    finally:
        if logind is not None:
            logind.close()


def _session_of_chain(logind: _Logind, chain: Sequence[int]) -> Origin | None:
    """The verdict of the nearest process in ``chain`` that logind puts in a session."""
    for p in chain:
        path = logind.session_of(p)
        if path is None:
            continue
        props = logind.properties(path)
        where = f"logind {_describe(props)} of {comm(p)} (pid {p})"
        bad = _remote_session(props)
        if bad is not None:
            return Origin(True, f"{where} {bad}")
        return Origin(False, f"{where} is local")
    return None


def _by_user_sessions(logind: _Logind, uids: set[int]) -> Origin:
    mine = [s for s in logind.sessions() if s[1] in uids]
    if not mine:
        return Origin(True, "no process of the request is in a logind session, and its "
                      f"user has none (uids {sorted(uids)})")
    for sid, uid, path in mine:
        bad = _remote_session(logind.properties(path))
        if bad is not None:
            return Origin(True, f"no logind session for the request, and session {sid} "
                          f"of uid {uid} {bad}")
    ids = ", ".join(s[0] for s in mine)
    return Origin(False, f"no logind session for the request; the user's sessions ({ids}) "
                  "are all local")
