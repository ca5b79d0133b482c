"""A REAL GNOME Shell lock screen, headless, for end-to-end tests and the time-to-unlock
benchmark (../shared/notes/real-lockscreen.md has the recipe and the source facts).

:class:`Desktop` starts, under one short temp folder:

* a private "system" bus (``dbus-daemon``, no activation) with logind on it: python-dbusmock's
  ``logind`` template (``logind="mock"``) or the real ``/lib/systemd/systemd-logind``
  (``logind="real"``: in a private mount namespace, ``unshare -m``, whose ``/run/systemd`` and
  ``/run/user`` are private folders holding a hand-written session ``c1``: ``CreateSession``
  needs systemd as PID 1, which this machine does not run);
* a GDM stand-in on that bus (dbusmock: ``org.gnome.DisplayManager`` with ``Version`` and
  ``RegisterSession``): without it GNOME Shell builds no lock screen
  (``js/misc/loginManager.js``, ``canLock``);
* a session bus with service activation (the standard ``session.conf``: GNOME's
  ``org.gnome.ScreenSaver`` is D-Bus-activated), a real Secret Service on it
  (``gnome-keyring-daemon --unlock``: the ``faceunlock`` CLI keeps its template key there) and
  ``gnome-shell --headless --wayland --virtual-monitor 1280x720``, in the same mount namespace
  as logind (it reads ``/run/systemd/seats`` and the session files).

Lock with :meth:`Desktop.lock_gnome` (``org.gnome.ScreenSaver.Lock``) or
:meth:`Desktop.lock_logind` (logind's ``Session.Lock``); read the shell's state with
:meth:`Desktop.shell_locked` (``org.gnome.Shell.ScreenShield`` ``GetActive``) and logind's
``LockedHint``; :meth:`Desktop.screenshot` saves a PNG through ``org.gnome.Shell.Screenshot``
(as the owner of ``org.gnome.Screenshot``, which the shell's allow list admits) and
:func:`top_bar_visible` tells from it whether the top bar's "Activities" button is shown (the
session is unlocked) or not (locked: black after the fade, or the lock-screen clock).

:func:`missing` says what is not installed (the tests skip with that reason).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jeepney import DBusAddress, MessageType, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

from tests.fakes import fake_screensaver as fs

SYSTEM_PYTHON = "/usr/bin/python3"
REAL_LOGIND = "/lib/systemd/systemd-logind"
SESSION_ID = "c1"
SHELL_SIZE = (1280, 720)
LOGIND = "org.freedesktop.login1"
LOGIND_PATH = "/org/freedesktop/login1"
SESSION_IFACE = "org.freedesktop.login1.Session"
MOCK_IFACE = "org.freedesktop.DBus.Mock"
SCREENSHIELD = "org.gnome.Shell.ScreenShield"
SCREENSAVER_PATH = "/org/gnome/ScreenSaver"
SCREENSAVER_IFACE = "org.gnome.ScreenSaver"
KEYRING_PASSWORD = "faceunlock-shell-test"
#: what the tests need, and the Debian package of each
NEEDED = {
    "dbus-daemon": "dbus",
    "gnome-shell": "gnome-shell",
    "gjs": "gjs",
    "gnome-keyring-daemon": "gnome-keyring",
    "unshare": "util-linux",
}


def missing(real_logind: bool = False) -> str | None:
    """Why a real shell cannot run here (a skip reason naming the Debian packages), or None."""
    absent = [pkg for tool, pkg in NEEDED.items() if shutil.which(tool) is None]
    if not os.access(SYSTEM_PYTHON, os.X_OK) or subprocess.run(
        [SYSTEM_PYTHON, "-c", "import dbusmock.templates.logind"], capture_output=True
    ).returncode:
        absent.append("python3-dbusmock")
    if real_logind and not os.access(REAL_LOGIND, os.X_OK):
        absent.append("systemd")
    if absent:
        return (
            f"the real GNOME Shell test needs Debian packages that are not installed: "
            f"{' '.join(sorted(set(absent)))} (`bash scripts/setup.sh --dev` installs them)"
        )
    if os.geteuid() != 0:
        return "the real GNOME Shell test needs root (a private mount namespace for logind)"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True)
    if probe.returncode:
        return f"cannot make a private mount namespace (unshare -m): {probe.stderr.strip()}"
    return None


def top_bar_visible(png: Path) -> bool:
    """Whether the screenshot shows the unlocked top bar: the "Activities" button's light
    text in the panel's top-left corner over the panel's dark background."""
    import cv2
    import numpy as np

    im = cv2.imread(str(png), cv2.IMREAD_COLOR)
    if im is None:
        raise AssertionError(f"{png} is not an image")
    corner = im[2:26, 4:110].astype(np.int32)
    light = (corner.min(axis=2) > 180).sum()
    return bool(light >= 100)


def mean_brightness(png: Path) -> float:
    """The mean pixel value of a screenshot (0: black, as the lock screen after its fade)."""
    import cv2

    im = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    if im is None:
        raise AssertionError(f"{png} is not an image")
    return float(im.mean())


def _dbus(address: str, addr: DBusAddress, method: str, sig: str | None = None,
          body: tuple[Any, ...] = (), timeout: float = 20.0) -> tuple[Any, ...]:
    return fs.call(address, addr, method, sig, body, timeout=timeout)


def _signal(p: subprocess.Popen[bytes], sig: int) -> None:
    """``sig`` to ``p``'s process group when it leads one (what _spawn starts), else to
    ``p``."""
    if p.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(p.pid) == p.pid:
            os.killpg(p.pid, sig)
        else:
            os.kill(p.pid, sig)


class Desktop:
    """The whole stack (see the module docstring); :meth:`close` stops all of it."""

    def __init__(self, logind: str = "mock", user: str = "root", *,
                 ready_timeout: float = 180.0) -> None:
        if logind not in ("mock", "real"):
            raise ValueError("logind is 'mock' or 'real'")
        self.kind = logind
        self.user = user
        self.uid = os.getuid()
        self.root = Path(tempfile.mkdtemp(prefix="fu-gs-"))  # unix socket paths: 108 bytes
        self.procs: list[subprocess.Popen[bytes]] = []
        self._rd: Any = None
        try:
            self._start(ready_timeout)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ start-up
    def _log(self, name: str) -> Any:
        return open(self.root / f"{name}.log", "ab")

    def logs(self) -> str:
        """Every log of the stack, for a failure message."""
        out = []
        for p in sorted(self.root.glob("*.log")):
            text = p.read_text(errors="replace")
            out.append(f"--- {p.name}\n{text[-4000:]}")
        return "\n".join(out)

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

    def _base_env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}

    def _private_run(self) -> Path:
        """The private ``/run/systemd`` (and ``/run/user``) of the namespace: seats, the
        session ``c1`` and its user, as logind writes them (``logind-session.c``,
        ``session_save``)."""
        run = self.root / "run-systemd"
        for d in ("seats", "sessions", "users", "machines", "inhibit"):
            (run / d).mkdir(parents=True, exist_ok=True)
        (self.root / "run-user").mkdir(exist_ok=True)
        (run / "sessions" / SESSION_ID).write_text(
            f"UID={self.uid}\nUSER={self.user}\nACTIVE=1\nIS_DISPLAY=1\nSTATE=active\n"
            f"REMOTE=0\nTYPE=wayland\nCLASS=user\nSCOPE=session-{SESSION_ID}.scope\n"
            f"LEADER={self._leader.pid}\n"
        )
        (run / "users" / str(self.uid)).write_text(
            f"NAME={self.user}\nSTATE=active\nSTOPPING=no\nSESSIONS={SESSION_ID}\n"
            f"DISPLAY={SESSION_ID}\nACTIVE_SESSIONS={SESSION_ID}\n"
        )
        return run

    def _in_namespace(self, cmd: list[str]) -> list[str]:
        """``cmd`` run in a fresh private mount namespace with the private /run folders."""
        script = (
            'mount --bind "$1" /run/systemd || exit 1; '
            'if [ -d /run/user ]; then mount --bind "$2" /run/user || exit 1; fi; '
            'shift 2; exec "$@"'
        )
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                str(self.root / "run-systemd"), str(self.root / "run-user"), *cmd]

    def _start(self, ready_timeout: float) -> None:
        # a live process as the session's leader (logind checks that the leader exists)
        self._leader = self._spawn("leader", ["sleep", "infinity"], self._base_env())
        self._private_run()
        # 1. the system bus
        sysbus = fs.start_bus(self.root, "system")
        self.procs.append(sysbus.proc)
        self.system_bus = sysbus.address
        env = {**self._base_env(), "DBUS_SYSTEM_BUS_ADDRESS": self.system_bus}
        # 2. logind
        if self.kind == "mock":
            p = self._spawn("logind", [SYSTEM_PYTHON, "-m", "dbusmock", "--system",
                                       "--template", "logind"], env)
            self._wait(lambda: fs.name_has_owner(self.system_bus, LOGIND), "dbusmock logind",
                       60, (p,))
            (path,) = self.logind_call(LOGIND_PATH, MOCK_IFACE, "AddSession", "ssusb",
                                       (SESSION_ID, "seat0", self.uid, self.user, True))
            self.session_path = str(path)
        else:
            p = self._spawn("logind", self._in_namespace([REAL_LOGIND]),
                            {**env, "SYSTEMD_LOG_LEVEL": "info"})
            self._wait(lambda: fs.name_has_owner(self.system_bus, LOGIND), "systemd-logind",
                       60, (p,))
            manager = DBusAddress(LOGIND_PATH, LOGIND, "org.freedesktop.login1.Manager")
            self._wait(lambda: bool(_dbus(self.system_bus, manager, "GetSession", "s",
                                          (SESSION_ID,))),
                       "logind to load session c1", 30, (p,))
            (path,) = _dbus(self.system_bus, manager, "GetSession", "s", (SESSION_ID,))
            self.session_path = str(path)
        self.logind_proc = p
        # 3. the GDM stand-in
        gdm = self._spawn("gdm", [SYSTEM_PYTHON, "-m", "dbusmock", "--system",
                                  "org.gnome.DisplayManager", "/org/gnome/DisplayManager/Manager",
                                  "org.gnome.DisplayManager.Manager"], env)
        self._wait(lambda: fs.name_has_owner(self.system_bus, "org.gnome.DisplayManager"),
                   "the GDM stand-in", 60, (gdm,))
        mgr = DBusAddress("/org/gnome/DisplayManager/Manager", "org.gnome.DisplayManager",
                          MOCK_IFACE)
        _dbus(self.system_bus, mgr, "AddProperty", "ssv",
              ("org.gnome.DisplayManager.Manager", "Version", ("s", "43.0")))
        _dbus(self.system_bus, mgr, "AddMethod", "sssss",
              ("org.gnome.DisplayManager.Manager", "RegisterSession", "a{sv}", "", ""))
        # 4. the session: a bus with activation, the keyring, the shell
        home, runtime = self.root / "home", self.root / "xdg-run"
        home.mkdir()
        runtime.mkdir(mode=0o700)
        self.home = home
        self.session_env = {
            **env,
            "HOME": str(home),
            "USER": self.user,
            "XDG_RUNTIME_DIR": str(runtime),
            "XDG_SESSION_ID": SESSION_ID,
            "XDG_SESSION_TYPE": "wayland",
            "XDG_CURRENT_DESKTOP": "GNOME",
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_STATE_HOME": str(home / "state"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "GSETTINGS_BACKEND": "memory",
            "NO_AT_BRIDGE": "1",
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
        kr = self._spawn("keyring", ["gnome-keyring-daemon", "--foreground", "--unlock",
                                     "--components=secrets"], self.session_env,
                         stdin=subprocess.PIPE)
        assert kr.stdin is not None
        kr.stdin.write(KEYRING_PASSWORD.encode())
        kr.stdin.close()
        self._wait(lambda: fs.name_has_owner(self.session_bus, "org.freedesktop.secrets"),
                   "gnome-keyring-daemon", 60, (kr,))
        w, h = SHELL_SIZE
        self.shell = self._spawn("gnome-shell", self._in_namespace(
            ["gnome-shell", "--headless", "--wayland", "--no-x11",
             "--virtual-monitor", f"{w}x{h}", "--sm-disable"]), self.session_env)
        self._wait(lambda: self.shell_locked() is False, "gnome-shell's ScreenShield",
                   ready_timeout, (self.shell,))
        # the top bar is drawn a moment after the D-Bus API answers
        self._wait(lambda: top_bar_visible(self.screenshot(self.root / "start.png")),
                   "the shell's top bar", ready_timeout, (self.shell,))

    # ------------------------------------------------------------------ calls
    def logind_call(self, path: str, iface: str, method: str, sig: str | None = None,
                    body: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        return _dbus(self.system_bus, DBusAddress(path, LOGIND, iface), method, sig, body)

    def locked_hint(self) -> bool:
        (v,) = self.logind_call(self.session_path, "org.freedesktop.DBus.Properties", "Get",
                                "ss", (SESSION_IFACE, "LockedHint"))
        return bool(v[1])

    def shell_locked(self) -> bool:
        """``GetActive`` of the shell's own ``org.gnome.Shell.ScreenShield``."""
        addr = DBusAddress(SCREENSAVER_PATH, SCREENSHIELD, SCREENSAVER_IFACE)
        return bool(_dbus(self.session_bus, addr, "GetActive", timeout=10)[0])

    def lock_gnome(self) -> None:
        """``org.gnome.ScreenSaver.Lock`` (D-Bus-activates the proxy when needed)."""
        addr = DBusAddress(SCREENSAVER_PATH, "org.gnome.ScreenSaver", SCREENSAVER_IFACE)
        _dbus(self.session_bus, addr, "Lock", timeout=30)

    def lock_logind(self) -> None:
        """logind's ``Session.Lock``: logind emits ``Lock``; the shell locks."""
        self.logind_call(self.session_path, SESSION_IFACE, "Lock")

    def wait_locked(self, locked: bool, timeout: float = 60.0) -> None:
        self._wait(lambda: self.shell_locked() is locked,
                   f"the shell to be {'locked' if locked else 'unlocked'}", timeout,
                   (self.shell,))

    def screenshot(self, path: Path) -> Path:
        """A PNG of the screen, through ``org.gnome.Shell.Screenshot``."""
        path = Path(path).resolve()
        with contextlib.closing(open_dbus_connection(self.session_bus)) as conn:
            reply = conn.send_and_get_reply(message_bus.RequestName("org.gnome.Screenshot", 4),
                                            timeout=10)
            if reply.body != (1,):
                raise RuntimeError(f"cannot own org.gnome.Screenshot: {reply.body}")
            shot = DBusAddress("/org/gnome/Shell/Screenshot", "org.gnome.Shell",
                               "org.gnome.Shell.Screenshot")
            msg = new_method_call(shot, "Screenshot", "bbs", (False, False, str(path)))
            reply = conn.send_and_get_reply(msg, timeout=30)
        if reply.header.message_type == MessageType.error or not reply.body[0]:
            raise RuntimeError(f"Screenshot failed: {reply.body}")
        return path

    def wake(self) -> None:
        """A relative pointer motion through ``org.gnome.Mutter.RemoteDesktop``: the faded
        lock screen shows its clock again."""
        rd = DBusAddress("/org/gnome/Mutter/RemoteDesktop", "org.gnome.Mutter.RemoteDesktop",
                         "org.gnome.Mutter.RemoteDesktop")
        conn = open_dbus_connection(self.session_bus)
        try:
            reply = conn.send_and_get_reply(new_method_call(rd, "CreateSession"), timeout=10)
            session = DBusAddress(str(reply.body[0]), "org.gnome.Mutter.RemoteDesktop",
                                  "org.gnome.Mutter.RemoteDesktop.Session")
            conn.send_and_get_reply(new_method_call(session, "Start"), timeout=10)
            for dx in (5.0, -5.0, 5.0):
                conn.send_and_get_reply(new_method_call(
                    session, "NotifyPointerMotionRelative", "dd", (dx, 0.0)), timeout=10)
            conn.send_and_get_reply(new_method_call(session, "Stop"), timeout=10)
        finally:
            conn.close()

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

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
