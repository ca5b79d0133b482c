"""Is the session locked, tell me when that changes, and unlock it: the lock-state backends
the watcher (:mod:`faceunlock.unlock.watcher`) runs on, over D-Bus with jeepney (blocking I/O).

Backends (``watcher.backend`` in the config):

``gnome``
    GNOME Shell's ``org.gnome.ScreenSaver`` interface on the session bus: ``GetActive``, the
    signal ``ActiveChanged(b)``. Read from ``org.gnome.Shell.ScreenShield`` (the shell itself,
    owned from its start) when that name has an owner, else from ``org.gnome.ScreenSaver``,
    which is a D-Bus-activated proxy (GNOME >= 3.38) with no owner until something starts it:
    it is started with ``StartServiceByName``.
``mate``
    MATE's ``org.mate.ScreenSaver`` (mate-screensaver) on the session bus: the same members.
    mate-screensaver unlocks on ``SetActive(false)`` (its first unlock method, confirmed by
    its ``GetActive`` turning false); it does not set logind's ``LockedHint`` and, as tried
    with mate-screensaver 1.26, does not act on logind's ``Unlock``, which is kept only as the
    fallback.
``freedesktop``
    ``org.freedesktop.ScreenSaver`` on the session bus (KDE Plasma, Xfce, Cinnamon, ...): the
    same members.
``logind``
    ``org.freedesktop.login1`` on the system bus: the session object's ``LockedHint``
    property (and its ``PropertiesChanged``), the signals ``Lock`` / ``Unlock``.
``auto``
    the first of gnome, mate, freedesktop (a name with an owner on the session bus), then
    logind. MATE comes before freedesktop: a locker's own name is surer than the generic one,
    which inhibit-only daemons may own too.

How to unlock (:meth:`LockBackend.unlock_methods`, tried in this order until the lock screen
confirms): logind's ``Session.Unlock()`` whenever logind has this session (every lock screen
that integrates with logind acts on its ``Unlock`` signal: GNOME Shell's ``screenShield.js``,
KDE's kscreenlocker ``logind.cpp``), then ``SetActive(false)`` of the ScreenSaver interface,
where that works: GNOME Shell's ``ScreenSaverDBus.SetActive`` unlocks; KDE's kscreenlocker
ignores it and returns false (``interface.cpp``, "set inactive is ignored"), which counts as a
refusal. A call is never proof of an unlock: logind's ``Unlock`` only emits a signal, whatever
the lock screen does with it. The unlock is confirmed by the lock screen's own state only:
``GetActive`` false, or logind's ``LockedHint`` false (set by the lock screen), see
:attr:`LockBackend.confirmed_by`.

Every backend delivers :class:`LockEvent` s only on a change of state (a ``Lock`` signal
followed by ``LockedHint = true`` is one event). :meth:`LockBackend.wait_event` blocks in
``select()`` on the bus socket (and a wake-up pipe, see :meth:`LockBackend.wake`): no polling,
no CPU while nothing happens.

Whether an attempt would be pointless (:func:`camera_pointless`): the laptop lid is closed
(:func:`lid_closed`, ``/proc/acpi/button/lid/*/state``) or every connected display is off
(:func:`displays_off`, ``/sys/class/drm/card*-*/{status,dpms,enabled}``). Both answer None
whenever they are unsure (no such files, unreadable): doubt never blocks an unlock.
"""

from __future__ import annotations

import abc
import contextlib
import enum
import logging
import os
import selectors
import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from jeepney import (
    DBusAddress,
    HeaderFields,
    MatchRule,
    Message,
    MessageType,
    new_method_call,
)
from jeepney.io.blocking import DBusConnection, open_dbus_connection

from faceunlock.errors import WatcherError
from faceunlock.unlock.hardware import DEFAULT_LID_GLOB, lid_closed

log = logging.getLogger(__name__)

__all__ = [
    "BACKEND_NAMES",
    "DEFAULT_DRM_ROOT",
    "DEFAULT_LID_GLOB",
    "LOGIND",
    "SCREENSAVERS",
    "LockBackend",
    "LockEvent",
    "LogindBackend",
    "LogindSession",
    "ScreenSaverBackend",
    "camera_pointless",
    "detect_backend",
    "displays_off",
    "lid_closed",
]

