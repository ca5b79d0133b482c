"""The tray icon: status, test, recalibrate, re-enrol, pause, settings, about, quit.

The menu is rebuilt each time it opens (``aboutToShow``), so it always shows the current
state. The lock-screen watcher does not exist yet: a hidden debug submenu (shown when
``FACEUNLOCK_DEBUG=1`` or ``debug=True``) sets the state by hand.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QColor, QIcon, QPixmap
from PyQt6.QtWidgets import QMenu, QMessageBox, QSystemTrayIcon, QWidget

from faceunlock import __version__
from faceunlock.config import Config
from faceunlock.engine.templates import TemplateStore
from faceunlock.paths import repo_root

STATES = ("watching", "idle", "unlocked", "paused", "error")
STATE_TEXT = {
    "watching": "Watching the lock screen",
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
_FALLBACK_COLOURS = {
    "watching": "#2a6fdb",
    "idle": "#8a8a8a",
    "unlocked": "#2e9e44",
    "paused": "#d08a10",
    "error": "#c62828",
}


def icons_dir() -> Path:
    env = os.environ.get("FACEUNLOCK_ICONS")
    return Path(env) if env else repo_root() / "assets" / "icons"


def state_icon(state: str) -> QIcon:
    """The SVG icon of a state; a plain coloured square when the file is missing."""
    icon = QIcon(str(icons_dir() / f"{state}.svg"))
    if icon.isNull() or icon.pixmap(16).isNull():
        pix = QPixmap(32, 32)
        pix.fill(QColor(_FALLBACK_COLOURS.get(state, "#8a8a8a")))
        icon = QIcon(pix)
    return icon


class TrayIcon(QSystemTrayIcon):
    """``store``/``cfg``/``user``: what the dialogs work on; ``config_path``: where Settings
    writes; ``dialog_factory(name, **kw)``: opens a window (tests replace it)."""

    quitRequested = pyqtSignal()
    stateChanged = pyqtSignal(str)

    def __init__(
        self,
        store: TemplateStore,
        cfg: Config,
        user: str,
        *,
        config_path: str | Path | None = None,
        debug: bool | None = None,
        dialog_factory: Callable[..., Any] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.cfg = cfg
        self.user = user
        self.config_path = config_path
        self.debug = debug if debug is not None else os.environ.get("FACEUNLOCK_DEBUG") == "1"
        self.dialog_factory = dialog_factory or self._open_dialog
        self.state = "idle"
        self.paused = False
        self.paused_until: float | None = None  # time.time() when the pause ends
        self.windows: list[QWidget] = []
        self._resume_timer = QTimer(self)
        self._resume_timer.setSingleShot(True)
        self._resume_timer.timeout.connect(self.resume)
        self.menu = QMenu()
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.setContextMenu(self.menu)
        self.set_state("watching" if cfg.watcher.enabled else "idle")
        self.rebuild_menu()

    # ---- state

    def set_state(self, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"unknown tray state {state!r}")
        self.state = state
        self.setIcon(state_icon(state))
        self.setToolTip(f"FaceUnlock: {self.status_text()}")
        self.stateChanged.emit(state)

    def status_text(self) -> str:
        if self.paused:
            if self.paused_until is None:
                return "Paused until resumed"
            return "Paused until " + time.strftime("%H:%M", time.localtime(self.paused_until))
        if not self.store.exists(self.user):
            return "Not enrolled"
        return STATE_TEXT[self.state]

    def pause(self, seconds: int | None) -> None:
        """Pause face unlock for ``seconds`` (None: until resumed)."""
        self.paused = True
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

    # ---- menu

    def rebuild_menu(self) -> None:
        m = self.menu
        m.clear()
        status = m.addAction(self.status_text())
        assert status is not None
        status.setEnabled(False)
        status.setObjectName("status")
        m.addSeparator()
        enrolled = self.store.exists(self.user)
        self._add(m, "&Test recognition…", lambda: self.dialog_factory("test"), enrolled)
        self._add(
            m, "&Recalibrate threshold…", lambda: self.dialog_factory("recalibrate"), enrolled
        )
        self._add(
            m,
            "Re-&enrol / Add appearance…" if enrolled else "&Enrol…",
            lambda: self.dialog_factory("enrol"),
        )
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
        self._add(m, "&Quit", self.quitRequested.emit)

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
        elif name == "enrol":
            w = EnrolWizard(self.store, self.cfg, user=self.user)
        elif name == "settings":
            d = dialogs.SettingsDialog(self.cfg, self.config_path)
            d.accepted.connect(lambda: self._settings_saved(d.config))
            w = d
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

    def _settings_saved(self, cfg: Config) -> None:
        self.cfg = cfg
        if not self.paused:
            self.set_state("watching" if cfg.watcher.enabled else "idle")
