"""The lock-screen watcher against D-Bus lock stand-ins on REAL private buses.

Each test starts two private ``dbus-daemon`` s (a "session" and a "system" bus; no service
activation) and stand-in screen lockers (``fake_screensaver.py``: org.freedesktop /
org.gnome ScreenSaver, org.freedesktop.login1) as separate processes. Nothing of our code is
mocked: the backends talk D-Bus to the stand-ins, which record the calls they get. Attempts
are either scripted (fast) or real authentications on the ../shared webcam clips (``slow``).
Skipped when ``dbus-daemon`` is missing (Debian: ``apt-get install dbus``).
"""

from __future__ import annotations

import json
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from faceunlock import cli
from faceunlock.config import save_config
from faceunlock.errors import AuthStatus, WatcherError
from faceunlock.unlock.lockstate import (
    LockEvent,
    LogindBackend,
    ScreenSaverBackend,
    camera_pointless,
    detect_backend,
    lid_closed,
)
from faceunlock.unlock.watcher import AuthAttempt, WatcherState

if shutil.which("dbus-daemon") is None:
    pytest.skip("dbus-daemon not installed (Debian: apt-get install dbus)", allow_module_level=True)


from tests.fakes import fake_screensaver as fs
from tests.fakes.clip_material import EnrolledClips, watcher_config
from tests.fakes.watcher_run import Run, make_watcher

SS = {"freedesktop": "org.freedesktop.ScreenSaver", "gnome": "org.gnome.ScreenSaver",
      "mate": "org.mate.ScreenSaver"}
UNLOCK_CALL = {"freedesktop": "SetActive", "gnome": "SetActive", "mate": "SetActive",
               "logind": "Unlock"}


class Buses:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.session = fs.start_bus(root, "session")
        self.system = fs.start_bus(root, "system")

    def bus(self, kind: str) -> object:
        return self.system if kind == "logind" else self.session

    def address(self, kind: str) -> str:
        return str(self.bus(kind).address)  # type: ignore[attr-defined]

    def start(self, kind: str, *, locked: bool = False) -> None:
        fs.start_standin(self.bus(kind), kind, locked=locked)

    def backend(self, kind: str) -> ScreenSaverBackend | LogindBackend:
        if kind == "logind":
            return LogindBackend(self.address(kind))
        return ScreenSaverBackend(SS[kind], self.address(kind))

    def lock(self, kind: str) -> None:
        fs.control(self.address(kind), kind, "Lock")

    def password_unlock(self, kind: str) -> None:
        fs.control(self.address(kind), kind, "PasswordUnlock")

    def calls(self, kind: str) -> list[str]:
        return [name for name, _ in fs.calls(self.address(kind), kind)]

    def unlock_calls(self, kind: str) -> list[tuple[str, str]]:
        return [c for c in fs.calls(self.address(kind), kind) if c[0] == UNLOCK_CALL[kind]]

    def close(self) -> None:
        self.session.close()
        self.system.close()


@pytest.fixture()
def buses() -> Iterator[Buses]:
    root = Path(tempfile.mkdtemp(prefix="fu-w-"))  # short: unix socket paths max 108 bytes
    b = Buses(root)
    try:
        yield b
    finally:
        b.close()
        shutil.rmtree(root, ignore_errors=True)


class Scripted:
    """A scripted attempt: returns ``statuses`` in turn (the last one repeats); with
    ``block`` it runs until ``should_stop`` says so (up to 10 s)."""

    def __init__(self, *statuses: AuthStatus, block: bool = False) -> None:
        self.statuses = list(statuses)
        self.block = block
        self.started: list[float] = []
        self.stopped_after: list[float] = []

    def __call__(self, should_stop: Callable[[], bool]) -> AuthStatus:
        self.started.append(time.monotonic())
        if self.block:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 10:
                if should_stop():
                    self.stopped_after.append(time.monotonic() - t0)
                    return AuthStatus.ABORTED
                time.sleep(0.01)
            return AuthStatus.TIMEOUT
        i = min(len(self.started) - 1, len(self.statuses) - 1)
        return self.statuses[i]


# ------------------------------------------------------------------------- backends


