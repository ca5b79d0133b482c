"""The logind backend and the watcher against python-dbusmock's ``logind`` template.

A second opinion on ``tests/unlock/test_watcher.py``, whose logind peer is our own stand-in:
here the peer is Debian's ``python3-dbusmock`` (``/usr/bin/python3 -m dbusmock --template
logind``), run as the "system bus" service on a private ``dbus-daemon``. The session is made
with the template's ``AddSession``; the mock emits ``Lock`` (``org.freedesktop.DBus.Mock.
EmitSignal``), the watcher authenticates from the ../shared clip and calls
``Session.Unlock()``, which the mock records (``GetMethodCalls('Unlock')``).

Skipped when dbus-daemon is missing (Debian: ``apt-get install dbus``) or ``/usr/bin/python3``
cannot import dbusmock (``apt-get install python3-dbusmock``); the clip tests are skipped
without ../shared/datasets/clips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jeepney import DBusAddress

from faceunlock.errors import AuthStatus, WatcherError
from faceunlock.unlock.lockstate import LockEvent, LogindBackend, detect_backend
from faceunlock.unlock.watcher import AuthAttempt, WatcherState

SYSTEM_PYTHON = "/usr/bin/python3"

if shutil.which("dbus-daemon") is None:
    pytest.skip("dbus-daemon not installed (Debian: apt-get install dbus)", allow_module_level=True)
if (
    not os.access(SYSTEM_PYTHON, os.X_OK)
    or subprocess.run(
        [SYSTEM_PYTHON, "-c", "import dbusmock.templates.logind"], capture_output=True
    ).returncode
    != 0
):
    pytest.skip(
        f"{SYSTEM_PYTHON} cannot import dbusmock (Debian: apt-get install python3-dbusmock)",
        allow_module_level=True,
    )


from tests.fakes import fake_screensaver as fs  # noqa: E402
from tests.fakes.clip_material import EnrolledClips, watcher_config  # noqa: E402
from tests.fakes.watcher_run import Run, make_watcher  # noqa: E402

LOGIND = "org.freedesktop.login1"
LOGIND_PATH = "/org/freedesktop/login1"
SESSION_IFACE = "org.freedesktop.login1.Session"
MOCK_IFACE = "org.freedesktop.DBus.Mock"
SESSION_ID = "c1"


class LogindMock:
    """A private bus with ``python3 -m dbusmock --template logind`` on it and one session."""

    def __init__(self, root: Path) -> None:
        self.bus = fs.start_bus(root, "system")
        self.address: str = self.bus.address
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "DBUS_SYSTEM_BUS_ADDRESS": self.address,
        }
        self.log = root / "dbusmock.log"
        proc = subprocess.Popen(
            [SYSTEM_PYTHON, "-m", "dbusmock", "--system", "--template", "logind"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "wb"),  # noqa: SIM115
            env=env,
        )
        self.bus.standins.append(proc)
        try:
            fs.wait_until(lambda: proc.poll() is not None or self._owned(), "dbusmock logind", 30)
        except AssertionError:
            self.close()
            raise
        if proc.poll() is not None:
            log = self.log.read_text(errors="replace")
            self.close()
            raise RuntimeError(f"dbusmock exited with {proc.returncode}:\n{log}")
        (path,) = self.call(
            LOGIND_PATH,
            MOCK_IFACE,
            "AddSession",
            "ssusb",
            (SESSION_ID, "seat0", 1000, "alice", True),
        )
        self.session_path = str(path)

    def _owned(self) -> bool:
        return fs.name_has_owner(self.address, LOGIND)

    def call_addr(
        self, addr: DBusAddress, method: str, sig: str | None = None, body: tuple = ()
    ) -> tuple[Any, ...]:
        return fs.call(self.address, addr, method, sig, body)

    def call(
        self, path: str, iface: str, method: str, sig: str | None = None, body: tuple = ()
    ) -> tuple[Any, ...]:
        return self.call_addr(DBusAddress(path, LOGIND, iface), method, sig, body)

    def emit(self, member: str) -> None:
        """The session object emits ``Lock`` / ``Unlock`` (as logind does when told to)."""
        self.call(
            self.session_path, MOCK_IFACE, "EmitSignal", "sssav", (SESSION_IFACE, member, "", [])
        )

    def set_locked_hint(self, locked: bool) -> None:
        """What the lock screen does: ``Session.SetLockedHint(b)`` (a PropertiesChanged)."""
        self.call(self.session_path, SESSION_IFACE, "SetLockedHint", "b", (locked,))

    def locked_hint(self) -> bool:
        props = "org.freedesktop.DBus.Properties"
        (v,) = self.call(self.session_path, props, "Get", "ss", (SESSION_IFACE, "LockedHint"))
        return bool(v[1])

    def method_calls(self, method: str) -> list[Any]:
        """The calls of ``method`` the mock recorded on the session object."""
        return list(self.call(self.session_path, MOCK_IFACE, "GetMethodCalls", "s", (method,))[0])

    def backend(self) -> LogindBackend:
        return LogindBackend(self.address, session_path=self.session_path)

    def close(self) -> None:
        self.bus.close()


@pytest.fixture()
def logind() -> Iterator[LogindMock]:
    root = Path(tempfile.mkdtemp(prefix="fu-dm-"))  # short: unix socket paths max 108 bytes
    try:
        m = LogindMock(root)
        try:
            yield m
        finally:
            m.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------- backend


def test_backend_against_dbusmock(logind: LogindMock) -> None:
    with logind.backend() as b:
        assert b.name == "logind" and b.session_path.endswith("/session/" + SESSION_ID)
        assert b.is_locked() is False
        assert b.wait_event(0.2) is None
        logind.emit("Lock")
        assert b.wait_event(5) is LockEvent.LOCKED
        logind.set_locked_hint(True)  # the same lock: no second event
        assert b.wait_event(0.2) is None
        assert b.is_locked() is True  # read from the mock's LockedHint
        b.unlock()
        # Session.Unlock() only makes logind emit Unlock, a request to the lock screen, which
        # keeps LockedHint: nothing is unlocked until the lock screen says so
        assert b.wait_event(0.5) is None
        assert b.is_locked() is True
        logind.set_locked_hint(False)  # the lock screen unlocked
        assert b.wait_event(5) is LockEvent.UNLOCKED
        assert b.is_locked() is False
    assert len(logind.method_calls("Unlock")) == 1


def test_without_locked_hint_the_unlock_signal_counts(logind: LogindMock) -> None:
    """A lock screen that never sets LockedHint: logind's Lock / Unlock signals are all
    there is to go by."""
    with logind.backend() as b:
        logind.emit("Lock")
        assert b.wait_event(5) is LockEvent.LOCKED
        assert b.is_locked() is True  # LockedHint is false, but the Lock signal said so
        b.unlock()
        assert b.wait_event(5) is LockEvent.UNLOCKED
        assert "Unlock signal only" in b.confirmed_by
        assert b.is_locked() is False


def test_unlock_not_confirmed_is_a_failed_unlock_and_retried(logind: LogindMock) -> None:
    """The lock screen keeps LockedHint true whatever Unlock says (GNOME's screen-time limit
    locks again at once; or the call reached no lock screen): the watcher must not report
    an unlock. It reports a failed unlock and tries again on its duty cycle; the password
    (LockedHint false) still ends the lock."""
    with logind.backend() as b:
        watcher = make_watcher(b, lambda _stop: AuthStatus.OK, confirm_timeout=0.3,
                               max_attempts=2)
        run = Run(watcher)
        run.wait_state(WatcherState.IDLE)
        logind.set_locked_hint(True)  # the lock screen locked (on its own, say when idle)
        run.wait_state(WatcherState.PAUSED, timeout=30)
        assert WatcherState.UNLOCKED not in [e.state for e in run.events]
        failed = [e for e in run.events if e.state == WatcherState.ERROR]
        assert len(failed) == 2 and all(e.status == AuthStatus.UNLOCK_FAILED for e in failed)
        assert "still locked" in failed[0].detail
        assert len(logind.method_calls("Unlock")) == 2
        logind.set_locked_hint(False)  # the password
        run.join(10)
    assert run.states()[-1] == "idle"


def test_session_by_id_via_the_template_manager(logind: LogindMock) -> None:
    with LogindBackend(logind.address, session_id=SESSION_ID) as b:
        assert b.session_path == logind.session_path


# ------------------------------------------------------------------------- real attempts


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory, clips_dir: Path) -> EnrolledClips:
    return EnrolledClips(tmp_path_factory.mktemp("dbusmock"), clips_dir)


@pytest.mark.slow
def test_enrolled_face_unlocks_the_dbusmock_session(
    logind: LogindMock, enrolled: EnrolledClips, tmp_path: Path
) -> None:
    attempt = AuthAttempt(
        enrolled.store, "alice", watcher_config(), str(enrolled.genuine), state_dir=tmp_path
    )
    with logind.backend() as b:
        run = Run(make_watcher(b, attempt))
        run.wait_state(WatcherState.IDLE)
        assert logind.method_calls("Unlock") == []
        logind.emit("Lock")
        run.join(60)
    assert attempt.result is not None and attempt.result.status == AuthStatus.OK
    assert run.states()[-2:] == ["authenticating", "unlocked"]
    assert len(logind.method_calls("Unlock")) == 1


@pytest.mark.slow
def test_impostor_does_not_unlock_the_dbusmock_session(
    logind: LogindMock, enrolled: EnrolledClips, tmp_path: Path
) -> None:
    attempt = AuthAttempt(
        enrolled.store, "alice", watcher_config(), str(enrolled.impostor), state_dir=tmp_path
    )
    with logind.backend() as b:
        run = Run(make_watcher(b, attempt, max_attempts=2))
        run.wait_state(WatcherState.IDLE)
        logind.emit("Lock")
        run.wait_state(WatcherState.PAUSED, timeout=120)
        time.sleep(0.3)
        assert logind.method_calls("Unlock") == []
        logind.emit("Unlock")  # the user typed the password: logind says so, no Unlock() call
        run.join(10)
    statuses = [e.status for e in run.events if e.status is not None]
    assert statuses == [AuthStatus.NO_MATCH, AuthStatus.NO_MATCH], run.states()
    assert run.states()[-1] == "idle"
    assert logind.method_calls("Unlock") == []


# ------------------------------------------------------------------------- KDE


class Kde:
    """A session bus with the kscreenlocker stand-in (``fake_screensaver.py --kind kde``),
    driven by and reporting to the dbusmock logind."""

    def __init__(self, logind: LogindMock) -> None:
        self.logind = logind
        self.bus = fs.start_bus(logind.bus.root, "session")
        self.address: str = self.bus.address
        fs.start_standin(self.bus, "kde", system=logind.address,
                         session_path=logind.session_path)

    def locked(self) -> bool:
        addr = DBusAddress("/org/freedesktop/ScreenSaver", "org.freedesktop.ScreenSaver",
                           "org.freedesktop.ScreenSaver")
        return bool(fs.call(self.address, addr, "GetActive")[0])

    def lock(self) -> None:  # Meta+L: KDE locks on its own, and sets LockedHint
        fs.control(self.address, "kde", "Lock")

    def password_unlock(self) -> None:
        fs.control(self.address, "kde", "PasswordUnlock")

    def set_active_false_calls(self) -> list[tuple[str, str]]:
        return [c for c in fs.calls(self.address, "kde") if c == ("SetActive", "(False,)")]

    def close(self) -> None:
        self.bus.close()


@pytest.fixture()
def kde(logind: LogindMock) -> Iterator[Kde]:
    k = Kde(logind)
    try:
        yield k
    finally:
        k.close()


def test_kde_ignores_set_active_false_but_honours_logind(
    logind: LogindMock, kde: Kde
) -> None:
    """The stand-in behaves as kscreenlocker's sources say, and the backend sees it: a false
    reply to SetActive(false) is a refusal; logind's Unlock unlocks, confirmed by GetActive
    and LockedHint."""
    with detect_backend("freedesktop", session_bus=kde.address, system_bus=logind.address,
                        session_id=SESSION_ID) as b:
        assert b.unlock_methods() == [
            "logind Session.Unlock", "org.freedesktop.ScreenSaver.SetActive(false)"
        ]
        kde.lock()
        assert b.wait_event(5) is LockEvent.LOCKED
        assert logind.locked_hint() is True  # kscreenlocker sets it
        with pytest.raises(WatcherError, match=r"refused .*SetActive.*returned false"):
            b.unlock("org.freedesktop.ScreenSaver.SetActive(false)")
        assert b.wait_event(0.5) is None
        assert kde.locked() is True and b.is_locked() is True
        b.unlock("logind Session.Unlock")
        assert b.wait_event(5) is LockEvent.UNLOCKED
        assert kde.locked() is False and logind.locked_hint() is False
    assert len(logind.method_calls("Unlock")) == 1


def test_watcher_unlocks_kde_through_logind(logind: LogindMock, kde: Kde) -> None:
    with detect_backend("auto", session_bus=kde.address, system_bus=logind.address,
                        session_id=SESSION_ID) as b:
        assert b.name == "freedesktop"
        run = Run(make_watcher(b, lambda _stop: AuthStatus.OK))
        run.wait_state(WatcherState.IDLE)
        logind.call(logind.session_path, SESSION_IFACE, "Lock")  # loginctl lock-session
        run.join(30)
    assert run.states()[-2:] == ["authenticating", "unlocked"]
    assert "via logind Session.Unlock" in run.events[-1].detail
    assert kde.locked() is False and logind.locked_hint() is False
    assert kde.set_active_false_calls() == []


def test_kde_without_logind_is_a_failed_unlock_not_a_silent_one(
    logind: LogindMock, kde: Kde, tmp_path: Path
) -> None:
    """No logind session to go through (none on this bus): SetActive(false) is all there is,
    KDE ignores it, and the watcher says so (UNLOCK_FAILED, retried) instead of reporting an
    unlock; the password still ends the lock."""
    no_logind = fs.start_bus(tmp_path, "empty")
    try:
        with detect_backend("freedesktop", session_bus=kde.address,
                            system_bus=no_logind.address) as b:
            assert b.unlock_methods() == ["org.freedesktop.ScreenSaver.SetActive(false)"]
            run = Run(make_watcher(b, lambda _stop: AuthStatus.OK, max_attempts=2,
                                   confirm_timeout=0.2))
            run.wait_state(WatcherState.IDLE)
            kde.lock()
            run.wait_state(WatcherState.PAUSED, timeout=30)
            assert kde.locked() is True
            kde.password_unlock()
            run.join(10)
    finally:
        no_logind.close()
    failed = [e for e in run.events if e.state == WatcherState.ERROR]
    assert [e.status for e in failed] == [AuthStatus.UNLOCK_FAILED] * 2
    assert "refused" in failed[0].detail
    assert WatcherState.UNLOCKED not in [e.state for e in run.events]
    assert len(kde.set_active_false_calls()) == 2
    assert run.states()[-1] == "idle"