#: seconds a D-Bus method call may take before it counts as failed
CALL_TIMEOUT = 5.0
#: ``watcher.backend`` value -> (bus name, object path, interface) of the ScreenSaver services,
#: in auto-detection order
SCREENSAVERS: dict[str, tuple[str, str, str]] = {
    "gnome": ("org.gnome.ScreenSaver", "/org/gnome/ScreenSaver", "org.gnome.ScreenSaver"),
    "mate": ("org.mate.ScreenSaver", "/org/mate/ScreenSaver", "org.mate.ScreenSaver"),
    "freedesktop": (
        "org.freedesktop.ScreenSaver",
        "/org/freedesktop/ScreenSaver",
        "org.freedesktop.ScreenSaver",
    ),
}
#: GNOME Shell's own name for its ScreenSaver interface (``org.gnome.ScreenSaver`` is a proxy)
GNOME_SHIELD = "org.gnome.Shell.ScreenShield"
LOGIND = "org.freedesktop.login1"
LOGIND_PATH = "/org/freedesktop/login1"
LOGIND_MANAGER = "org.freedesktop.login1.Manager"
LOGIND_SESSION = "org.freedesktop.login1.Session"
PROPERTIES = "org.freedesktop.DBus.Properties"
BACKEND_NAMES = ("gnome", "mate", "freedesktop", "logind")
#: ScreenSaver backends whose lock screen unlocks on ``SetActive(false)`` and not (surely) on
#: logind's ``Unlock``: ``SetActive(false)`` is tried first there
SET_ACTIVE_FIRST = frozenset({"mate"})
#: the DRM class folder of sysfs: one ``card<N>-<connector>`` folder per display connector
DEFAULT_DRM_ROOT = "/sys/class/drm"


def _read_word(path: Path) -> str | None:
    """The first line of a small sysfs file, stripped; None when missing or unreadable."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.readline(256).strip()
    except OSError:
        return None


def displays_off(drm_root: str | os.PathLike[str] = DEFAULT_DRM_ROOT) -> str | None:
    """Why no display can show anything, or None.

    Looks at every connector folder ``card*-*`` under ``drm_root`` whose ``status`` says
    ``connected``: when there is at least one and each is off (its ``dpms`` says ``Off`` or
    its ``enabled`` says ``disabled``), returns e.g. ``"display off (card0-eDP-1: dpms
    Off)"``. None when a connected display is on, when nothing is connected, and on any doubt
    (a ``status`` that cannot be read, a connected connector whose state cannot be read).
    The kernel's ``dpms`` is the legacy property: compositors that blank through atomic
    modesetting may leave it ``On``, so this can miss an off display but not invent one."""
    root = Path(drm_root)
    try:
        connectors = sorted(p for p in root.glob("card*-*") if p.is_dir())
    except OSError:
        return None
    off: list[str] = []
    for conn in connectors:
        status = _read_word(conn / "status")
        if status is None:
            return None  # cannot tell whether it is connected: it may be a lit display
        if status.lower() != "connected":
            continue
        enabled = _read_word(conn / "enabled")
        dpms = _read_word(conn / "dpms")
        if enabled is not None and enabled.lower() == "disabled":
            off.append(f"{conn.name}: disabled")
        elif dpms is not None and dpms.lower() == "off":
            off.append(f"{conn.name}: dpms {dpms}")
        else:
            return None  # on, standby-ish, or unknown: do not skip
    if not off:
        return None
    return f"{'display' if len(off) == 1 else 'displays'} off ({', '.join(off)})"


def camera_pointless(
    lid_glob: str = DEFAULT_LID_GLOB, drm_root: str | os.PathLike[str] = DEFAULT_DRM_ROOT
) -> str | None:
    """Why a face attempt cannot see anyone now, or None: ``"lid closed (<state file>)"``
    (:func:`lid_closed`) or the reason of :func:`displays_off`."""
    lid = lid_closed(lid_glob)
    if lid is not None:
        return f"lid closed ({lid})"
    return displays_off(drm_root)


class LockEvent(enum.Enum):
    """A change of the session's lock state."""

    LOCKED = "locked"
    UNLOCKED = "unlocked"


