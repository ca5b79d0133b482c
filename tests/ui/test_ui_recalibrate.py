"""Recalibrate with a live check (the recognition-test worker on the woman's clip), and
naming the appearance added by Re-enrol; cancel paths save nothing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QWidget, QWizard
from pytestqt.qtbot import QtBot

from faceunlock.config import Config
from faceunlock.engine import calibration as cal
from faceunlock.engine import service
from faceunlock.engine.sources import make_source
from faceunlock.engine.templates import TemplateStore
from faceunlock.ui import wizard as wz
from faceunlock.ui.dialogs import RecalibrateDialog
from faceunlock.ui.wizard import EnrolWizard, WelcomePage
from tests.fakes.clip_material import FAST_CAPTURE, MALE

USER = "alice"


@pytest.fixture()
def enrolled(store: TemplateStore, cfg: Config, female_folder: Path) -> TemplateStore:
    """``store`` with a real 3-anchor template of the woman (appearance "default")."""
    service.enrol(store, USER, cfg, make_source(str(female_folder)),
                  params=service.enrol_params(cfg, 3, guided=False))
    return store


def _dialog(qtbot: QtBot, store: TemplateStore, cfg: Config, spec: str) -> RecalibrateDialog:
    d = RecalibrateDialog(store, cfg, USER, source_spec=spec, live_seconds=600,
                          live_max_frames=12)
    qtbot.addWidget(d)
    d.show()
    qtbot.waitExposed(d)
    assert d.error.text() == ""
    return d


@pytest.mark.slow
def test_live_check_measures_then_saves_the_chosen_level(
    qtbot: QtBot, enrolled: TemplateStore, cfg: Config, female_folder: Path
) -> None:
    d = _dialog(qtbot, enrolled, cfg, str(female_folder))
    n_anchor_scores = d.anchor_genuine.size
    assert n_anchor_scores == 3 and d.panel.genuine.size == 3
    d.live_button.click()
    assert d.live_running
    assert not d.save_button.isEnabled()  # no saving half-way through
    qtbot.waitUntil(lambda: not d.live_running, timeout=120_000)
    assert d.error.text() == ""
    assert d.live_frames >= 1 and len(d.live) >= 1
    assert d.live_frames <= 12 + 1  # the frame budget ended the check
    total = n_anchor_scores + len(d.live)
    assert d.panel.genuine.size == total
    assert d.panel.plot.genuine.size == total
    assert f"Measured {len(d.live)} frames" in d.live_status.text()
    assert d.save_button.isEnabled() and d.live_button.isEnabled()
    d.panel.radios["secure"].click()
    ch = d.panel.choice
    assert ch is not None and ch.level == "secure"
    # the FRR estimate now comes from the live distances too
    g = np.concatenate([d.anchor_genuine, np.asarray(d.live)])
    assert ch.expected_frr == pytest.approx(float(np.mean(g > ch.threshold)))
    d.save_button.click()
    qtbot.waitUntil(lambda: not d.isVisible(), timeout=5_000)
    assert d.result() == QDialog.DialogCode.Accepted
    t = enrolled.load(USER)
    assert t.security_level == "secure"
    assert t.threshold == pytest.approx(ch.threshold)
    assert t.calibration is not None and t.calibration["genuine"]["count"] == total
    assert d.table is not None
    assert t.threshold == pytest.approx(cal.choose_threshold(d.table, 3, g, "secure").threshold)


def _overlaps(parent: QWidget) -> list[str]:
    """Pairs of visible sibling widgets (in ``parent`` and below) whose rectangles overlap."""
    out = []
    direct = Qt.FindChildOption.FindDirectChildrenOnly
    kids = [w for w in parent.findChildren(QWidget, options=direct)
            if w.isVisible() and not w.isWindow()]
    for i, a in enumerate(kids):
        for b in kids[i + 1:]:
            if a.geometry().intersects(b.geometry()):
                out.append(f"{a.objectName() or type(a).__name__} / "
                           f"{b.objectName() or type(b).__name__}")
        out += _overlaps(a)
    return out


@pytest.mark.slow
def test_after_the_live_check_the_dialog_fits_and_nothing_overlaps(
    qtbot: QtBot, enrolled: TemplateStore, cfg: Config, female_folder: Path
) -> None:
    """Issue 15 item 4: after "Check with the camera" the plot's axis labels overlapped the
    caption and the dialog grew past the screen; the button promised "about 10 s" for a check
    that ended with the clip."""
    d = _dialog(qtbot, enrolled, cfg, str(female_folder))
    assert "up to 600 s" in d.live_button.text()
    d.live_button.click()
    qtbot.waitUntil(lambda: not d.live_running, timeout=120_000)
    qtbot.wait(50)  # the dialog re-fits on the next turn of the event loop
    assert not d.preview.isVisible()
    assert d.frameGeometry().width() <= 1280 and d.frameGeometry().height() <= 720 - 40
    assert d.height() >= d.layout().totalHeightForWidth(d.width())
    assert _overlaps(d) == []
    assert f"in {d.live_duration():.0f} s" in d.live_status.text()


@pytest.mark.slow
def test_cancel_during_the_live_check_saves_nothing(
    qtbot: QtBot, enrolled: TemplateStore, cfg: Config, female_folder: Path
) -> None:
    path = enrolled.path(USER)
    before = path.read_bytes()
    d = _dialog(qtbot, enrolled, cfg, str(female_folder))
    d.panel.radios["secure"].click()
    d.live_button.click()
    thread = d.worker_thread
    assert thread is not None
    qtbot.waitUntil(lambda: d.preview.frames_shown >= 1, timeout=60_000)
    cancel = d.buttons.button(QDialogButtonBox.StandardButton.Cancel)
    assert cancel is not None
    cancel.click()
    qtbot.waitUntil(lambda: not d.isVisible(), timeout=10_000)
    assert d.result() == QDialog.DialogCode.Rejected
    assert not thread.is_running()
    assert thread.worker.source is not None and not thread.worker.source.is_open
    assert path.read_bytes() == before


@pytest.mark.slow
def test_no_face_in_the_check_changes_nothing(
    qtbot: QtBot, enrolled: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    blank = tmp_path / "blank"
    blank.mkdir()
    for i in range(4):
        cv2.imwrite(str(blank / f"{i}.png"), np.full((240, 320, 3), 120, np.uint8))
    d = _dialog(qtbot, enrolled, cfg, str(blank))
    before = d.panel.genuine.copy()
    d.live_button.click()
    qtbot.waitUntil(lambda: not d.live_running, timeout=60_000)
    assert d.live == []
    assert "No face was seen" in d.live_status.text()
    assert d.panel.genuine.tolist() == before.tolist()


@pytest.mark.slow
def test_reenrol_names_the_new_appearance(
    qtbot: QtBot, enrolled: TemplateStore, cfg: Config, female_folder: Path
) -> None:
    w = EnrolWizard(enrolled, cfg, user=USER, source_spec=str(female_folder), anchors=3,
                    realtime=False, enrol_overrides=FAST_CAPTURE)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    page = w.currentPage()
    assert isinstance(page, WelcomePage)
    next_button = w.button(QWizard.WizardButton.NextButton)
    assert page.name.text() == "" and not next_button.isEnabled()  # a name is asked for
    hint = page.findChild(QLabel, "appearance_hint")
    assert hint is not None and "another appearance" in hint.text()
    page.name.setText("bad\tname")
    next_button.click()
    assert w.currentId() == wz.PAGE_WELCOME
    assert "1 to 64 ordinary characters" in page.error.text()
    page.name.setText("glasses")
    for want in (wz.PAGE_CAMERA, wz.PAGE_CAPTURE):
        next_button.click()
        qtbot.waitUntil(lambda want=want: w.currentId() == want, timeout=10_000)
    qtbot.waitUntil(w.currentPage().isComplete, timeout=90_000)
    for want in (wz.PAGE_CALIBRATE, wz.PAGE_ENABLE, wz.PAGE_FINISH):
        next_button.click()
        qtbot.waitUntil(lambda want=want: w.currentId() == want, timeout=10_000)
    w.button(QWizard.WizardButton.FinishButton).click()
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=10_000)
    t = enrolled.load(USER)
    assert t.labels() == ["default", "glasses"]
    assert len(t.anchors_for("glasses")) == 3 and len(t) == 6


def test_first_enrolment_suggests_default(
    qtbot: QtBot, store: TemplateStore, cfg: Config
) -> None:
    w = EnrolWizard(store, cfg, user=USER)
    qtbot.addWidget(w)
    page = w.page(wz.PAGE_WELCOME)
    assert isinstance(page, WelcomePage)
    assert page.name.text() == "default" and page.isComplete()


@pytest.mark.slow
def test_add_appearance_with_another_person_is_refused(
    qtbot: QtBot, enrolled: TemplateStore, cfg: Config, clips_dir: Path
) -> None:
    """Add appearance with the man's clip on the woman's template: the live owner check
    fails, the capture never starts, the page says why, and the template is unchanged."""
    before = enrolled.path(USER).read_bytes()
    ids = [a.id for a in enrolled.load(USER).anchors]
    w = EnrolWizard(enrolled, cfg, user=USER, source_spec=str(clips_dir / MALE), anchors=3,
                    realtime=False, enrol_overrides=FAST_CAPTURE)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    page = w.currentPage()
    assert isinstance(page, WelcomePage)
    page.name.setText("glasses")
    for want in (wz.PAGE_CAMERA, wz.PAGE_CAPTURE):
        w.button(QWizard.WizardButton.NextButton).click()
        qtbot.waitUntil(lambda want=want: w.currentId() == want, timeout=10_000)
    cap = w.currentPage()
    assert isinstance(cap, wz.CapturePage)
    assert "checks that you are alice" in cap.feedback.text()
    qtbot.waitUntil(lambda: "enrolled owner" in cap.feedback.text()
                    and "not recognised" in cap.feedback.text(), timeout=60_000)
    qtbot.waitUntil(lambda: cap.retry.isVisible(), timeout=10_000)
    assert not cap.captures and not cap.isComplete()
    w.reject()
    assert enrolled.path(USER).read_bytes() == before
    assert [a.id for a in enrolled.load(USER).anchors] == ids


def test_build_template_refuses_anchors_of_another_person(
    enrolled: TemplateStore, cfg: Config, clips_dir: Path
) -> None:
    """The last line of defence at Finish: captures that do not match the owner are refused
    as a whole, whatever the capture page let through."""
    from faceunlock.engine.enrollment import Capture
    from faceunlock.errors import NotOwnerError

    pipe = service.pipeline_for(cfg)
    with make_source(str(clips_dir / MALE)) as src:
        frames = [f.image for f, _ in zip(src, range(3), strict=False)]
    w = EnrolWizard(enrolled, cfg, user=USER, anchors=3)
    w.captures = [
        Capture(pipe.observe(im, select="largest")[0].embedding, np.zeros((64, 64, 3), np.uint8),
                "frontal", {}, i)
        for i, im in enumerate(frames)
    ]
    with pytest.raises(NotOwnerError, match="whole appearance was refused"):
        w.build_template()
    assert len(enrolled.load(USER)) == 3
    w.deleteLater()
