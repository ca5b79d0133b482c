"""``faceunlock-gui`` (and ``faceunlock`` with no arguments): one instance per user.

A second launch finds the first through a per-user QLocalServer, asks it to show its window
(the wizard, or the tray's open window, else its Settings), prints which window was brought
to the front, and exits 0. With no template the enrolment wizard opens; otherwise the tray icon,
which runs the lock-screen watcher (not during the wizard: it starts once the wizard hands
over to the tray).

``--camera SOURCE`` (a camera index, /dev/videoN, a video file or an image folder) replaces
the config's ``camera.source`` for this run only; it is never written to the config file
(Settings and the wizard write the camera only when it is changed there).

Without a usable display (no graphical session, or a system library Qt's platform plugin
needs is missing) it prints one line and exits with ``AuthStatus.NO_DISPLAY`` (23) before
Qt starts (:mod:`faceunlock.ui.display`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject, pyqtSignal
from PyQt6.QtNetwork import QLocalServer, QLocalSocket
from PyQt6.QtWidgets import QApplication, QMessageBox, QSystemTrayIcon, QWidget

from faceunlock.config import Config, config_set, load_config
from faceunlock.engine import service
from faceunlock.engine.templates import TemplateStore
from faceunlock.errors import AuthStatus, FaceUnlockError, InputError
from faceunlock.ui import display

if TYPE_CHECKING:
    from faceunlock.ui.tray import TrayIcon

RAISE = b"raise\n"
#: the running instance's answer: ``shown <window title>``, once the window is in front
SHOWN = b"shown"


def check_camera(source: str) -> str:
    """``--camera``'s value, checked: a camera index (``0``) is taken as is; anything else is a
    path (/dev/videoN, a video file, an image folder) that must exist. InputError otherwise."""
    spec = source.strip()
    if not spec:
        raise InputError("--camera: give a camera index, /dev/videoN or a video file")
    if spec.isdigit():
        return spec
    if not Path(spec).expanduser().exists():
        raise InputError(f"--camera: {spec} does not exist (expected a camera index, "
                         "/dev/videoN, a video file or an image folder)")
    return str(Path(spec).expanduser())


def gui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="faceunlock-gui",
        description="The FaceUnlock desktop app (the enrolment wizard, then the tray icon).",
    )
    p.add_argument(
        "--camera",
        metavar="SOURCE",
        help="camera index, /dev/videoN, video file or image folder to use for this run only "
        "(overrides camera.source; not saved)",
    )
    return p


def with_camera(cfg: Config, camera: str | None) -> Config:
    """``cfg`` with ``camera.source`` replaced (in memory only) when ``camera`` is given."""
    return cfg if camera is None else config_set(cfg, "camera.source", camera)


def server_name(user: str | None = None) -> str:
    """The per-user local socket name (``faceunlock-<user>``; $FACEUNLOCK_INSTANCE overrides,
    for tests)."""
    return os.environ.get("FACEUNLOCK_INSTANCE") or f"faceunlock-{user or service.current_user()}"


def notify_running(name: str, timeout_ms: int = 1000, reply_ms: int = 5000) -> str | None:
    """None when no instance listens on ``name``. Otherwise it has been asked to show its
    window: the title of the window it brought to the front, or ``""`` when it did not say
    within ``reply_ms`` (an instance still starting, or one that shows none)."""
    sock = QLocalSocket()
    sock.connectToServer(name)
    if not sock.waitForConnected(timeout_ms):
        return None
    sock.write(RAISE)
    sock.flush()
    sock.waitForBytesWritten(timeout_ms)
    reply = b""
    while b"\n" not in reply and sock.waitForReadyRead(reply_ms):
        reply += bytes(sock.readAll().data())
    sock.disconnectFromServer()
    line = reply.split(b"\n", 1)[0]
    if not line.startswith(SHOWN):
        return ""
    return line[len(SHOWN):].decode("utf-8", "replace").strip()


def running_message(title: str, camera: str | None = None) -> str:
    """What a second launch prints (``title``: what :func:`notify_running` returned)."""
    if title:
        text = f"FaceUnlock is already running: its window “{title}” is now in front."
    else:
        text = "FaceUnlock is already running: use its icon in the panel."
    if camera is not None:
        text += " --camera applies to a new start only: quit the running app first."
    return text


class SingleInstance(QObject):
    """Listens on ``name``; when a second launch knocks it emits ``raiseRequested``, calls
    ``raise_handler`` (which shows a window and returns its title) and answers with that
    title."""

    raiseRequested = pyqtSignal()

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.raise_handler: Callable[[], str] | None = None
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._connection)

    def listen(self) -> bool:
        if self.server.listen(self.name):
            return True
        # a stale socket left by a crashed instance: nobody answered notify_running
        QLocalServer.removeServer(self.name)
        return self.server.listen(self.name)

    def _connection(self) -> None:
        while self.server.hasPendingConnections():
            sock = self.server.nextPendingConnection()
            if sock is None:
                return
            sock.readyRead.connect(lambda s=sock: self._read(s))
            sock.disconnected.connect(sock.deleteLater)
            if sock.bytesAvailable():
                self._read(sock)

    def _read(self, sock: QLocalSocket) -> None:
        if bytes(sock.readAll().data()).startswith(RAISE.strip()):
            self.raiseRequested.emit()
            title = self.raise_handler() if self.raise_handler is not None else ""
            sock.write(SHOWN + b" " + title.replace("\n", " ").encode() + b"\n")
            sock.flush()

    def close(self) -> None:
        self.server.close()


def first_window(
    store: TemplateStore,
    cfg: Config,
    user: str,
    *,
    config_path: str | None = None,
    camera: str | None = None,
) -> QWidget | QSystemTrayIcon:
    """The wizard when ``user`` has no template, else the tray icon (neither shown yet).
    ``camera``: this run's ``--camera`` (already in ``cfg``), which the wizard starts on."""
    if not store.exists(user):
        from faceunlock.ui.wizard import EnrolWizard

        return EnrolWizard(store, cfg, user=user, source_spec=camera, config_path=config_path)
    return make_tray(store, cfg, user, config_path=config_path)


