"""The wizard's Enable page: the lock-screen watcher switch (written at Finish, only when
changed) and the opt-in login-screen/sudo step, run for real as
``python -m faceunlock system enable --root <fake root>`` with no privilege prefix."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from PyQt6.QtWidgets import QWizard
from pytestqt.qtbot import QtBot

from faceunlock.config import Config, config_set, load_config
from faceunlock.engine.templates import TemplateStore
from faceunlock.paths import repo_root
from faceunlock.ui import wizard as wz
from faceunlock.ui.app import with_camera
from faceunlock.ui.wizard import EnablePage, EnrolWizard, default_elevate
from faceunlock.unlock import system
from tests.fakes.clip_material import FAST_CAPTURE

USER = "alice"
PROFILE_SRC = repo_root() / "packaging" / "pam" / "faceunlock"


def _fake_root(tmp_path: Path) -> Path:
    """A Debian-like root: pam-auth-update, the helper and the real profile installed."""
    r = tmp_path / "root"
    (r / "etc/pam.d").mkdir(parents=True)
    (r / "etc/pam.d/common-auth").write_text("auth required pam_unix.so\n")
    for rel, text in (
        ("usr/sbin/pam-auth-update", "#!/bin/sh\nexit 99\n"),
        ("usr/local/bin/faceunlock-auth", "#!/bin/sh\nexit 1\n"),
    ):
        f = r / rel
        f.parent.mkdir(parents=True)
        f.write_text(text)
        f.chmod(0o755)
    prof = r / system.PROFILE.lstrip("/")
    prof.parent.mkdir(parents=True)
    shutil.copyfile(PROFILE_SRC, prof)
    return r


def _page(
    qtbot: QtBot, store: TemplateStore, cfg: Config, root: Path, elevate: list[str]
) -> tuple[EnrolWizard, EnablePage]:
    w = EnrolWizard(store, cfg, user=USER, elevate=elevate, system_root=str(root))
    qtbot.addWidget(w)
    page = w.enable_page
    page.initializePage()
    return w, page


def test_page_order_puts_enable_between_calibrate_and_finish(
    qtbot: QtBot, store: TemplateStore, cfg: Config
) -> None:
    w = EnrolWizard(store, cfg, user=USER)
    qtbot.addWidget(w)
    assert w.pageIds().index(wz.PAGE_ENABLE) == w.pageIds().index(wz.PAGE_CALIBRATE) + 1
    assert w.pageIds().index(wz.PAGE_FINISH) == w.pageIds().index(wz.PAGE_ENABLE) + 1
    assert isinstance(w.page(wz.PAGE_ENABLE), EnablePage)


def test_the_raw_pam_change_is_behind_details(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    _w, page = _page(qtbot, store, cfg, _fake_root(tmp_path), [])
    assert "login screen" in page.plain.text() and "pam" not in page.plain.text().lower()
    assert page.plain.isVisibleTo(page)
    assert not page.changes.isVisibleTo(page) and not page.summary.isVisibleTo(page)
    page.details_button.click()
    assert page.changes.isVisibleTo(page) and "pam_exec.so" in page.changes.toPlainText()


@pytest.mark.parametrize(
    ("level", "source", "warned"),
    [("off", "clip", True), ("passive", "clip", False), ("active", "clip", False)],
)
def test_a_colour_camera_without_the_photo_check_is_warned_about(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path,
    level: str, source: str, warned: bool,
) -> None:
    """A video (what a colour camera sees) with liveness.level off: the page says plainly that
    a photo or a phone picture can unlock; with the check on it says it is on. Each level is
    explained, Active as the head turn it asks for."""
    cfg = config_set(cfg, "liveness.level", level)
    w = EnrolWizard(store, cfg, user=USER, source_spec=str(tmp_path / f"{source}.mp4"),
                    system_root=str(_fake_root(tmp_path)), elevate=[])
    qtbot.addWidget(w)
    page = w.enable_page
    page.initializePage()
    text = page.liveness_warning.text()
    assert page.colour_camera()
    assert ("a photo or a phone picture of you can unlock this computer" in text) is warned
    assert ("The photo check is on" in text) is not warned
    assert ("faceunlock config set liveness.level passive" in text) is warned  # how to fix it
    levels = page.liveness_levels.text()
    for name in ("Off", "Passive", "Active"):
        assert f"<b>{name}</b>" in levels
    assert "turn your head to the left or the right, or to blink twice" in levels
    assert "video of you played back" in levels


@pytest.mark.parametrize("level", ["passive", "off"])
def test_an_infrared_camera_is_not_called_easy_to_fool(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path, level: str
) -> None:
    """With an infrared camera the page says it is much harder to fool, with the check on
    or off."""
    from faceunlock.engine.sources import VideoDevice

    w = EnrolWizard(store, config_set(cfg, "liveness.level", level), user=USER,
                    source_spec="4", system_root=str(_fake_root(tmp_path)), elevate=[])
    qtbot.addWidget(w)
    kind = w.camera_page.camera_kind
    kind.devices = [VideoDevice(index=4, name="IR Camera", is_ir=True)]
    page = w.enable_page
    page.initializePage()
    assert not page.colour_camera()
    text = page.liveness_warning.text()
    assert "infrared camera is much harder to fool" in text
    assert f"The photo check is {'on' if level == 'passive' else 'off'}" in text


def test_privilege_prefix_is_pkexec_unless_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(wz.PKEXEC_ENV, raising=False)
    assert default_elevate() == ["pkexec"]
    monkeypatch.setenv(wz.PKEXEC_ENV, "sudo -n")
    assert default_elevate() == ["sudo", "-n"]
    monkeypatch.setenv(wz.PKEXEC_ENV, "")
    assert default_elevate() == []


def test_shows_the_exact_change_and_undo_then_runs_it(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    root = _fake_root(tmp_path)
    common = root / "etc/pam.d/common-auth"
    before = common.read_bytes()
    w, page = _page(qtbot, store, cfg, root, [])
    # what will change: the file edited, the profile and its exact auth line, the undo
    assert "/etc/pam.d/common-auth" in page.summary.text()
    assert system.PROFILE in page.summary.text()
    auth_line = "[success=end default=ignore] pam_exec.so quiet stdout " + system.HELPER
    assert auth_line in page.changes.toPlainText().splitlines()
    assert system.UNDO_COMMAND in page.undo.text()
    assert page.command() == [
        sys.executable, "-I", "-m", "faceunlock", "system", "enable", "--json", "--root", str(root)
    ]
    assert page.run_button.isEnabled()
    page.run_button.click()
    # non-blocking: the click returned while the command runs; the page waits for it
    assert page.process is not None or page.succeeded
    qtbot.waitUntil(lambda: page.process is None, timeout=60_000)
    assert page.succeeded, page.outcome.text()
    assert "would run: pam-auth-update --enable faceunlock" in page.outcome.text()
    assert page.isComplete()
    assert not page.run_button.isEnabled()
    # under a test root `system enable` runs nothing: the PAM file is untouched
    assert common.read_bytes() == before
    w.reject()


def test_a_failing_command_is_reported_and_the_page_stays_usable(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    root = _fake_root(tmp_path)
    w, page = _page(qtbot, store, cfg, root, [])
    assert page.run_button.isEnabled()
    # the helper disappears between the preview and the click: the real command fails
    (root / system.HELPER.lstrip("/")).unlink()
    page.run_button.click()
    qtbot.waitUntil(lambda: page.process is None, timeout=60_000)
    text = page.outcome.text()
    assert text.startswith("Not done (exit code ")
    assert "faceunlock-auth is not installed" in text
    assert "Traceback" not in text
    assert not page.succeeded
    assert page.isComplete() and page.run_button.isEnabled()  # try again, or go on
    w.reject()


def test_a_missing_privilege_program_is_reported(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    root = _fake_root(tmp_path)
    w, page = _page(qtbot, store, cfg, root, [str(tmp_path / "no-such-pkexec")])
    page.run_button.click()
    qtbot.waitUntil(lambda: page.process is None, timeout=30_000)
    assert "could not start" in page.outcome.text()
    assert page.isComplete() and page.run_button.isEnabled()
    w.reject()


def test_without_the_helper_the_button_is_off_and_says_why(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    w, page = _page(qtbot, store, cfg, tmp_path / "empty-root", [])
    assert not page.run_button.isEnabled()
    assert page.outcome.text().startswith("Not available yet:")
    assert "packaging/install.sh" in page.outcome.text()
    # no pam-auth-update: by-hand instructions with the exact line and the service files
    assert system.PAM_LINE in page.changes.toPlainText()
    assert "/etc/pam.d/sudo" in page.changes.toPlainText()
    w.reject()


def _to_enable_page(qtbot: QtBot, w: EnrolWizard) -> None:
    for want in (wz.PAGE_CAMERA, wz.PAGE_CAPTURE):
        w.button(QWizard.WizardButton.NextButton).click()
        qtbot.waitUntil(lambda want=want: w.currentId() == want, timeout=10_000)
    cap = w.currentPage()
    qtbot.waitUntil(cap.isComplete, timeout=90_000)
    for want in (wz.PAGE_CALIBRATE, wz.PAGE_ENABLE):
        w.button(QWizard.WizardButton.NextButton).click()
        qtbot.waitUntil(lambda want=want: w.currentId() == want, timeout=10_000)


@pytest.mark.slow
@pytest.mark.parametrize("toggle", [False, True], ids=["skipped", "watcher-off"])
def test_finish_writes_the_watcher_switch_only_when_changed(
    qtbot: QtBot,
    store: TemplateStore,
    cfg: Config,
    female_folder: Path,
    tmp_path: Path,
    toggle: bool,
) -> None:
    path = Path(os.environ["FACEUNLOCK_CONFIG"])
    before = path.read_bytes()
    # a per-run camera override (as `faceunlock --camera`) must never reach the file
    run_cfg = with_camera(cfg, str(female_folder))
    root = _fake_root(tmp_path)
    w = EnrolWizard(
        store, run_cfg, user=USER, anchors=3, elevate=[], system_root=str(root),
        realtime=False, enrol_overrides=FAST_CAPTURE,
    )
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    _to_enable_page(qtbot, w)
    page = w.currentPage()
    assert isinstance(page, EnablePage)
    assert page.watcher.isChecked() is cfg.watcher.enabled is True
    if toggle:
        page.watcher.click()
    w.button(QWizard.WizardButton.NextButton).click()
    qtbot.waitUntil(lambda: w.currentId() == wz.PAGE_FINISH, timeout=10_000)
    assert ("off" if toggle else "on") in w.currentPage().summary.text()
    assert path.read_bytes() == before  # nothing before Finish
    w.button(QWizard.WizardButton.FinishButton).click()
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=10_000)
    assert store.exists(USER)
    if not toggle:
        assert path.read_bytes() == before
        return
    saved = load_config(path)
    assert saved.watcher.enabled is False
    assert saved.detector.min_face == cfg.detector.min_face  # other keys kept
    assert saved.camera.source == Config().camera.source  # the override was not saved
    assert w.cfg.watcher.enabled is False  # what the tray is built with
    assert config_set(load_config(path), "watcher.enabled", "true") == cfg
