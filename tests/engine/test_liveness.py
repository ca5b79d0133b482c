"""The passive liveness stage: crops, model loading with the sidecar check, the deny cues,
the verdict on live and attacked clip frames, the config key."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceunlock.app import service
from faceunlock.config import Config, ConfigError, config_set
from faceunlock.engine import liveness as L
from faceunlock.errors import InputError, ModelError
from faceunlock.paths import models_dir
from tests.fakes.clip_material import FEMALE, clip_config, clip_frames


def test_crop_fits_the_image_and_keeps_the_centre_when_it_can() -> None:
    assert L.crop_box((480, 640), (300, 200, 339, 239), 2.0) == (280, 180, 360, 260)
    # near the corner: shifted back inside, same size
    assert L.crop_box((480, 640), (0, 0, 39, 39), 2.7) == (0, 0, 108, 108)
    # too big for the image: the factor is clipped so the crop fits
    x0, y0, x1, y1 = L.crop_box((100, 100), (30, 30, 69, 69), 4.0)
    assert (x0, y0) == (0, 0) and x1 <= 100 and y1 <= 100 and x1 - x0 >= 95


def test_crop_input_layout() -> None:
    img = np.zeros((100, 120, 3), np.uint8)
    img[:, :, 0] = 200  # red
    x = L.crop_input(img, (40, 30, 79, 69), 2.7)
    assert x.shape == (3, 80, 80) and x.dtype == np.float32
    assert x[2].min() == 200 and x[0].max() == 0  # BGR order, raw 0-255 values
    with pytest.raises(InputError):
        L.crop_input(img.astype(np.float32), (40, 30, 79, 69), 2.7)


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    for name in (L.V2_FILE, L.V1SE_FILE):
        shutil.copy(models_dir() / name, tmp_path / name)
        shutil.copy(models_dir() / f"{name}.json", tmp_path / f"{name}.json")
    data = bytearray((tmp_path / L.V2_FILE).read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / L.V2_FILE).write_bytes(bytes(data))
    stage = L.Liveness(tmp_path)
    with pytest.raises(ModelError, match="sha256 mismatch"):
        stage.scores([(np.zeros((100, 100, 3), np.uint8), (30, 30, 69, 69))])


def test_sidecars_carry_source_licence_scales_and_operating_point() -> None:
    stage = L.Liveness()
    assert stage.v2.meta["licence"] == stage.v1se.meta["licence"] == "Apache-2.0"
    stage.v2.load()
    stage.v1se.load()
    assert (stage.v2.scale, stage.v1se.scale) == (2.7, 4.0)
    op = stage.v2.meta["operating_point"]
    assert 0 < op["threshold"] < 1 and stage.threshold == op["threshold"]


def test_frozen_and_glare_cues() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 255, (80, 80)).astype(np.float32)
    assert L.frozen([a, a.copy(), a.copy()])
    assert not L.frozen([a, a + rng.normal(0, 2, a.shape).astype(np.float32)])
    assert not L.frozen([a])
    img = np.full((240, 320, 3), 90, np.uint8)
    img += rng.integers(0, 20, img.shape, dtype=np.uint8)
    box = (130.0, 90.0, 189.0, 149.0)
    assert not L.glare(img, box)
    img[70:110, 100:160] = 255  # a flat white patch beside the face, a third of its area
    assert L.glare(img, box)


def test_an_overexposed_wall_behind_the_face_is_not_glare() -> None:
    rng = np.random.default_rng(1)
    img = np.full((240, 320, 3), 90, np.uint8)
    img += rng.integers(0, 20, img.shape, dtype=np.uint8)
    box = (130.0, 90.0, 189.0, 149.0)
    img[:110, :160] = 255  # a clipped wall from the frame's corner to beside the face
    assert not L.glare(img, box)
    img[:110, :160] = 90
    img[40:110, 60:160] = 255  # the same patch, but bounded: a reflection on the picture
    assert L.glare(img, box)


def test_bezel_cue() -> None:
    img = np.full((270, 480, 3), 150, np.uint8)
    box = (215.0, 100.0, 264.0, 149.0)
    assert not L.bezel(img, box)
    img[40:220, 150:330] = 20  # a dark phone body around the face ...
    img[52:208, 162:318] = 170  # ... and its lit screen
    assert L.bezel(img, box)


@pytest.fixture(scope="module")
def clip(clips_dir: Path) -> tuple[list[np.ndarray], list[tuple[float, float, float, float]]]:
    frames = clip_frames(clips_dir / FEMALE)
    pipe = service.pipeline_for(clip_config())
    boxes = [pipe.observe(f, select="largest")[0].box for f in frames[10:14]]
    return frames[10:14], boxes


def test_live_frames_pass_and_attacks_do_not(clip: tuple[list, list]) -> None:
    from tests.fakes.attack_material import attack_kit

    frames, boxes = clip
    stage = L.Liveness()
    v = stage.judge(list(zip(frames[:2], boxes[:2], strict=True)))
    assert v.live, v
    assert v.judged == 2 and v.score >= v.threshold
    # the same frame twice: frozen, whatever the model says
    v = stage.judge([(frames[0], boxes[0]), (frames[0], boxes[0])])
    assert not v.live and "frozen" in v.reasons
    # the frame on a phone screen
    kit = attack_kit()
    rng = np.random.default_rng(0)
    phone, room = kit.make_phone(rng, frames[0].shape, boxes[0]), kit.room_of(frames[0], rng)
    shown = [kit.on_phone(frames[0], boxes[0], phone, room, rng) for _ in range(2)]
    v = stage.judge([(shown[0], boxes[0]), (shown[1], boxes[0])])
    assert not v.live, v
    # greyscale (IR) frames are accepted as input
    grey = frames[0].mean(axis=2).astype(np.uint8)
    assert stage.judge([(grey, boxes[0])]).judged == 1


def test_judge_runs_the_cues_beside_the_models(clip: tuple[list, list],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The cues run on a second thread: the verdict's cue reasons are those of
    deny_cues on the same frames, and an error there reaches the caller."""
    import threading

    frames, boxes = clip
    stage = L.Liveness()
    faces = list(zip(frames[:2], boxes[:2], strict=True))
    frozen = [faces[0], faces[0]]
    for f in (faces, frozen):
        v = stage.judge(f)
        assert [r for r in v.reasons if r not in ("score", "dim")] == L.deny_cues(f)
    assert L.deny_cues(frozen) == ["frozen"]
    seen: list[str] = []

    def broken(*_: object) -> bool:
        seen.append(threading.current_thread().name)
        raise RuntimeError("cue failed")

    def no_threads(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as m:  # no thread to be had: the cues run on this one
        m.setattr(threading.Thread, "start", no_threads)
        assert stage.judge(frozen).reasons == ["frozen"]
    monkeypatch.setattr(L, "planar_motion", broken)
    with pytest.raises(RuntimeError, match="cue failed"):
        stage.judge(faces)
    assert seen == ["faceunlock-liveness-cues"]
    assert all(t.name != "faceunlock-liveness-cues" for t in threading.enumerate())


def test_liveness_level_config() -> None:
    assert Config().liveness.level == "passive"  # the default
    assert config_set(Config(), "liveness.level", "off").liveness.level == "off"
    with pytest.raises(ConfigError, match=r"liveness\.level"):
        config_set(Config(), "liveness.level", "strict")
    with pytest.raises(InputError):
        L.LivenessParams(level="strict")


def test_service_stage_follows_the_level() -> None:
    cfg = clip_config()
    pipe = service.pipeline_for(cfg)
    passive = service.liveness_for(cfg, pipe)  # passive by default
    assert passive is not None and passive.params.level == "passive"
    assert service.liveness_for(config_set(cfg, "liveness.level", "off"), pipe) is None
    stage = service.liveness_for(config_set(cfg, "liveness.level", "active"), pipe)
    assert stage is not None and stage.params.level == "active"
    assert stage is service.liveness_for(config_set(cfg, "liveness.level", "active"), pipe)


def test_ir_flat_cue_on_synthetic_grey_frames() -> None:
    """In near-IR a screen shows a dark, featureless patch; skin lit by the emitter shows
    structure. Synthetic greyscale frames through the IR path (grey + CLAHE)."""
    from faceunlock.engine.sources import normalize_frame

    rng = np.random.default_rng(1)
    box = (130.0, 90.0, 189.0, 149.0)
    flat = np.full((240, 320), 30, np.uint8)
    flat[60:180, 100:220] = 12  # the screen: dark, only sensor noise
    flat = np.clip(flat + rng.normal(0, 1.5, flat.shape), 0, 255).astype(np.uint8)
    screen, is_ir = normalize_frame(flat)
    assert is_ir and L.ir_flat(screen, box)
    # a lit face: smooth shading and features (eyes, mouth) at the face's scale
    yy, xx = np.mgrid[0:240, 0:320].astype(np.float32)
    face = 110 + 50 * np.exp(-((xx - 160) ** 2 + (yy - 120) ** 2) / (2 * 30.0 ** 2))
    for cx, cy in ((145, 110), (175, 110), (160, 140)):
        face -= 60 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 5.0 ** 2))
    face = np.clip(face + rng.normal(0, 1.5, face.shape), 0, 255).astype(np.uint8)
    lit, _ = normalize_frame(face)
    assert not L.ir_flat(lit, box)
    assert not L.ir_flat(lit[:, :, 0], box)  # a single grey channel too
    assert L.ir_flat(np.zeros((240, 320), np.uint8), box)  # black: nothing lit
    assert L.ir_flat(lit, (10.0, 10.0, 11.0, 11.0))  # too small to tell: refused


