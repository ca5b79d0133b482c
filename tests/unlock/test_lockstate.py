"""Skip-the-camera checks of :mod:`faceunlock.unlock.lockstate` on fake sysfs / procfs trees.

Real files under ``tmp_path`` laid out as the kernel does: ``/sys/class/drm/card0-eDP-1/``
with ``status`` (``connected`` / ``disconnected``), ``enabled`` (``enabled`` / ``disabled``)
and ``dpms`` (``On`` / ``Off`` / ...), and ``/proc/acpi/button/lid/LID0/state``. An
"unreadable" file is a folder in its place (reading it fails also as root).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from faceunlock.unlock.lockstate import camera_pointless, displays_off


def connector(
    root: Path,
    name: str,
    *,
    status: str | None = "connected",
    dpms: str | None = "On",
    enabled: str | None = "enabled",
) -> Path:
    """A connector folder ``root/name`` with the given files (None: no such file)."""
    d = root / name
    d.mkdir(parents=True)
    for fname, value in (("status", status), ("dpms", dpms), ("enabled", enabled)):
        if value is not None:
            (d / fname).write_text(value + "\n")
    return d


def card(root: Path) -> None:
    """The non-connector entries of a real ``/sys/class/drm``."""
    (root / "card0").mkdir(parents=True, exist_ok=True)
    (root / "card0" / "dev").write_text("226:0\n")
    (root / "renderD128").mkdir()
    (root / "version").write_text("drm 1.1.0 20060810\n")


def test_one_connected_display_off(tmp_path: Path) -> None:
    card(tmp_path)
    connector(tmp_path, "card0-eDP-1", dpms="Off")
    assert displays_off(tmp_path) == "display off (card0-eDP-1: dpms Off)"


@pytest.mark.parametrize("word", ["off", "OFF", "Off"])
def test_dpms_off_is_case_insensitive(tmp_path: Path, word: str) -> None:
    connector(tmp_path, "card0-eDP-1", dpms=word)
    assert displays_off(tmp_path) == f"display off (card0-eDP-1: dpms {word})"


def test_disabled_connector_counts_as_off(tmp_path: Path) -> None:
    connector(tmp_path, "card0-eDP-1", dpms="On", enabled="disabled")
    assert displays_off(tmp_path) == "display off (card0-eDP-1: disabled)"


def test_one_connected_display_on(tmp_path: Path) -> None:
    card(tmp_path)
    connector(tmp_path, "card0-eDP-1", dpms="On")
    assert displays_off(tmp_path) is None


@pytest.mark.parametrize("state", ["Standby", "Suspend", "", "garbage"])
def test_anything_but_off_is_not_off(tmp_path: Path, state: str) -> None:
    connector(tmp_path, "card0-eDP-1", dpms=state)
    assert displays_off(tmp_path) is None


def test_two_connected_one_on(tmp_path: Path) -> None:
    connector(tmp_path, "card0-eDP-1", dpms="Off")
    connector(tmp_path, "card0-HDMI-A-1", dpms="On")
    assert displays_off(tmp_path) is None
    (tmp_path / "card0-HDMI-A-1" / "dpms").write_text("Off\n")
    assert displays_off(tmp_path) == (
        "displays off (card0-HDMI-A-1: dpms Off, card0-eDP-1: dpms Off)"
    )


def test_docked_laptop_panel_disabled_external_on(tmp_path: Path) -> None:
    connector(tmp_path, "card0-eDP-1", dpms="Off", enabled="disabled")
    connector(tmp_path, "card1-DP-2", dpms="On")
    assert displays_off(tmp_path) is None


def test_disconnected_connectors_are_ignored(tmp_path: Path) -> None:
    card(tmp_path)
    connector(tmp_path, "card0-eDP-1", dpms="Off")
    # disconnected (and writeback's "unknown") connectors report dpms On / Off at random
    connector(tmp_path, "card0-HDMI-A-1", status="disconnected", dpms="On")
    connector(tmp_path, "card0-DP-1", status="disconnected", dpms="Off", enabled="disabled")
    connector(tmp_path, "card0-Writeback-1", status="unknown", dpms="On", enabled=None)
    assert displays_off(tmp_path) == "display off (card0-eDP-1: dpms Off)"


def test_nothing_connected_is_not_off(tmp_path: Path) -> None:
    card(tmp_path)
    connector(tmp_path, "card0-HDMI-A-1", status="disconnected", dpms="Off")
    assert displays_off(tmp_path) is None


def test_no_connectors(tmp_path: Path) -> None:
    assert displays_off(tmp_path) is None  # empty folder
    assert displays_off(tmp_path / "no-such-drm") is None  # no /sys/class/drm at all
    card(tmp_path)
    assert displays_off(tmp_path) is None  # a card without connector folders


def test_missing_dpms_is_doubt(tmp_path: Path) -> None:
    connector(tmp_path, "card0-eDP-1", dpms=None)
    assert displays_off(tmp_path) is None
    connector(tmp_path, "card0-HDMI-A-1", dpms="Off")
    assert displays_off(tmp_path) is None  # one display off, one of unknown state


def test_unreadable_dpms_is_doubt(tmp_path: Path) -> None:
    d = connector(tmp_path, "card0-eDP-1", dpms=None)
    (d / "dpms").mkdir()  # open() fails, as root too
    assert displays_off(tmp_path) is None


def test_dangling_dpms_link_is_doubt(tmp_path: Path) -> None:
    d = connector(tmp_path, "card0-eDP-1", dpms=None)
    (d / "dpms").symlink_to(tmp_path / "gone")
    assert displays_off(tmp_path) is None


def test_unreadable_status_is_doubt(tmp_path: Path) -> None:
    connector(tmp_path, "card0-eDP-1", dpms="Off")
    d = connector(tmp_path, "card0-HDMI-A-1", status=None, dpms="On")
    (d / "status").mkdir()
    # HDMI-A-1 may be a lit display: do not call the displays off
    assert displays_off(tmp_path) is None


def test_connector_symlinks_as_in_sysfs(tmp_path: Path) -> None:
    """/sys/class/drm/card0-eDP-1 is a symlink into /sys/devices/..."""
    devices = tmp_path / "devices" / "pci0000:00" / "drm" / "card0"
    connector(devices, "card0-eDP-1", dpms="Off")
    drm = tmp_path / "class" / "drm"
    drm.mkdir(parents=True)
    (drm / "card0-eDP-1").symlink_to(devices / "card0-eDP-1")
    assert displays_off(drm) == "display off (card0-eDP-1: dpms Off)"


def lid(root: Path, state: str) -> str:
    f = root / "lid" / "LID0" / "state"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(f"state:      {state}\n")
    return str(root / "lid" / "*" / "state")


def test_camera_pointless_lid_first_then_display(tmp_path: Path) -> None:
    drm = tmp_path / "drm"
    pattern = lid(tmp_path, "open")
    connector(drm, "card0-eDP-1", dpms="On")
    assert camera_pointless(pattern, drm) is None
    (drm / "card0-eDP-1" / "dpms").write_text("Off\n")
    assert camera_pointless(pattern, drm) == "display off (card0-eDP-1: dpms Off)"
    lid(tmp_path, "closed")  # a closed lid usually turns the panel off too: the lid is named
    assert camera_pointless(pattern, drm) == f"lid closed ({tmp_path / 'lid/LID0/state'})"
    (drm / "card0-eDP-1" / "dpms").write_text("On\n")
    assert camera_pointless(pattern, drm) == f"lid closed ({tmp_path / 'lid/LID0/state'})"


def test_camera_pointless_without_lid_or_drm(tmp_path: Path) -> None:
    assert camera_pointless(str(tmp_path / "none" / "*"), tmp_path / "none") is None
