"""A REAL MATE lock screen (Debian's ``mate-screensaver``), headless, for end-to-end tests.

:class:`MateDesktop` starts, under one short temp folder:

* ``Xvfb`` (a free display chosen by ``-displayfd``, a white root window ``-wr``, its screen
  kept as an XWD file in ``-fbdir``: :meth:`MateDesktop.screenshot` turns it into a PNG);
* an empty private "system" bus (no logind: mate-screensaver is unlocked through its own
  ``SetActive(false)``, and nothing on this machine's system bus can leak in);
* a private session bus (``dbus-daemon --session``) with a real Secret Service on it
  (``gnome-keyring-daemon --unlock``: the ``faceunlock`` CLI keeps its template key there);
* ``mate-screensaver --no-daemon`` on that display and bus: it owns ``org.mate.ScreenSaver``.

Lock with :meth:`MateDesktop.lock` (``mate-screensaver-command --lock``: the D-Bus ``Lock``
method of 1.26 was seen not to reply within 10 s); read its state with
:meth:`MateDesktop.locked` (``org.mate.ScreenSaver.GetActive``).

Nothing here sends keyboard or pointer input: in this root test environment the unlock
dialog, once woken by input, was seen to answer ``RESPONSE=OK`` at once (its PAM check of the
root account), which would unlock the screen without the watcher.

:func:`missing` says what is not installed (the tests skip with that reason).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from jeepney import DBusAddress

from tests.fakes import fake_screensaver as fs

MATE = "org.mate.ScreenSaver"
MATE_PATH = "/org/mate/ScreenSaver"
SCREEN = (800, 600)
KEYRING_PASSWORD = "faceunlock-mate-test"
#: what the tests need, and the Debian package of each
NEEDED = {
    "Xvfb": "xvfb",
    "dbus-daemon": "dbus",
    "mate-screensaver": "mate-screensaver",
    "mate-screensaver-command": "mate-screensaver",
    "gnome-keyring-daemon": "gnome-keyring",
}


def missing() -> str | None:
    """Why the real MATE lock screen cannot run here (a skip reason naming the Debian
    packages), or None."""
    absent = sorted({pkg for tool, pkg in NEEDED.items() if shutil.which(tool) is None})
    if absent:
        return (
            f"the real MATE lock-screen test needs Debian packages that are not installed: "
            f"{' '.join(absent)} (`bash scripts/setup.sh --dev` installs them)"
        )
    return None


def read_xwd(path: Path) -> np.ndarray:
    """The image (BGR, uint8) of an XWD file as Xvfb's ``-fbdir`` keeps it: a header of
    big-endian 32-bit fields (``XWDFileHeader``: 100 bytes, then the window name up to
    ``header_size``), ``ncolors`` colormap entries of 12 bytes, then the pixels (ZPixmap)."""
    data = path.read_bytes()
    if len(data) < 100:
        raise AssertionError(f"{path}: {len(data)} bytes, not an XWD file")
    h = struct.unpack(">25I", data[:100])
    header_size, version, fmt, depth, width, height = h[:6]
    byte_order, bpp, bpl, ncolors = h[7], h[11], h[12], h[19]
    if version != 7 or fmt != 2 or depth != 24 or bpp != 32:
        raise AssertionError(
            f"{path}: XWD version {version}, format {fmt}, depth {depth}, {bpp} bits per "
            "pixel; expected a 24-bit ZPixmap of 32-bit pixels"
        )
    offset = header_size + 12 * ncolors
    rows = np.frombuffer(data, np.uint8, bpl * height, offset).reshape(height, bpl)
    px = rows[:, : width * 4].reshape(height, width, 4)
    # LSBFirst (0): bytes B, G, R, pad; MSBFirst: pad, R, G, B
    bgr = px[..., :3] if byte_order == 0 else px[..., 3:0:-1]
    return np.ascontiguousarray(bgr)


def mean_brightness(png: Path) -> float:
    """The mean pixel value of a screenshot (0: black, 255: white)."""
    import cv2

    im = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    if im is None:
        raise AssertionError(f"{png} is not an image")
    return float(im.mean())


def _signal(p: subprocess.Popen[bytes], sig: int) -> None:
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, sig)


class MateDesktop:
    """The whole stack (see the module docstring); :meth:`close` stops all of it."""

    def __init__(self, *, ready_timeout: float = 60.0) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fu-mate-"))  # unix socket paths: 108 bytes
        self.procs: list[subprocess.Popen[bytes]] = []
        self.buses: list[Any] = []
        try:
            self._start(ready_timeout)
        except BaseException:
            self.close()
            raise

    def _log(self, name: str) -> Any:
        return open(self.root / f"{name}.log", "ab")

    def logs(self) -> str:
        """Every log of the stack, for a failure message."""
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.root.glob("*.log")))

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str], **kw: Any
               ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            cmd, env=env, stdin=kw.pop("stdin", subprocess.DEVNULL),
            stdout=kw.pop("stdout", self._log(name)), stderr=self._log(name),
            start_new_session=True, **kw,
        )
        self.procs.append(proc)
        return proc

    def _wait(self, cond: Callable[[], bool], what: str, timeout: float,
              procs: tuple[subprocess.Popen[bytes], ...] = ()) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{what}: {p.args[0]} exited with {p.returncode}\n"
                                       + self.logs())
            with contextlib.suppress(Exception):
                if cond():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}\n"
                                   + self.logs())
            time.sleep(0.05)

    def _start(self, ready_timeout: float) -> None:
        home, runtime, fb = self.root / "home", self.root / "xdg-run", self.root / "fb"
        home.mkdir()
        runtime.mkdir(mode=0o700)
        fb.mkdir()
        self.framebuffer = fb / "Xvfb_screen0"
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        # 1. the X server: it writes its display number to the pipe once it accepts clients
        r, w = os.pipe()
        width, height = SCREEN
        xvfb = self._spawn("xvfb", ["Xvfb", "-displayfd", str(w), "-screen", "0",
                                    f"{width}x{height}x24", "-fbdir", str(fb), "-wr",
                                    "-nolisten", "tcp"], base, pass_fds=(w,))
        os.close(w)
        with os.fdopen(r, "rb") as pipe:
            number = pipe.readline().decode().strip()
        if not number.isdigit():
            raise RuntimeError("Xvfb printed no display number\n" + self.logs())
        self.display = f":{number}"
        # 2. the buses: an empty system bus, a session bus
        system = fs.start_bus(self.root, "system")
        self.buses.append(system)
        self.system_bus = system.address
        self.session_env = {
            **base,
            "DISPLAY": self.display,
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(runtime),
            "XDG_CURRENT_DESKTOP": "MATE",
            "XDG_SESSION_TYPE": "x11",
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "GSETTINGS_BACKEND": "memory",
            "NO_AT_BRIDGE": "1",
            "DBUS_SYSTEM_BUS_ADDRESS": self.system_bus,
        }
        sock = self.root / "session.sock"
        bus = self._spawn("session-bus", ["dbus-daemon", "--session", "--nofork",
                                          "--print-address=1", f"--address=unix:path={sock}"],
                          self.session_env, stdout=subprocess.PIPE)
        assert bus.stdout is not None
        self.session_bus = bus.stdout.readline().decode().strip()
        if not self.session_bus:
            raise RuntimeError("the session dbus-daemon printed no address\n" + self.logs())
        self.session_env["DBUS_SESSION_BUS_ADDRESS"] = self.session_bus
        # 3. the Secret Service
        kr = self._spawn("keyring", ["gnome-keyring-daemon", "--foreground", "--unlock",
                                     "--components=secrets"], self.session_env,
                         stdin=subprocess.PIPE)
        assert kr.stdin is not None
        kr.stdin.write(KEYRING_PASSWORD.encode())
        kr.stdin.close()
        self._wait(lambda: fs.name_has_owner(self.session_bus, "org.freedesktop.secrets"),
                   "gnome-keyring-daemon", ready_timeout, (kr,))
        # 4. the lock screen
        self.saver = self._spawn("mate-screensaver", ["mate-screensaver", "--no-daemon"],
                                 self.session_env)
        self._wait(lambda: fs.name_has_owner(self.session_bus, MATE), "mate-screensaver",
                   ready_timeout, (self.saver, xvfb))
        self._wait(lambda: self.locked() is False, "mate-screensaver's GetActive",
                   ready_timeout, (self.saver,))

    # ------------------------------------------------------------------ the lock screen
    def locked(self) -> bool:
        """``org.mate.ScreenSaver.GetActive``: the lock screen's own state."""
        (active,) = fs.call(self.session_bus, DBusAddress(MATE_PATH, MATE, MATE), "GetActive",
                            timeout=10)
        return bool(active)

    def lock(self) -> None:
        r = subprocess.run(["mate-screensaver-command", "--lock"], env=self.session_env,
                           capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise RuntimeError(f"mate-screensaver-command --lock: {r.returncode} {r.stderr}")

    def wait_locked(self, state: bool, timeout: float = 30.0) -> None:
        self._wait(lambda: self.locked() is state, f"GetActive to be {state}", timeout,
                   (self.saver,))

    def screenshot(self, path: Path) -> Path:
        """The X screen now, as a PNG at ``path`` (from Xvfb's framebuffer file)."""
        import cv2

        if not cv2.imwrite(str(path), read_xwd(self.framebuffer)):
            raise RuntimeError(f"cannot write {path}")
        return path

    # ------------------------------------------------------------------ the end
    def close(self) -> None:
        for p in reversed(self.procs):
            _signal(p, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                _signal(p, signal.SIGKILL)
                p.wait(5)
        self.procs.clear()
        for b in self.buses:
            with contextlib.suppress(Exception):
                b.close()
        self.buses.clear()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