def test_ir_flat_is_judged_only_on_infrared_frames(clip: tuple[list, list]) -> None:
    from faceunlock.engine.sources import normalize_frame

    frames, boxes = clip
    stage = L.Liveness()
    grey = [normalize_frame(f.mean(axis=2).astype(np.uint8))[0] for f in frames[:2]]
    v = stage.judge(list(zip(grey, boxes[:2], strict=True)), infrared=True)
    assert v.live, v  # her face in IR shows its structure; the colour model does not run
    assert not np.isfinite(v.score)
    # judged as colour, the model refuses the grey face: why IR skips it
    assert "score" in stage.judge(list(zip(grey, boxes[:2], strict=True))).reasons
    dark = [np.full_like(g, 8) for g in grey]
    assert "ir-flat" in stage.judge(list(zip(dark, boxes[:2], strict=True)),
                                    infrared=True).reasons
    assert "ir-flat" not in stage.judge(list(zip(dark, boxes[:2], strict=True))).reasons


def test_light_flattened_divides_a_smooth_light_out() -> None:
    """A texture under a side light (a smooth multiplicative ramp) flattens to nearly what it
    flattens to under even light; its raw grey levels differ by up to 2.5x."""
    rng = np.random.default_rng(4)
    tex = cv2.GaussianBlur(rng.uniform(60, 200, (120, 160)).astype(np.float32), (0, 0), 1.5)
    ramp = np.linspace(0.4, 1.0, 160, dtype=np.float32)[None, :]
    even = np.clip(tex, 0, 255).astype(np.uint8)
    lit = np.clip(tex * ramp, 0, 255).astype(np.uint8)
    assert float(np.mean(np.abs(lit.astype(np.float32) - even))) > 20
    a, b = L.light_flattened(even), L.light_flattened(lit)
    assert a.dtype == np.uint8 and a.shape == even.shape
    inner = (slice(12, -12), slice(12, -12))  # away from the blur's border
    assert float(np.mean(np.abs(a[inner].astype(np.float32) - b[inner]))) < 3.0
