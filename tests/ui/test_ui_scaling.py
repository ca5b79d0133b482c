"""The wizard (every page, the woman's clip as the camera), the Recalibrate dialog, the
Settings dialog (with "Your face") and the Test dialog (after its attempt) at 100 % and 200 %
scaling: nothing clipped, nothing larger than the screen.

Each scale runs in a child process (the test process's QApplication cannot change its scale)
with ``QT_SCALE_FACTOR`` set and Qt's offscreen platform given a screen of its own: 1280x720
logical pixels, that is 2560x1440 at 200 %, the smallest screen desktops run at 200 % by
default. The clip is reached through a long folder path, as a user's video may be: the source
pickers must not grow the window past the screen for it.

In the child, on every page and dialog, each visible QLabel, QPushButton, QCheckBox,
QRadioButton and QComboBox is at least its minimumSizeHint() (sizeHint() for buttons; a
word-wrapped label at least its height for its width), each wizard page is at least its own
minimum size (nothing needs a scroll bar) and every window fits the screen's available
geometry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FEMALE = "head-pose-face-detection-female.gif"
#: the screen in logical pixels (device pixels: this times the scale)
SCREEN = (1280, 720)

CHILD = r"""
import json, os, sys, time
from pathlib import Path
from PyQt6.QtWidgets import (
    QAbstractButton, QApplication, QComboBox, QLabel, QWidget, QWizard, QWizardPage,
)
from faceunlock.config import Config, config_set
from faceunlock.engine.templates import StaticKeyProvider, TemplateStore
from faceunlock.ui.dialogs import RecalibrateDialog, RecognitionTestDialog, SettingsDialog
from faceunlock.ui.widgets import PreviewLabel
from faceunlock.ui.wizard import EnrolWizard

out, clip, scale = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
app = QApplication([])
screen = app.primaryScreen()
avail = screen.availableGeometry()
report = {"dpr": screen.devicePixelRatio(), "screen": [avail.width(), avail.height()],
          "pages": [], "problems": []}


def pump(seconds, until=None):
    # spin the event loop until until() or the time is up (a wait, like qtbot.waitUntil)
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (until is not None and until()):
        app.processEvents()
        time.sleep(0.01)
    for _ in range(20):
        app.processEvents()


def where(wdg):
    text = wdg.text() if hasattr(wdg, "text") else wdg.currentText()
    return f"{type(wdg).__name__} {wdg.objectName()!r} {text[:60]!r}"


def check(name, window, page=None):
    # every visible text widget at least the size it asks for; the window inside the screen
    bad = report["problems"]
    for wdg in window.findChildren(QWidget):
        if not wdg.isVisible() or isinstance(wdg, PreviewLabel):
            continue
        if isinstance(wdg, QLabel) and wdg.wordWrap() and wdg.text():
            need = (wdg.minimumSizeHint().width(), wdg.heightForWidth(wdg.width()))
        elif isinstance(wdg, QAbstractButton):
            need = (wdg.sizeHint().width(), wdg.sizeHint().height())
        elif isinstance(wdg, (QLabel, QComboBox)):
            need = (wdg.minimumSizeHint().width(), wdg.minimumSizeHint().height())
        else:
            continue
        if wdg.width() < need[0] or wdg.height() < need[1]:
            bad.append(f"{name}: {where(wdg)} is {wdg.width()}x{wdg.height()}, needs {need}")
    if page is not None:
        m = page.minimumSizeHint()
        need_h = m.height()
        if page.layout() is not None and page.layout().hasHeightForWidth():
            need_h = max(need_h, page.heightForWidth(page.width()))
        if page.width() < m.width() or page.height() < need_h:
            bad.append(f"{name}: the page is {page.width()}x{page.height()}, needs "
                       f"{m.width()}x{need_h} (a scroll bar or cut-off content)")
    g = window.frameGeometry()
    if g.width() > avail.width() or g.height() > avail.height():
        bad.append(f"{name}: the window is {g.width()}x{g.height()}, the screen "
                   f"{avail.width()}x{avail.height()}")
    pic = window.grab()
    pic.save(str(out / f"{name}.png"))
    if pic.width() < int(window.width() * scale) or pic.devicePixelRatio() != scale:
        bad.append(f"{name}: grabbed at {pic.devicePixelRatio()}x, not {scale}x")
    report["pages"].append([name, window.width(), window.height()])