def _bus_label(address: str | None, system: bool) -> str:
    if address is not None:
        return f"D-Bus bus {address}"
    return "D-Bus system bus" if system else "D-Bus session bus"


def connect(address: str | None = None, *, system: bool = False) -> DBusConnection:
    """A blocking jeepney connection to ``address`` (a D-Bus address such as
    ``unix:path=/run/user/1000/bus``), or to the session / system bus when None.
    Raises :class:`WatcherError` with the reason when there is none to connect to."""
    label = _bus_label(address, system)
    if address is None and not system and not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        raise WatcherError(
            "no D-Bus session bus: DBUS_SESSION_BUS_ADDRESS is not set. Run the watcher inside "
            "your graphical session (`systemctl --user start faceunlock-watch`), not over SSH "
            "or from a bare TTY"
        )
    target = address if address is not None else ("SYSTEM" if system else "SESSION")
    try:
        return open_dbus_connection(target)
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        raise WatcherError(f"cannot connect to the {label}: {e}") from e


def _call(
    conn: DBusConnection,
    addr: DBusAddress,
    method: str,
    signature: str | None = None,
    body: tuple[Any, ...] = (),
    what: str = "",
) -> tuple[Any, ...]:
    """One method call; every failure (error reply, timeout, lost bus) -> WatcherError."""
    msg = new_method_call(addr, method, signature, body)
    name = what or f"{addr.bus_name} {addr.interface}.{method}"
    try:
        reply = conn.send_and_get_reply(msg, timeout=CALL_TIMEOUT)
    except TimeoutError as e:
        raise WatcherError(f"{name}: no reply within {CALL_TIMEOUT:g} s") from e
    except OSError as e:
        raise WatcherError(f"{name}: D-Bus connection lost ({e})") from e
    if reply.header.message_type == MessageType.error:
        err = reply.header.fields.get(HeaderFields.error_name, "error")
        text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
        raise WatcherError(f"{name} failed: {err}{': ' + text if text else ''}")
    return tuple(reply.body)


_BUS = DBusAddress("/org/freedesktop/DBus", "org.freedesktop.DBus", "org.freedesktop.DBus")


def name_has_owner(conn: DBusConnection, name: str) -> bool:
    """Whether ``name`` is owned on the bus of ``conn`` (no service activation)."""
    return bool(_call(conn, _BUS, "NameHasOwner", "s", (name,))[0])


