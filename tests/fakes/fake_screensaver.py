"""D-Bus lock stand-ins: test peers that play the screen locker over a REAL private bus.

Run as a process (``python fake_screensaver.py --address ADDR --kind KIND``), it owns one
service on the bus and prints ``ready`` once it does:

``freedesktop`` / ``gnome`` / ``mate``
    ``org.freedesktop.ScreenSaver`` at ``/org/freedesktop/ScreenSaver`` (or
    ``org.gnome.ScreenSaver`` at ``/org/gnome/ScreenSaver``, ``org.mate.ScreenSaver`` at
    ``/org/mate/ScreenSaver``): ``GetActive``, ``SetActive(b)``
    (emits ``ActiveChanged(b)`` on a change), ``GetActiveTime``.
``kde``
    ``org.freedesktop.ScreenSaver`` as KDE's kscreenlocker implements it (``interface.cpp``,
    ``logind.cpp``, ``ksldapp.cpp``), with a logind on the system bus (``--system-address``:
    python-dbusmock's template, whose ``Session.Unlock`` only emits the ``Unlock`` signal, as
    real logind does): ``SetActive(true)`` locks and returns true; ``SetActive(false)`` is
    ignored and returns false ("set inactive is ignored"), without a D-Bus error; logind's
    ``Lock`` / ``Unlock`` signals of the session (``--session-path``) lock and unlock; every
    change is announced with ``ActiveChanged`` and ``Session.SetLockedHint``.
``logind``
    ``org.freedesktop.login1``: the Manager at ``/org/freedesktop/login1``
    (``GetSession(s)``, ``GetSessionByPID(u)``: every pid is in the one session) and the
    Session at ``/org/freedesktop/login1/session/<id>`` (also reachable as ``session/auto``
    for ``Properties.Get``): ``Lock()`` / ``Unlock()`` (emit the ``Lock`` / ``Unlock`` signals
    and the ``LockedHint`` change, as logind plus a lock screen would), properties
    ``LockedHint``, ``Id``, ``Active``.

Test control, interface ``org.faceunlock.Test`` on the same service and main object path:
``Lock()`` (the screen locks), ``PasswordUnlock()`` (the user typed the password: the lock
screen goes away without any unlock call), ``Calls() -> a(ss)`` (every non-control method call
received: name and repr of its arguments).

Helpers for tests and benchmarks: :func:`start_bus` (a private ``dbus-daemon``, no service
activation), :func:`start_standin`, :func:`control`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jeepney import (
    DBusAddress,
    HeaderFields,
    MatchRule,
    Message,
    MessageType,
    new_error,
    new_method_call,
    new_method_return,
    new_signal,
)
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection

HERE = Path(__file__).resolve()
CONTROL = "org.faceunlock.Test"
PROPS = "org.freedesktop.DBus.Properties"
SCREENSAVERS = {
    "freedesktop": ("org.freedesktop.ScreenSaver", "/org/freedesktop/ScreenSaver"),
    "gnome": ("org.gnome.ScreenSaver", "/org/gnome/ScreenSaver"),
    "mate": ("org.mate.ScreenSaver", "/org/mate/ScreenSaver"),
}
LOGIND = "org.freedesktop.login1"
LOGIND_PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"
SESSION = "org.freedesktop.login1.Session"
SESSION_ID = "c7"

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def service_of(kind: str) -> tuple[str, str]:
    """(bus name, main object path) of a stand-in kind."""
    if kind == "logind":
        return LOGIND, LOGIND_PATH
    if kind == "kde":
        return SCREENSAVERS["freedesktop"]
    return SCREENSAVERS[kind]


# ------------------------------------------------------------------------------ the server


class StandIn:
    def __init__(self, conn: DBusConnection, kind: str, locked: bool, session_id: str) -> None:
        self.conn = conn
        self.kind = kind
        self.locked = locked
        self.session_id = session_id
        self.session_path = f"{LOGIND_PATH}/session/{session_id}"
        self.name, self.path = service_of(kind)
        self.calls: list[tuple[str, str]] = []

    # -- signals
    def _signal(self, path: str, iface: str, member: str, sig: str | None, body: tuple) -> None:
        self.conn.send(new_signal(DBusAddress(path, interface=iface), member, sig, body))

    def set_locked(self, locked: bool, *, signal: bool = True) -> None:
        """Change the state and announce it the way the real service does."""
        changed = locked != self.locked
        self.locked = locked
        if self.kind == "logind":
            if signal:
                self._signal(self.session_path, SESSION, "Lock" if locked else "Unlock", None, ())
            if changed:
                self._signal(
                    self.session_path,
                    PROPS,
                    "PropertiesChanged",
                    "sa{sv}as",
                    (SESSION, {"LockedHint": ("b", locked)}, []),
                )
        elif changed:
            self._signal(self.path, self.name, "ActiveChanged", "b", (locked,))

    # -- dispatch
    def handle(self, msg: Message) -> Message:
        f = msg.header.fields
        path = f.get(HeaderFields.path)
        iface = f.get(HeaderFields.interface)
        member = f.get(HeaderFields.member)
        if iface == CONTROL:
            return self._control(msg, member)
        self.calls.append((str(member), repr(tuple(msg.body))))
        if self.kind == "logind":
            return self._logind(msg, path, iface, member)
        return self._screensaver(msg, iface, member)

    def _control(self, msg: Message, member: str) -> Message:
        if member == "Lock":
            self.set_locked(True)
            return new_method_return(msg)
        if member == "PasswordUnlock":
            self.set_locked(False, signal=False)
            return new_method_return(msg)
        if member == "Calls":
            return new_method_return(msg, "a(ss)", (self.calls,))
        return self._unknown(msg)

    def _screensaver(self, msg: Message, iface: str | None, member: str) -> Message:
        if iface not in (None, self.name):
            return self._unknown(msg)
        if member == "GetActive":
            return new_method_return(msg, "b", (self.locked,))
        if member == "GetActiveTime":
            return new_method_return(msg, "u", (0,))
        if member == "SetActive":
            (active,) = msg.body
            if self.kind == "kde" and not active:
                return new_method_return(msg, "b", (False,))  # "set inactive is ignored"
            self.set_locked(bool(active))
            if self.kind in ("gnome", "mate"):
                return new_method_return(msg)
            return new_method_return(msg, "b", (True,))
        return self._unknown(msg)

    def _props(self, sid: str) -> dict[str, tuple[str, Any]]:
        return {
            "Id": ("s", sid),
            "LockedHint": ("b", self.locked),
            "Active": ("b", True),
        }

    def _logind(self, msg: Message, path: str, iface: str | None, member: str) -> Message:
        is_session = path in (self.session_path, f"{LOGIND_PATH}/session/auto")
        if path == LOGIND_PATH and iface in (None, MANAGER):
            if member == "GetSession":
                if msg.body[0] != self.session_id:
                    return new_error(
                        msg,
                        "org.freedesktop.login1.NoSuchSession",
                        "s",
                        (f"No session '{msg.body[0]}' known",),
                    )
                return new_method_return(msg, "o", (self.session_path,))
            if member == "GetSessionByPID":
                return new_method_return(msg, "o", (self.session_path,))
        if is_session and iface == PROPS:
            props = self._props(self.session_id)
            if member == "Get" and msg.body[0] == SESSION and msg.body[1] in props:
                return new_method_return(msg, "v", (props[msg.body[1]],))
            if member == "GetAll":
                return new_method_return(msg, "a{sv}", (props,))
        if path == self.session_path and iface in (None, SESSION) and member in ("Lock", "Unlock"):
            self.set_locked(member == "Lock")
            return new_method_return(msg)
        return self._unknown(msg)

    def _unknown(self, msg: Message) -> Message:
        f = msg.header.fields
        return new_error(
            msg,
            "org.freedesktop.DBus.Error.UnknownMethod",
            "s",
            (f"no {f.get(HeaderFields.interface)}.{f.get(HeaderFields.member)} here",),
        )

    def serve(self) -> None:
        while True:
            msg = self.conn.receive()
            if msg.header.message_type != MessageType.method_call:
                continue
            reply = self.handle(msg)
            if not msg.header.flags & 1:  # NO_REPLY_EXPECTED
                self.conn.send(reply)


class KdeStandIn(StandIn):
    """kscreenlocker (see the module docstring): its state also goes to logind, and logind's
    ``Lock`` / ``Unlock`` signals drive it. One thread serves the session bus; another reads
    logind's signals; a third connection makes the ``SetLockedHint`` calls."""

    def __init__(self, conn: DBusConnection, locked: bool, system: str, session_path: str
                 ) -> None:
        super().__init__(conn, "kde", locked, session_path.rsplit("/", 1)[-1])
        self.session_path = session_path
        self._send_lock = threading.Lock()
        self._call_lock = threading.Lock()
        self._hint = DBusAddress(session_path, LOGIND, SESSION)
        self._calls_conn = open_dbus_connection(system)
        self._signals_conn = open_dbus_connection(system)
        rule = MatchRule(type="signal", sender=LOGIND, path=session_path,
                         interface=SESSION)
        self._signals_conn.send_and_get_reply(message_bus.AddMatch(rule))
        if locked:
            self._set_hint(True)

    def _set_hint(self, locked: bool) -> None:
        with self._call_lock:
            reply = self._calls_conn.send_and_get_reply(
                new_method_call(self._hint, "SetLockedHint", "b", (locked,)), timeout=10
            )
        if reply.header.message_type == MessageType.error:
            print(f"SetLockedHint failed: {reply.body}", file=sys.stderr, flush=True)

    def _signal(self, path: str, iface: str, member: str, sig: str | None, body: tuple) -> None:
        with self._send_lock:
            super()._signal(path, iface, member, sig, body)

    def set_locked(self, locked: bool, *, signal: bool = True) -> None:
        changed = locked != self.locked
        super().set_locked(locked, signal=signal)
        if changed:
            self._set_hint(locked)

    def _logind_signals(self) -> None:
        while True:
            msg = self._signals_conn.receive()
            member = msg.header.fields.get(HeaderFields.member)
            if (
                msg.header.message_type == MessageType.signal
                and msg.header.fields.get(HeaderFields.path) == self.session_path
                and member in ("Lock", "Unlock")
            ):
                self.calls.append((f"logind {member} signal", "()"))
                self.set_locked(member == "Lock")  # ksldapp: lock / requestUnlock

    def serve(self) -> None:
        threading.Thread(target=self._logind_signals, daemon=True).start()
        while True:
            msg = self.conn.receive()
            if msg.header.message_type != MessageType.method_call:
                continue
            reply = self.handle(msg)
            if not msg.header.flags & 1:  # NO_REPLY_EXPECTED
                with self._send_lock:
                    self.conn.send(reply)


