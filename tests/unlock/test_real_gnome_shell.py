"""The real ``faceunlock watch`` against a REAL GNOME Shell lock screen (headless).

GNOME Shell 43 (Debian's ``gnome-shell`` and ``gjs``) runs headless on a private session bus,
with logind on a private system bus: python-dbusmock's template, and in a second variant the
real ``/lib/systemd/systemd-logind`` (tests/fakes/real_shell.py has the stack, and
../shared/notes/real-lockscreen.md the recipe). The watcher is the CLI, run as its own
process (``python -m faceunlock watch --json``), with alice's template in its data folder,
the template key in a real Secret Service (gnome-keyring) on that session bus, and its camera
chosen by its config file (``camera.source``: a folder of webcam frames, re-read at every
attempt). For each way to lock (``org.gnome.ScreenSaver.Lock``, logind's ``Session.Lock``):

* the impostor's frames: the attempt runs, fails, and the shell stays locked: ``GetActive``
  true and a screenshot without the top bar;
* then alice's frames: the next attempt unlocks the real shell: ``GetActive`` false and a
  screenshot with the top bar's "Activities" button back.

Screenshots of both states are kept in each test's tmp dir. A last test unlocks the shell with
``SetActive(false)`` alone: the watcher finds no logind (its system bus is empty).

Skipped, with the reason, when the Debian packages are missing (``bash scripts/setup.sh
--dev`` installs them; CI runs it) or when not root (logind needs a private mount namespace).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import real_shell

pytestmark = pytest.mark.slow

_REASON = real_shell.missing()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

from tests.fakes import fake_screensaver as fs  # noqa: E402
from tests.fakes.clip_material import EnrolledClips  # noqa: E402
from tests.fakes.watch_cli import Watch, install_user  # noqa: E402

#: seconds: generous, the CPU is shared (the shell starts in 2-10 s, an attempt takes 1-5 s);
#: a start that takes longer is retried once
READY = 120.0
UNLOCK = 90.0


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory, clips_dir: Path) -> EnrolledClips:
    return EnrolledClips(tmp_path_factory.mktemp("shell-enrol"), clips_dir)


def _start_desktop(kind: str, enrolled: EnrolledClips) -> real_shell.Desktop:
    reason = real_shell.missing(real_logind=kind == "real")
    if reason:
        pytest.skip(reason)
    try:
        d = real_shell.Desktop(kind, ready_timeout=READY)
    except RuntimeError as e:  # seen once in ~20 starts: a D-Bus-activated helper hung
        first = str(e).splitlines()[0]
        warnings.warn(f"the GNOME Shell stack did not start ({first}); starting it again",
                      stacklevel=1)
        d = real_shell.Desktop(kind, ready_timeout=READY)
    try:
        install_user(d.session_env, enrolled)
    except BaseException:
        d.close()
        d.remove()
        raise
    return d


@pytest.fixture(scope="module", params=["mock", "real"], ids=["dbusmock-logind", "real-logind"])
def desktop(request: pytest.FixtureRequest, enrolled: EnrolledClips
            ) -> Iterator[real_shell.Desktop]:
    d = _start_desktop(request.param, enrolled)
    try:
        yield d
    finally:
        d.close()
        d.remove()


@pytest.fixture(scope="module")
def watch(desktop: real_shell.Desktop, enrolled: EnrolledClips,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watch]:
    root = tmp_path_factory.mktemp(f"watch-{desktop.kind}")
    w = Watch(desktop.session_env, root / "config.toml", root / "watch.log")
    w.use_source(enrolled.impostor)
    desktop.main_watch = w  # type: ignore[attr-defined]
    try:
        w.wait_for(lambda evs: any(e["event"] == "idle" for e in evs), "the watcher to start",
                   READY)
        yield w
    finally:
        w.stop()


def _locked_screenshot(desktop: real_shell.Desktop, path: Path) -> Path:
    """The lock screen, woken from its fade to black (the clock shows)."""
    desktop.wake()
    deadline = time.monotonic() + 20
    while True:
        shot = desktop.screenshot(path)
        if real_shell.mean_brightness(shot) > 10 or time.monotonic() > deadline:
            return shot
        time.sleep(0.2)


def _unlocked_screenshot(desktop: real_shell.Desktop, path: Path) -> Path:
    """The desktop once the top bar is drawn again (polled: the unlock animates)."""
    deadline = time.monotonic() + 30
    while True:
        shot = desktop.screenshot(path)
        if real_shell.top_bar_visible(shot) or time.monotonic() > deadline:
            return shot
        time.sleep(0.2)


def test_set_active_false_unlocks_the_real_shell_without_logind(
    desktop: real_shell.Desktop, enrolled: EnrolledClips, tmp_path: Path
) -> None:
    """GNOME's own unlock call, for a watcher that cannot reach logind: its system bus is an
    empty private bus. Runs before the module's watcher starts (it is the only watcher)."""
    assert getattr(desktop, "main_watch", None) is None, "another watcher would race this one"
    empty = fs.start_bus(tmp_path, "empty")
    w = Watch(desktop.session_env, tmp_path / "config.toml", tmp_path / "watch.log",
              env={"DBUS_SYSTEM_BUS_ADDRESS": empty.address}, args=("--once",))
    try:
        w.use_source(enrolled.genuine)
        w.wait_for(lambda evs: any(e["event"] == "idle" for e in evs),
                   "the second watcher to start", READY)
        desktop.wait_locked(False)
        desktop.lock_gnome()
        evs = w.wait_for(lambda evs: any(e["event"] == "unlocked" for e in evs),
                         "the unlock through SetActive(false)")
        detail = next(e for e in evs if e["event"] == "unlocked")["detail"]
        assert "via org.gnome.ScreenSaver.SetActive(false)" in detail
        desktop.wait_locked(False, 10)
        assert desktop.locked_hint() is False
        shot = _unlocked_screenshot(desktop, tmp_path / "unlocked.png")
        assert real_shell.top_bar_visible(shot)
        assert w.proc.wait(30) == 0, w.describe()  # --once: one lock, then done
    finally:
        w.stop()
        empty.close()


