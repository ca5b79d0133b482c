"""Can the desktop app open a window here? Asked before the QApplication exists.

When no Qt platform plugin can start, Qt prints a wall of plugin messages and aborts the
process ("This application failed to start because no Qt platform plugin could be
initialized", SIGABRT). :func:`display_problem` finds the same situations first, cheaply and
without starting Qt, so that the app can say one plain sentence and exit with
:attr:`~faceunlock.errors.AuthStatus.NO_DISPLAY`:

* the platforms Qt will try are worked out as Qt 6 does: ``QT_QPA_PLATFORM`` (a ``;`` list)
  when it is set; otherwise ``wayland`` then ``xcb`` when ``WAYLAND_DISPLAY`` is set or
  ``XDG_SESSION_TYPE`` is ``wayland``; otherwise ``xcb``. A platform that needs no display
  server (``offscreen``, ``minimal``, ``vnc``...) was asked for on purpose: it is not checked;
* ``xcb``: libxcb's own ``xcb_connect`` (loaded with ctypes) connects to ``$DISPLAY``, so the
  display name, the X socket and the X authority are checked exactly as Qt's xcb plugin will;
* ``wayland``: the compositor's socket (``$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY``) accepts a
  connection;
* then the platform plugin itself (``PyQt6/Qt6/plugins/platforms/libqxcb.so``...) is loaded
  with ctypes: a missing system library (``libxcb-cursor.so.0``, the best-known one) fails
  here with the loader's message, which names it.
"""

from __future__ import annotations

import ctypes
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path

NO_SESSION = (
    "no graphical session was found{why}; start the app from your desktop, or use "
    "`faceunlock --help` for the command line"
)
MISSING_LIBRARY = (
    "the desktop app cannot open a window: Qt's {plugin} platform plugin cannot be loaded "
    "({error}); install the system libraries with `./run.sh` or `bash scripts/setup.sh` "
    "(Debian/Ubuntu), or use `faceunlock --help` for the command line"
)


def qt_platforms(env: Mapping[str, str]) -> list[str]:
    """The platform plugins Qt 6 will try, in order, for this environment."""
    spec = env.get("QT_QPA_PLATFORM", "").strip()
    if spec:
        # "xcb:option=value;offscreen": the names, without their options
        return [p.split(":", 1)[0].strip() for p in spec.split(";") if p.strip()]
    if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland":
        return ["wayland", "xcb"]
    return ["xcb"]


#: xcb connections kept open (``display_problem(hold=True)``) until Qt has its own: a bare X
#: server (Xvfb, xvfb-run) resets when its last client leaves, and refuses connections while
#: it does, so the probe's disconnect must not come before Qt's connect
_held: list[int] = []


def _xcb() -> ctypes.CDLL:
    xcb = ctypes.CDLL("libxcb.so.1")
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    return xcb


def x11_problem(display: str, *, hold: bool = False, tries: int = 5) -> str | None:
    """Why no X client can connect to ``display`` (None: one can). ``hold``: keep the
    connection until :func:`release`. A refused connection is tried again (``tries`` times,
    0.1 s apart): the server may be resetting after its last client left."""
    if not display:
        return "DISPLAY is not set"
    try:
        xcb = _xcb()
    except OSError as e:
        return f"libxcb cannot be loaded ({e})"
    for attempt in range(tries):
        conn = xcb.xcb_connect(display.encode(), None)  # never NULL: an error object at worst
        if not xcb.xcb_connection_has_error(conn):
            if hold:
                _held.append(conn)
            else:
                xcb.xcb_disconnect(conn)
            return None
        xcb.xcb_disconnect(conn)
        if attempt + 1 < tries:
            time.sleep(0.1)
    return f"cannot connect to the X display {display}"


def release() -> None:
    """Close the connections :func:`display_problem` held (once Qt has connected)."""
    if _held:
        xcb = _xcb()
        while _held:
            xcb.xcb_disconnect(_held.pop())


def wayland_problem(env: Mapping[str, str]) -> str | None:
    """Why no Wayland client can connect to the compositor (None: one can)."""
    if env.get("WAYLAND_SOCKET"):
        return None  # a connected socket handed over by the compositor
    name = env.get("WAYLAND_DISPLAY") or "wayland-0"
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if not name.startswith("/") and not runtime:
        return "XDG_RUNTIME_DIR is not set, so there is no Wayland display"
    path = name if name.startswith("/") else os.path.join(runtime, name)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2.0)
        try:
            s.connect(path)
        except OSError as e:
            return f"cannot connect to the Wayland display {name}: {e.strerror or e}"
    return None


def default_plugins_dir() -> Path:
    from PyQt6.QtCore import QLibraryInfo

    return Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath))


def plugin_problem(platform: str, plugins_dir: Path) -> str | None:
    """The dynamic loader's error for the ``platform`` plugin (None: it loads, or it is not
    where this PyQt6 keeps its plugins and Qt will look for it elsewhere)."""
    names = [f"libq{platform}.so"]
    if platform.startswith("wayland"):
        names.append("libqwayland.so")  # wayland-egl, wayland-brcm: keys of the one plugin
    for name in names:
        path = plugins_dir / "platforms" / name
        if path.is_file():
            try:
                ctypes.CDLL(str(path))
            except OSError as e:
                return str(e)
            return None
    return None


def display_problem(
    env: Mapping[str, str] | None = None,
    plugins_dir: Path | None = None,
    *,
    hold: bool = False,
) -> str | None:
    """None when Qt can open a window in ``env`` (default: this process's environment);
    otherwise the one-line message to print. ``plugins_dir``: Qt's plugins folder (default:
    this PyQt6's). ``hold``: keep the X connection open until :func:`release`."""
    env = os.environ if env is None else env
    sessions: list[str] = []
    libraries: list[tuple[str, str]] = []
    for platform in qt_platforms(env):
        if platform == "xcb":
            why = x11_problem(env.get("DISPLAY", ""), hold=hold)
        elif platform.startswith("wayland"):
            why = wayland_problem(env)
        else:
            return None  # offscreen, minimal, vnc, eglfs...: chosen on purpose, no session
        if why is not None:
            sessions.append(why)
            continue
        if env.get("QT_QPA_PLATFORM_PLUGIN_PATH"):
            return None  # Qt loads its plugin from there first: nothing to check here
        error = plugin_problem(platform, plugins_dir or default_plugins_dir())
        if error is None:
            return None
        libraries.append((platform, error))
    if libraries:
        plugin, error = libraries[0]
        return MISSING_LIBRARY.format(plugin=plugin, error=error)
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        sessions = ["neither DISPLAY nor WAYLAND_DISPLAY is set"]
    return NO_SESSION.format(why=f" ({'; '.join(sessions)})" if sessions else "")
