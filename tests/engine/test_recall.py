"""Fallback detection passes (faceunlock.engine.recall) through Pipeline.detect, on real
LFW faces composed into hard frames: small, side-lit; and the frames that must not pay."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceunlock.engine.imageio import read_image
from faceunlock.engine.pipeline import (
    FALLBACK_EVERY_TRACKED,
    Detection,
    Pipeline,
    PipelineSettings,
    euclidean,
    scene_changed,
    scene_thumbnail,
)
from faceunlock.engine.recall import PASSES, clahe

#: dlib's CNN box side on a 250x250 LFW deep-funneled image (DevTest median)
LFW_FACE_PX = 96.0


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline(PipelineSettings())


@pytest.fixture(scope="module")
def single() -> Pipeline:
    return Pipeline(PipelineSettings(fallback=False))


def _near(dets: list[Detection], x: float, y: float, size: float) -> list[Detection]:
    return [d for d in dets
            if abs(d.center[0] - x) < 0.5 * size and abs(d.center[1] - y) < 0.5 * size
            and 0.6 * size < d.width + 1 < 1.6 * size]


def _small_face_frame(face: np.ndarray, face_px: float) -> tuple[np.ndarray, float, float]:
    """A 640x480 grey frame with the LFW image scaled so its face is ``face_px``, off centre."""
    s = face_px / LFW_FACE_PX
    im = cv2.resize(face, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    fr = np.full((480, 640, 3), 100, np.uint8)
    x, y = 640 - im.shape[1] - 40, 90
    fr[y:y + im.shape[0], x:x + im.shape[1]] = im
    return fr, x + im.shape[1] / 2.0, y + im.shape[0] / 2.0


def _side_lit(img: np.ndarray) -> np.ndarray:
    """Light from the right falling to ~6 % on the left over a fifth of the width, gamma 1.8."""
    h, w = img.shape[:2]
    xx = np.arange(w, dtype=np.float32)[None, :].repeat(h, 0)
    gain = 0.06 + 1.5 / (1 + np.exp(-(xx - w / 2) / (0.12 * w)))
    out = np.clip(img.astype(np.float32) / 255.0 * gain[..., None], 0, 1) ** 1.8
    return np.asarray(out * 255 + 0.5, np.uint8)


def test_fallback_finds_a_50px_face_the_single_pass_misses(
        lfw_dir: Path, pipe: Pipeline, single: Pipeline) -> None:
    face = read_image(lfw_dir / "images" / "AJ_Cook" / "AJ_Cook_0001.jpg")
    fr, cx, cy = _small_face_frame(face, 50)
    assert single.detect(fr) == []
    assert single.fallback_passes == ()
    dets = pipe.detect(fr)
    assert pipe.fallback_passes == PASSES  # CLAHE alone does not help: the upsampled pass did
    assert len(_near(dets, cx, cy, 50)) == 1
    # the box is good enough for landmarks and chip: the same person as the big face
    big = pipe.observe(face, select="center")[0]
    small = pipe.observe(fr, select="largest")[0]
    assert euclidean(big.embedding, small.embedding) < pipe.threshold


def test_fallback_finds_a_side_lit_face_filling_the_image(
        lfw_dir: Path, pipe: Pipeline, single: Pipeline) -> None:
    img = read_image(lfw_dir / "images" / "Amanda_Bynes" / "Amanda_Bynes_0003.jpg")
    # the face fills a Yale-B-sized image
    tight = cv2.resize(img[67:187, 73:177], (168, 192), interpolation=cv2.INTER_LINEAR)
    lit = _side_lit(tight)
    assert single.detect(lit) == []
    dets = pipe.detect(lit)
    assert pipe.fallback_passes == ("clahe",)
    assert len(_near(dets, 84, 96, 140)) == 1


def test_a_found_face_runs_no_fallback_pass(lfw_dir: Path) -> None:
    p = Pipeline(PipelineSettings())
    face = read_image(lfw_dir / "images" / "AJ_Cook" / "AJ_Cook_0001.jpg")
    fr, _, _ = _small_face_frame(face, 120)
    assert p.detect(fr)
    assert p.fallback_passes == ()
    assert p.fallback.last_passes == ()  # the cascade never ran in this pipeline
    assert p.observe(fr, select="largest", track=True)
    assert p.fallback.last_passes == ()


def test_a_blank_frame_has_no_face_after_every_pass(pipe: Pipeline) -> None:
    blank = np.full((480, 640, 3), 128, np.uint8)
    assert pipe.detect(blank) == []
    assert pipe.fallback_passes == PASSES
    assert pipe.observe(blank) == []


def test_a_stream_without_a_face_runs_the_passes_every_nth_frame() -> None:
    p = Pipeline(PipelineSettings())
    ran = []
    for i in range(2 * FALLBACK_EVERY_TRACKED + 1):
        # the scene changes every frame: only the every-Nth rule holds the passes back
        blank = np.full((240, 320, 3), 40 + 20 * i, np.uint8)
        assert p.detect(blank, track=True) == []
        ran.append(p.fallback_passes == PASSES)
    assert ran == [i % FALLBACK_EVERY_TRACKED == 0 for i in range(len(ran))]
    p.reset_tracking()
    p.detect(blank, track=True)
    assert p.fallback_passes == PASSES  # a new stream starts with the passes


def _noisy_scene(rng: np.random.Generator) -> np.ndarray:
    low = rng.uniform(40, 200, (6, 8, 3)).astype(np.float32)
    return np.asarray(cv2.resize(low, (640, 480), interpolation=cv2.INTER_CUBIC))


def _with_noise(scene: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255), np.uint8)


def test_a_static_scene_runs_the_passes_once_until_a_face_enters(lfw_dir: Path) -> None:
    p = Pipeline(PipelineSettings())
    rng = np.random.default_rng(1)
    scene = _noisy_scene(rng)
    ran, skipped = [], []
    for _ in range(3 * FALLBACK_EVERY_TRACKED + 1):  # new sensor noise on every frame
        assert p.detect(_with_noise(scene, rng), track=True) == []
        ran.append(bool(p.fallback_passes))
        skipped.append(p.fallback_skipped_static)
    assert ran == [True] + [False] * (len(ran) - 1)
    assert skipped == [i % FALLBACK_EVERY_TRACKED == 0 and i > 0 for i in range(len(ran))]
    # a 50 px face (only the upsampled pass finds it) steps into the same scene
    face = read_image(lfw_dir / "images" / "AJ_Cook" / "AJ_Cook_0001.jpg")
    im = cv2.resize(face, None, fx=50 / LFW_FACE_PX, fy=50 / LFW_FACE_PX,
                    interpolation=cv2.INTER_AREA)
    found_at = None
    for i in range(FALLBACK_EVERY_TRACKED):
        fr = _with_noise(scene, rng)
        fr[90:90 + im.shape[0], 400:400 + im.shape[1]] = im
        if p.detect(fr, track=True):
            found_at = i
            break
    assert found_at is not None and p.fallback_passes == PASSES


def test_the_scene_change_test_ignores_sensor_noise_and_sees_a_small_face(
        lfw_dir: Path) -> None:
    rng = np.random.default_rng(2)
    scene = _noisy_scene(rng)
    a = scene_thumbnail(_with_noise(scene, rng))
    assert not scene_changed(a, scene_thumbnail(_with_noise(scene, rng)))
    face = read_image(lfw_dir / "images" / "AJ_Cook" / "AJ_Cook_0001.jpg")
    fr = _with_noise(scene, rng)
    im = cv2.resize(face, None, fx=40 / LFW_FACE_PX, fy=40 / LFW_FACE_PX,
                    interpolation=cv2.INTER_AREA)  # the face 40 px, the image ~104 px
    # only the face itself, not the LFW image's background
    c = im.shape[0] // 2
    fr[200:240, 300:340] = im[c - 20:c + 20, c - 20:c + 20]
    assert scene_changed(a, scene_thumbnail(fr))


def test_no_fallback_setting_runs_none(single: Pipeline) -> None:
    assert single.detect(np.zeros((100, 100, 3), np.uint8)) == []
    assert single.fallback_passes == ()
    assert single.fallback.last_passes == ()


def test_clahe_keeps_colour_and_raises_local_contrast() -> None:
    rng = np.random.default_rng(0)
    img = np.clip(100 + rng.normal(0, 4, (64, 64, 3)), 0, 255).astype(np.uint8)
    img[..., 0] = np.clip(img[..., 0].astype(int) + 30, 0, 255)  # reddish
    out = clahe(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    grey_in = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(float)
    grey_out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(float)
    assert grey_out.std() > 1.5 * grey_in.std()
    assert out[..., 0].mean() > out[..., 2].mean()  # still reddish


def test_no_upsampled_pass_when_the_configuration_already_enlarges() -> None:
    # min_face 50 in the config: the detector enlarges the frame 1.6x (downscale 0.625)
    p = Pipeline(PipelineSettings(min_face=80, downscale=50 / 80, max_face=160))
    assert p.detect(np.full((200, 200, 3), 128, np.uint8)) == []
    assert p.fallback_passes == ("clahe",)
    assert p.fallback.primary is p.detector  # the configured sizes hold in the CLAHE pass
