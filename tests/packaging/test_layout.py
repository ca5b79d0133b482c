"""The packaged layout, without building a package: ``faceunlock.paths`` finds the models and
icons of ``/usr/lib/faceunlock`` when the package lives in ``/usr/lib/faceunlock/lib``, and
``faceunlock.unlock.system`` uses the helper the installed profile names (the package's
``/usr/bin/faceunlock-auth`` or ``packaging/install.sh``'s ``/usr/local/bin`` one)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from faceunlock import paths
from faceunlock.unlock import system

REPO = paths.repo_root()


def test_checkout_layout_is_the_repo() -> None:
    assert paths.app_root() == REPO
    assert paths.models_dir() == REPO / "models"
    assert paths.assets_dir() == REPO / "assets"
    assert paths.isolated_command() == [sys.executable, "-I", "-m", "faceunlock"]


def test_packaged_layout_finds_models_and_assets(tmp_path: Path) -> None:
    app = tmp_path / "usr" / "lib" / "faceunlock"
    pkg = app / "lib" / "faceunlock"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    shutil.copy(REPO / "faceunlock" / "paths.py", pkg / "paths.py")
    (app / "models").mkdir()
    wrapper = tmp_path / "usr" / "bin" / "faceunlock"
    wrapper.parent.mkdir()
    wrapper.write_text("#!/bin/sh\n")
    code = (
        f"import sys; sys.path.insert(0, {str(app / 'lib')!r}); "
        "from faceunlock import paths; "
        "print(paths.app_root(), paths.models_dir(), paths.assets_dir(), "
        "*paths.isolated_command(), sep='\\n')"
    )
    site = Path(paths.__file__).resolve().parents[1]  # platformdirs comes from the venv
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.append({str(site)!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    # pkexec/sudo run the package's wrapper: `python3 -I -m faceunlock` would not find it
    assert out == [str(app), str(app / "models"), str(app / "assets"), str(wrapper)]


def _profile(root: Path, helper: str) -> None:
    p = root / "usr" / "share" / "pam-configs" / "faceunlock"
    p.parent.mkdir(parents=True, exist_ok=True)
    text = (REPO / "packaging" / "pam" / "faceunlock").read_text()
    p.write_text(text.replace(system.HELPER, helper))


def _helper(root: Path, path: str) -> None:
    h = root / path.lstrip("/")
    h.parent.mkdir(parents=True, exist_ok=True)
    h.write_text("#!/bin/sh\n")
    h.chmod(0o755)


def test_helper_path_follows_the_installed_profile(tmp_path: Path) -> None:
    assert system.helper_path(tmp_path) == system.HELPER  # nothing installed
    _helper(tmp_path, system.PACKAGED_HELPER)
    assert system.helper_path(tmp_path) == system.PACKAGED_HELPER  # package, no profile yet
    _profile(tmp_path, system.HELPER)
    assert system.helper_path(tmp_path) == system.HELPER  # the profile decides
    _profile(tmp_path, system.PACKAGED_HELPER)
    assert system.helper_path(tmp_path) == system.PACKAGED_HELPER
    st = system.status(tmp_path)
    assert st["helper"]["path"] == system.PACKAGED_HELPER and st["helper"]["present"]
    assert st["helper"]["secure"]


def test_enable_uses_the_packaged_helper(tmp_path: Path) -> None:
    _helper(tmp_path, system.PACKAGED_HELPER)
    _profile(tmp_path, system.PACKAGED_HELPER)
    plan = system.enable(tmp_path)  # no pam-auth-update under this root: the manual line
    assert any(system.pam_line(system.PACKAGED_HELPER) in m for m in plan.messages), plan
    preview = system.enable_preview(tmp_path)
    assert preview.problem is None and preview.lines[0] == system.pam_line(system.PACKAGED_HELPER)
    (tmp_path / "usr" / "bin" / "faceunlock-auth").unlink()
    preview = system.enable_preview(tmp_path)
    assert preview.problem is not None and system.PACKAGED_HELPER in preview.problem