@pytest.mark.parametrize("kind", ["freedesktop", "gnome", "mate", "logind"])
def test_backend_events_and_unlock(buses: Buses, kind: str) -> None:
    buses.start(kind)
    with buses.backend(kind) as b:
        assert b.name == kind
        assert b.is_locked() is False
        t0 = time.monotonic()
        assert b.wait_event(0.2) is None
        assert time.monotonic() - t0 >= 0.19
        buses.lock(kind)
        assert b.wait_event(5) is LockEvent.LOCKED
        assert b.wait_event(0.1) is None  # logind's Lock signal + LockedHint: one event
        assert b.is_locked() is True
        b.unlock()
        assert b.wait_event(5) is LockEvent.UNLOCKED
        assert b.is_locked() is False
        buses.lock(kind)
        assert b.wait_event(5) is LockEvent.LOCKED
        buses.password_unlock(kind)
        assert b.wait_event(5) is LockEvent.UNLOCKED
    assert len(buses.unlock_calls(kind)) == 1


def test_backend_wake_interrupts_a_blocking_wait(buses: Buses) -> None:
    buses.start("freedesktop")
    with buses.backend("freedesktop") as b:
        threading.Timer(0.2, b.wake).start()
        t0 = time.monotonic()
        assert b.wait_event(None) is None
        assert time.monotonic() - t0 < 3


def test_logind_session_by_id(buses: Buses) -> None:
    buses.start("logind")
    addr = buses.address("logind")
    with LogindBackend(addr, session_id=fs.SESSION_ID) as b:
        assert b.session_path.endswith("/" + fs.SESSION_ID)
    with pytest.raises(WatcherError, match="NoSuchSession"):
        LogindBackend(addr, session_id="nope")


def test_auto_detection_order(buses: Buses) -> None:
    kw = {"session_bus": buses.session.address, "system_bus": buses.system.address}
    with pytest.raises(WatcherError, match="no lock-screen service") as ei:
        detect_backend("auto", **kw)
    assert "org.gnome.ScreenSaver" in str(ei.value) and "login1" in str(ei.value)
    buses.start("logind")
    with detect_backend("auto", **kw) as b:
        assert b.name == "logind"
    buses.start("freedesktop")
    with detect_backend("auto", **kw) as b:
        assert b.name == "freedesktop"
    buses.start("mate")  # a locker's own name before the generic freedesktop one
    with detect_backend("auto", **kw) as b:
        assert b.name == "mate"
        assert b.confirmed_by == "org.mate.ScreenSaver GetActive"
    buses.start("gnome")
    with detect_backend("auto", **kw) as b:
        assert b.name == "gnome"
    for configured in ("freedesktop", "logind", "gnome", "mate"):
        with detect_backend(configured, **kw) as b:
            assert b.name == configured


def test_mate_unlocks_with_set_active_before_logind(buses: Buses) -> None:
    """mate-screensaver acts on SetActive(false), not on logind's Unlock: SetActive comes
    first even when logind has the session (GNOME and freedesktop try logind first)."""
    kw = {"session_bus": buses.session.address, "system_bus": buses.system.address}
    buses.start("logind")
    buses.start("mate")
    with detect_backend("mate", **kw) as b:
        assert b.unlock_methods() == ["org.mate.ScreenSaver.SetActive(false)",
                                      "logind Session.Unlock"]
        buses.lock("mate")
        assert b.wait_event(5) is LockEvent.LOCKED
        b.unlock()
        assert b.wait_event(5) is LockEvent.UNLOCKED
        assert b.is_locked() is False
    assert buses.unlock_calls("mate") == [("SetActive", "(False,)")]
    assert buses.unlock_calls("logind") == []
    buses.start("freedesktop")
    with detect_backend("freedesktop", **kw) as b:
        assert b.unlock_methods()[0] == "logind Session.Unlock"


def test_configured_backend_missing(buses: Buses) -> None:
    buses.start("freedesktop")
    with pytest.raises(WatcherError, match=r"org\.gnome\.ScreenSaver has no owner"):
        detect_backend("gnome", session_bus=buses.session.address)
    with pytest.raises(WatcherError, match=r"org\.mate\.ScreenSaver has no owner"):
        detect_backend("mate", session_bus=buses.session.address)
    with pytest.raises(WatcherError, match="unknown watcher backend"):
        detect_backend("kde", session_bus=buses.session.address)


def test_no_bus_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    with pytest.raises(WatcherError, match="DBUS_SESSION_BUS_ADDRESS is not set"):
        detect_backend("freedesktop")
    missing = f"unix:path={tmp_path / 'no-bus'}"
    with pytest.raises(WatcherError) as ei:
        detect_backend("auto", system_bus=missing)
    msg = str(ei.value)
    assert "DBUS_SESSION_BUS_ADDRESS is not set" in msg and "logind" in msg and "no-bus" in msg
    with pytest.raises(WatcherError, match="cannot connect"):
        detect_backend("logind", system_bus=missing)


