"""scripts/link-commands.sh (run by scripts/setup.sh, so by ./run.sh): `faceunlock` and
`faceunlock-gui` on the PATH via symlinks in ~/.local/bin, in a throw-away HOME; a file there
that is not FaceUnlock's symlink is never replaced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from faceunlock.paths import repo_root

SCRIPT = repo_root() / "scripts" / "link-commands.sh"
VENV = Path(sys.executable).parent.parent  # this checkout's venv (bin/faceunlock)


def _run(home: Path, venv: Path, on_path: bool = True) -> subprocess.CompletedProcess[str]:
    path = f"{home / '.local' / 'bin'}:/usr/bin:/bin" if on_path else "/usr/bin:/bin"
    return subprocess.run(["bash", str(SCRIPT), str(venv)], env={"HOME": str(home),
                          "PATH": path}, capture_output=True, text=True, timeout=60)


def _fake_venv(d: Path) -> Path:
    (d / "bin").mkdir(parents=True)
    (d / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for cmd in ("faceunlock", "faceunlock-gui"):
        (d / "bin" / cmd).write_text("#!/bin/sh\necho fake\n")
        (d / "bin" / cmd).chmod(0o755)
    return d


def test_links_the_commands_and_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    res = _run(home, VENV)
    assert res.returncode == 0, res.stderr
    assert "faceunlock faceunlock-gui now on your PATH via ~/.local/bin" in res.stderr
    link = home / ".local" / "bin" / "faceunlock"
    assert link.is_symlink() and os.readlink(link) == str(VENV / "bin" / "faceunlock")
    # a new shell finds it by name
    out = subprocess.run(["bash", "-c", "faceunlock --version"], capture_output=True, text=True,
                         env={"HOME": str(home), "PATH": f"{link.parent}:/usr/bin:/bin"},
                         timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("faceunlock"), out.stderr
    again = _run(home, VENV)  # run.sh runs it every time: quiet once in place
    assert again.returncode == 0 and again.stderr == ""


def test_not_on_path_says_how_to_add_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    res = _run(home, _fake_venv(tmp_path / "venv"), on_path=False)
    assert res.returncode == 0, res.stderr
    assert "which is not on your PATH" in res.stderr
    assert f"export PATH=\"{home}/.local/bin:$PATH\"" in res.stderr


def test_never_replaces_a_file_that_is_not_ours(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bin_dir = home / ".local" / "bin"
    bin_dir.mkdir(parents=True)
    mine = bin_dir / "faceunlock"
    mine.write_text("#!/bin/sh\necho my own script\n")
    (bin_dir / "faceunlock-gui").symlink_to("/usr/bin/true")  # someone else's link
    res = _run(home, _fake_venv(tmp_path / "venv"))
    assert res.returncode == 0, res.stderr
    assert mine.read_text() == "#!/bin/sh\necho my own script\n" and not mine.is_symlink()
    assert os.readlink(bin_dir / "faceunlock-gui") == "/usr/bin/true"
    assert res.stderr.count("not replacing") == 2


def test_replaces_its_own_link_to_a_moved_venv(tmp_path: Path) -> None:
    home = tmp_path / "home"
    old, new = _fake_venv(tmp_path / "old"), _fake_venv(tmp_path / "new")
    assert _run(home, old).returncode == 0
    res = _run(home, new)
    assert res.returncode == 0, res.stderr
    assert os.readlink(home / ".local" / "bin" / "faceunlock") == str(new / "bin" / "faceunlock")
