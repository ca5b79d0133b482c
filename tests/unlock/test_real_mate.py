"""The real ``faceunlock watch`` against a REAL MATE lock screen (mate-screensaver, headless).

Debian's ``mate-screensaver`` runs under ``Xvfb`` on a private session bus
(tests/fakes/real_mate.py has the stack). The watcher is the CLI, run as its own process
(``python -m faceunlock watch --json``, backend ``auto``: it must find ``org.mate.ScreenSaver``
by itself), with alice's template in its data folder, the template key in a real Secret
Service (gnome-keyring) on that session bus, and its camera chosen by its config file
(``camera.source``: a folder of webcam frames, re-read at every attempt). The screen is locked
with ``mate-screensaver-command --lock``:

* the impostor's frames: the attempt runs, fails, and the screen stays locked: ``GetActive``
  true, and the screen is mate-screensaver's black lock window over the white root window;
* then alice's frames: the next attempt unlocks: the watcher's ``SetActive(false)``, confirmed
  by ``GetActive`` false, and the white root window is back on screen.

Screenshots (from Xvfb's framebuffer) of both states and the watcher's events
(``events.json``) are kept in the test's tmp dir.
Skipped, with the reason, when the Debian packages are missing (``bash scripts/setup.sh
--dev`` installs them; CI runs it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes import real_mate

pytestmark = pytest.mark.slow

_REASON = real_mate.missing()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

from tests.fakes.clip_material import EnrolledClips  # noqa: E402
from tests.fakes.watch_cli import Watch, install_user  # noqa: E402

#: seconds: generous, the CPU is shared (an attempt takes 1-5 s, a retry comes 2-30 s later)
READY = 120.0
UNLOCK = 90.0
#: mean screenshot brightness: the white root window (Xvfb -wr) vs the black lock window
WHITE, BLACK = 200.0, 10.0


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory, clips_dir: Path) -> EnrolledClips:
    return EnrolledClips(tmp_path_factory.mktemp("mate-enrol"), clips_dir)


@pytest.fixture()
def desktop(enrolled: EnrolledClips) -> Iterator[real_mate.MateDesktop]:
    d = real_mate.MateDesktop(ready_timeout=READY)
    try:
        install_user(d.session_env, enrolled)
        yield d
    finally:
        d.close()
        d.remove()


def _screen(desktop: real_mate.MateDesktop, path: Path, want: Callable[[float], bool]
            ) -> tuple[Path, float]:
    """A screenshot once its brightness is as wanted (polled: the lock window fades), or the
    last one after 20 s."""
    deadline = time.monotonic() + 20
    while True:
        shot = desktop.screenshot(path)
        level = real_mate.mean_brightness(shot)
        if want(level) or time.monotonic() > deadline:
            return shot, level
        time.sleep(0.2)


def test_impostor_stays_locked_then_the_owner_unlocks_mate(
    desktop: real_mate.MateDesktop, enrolled: EnrolledClips, tmp_path: Path
) -> None:
    _, level = _screen(desktop, tmp_path / "before.png", lambda v: v > WHITE)
    assert level > WHITE, f"the unlocked screen is not the white root window ({level:.1f})"
    watch = Watch(desktop.session_env, tmp_path / "config.toml", tmp_path / "watch.log")
    try:
        watch.use_source(enrolled.impostor)
        watch.wait_for(lambda evs: any(e["event"] == "idle" for e in evs),
                       "the watcher to start", READY)
        desktop.lock()
        desktop.wait_locked(True)

        # the impostor: an attempt runs and fails; the screen stays locked
        evs = watch.wait_for(
            lambda evs: any(e["event"] == "watching" and e["status"] == "no_match"
                            for e in evs),
            "the impostor's attempt to fail")
        assert not any(e["event"] == "unlocked" for e in evs), watch.describe()
        assert desktop.locked() is True
        locked, level = _screen(desktop, tmp_path / "locked.png", lambda v: v < BLACK)
        assert level < BLACK, f"the lock window does not cover the screen: {locked} ({level})"
        assert desktop.locked() is True

        # the owner: the next attempt (the watcher's retry) unlocks mate-screensaver
        watch.use_source(enrolled.genuine)
        evs = watch.wait_for(lambda evs: any(e["event"] == "unlocked" for e in evs),
                             "the owner's attempt to unlock")
        detail = next(e for e in evs if e["event"] == "unlocked")["detail"]
        assert "via org.mate.ScreenSaver.SetActive(false)" in detail, detail
        assert "org.mate.ScreenSaver GetActive" in detail, detail
        assert desktop.locked() is False
        unlocked, level = _screen(desktop, tmp_path / "unlocked.png", lambda v: v > WHITE)
        assert level > WHITE, f"the lock window is still shown: {unlocked} ({level:.1f})"
        assert not any(e["event"] == "error" for e in evs), watch.describe()
    finally:
        watch.stop()
        (tmp_path / "events.json").write_text(json.dumps(watch.snapshot(), indent=1))
