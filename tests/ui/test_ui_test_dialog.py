"""The tray's Test dialog: one attempt as at the lock screen, the picture with the face box, the
result in plain words, and Try again. Alice is enrolled from the first half of the woman's
clip; the second half is her at the camera, the man's frames someone else."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QDialog
from pytestqt.qtbot import QtBot

from faceunlock.config import config_set
from faceunlock.engine.auth import AuthParams
from faceunlock.errors import AuthStatus
from faceunlock.ui.dialogs import TEST_VERDICTS, RecognitionTestDialog, auth_params
from tests.fakes.clip_material import EnrolledClips, png_folder, watcher_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, clips_dir: Path) -> EnrolledClips:
    return EnrolledClips(tmp_path_factory.mktemp("test-dialog"), clips_dir)


def _run(qtbot: QtBot, clips: EnrolledClips, source: Path, **cfg_keys: str
         ) -> RecognitionTestDialog:
    cfg = watcher_config(**{"auth.timeout": "5", **cfg_keys})
    d = RecognitionTestDialog(clips.store, cfg, "alice", source_spec=str(source))
    qtbot.addWidget(d)
    d.show()
    qtbot.waitUntil(lambda: not d.running, timeout=120_000)
    assert d.error.text() == ""
    return d


def test_the_owner_is_recognised_with_a_green_box(qtbot: QtBot, clips: EnrolledClips) -> None:
    d = _run(qtbot, clips, clips.genuine)
    try:
        assert d.outcome is not None and d.outcome.status == AuthStatus.OK
        assert d.result_label.text() == "Recognised — this would unlock"
        assert "would unlock" in d.explanation.text()
        assert d.packets >= 2  # k = 2 matching frames, each shown
        # the last frame shown carries the face box, green (a match)
        img = d.preview.pixmap().toImage()
        greens = sum(
            1 for x in range(0, img.width(), 2) for y in range(0, img.height(), 2)
            if (c := img.pixelColor(x, y)).green() > 150 and c.red() < 110 and c.blue() < 110
        )
        assert greens > 20
        assert d.try_again.isEnabled()
        # Try again: a second, separate attempt
        qtbot.mouseClick(d.try_again, Qt.MouseButton.LeftButton)
        assert d.running and not d.try_again.isEnabled()
        assert d.result_label.text() == "Looking for your face…"
        qtbot.waitUntil(lambda: not d.running, timeout=120_000)
        assert d.attempts == 2
        assert d.outcome is not None and d.outcome.status == AuthStatus.OK
    finally:
        d.done(QDialog.DialogCode.Rejected)


def test_someone_else_is_not_recognised(qtbot: QtBot, clips: EnrolledClips) -> None:
    d = _run(qtbot, clips, clips.impostor)
    try:
        assert d.outcome is not None and d.outcome.status == AuthStatus.NO_MATCH
        assert d.result_label.text() == "Not recognised"
        assert "would not unlock" in d.explanation.text()
        assert "accepted at" in d.explanation.toolTip()
    finally:
        d.done(QDialog.DialogCode.Rejected)


@pytest.mark.parametrize("level", ["passive", "off"])
def test_a_photo_of_the_owner_gets_the_photo_check_verdict(
    qtbot: QtBot, clips: EnrolledClips, clips_dir: Path, tmp_path: Path, level: str
) -> None:
    """Ten copies of one frame of her (a still injected as the camera): with the photo check
    on, the dialog says it looks like a photo or a screen and names the refusing cue in the
    tooltip; with it off, the same still would unlock."""
    from tests.fakes.attack_material import attacks

    still = attacks(tmp_path, clips_dir)["copies"]
    d = _run(qtbot, clips, still, **{"liveness.level": level})
    try:
        assert d.outcome is not None
        if level == "off":
            assert d.outcome.status == AuthStatus.OK and d.outcome.liveness is None
            assert "photo check" not in d.explanation.toolTip()
            return
        assert d.outcome.status == AuthStatus.PRESENTATION_ATTACK
        assert d.result_label.text() == "Face not accepted: this looks like a photo or a screen"
        assert "would not unlock" in d.explanation.text()
        assert "photo check: refused (frozen" in d.explanation.toolTip()
    finally:
        d.done(QDialog.DialogCode.Rejected)


def test_no_face_and_too_dark_say_no_face_seen(
    qtbot: QtBot, clips: EnrolledClips, tmp_path: Path
) -> None:
    grey = png_folder(tmp_path / "grey", [np.full((240, 320, 3), 128, np.uint8)] * 4)
    dark = png_folder(tmp_path / "dark", [np.full((240, 320, 3), 5, np.uint8)] * 4)
    for folder, status, words in ((grey, AuthStatus.TIMEOUT, "No face was found"),
                                  (dark, AuthStatus.TOO_DARK, "too dark")):
        d = _run(qtbot, clips, folder)
        try:
            assert d.outcome is not None and d.outcome.status == status
            assert d.result_label.text() == "No face seen"
            assert words in d.explanation.text()
        finally:
            d.done(QDialog.DialogCode.Rejected)


def test_the_attempt_is_the_lock_screens() -> None:
    cfg = config_set(config_set(watcher_config(), "auth.k", "3"), "auth.n", "5")
    assert auth_params(cfg) == AuthParams(timeout=10.0, k=3, n=5, dark_level=40,
                                          dark_fraction=0.95)
    assert set(TEST_VERDICTS) >= {AuthStatus.OK, AuthStatus.NO_MATCH, AuthStatus.TIMEOUT}


@pytest.mark.parametrize("kinds", ["turn", "blink"])
def test_active_shows_the_challenge_prompt_and_explains_its_failure(
    qtbot: QtBot, clips: EnrolledClips, clips_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, kinds: str,
) -> None:
    """liveness.level = active: the woman holds still beside the man (the two-person clip)
    and does not blink. The dialog shows the head-turn (or blink) prompt during the attempt,
    then says the turn (or the blink) was missing."""
    from tests.fakes.clip_material import BOTH, clip_frames

    shown: list[str] = []
    real = RecognitionTestDialog._set_prompt

    def record(self: RecognitionTestDialog, words: str) -> None:
        real(self, words)
        shown.append(self.prompt_label.text() if self.prompt_label.isVisibleTo(self) else "")

    monkeypatch.setattr(RecognitionTestDialog, "_set_prompt", record)

    class Prompt(random.Random):  # the prompt at once (a random delay could outlast the clip)
        def uniform(self, a: float, b: float) -> float:
            return 0.0

    monkeypatch.setattr("faceunlock.engine.challenge.production_rng", lambda: Prompt(3))
    frames = clip_frames(clips_dir / BOTH)
    d = _run(qtbot, clips, png_folder(tmp_path / "both", frames + frames),
             **{"liveness.level": "active", "liveness.challenges": kinds})
    try:
        assert d.outcome is not None and d.outcome.status == AuthStatus.PRESENTATION_ATTACK
        want = "Turn your head slowly to your " if kinds == "turn" else "Blink twice"
        assert any(w.startswith(want) for w in shown), (shown, d.outcome.to_json())
        assert shown[-1] == ""  # hidden again with the result
        assert ("did not turn as asked" if kinds == "turn" else "did not blink as asked") \
            in d.explanation.text()
    finally:
        d.done(QDialog.DialogCode.Rejected)