@pytest.mark.parametrize("how", ["gnome-screensaver-lock", "logind-lock"])
def test_impostor_stays_locked_then_the_owner_unlocks(
    desktop: real_shell.Desktop, watch: Watch, enrolled: EnrolledClips, how: str,
    tmp_path: Path
) -> None:
    watch.use_source(enrolled.impostor)
    desktop.wait_locked(False)
    start = len(watch.snapshot())
    if how == "gnome-screensaver-lock":
        desktop.lock_gnome()
    else:
        desktop.lock_logind()
    desktop.wait_locked(True)

    def new(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return evs[start:]

    # the impostor: an attempt runs and fails; the shell stays locked
    evs = watch.wait_for(
        lambda evs: any(e["event"] == "watching" and e["status"] == "no_match"
                        for e in new(evs)),
        "the impostor's attempt to fail")
    assert not any(e["event"] == "unlocked" for e in new(evs)), watch.describe()
    assert desktop.shell_locked() is True
    assert desktop.locked_hint() is True  # the shell sets it
    locked = _locked_screenshot(desktop, tmp_path / "locked.png")
    assert not real_shell.top_bar_visible(locked), f"the top bar shows while locked: {locked}"
    assert desktop.shell_locked() is True

    # the owner: the next attempt (the watcher's retry) unlocks the real shell
    watch.use_source(enrolled.genuine)
    evs = watch.wait_for(lambda evs: any(e["event"] == "unlocked" for e in new(evs)),
                         "the owner's attempt to unlock")
    unlocked_ev = next(e for e in new(evs) if e["event"] == "unlocked")
    assert "via logind Session.Unlock" in unlocked_ev["detail"], unlocked_ev
    assert "org.gnome.Shell.ScreenShield GetActive" in unlocked_ev["detail"], unlocked_ev
    assert desktop.shell_locked() is False
    assert desktop.locked_hint() is False
    unlocked = _unlocked_screenshot(desktop, tmp_path / "unlocked.png")
    assert real_shell.top_bar_visible(unlocked), f"no top bar after the unlock: {unlocked}"
    assert not any(e["event"] == "error" for e in new(evs)), watch.describe()