def make_tray(
    store: TemplateStore, cfg: Config, user: str, *, config_path: str | None = None
) -> TrayIcon:
    """The tray icon with its lock-screen watcher (started when the icon is shown), following
    the config file (``config_path``, default the user's)."""
    from faceunlock.ui.config_watch import ConfigWatcher
    from faceunlock.ui.tray import TrayIcon
    from faceunlock.ui.watch import WatcherController

    controller = WatcherController(store, cfg, user)
    tray = TrayIcon(store, cfg, user, config_path=config_path, controller=controller,
                    config_watcher=ConfigWatcher(config_path))
    controller.setParent(tray)
    return tray


def _raise(target: QWidget | QSystemTrayIcon) -> str:
    """Bring ``target``'s window to the front: the wizard itself, or the tray's open window
    (its Settings when none is open). The window's title ("" when there is none)."""
    if isinstance(target, QWidget):
        target.showNormal()
        target.raise_()
        target.activateWindow()
        return target.windowTitle()
    show = getattr(target, "show_window", None)
    if show is not None:
        return str(show())
    target.showMessage("FaceUnlock", "FaceUnlock is already running: use this icon's menu.")
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """``argv``: the options after the program name (default: ``sys.argv[1:]``)."""
    opts = list(sys.argv[1:] if argv is None else argv)
    parsed = gui_parser().parse_args(opts)
    try:
        camera = check_camera(parsed.camera) if parsed.camera is not None else None
    except InputError as e:
        print(f"faceunlock: error: {e}", file=sys.stderr)
        return int(AuthStatus.USAGE)
    if QApplication.instance() is None:
        # before Qt tries: without a usable display it aborts with its plugin messages
        problem = display.display_problem(hold=True)
        if problem is not None:
            display.release()
            print(f"faceunlock: {problem}", file=sys.stderr)
            return int(AuthStatus.NO_DISPLAY)
    args = [sys.argv[0] if sys.argv else "faceunlock"]
    try:
        app = QApplication.instance() or QApplication(args)
    finally:
        display.release()
    assert isinstance(app, QApplication)
    app.setApplicationName("FaceUnlock")
    app.setDesktopFileName("faceunlock")
    name = server_name()
    shown = notify_running(name)
    if shown is not None:
        print(f"faceunlock: {running_message(shown, camera)}")
        return 0
    instance = SingleInstance(name)
    instance.listen()
    try:
        cfg = with_camera(load_config(), camera)
        store = TemplateStore()
        user = service.current_user()
        target = first_window(store, cfg, user, camera=camera)
    except FaceUnlockError as e:
        QMessageBox.critical(None, "FaceUnlock", str(e))
        instance.close()
        return int(e.status)
    instance.raise_handler = lambda: _raise(target)
    if isinstance(target, QSystemTrayIcon):
        app.setQuitOnLastWindowClosed(False)
        quit_signal = getattr(target, "quitRequested", None)
        if quit_signal is not None:
            quit_signal.connect(app.quit)
        app.aboutToQuit.connect(target.hide)  # stops the watcher
        if not QSystemTrayIcon.isSystemTrayAvailable():
            print("faceunlock: no system tray on this desktop", file=sys.stderr)
    else:
        # after a successful enrolment the tray takes over; Cancel closes the app
        holder: list[QSystemTrayIcon] = []

        def enrolled() -> None:
            app.setQuitOnLastWindowClosed(False)
            # the wizard's config: its Enable page may have switched the watcher
            tray = make_tray(store, getattr(target, "cfg", cfg), user)
            tray.quitRequested.connect(app.quit)
            app.aboutToQuit.connect(tray.hide)
            instance.raise_handler = lambda: _raise(tray)  # the wizard is closed
            holder.append(tray)
            tray.show()

        accepted = getattr(target, "accepted", None)
        if accepted is not None:
            accepted.connect(enrolled)
        app.setQuitOnLastWindowClosed(True)
    target.show()
    try:
        return int(app.exec())
    finally:
        instance.close()