class LockBackend(abc.ABC):
    """One source of lock state on one D-Bus connection. Not thread-safe, except
    :meth:`wake`, which any thread (or a signal handler) may call."""

    #: ``watcher.backend`` value of this backend
    name: str = ""
    #: the lock screen's own state that confirms an unlock (for messages)
    confirmed_by: str = ""

    def __init__(self, conn: DBusConnection) -> None:
        self._conn = conn
        self._inbox: deque[Message] = deque()
        self._events: deque[LockEvent] = deque()
        self._locked: bool | None = None
        # every signal received (also while waiting for a method reply) lands in _inbox
        self._filter = conn.filter(MatchRule(type="signal"), queue=self._inbox)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector = selectors.DefaultSelector()
        self._selector.register(conn.sock, selectors.EVENT_READ, "bus")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._closed = False

    # --------------------------------------------------------------- for subclasses
    def _add_match(self, rule: MatchRule) -> None:
        _call(self._conn, _BUS, "AddMatch", "s", (rule.serialise(),))

    def _init_failed(self, conn: DBusConnection) -> None:
        """Release what a failed constructor opened."""
        if hasattr(self, "_selector"):
            self.close()
        else:
            conn.close()

    @abc.abstractmethod
    def _query_locked(self) -> bool:
        """Ask the service whether the session is locked now."""

    @abc.abstractmethod
    def _translate(self, msg: Message) -> bool | None:
        """The lock state a signal announces (True: locked), or None when it says nothing."""

    # --------------------------------------------------------------- public API
    def is_locked(self) -> bool:
        """Whether the session is locked now (asks the service)."""
        self._locked = self._query_locked()
        return self._locked

    @abc.abstractmethod
    def unlock_methods(self) -> list[str]:
        """The ways this backend can ask the lock screen to unlock, best first (names for
        :meth:`unlock` and for messages)."""

    @abc.abstractmethod
    def unlock(self, method: str | None = None) -> None:
        """Ask the lock screen to unlock through ``method`` (one of :meth:`unlock_methods`;
        None: the first). Raises :class:`WatcherError` when the call fails or is refused.
        Returning is no proof of an unlock: wait for the UNLOCKED event or check
        :meth:`is_locked` (the lock screen's own state)."""

    def wait_event(self, timeout: float | None = None) -> LockEvent | None:
        """The next lock-state change, waiting at most ``timeout`` seconds (None: forever;
        0: only what has already arrived). None on timeout or after :meth:`wake`."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            self._pump()
            if self._events:
                return self._events.popleft()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            for key, _ in self._selector.select(left):
                if key.data == "wake":
                    self._drain_wake()
                    return None

    def wake(self) -> None:
        """Make a blocked (or the next) :meth:`wait_event` return None at once."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._filter.close()
        self._selector.close()
        self._conn.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # --------------------------------------------------------------- internals
    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 64):
                pass

    def _pump(self) -> None:
        """Read whatever the bus has sent (without blocking) and turn signals into events."""
        while True:
            try:
                self._conn.recv_messages(timeout=0)
            except TimeoutError:
                break
            except OSError as e:
                raise WatcherError(f"{self.name}: lost the D-Bus connection ({e})") from e
        while self._inbox:
            state = self._translate(self._inbox.popleft())
            if state is not None and state != self._locked:
                self._locked = state
                self._events.append(LockEvent.LOCKED if state else LockEvent.UNLOCKED)


def _header(msg: Message, field: HeaderFields) -> Any:
    return msg.header.fields.get(field)


def start_service(conn: DBusConnection, name: str) -> None:
    """``StartServiceByName``: D-Bus-activate ``name`` (returns once it has an owner).
    Raises :class:`WatcherError` when it cannot be started (no such service file, it failed)."""
    _call(conn, _BUS, "StartServiceByName", "su", (name, 0), what=f"starting {name}")


