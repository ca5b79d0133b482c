"""One app per user: a second launch while the app runs brings the running app's window to the
front, says which, and exits 0. Two real ``python -m faceunlock`` processes under offscreen Qt,
with a throw-away HOME and XDG folders."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from faceunlock.engine import service
from faceunlock.engine.templates import Anchor, StaticKeyProvider, Template, TemplateStore
from faceunlock.paths import user_data_dir

pytestmark = pytest.mark.slow


def _env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    run = tmp_path / "run"
    sock = tmp_path / "sock"  # Qt's local sockets live in TMPDIR
    for d in (home, sock):
        d.mkdir(exist_ok=True)
    run.mkdir(mode=0o700, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACEUNLOCK_", "XDG_"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_RUNTIME_DIR=str(run),
        TMPDIR=str(sock),
        QT_QPA_PLATFORM="offscreen",
        DBUS_SESSION_BUS_ADDRESS=f"unix:path={run / 'no-bus'}",
        FACEUNLOCK_INSTANCE=f"fu-si-{uuid.uuid4().hex[:10]}",
    )
    return env


def _second_launch_while_running(tmp_path: Path, env: dict[str, str]) -> str:
    """Start the app, wait until it listens, launch it again: the second launch's output."""
    sock = Path(env["TMPDIR"]) / env["FACEUNLOCK_INSTANCE"]
    log = tmp_path / "first.log"
    with log.open("wb") as out:
        first = subprocess.Popen([sys.executable, "-m", "faceunlock"], env=env, stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not sock.exists():
            assert first.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the first app never listened"
            time.sleep(0.1)
        t0 = time.monotonic()
        second = subprocess.run([sys.executable, "-m", "faceunlock"], env=env,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr[-3000:]
        assert first.poll() is None, "the running app exited"
        # the second launch did not start a window of its own: it answered and left
        assert time.monotonic() - t0 < 60
        again = subprocess.run([sys.executable, "-m", "faceunlock", "--camera", "0"], env=env,
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "--camera applies to a new start only" in again.stdout
        return second.stdout
    finally:
        first.terminate()
        first.wait(30)


def test_a_second_launch_brings_the_wizard_to_the_front(tmp_path: Path) -> None:
    out = _second_launch_while_running(tmp_path, _env(tmp_path))
    assert out.strip() == (
        "faceunlock: FaceUnlock is already running: its window “FaceUnlock: enrol your face” "
        "is now in front."
    )


def test_a_second_launch_opens_the_trays_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Enrolled, the app is the tray icon: a second launch opens its Settings (the app's
    window when no other is open)."""
    env = _env(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", env["XDG_DATA_HOME"])
    # a template where the app looks for it (the tray reads none until a test is asked for)
    store = TemplateStore(user_data_dir(), StaticKeyProvider(bytes(32)))
    t = Template(user=service.current_user(), model_sha256="0" * 64)
    t.add_anchor(Anchor.new(np.ones(128, np.float32) / np.sqrt(128),
                            np.zeros((64, 64, 3), np.uint8)))
    store.save(t)
    out = _second_launch_while_running(tmp_path, env)
    assert out.strip() == (
        "faceunlock: FaceUnlock is already running: its window “FaceUnlock settings” is now in "
        "front."
    )