def serve(address: str, kind: str, locked: bool, session_id: str, system: str | None = None,
          session_path: str | None = None) -> None:
    conn = open_dbus_connection(address)
    name, _ = service_of(kind)
    reply = conn.send_and_get_reply(message_bus.RequestName(name, 4))  # DO_NOT_QUEUE
    if reply.body != (1,):
        sys.exit(f"could not own {name}: {reply.body}")
    if kind == "kde":
        if not system or not session_path:
            sys.exit("--kind kde needs --system-address and --session-path")
        standin: StandIn = KdeStandIn(conn, locked, system, session_path)
    else:
        standin = StandIn(conn, kind, locked, session_id)
    print("ready", flush=True)
    standin.serve()


# ------------------------------------------------------------------------------ helpers


@dataclass
class Bus:
    """A private dbus-daemon."""

    root: Path
    address: str
    proc: subprocess.Popen[bytes]
    standins: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def close(self) -> None:
        for p in [*self.standins, self.proc]:
            stop_process(p)


def stop_process(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def start_bus(root: Path, name: str = "bus", env: dict[str, str] | None = None) -> Bus:
    """A private ``dbus-daemon`` listening on ``root/<name>.sock`` (keep ``root`` short: unix
    socket paths are limited to 108 bytes). No service activation. ``env``: the daemon's
    environment (default: PATH and a UTF-8 locale only)."""
    root.mkdir(parents=True, exist_ok=True)
    sock = root / f"{name}.sock"
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()  # left by an earlier bus in the same folder
    cfg = root / f"{name}.conf"
    cfg.write_text(BUS_CONFIG.format(socket=sock))
    proc = subprocess.Popen(
        ["dbus-daemon", f"--config-file={cfg}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=open(root / f"{name}.log", "wb"),  # noqa: SIM115
        env=env or {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
    )
    assert proc.stdout is not None
    address = proc.stdout.readline().decode().strip()
    if not address:
        stop_process(proc)
        raise RuntimeError(f"dbus-daemon printed no address: {(root / f'{name}.log').read_text()}")
    return Bus(root, address, proc)


def start_standin(
    bus: Bus,
    kind: str,
    *,
    locked: bool = False,
    session_id: str = SESSION_ID,
    system: str | None = None,
    session_path: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a stand-in process on ``bus``; returns once it owns its name. ``kde`` needs
    ``system`` (the address of a bus with logind on it) and the logind ``session_path``."""
    cmd = [sys.executable, str(HERE), "--address", bus.address, "--kind", kind]
    cmd += ["--session-id", session_id] + (["--locked"] if locked else [])
    if system is not None:
        cmd += ["--system-address", system]
    if session_path is not None:
        cmd += ["--session-path", session_path]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=open(bus.root / f"standin-{kind}.log", "ab"),  # noqa: SIM115
    )
    bus.standins.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if line != "ready":
        stop_process(proc)
        log = (bus.root / f"standin-{kind}.log").read_text(errors="replace")
        raise RuntimeError(f"stand-in {kind} did not start: {line!r}\n{log}")
    return proc


@contextlib.contextmanager
def client(address: str) -> Iterator[DBusConnection]:
    conn = open_dbus_connection(address)
    try:
        yield conn
    finally:
        conn.close()


def call(address: str, addr: DBusAddress, method: str, sig: str | None = None,
         body: tuple[Any, ...] = (), timeout: float = 10.0) -> tuple[Any, ...]:
    """One method call on the bus at ``address``; a D-Bus error reply raises RuntimeError."""
    with client(address) as conn:
        reply = conn.send_and_get_reply(new_method_call(addr, method, sig, body),
                                        timeout=timeout)
    if reply.header.message_type == MessageType.error:
        raise RuntimeError(f"{addr.interface}.{method}: {reply.body}")
    return tuple(reply.body)


def name_has_owner(address: str, name: str) -> bool:
    bus = DBusAddress("/org/freedesktop/DBus", "org.freedesktop.DBus", "org.freedesktop.DBus")
    return bool(call(address, bus, "NameHasOwner", "s", (name,))[0])


def control(address: str, kind: str, method: str) -> tuple[Any, ...]:
    """Call a control method (``Lock``, ``PasswordUnlock``, ``Calls``) of a stand-in."""
    name, path = service_of(kind)
    return call(address, DBusAddress(path, name, CONTROL), method, timeout=5)


def calls(address: str, kind: str) -> list[tuple[str, str]]:
    """The non-control method calls the stand-in has received, oldest first."""
    return [tuple(c) for c in control(address, kind, "Calls")[0]]


def wait_until(cond: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--address", required=True)
    p.add_argument("--kind", required=True,
                   choices=["freedesktop", "gnome", "kde", "logind", "mate"])
    p.add_argument("--locked", action="store_true", help="start locked")
    p.add_argument("--session-id", default=SESSION_ID)
    p.add_argument("--system-address", help="kde: the bus of logind")
    p.add_argument("--session-path", help="kde: the logind session's object path")
    a = p.parse_args(argv)
    serve(a.address, a.kind, a.locked, a.session_id, a.system_address, a.session_path)


if __name__ == "__main__":
    main()
