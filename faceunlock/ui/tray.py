"""The tray icon: status, test, recalibrate, re-enrol, pause, settings, about, quit.

The menu is rebuilt each time it opens (``aboutToShow``), so it always shows the current
state. Given a :class:`~faceunlock.ui.watch.WatcherController`, the tray drives the
lock-screen watcher: it starts when the icon is shown (if ``watcher.enabled``), Pause stops
it, Resume restarts it, Quit stops it; its events set the icon and the status line, and a
failure puts the tray in the error state. A hidden debug submenu (shown when
``FACEUNLOCK_DEBUG=1`` or ``debug=True``) sets the state by hand.

Failures a person should hear about (the camera busy or missing, a lock-out after failed
tries, broken face models or template, a watcher that stopped) become desktop notifications
in plain words (:mod:`faceunlock.unlock.notify`): through the freedesktop notification
service on the session bus, else the tray icon's own balloon; the same kind of problem at
most once every few minutes.

Given a :class:`~faceunlock.ui.config_watch.ConfigWatcher`, the tray follows the config
file: a change (``faceunlock config set``, an editor) becomes the running config, so Test,
Recalibrate and the watcher use it (this run's ``--camera`` is kept while the file's camera
stays as it was). A file that has become broken puts the tray in the error state, naming the
file and the problem, until the file is good again; the last good config stays in use.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QColor, QIcon, QPixmap
from PyQt6.QtWidgets import QMenu, QMessageBox, QSystemTrayIcon, QWidget

from faceunlock import __version__
from faceunlock.config import Config, config_set
from faceunlock.engine.templates import TemplateStore
from faceunlock.paths import assets_dir
from faceunlock.ui.password import confirm_password
from faceunlock.unlock.notify import (
    CRITICAL,
    Notice,
    Notifier,
    error_icon,
    notice_for,
    watcher_stopped_notice,
)

if TYPE_CHECKING:
    from faceunlock.ui.config_watch import ConfigWatcher
    from faceunlock.ui.watch import WatcherController
    from faceunlock.unlock.watcher import WatcherEvent

STATES = ("watching", "authenticating", "idle", "unlocked", "paused", "error")
STATE_TEXT = {
    "watching": "Watching the lock screen",
    "authenticating": "Looking for your face",
    "idle": "Idle",
    "unlocked": "Unlocked",
    "paused": "Paused",
    "error": "Problem",
}
PAUSES: tuple[tuple[str, int | None], ...] = (
    ("For 15 minutes", 15 * 60),
    ("For 1 hour", 60 * 60),
    ("Until resumed", None),
)
#: WatcherState value -> tray state (the watcher's "idle" is "watching the lock screen")
WATCHER_STATES = {
    "idle": "watching",
    "watching": "watching",
    "authenticating": "authenticating",
    "unlocked": "unlocked",
    "paused": "paused",
    "error": "error",
}
#: the menu is never wider than this (a long status line is elided; its full text is the
#: status entry's tooltip)
MENU_MAX_WIDTH = 480
#: the icon's tooltip keeps at most this many characters of the status
TOOLTIP_MAX_CHARS = 160
_FALLBACK_COLOURS = {
    "watching": "#2a6fdb",
    "authenticating": "#7b3fd0",
    "idle": "#8a8a8a",
    "unlocked": "#2e9e44",
    "paused": "#d08a10",
    "error": "#c62828",
}


def icons_dir() -> Path:
    env = os.environ.get("FACEUNLOCK_ICONS")
    return Path(env) if env else assets_dir() / "icons"


def state_icon(state: str) -> QIcon:
    """The SVG icon of a state; a plain coloured square when the file is missing."""
    icon = QIcon(str(icons_dir() / f"{state}.svg"))
    if icon.isNull() or icon.pixmap(16).isNull():
        pix = QPixmap(32, 32)
        pix.fill(QColor(_FALLBACK_COLOURS.get(state, "#8a8a8a")))
        icon = QIcon(pix)
    return icon


class TrayIcon(QSystemTrayIcon):
    """``store``/``cfg``/``user``: what the dialogs work on (``cfg`` is the running config:
    a ``--camera`` override included, which Settings and the wizard never write unless the
    camera is changed there); ``config_path``: where Settings and the wizard write;
    ``dialog_factory(name, **kw)``: opens a window (tests replace it); ``controller``:
    the lock-screen watcher to drive (None: the state is set by hand);
    ``notifier``: shows the failure notices (default: a :class:`Notifier` on the session bus
    that falls back to this icon's balloon). Notices are sent from one worker thread, in
    order: a hung notification service (the D-Bus call waits up to 2 s) never freezes the
    tray; the fallback balloon comes back to the GUI thread through ``balloonRequested``.
    ``config_watcher``: follows the config file (see the module's text; None: the config
    changes only through Settings and the wizard)."""

    quitRequested = pyqtSignal()
    stateChanged = pyqtSignal(str)
    balloonRequested = pyqtSignal(object)

    def __init__(
        self,
        store: TemplateStore,
        cfg: Config,
        user: str,
        *,
        config_path: str | Path | None = None,
        debug: bool | None = None,
        dialog_factory: Callable[..., Any] | None = None,
        controller: WatcherController | None = None,
        notifier: Notifier | None = None,
        config_watcher: ConfigWatcher | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.cfg = cfg
        self.user = user
        self.config_path = config_path
        self.debug = debug if debug is not None else os.environ.get("FACEUNLOCK_DEBUG") == "1"
        self.dialog_factory = dialog_factory or self._open_dialog
        #: asks for the user's password before "Replace my face…" (True: go ahead)
        self.confirm_password: Callable[[str, str], bool] = confirm_password
        self.state = "idle"
        self.detail = ""  # the watcher's words for the current state
        self.controller = controller
        #: the config file's problem while it is broken (plain words), else None
        self.config_problem: str | None = None
        self.config_watcher = config_watcher
        #: the config file as last read well: tells this run's --camera from a new camera
        self._file_cfg: Config | None = None
        self.balloonRequested.connect(self.show_balloon)
        self.notifier = notifier or Notifier(fallback=self.balloonRequested.emit,
                                             icon=error_icon())
        self._notify_pool = ThreadPoolExecutor(max_workers=1,
                                               thread_name_prefix="faceunlock-notify")
        self.paused = False
        self.paused_until: float | None = None  # time.time() when the pause ends
        self.windows: list[QWidget] = []
        self._resume_timer = QTimer(self)
        self._resume_timer.setSingleShot(True)
        self._resume_timer.timeout.connect(self.resume)
        self.menu = QMenu()
        self.menu.setMaximumWidth(MENU_MAX_WIDTH)
        self.menu.setToolTipsVisible(True)
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.setContextMenu(self.menu)
        if controller is not None:
            controller.watcher_event.connect(self.on_watcher_event)
            controller.failed.connect(self.on_watcher_failed)
        self.set_state("watching" if cfg.watcher.enabled else "idle")
        if config_watcher is not None:
            config_watcher.setParent(self)
            self._file_cfg = config_watcher.config
            config_watcher.changed.connect(self.on_config_changed)
            config_watcher.broken.connect(self.on_config_broken)
            if config_watcher.problem is not None:
                self.on_config_broken(config_watcher.problem)
        self.rebuild_menu()

    # ---- state

    def set_state(self, state: str, detail: str = "") -> None:
        if state not in STATES:
            raise ValueError(f"unknown tray state {state!r}")
        self.state = state
        self.detail = detail
        self.setIcon(state_icon(self.shown_state))
        status = self.status_text()
        # a broken config file's line names the file and the problem: it gets twice the room
        most = TOOLTIP_MAX_CHARS * (2 if self.config_problem is not None else 1)
        if len(status) > most:
            status = status[: most - 1].rstrip() + "…"
        self.setToolTip(f"FaceUnlock: {status}")
        self.stateChanged.emit(state)

    @property
    def shown_state(self) -> str:
        """The state the icon shows: ``error`` while the config file is broken, whatever the
        watcher does meanwhile."""
        return "error" if self.config_problem is not None else self.state

    def status_text(self) -> str:
        if self.config_problem is not None:
            return self.config_problem
        if self.paused:
            if self.paused_until is None:
                return "Paused until resumed"
            return "Paused until " + time.strftime("%H:%M", time.localtime(self.paused_until))
        if not self.store.exists(self.user):
            return "Not enrolled"
        if self.detail:
            return f"{STATE_TEXT[self.state]}: {self.detail}"
        return STATE_TEXT[self.state]

    # ---- the config file

    def on_config_changed(self, file_cfg: Config) -> None:
        """The config file was changed and is good: it becomes the running config. This
        run's ``--camera`` (a running camera that is not the file's) is kept unless the
        file's camera itself changed."""
        cfg = file_cfg
        prev = self._file_cfg
        if (
            prev is not None
            and file_cfg.camera.source == prev.camera.source
            and self.cfg.camera.source != prev.camera.source
        ):
            cfg = config_set(file_cfg, "camera.source", self.cfg.camera.source)
        self._file_cfg = file_cfg
        was_broken = self.config_problem is not None
        self.config_problem = None
        if cfg != self.cfg:
            self._settings_saved(cfg)
        elif was_broken:  # fixed back to the settings in use: the watcher's state again
            self.set_state(self.state, self.detail)

    def on_config_broken(self, message: str) -> None:
        """The config file has become broken: the error state, in words naming the file and
        the problem (the last good config stays in use)."""
        from faceunlock.ui.config_watch import FIX_HINT

        self.config_problem = message
        self.set_state(self.state, self.detail)
        self._notify_pool.submit(
            self.notifier.notify,
            Notice("config-broken", "FaceUnlock: the settings file has a problem",
                   f"{message}. {FIX_HINT}"),
        )

    # ---- the lock-screen watcher

    def show(self) -> None:
        super().show()
        if not self.paused:
            self.start_watcher()

    def hide(self) -> None:
        self.stop_watcher()
        super().hide()

    def start_watcher(self) -> None:
        """Start the controller's watcher when there is one and ``watcher.enabled``."""
        if self.controller is None or not self.cfg.watcher.enabled:
            return
        self.controller.cfg = self.cfg
        if not self.controller.running:
            self.set_state("watching")
            self.controller.start()

    def stop_watcher(self) -> None:
        if self.controller is not None:
            self.controller.stop()

    def on_watcher_event(self, ev: WatcherEvent) -> None:
        """A :class:`WatcherEvent` (GUI thread): the watcher's state becomes the tray's."""
        if self.paused:
            return  # a late event of the run that Pause stopped
        state = WATCHER_STATES.get(ev.state.value, "error")
        self.set_state(state, "" if ev.state.value == "idle" else ev.detail)
        notice = notice_for(ev.status, ev.detail)
        if notice is not None:
            self._notify_pool.submit(self.notifier.notify, notice)

    def on_watcher_failed(self, message: str) -> None:
        """The watcher could not start or stopped on an error."""
        if self.paused:
            return
        self.set_state("error", message)
        self._notify_pool.submit(self.notifier.notify, watcher_stopped_notice(message))

    def flush_notifications(self, timeout: float = 10.0) -> None:
        """Wait until every notice submitted so far has been sent (or given to the fallback)."""
        self._notify_pool.submit(lambda: None).result(timeout)

    def show_balloon(self, notice: Notice) -> None:
        """Show ``notice`` as this icon's own message (where there is no notification
        service)."""
        critical = notice.urgency >= CRITICAL
        self.showMessage(
            notice.summary,
            notice.body,
            QSystemTrayIcon.MessageIcon.Critical
            if critical
            else QSystemTrayIcon.MessageIcon.Warning,
        )

    def quit(self) -> None:
        """Stop the watcher, then ask the app to quit."""
        self.stop_watcher()
        self._notify_pool.shutdown(wait=False)
        self.quitRequested.emit()

    def pause(self, seconds: int | None) -> None:
        """Pause face unlock for ``seconds`` (None: until resumed); the watcher stops."""
        self.paused = True
        self.stop_watcher()
        self._resume_timer.stop()
        if seconds is None:
            self.paused_until = None
        else:
            self.paused_until = time.time() + seconds
            self._resume_timer.start(seconds * 1000)
        self.set_state("paused")

    def resume(self) -> None:
        self.paused = False
        self.paused_until = None
        self._resume_timer.stop()
        self.set_state("watching" if self.cfg.watcher.enabled else "idle")
        if self.isVisible():
            self.start_watcher()

    # ---- menu

    def rebuild_menu(self) -> None:
        m = self.menu
        m.clear()
        full = self.status_text()
        # the entry's own margins, the check/icon column and the frame take about 80 px
        room = MENU_MAX_WIDTH - 80
        short = m.fontMetrics().elidedText(full, Qt.TextElideMode.ElideRight, room)
        status = m.addAction(short.replace("&", "&&"))
        assert status is not None
        status.setEnabled(False)
        status.setObjectName("status")
        if short != full:
            status.setToolTip(full)
        if self.config_problem is not None:
            self._add(m, "What is wrong with the settings…",
                      lambda: self.dialog_factory("config_problem"))
        m.addSeparator()
        enrolled = self.store.exists(self.user)
        self._add(m, "&Test recognition…", lambda: self.dialog_factory("test"), enrolled)
        self._add(
            m, "&Recalibrate threshold…", lambda: self.dialog_factory("recalibrate"), enrolled
        )
        self._add(
            m,
            "&Add appearance…" if enrolled else "&Enrol…",
            lambda: self.dialog_factory("enrol"),
        )
        if enrolled:
            self._add(m, "Re&place my face…", lambda: self.dialog_factory("replace"))
        pause = m.addMenu("&Pause")
        assert pause is not None
        pause.setObjectName("pause_menu")
        if self.paused:
            self._add(pause, "&Resume", self.resume)
        for text, secs in PAUSES:
            self._add(pause, text, functools.partial(self.pause, secs))
        m.addSeparator()
        self._add(m, "&Settings…", lambda: self.dialog_factory("settings"))
        self._add(m, "&About", lambda: self.dialog_factory("about"))
        if self.debug:
            dbg = m.addMenu("&Debug")
            assert dbg is not None
            dbg.setObjectName("debug_menu")
            for st in STATES:
                self._add(dbg, f"Set state: {st}", functools.partial(self.set_state, st))
        m.addSeparator()
        self._add(m, "&Quit", self.quit)

    @staticmethod
    def _add(menu: QMenu, text: str, slot: Callable[[], Any], enabled: bool = True) -> QAction:
        act = menu.addAction(text)
        assert act is not None
        act.triggered.connect(lambda _checked=False: slot())
        act.setEnabled(enabled)
        return act

    def action_texts(self) -> list[str]:
        """Top-level menu entries (without separators), for tests and debugging."""
        return [a.text() for a in self.menu.actions() if not a.isSeparator()]

    # ---- windows

    def _open_dialog(self, name: str) -> QWidget | None:
        from faceunlock.ui import dialogs
        from faceunlock.ui.wizard import EnrolWizard

        w: QWidget
        if name == "test":
            w = dialogs.RecognitionTestDialog(self.store, self.cfg, self.user)
        elif name == "recalibrate":
            w = dialogs.RecalibrateDialog(self.store, self.cfg, self.user)
        elif name in ("enrol", "replace"):
            if name == "replace" and (QMessageBox.question(
                None,
                "Replace my face",
                "Start over with a new enrolment? When you press Finish, all your current "
                "face data (every appearance) is replaced by the new pictures. Until then "
                "nothing changes.",
            ) != QMessageBox.StandardButton.Yes or not self.confirm_password(
                self.user, "Replacing your face starts a new enrolment."
            )):
                return None
            wiz = EnrolWizard(self.store, self.cfg, user=self.user, config_path=self.config_path,
                              replace=name == "replace")
            # Finish may have switched the watcher or the camera
            wiz.accepted.connect(lambda: self._settings_saved(wiz.cfg))
            w = wiz
        elif name == "settings":
            d = dialogs.SettingsDialog(self.cfg, self.config_path, store=self.store,
                                       user=self.user)
            d.accepted.connect(lambda: self._settings_saved(d.config))
            d.faceDataChanged.connect(self._face_data_changed)
            w = d
        elif name == "config_problem":
            from faceunlock.ui.config_watch import FIX_HINT

            QMessageBox.warning(
                None, "FaceUnlock: settings file",
                f"{self.config_problem or 'The settings file is good again'}.\n\n{FIX_HINT}",
            )
            return None
        elif name == "about":
            QMessageBox.about(
                None,
                "About FaceUnlock",
                f"FaceUnlock {__version__}\n\nFace unlock for the Linux desktop. Your face "
                "data stays on this machine, encrypted. Your password always works.",
            )
            return None
        else:
            raise ValueError(f"unknown window {name!r}")
        self.windows = [x for x in self.windows if x.isVisible()]
        self.windows.append(w)
        w.show()
        w.raise_()
        w.activateWindow()
        return w

    def show_window(self) -> str:
        """Bring this app's window to the front (a second launch asks): the newest open
        window, else Settings. Its title ("" when none was shown)."""
        open_ = [w for w in self.windows if w.isVisible()]
        w = open_[-1] if open_ else self.dialog_factory("settings")
        if not isinstance(w, QWidget):
            return ""
        w.showNormal()
        w.raise_()
        w.activateWindow()
        return w.windowTitle()

    def _face_data_changed(self) -> None:
        """An appearance was removed or all face data deleted (Settings): without a template
        the watcher stops (nothing to recognise) and the menu offers Enrol."""
        if not self.store.exists(self.user):
            self.stop_watcher()
            if not self.paused:
                self.set_state("idle")
        self.rebuild_menu()

    def _settings_saved(self, cfg: Config) -> None:
        old = self.cfg
        self.cfg = cfg
        if self.paused:
            self.set_state("paused")
            return
        if self.controller is not None and (
            not cfg.watcher.enabled or cfg.watcher.backend != old.watcher.backend
        ):
            self.stop_watcher()
        self.set_state("watching" if cfg.watcher.enabled else "idle")
        if self.isVisible():
            self.start_watcher()
