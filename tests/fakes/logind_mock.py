"""python3-dbusmock's ``logind`` template as the system bus of the PAM helper's session check
(:mod:`faceunlock.unlock.origin`), on a private ``dbus-daemon``: sessions made with the
template's ``AddSession`` (then ``Remote``/``Type``/``Service`` set as logind would), and
``Manager.GetSessionByPID`` (which the template lacks) added with ``AddMethod``, answering for
the pids the test names and ``org.freedesktop.login1.NoSessionForPID`` for every other, as
logind does. Shared by tests/unlock/test_origin.py and tests/unlock/test_pam.py.

``available()`` says why it cannot run (no dbus-daemon, no dbusmock for /usr/bin/python3).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.fakes import fake_screensaver as fs

SYSTEM_PYTHON = "/usr/bin/python3"
LOGIND = "org.freedesktop.login1"
LOGIND_PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"
SESSION_IFACE = "org.freedesktop.login1.Session"
MOCK_IFACE = "org.freedesktop.DBus.Mock"


def unavailable() -> str | None:
    """Why the mock cannot run here (None: it can)."""
    if shutil.which("dbus-daemon") is None:
        return "dbus-daemon not installed (Debian: apt-get install dbus)"
    ok = os.access(SYSTEM_PYTHON, os.X_OK) and (
        subprocess.run(
            [SYSTEM_PYTHON, "-c", "import dbusmock.templates.logind"], capture_output=True
        ).returncode
        == 0
    )
    if not ok:
        return f"{SYSTEM_PYTHON} cannot import dbusmock (Debian: apt-get install python3-dbusmock)"
    return None


class Logind:
    """A private system bus with dbusmock's logind on it. ``address``: give it to the helper
    (``--system-bus``); ``close()`` stops both."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fu-ld-"))  # short: unix socket path limit
        self.bus = fs.start_bus(self.root, "system")
        self.address: str = self.bus.address
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "DBUS_SYSTEM_BUS_ADDRESS": self.address,
        }
        log = self.root / "dbusmock.log"
        proc = subprocess.Popen(
            [SYSTEM_PYTHON, "-m", "dbusmock", "--system", "--template", "logind"],
            stdout=subprocess.DEVNULL,
            stderr=open(log, "wb"),  # noqa: SIM115
            env=env,
        )
        self.bus.standins.append(proc)
        try:
            fs.wait_until(
                lambda: proc.poll() is not None or fs.name_has_owner(self.address, LOGIND),
                "dbusmock logind",
                30,
            )
            if proc.poll() is not None:
                raise RuntimeError(f"dbusmock exited: {log.read_text(errors='replace')}")
        except BaseException:
            self.close()
            raise
        self.pids: dict[int, str] = {}
        self.map_pids({})

    def call(
        self, path: str, iface: str, method: str, sig: str | None = None, body: tuple = ()
    ) -> tuple[Any, ...]:
        from jeepney import DBusAddress

        return fs.call(self.address, DBusAddress(path, LOGIND, iface), method, sig, body)

    def add_session(
        self,
        sid: str,
        uid: int = 1000,
        user: str = "alice",
        *,
        remote: bool = False,
        kind: str = "wayland",
        service: str = "gdm-password",
        remote_host: str = "",
        seat: str = "seat0",
    ) -> str:
        """A session as logind has it for a local graphical login (defaults) or, with
        ``remote=True, kind="tty", service="sshd"``, an SSH login."""
        (path,) = self.call(
            LOGIND_PATH, MOCK_IFACE, "AddSession", "ssusb", (sid, seat, uid, user, True)
        )
        props = {
            "Remote": ("b", remote),
            "Type": ("s", kind),
            "Service": ("s", service),
            "RemoteHost": ("s", remote_host),
        }
        self.call(str(path), MOCK_IFACE, "UpdateProperties", "sa{sv}", (SESSION_IFACE, props))
        return str(path)

    def map_pids(self, pids: dict[int, str]) -> None:
        """``GetSessionByPID`` answers session ``pids[pid]`` (an id) for those pids only."""
        self.pids = dict(pids)
        table = {p: f"{LOGIND_PATH}/session/{s}" for p, s in self.pids.items()}
        code = (
            f"table = {table!r}\n"
            "pid = int(args[0])\n"
            "if pid not in table:\n"
            "    raise dbus.exceptions.DBusException(\n"
            "        'PID %d does not belong to any known session' % pid,\n"
            "        name='org.freedesktop.login1.NoSessionForPID')\n"
            "ret = dbus.ObjectPath(table[pid])\n"
        )
        self.call(
            LOGIND_PATH, MOCK_IFACE, "AddMethod", "sssss",
            (MANAGER, "GetSessionByPID", "u", "o", code),
        )

    def close(self) -> None:
        self.bus.close()
        shutil.rmtree(self.root, ignore_errors=True)
