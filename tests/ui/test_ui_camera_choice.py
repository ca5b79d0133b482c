"""The camera pickers of the wizard's Camera page and of Settings, on a fake
/sys/class/video4linux (``$FACEUNLOCK_VIDEO4LINUX``): cameras by name, infrared ones
labelled and preferred, and the "infrared / colour camera" indicator."""

from __future__ import annotations

from pathlib import Path

import pytest
from PyQt6.QtWidgets import QDialog, QFileDialog, QWizard
from pytestqt.qtbot import QtBot

from faceunlock.config import Config, config_set, load_config
from faceunlock.engine.sources import VideoDevice
from faceunlock.engine.templates import TemplateStore
from faceunlock.ui.camera_choice import (
    COLOUR_TEXT,
    IR_TEXT,
    MISSING_TEXT,
    camera_index,
    camera_kind_text,
    listed_spec,
    preferred_source,
    source_items,
)
from faceunlock.ui.dialogs import SettingsDialog
from faceunlock.ui.wizard import EnrolWizard

COLOUR = VideoDevice(0, "Integrated Camera: Integrated C", False)
IR = VideoDevice(2, "Integrated Camera: Integrated I", True)


@pytest.fixture()
def laptop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A laptop with a colour camera (video0) and an IR camera (video2), each with its UVC
    metadata node."""
    root = tmp_path / "video4linux"
    for node, dev, index in (
        ("video0", COLOUR, 0),
        ("video1", COLOUR, 1),
        ("video2", IR, 0),
        ("video3", IR, 1),
    ):
        (root / node).mkdir(parents=True)
        (root / node / "name").write_text(dev.name + "\n")
        (root / node / "index").write_text(f"{index}\n")
    monkeypatch.setenv("FACEUNLOCK_VIDEO4LINUX", str(root))
    return root


def test_items_preference_and_kind() -> None:
    devs = [COLOUR, IR]
    assert source_items(devs, "0", None, "/dev/video2", "clip.mp4") == [
        ("Integrated Camera: Integrated C (/dev/video0)", "0"),
        ("Integrated Camera: Integrated I (/dev/video2) (infrared)", "2"),
        ("clip.mp4", "clip.mp4"),
    ]
    assert source_items([], "1") == [("Camera 1", "1")]
    assert preferred_source(devs, "0") == "2"  # the default source: the IR camera instead
    assert preferred_source(devs, "/dev/video0") == "0"  # chosen on purpose: kept
    assert preferred_source(devs, "/dev/video9") == "/dev/video9"
    assert listed_spec(devs, "/dev/video2") == "2" and listed_spec(devs, "x.mp4") == "x.mp4"
    assert preferred_source([COLOUR], "0") == "0"
    assert preferred_source([IR, COLOUR], "0") == "2"
    assert preferred_source([VideoDevice(0, "IR Camera", True)], "0") == "0"
    assert camera_index("/dev/video7") == 7 and camera_index("3") == 3
    assert camera_index("clip.mp4") is None and camera_index(None) is None
    assert camera_kind_text("2", devs) == IR_TEXT
    assert camera_kind_text("/dev/video0", devs) == COLOUR_TEXT
    assert camera_kind_text("5", devs) == MISSING_TEXT  # not connected
    assert camera_kind_text("0", []) == MISSING_TEXT
    assert camera_kind_text("clip.mp4", devs) == ""


def test_wizard_prefers_and_labels_the_ir_camera(
    qtbot: QtBot, laptop: Path, store: TemplateStore, cfg: Config
) -> None:
    w = EnrolWizard(store, cfg, user="alice")
    qtbot.addWidget(w)
    page = w.camera_page
    labels = [page.combo.itemText(i) for i in range(page.combo.count())]
    assert labels == [
        "Integrated Camera: Integrated C (/dev/video0)",
        "Integrated Camera: Integrated I (/dev/video2) (infrared)",
        "Video file…",
        "Folder of images…",
    ]
    assert page.spec() == "2"
    assert page.camera_kind.text() == IR_TEXT
    page.combo.setCurrentIndex(0)
    assert page.spec() == "0"
    assert page.camera_kind.text() == COLOUR_TEXT
    w.reject()


def test_wizard_keeps_a_chosen_source(
    qtbot: QtBot, laptop: Path, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    clip = str(tmp_path / "clip.mp4")
    w = EnrolWizard(store, cfg, user="alice", source_spec=clip)
    qtbot.addWidget(w)
    assert w.camera_page.spec() == clip
    assert w.camera_page.camera_kind.text() == ""  # not a camera: no camera kind
    w.reject()
    w2 = EnrolWizard(store, config_set(cfg, "camera.source", "/dev/video0"), user="alice")
    qtbot.addWidget(w2)
    assert w2.camera_page.spec() == "0"  # configured on purpose: kept
    assert w2.camera_page.camera_kind.text() == COLOUR_TEXT
    w2.reject()


def test_settings_camera_picker(qtbot: QtBot, laptop: Path, cfg: Config, tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    d = SettingsDialog(cfg, path)
    qtbot.addWidget(d)
    labels = [d.source.itemText(i) for i in range(d.source.count())]
    assert labels == [
        "Integrated Camera: Integrated C (/dev/video0)",
        "Integrated Camera: Integrated I (/dev/video2) (infrared)",
    ]
    assert d.source_spec() == "0"  # what the config says (Settings changes nothing by itself)
    assert d.camera_kind.text() == COLOUR_TEXT
    d.source.setCurrentIndex(1)
    assert d.camera_kind.text() == IR_TEXT
    d.accept()
    assert d.result() == QDialog.DialogCode.Accepted
    assert load_config(path).camera.source == "2"
    # the configured camera named by its node is the same item
    d3 = SettingsDialog(config_set(cfg, "camera.source", "/dev/video2"), path)
    qtbot.addWidget(d3)
    assert d3.source.currentIndex() == 1 and d3.source_spec() == "2"
    # a typed source that is no camera: kept as typed, no camera kind
    d2 = SettingsDialog(load_config(path), path)
    qtbot.addWidget(d2)
    assert d2.source_spec() == "2"
    d2.source.setCurrentText(str(tmp_path))
    assert d2.source_spec() == str(tmp_path)
    assert d2.camera_kind.text() == "" and d2.camera_kind.isHidden()
    d2.accept()
    assert load_config(path).camera.source == str(tmp_path)


def test_wizard_without_a_camera_says_so_and_offers_a_folder(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: TemplateStore,
    cfg: Config, female_folder: Path,
) -> None:
    """Issue 15 item 8: with no camera, the configured "0" was labelled "Colour camera" and
    Next led to an error page; the one file dialog could not choose a folder."""
    from faceunlock.ui import wizard as wz

    root = tmp_path / "no-cameras"
    root.mkdir()
    monkeypatch.setenv("FACEUNLOCK_VIDEO4LINUX", str(root))
    w = EnrolWizard(store, cfg, user="alice")
    qtbot.addWidget(w)
    w.show()
    w.next()
    assert w.currentId() == wz.PAGE_CAMERA
    page = w.camera_page
    next_button = w.button(QWizard.WizardButton.NextButton)
    assert page.spec() == "0"
    assert page.camera_kind.text() == MISSING_TEXT
    assert not page.isComplete() and not next_button.isEnabled()
    assert "No camera found" in page.indicator.text()
    assert "folder" in page.indicator.text()
    asked: list[str] = []

    def pick_folder(*_a: object, **_k: object) -> str:
        asked.append("folder")
        return str(female_folder)

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", pick_folder)
    i = page.combo.findText("Folder of images…")
    page.combo.setCurrentIndex(i)
    page.combo.activated.emit(i)
    assert asked == ["folder"]
    assert page.spec() == str(female_folder)
    assert page.camera_kind.isHidden()
    assert page.isComplete() and next_button.isEnabled()
    w.reject()
