"""Failure notices: plain words for each failure that matters (from the real exceptions'
messages), the repeat limit, and the fallback when no notification service answers (on a
REAL private bus with nobody owning org.freedesktop.Notifications, and with no bus at all).
The Notify call itself is checked against python-dbusmock in tests/ui/test_ui_notify.py."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from faceunlock.errors import (
    AuthStatus,
    CameraBusyError,
    CameraError,
    CameraNotFoundError,
    CameraPermissionError,
    NoUsableFramesError,
    WatcherError,
)
from faceunlock.unlock.notify import (
    CRITICAL,
    Notice,
    Notifier,
    RateLimiter,
    notice_for,
    send_notification,
    watcher_stopped_notice,
)

PASSWORD = "Type your password to unlock."


from tests.fakes import fake_screensaver as fs  # noqa: E402


@pytest.mark.parametrize(
    ("error", "kind", "body"),
    [
        (
            CameraBusyError("/dev/video0", "cheese pid 4242"),
            "camera-busy",
            f"The camera is busy — another app is using it. {PASSWORD}",
        ),
        (
            CameraNotFoundError("/dev/video0"),
            "camera-missing",
            f"No camera was found — is it plugged in? {PASSWORD}",
        ),
        (CameraPermissionError("/dev/video0"), "camera-permission", None),
        (NoUsableFramesError("/dev/video0", 30), "camera-blank", None),
        (CameraError("camera /dev/video0: OpenCV could not start"), "camera-error", None),
    ],
)
def test_camera_problems_in_plain_words(error: CameraError, kind: str, body: str | None) -> None:
    # the watcher's detail is the attempt's message, with its own suffix
    n = notice_for(AuthStatus.CAMERA_ERROR, f"{error}; next attempt in 2 s")
    assert n is not None
    assert n.kind == kind
    assert n.summary.startswith("Face unlock")
    assert n.body.endswith(PASSWORD)
    if body is not None:
        assert n.body == body
    assert "/dev/video" not in n.body and "Error" not in n.body  # no jargon


def test_other_failures_that_matter() -> None:
    locked = notice_for(AuthStatus.LOCKED_OUT, "Face unlock paused for 60 s")
    assert locked is not None and locked.kind == "locked-out"
    assert "too many times" in locked.body and PASSWORD in locked.body
    model = notice_for(AuthStatus.MODEL_ERROR, "model file x: sha256 mismatch")
    assert model is not None and model.urgency == CRITICAL and "Reinstalling" in model.body
    tmpl = notice_for(AuthStatus.TEMPLATE_ERROR, "template file x: bad magic")
    assert tmpl is not None and tmpl.kind == "template-error" and "Re-enrol" in tmpl.body
    none = notice_for(AuthStatus.NO_TEMPLATE, "no face template")
    assert none is not None and none.kind == "no-template"
    failed = notice_for(AuthStatus.UNLOCK_FAILED, "face recognised, but the lock screen ...")
    assert failed is not None and failed.kind == "unlock-failed"
    assert "recognised" in failed.body and PASSWORD in failed.body


@pytest.mark.parametrize(
    "status",
    [
        None,
        AuthStatus.OK,
        AuthStatus.NO_MATCH,
        AuthStatus.TIMEOUT,
        AuthStatus.TOO_DARK,
        AuthStatus.LID_CLOSED,
        AuthStatus.ABORTED,
    ],
)
def test_ordinary_outcomes_need_no_notice(status: AuthStatus | None) -> None:
    assert notice_for(status, "whatever") is None


def test_watcher_stopped_notice() -> None:
    n = watcher_stopped_notice("no lock-screen service to watch.")
    assert n.body == "No lock-screen service to watch. Your password still works."
    assert n.urgency == CRITICAL


def test_rate_limiter_lets_a_kind_through_once_per_interval() -> None:
    now = [1000.0]
    lim = RateLimiter(300.0, clock=lambda: now[0])
    assert lim.allow("camera-busy")
    assert not lim.allow("camera-busy")
    assert lim.allow("locked-out")  # another kind is not held back
    now[0] += 299.0
    assert not lim.allow("camera-busy")
    now[0] += 1.0
    assert lim.allow("camera-busy")
    assert not lim.allow("camera-busy")
    lim.forget("camera-busy")
    assert lim.allow("camera-busy")
    lim.forget()
    assert lim.allow("locked-out")


@pytest.fixture()
def bare_bus() -> Iterator[str]:
    """A private session bus on which nobody owns org.freedesktop.Notifications."""
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon not installed (Debian: apt-get install dbus)")
    root = Path(tempfile.mkdtemp(prefix="fu-nb-"))  # short: unix socket paths max 108 bytes
    bus = fs.start_bus(root, "session")
    try:
        yield bus.address
    finally:
        bus.close()
        shutil.rmtree(root, ignore_errors=True)


def test_no_service_on_the_bus_uses_the_fallback(bare_bus: str) -> None:
    with pytest.raises(WatcherError, match="Notify failed"):
        send_notification("s", "b", address=bare_bus)
    now = [0.0]
    got: list[Notice] = []
    n = Notifier(address=bare_bus, fallback=got.append, clock=lambda: now[0])
    busy = notice_for(AuthStatus.CAMERA_ERROR, str(CameraBusyError("/dev/video0")))
    assert busy is not None
    assert n.notify(busy)
    assert got == [busy]
    assert not n.notify(busy)  # a repeat within the interval: not shown at all
    assert got == [busy] and n.shown == [busy]
    now[0] += 301.0
    assert n.notify(busy)
    assert len(got) == 2


def test_no_bus_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    n = Notifier()
    assert not n.notify(watcher_stopped_notice("stopped"))  # nowhere to show it
    got: list[Notice] = []
    n2 = Notifier(fallback=got.append)
    assert n2.notify(watcher_stopped_notice("stopped"))
    assert [x.kind for x in got] == ["watcher-stopped"]
