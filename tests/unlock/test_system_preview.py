"""`system.enable_preview`: what `faceunlock system enable` would change, read before anybody
agrees to it; it changes nothing itself."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from faceunlock.paths import repo_root
from faceunlock.unlock import system


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_debian_root_names_the_file_and_the_profile_lines(tmp_path: Path) -> None:
    r = tmp_path / "root"
    (r / "etc/pam.d").mkdir(parents=True)
    (r / "etc/pam.d/common-auth").write_text("auth required pam_unix.so\n")
    for rel in ("usr/sbin/pam-auth-update", "usr/local/bin/faceunlock-auth"):
        f = r / rel
        f.parent.mkdir(parents=True)
        f.write_text("#!/bin/sh\nexit 1\n")
        f.chmod(0o755)
    prof = r / system.PROFILE.lstrip("/")
    prof.parent.mkdir(parents=True)
    shutil.copyfile(repo_root() / "packaging/pam/faceunlock", prof)
    before = _tree(r)
    pv = system.enable_preview(r)
    assert pv.problem is None and pv.automatic
    assert system.COMMON_AUTH in pv.summary and system.PROFILE in pv.summary
    # Auth: and Auth-Initial: carry the same line; only the Auth: section is listed
    assert pv.lines == [
        "[success=end default=ignore] pam_exec.so quiet stdout /usr/local/bin/faceunlock-auth"
    ]
    assert pv.undo == system.UNDO_COMMAND
    # works as typed: pkexec's PATH has no ~/.local/bin or venv, so the command is absolute
    prefix, cmd, *rest = shlex.split(pv.undo)
    assert prefix == "pkexec" and rest == ["system", "disable"]
    assert os.path.isabs(cmd) and os.access(cmd, os.X_OK), pv.undo
    assert _tree(r) == before


def test_other_systems_get_by_hand_instructions_and_the_problem(tmp_path: Path) -> None:
    pv = system.enable_preview(tmp_path)
    assert not pv.automatic
    assert pv.problem is not None and "faceunlock-auth is not installed" in pv.problem
    assert pv.lines[0] == system.PAM_LINE
    assert any(line.startswith("/etc/pam.d/sudo") for line in pv.lines)
    assert list(tmp_path.iterdir()) == []
