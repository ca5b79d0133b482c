"""The enrolment wizard, driven like a user would: keyboard navigation, a real capture from
the woman's clip (as an image folder), calibration, Finish saves; Cancel saves nothing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QLabel, QMessageBox, QPushButton, QWidget, QWizard
from pytestqt.qtbot import QtBot

from faceunlock.config import Config, config_set, load_config, save_config
from faceunlock.engine.templates import TemplateStore
from faceunlock.ui import wizard as wz
from faceunlock.ui.wizard import EnrolWizard
from faceunlock.ui.workers import EnrolWorker
from tests.fakes.clip_material import FAST_CAPTURE, FEMALE, MALE

USER = "alice"


def _wizard(qtbot: QtBot, store: TemplateStore, cfg: Config, spec: str | None) -> EnrolWizard:
    w = EnrolWizard(store, cfg, user=USER, source_spec=spec, anchors=3, realtime=False,
                    enrol_overrides=FAST_CAPTURE)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def _next(qtbot: QtBot, w: EnrolWizard) -> None:
    before = w.currentId()
    w.button(QWizard.WizardButton.NextButton).click()
    qtbot.waitUntil(lambda: w.currentId() != before, timeout=10_000)


def _capture_to_end(qtbot: QtBot, w: EnrolWizard) -> None:
    """From the welcome page to the calibrate page with a real EnrolWorker."""
    _next(qtbot, w)
    assert w.currentId() == wz.PAGE_CAMERA
    _next(qtbot, w)
    assert w.currentId() == wz.PAGE_CAPTURE
    page = w.currentPage()
    assert isinstance(page, wz.CapturePage)
    qtbot.waitUntil(page.isComplete, timeout=90_000)
    assert page.progress.value() == 3
    assert page.thumbs.count() == 3
    assert w.button(QWizard.WizardButton.NextButton).isEnabled()
    _next(qtbot, w)
    assert w.currentId() == wz.PAGE_CALIBRATE


def test_welcome_page_speaks_plainly(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    w = _wizard(qtbot, store, cfg, str(tmp_path / "none.mp4"))
    page = w.currentPage()
    assert isinstance(page, wz.WelcomePage)
    text = page.findChild(QLabel, "welcome_text")
    assert text is not None
    words = text.text()
    assert "up to 3 measurements of your face" in words and "encrypted" in words
    for jargon in ("128 numbers", "descriptor", "AES", "GCM"):
        assert jargon not in words
    assert "AES-256-GCM" in text.toolTip()  # the detail is there for who looks for it


def test_page_order_and_keyboard_navigation(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    w = _wizard(qtbot, store, cfg, str(tmp_path / "does-not-exist.mp4"))
    assert w.pageIds() == [
        wz.PAGE_WELCOME,
        wz.PAGE_CAMERA,
        wz.PAGE_CAPTURE,
        wz.PAGE_CALIBRATE,
        wz.PAGE_ENABLE,
        wz.PAGE_FINISH,
    ]
    assert isinstance(w.currentPage(), wz.WelcomePage)
    # Return presses the default button (Next)
    qtbot.keyClick(w, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.currentId() == wz.PAGE_CAMERA, timeout=5_000)
    cam = w.currentPage()
    assert isinstance(cam, wz.CameraPage)
    # an unusable source is reported in words, not a traceback
    qtbot.waitUntil(lambda: "problem" in cam.indicator.text().lower(), timeout=20_000)
    # tab order: the source combo, then the wizard buttons (Back, Next, Cancel) in order
    chain: list[QWidget] = []
    wdg: QWidget = cam.combo
    for _ in range(400):  # every page's widgets are in the chain (hidden ones skipped)
        if wdg.focusPolicy() & Qt.FocusPolicy.TabFocus and wdg.isVisible() and wdg.isEnabled():
            chain.append(wdg)
        wdg = wdg.nextInFocusChain()
        if wdg is cam.combo:
            break
    buttons = [
        w.button(b)
        for b in (
            QWizard.WizardButton.BackButton,
            QWizard.WizardButton.NextButton,
            QWizard.WizardButton.CancelButton,
        )
    ]
    assert chain[0] is cam.combo
    idx = [chain.index(b) for b in buttons]
    assert idx == sorted(idx)
    # Back with the keyboard (Alt+B mnemonic is style-dependent; use the button's shortcut
    # path via click) and Escape cancels
    w.back()
    assert w.currentId() == wz.PAGE_WELCOME
    qtbot.keyClick(w, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=5_000)
    assert w.result() == QWizard.DialogCode.Rejected
    assert not store.exists(USER)


@pytest.mark.slow
def test_capture_calibrate_finish_saves_template(
    qtbot: QtBot, store: TemplateStore, cfg: Config, female_folder: Path
) -> None:
    w = _wizard(qtbot, store, cfg, str(female_folder))
    _capture_to_end(qtbot, w)
    cal_page = w.currentPage()
    assert isinstance(cal_page, wz.CalibratePage)
    assert cal_page.error.text() == ""
    assert cal_page.panel.level == "balanced"
    # the levels are described in words; the raw threshold is only under Details
    assert not cal_page.panel.threshold_label.isVisibleTo(cal_page)
    assert cal_page.description.text().startswith("Balanced: The usual choice")
    assert not cal_page.details.isVisibleTo(cal_page)
    cal_page.details_button.click()
    assert cal_page.details.isVisibleTo(cal_page)
    assert "Threshold -" in cal_page.details.text()
    bal = cal_page.panel.choice
    # cohort-normalised scale (strangers ~0, the owner well below)
    assert bal is not None and bal.scoring == "asnorm" and -8.0 < bal.threshold < -2.0
    cal_page.panel.radios["secure"].click()
    sec = cal_page.panel.choice
    assert sec is not None and sec.level == "secure" and sec.threshold < bal.threshold
    assert cal_page.description.text().startswith("Secure: Hardest for anyone else")
    assert f"Threshold {sec.threshold:.3f}" in cal_page.details.text()
    assert cal_page.panel.plot.threshold == pytest.approx(sec.threshold)
    assert not store.exists(USER)  # nothing written before Finish
    path = Path(os.environ["FACEUNLOCK_CONFIG"])
    before = path.read_bytes()
    _next(qtbot, w)
    assert w.currentId() == wz.PAGE_ENABLE
    _next(qtbot, w)
    assert w.currentId() == wz.PAGE_FINISH
    finish = w.currentPage()
    assert isinstance(finish, wz.FinishPage)
    summary = finish.summary.text()
    assert f"use this camera from now on: {female_folder}" in summary
    assert "3 pictures for alice" in summary and "Security level: Secure" in summary
    assert "threshold" not in summary.lower() and "anchor" not in summary
    # another program changes an unrelated key meanwhile: Finish re-reads the file
    save_config(config_set(load_config(path), "auth.max_failures", "7"), path)
    assert path.read_bytes() != before
    w.button(QWizard.WizardButton.FinishButton).click()
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=5_000)
    assert w.result() == QWizard.DialogCode.Accepted
    t = store.load(USER)
    assert len(t) == 3
    assert t.security_level == "secure"
    assert t.threshold == pytest.approx(sec.threshold)
    # the camera chosen on the Camera page is what the lock-screen watcher now uses
    saved = load_config(path)
    assert saved.camera.source == str(female_folder)
    assert saved.auth.max_failures == 7 and saved.detector.min_face == cfg.detector.min_face
    assert w.cfg.camera.source == str(female_folder)  # what the tray is built with


@pytest.mark.slow
def test_cancel_mid_capture_saves_nothing(
    qtbot: QtBot, store: TemplateStore, cfg: Config, female_folder: Path
) -> None:
    path = Path(os.environ["FACEUNLOCK_CONFIG"])
    before = path.read_bytes()
    w = _wizard(qtbot, store, cfg, str(female_folder))
    _next(qtbot, w)
    _next(qtbot, w)
    page = w.currentPage()
    assert isinstance(page, wz.CapturePage)
    qtbot.waitUntil(lambda: page.preview.frames_shown >= 2, timeout=60_000)
    thread = page.worker_thread
    assert thread is not None
    w.button(QWizard.WizardButton.CancelButton).click()
    _discard_if_asked(w)
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=10_000)
    assert not thread.is_running()
    assert thread.worker.source is not None and not thread.worker.source.is_open
    assert not store.exists(USER)
    assert not store.directory.exists() or not any(store.directory.iterdir())
    assert path.read_bytes() == before  # the chosen camera is saved at Finish only


def _discard_if_asked(w: EnrolWizard) -> None:
    """Answer Cancel's question (asked once anchors were captured) with Discard."""
    box = w.discard_box
    if box is not None:
        discard = box.findChild(QPushButton, "discard")
        assert discard is not None
        discard.click()


