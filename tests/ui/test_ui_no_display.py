"""Without a usable display the desktop app says so in one line and exits with
``AuthStatus.NO_DISPLAY`` (23), before Qt starts (Qt itself would abort with its plugin
messages: "This application failed to start because no Qt platform plugin could be
initialized", exit 134).

The entry points run as a user starts them (the venv's ``faceunlock`` with no arguments, and
``faceunlock-gui``), with no display at all and with a DISPLAY that no X server serves. The
checks behind it (:mod:`faceunlock.ui.display`) are also run against a real X server (Xvfb),
a listening stand-in Wayland socket, and a copy of Qt's real xcb plugin whose
``libxcb-cursor.so.0`` dependency was renamed to one no system has: the loader's own error.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from faceunlock.errors import AuthStatus
from faceunlock.ui import display
from faceunlock.ui.display import display_problem, qt_platforms

BIN = Path(sys.executable).parent
QT_ABORT = ("Qt platform plugin", "This application failed to start", "qt.qpa")


def _free_display() -> str:
    """A display number no X server here listens on (socket file, lock or abstract socket)."""
    abstract = Path("/proc/net/unix").read_text() if Path("/proc/net/unix").exists() else ""
    for n in range(99, 200):
        if not (
            Path(f"/tmp/.X11-unix/X{n}").exists()
            or Path(f"/tmp/.X{n}-lock").exists()
            or f"@/tmp/.X11-unix/X{n}\n" in abstract
        ):
            return f":{n}"
    pytest.skip("no free X display number between :99 and :199")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "WAYLAND_SOCKET", "QT_QPA_PLATFORM",
                "XDG_SESSION_TYPE", "QT_QPA_PLATFORM_PLUGIN_PATH"):
        env.pop(var, None)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local/share"), FACEUNLOCK_INSTANCE=f"fu-nd-{os.getpid()}")
    env.update(extra)
    return env


@pytest.mark.parametrize("entry", [["faceunlock"], ["faceunlock-gui"]])
@pytest.mark.parametrize("where", ["unset", "nothing there"])
def test_no_display_one_plain_line_and_exit_23(tmp_path: Path, entry: list[str], where: str
                                              ) -> None:
    exe = BIN / entry[0]
    if not exe.exists():
        pytest.skip(f"{exe} is not installed (pip install -e .)")
    env = _env(tmp_path) if where == "unset" else _env(tmp_path, DISPLAY=_free_display())
    res = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == AuthStatus.NO_DISPLAY == 23, res.stderr[-2000:]
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("faceunlock: no graphical session was found")
    assert "start the app from your desktop" in lines[0]
    assert "`faceunlock --help` for the command line" in lines[0]
    if where == "unset":
        assert "neither DISPLAY nor WAYLAND_DISPLAY is set" in lines[0]
    else:
        assert f"cannot connect to the X display {env['DISPLAY']}" in lines[0]
    assert not any(t in lines[0] for t in QT_ABORT)
    assert not (tmp_path / "home" / ".config" / "faceunlock").exists()  # nothing written


def test_platforms_tried_follow_qt() -> None:
    assert qt_platforms({}) == ["xcb"]
    assert qt_platforms({"DISPLAY": ":0"}) == ["xcb"]
    assert qt_platforms({"WAYLAND_DISPLAY": "wayland-0"}) == ["wayland", "xcb"]
    assert qt_platforms({"XDG_SESSION_TYPE": "wayland"}) == ["wayland", "xcb"]
    assert qt_platforms({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}) == ["offscreen"]
    assert qt_platforms({"QT_QPA_PLATFORM": "xcb:nomitshm;wayland"}) == ["xcb", "wayland"]


def test_a_platform_asked_for_needs_no_session() -> None:
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert display_problem({"QT_QPA_PLATFORM": "xcb;minimal"}) is None  # Qt falls back
    why = display_problem({"QT_QPA_PLATFORM": "xcb"})
    assert why is not None and why.startswith("no graphical session was found")


def test_a_real_x_server_is_usable(xvfb_display: str) -> None:
    assert display.x11_problem(xvfb_display) is None
    assert display_problem({"DISPLAY": xvfb_display}) is None
    # Wayland first (XDG_SESSION_TYPE=wayland, no compositor), then X11: Qt falls back too
    assert display_problem({"DISPLAY": xvfb_display, "XDG_SESSION_TYPE": "wayland"}) is None


def test_the_probe_connection_is_held_until_qt_connects(xvfb_display: str) -> None:
    """A bare X server resets when its last client leaves and refuses connections meanwhile:
    the app's probe keeps its connection until the QApplication has its own."""
    assert display_problem({"DISPLAY": xvfb_display}, hold=True) is None
    try:
        assert len(display._held) == 1
        # while it is held the server never resets: every single-try connection gets in
        for _ in range(20):
            assert display.x11_problem(xvfb_display, tries=1) is None
    finally:
        display.release()
    assert display._held == []


def test_a_wayland_socket_that_answers_is_usable(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    env = {"WAYLAND_DISPLAY": "wayland-7", "XDG_RUNTIME_DIR": str(run)}
    why = display_problem(env)
    assert why is not None and "cannot connect to the Wayland display wayland-7" in why
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(run / "wayland-7"))
        server.listen(1)
        assert display.wayland_problem(env) is None
        assert display_problem(env) is None  # and Qt's wayland plugin loads here
    assert display.wayland_problem({"WAYLAND_DISPLAY": "wayland-7"}) is not None  # no runtime


def test_a_missing_xcb_library_is_named(tmp_path: Path, xvfb_display: str) -> None:
    """Qt's own xcb plugin, its DT_NEEDED ``libxcb-cursor.so.0`` renamed to a library no
    system has: what a desktop without libxcb-cursor0 gets. The message names the library."""
    real = display.default_plugins_dir()
    plugin = real / "platforms" / "libqxcb.so"
    if not plugin.is_file():
        pytest.skip(f"no {plugin}")
    data = plugin.read_bytes()
    assert data.count(b"libxcb-cursor.so.0\0") >= 1
    plugins = tmp_path / "Qt6" / "plugins"
    (plugins / "platforms").mkdir(parents=True)
    # the plugin's RUNPATH is $ORIGIN/../../lib: the wheel's Qt libraries
    (tmp_path / "Qt6" / "lib").symlink_to(real.parent / "lib")
    (plugins / "platforms" / "libqxcb.so").write_bytes(
        data.replace(b"libxcb-cursor.so.0\0", b"libxcb-cursor.so.9\0"))
    why = display_problem({"DISPLAY": xvfb_display}, plugins_dir=plugins)
    assert why is not None
    assert why.startswith("the desktop app cannot open a window: Qt's xcb platform plugin")
    assert "libxcb-cursor.so.9" in why and "bash scripts/setup.sh" in why
    assert "faceunlock --help" in why
    # the unpatched plugin loads
    assert display_problem({"DISPLAY": xvfb_display}, plugins_dir=real) is None
    shutil.rmtree(tmp_path / "Qt6")
