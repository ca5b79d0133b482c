"""The real ``faceunlock watch`` against a REAL MATE lock screen (mate-screensaver, headless).

Debian's ``mate-screensaver`` runs under ``Xvfb`` on a private session bus
(tests/unlock/real_mate.py has the stack). The watcher is the CLI, run as its own process
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

import base64
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import real_mate  # tests/unlock is on pytest's pythonpath

pytestmark = pytest.mark.slow

_REASON = real_mate.missing()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

from clip_material import EnrolledClips, watcher_config  # noqa: E402

from faceunlock.config import save_config  # noqa: E402

USER = "alice"
REPO = Path(__file__).resolve().parents[2]
#: seconds: generous, the CPU is shared (an attempt takes 1-5 s, a retry comes 2-30 s later)
READY = 120.0
UNLOCK = 90.0
#: mean screenshot brightness: the white root window (Xvfb -wr) vs the black lock window
WHITE, BLACK = 200.0, 10.0


def install_user(desktop: real_mate.MateDesktop, enrolled: EnrolledClips) -> None:
    """alice's template into the session's data folder, its key into the session's keyring
    (through ``keyring``, as the CLI reads it)."""
    data = Path(desktop.session_env["XDG_DATA_HOME"]) / "faceunlock"
    data.mkdir(parents=True, mode=0o700)
    shutil.copy2(enrolled.store.path(USER), data / f"{USER}.tpl")
    code = (
        "import keyring, sys; keyring.set_password('faceunlock', sys.argv[1], sys.argv[2]); "
        "assert keyring.get_password('faceunlock', sys.argv[1]) == sys.argv[2]"
    )
    key = base64.b64encode(enrolled.key).decode()
    r = subprocess.run([sys.executable, "-c", code, USER, key], env=desktop.session_env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"cannot store the key in gnome-keyring: {r.stderr}"


class Watch:
    """``python -m faceunlock watch --json`` as its own process in the desktop's session."""

    def __init__(self, desktop: real_mate.MateDesktop, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        env = {**desktop.session_env, "FACEUNLOCK_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faceunlock", "watch", "--user", USER, "--json"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=open(log, "wb"),  # noqa: SIM115
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.events.append(ev)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def describe(self) -> str:
        err = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        return f"watcher events {self.snapshot()}\nwatcher stderr:\n{err}"

    def wait_for(self, cond: Callable[[list[dict[str, Any]]], bool], what: str,
                 timeout: float = UNLOCK) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            evs = self.snapshot()
            if cond(evs):
                return evs
            if self.proc.poll() is not None:
                time.sleep(0.2)  # the last lines
                evs = self.snapshot()
                if cond(evs):
                    return evs
                raise AssertionError(f"the watcher exited ({self.proc.returncode}) before "
                                     f"{what}\n{self.describe()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.describe()}")
            time.sleep(0.05)

    def use_source(self, folder: Path) -> None:
        """The camera of the next attempt (the watcher re-reads its config every attempt)."""
        save_config(watcher_config(**{"camera.source": str(folder)}), self.config)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory, clips_dir: Path) -> EnrolledClips:
    return EnrolledClips(tmp_path_factory.mktemp("mate-enrol"), clips_dir)


@pytest.fixture()
def desktop(enrolled: EnrolledClips) -> Iterator[real_mate.MateDesktop]:
    d = real_mate.MateDesktop(ready_timeout=READY)
    try:
        install_user(d, enrolled)
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
    watch = Watch(desktop, tmp_path / "config.toml", tmp_path / "watch.log")
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