cfg = Config()
for k, v in (("detector.min_face", "50"), ("detector.max_face", "160")):
    cfg = config_set(cfg, k, v)
store = TemplateStore(out / "templates", StaticKeyProvider(os.urandom(32)))
w = EnrolWizard(store, cfg, user="alice", source_spec=clip, anchors=3,
                config_path=out / "config.toml")
w.show()
names = ["welcome", "camera", "capture", "calibrate", "enable", "finish"]
for i, name in enumerate(names):
    page = w.currentPage()
    if name == "camera":
        pump(30.0, lambda: page.preview.frames_shown >= 2)
    else:
        pump(90.0, page.isComplete)
    if not page.isComplete():
        sys.exit(f"the {name} page did not complete")
    check(f"wizard-{name}", w, page)
    if i < len(names) - 1:
        w.next()
        pump(0.2)
w.button(QWizard.WizardButton.FinishButton).click()
pump(5.0, lambda: not w.isVisible())
if not store.exists("alice"):
    sys.exit("Finish saved no template")
d = RecalibrateDialog(store, cfg, "alice", source_spec=clip)
d.show()
pump(0.5)
check("recalibrate", d)
d.reject()
s = SettingsDialog(w.cfg, config_path=out / "config.toml", store=store, user="alice")
s.show()  # the long path is its camera
pump(0.5)
check("settings", s)
s.reject()
t = RecognitionTestDialog(store, cfg, "alice", source_spec=clip)
t.show()
pump(60.0, lambda: t.outcome is not None and not t.running)
if t.outcome is None:
    sys.exit(f"the test attempt gave no result: {t.error.text()}")
check("test", t)
t.reject()
print(json.dumps(report), flush=True)
"""


@pytest.mark.parametrize("scale", [1, 2])
def test_wizard_and_dialogs_fit_and_nothing_is_clipped(
    scale: int, clips_dir: Path, tmp_path: Path
) -> None:
    # a video under a long folder path (no spaces to wrap at), as a user's may be
    folder = tmp_path / "videos" / ("face-unlock-enrolment-recorded-with-the-laptop-webcam-"
                                    "in-the-living-room-on-a-rainy-afternoon-2026-11-26")
    folder = folder / "another-long-folder-name-that-makes-the-path-longer-still"
    folder.mkdir(parents=True)
    clip = folder / FEMALE
    clip.symlink_to(clips_dir / FEMALE)
    assert len(str(clip)) > 200
    screens = tmp_path / "screen.json"
    w, h = SCREEN
    screens.write_text(json.dumps({"screens": [{
        "name": "screen", "x": 0, "y": 0, "width": w * scale, "height": h * scale,
        "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1,
    }]}))
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": f"offscreen:configfile={screens}",
        "QT_SCALE_FACTOR": str(scale),
    }
    for k in ("QT_SCREEN_SCALE_FACTORS", "QT_AUTO_SCREEN_SCALE_FACTOR"):
        env.pop(k, None)
    out = tmp_path / "out"
    out.mkdir()
    res = subprocess.run(
        [sys.executable, "-c", CHILD, str(out), str(clip), str(scale)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, f"{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["dpr"] == scale
    assert report["screen"] == list(SCREEN)
    assert [p[0] for p in report["pages"]] == [
        *(f"wizard-{n}" for n in ("welcome", "camera", "capture", "calibrate", "enable",
                                  "finish")),
        "recalibrate",
        "settings",
        "test",
    ]
    assert report["problems"] == []
