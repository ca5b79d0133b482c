"""A real X11 window and a real system tray: start Xvfb, run Qt in a child process (the test
process's QApplication is offscreen).

* the wizard and the tray menu are grabbed with QWidget.grab() and the pictures checked;
* with Debian's ``trayer`` as the tray host (XEmbed system tray), the real TrayIcon is
  embedded, its menu opened by a right-click on the icon (``xdotool``, through the X server
  as a user's click) and "Pause > For 15 minutes" clicked: the tray is paused.

Skipped only when Xvfb, trayer or xdotool is not installed (``scripts/setup.sh --dev``
installs them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
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


def _run_qt_child(code: str, tmp_path: Path, env: dict[str, str], timeout: float
                  ) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child interpreter on the X display of ``env``; skip the test when Qt's
    xcb platform cannot start at all (a machine problem, not a FaceUnlock one)."""
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0 and "xcb" in res.stderr and "could not" in res.stderr.lower():
        pytest.skip(f"Qt's xcb platform cannot start here: {res.stderr[-300:]}")
    return res


def test_wizard_screenshot_under_xvfb(tmp_path: Path, xvfb_display: str) -> None:
    env = {**os.environ, "DISPLAY": xvfb_display, "QT_QPA_PLATFORM": "xcb"}
    env.pop("WAYLAND_DISPLAY", None)
    res = _run_qt_child(CHILD, tmp_path, env, 90)
    assert res.returncode == 0, res.stderr[-2000:]
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


TRAY_CHILD = r"""
import json, os, subprocess, sys, time
from pathlib import Path
from PyQt6.QtWidgets import QApplication, QMenu, QSystemTrayIcon
from faceunlock.config import Config
from faceunlock.engine.templates import StaticKeyProvider, TemplateStore
from faceunlock.ui.tray import TrayIcon

out = Path(sys.argv[1])
app = QApplication([])
assert app.platformName() == "xcb", app.platformName()
seen = {}


def wait_for(cond, what, timeout=30.0):
    # spin the event loop until cond() (a wait with a timeout, like qtbot.waitUntil)
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            print(json.dumps(seen), flush=True)
            sys.exit(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()


def click(button, x, y):
    subprocess.run(["xdotool", "mousemove", str(x), str(y), "click", str(button)], check=True)


def click_action(menu, text, button=1):
    act = next(a for a in menu.actions() if a.text() == text)
    c = menu.mapToGlobal(menu.actionGeometry(act).center())
    click(button, c.x(), c.y())
    return act


wait_for(QSystemTrayIcon.isSystemTrayAvailable, "the system tray (trayer)")
seen["tray_available"] = True
store = TemplateStore(out / "templates", StaticKeyProvider(os.urandom(32)))
opened = []
tray = TrayIcon(store, Config(), "alice", dialog_factory=opened.append)
tray.show()
half = app.primaryScreen().geometry().width() // 2
# embedded: trayer (top right) has placed the icon in its panel
wait_for(lambda: tray.geometry().width() > 0 and tray.geometry().x() >= half, "the embedded icon")
g = tray.geometry()
seen["icon"] = [g.x(), g.y(), g.width(), g.height()]

# a right-click on the icon opens its menu, rebuilt as it opens
click(3, g.center().x(), g.center().y())
wait_for(tray.menu.isVisible, "the tray menu")
seen["menu_visible"] = True
seen["menu"] = tray.action_texts()
pause = next(a.menu() for a in tray.menu.actions() if a.text() == "&Pause")
click_action(tray.menu, "&Pause")
wait_for(pause.isVisible, "the Pause submenu")
seen["pause_menu"] = [a.text() for a in pause.actions()]
click_action(pause, "For 15 minutes")
wait_for(lambda: tray.state == "paused" and not tray.menu.isVisible(), "the pause")
seen["state"] = tray.state
seen["paused_until"] = tray.paused_until is not None

# open it again: the status line now says paused; Escape closes it
click(3, g.center().x(), g.center().y())
wait_for(tray.menu.isVisible, "the tray menu, again")
seen["status_after"] = tray.action_texts()[0]
subprocess.run(["xdotool", "key", "Escape"], check=True)
wait_for(lambda: not tray.menu.isVisible(), "the menu to close")
seen["closed_by_escape"] = True
seen["opened"] = opened
tray.hide()
print(json.dumps(seen), flush=True)
"""


#: a panel at the top right of the screen whose width follows its icons
TRAYER = [
    "trayer",
    *("--edge", "top", "--align", "right", "--widthtype", "request", "--height", "32"),
    *("--SetDockType", "true", "--transparent", "false"),
]


def test_tray_menu_through_a_real_tray_host(tmp_path: Path, xvfb_display: str) -> None:
    for tool, pkg in (("trayer", "trayer"), ("xdotool", "xdotool")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian: apt-get install {pkg})")
    from tests.fakes import fake_screensaver as fs

    display = xvfb_display
    bus_root = Path(tempfile.mkdtemp(prefix="fu-tr-"))  # short: unix socket paths max 108 bytes
    trayer: subprocess.Popen[bytes] | None = None
    bus = None
    try:
        # a session bus of its own: no StatusNotifierWatcher on it, so Qt embeds the icon
        # through XEmbed into trayer (and nothing autolaunches a bus for the display)
        bus = fs.start_bus(bus_root, "session")
        env = {
            **os.environ,
            "DISPLAY": display,
            "QT_QPA_PLATFORM": "xcb",
            "DBUS_SESSION_BUS_ADDRESS": bus.address,
        }
        env.pop("WAYLAND_DISPLAY", None)
        env.pop("FACEUNLOCK_DEBUG", None)
        trayer = subprocess.Popen(
            TRAYER,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "trayer.log", "wb"),  # noqa: SIM115
        )
        res = _run_qt_child(TRAY_CHILD, tmp_path, env, 120)
        trayer_log = (tmp_path / "trayer.log").read_text(errors="replace")[-1000:]
        assert res.returncode == 0, f"{res.stdout[-2000:]}\n{res.stderr[-2000:]}\n{trayer_log}"
    finally:
        if trayer is not None:
            fs.stop_process(trayer)
        if bus is not None:
            bus.close()
        shutil.rmtree(bus_root, ignore_errors=True)
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert seen["tray_available"]
    assert seen["icon"][2] > 0 and seen["icon"][3] > 0
    assert seen["menu_visible"]
    assert seen["menu"][0] == "Not enrolled"
    assert "&Pause" in seen["menu"] and "&Quit" in seen["menu"]
    assert seen["pause_menu"] == ["For 15 minutes", "For 1 hour", "Until resumed"]
    assert seen["state"] == "paused" and seen["paused_until"]
    assert seen["status_after"].startswith("Paused until ")
    assert seen["closed_by_escape"]
    assert seen["opened"] == []  # no window was opened by mistake


