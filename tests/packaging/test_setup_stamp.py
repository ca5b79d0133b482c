"""scripts/setup.sh (run by every ./run.sh) runs pip only when the venv is not installed from
this pyproject.toml yet, and then without setuptools' "Editable installation" banner. The venv
is a throw-away one whose python logs each call (pip calls succeed without installing; every
other call runs this checkout's python); the Debian-package step is skipped (no dpkg-query on
the PATH), so nothing on the machine changes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from faceunlock.paths import repo_root

SCRIPT = repo_root() / "scripts" / "setup.sh"


def _sandbox(tmp: Path) -> tuple[Path, Path, dict[str, str]]:
    venv, log = tmp / "venv", tmp / "calls.log"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text(f'#!/bin/sh\necho "$*" >> {log}\n'
                  f'[ "$1" = -m ] && [ "$2" = pip ] && exit 0\nexec {sys.executable} "$@"\n')
    fu = venv / "bin" / "faceunlock"
    fu.write_text("#!/bin/sh\necho faceunlock test\n")
    for f in (py, fu):
        f.chmod(0o755)
    tools = tmp / "tools"  # the system's commands, less dpkg-query
    tools.mkdir()
    for d in ("/usr/local/bin", "/usr/bin", "/bin"):
        for entry in os.scandir(d):
            target = tools / entry.name
            if entry.name != "dpkg-query" and not target.exists():
                target.symlink_to(entry.path)
    home = tmp / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": str(tools), "FACEUNLOCK_VENV": str(venv),
           "FACEUNLOCK_BIN_DIR": str(tmp / "links"), "PYTHON": sys.executable}
    return venv, log, env


def _setup(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=120)


def _pip_calls(log: Path) -> list[str]:
    return [ln for ln in log.read_text().splitlines() if ln.startswith("-m pip")] \
        if log.exists() else []


def test_pip_runs_once_then_only_when_pyproject_changes(tmp_path: Path) -> None:
    venv, log, env = _sandbox(tmp_path)
    first = _setup(env)
    assert first.returncode == 0, first.stderr
    assert _pip_calls(log) == ["-m pip install -q --upgrade pip",
                               "-m pip install -q -e .[gui]"]
    assert "installing faceunlock[gui]" in first.stderr
    stamp = (venv / ".faceunlock-installed").read_text()
    digest = hashlib.sha256((repo_root() / "pyproject.toml").read_bytes()).hexdigest()
    assert f"pyproject {digest}\n" in stamp and "extras gui\n" in stamp

    log.unlink()
    again = _setup(env)  # what every ./run.sh does: no pip, no output
    assert again.returncode == 0, again.stderr
    assert _pip_calls(log) == [] and again.stderr == ""

    # pyproject.toml changed since (here: a stamp of another hash): pip runs again
    (venv / ".faceunlock-installed").write_text(stamp.replace(digest, "0" * 64))
    log.unlink()
    assert _setup(env).returncode == 0
    assert _pip_calls(log)[-1] == "-m pip install -q -e .[gui]"
    assert (venv / ".faceunlock-installed").read_text() == stamp


def test_pip_runs_without_the_editable_banner(tmp_path: Path) -> None:
    venv, log, env = _sandbox(tmp_path)
    py = venv / "bin" / "python"  # pip's calls also record the warning filters they get
    py.write_text(py.read_text().replace('echo "$*" >>', 'echo "$* [$PYTHONWARNINGS]" >>'))
    assert _setup(env).returncode == 0
    calls = [ln for ln in log.read_text().splitlines() if ln.startswith("-m pip install -q -e")]
    assert calls == ["-m pip install -q -e .[gui] [ignore:Editable installation]"]