class ScreenSaverBackend(LockBackend):
    """``org.freedesktop.ScreenSaver`` or GNOME's ``org.gnome.ScreenSaver`` interface on the
    session bus. For GNOME the interface is read from ``org.gnome.Shell.ScreenShield`` when
    that name has an owner, else from ``org.gnome.ScreenSaver``, D-Bus-activated when it has
    no owner. ``logind``: this user's logind session; when given, ``Session.Unlock()`` is the
    first unlock method (it closes it)."""

    def __init__(
        self,
        service: str = "org.freedesktop.ScreenSaver",
        address: str | None = None,
        *,
        logind: LogindSession | None = None,
    ) -> None:
        kinds = {v[0]: k for k, v in SCREENSAVERS.items()}
        if service not in kinds:
            if logind is not None:
                logind.close()
            raise WatcherError(f"unknown screensaver service {service!r}; one of {list(kinds)}")
        self.name = kinds[service]
        bus_name, path, interface = SCREENSAVERS[self.name]
        self._logind = logind
        conn = connect(address)
        try:
            bus_name = self._owner(conn, bus_name, address)
            self.service = bus_name
            self.confirmed_by = f"{bus_name} GetActive"
            self._addr = DBusAddress(path, bus_name, interface)
            super().__init__(conn)
            rule = MatchRule(
                type="signal", sender=bus_name, interface=interface, member="ActiveChanged"
            )
            self._add_match(rule)
            self.is_locked()  # proves GetActive works and sets the initial state
        except BaseException:
            self._init_failed(conn)
            if logind is not None:
                logind.close()
            raise

    def _owner(self, conn: DBusConnection, bus_name: str, address: str | None) -> str:
        """The bus name to talk to: for GNOME the shell's own name when it is owned, else the
        activatable proxy (started when needed)."""
        if self.name == "gnome" and name_has_owner(conn, GNOME_SHIELD):
            return GNOME_SHIELD
        if name_has_owner(conn, bus_name):
            return bus_name
        why = "that screen locker is not running"
        if self.name == "gnome":
            try:
                start_service(conn, bus_name)
                return bus_name
            except WatcherError as e:
                why = f"neither is {GNOME_SHIELD}, and it cannot be started ({e})"
        raise WatcherError(
            f"{bus_name} has no owner on the {_bus_label(address, False)}: {why} "
            "(set watcher.backend = auto to detect one)"
        )

    def _query_locked(self) -> bool:
        return bool(_call(self._conn, self._addr, "GetActive")[0])

    def _translate(self, msg: Message) -> bool | None:
        if (
            _header(msg, HeaderFields.interface) == self._addr.interface
            and _header(msg, HeaderFields.member) == "ActiveChanged"
            and msg.body
        ):
            return bool(msg.body[0])
        return None

    @property
    def set_active_method(self) -> str:
        return f"{self._addr.interface}.SetActive(false)"

    def unlock_methods(self) -> list[str]:
        methods = [self.set_active_method]
        if self._logind is not None:
            methods.insert(len(methods) if self.name in SET_ACTIVE_FIRST else 0,
                           LogindSession.METHOD)
        return methods

    def unlock(self, method: str | None = None) -> None:
        method = method or self.unlock_methods()[0]
        if method == LogindSession.METHOD and self._logind is not None:
            self._logind.unlock()
            return
        if method != self.set_active_method:
            raise WatcherError(f"{self.name}: no unlock method {method!r}")
        reply = _call(self._conn, self._addr, "SetActive", "b", (False,))
        # GNOME and MATE return nothing; the freedesktop spec a boolean. KDE's kscreenlocker answers
        # false without an error: "set inactive is ignored"
        if reply and reply[0] is False:
            raise WatcherError(
                f"{self.service} refused {self.set_active_method} (it returned false: this "
                "lock screen does not unlock that way)"
            )

    def close(self) -> None:
        if self._logind is not None:
            self._logind.close()
            self._logind = None
        super().close()


def _find_session(conn: DBusConnection, manager: DBusAddress, session_id: str | None) -> str:
    """The object path of this user's logind session: ``session_id``, ``$XDG_SESSION_ID``,
    the session of this process (``GetSessionByPID``), logind's ``auto`` session."""
    sid = session_id or os.environ.get("XDG_SESSION_ID")
    if sid:
        return str(_call(conn, manager, "GetSession", "s", (sid,))[0])
    problems = []
    try:
        return str(_call(conn, manager, "GetSessionByPID", "u", (os.getpid(),))[0])
    except WatcherError as e:
        problems.append(str(e))
    try:
        auto = DBusAddress(f"{LOGIND_PATH}/session/auto", LOGIND, PROPERTIES)
        (variant,) = _call(conn, auto, "Get", "ss", (LOGIND_SESSION, "Id"))
        return str(_call(conn, manager, "GetSession", "s", (variant[1],))[0])
    except WatcherError as e:
        problems.append(str(e))
    raise WatcherError("cannot find this user's logind session: " + "; ".join(problems))


def _logind_session_path(
    conn: Any, address: str | None, session_id: str | None, session_path: str | None
) -> str:
    """The object path of this user's logind session on ``conn`` (the system bus at
    ``address``); WatcherError when logind has no owner there or there is no session."""
    if not name_has_owner(conn, LOGIND):
        raise WatcherError(
            f"{LOGIND} (systemd-logind) has no owner on the {_bus_label(address, True)}"
        )
    manager = DBusAddress(LOGIND_PATH, LOGIND, LOGIND_MANAGER)
    return session_path or _find_session(conn, manager, session_id)


def _locked_hint(conn: Any, session_path: str) -> bool:
    """The session's ``LockedHint`` property."""
    props = DBusAddress(session_path, LOGIND, PROPERTIES)
    (variant,) = _call(conn, props, "Get", "ss", (LOGIND_SESSION, "LockedHint"))
    return bool(variant[1])


