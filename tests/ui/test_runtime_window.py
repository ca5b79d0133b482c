"""The app opens its first window from a venv that the runtime set-up alone built, started the
way ``./run.sh`` starts it.

``scripts/setup.sh`` without ``--dev`` (what ``./run.sh`` runs) builds a fresh venv in the
test's tmp folder (``FACEUNLOCK_VENV``; no system site-packages, no dev extras; PyQt6, OpenCV,
onnxruntime and numpy come from PyPI through pip's usual cache). Then ``./run.sh`` itself
(``FACEUNLOCK_VENV`` pointing at that venv: its set-up finds everything in place, then it
runs the venv's ``faceunlock`` with no arguments) starts the app on a real X server (Xvfb),
with a throw-away HOME and XDG folders (so the first-run enrolment wizard opens) and no
QT_QPA_PLATFORM (Qt picks xcb as on an X11 desktop). The wizard's window must appear on the
X server (``xdotool search``, ``xwininfo``), and a screenshot of the screen (saved as
``screen.png`` in the test's tmp folder) must show it drawn.

Skipped when Xvfb, xdotool or xwininfo is missing, when a runtime Debian package is missing
(the test installs no system packages: ``bash scripts/setup.sh`` does), and when PyPI cannot
be reached.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TITLE = "FaceUnlock: enrol your face"
OFFLINE = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable",
           "Failed to establish a new connection", "No matching distribution found",
           "Could not find a version that satisfies")

RUNTIME_ONLY = r"""
import importlib.util, json, sys
from pathlib import Path
import PyQt6, cv2, numpy, onnxruntime
import faceunlock
print(json.dumps({
    "prefix": sys.prefix,
    "pyqt6": PyQt6.__file__, "cv2": cv2.__file__, "onnxruntime": onnxruntime.__file__,
    "faceunlock": faceunlock.__file__,
    "dev": [m for m in ("pytest", "pytestqt", "ruff", "mypy", "importlinter", "torch", "dlib")
            if importlib.util.find_spec(m) is not None],
}))
"""

GRAB = r"""
import sys
from PyQt6.QtGui import QGuiApplication
app = QGuiApplication([])
assert app.platformName() == "xcb", app.platformName()
assert app.primaryScreen().grabWindow(0).save(sys.argv[1])
"""


def _missing_runtime_packages() -> list[str]:
    if shutil.which("dpkg-query") is None:
        return []
    pkgs = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh"), "--print-apt-runtime"],
                          capture_output=True, text=True, check=True, timeout=30).stdout.split()
    missing = []
    for p in pkgs:
        states = [subprocess.run(["dpkg-query", "-W", "-f", "${Status}", name],
                                 capture_output=True, text=True).stdout
                  for name in (p, f"{p}t64")]
        if not any("install ok installed" in s for s in states):
            missing.append(p)
    return missing


#: the Python a user's venv would be made with: this venv's base interpreter
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


def _pip_cache() -> str:
    res = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True,
                         text=True, timeout=60)
    return res.stdout.strip() if res.returncode == 0 else ""


def _build_runtime_venv(venv: Path) -> None:
    env = dict(os.environ)
    for var in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV"):
        env.pop(var, None)
    env["FACEUNLOCK_VENV"] = str(venv)
    env["PYTHON"] = BASE_PYTHON
    # a throw-away HOME: setup.sh links the commands into ~/.local/bin
    home = venv.parent / "setup-home"
    home.mkdir(exist_ok=True)
    if cache := _pip_cache():
        env["PIP_CACHE_DIR"] = cache
    env["HOME"] = str(home)
    res = subprocess.run(["bash", "scripts/setup.sh"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=900)
    if res.returncode != 0 and any(s in res.stderr + res.stdout for s in OFFLINE):
        pytest.skip(f"PyPI cannot be reached: {res.stderr[-500:]}")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "[setup] ready: faceunlock" in res.stderr
    link = home / ".local" / "bin" / "faceunlock"
    assert link.is_symlink() and link.resolve() == (venv / "bin" / "faceunlock").resolve()
    assert "faceunlock faceunlock-gui" in res.stderr and "~/.local/bin" in res.stderr


def _app_env(tmp_path: Path, venv: Path, display: str) -> dict[str, str]:
    home = tmp_path / "home"
    run = tmp_path / "run"
    home.mkdir()
    run.mkdir(mode=0o700)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHON": BASE_PYTHON,
        "FACEUNLOCK_VENV": str(venv),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_RUNTIME_DIR": str(run),
        "DISPLAY": display,
        "LANG": "C.UTF-8",
        # no session bus: nothing to autolaunch one for the display and leave it behind
        "DBUS_SESSION_BUS_ADDRESS": f"unix:path={run / 'no-bus'}",
        "FACEUNLOCK_INSTANCE": f"fu-rw-{os.getpid()}",
    }
    if cache := _pip_cache():
        env["PIP_CACHE_DIR"] = cache  # run.sh's set-up step, with the user's pip cache
    for var in ("PIP_FIND_LINKS", "PIP_CERT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
                "PIP_DEFAULT_TIMEOUT", "PIP_DISABLE_PIP_VERSION_CHECK"):
        if var in os.environ:
            env[var] = os.environ[var]
    return env


def _find_window(display: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The id of the visible window titled TITLE, waiting up to ``timeout`` s for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the app exited ({proc.returncode}) before its window showed"
        res = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", f"^{TITLE}$"],
                             env={**os.environ, "DISPLAY": display}, capture_output=True,
                             text=True, timeout=30)
        if ids := res.stdout.split():
            return ids[0]
        time.sleep(0.25)
    pytest.fail(f"no window {TITLE!r} on {display} after {timeout:.0f} s")


def test_first_window_from_a_runtime_only_venv(tmp_path: Path, xvfb_display: str) -> None:
    for tool in ("xdotool", "xwininfo"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian: apt-get install xdotool x11-utils)")
    if missing := _missing_runtime_packages():
        pytest.skip(f"runtime Debian packages missing (bash scripts/setup.sh): {missing}")

    venv = tmp_path / "venv"
    _build_runtime_venv(venv)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    res = subprocess.run([str(venv / "bin" / "python"), "-c", RUNTIME_ONLY],
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    seen = json.loads(res.stdout)
    assert Path(seen["prefix"]) == venv
    for mod in ("pyqt6", "cv2", "onnxruntime"):  # installed in this venv, not borrowed
        assert Path(seen[mod]).is_relative_to(venv), seen
    assert Path(seen["faceunlock"]).is_relative_to(ROOT), seen
    assert seen["dev"] == [], f"dev tools in the runtime venv: {seen['dev']}"

    env = _app_env(tmp_path, venv, xvfb_display)
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        # run.sh execs the venv's faceunlock: proc is the app once its set-up step is done
        proc = subprocess.Popen(["bash", str(ROOT / "run.sh")], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wid = _find_window(xvfb_display, proc, 240)
        info = subprocess.run(["xwininfo", "-id", wid], env={**os.environ, "DISPLAY": xvfb_display},
                              capture_output=True, text=True, timeout=30).stdout
        geo = {k: int(v) for k, v in re.findall(
            r"^\s*(Absolute upper-left X|Absolute upper-left Y|Width|Height):\s+(-?\d+)", info,
            re.M)}
        assert "Map State: IsViewable" in info, info
        assert geo["Width"] > 200 and geo["Height"] > 150, info
        shot = tmp_path / "screen.png"
        grab = subprocess.run([str(venv / "bin" / "python"), "-c", GRAB, str(shot)],
                              env={**env, "QT_QPA_PLATFORM": "xcb"}, capture_output=True,
                              text=True, timeout=120)
        assert grab.returncode == 0, grab.stderr[-2000:]
        assert proc.poll() is None, "the app exited while its window was shown"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    output = log.read_text(errors="replace")
    assert "Traceback" not in output and "qt.qpa.plugin" not in output, output[-3000:]
    assert "[setup] installing Debian packages" not in output  # all there already
    # the venv is up to date (setup.sh above): run.sh runs no pip and prints no banner
    assert "[setup] installing" not in output and "Editable installation" not in output, output
    assert "~/.local/bin" in output, output[-3000:]  # says where the commands are
    assert (tmp_path / "home" / ".local" / "bin" / "faceunlock").is_symlink()

    from PyQt6.QtGui import QImage

    img = QImage(str(shot))
    assert not img.isNull() and (img.width(), img.height()) == (1024, 768)
    x0, y0 = geo["Absolute upper-left X"], geo["Absolute upper-left Y"]
    inside = {img.pixel(x, y) for x in range(max(x0, 0), min(x0 + geo["Width"], 1024), 5)
              for y in range(max(y0, 0), min(y0 + geo["Height"], 768), 5)}
    assert len(inside) > 5, "the wizard's window is blank on the screen"