def test_lid_closed(tmp_path: Path) -> None:
    lid = tmp_path / "LID0"
    lid.mkdir()
    (lid / "state").write_text("state:      open\n")
    pattern = str(tmp_path / "*" / "state")
    assert lid_closed(pattern) is None
    (lid / "state").write_text("state:      closed\n")
    assert lid_closed(pattern) == str(lid / "state")
    assert lid_closed(str(tmp_path / "none" / "*")) is None


# ------------------------------------------------------------------------- watcher logic


@pytest.mark.parametrize("kind", ["freedesktop", "gnome", "mate", "logind"])
def test_lock_then_recognised_unlocks(buses: Buses, kind: str) -> None:
    buses.start(kind)
    attempt = Scripted(AuthStatus.OK)
    with buses.backend(kind) as b:
        run = Run(make_watcher(b, attempt))
        run.wait_state(WatcherState.IDLE)
        buses.lock(kind)
        run.join()
    assert len(attempt.started) == 1
    assert run.states()[-2:] == ["authenticating", "unlocked"]
    assert len(buses.unlock_calls(kind)) == 1


def test_already_locked_at_start(buses: Buses) -> None:
    buses.start("freedesktop", locked=True)
    attempt = Scripted(AuthStatus.OK)
    with buses.backend("freedesktop") as b:
        run = Run(make_watcher(b, attempt))
        run.join()
    assert run.states() == ["authenticating", "unlocked"]
    assert buses.unlock_calls("freedesktop") == [("SetActive", "(False,)")]


def test_failures_back_off_and_are_bounded(buses: Buses) -> None:
    buses.start("freedesktop")
    attempt = Scripted(AuthStatus.NO_MATCH)
    with buses.backend("freedesktop") as b:
        run = Run(make_watcher(b, attempt, max_attempts=5))
        run.wait_state(WatcherState.IDLE)
        buses.lock("freedesktop")
        run.wait_state(WatcherState.PAUSED)
        time.sleep(0.3)
        assert len(attempt.started) == 5  # no more attempts after the cap
        buses.password_unlock("freedesktop")
        run.join()
    gaps = np.diff(attempt.started)
    assert list(gaps >= [0.045, 0.095, 0.19, 0.19]) == [True] * 4, gaps  # 0.05 doubling to 0.2
    assert gaps.max() < 1.5
    assert buses.unlock_calls("freedesktop") == []
    assert run.states()[-2:] == ["paused", "idle"]
    watching = [e for e in run.events if e.state == WatcherState.WATCHING]
    assert len(watching) == 4 and all(e.status == AuthStatus.NO_MATCH for e in watching)


def test_lockout_stops_the_attempts(buses: Buses) -> None:
    buses.start("freedesktop")
    attempt = Scripted(AuthStatus.NO_MATCH, AuthStatus.LOCKED_OUT, AuthStatus.OK)
    with buses.backend("freedesktop") as b:
        run = Run(make_watcher(b, attempt))
        run.wait_state(WatcherState.IDLE)
        buses.lock("freedesktop")
        run.wait_state(WatcherState.PAUSED)
        time.sleep(0.3)
        buses.password_unlock("freedesktop")
        run.join()
    assert len(attempt.started) == 2
    paused = next(e for e in run.events if e.state == WatcherState.PAUSED)
    assert paused.status == AuthStatus.LOCKED_OUT
    assert buses.unlock_calls("freedesktop") == []


def test_no_template_is_an_error_without_retries(buses: Buses) -> None:
    buses.start("freedesktop")
    attempt = Scripted(AuthStatus.NO_TEMPLATE)
    with buses.backend("freedesktop") as b:
        run = Run(make_watcher(b, attempt))
        run.wait_state(WatcherState.IDLE)
        buses.lock("freedesktop")
        run.wait_state(WatcherState.ERROR)
        time.sleep(0.2)
        buses.password_unlock("freedesktop")
        run.join()
    assert len(attempt.started) == 1


def test_password_unlock_stops_a_running_attempt(buses: Buses) -> None:
    buses.start("freedesktop")
    attempt = Scripted(block=True)
    with buses.backend("freedesktop") as b:
        run = Run(make_watcher(b, attempt))
        run.wait_state(WatcherState.IDLE)
        buses.lock("freedesktop")
        run.wait_state(WatcherState.AUTHENTICATING)
        time.sleep(0.1)
        buses.password_unlock("freedesktop")
        run.join()
    assert len(attempt.stopped_after) == 1 and attempt.stopped_after[0] < 2
    assert run.states()[-1] == "idle"
    assert buses.unlock_calls("freedesktop") == []


