"""Live users in other conditions (benchmarks/liveness_conditions.py): its condition
transforms are deterministic, and live windows of the clips under the conditions where the
measurement shows margin are judged live at ``passive`` through the evaluation's path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def conditions() -> ModuleType:
    """benchmarks/liveness_conditions.py as a module."""
    if "liveness_conditions" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "liveness_conditions", REPO / "benchmarks" / "liveness_conditions.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules["liveness_conditions"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["liveness_conditions"]


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (270, 480, 3), dtype=np.uint8)
    return [base, np.roll(base, 2, axis=1)]


BOX = (200.0, 90.0, 269.0, 159.0)


@pytest.mark.parametrize("name", ["dim", "side-left", "side-right", "far", "poor-webcam",
                                  "warm", "cool", "backlit"])
def test_a_condition_is_deterministic_and_changes_the_frames(name: str) -> None:
    lc = conditions()
    frames = _frames()
    a = lc.apply(name, frames, BOX, 0, 5)
    b = lc.apply(name, [f.copy() for f in frames], BOX, 0, 5)
    assert len(a) == len(frames)
    for x, y, f in zip(a, b, frames, strict=True):
        assert x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == 3
        assert np.array_equal(x, y)  # same seed and presentation: the same pixels
    if name != "far":
        assert a[0].shape == frames[0].shape
        assert float(np.mean(np.abs(a[0].astype(np.float32) - frames[0]))) > 2.0
    else:
        assert a[0].shape == (480, 640, 3)
    # another presentation index draws other noise
    c = lc.apply(name, frames, BOX, 0, 6)
    assert not np.array_equal(a[0], c[0])


def test_unknown_condition_and_empty_presentation_are_clear_errors() -> None:
    lc = conditions()
    with pytest.raises(KeyError, match="unknown condition 'fog'"):
        lc.apply("fog", _frames(), BOX, 0, 0)
    with pytest.raises(ValueError, match="at least one frame"):
        lc.apply("dim", [], BOX, 0, 0)


def test_the_side_light_falls_across_the_face() -> None:
    lc = conditions()
    flat = [np.full((270, 480, 3), 100, np.uint8)]
    right = lc.apply("side-right", flat, BOX, 0, 0)[0].astype(np.float32).mean(axis=(0, 2))
    left = lc.apply("side-left", flat, BOX, 0, 0)[0].astype(np.float32).mean(axis=(0, 2))
    cx, fw = 234, 70
    assert right[cx - fw] < 60 < 100 < right[cx + fw]  # dark on the image's left
    assert left[cx - fw] > 100 > 60 > left[cx + fw]


@pytest.fixture(scope="module")
def judge(clips_dir: Path) -> object:
    return conditions().Judge()


#: (clip, window starts) judged live under every condition of LIVE_CONDITIONS
WINDOWS = {"female": (0, 8, 14), "male": (10, 30, 50)}
LIVE_CONDITIONS = ["captured", "side-left", "side-right", "warm", "cool", "backlit"]


@pytest.mark.slow
@pytest.mark.parametrize("condition", LIVE_CONDITIONS)
def test_live_windows_in_other_light_are_judged_live(clips_dir: Path, judge: object,
                                                     condition: str) -> None:
    lc = conditions()
    kit = lc.attack_kit()
    for stem, starts in WINDOWS.items():
        frames = kit.clip_frames(clips_dir / f"head-pose-face-detection-{stem}.gif")
        windows = dict(lc.live_windows(frames))
        for s in starts:
            window = windows[s]
            box = lc.first_box(window)
            assert box is not None
            row = judge(f"{stem}-{s}", "live", lc.apply(condition, window, box, 0, s))  # type: ignore[operator]
            assert row["found"] and row["accepted"], (condition, stem, s, row)
