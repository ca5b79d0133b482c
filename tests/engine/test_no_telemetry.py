"""Nothing leaves the machine: onnxruntime's telemetry writes no file in our processes.

onnxruntime (1.32 here) ships Microsoft's 1DS telemetry client; ``import onnxruntime`` alone
writes ``$XDG_CACHE_HOME (or ~/.cache)/Microsoft/DeveloperTools/.onnxruntime/deviceid`` and
``onnxruntime.db`` (queued events: OS, process path, network kind, hardware). It reads
``ORT_DISABLE_TELEMETRY`` at import, which ``faceunlock/__init__.py`` sets. These tests run the
real CLI with a throw-away HOME, XDG dirs and cwd, and look for any new file there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FACEUNLOCK = REPO / ".venv" / "bin" / "faceunlock"


def _sandbox(root: Path) -> tuple[dict[str, str], list[Path]]:
    """A minimal environment whose HOME, XDG dirs, TMPDIR and cwd are empty folders under
    ``root``; telemetry explicitly left ON (``ORT_DISABLE_TELEMETRY=0``) as a user may have."""
    dirs = {k: root / k.lower() for k in
            ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
             "XDG_RUNTIME_DIR", "TMPDIR", "CWD")}
    for d in dirs.values():
        d.mkdir(mode=0o700, parents=True)
    env = {k: str(v) for k, v in dirs.items() if k != "CWD"}
    env.update(PATH=os.environ.get("PATH", "/usr/bin:/bin"), LANG="C.UTF-8",
               ORT_DISABLE_TELEMETRY="0")
    return env, list(dirs.values())


def _files(dirs: list[Path]) -> list[str]:
    return sorted(str(p) for d in dirs for p in d.rglob("*"))


def test_plain_onnxruntime_writes_telemetry(tmp_path: Path) -> None:
    """The control: without FaceUnlock, importing onnxruntime in this sandbox does write the
    files (so the checks below can see them); skipped on an onnxruntime that writes none."""
    env, dirs = _sandbox(tmp_path)
    subprocess.run([sys.executable, "-I", "-c", "import onnxruntime"], env=env,
                   cwd=dirs[-1], check=True, timeout=120)
    written = _files(dirs)
    if not written:
        pytest.skip("this onnxruntime writes no telemetry files")
    assert any(w.endswith("onnxruntime.db") for w in written), written


def test_cli_verify_writes_nothing(faces_dir: Path, tmp_path: Path) -> None:
    """`faceunlock verify` loads every model (detector, landmarks, encoder; int8 and fp32
    detector sessions) and writes no file: not under HOME or any XDG dir, not in the cwd."""
    env, dirs = _sandbox(tmp_path / "box")
    r = subprocess.run(
        [str(FACEUNLOCK), "verify", str(faces_dir / "woman-09.jpg"),
         str(faces_dir / "woman-15.jpg"), "--json",
         "--min-face", "50", "--max-face", "160", "--coarse-first"],
        env=env, cwd=dirs[-1], capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert '"match": true' in r.stdout
    assert _files(dirs) == []


def test_training_side_writes_nothing(tmp_path: Path) -> None:
    """The training modules (quantize, export) open sessions too: they import the package
    first, so onnxruntime's quantizer and sessions made there write nothing either."""
    env, dirs = _sandbox(tmp_path)
    code = (
        "import faceunlock.training.quantize, onnxruntime as ort\n"
        "from faceunlock.paths import models_dir\n"
        "ort.InferenceSession(str(models_dir() / 'encoder.onnx'),"
        " providers=['CPUExecutionProvider'])\n"
    )
    r = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-I", "-c", code], env=env,
                       cwd=dirs[-1], capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and "No module named" in r.stderr:
        pytest.skip(f"training extra not installed: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr
    assert _files(dirs) == []