def test_unlock_and_relock_during_an_attempt(buses: Buses) -> None:
    """Password unlock, then a new lock, both while an attempt runs: the attempt stops and the
    new lock gets its own attempt."""
    buses.start("freedesktop")
    blocking = Scripted(block=True)
    calls: list[str] = []

    def attempt(should_stop: Callable[[], bool]) -> AuthStatus:
        calls.append("attempt")
        return blocking(should_stop) if len(calls) == 1 else AuthStatus.OK

    with buses.backend("freedesktop") as b:
        run = Run(make_watcher(b, attempt), once=False)
        run.wait_state(WatcherState.IDLE)
        buses.lock("freedesktop")
        run.wait_state(WatcherState.AUTHENTICATING)
        buses.password_unlock("freedesktop")
        buses.lock("freedesktop")
        run.wait_state(WatcherState.UNLOCKED)
        run.watcher.stop()
        run.join()
    assert calls == ["attempt", "attempt"]
    assert len(blocking.stopped_after) == 1
    assert len(buses.unlock_calls("freedesktop")) == 1


def test_lid_closed_pauses_until_opened(buses: Buses, tmp_path: Path) -> None:
    state = tmp_path / "LID0" / "state"
    state.parent.mkdir()
    state.write_text("state:      closed\n")
    pattern = str(tmp_path / "*" / "state")
    no_drm = tmp_path / "no-drm"
    buses.start("freedesktop")
    attempt = Scripted(AuthStatus.OK)
    with buses.backend("freedesktop") as b:
        run = Run(
            make_watcher(b, attempt, lid=lambda: camera_pointless(pattern, no_drm), lid_poll=0.05)
        )
        run.wait_state(WatcherState.IDLE)
        buses.lock("freedesktop")
        run.wait_state(WatcherState.PAUSED, 3)
        assert attempt.started == []
        assert run.events[-1].detail == f"lid closed ({state}); not using the camera"
        state.write_text("state:      open\n")
        run.join()
    assert len(attempt.started) == 1
    assert len(buses.unlock_calls("freedesktop")) == 1


def test_display_off_pauses_until_on(buses: Buses, tmp_path: Path) -> None:
    """A locked session whose only connected display is off: no attempt (the camera stays
    closed), PAUSED saying why; the display comes on -> one attempt, unlocked."""
    drm = tmp_path / "drm"
    panel, hdmi = drm / "card0-eDP-1", drm / "card0-HDMI-A-1"
    for conn, status, dpms in ((panel, "connected", "Off"), (hdmi, "disconnected", "On")):
        conn.mkdir(parents=True)
        (conn / "status").write_text(status + "\n")
        (conn / "enabled").write_text("enabled\n")
        (conn / "dpms").write_text(dpms + "\n")
    no_lid = str(tmp_path / "lid" / "*" / "state")  # a desktop: no lid
    buses.start("freedesktop")
    attempt = Scripted(AuthStatus.OK)
    with buses.backend("freedesktop") as b:
        run = Run(make_watcher(b, attempt, lid=lambda: camera_pointless(no_lid, drm),
                               lid_poll=0.05))
        run.wait_state(WatcherState.IDLE)
        buses.lock("freedesktop")
        run.wait_state(WatcherState.PAUSED, 3)
        assert attempt.started == []
        assert WatcherState.AUTHENTICATING not in [e.state for e in run.events]
        paused = [e for e in run.events if e.state == WatcherState.PAUSED]
        assert {e.detail for e in paused} == {
            "display off (card0-eDP-1: dpms Off); not using the camera"
        }
        assert all(e.status is None and e.attempt == 0 for e in paused)
        (panel / "dpms").write_text("On\n")
        run.join()
    assert len(attempt.started) == 1
    assert run.states()[-2:] == ["authenticating", "unlocked"]
    assert len(buses.unlock_calls("freedesktop")) == 1


def test_idle_uses_no_cpu_and_stop_is_prompt(buses: Buses) -> None:
    buses.start("freedesktop")
    attempt = Scripted(AuthStatus.OK)
    with buses.backend("freedesktop") as b:
        run = Run(make_watcher(b, attempt), once=False)
        run.wait_state(WatcherState.IDLE)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(1.0)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        assert cpu < 0.1, f"{cpu:.3f} s of CPU in 1 s idle"
        t0 = time.monotonic()
        run.watcher.stop()
        run.join(3)
        assert time.monotonic() - t0 < 1
    assert attempt.started == []