class LogindSession:
    """This user's logind session as an unlock method for the ScreenSaver backends: its own
    connection to the system bus (``address``, default the system bus), the session found as
    :class:`LogindBackend` finds it. Raises :class:`WatcherError` when there is no logind or
    no session."""

    METHOD = "logind Session.Unlock"

    def __init__(
        self,
        address: str | None = None,
        *,
        session_id: str | None = None,
        session_path: str | None = None,
    ) -> None:
        conn = connect(address, system=True)
        try:
            self.session_path = _logind_session_path(conn, address, session_id, session_path)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._session = DBusAddress(self.session_path, LOGIND, LOGIND_SESSION)

    def unlock(self) -> None:
        """``Session.Unlock()``: logind emits the session's ``Unlock`` signal (nothing more)."""
        _call(self._conn, self._session, "Unlock")

    def locked_hint(self) -> bool:
        return _locked_hint(self._conn, self.session_path)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()


class LogindBackend(LockBackend):
    """The session object of ``org.freedesktop.login1`` on the system bus.

    The session is, in order: ``session_path`` (an object path), ``session_id``,
    ``$XDG_SESSION_ID``, the session of this process (``GetSessionByPID``), logind's ``auto``
    session (the user's display session: how a systemd user service finds it).

    The state: a ``Lock`` signal or ``LockedHint`` true is a lock. ``Lock`` / ``Unlock`` are
    only logind's requests to the lock screen (``Session.Unlock()`` emits ``Unlock`` whatever
    the lock screen then does), so once the lock screen has shown that it keeps
    ``LockedHint`` (it was true during this lock: GNOME Shell, KDE), only ``LockedHint``
    turning false is an unlock. With a lock screen that never sets it, the ``Unlock`` signal
    is all there is, and counts."""

    name = "logind"

    def __init__(
        self,
        address: str | None = None,
        *,
        session_id: str | None = None,
        session_path: str | None = None,
    ) -> None:
        conn = connect(address, system=True)
        try:
            self._manager = DBusAddress(LOGIND_PATH, LOGIND, LOGIND_MANAGER)
            self.session_path = _logind_session_path(conn, address, session_id, session_path)
            self._session = DBusAddress(self.session_path, LOGIND, LOGIND_SESSION)
            self._hint_seen = False  # LockedHint was true during this lock
            self._hint_at_unlock = True  # ... when unlock() was last called
            super().__init__(conn)
            self._add_match(MatchRule(type="signal", sender=LOGIND, path=self.session_path))
            self.is_locked()
        except BaseException:
            self._init_failed(conn)
            raise

    @property
    def confirmed_by(self) -> str:  # type: ignore[override]
        """What confirmed (or confirms) the last unlock."""
        if self._hint_at_unlock:
            return "logind LockedHint"
        return "logind's Unlock signal only (this lock screen does not set LockedHint)"

    def _hint(self, value: bool) -> bool:
        """Note a ``LockedHint`` value; the lock state it means."""
        if value:
            self._hint_seen = True
            return True
        self._hint_seen = False
        return False

    def _query_locked(self) -> bool:
        if _locked_hint(self._conn, self.session_path):
            return self._hint(True)
        if self._hint_seen:  # the lock screen keeps LockedHint, and it is false now
            return self._hint(False)
        # locked by a Lock signal, and the lock screen does not keep LockedHint: still locked
        return bool(self._locked)

    def _translate(self, msg: Message) -> bool | None:
        if _header(msg, HeaderFields.path) != self.session_path:
            return None
        iface, member = _header(msg, HeaderFields.interface), _header(msg, HeaderFields.member)
        if iface == LOGIND_SESSION and member == "Lock":
            return True
        if iface == LOGIND_SESSION and member == "Unlock":
            # a request to the lock screen, not its state: an unlock only while nothing
            # better (LockedHint) reports the state
            return None if self._hint_seen else False
        if iface == PROPERTIES and member == "PropertiesChanged" and len(msg.body) >= 2:
            changed_iface, changed = msg.body[0], msg.body[1]
            if changed_iface == LOGIND_SESSION and "LockedHint" in changed:
                return self._hint(bool(changed["LockedHint"][1]))
        return None

    def unlock_methods(self) -> list[str]:
        return [LogindSession.METHOD]

    def unlock(self, method: str | None = None) -> None:
        if method not in (None, LogindSession.METHOD):
            raise WatcherError(f"logind: no unlock method {method!r}")
        # the lock screen may have set LockedHint since the Lock signal, its signal not read
        # yet: read it now, so that the Unlock signal this call causes is not taken for the
        # lock screen's answer
        self.is_locked()
        self._hint_at_unlock = self._hint_seen
        _call(self._conn, self._session, "Unlock")