def _to_capture(qtbot: QtBot, w: EnrolWizard) -> wz.CapturePage:
    _next(qtbot, w)
    _next(qtbot, w)
    page = w.currentPage()
    assert isinstance(page, wz.CapturePage)
    return page


@pytest.mark.slow
def test_paced_capture_from_clip_asks_for_and_spreads_the_poses(
    qtbot: QtBot, store: TemplateStore, cfg: Config, clips_dir: Path
) -> None:
    """The woman's clip played in real time (the wizard's default), 3 anchors: centre, left,
    right. The capture is paced on the frames' timestamps, and the anchors span the turns."""
    w = EnrolWizard(store, cfg, user=USER, source_spec=str(clips_dir / FEMALE), anchors=3)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    page = _to_capture(qtbot, w)
    assert [lb.text() for lb in page.pose_labels.values()] == [
        "Centre 0/1", "Left 0/1", "Right 0/1"
    ]
    qtbot.waitUntil(page.isComplete, timeout=120_000)
    thread = page.worker_thread
    assert thread is not None and isinstance(thread.worker, EnrolWorker)
    session = thread.worker.session
    assert session is not None and session.done
    p = session.params
    caps = w.captures
    assert [c.pose for c in caps] == ["frontal", "left", "right"]
    yaws = [c.quality["yaw_deg"] for c in caps]
    assert max(yaws) - min(yaws) >= 20.0
    # from the frame timestamps: every prompt got its settle time; no anchor came early
    stamps = np.asarray([c.timestamp for c in caps], float)
    assert session.capture_seconds() >= 3 * p.settle_seconds
    assert (np.diff(stamps) >= p.settle_seconds).all()
    src = thread.worker.source
    assert src is not None and getattr(src, "realtime", False)  # played as a camera would
    assert [lb.text() for lb in page.pose_labels.values()] == [
        "Centre 1/1 ✓", "Left 1/1 ✓", "Right 1/1 ✓"
    ]
    assert "3 anchors (centre 1, left 1, right 1)" in page.feedback.text()
    w.reject()
    _discard_if_asked(w)


