"""Screenshots of every wizard page, the tray menu (also with a long status), the Recalibrate
dialog (after its live check), the Test dialog (after an attempt) and Settings, in real X11
windows under Xvfb; and the Camera page and the tray menu at 200 %
scaling (``QT_SCALE_FACTOR=2``) as ``wizard-2-camera@2x.png`` and ``tray-menu@2x.png``.

    python tools/screenshots.py [--out docs/screenshots]

Needs Debian's xvfb and ../shared/datasets/clips (the woman's webcam clip is the camera). The
wizard is driven page by page as a user would; each page is grabbed once it is complete, and
Cancel's question after the capture as ``wizard-3-cancel.png`` (answered Keep).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

#: shared by both runs: the app, the config with the clip as the camera, the throw-away store
#: (the 200 % run finds the template the 100 % run saved), a pump and a tray-menu grab
COMMON = r"""
import os, sys, time
from pathlib import Path
from PyQt6.QtWidgets import QApplication, QPushButton, QToolButton
from faceunlock.config import Config, config_set
from faceunlock.engine.templates import StaticKeyProvider, TemplateStore
from faceunlock.ui.dialogs import RecalibrateDialog, RecognitionTestDialog, SettingsDialog
from faceunlock.ui.tray import TrayIcon
from faceunlock.ui.wizard import EnrolWizard

out, clip, tmp, scale = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
KEY = bytes(32)
app = QApplication([])
assert app.primaryScreen().devicePixelRatio() == float(scale)
cfg = Config()
# the clip is the configured camera, so Finish has no camera to save (and says nothing of it)
for k, v in (("detector.min_face", "50"), ("detector.max_face", "160"), ("camera.source", clip)):
    cfg = config_set(cfg, k, v)
store = TemplateStore(tmp / "templates", StaticKeyProvider(KEY))
w = EnrolWizard(store, cfg, user="alice", source_spec=clip, anchors=5,
                config_path=tmp / f"config-{scale}x.toml")
w.resize(760, 600)
w.show()

def pump(seconds, until=None):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)
        if until is not None and until():
            for _ in range(20):
                app.processEvents()
            return True
    return False

def grab_tray_menu(path, detail=None):
    from faceunlock.unlock.notify import Notifier

    tray = TrayIcon(store, cfg, "alice", notifier=Notifier(fallback=lambda n: None))
    tray.show()
    if detail is not None:  # the watcher's error: the status line is elided at 480 px
        tray.set_state("error", detail)
    tray.menu.aboutToShow.emit()
    tray.menu.adjustSize()
    pump(0.5)
    tray.menu.grab().save(str(path))
"""

#: every wizard page, the tray menu, the Recalibrate dialog (100 %)
CHILD = COMMON + r"""
names = ["1-welcome", "2-camera", "3-capture", "4-calibrate", "5-enable", "6-finish"]
for i, name in enumerate(names):
    page = w.currentPage()
    wait = 2.0 if name in ("1-welcome", "5-enable", "6-finish") else 60.0
    if name == "2-camera":
        pump(4.0)  # let the live preview draw frames
    else:
        pump(wait, page.isComplete)
    w.grab().save(str(out / f"wizard-{name}.png"))
    if name == "3-capture":  # Cancel now would lose the pictures: it asks first
        w.reject()
        pump(0.5)
        w.discard_box.grab().save(str(out / "wizard-3-cancel.png"))  # its own window
        w.discard_box.findChild(QPushButton, "keep").click()
        pump(0.3)
    if name == "5-enable":  # what the photo check levels mean, opened
        page.findChild(QToolButton, "liveness_details").click()
        pump(0.3)
        w.grab().save(str(out / "wizard-5-enable-details.png"))
        page.findChild(QToolButton, "liveness_details").click()
    if i < len(names) - 1:
        w.next()
        pump(0.5)
w.accept()  # Finish: saves the template, as a user pressing Finish would
pump(0.5)
grab_tray_menu(out / "tray-menu.png")
d = RecalibrateDialog(store, cfg, "alice", source_spec=clip, live_max_frames=60)
d.resize(720, 760)
d.show()
pump(1.0)
d.start_live()
pump(120.0, lambda: not d.live_running)
d.grab().save(str(out / "recalibrate.png"))
d.reject()
from faceunlock.errors import WatcherError, plain_message
grab_tray_menu(out / "tray-menu-long-status.png", plain_message(WatcherError(
    "no lock-screen service to watch: cannot connect to the session bus: [Errno 2] No such "
    "file or directory: '/run/user/1000/bus'")))
t = RecognitionTestDialog(store, cfg, "alice", source_spec=clip)
t.show()
pump(90.0, lambda: t.outcome is not None and not t.running)
pump(0.3)
t.grab().save(str(out / "test-dialog.png"))
t.reject()
s = SettingsDialog(cfg, tmp / "config-1x.toml", store=store, user="alice")
s.show()
pump(0.5)
s.grab().save(str(out / "settings.png"))
s.reject()
print("ok", store.exists("alice"))
"""


#: the Camera page and the tray menu at 200 % (QT_SCALE_FACTOR=2): pictures of twice the pixels
HIDPI_CHILD = COMMON + r"""
pump(0.5)
from PyQt6.QtWidgets import QLineEdit
w.currentPage().findChild(QLineEdit, "appearance_name").setText("glasses")  # enrolled: a name
w.next()
pump(4.0)  # let the live preview draw frames
assert type(w.currentPage()).__name__ == "CameraPage", type(w.currentPage()).__name__
w.grab().save(str(out / "wizard-2-camera@2x.png"))
w.reject()
pump(0.5)
grab_tray_menu(out / "tray-menu@2x.png")
print("ok")
"""


def start_xvfb(size: str = "1280x1024") -> tuple[subprocess.Popen[bytes], str]:
    r, wfd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(wfd), "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
        pass_fds=(wfd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(wfd)
    with os.fdopen(r) as f:
        num = f.readline().strip()
    if not num:
        proc.kill()
        raise SystemExit("Xvfb did not start")
    return proc, f":{num}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    repo = Path(__file__).resolve().parent.parent
    ap.add_argument("--out", type=Path, default=repo / "docs" / "screenshots")
    from faceunlock.paths import shared_dir

    ap.add_argument("--clip", type=Path, default=shared_dir() / "datasets" / "clips"
                    / "head-pose-face-detection-female.gif")
    a = ap.parse_args()
    if shutil.which("Xvfb") is None:
        raise SystemExit("Xvfb is not installed (apt-get install xvfb)")
    a.out.mkdir(parents=True, exist_ok=True)
    import tempfile

    # 100 %, then 200 % on a screen of twice the pixels (2560x1600: 1280x800 at 200 %); the
    # second run shows the tray of the user the first one enrolled
    with tempfile.TemporaryDirectory() as tmp:
        for child, size, scale in ((CHILD, "1280x1024", "1"), (HIDPI_CHILD, "2560x1600", "2")):
            proc, display = start_xvfb(size)
            try:
                env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb",
                       "QT_SCALE_FACTOR": scale}
                for k in ("WAYLAND_DISPLAY", "QT_SCREEN_SCALE_FACTORS"):
                    env.pop(k, None)
                res = subprocess.run([sys.executable, "-c", child, str(a.out), str(a.clip), tmp,
                                      scale],
                                     env=env, capture_output=True, text=True, timeout=300)
                if res.returncode != 0:
                    print(res.stderr[-3000:], file=sys.stderr)
                    return 1
            finally:
                proc.terminate()
                proc.wait(10)
    for p in sorted(a.out.glob("*.png")):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
