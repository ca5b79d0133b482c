"""``faceunlock eval unlock``: raw and cohort-normalised scoring side by side, the worst
look-alike stratum and the caveat on unmeasurable targets (a small LFW gallery)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from faceunlock.engine.pipeline import PipelineSettings
from faceunlock.evaluation import unlock_protocol

PEOPLE = ("Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder")


@pytest.fixture(scope="module")
def gallery(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gallery")
    for name in PEOPLE:
        (root / name).mkdir()
        for img in sorted((lfw_dir / "images" / name).glob("*.jpg"))[:6]:
            (root / name / img.name).symlink_to(img)
    return root


def test_reports_both_scorings(gallery: Path) -> None:
    res = unlock_protocol.run(gallery, 3, PipelineSettings(), min_images=6)
    assert res["identities"] == len(PEOPLE)
    assert res["genuine_attempts"] == 3 * len(PEOPLE)
    assert res["impostor_attempts"] == 3 * len(PEOPLE) * (len(PEOPLE) - 1)
    assert set(res["by_scoring"]) == {"raw", "asnorm"}
    assert res["scoring"] == "asnorm"
    assert "population" in res and res["strata"] >= 1
    raw, norm = res["by_scoring"]["raw"], res["by_scoring"]["asnorm"]
    assert raw["calibrated"]["balanced"]["threshold"] > 0
    assert norm["calibrated"]["balanced"]["threshold"] < 0
    for rep in (raw, norm):
        for level, r in rep["calibrated"].items():
            assert "worst_stratum" in r and r["worst_stratum"]["far"] >= 0
            # 36 impostor attempts cannot measure any of the targets
            assert "caveat" in r, level
    assert res["calibrated"] == norm["calibrated"]
    text = unlock_protocol.format_report(res)
    assert "asnorm scores (used for unlock)" in text and "caveat:" in text


def test_cli_json(gallery: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "faceunlock", "eval", "unlock", "--gallery", str(gallery),
         "--anchors", "3", "--min-images", "6", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["by_scoring"]["asnorm"]["frr_at_far"][0]["far_target"] == 1e-3