def _logind_session(system_bus: str | None, session_id: str | None) -> LogindSession | None:
    """This user's logind session, or None (logged) when there is none to use."""
    try:
        return LogindSession(system_bus, session_id=session_id)
    except WatcherError as e:
        log.info("no logind session to unlock through (%s); using SetActive(false)", e)
        return None


def _screensaver(
    kind: str, session_bus: str | None, system_bus: str | None, session_id: str | None
) -> ScreenSaverBackend:
    return ScreenSaverBackend(
        SCREENSAVERS[kind][0], session_bus, logind=_logind_session(system_bus, session_id)
    )


def detect_backend(
    cfg_backend: str = "auto",
    *,
    session_bus: str | None = None,
    system_bus: str | None = None,
    session_id: str | None = None,
) -> LockBackend:
    """The backend named by ``cfg_backend`` (``auto``, ``gnome``, ``mate``, ``freedesktop``,
    ``logind``). ``auto``: GNOME Shell's ScreenSaver interface when ``org.gnome.Shell.
    ScreenShield`` or ``org.gnome.ScreenSaver`` has an owner on the session bus, then MATE's
    (``org.mate.ScreenSaver``), then the freedesktop one, then logind. A ScreenSaver backend
    unlocks through logind's ``Session.Unlock`` when logind has this user's session
    (``session_id``, as :class:`LogindBackend` finds it), else through ``SetActive(false)``;
    MATE through ``SetActive(false)`` first. ``session_bus`` /
    ``system_bus``: D-Bus addresses (default: the environment's). Raises
    :class:`WatcherError` naming what was tried."""
    if cfg_backend in SCREENSAVERS:
        return _screensaver(cfg_backend, session_bus, system_bus, session_id)
    if cfg_backend == "logind":
        return LogindBackend(system_bus, session_id=session_id)
    if cfg_backend != "auto":
        raise WatcherError(
            f"unknown watcher backend {cfg_backend!r}; one of auto, {', '.join(BACKEND_NAMES)}"
        )
    tried: list[str] = []
    try:
        probe = connect(session_bus)
    except WatcherError as e:
        tried.append(str(e))
    else:
        names = {kind: [v[0]] for kind, v in SCREENSAVERS.items()}
        names["gnome"].insert(0, GNOME_SHIELD)
        try:
            owned = [k for k, ns in names.items() if any(name_has_owner(probe, n) for n in ns)]
        except WatcherError as e:
            owned = []
            tried.append(str(e))
        finally:
            probe.close()
        for kind in owned:
            try:
                return _screensaver(kind, session_bus, system_bus, session_id)
            except WatcherError as e:
                tried.append(str(e))
        if not owned:
            listed = " nor ".join([GNOME_SHIELD, *(v[0] for v in SCREENSAVERS.values())])
            tried.append(f"neither {listed} has an owner on the {_bus_label(session_bus, False)}")
    try:
        return LogindBackend(system_bus, session_id=session_id)
    except WatcherError as e:
        tried.append(f"logind: {e}")
    raise WatcherError(
        "no lock-screen service to watch: "
        + "; ".join(tried)
        + ". Face unlock of the lock screen needs a desktop session with GNOME Shell, a "
        "MATE screensaver, a freedesktop ScreenSaver (KDE, Xfce, ...) or systemd-logind"
    )
