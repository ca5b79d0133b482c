"""The running app follows the config file: :class:`ConfigWatcher` re-reads it when it changes.

A ``QFileSystemWatcher`` watches the file and the folder that holds it (the nearest existing
folder above it, while the file's own folder does not exist yet). The folder matters: an
editor or ``faceunlock config set`` writes a new file and renames it over the old one, and a
watch on the old file ends with that file. Changes are read after a short pause (an editor may
write in several steps), and only when the bytes of the file differ from the last ones read.

A good file is emitted as ``changed(Config)``; a file that has become broken (not TOML, a bad
value, unreadable) as ``broken(message)``, in words that name the file and the problem. The
last good config stays :attr:`ConfigWatcher.config` until the file is fixed.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QFileSystemWatcher, QObject, QTimer, pyqtSignal

from faceunlock.config import Config, load_config
from faceunlock.errors import FaceUnlockError
from faceunlock.paths import config_path

#: what a broken file's message ends with: how to fix it
FIX_HINT = (
    "FaceUnlock keeps its last good settings until the file is fixed (`faceunlock config "
    "edit`, or `faceunlock config reset KEY`)."
)


def home_short(path: Path) -> str:
    """``path`` with the home folder written as ``~``."""
    try:
        return str(Path("~") / path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def broken_message(path: Path, error: Exception) -> str:
    """``error`` (a config file's problem, usually starting with the file's name) as one
    line that names the file and the problem (:data:`FIX_HINT` says what to do)."""
    text = str(error).strip()
    for prefix in (f"{path}:", f"{path.resolve()}:"):
        if text.startswith(prefix):
            text = text[len(prefix):].strip()
    return f"The settings file {home_short(path)} has a problem: {text.rstrip('.')}"


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:  # unreadable: a problem load_config names too; remember its kind
        return f"\0{type(e).__name__}".encode()


class ConfigWatcher(QObject):
    """Watches ``path`` (default :func:`faceunlock.paths.config_path`), reading it
    ``delay_ms`` after the last change seen. ``config``: the last good config (None when the
    file was already broken at the start); ``problem``: the current problem's message, or
    None while the file is good."""

    changed = pyqtSignal(object)  # Config
    broken = pyqtSignal(str)

    def __init__(
        self, path: str | Path | None = None, *, delay_ms: int = 300,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.path = Path(path) if path is not None else config_path()
        self.config: Config | None = None
        self.problem: str | None = None
        self.reloads = 0  # how many times the file was read again after a change
        self._fs = QFileSystemWatcher(self)
        self._fs.fileChanged.connect(self._poke)
        self._fs.directoryChanged.connect(self._poke)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self.check)
        self._seen = _read(self.path)
        self._load()
        self._watch()

    def watched(self) -> list[str]:
        """The paths watched now (the file, when it exists, and a folder)."""
        return [*self._fs.files(), *self._fs.directories()]

    def _watch(self) -> None:
        """(Re)add the file and its folder: a file replaced by a rename is watched again, a
        folder created meanwhile is watched instead of its parent."""
        folder = self.path.parent
        while not folder.is_dir() and folder != folder.parent:
            folder = folder.parent
        stale = [d for d in self._fs.directories() if Path(d) != folder]
        if stale:
            self._fs.removePaths(stale)
        if str(folder) not in self._fs.directories():
            self._fs.addPath(str(folder))
        if self.path.is_file() and str(self.path) not in self._fs.files():
            self._fs.addPath(str(self.path))

    def _poke(self, _path: str = "") -> None:
        self._watch()
        self._timer.start()

    def _load(self) -> bool:
        """Read the file: True when it is good (``config`` is then the new config)."""
        try:
            cfg = load_config(self.path)
        except FaceUnlockError as e:
            self.problem = broken_message(self.path, e)
            return False
        self.problem = None
        self.config = cfg
        return True

    def check(self) -> None:
        """Read the file now if its bytes changed, and emit ``changed`` or ``broken``."""
        self._watch()
        data = _read(self.path)
        if data == self._seen:
            return
        self._seen = data
        self.reloads += 1
        if self._load():
            assert self.config is not None
            self.changed.emit(self.config)
        else:
            assert self.problem is not None
            self.broken.emit(self.problem)