SHOTS_CHILD = r"""
import json, os, sys, time
from pathlib import Path
from PyQt6.QtWidgets import QApplication
from faceunlock.config import Config, config_set
from faceunlock.engine.templates import StaticKeyProvider, TemplateStore
from faceunlock.errors import WatcherError, plain_message
from faceunlock.ui.dialogs import RecognitionTestDialog
from faceunlock.ui.tray import TrayIcon
from faceunlock.unlock.notify import Notifier

out, root, key, genuine = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
app = QApplication([])
assert app.platformName() == "xcb", app.platformName()
seen = {}


def pump(seconds, until=None):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (until is not None and until()):
        app.processEvents()
        time.sleep(0.01)
    for _ in range(20):
        app.processEvents()


store = TemplateStore(root / "templates", StaticKeyProvider(bytes.fromhex(key)))
cfg = Config()
for k, v in (("detector.min_face", "50"), ("detector.max_face", "160"), ("auth.timeout", "5")):
    cfg = config_set(cfg, k, v)
# the tray menu with the longest status there is: no lock-screen service, with its D-Bus words
tray = TrayIcon(store, cfg, "alice", notifier=Notifier(fallback=lambda n: None))
tray.set_state("error", plain_message(WatcherError(
    "no lock-screen service to watch: cannot connect to the session bus: [Errno 2] No such "
    "file or directory: '/run/user/1000/bus'; neither org.gnome.ScreenSaver nor "
    "org.mate.ScreenSaver nor org.freedesktop.ScreenSaver has an owner on the session bus")))
tray.menu.aboutToShow.emit()
tray.menu.popup(app.primaryScreen().availableGeometry().center())
pump(5.0, tray.menu.isVisible)
pic = tray.menu.grab()
pic.save(str(out / "menu-long-status.png"))
seen["menu"] = [tray.menu.width(), pic.width(), tray.menu.frameGeometry().width()]
seen["status"] = tray.action_texts()[0]
tray.menu.hide()
# the Test dialog after her attempt: the picture with the box, the result
d = RecognitionTestDialog(store, cfg, "alice", source_spec=genuine)
d.show()
pump(90.0, lambda: d.outcome is not None and not d.running)
pump(0.3)
d.grab().save(str(out / "test-dialog.png"))
parts = [d.preview, d.result_label, d.explanation, d.buttons]
seen["overlaps"] = [f"{a.objectName() or type(a).__name__} / {b.objectName()}"
                    for i, a in enumerate(parts) for b in parts[i + 1:]
                    if a.geometry().intersects(b.geometry())]
seen["result"] = d.result_label.text()
seen["error"] = d.error.text()
d.reject()
print(json.dumps(seen), flush=True)
"""


def test_long_status_menu_and_test_dialog_screenshots(
    tmp_path: Path, xvfb_display: str, clips_dir: Path
) -> None:
    """Real X11 windows: the tray menu with a long status is at most 480 px wide, and the Test
    dialog after the owner's attempt shows her picture with a green face box and the result."""
    from PyQt6.QtGui import QImage

    from tests.fakes.clip_material import EnrolledClips

    clips = EnrolledClips(tmp_path / "clips", clips_dir)
    env = {**os.environ, "DISPLAY": xvfb_display, "QT_QPA_PLATFORM": "xcb"}
    env.pop("WAYLAND_DISPLAY", None)
    res = subprocess.run(
        [sys.executable, "-c", SHOTS_CHILD, str(tmp_path), str(tmp_path / "clips"),
         clips.key.hex(), str(clips.genuine)],
        env=env, capture_output=True, text=True, timeout=240,
    )
    if res.returncode != 0 and "xcb" in res.stderr and "could not" in res.stderr.lower():
        pytest.skip(f"Qt's xcb platform cannot start here: {res.stderr[-300:]}")
    assert res.returncode == 0, res.stderr[-3000:]
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert max(seen["menu"]) <= 480, seen["menu"]
    assert seen["status"].startswith("Problem: ") and seen["status"].endswith("…")
    menu = QImage(str(tmp_path / "menu-long-status.png"))
    assert 200 < menu.width() <= 480
    assert seen["error"] == "" and seen["result"] == "Recognised — this would unlock"
    assert seen["overlaps"] == []  # the picture covers none of the words
    shot = QImage(str(tmp_path / "test-dialog.png"))
    assert shot.width() >= 400 and shot.height() >= 300
    greens = sum(
        1 for x in range(0, shot.width(), 2) for y in range(0, shot.height(), 2)
        if (c := shot.pixelColor(x, y)).green() > 150 and c.red() < 110 and c.blue() < 110
    )
    assert greens > 20, "no green face box in the Test dialog's picture"