@pytest.mark.slow
def test_clip_without_a_turn_is_refused_naming_it(
    qtbot: QtBot, store: TemplateStore, cfg: Config, clips_dir: Path
) -> None:
    """The man only looks ahead: no silent finish, the page says he must turn left, offers
    Start again, and Next stays disabled (nothing can be saved)."""
    w = EnrolWizard(store, cfg, user=USER, source_spec=str(clips_dir / MALE), anchors=3,
                    realtime=False, enrol_overrides={"pose_timeout": 2.0})
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    page = _to_capture(qtbot, w)
    qtbot.waitUntil(lambda: page.retry.isVisible(), timeout=60_000)
    assert "turn a little to the left" in page.feedback.text()
    assert "Nothing was saved" in page.feedback.text()
    assert page.pose_labels["left"].text() == "Left 0/1 ✗"
    assert not page.isComplete()
    assert not w.button(QWizard.WizardButton.NextButton).isEnabled()
    w.reject()
    _discard_if_asked(w)
    assert not store.exists(USER)


@pytest.mark.slow
def test_finish_keeps_what_another_enrolment_saved_meanwhile(
    qtbot: QtBot, store: TemplateStore, cfg: Config, female_folder: Path
) -> None:
    """The wizard builds its template when the capture ends and saves it at Finish; an
    appearance saved by another program in between is kept (Finish re-reads the template
    under the store's lock and adds its anchors to it; before, it overwrote it)."""
    import numpy as np

    from faceunlock.engine.templates import Anchor, Template

    w = _wizard(qtbot, store, cfg, str(female_folder))
    _capture_to_end(qtbot, w)
    assert w.template is not None and not store.exists(USER)
    rng = np.random.default_rng(1)
    other = Template(user=USER, model_sha256=w.template.model_sha256)
    for _ in range(3):
        other.add_anchor(Anchor.new(rng.standard_normal(128).astype(np.float32) * 0.05,
                                    np.zeros((64, 64, 3), np.uint8), label="hat"))
    store.save(other)  # e.g. `faceunlock enroll --label hat` while the wizard is open
    _next(qtbot, w)
    _next(qtbot, w)
    assert w.currentId() == wz.PAGE_FINISH
    w.button(QWizard.WizardButton.FinishButton).click()
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=5_000)
    assert w.result() == QWizard.DialogCode.Accepted
    t = store.load(USER)
    assert sorted(t.labels()) == ["default", "hat"] and len(t) == 6


@pytest.mark.slow
def test_cancel_after_the_capture_asks_keep_keeps_discard_discards(
    qtbot: QtBot, store: TemplateStore, cfg: Config, female_folder: Path
) -> None:
    """Cancel once anchors were captured asks first: Keep goes on where the user was (the
    anchors and the page kept), Discard closes and saves nothing."""
    config = Path(os.environ["FACEUNLOCK_CONFIG"])
    before = config.read_bytes()
    w = _wizard(qtbot, store, cfg, str(female_folder))
    _capture_to_end(qtbot, w)
    captured = list(w.captures)
    assert len(captured) == 3
    cancel = w.button(QWizard.WizardButton.CancelButton)

    cancel.click()
    box = w.discard_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert "3 pictures of your face" in box.text()
    keep = box.findChild(QPushButton, "keep")
    assert keep is not None and box.defaultButton() is keep  # Return keeps them
    keep.click()
    assert w.discard_box is None and w.isVisible()
    assert w.currentId() == wz.PAGE_CALIBRATE
    assert w.captures == captured
    assert w.button(QWizard.WizardButton.NextButton).isEnabled()

    # Esc (closing the window) asks the same; Discard closes and forgets them
    qtbot.keyClick(w, Qt.Key.Key_Escape)
    box = w.discard_box
    assert isinstance(box, QMessageBox) and w.isVisible()
    discard = box.findChild(QPushButton, "discard")
    assert discard is not None
    discard.click()
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=10_000)
    assert w.captures == [] and w.template is None
    assert not store.exists(USER)
    assert not store.directory.exists() or not any(store.directory.iterdir())
    assert config.read_bytes() == before


def test_cancel_before_any_capture_closes_without_asking(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    w = _wizard(qtbot, store, cfg, str(tmp_path / "none.mp4"))
    w.button(QWizard.WizardButton.CancelButton).click()
    assert w.discard_box is None
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=10_000)
