"""The real ``faceunlock watch`` CLI as its own process in a test desktop session, and alice
installed into that session: shared by the real lock-screen tests (GNOME Shell, MATE)."""

from __future__ import annotations

import base64
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faceunlock.config import save_config
from tests.fakes.clip_material import EnrolledClips, watcher_config

USER = "alice"
REPO = Path(__file__).resolve().parents[2]
#: seconds: generous, the CPU is shared (an attempt takes 1-5 s, a retry comes 2-30 s later)
UNLOCK = 90.0


def install_user(session_env: dict[str, str], enrolled: EnrolledClips) -> None:
    """alice's template into the session's data folder, its key into the session's keyring
    (through ``keyring``, as the CLI reads it)."""
    data = Path(session_env["XDG_DATA_HOME"]) / "faceunlock"
    data.mkdir(parents=True, mode=0o700)
    shutil.copy2(enrolled.store.path(USER), data / f"{USER}.tpl")
    code = (
        "import keyring, sys; keyring.set_password('faceunlock', sys.argv[1], sys.argv[2]); "
        "assert keyring.get_password('faceunlock', sys.argv[1]) == sys.argv[2]"
    )
    key = base64.b64encode(enrolled.key).decode()
    r = subprocess.run([sys.executable, "-c", code, USER, key], env=session_env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"cannot store the key in gnome-keyring: {r.stderr}"


class Watch:
    """``python -m faceunlock watch --json`` as its own process in the desktop's session; its
    events as they come."""

    def __init__(self, session_env: dict[str, str], config: Path, log: Path,
                 env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.config = config
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        full_env = {**session_env, "FACEUNLOCK_CONFIG": str(config),
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faceunlock", "watch", "--user", USER, "--json", *args],
            cwd=REPO, env=full_env, stdout=subprocess.PIPE,
            stderr=open(log, "wb"),  # noqa: SIM115
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
