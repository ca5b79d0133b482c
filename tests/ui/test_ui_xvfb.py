"""A real X11 window: start Xvfb, show the wizard in a child process (the test process's
QApplication is offscreen), grab it with QWidget.grab() and check the picture."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHILD = r"""
import os, sys
from pathlib import Path
from PyQt6.QtWidgets import QApplication
from faceunlock.config import Config
from faceunlock.engine.templates import StaticKeyProvider, TemplateStore
from faceunlock.ui.tray import TrayIcon
from faceunlock.ui.wizard import EnrolWizard

out = Path(sys.argv[1])
app = QApplication([])
assert app.platformName() == "xcb", app.platformName()
store = TemplateStore(out / "templates", StaticKeyProvider(os.urandom(32)))
w = EnrolWizard(store, Config(), user="alice", source_spec=str(out / "none.mp4"))
w.show()
for _ in range(50):
    app.processEvents()
w.grab().save(str(out / "wizard.png"))
tray = TrayIcon(store, Config(), "alice")
tray.show()
app.processEvents()
tray.menu.aboutToShow.emit()
tray.menu.grab().save(str(out / "menu.png"))
w.reject()
print("ok", w.width(), w.height())
"""


def _start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    r, wfd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(wfd), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(wfd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(wfd)
    with os.fdopen(r) as f:
        num = f.readline().strip()
    if not num:
        proc.kill()
        pytest.skip("Xvfb did not start")
    return proc, f":{num}"


def test_wizard_screenshot_under_xvfb(tmp_path: Path) -> None:
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed")
    proc, display = _start_xvfb()
    try:
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
        env.pop("WAYLAND_DISPLAY", None)
        res = subprocess.run(
            [sys.executable, "-c", CHILD, str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        if res.returncode != 0 and "xcb" in res.stderr and "could not" in res.stderr.lower():
            pytest.skip(f"Qt's xcb platform cannot start here: {res.stderr[-300:]}")
        assert res.returncode == 0, res.stderr[-2000:]
    finally:
        proc.terminate()
        proc.wait(10)
    from PyQt6.QtGui import QImage

    for name in ("wizard.png", "menu.png"):
        p = tmp_path / name
        assert p.is_file() and p.stat().st_size > 1000, name
        img = QImage(str(p))
        assert not img.isNull() and img.width() > 50 and img.height() > 50
        colours = {
            img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)
        }
        assert len(colours) > 3, f"{name} is blank"
