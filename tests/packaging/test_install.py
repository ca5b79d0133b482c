"""packaging/install.sh and uninstall.sh on a fake root (never the real /)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "packaging" / "install.sh"
UNINSTALL = REPO / "packaging" / "uninstall.sh"
MANIFEST = "var/lib/faceunlock/install-manifest.json"
AUTOSTART = "etc/xdg/autostart/faceunlock-autostart.desktop"

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("sha256sum") is None or sys.platform != "linux",
    reason="needs bash and GNU coreutils",
)


def run(script: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    extra = ["--python", sys.executable] if script == INSTALL else []
    res = subprocess.run(
        ["bash", str(script), "--root", str(root), *extra, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return res


def snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every path under root -> (mode, sha256 or 'dir')."""
    out: dict[str, tuple[str, str]] = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(root))
        if stat.S_ISDIR(st.st_mode):
            out[rel] = (oct(st.st_mode), "dir")
        else:
            out[rel] = (oct(st.st_mode), hashlib.sha256(p.read_bytes()).hexdigest())
    return out


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc/xdg/autostart").mkdir(parents=True)
    (r / AUTOSTART).write_text("[Desktop Entry]\nName=someone else's\n")
    (r / AUTOSTART).chmod(0o600)
    (r / "usr/share/applications").mkdir(parents=True)
    (r / "usr/share/applications/other.desktop").write_text("[Desktop Entry]\nName=Other\n")
    (r / "etc/pam.d").mkdir(parents=True)
    (r / "etc/pam.d/common-auth").write_text("auth required pam_unix.so\n")
    return r


def test_install_files_modes_manifest(root: Path) -> None:
    res = run(INSTALL, root)
    assert "NOT enabled" in res.stdout
    wrapper = root / "usr/local/bin/faceunlock-auth"
    st = wrapper.stat()
    assert stat.S_IMODE(st.st_mode) == 0o755
    if os.geteuid() == 0:
        assert st.st_uid == 0 and st.st_gid == 0
    text = wrapper.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert f"    '{sys.executable}' -I -m faceunlock.unlock.pam_helper \"$@\"\n" in text
    assert " -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 " in text  # env -i
    profile = root / "usr/share/pam-configs/faceunlock"
    assert stat.S_IMODE(profile.stat().st_mode) == 0o644
    assert profile.read_bytes() == (REPO / "packaging/pam/faceunlock").read_bytes()
    unit = (root / "usr/lib/systemd/user/faceunlock-watch.service").read_text()
    assert "ExecStart=/usr/local/bin/faceunlock watch\n" in unit
    desktop = (root / "usr/share/applications/faceunlock.desktop").read_text()
    assert "Exec=faceunlock\n" in desktop and "Categories=Settings;Security;" in desktop
    auto = (root / AUTOSTART).read_text()
    assert "X-GNOME-Autostart-enabled=true" in auto and "Exec=faceunlock\n" in auto
    apps = root / "usr/share/icons/hicolor/scalable/apps"
    app_icon = (REPO / "assets/icons/watching.svg").read_bytes()
    assert (apps / "faceunlock.svg").read_bytes() == app_icon
    for icon in (REPO / "assets/icons").glob("*.svg"):
        assert (apps / f"faceunlock-{icon.name}").is_file()
    # PAM is not enabled by installing
    assert (root / "etc/pam.d/common-auth").read_text() == "auth required pam_unix.so\n"

    m = json.loads((root / MANIFEST).read_text())
    files = {f["path"]: f for f in m["files"]}
    assert files["/usr/local/bin/faceunlock-auth"]["action"] == "created"
    assert files["/usr/local/bin/faceunlock-auth"]["sha256"] == hashlib.sha256(
        wrapper.read_bytes()
    ).hexdigest()
    rep = files["/" + AUTOSTART]
    assert rep["action"] == "replaced"
    backup = root / rep["backup"].lstrip("/")
    assert backup.read_text() == "[Desktop Entry]\nName=someone else's\n"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert rep["backup"].startswith("/var/lib/faceunlock/backup/")
    assert {"dir": "/usr/local/bin"} in m["created_dirs"]


def test_install_twice_is_idempotent(root: Path) -> None:
    run(INSTALL, root)
    before = snapshot(root)
    res = run(INSTALL, root)
    assert "already installed" in res.stdout
    assert snapshot(root) == before
    assert len(list((root / "var/lib/faceunlock/backup").iterdir())) == 1


def test_dry_run_changes_nothing_and_prints_a_diff(root: Path) -> None:
    before = snapshot(root)
    res = run(INSTALL, root, "--dry-run")
    assert snapshot(root) == before
    assert "+++ b/usr/local/bin/faceunlock-auth" in res.stdout
    assert "\n-Name=someone else's\n" in res.stdout  # the replaced file's diff
    assert "dry run: nothing was changed" in res.stdout
    # after a real install a dry run has nothing to show
    run(INSTALL, root)
    res = run(INSTALL, root, "--dry-run")
    assert "+++" not in res.stdout
    after = snapshot(root)
    res = run(UNINSTALL, root, "--dry-run")
    assert snapshot(root) == after
    assert "remove     /usr/local/bin/faceunlock-auth" in res.stdout


def test_uninstall_restores_byte_for_byte_and_twice_is_noop(root: Path) -> None:
    before = snapshot(root)
    run(INSTALL, root)
    run(INSTALL, root)
    assert snapshot(root) != before
    run(UNINSTALL, root)
    assert snapshot(root) == before
    res = run(UNINSTALL, root)
    assert "nothing to uninstall" in res.stdout
    assert snapshot(root) == before


def test_uninstall_keeps_a_file_changed_after_install(root: Path) -> None:
    run(INSTALL, root)
    desktop = root / "usr/share/applications/faceunlock.desktop"
    desktop.write_text("[Desktop Entry]\nName=edited by the admin\n")
    res = run(UNINSTALL, root)
    assert "faceunlock.desktop was changed after install: kept" in res.stderr
    assert desktop.read_text() == "[Desktop Entry]\nName=edited by the admin\n"
    assert not (root / "usr/local/bin/faceunlock-auth").exists()
    assert not (root / MANIFEST).exists()
    assert (root / AUTOSTART).read_text() == "[Desktop Entry]\nName=someone else's\n"


def test_uninstall_warns_while_pam_is_enabled(root: Path) -> None:
    run(INSTALL, root)
    (root / "etc/pam.d/common-auth").write_text(
        "auth [success=2 default=ignore] pam_exec.so quiet stdout /usr/local/bin/faceunlock-auth\n"
    )
    res = run(UNINSTALL, root)
    assert "faceunlock system disable" in res.stderr