def test_lost_bus_is_reported(buses: Buses) -> None:
    buses.start("freedesktop")
    with buses.backend("freedesktop") as b:
        run = Run(make_watcher(b, Scripted(AuthStatus.OK)), once=False)
        run.wait_state(WatcherState.IDLE)
        buses.session.close()
        with pytest.raises(WatcherError, match="lost the D-Bus connection"):
            run.join()
    assert run.states()[-1] == "error"


def test_watch_without_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FACEUNLOCK_CONFIG", str(tmp_path / "c.toml"))
    rc = cli.main(["watch", "--user", "nobody-enrolled", "--backend", "freedesktop"])
    assert rc == AuthStatus.NO_TEMPLATE
    assert "enrol first" in capsys.readouterr().err


# ------------------------------------------------------------------------- real attempts


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory, clips_dir: Path) -> EnrolledClips:
    return EnrolledClips(tmp_path_factory.mktemp("watch"), clips_dir)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["freedesktop", "gnome", "logind"])
def test_enrolled_face_unlocks(
    buses: Buses, enrolled: EnrolledClips, tmp_path: Path, kind: str
) -> None:
    buses.start(kind)
    attempt = AuthAttempt(
        enrolled.store, "alice", watcher_config(), str(enrolled.genuine), state_dir=tmp_path
    )
    with buses.backend(kind) as b:
        run = Run(make_watcher(b, attempt))
        run.wait_state(WatcherState.IDLE)
        buses.lock(kind)
        run.join(60)
    assert attempt.result is not None and attempt.result.status == AuthStatus.OK
    assert run.states()[-2:] == ["authenticating", "unlocked"]
    assert len(buses.unlock_calls(kind)) == 1


@pytest.mark.slow
def test_impostor_never_unlocks_and_locks_out(
    buses: Buses, enrolled: EnrolledClips, tmp_path: Path
) -> None:
    buses.start("freedesktop")
    cfg = watcher_config(**{"auth.max_failures": "2", "auth.lockout_seconds": "600"})
    attempt = AuthAttempt(enrolled.store, "alice", cfg, str(enrolled.impostor), state_dir=tmp_path)
    statuses: list[AuthStatus | None] = []
    with buses.backend("freedesktop") as b:
        run = Run(make_watcher(b, attempt))
        run.wait_state(WatcherState.IDLE)
        buses.lock("freedesktop")
        run.wait_state(WatcherState.PAUSED, timeout=120)
        time.sleep(0.3)
        statuses = [e.status for e in run.events if e.status is not None]
        attempts = run.watcher.attempts
        buses.password_unlock("freedesktop")
        run.join()
    assert statuses == [AuthStatus.NO_MATCH, AuthStatus.NO_MATCH, AuthStatus.LOCKED_OUT]
    assert attempts == 3
    assert buses.unlock_calls("freedesktop") == []
    assert "password" in run.events[-2].detail


@pytest.mark.slow
def test_watch_cli_once_json(
    buses: Buses,
    enrolled: EnrolledClips,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``faceunlock watch --once --json`` end to end (the key store is a static key: the CLI's
    default keyring store is swapped for the enrolled one)."""
    buses.start("freedesktop")
    monkeypatch.setenv("FACEUNLOCK_CONFIG", str(save_config(watcher_config(), tmp_path / "c.toml")))
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", buses.session.address)
    monkeypatch.setattr(cli, "_store", lambda: enrolled.store)
    addr = buses.session.address

    def driver() -> None:  # lock once the watcher listens; password-unlock if it hangs
        try:
            fs.wait_until(lambda: "GetActive" in buses.calls("freedesktop"), "the watcher", 60)
            buses.lock("freedesktop")
            fs.wait_until(lambda: buses.unlock_calls("freedesktop"), "the unlock call", 60)
        except AssertionError:
            fs.control(addr, "freedesktop", "PasswordUnlock")

    t = threading.Thread(target=driver, daemon=True)
    t.start()
    argv = ["watch", "--user", "alice", "--backend", "freedesktop"]
    rc = cli.main([*argv, "--source", str(enrolled.genuine), "--once", "--json"])
    t.join(5)
    out = capsys.readouterr().out
    events = [json.loads(line) for line in out.splitlines()]
    assert rc == 0, out
    assert [e["event"] for e in events] == ["idle", "authenticating", "unlocked"]
    assert buses.unlock_calls("freedesktop") == [("SetActive", "(False,)")]
