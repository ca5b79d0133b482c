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
                                  "warm", "cool", "backlit", "dim-quiet"])
def test_a_condition_is_deterministic_and_changes_the_frames(name: str) -> None:
    lc = conditions()
    frames = _frames()
    a = lc.apply(name, frames, BOX, 0, 5)
    b = lc.apply(name, [f.copy() for f in frames], BOX, 0, 5)
    assert len(a) == len(frames)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == 3
        assert np.array_equal(x, y)  # same seed and presentation: the same pixels
    if name != "far":
        assert a[0].shape == frames[0].shape
        assert float(np.mean(np.abs(a[0].astype(np.float32) - frames[0]))) > 2.0
    else:
        assert a[0].shape == (480, 640, 3)
    # the face's box follows the frame (only far moves it), onto the same place each time
    at = lc.condition_box(name, frames, BOX, 0, 5)
    assert at == lc.condition_box(name, frames, BOX, 0, 5)
    if name == "far":
        assert 50 <= at[3] - at[1] <= 60 and at[2] <= 640 and at[3] <= 480
    else:
        assert at == BOX
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


#: clip -> window starts judged live under every condition of LIVE_CONDITIONS (their live
#: scores there, seeded as below: 0.65-1.00 against the operating point 0.477; the report's
#: far and poor-webcam refusals are other windows, see docs/liveness.md)
WINDOWS = {"female": (0, 6, 12), "male": (0, 24, 48)}
LIVE_CONDITIONS = ["captured", "side-left", "side-right", "far", "poor-webcam", "warm", "cool",
                   "backlit"]


@pytest.mark.slow
@pytest.mark.parametrize("condition", LIVE_CONDITIONS)
def test_live_windows_in_other_conditions_are_judged_live(clips_dir: Path, judge: object,
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
            shown = lc.apply(condition, window, box, 0, s)
            at = lc.condition_box(condition, window, box, 0, s)
            row = judge(f"{stem}-{s}", "live", shown, at)  # type: ignore[operator]
            assert row["found"] and row["accepted"], (condition, stem, s, row)


@pytest.mark.slow
def test_a_print_moving_under_a_side_light_is_planar_and_the_live_head_is_not(
        clips_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a one-sided light a picture that moves changes brightness patch by patch; the
    planar cue's light-flattened pass still finds it flat, where the raw grey levels alone
    mostly do not, while the live windows under the same light are not planar."""
    from faceunlock.engine import liveness as L

    lc = conditions()
    kit = lc.attack_kit()
    frames = kit.clip_frames(clips_dir / "head-pose-face-detection-female.gif")
    boxes = kit.face_boxes(frames)

    def planar_prints() -> int:
        n = 0
        for seed in (1, 2):
            for j, fi in enumerate((1, 5, 9, 13, 17)):
                box = boxes[fi]
                assert box is not None
                rng = np.random.default_rng([0, 0, j, seed])
                held = list(kit.hand_held(kit.print_like(frames[fi], rng), rng, 2))
                for name in ("side-left", "side-right"):
                    a, b = lc.apply(name, held, box, 0, j)
                    n += L.planar_motion(a, b, box)
        return n

    assert planar_prints() >= 15  # of 20 (measured: 18)
    for s, window in lc.live_windows(frames):
        box = lc.first_box(window, boxes[s:s + 2])
        assert box is not None
        for name in ("side-left", "side-right"):
            a, b = lc.apply(name, window[:2], box, 0, s)
            assert not L.planar_motion(a, b, box), (s, name)
    # without dividing the light out, the same prints mostly pass as not planar
    monkeypatch.setattr(L, "PLANAR_PREBLUR", 0.0)
    monkeypatch.setattr(L, "PLANAR_LIGHT_SIGMA", 0.0)
    assert planar_prints() <= 6  # of 20 (measured: 3)


@pytest.mark.slow
def test_planar_holds_on_a_face_with_more_pixels(clips_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A camera with more pixels on the face (here the clips' frames enlarged 2.5x: faces
    150-215 px, the app's default detector range) sees the same hand-held photo or print
    move by 2.5x more pixels, with 2.5x the tracking residual: the cue scales the region so
    that the face is PLANAR_FACE_WIDTH wide, and it still finds the pictures flat and the
    live head not. Without that, most of the pictures pass as not planar."""
    import cv2

    from faceunlock.engine import liveness as L

    lc = conditions()
    kit = lc.attack_kit()
    frames = kit.clip_frames(clips_dir / "head-pose-face-detection-female.gif")
    boxes = kit.face_boxes(frames)
    f = 2.5

    def big(im: np.ndarray) -> np.ndarray:
        return cv2.resize(im, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)

    def planar_pictures() -> int:
        n = 0
        for j, fi in enumerate((1, 5, 9, 13, 17)):
            box = boxes[fi]
            assert box is not None
            rng = np.random.default_rng([0, 0, j, 7])
            for picture in (frames[fi], kit.print_like(frames[fi], rng)):
                a, b = kit.hand_held(picture, rng, 2)
                n += L.planar_motion(big(a), big(b), tuple(v * f for v in box))
        return n

    assert planar_pictures() >= 9  # of 10 (measured: 10)
    for s, window in lc.live_windows(frames):
        box = lc.first_box(window, boxes[s:s + 2])
        assert box is not None
        assert not L.planar_motion(big(window[0]), big(window[1]),
                                   tuple(v * f for v in box)), s
    monkeypatch.setattr(L, "PLANAR_FACE_WIDTH", 0.0)  # the pixel constants taken as they are
    assert planar_pictures() <= 6  # of 10 (measured: 1)


@pytest.mark.slow
def test_a_dark_grainy_live_face_is_refused_with_the_light_message(clips_dir: Path) -> None:
    """The man's frontal frames in the synthetic dim room (dark and noisy: MiniFASNet scores
    them as a recaptured picture) are refused by the score alone, and the verdict says why
    in words the user can act on (DIM_MESSAGE, reason ``dim``); the same frames as captured
    are live, and through ``authenticate`` the refusal carries that message."""
    from faceunlock.app import service
    from faceunlock.engine import liveness as L
    from faceunlock.engine.auth import AuthParams, authenticate
    from faceunlock.engine.sources import Frame
    from faceunlock.errors import AuthStatus
    from tests.fakes.clip_material import MALE, clip_config, clip_frames

    cfg = clip_config()
    pipe = service.pipeline_for(cfg)
    stage = service.liveness_for(cfg, pipe)
    assert stage is not None
    frames = clip_frames(clips_dir / MALE)[:4]
    box = pipe.observe(frames[0], select="largest")[0].box
    dark = conditions().apply("dim", frames, box, 0, 0)

    def judged(images: list[np.ndarray]) -> L.Verdict:
        return stage.judge([(im, pipe.observe(im, select="largest")[0].box)
                            for im in images[:2]])

    live = judged(frames)
    assert live.live and "dim" not in live.reasons, live
    v = judged(dark)
    assert not v.live and v.reasons == ["score", "dim"], v
    assert v.message == L.DIM_MESSAGE and "light" in v.message
    assert L.face_level(dark[0], box) < L.DIM_FACE_LEVEL <= L.face_level(frames[0], box)

    anchors = np.stack([pipe.observe(f, select="largest")[0].embedding for f in frames])
    res = authenticate(pipe, anchors, 0.6,
                       (Frame(im, i, 0.08 * i) for i, im in enumerate(dark)),
                       AuthParams(timeout=30.0, k=2, n=3), liveness=stage)
    assert res.status == AuthStatus.PRESENTATION_ATTACK and res.message == L.DIM_MESSAGE
