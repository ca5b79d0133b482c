"""`faceunlock --camera SOURCE` and `faceunlock-gui --camera SOURCE`: the desktop app on
another camera or a video file for this run only (never saved: not at start, not by the
Settings dialog's OK, not by the wizard's Finish), refused in words when the file does not
exist."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from PyQt6.QtWidgets import QDialog, QWizard
from pytestqt.qtbot import QtBot

from faceunlock import cli
from faceunlock.config import Config, config_set, load_config, save_config
from faceunlock.engine.templates import TemplateStore
from faceunlock.errors import InputError
from faceunlock.ui import app
from faceunlock.ui.dialogs import SettingsDialog
from faceunlock.ui.tray import TrayIcon
from faceunlock.ui.wizard import (
    PAGE_CALIBRATE,
    PAGE_CAMERA,
    PAGE_CAPTURE,
    PAGE_ENABLE,
    PAGE_FINISH,
    EnrolWizard,
)

FEMALE = "head-pose-face-detection-female.gif"


def test_check_camera_accepts_indices_and_existing_paths(tmp_path: Path) -> None:
    assert app.check_camera("0") == "0"
    assert app.check_camera(" 2 ") == "2"
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    assert app.check_camera(str(clip)) == str(clip)
    assert app.check_camera(str(tmp_path)) == str(tmp_path)  # an image folder
    with pytest.raises(InputError, match=r"--camera: .*missing\.mp4 does not exist"):
        app.check_camera(str(tmp_path / "missing.mp4"))
    with pytest.raises(InputError, match="--camera"):
        app.check_camera("")


def test_a_missing_file_is_refused_before_any_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.mp4")
    assert app.main(["--camera", missing]) == 2
    assert f"{missing} does not exist" in capsys.readouterr().err
    # the same through `faceunlock --camera`
    assert cli.main(["--camera", missing]) == 2
    assert f"{missing} does not exist" in capsys.readouterr().err


def test_camera_goes_with_no_verb(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["--camera", "0", "verify", "a.png", "b.png"])
    assert e.value.code == 2
    assert "--camera goes with no VERB" in capsys.readouterr().err


def test_override_is_for_this_run_only(
    qtbot: QtBot, store: TemplateStore, cfg: Config, clips_dir: Path
) -> None:
    clip = str(clips_dir / FEMALE)
    path = Path(os.environ["FACEUNLOCK_CONFIG"])
    before = path.read_bytes()
    run_cfg = app.with_camera(load_config(), app.check_camera(clip))
    assert run_cfg.camera.source == clip
    assert app.with_camera(cfg, None) is cfg
    w = app.first_window(store, run_cfg, "alice")
    assert isinstance(w, EnrolWizard)
    qtbot.addWidget(w)
    assert w.camera_page.spec() == clip  # the wizard starts on the given video
    assert path.read_bytes() == before
    assert load_config().camera.source == Config().camera.source


def _launch(
    qtbot: QtBot, cmd: list[str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """Run a real launch while this process is "the running instance": the launch parses
    its options, finds the instance, asks it to raise its window and exits."""
    name = f"faceunlock-test-{uuid.uuid4().hex[:12]}"
    inst = app.SingleInstance(name)
    assert inst.listen()
    env = {**os.environ, "FACEUNLOCK_INSTANCE": name, "QT_QPA_PLATFORM": "offscreen"}
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    try:
        with qtbot.waitSignal(inst.raiseRequested, timeout=120_000), out.open("w") as fo, \
                err.open("w") as fe:
            proc = subprocess.Popen(cmd, env=env, stdout=fo, stderr=fe, text=True)
        rc = proc.wait(120)
    finally:
        inst.close()
    return subprocess.CompletedProcess(cmd, rc, out.read_text(), err.read_text())


@pytest.mark.slow
def test_faceunlock_camera_starts_the_app(
    qtbot: QtBot, clips_dir: Path, tmp_path: Path
) -> None:
    clip = str(clips_dir / FEMALE)
    res = _launch(qtbot, [sys.executable, "-m", "faceunlock", "--camera", clip], tmp_path)
    assert res.returncode == 0, res.stderr


@pytest.mark.slow
def test_faceunlock_gui_camera_starts_the_app(
    qtbot: QtBot, clips_dir: Path, tmp_path: Path
) -> None:
    gui = Path(sys.executable).parent / "faceunlock-gui"
    if not gui.is_file():
        pytest.skip("the faceunlock-gui entry point is not installed in this environment")
    res = _launch(qtbot, [str(gui), "--camera", str(clips_dir / FEMALE)], tmp_path)
    assert res.returncode == 0, res.stderr
    missing = subprocess.run(
        [str(gui), "--camera", str(tmp_path / "missing.mp4")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert missing.returncode == 2
    assert "missing.mp4 does not exist" in missing.stderr


def test_run_sh_passes_its_arguments_to_faceunlock() -> None:
    run_sh = Path(__file__).resolve().parents[2] / "run.sh"
    last = [ln for ln in run_sh.read_text().splitlines() if ln.strip()][-1]
    assert last == 'exec "${FACEUNLOCK_VENV:-.venv}/bin/faceunlock" "$@"'


def _open_settings(tray: TrayIcon) -> SettingsDialog:
    tray.menu.aboutToShow.emit()
    next(a for a in tray.menu.actions() if a.text() == "&Settings…").trigger()
    d = tray.windows[-1]
    assert isinstance(d, SettingsDialog)
    return d


def test_settings_ok_never_saves_the_override(
    qtbot: QtBot, store: TemplateStore, cfg: Config, clips_dir: Path
) -> None:
    """Settings opened from the tray of a `--camera` run: OK writes the fields changed, onto
    the file as it is now; the run-only camera stays out of it until the field is changed."""
    clip = str(clips_dir / FEMALE)
    path = Path(os.environ["FACEUNLOCK_CONFIG"])
    tray = TrayIcon(store, app.with_camera(load_config(), app.check_camera(clip)), "alice",
                    config_path=path)
    try:
        d = _open_settings(tray)
        qtbot.addWidget(d)
        assert d.source_spec() == clip  # the dialog shows what this run uses
        d.level.setCurrentText("secure")
        # meanwhile another key changes on disk (`faceunlock config set`): it is kept
        save_config(config_set(load_config(path), "auth.max_failures", "7"), path)
        d.accept()
        assert d.result() == QDialog.DialogCode.Accepted
        saved = load_config(path)
        assert saved.camera.source == Config().camera.source  # not the override
        assert saved.auth.security_level == "secure"
        assert saved.auth.max_failures == 7
        assert saved.detector.min_face == cfg.detector.min_face
        assert tray.cfg.camera.source == clip  # the run goes on with its camera
        assert tray.cfg.auth.security_level == "secure"
        # OK with nothing changed writes nothing new
        before = path.read_bytes()
        d2 = _open_settings(tray)
        qtbot.addWidget(d2)
        d2.accept()
        assert d2.result() == QDialog.DialogCode.Accepted
        assert path.read_bytes() == before
        # a camera the user types in is saved, and used from then on
        folder = str(clips_dir)
        d3 = _open_settings(tray)
        qtbot.addWidget(d3)
        d3.source.setCurrentText(folder)
        d3.accept()
        assert load_config(path).camera.source == folder
        assert tray.cfg.camera.source == folder
    finally:
        tray.hide()
        tray.deleteLater()


@pytest.mark.slow
def test_wizard_of_a_camera_run_leaves_the_camera_in_the_file_alone(
    qtbot: QtBot, store: TemplateStore, cfg: Config, clips_dir: Path
) -> None:
    """`faceunlock --camera clip` with no template: the wizard enrols from the clip and
    Finish saves the template, but camera.source in the file stays as it was."""
    clip = app.check_camera(str(clips_dir / FEMALE))
    path = Path(os.environ["FACEUNLOCK_CONFIG"])
    before = path.read_bytes()
    w = app.first_window(store, app.with_camera(load_config(), clip), "alice", camera=clip)
    assert isinstance(w, EnrolWizard)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    for want in (PAGE_CAMERA, PAGE_CAPTURE):
        w.button(QWizard.WizardButton.NextButton).click()
        qtbot.waitUntil(lambda want=want: w.currentId() == want, timeout=10_000)
    assert w.source_spec == clip
    qtbot.waitUntil(w.currentPage().isComplete, timeout=90_000)
    for want in (PAGE_CALIBRATE, PAGE_ENABLE, PAGE_FINISH):
        w.button(QWizard.WizardButton.NextButton).click()
        qtbot.waitUntil(lambda want=want: w.currentId() == want, timeout=10_000)
    assert w.camera_to_save() is None
    w.button(QWizard.WizardButton.FinishButton).click()
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=10_000)
    assert store.exists("alice")
    assert path.read_bytes() == before
    assert w.cfg.camera.source == clip  # the tray that takes over still runs on the clip
