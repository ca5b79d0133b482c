"""Synthetic presentation attacks (and live presentations) from the shared webcam clips, for
tests and development of the liveness stage. It does not replace real captures: its attacks
are simulations of a photo, a print and a phone screen held in front of a camera.

    python tools/attack_kit.py build --out DIR [--part fit|report|all] [--seed 0] [--scale 1]
    python tools/attack_kit.py fit [--seed 0]        # fit the operating point, write sidecar

``build`` writes ``DIR/live/<presentation>/NNNN.png`` and
``DIR/attack/<kind>/<presentation>/NNNN.png`` (the layout ``faceunlock eval liveness``
reads). Attack kinds, each from a frame (or the frames) of a clip:

    copies        ten identical copies of one frame (an injected still)
    moving-photo  one frame moved by small random homographies, as a hand holds a photo,
                  recaptured (blur, sensor noise)
    print         a print of one frame: colour shift, blur, paper texture, hand-held
    screen        one frame on a phone: bezel, moire, gamma change, glare, hand-held
    replay        the clip itself played on that phone

Stress kinds, built only when asked for (``--kinds``), harder than the five above:

    print-room    the print as a sheet of paper (a margin, its edge) held up and moved by
                  hand in front of a textured, static room: the background does not move
                  with the face
    print-still   the print filling the view and not moving at all (propped up): only the
                  camera's noise changes between frames

Live presentations are windows of consecutive clip frames, as captured and with a camera's
variation (exposure, gamma, noise). Everything is seeded: the same arguments give the same
bytes.

Parts: ``fit`` uses the man's clip only; ``report`` the woman's clip and the clip of both
(never used to fit). ``fit`` builds the fit part in a temporary folder, scores it with the
engine's liveness stage and writes the chosen operating point into
``models/minifasnet-v2.onnx.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceunlock.config import Config
from faceunlock.paths import shared_dir

FEMALE = "head-pose-face-detection-female.gif"
MALE = "head-pose-face-detection-male.gif"
BOTH = "head-pose-face-detection-female-and-male.gif"
PARTS = {"fit": (MALE,), "report": (FEMALE, BOTH), "all": (MALE, FEMALE, BOTH)}
KINDS = ("copies", "moving-photo", "print", "screen", "replay")
STRESS_KINDS = ("print-room", "print-still")
#: frames per presentation
FRAMES = 10
#: live presentations: windows of this many consecutive frames, this far apart
LIVE_WINDOW = 4
LIVE_STEP = 2
#: the fit part's size: attacks per kind, camera variants per live window, frames each
FIT_PER_CLIP = 40
FIT_LIVE_VARIANTS = 3
FIT_FRAMES = 4


def clip_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a clip, RGB uint8."""
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    cap.release()
    if not out:
        raise SystemExit(f"no frames in {path}")
    return out


# --------------------------------------------------------------------------------------------
# Image operations
# --------------------------------------------------------------------------------------------


def jitter_homography(rng: np.random.Generator, w: int, h: int, amount: float,
                      shift: float = 0.0) -> np.ndarray:
    """A homography moving each image corner by up to ``amount`` x the image size, plus a
    common shift of up to ``shift`` x the size (a hand's tremor and drift)."""
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    common = rng.uniform(-shift, shift, 2) * (w, h)
    dst = src + rng.uniform(-amount, amount, (4, 2)).astype(np.float32) * (w, h) + common
    return cv2.getPerspectiveTransform(src, dst.astype(np.float32))


def recapture(img: np.ndarray, rng: np.random.Generator, blur: float = 0.7,
              noise: float = 2.5) -> np.ndarray:
    """The camera seeing a presented picture: defocus blur and sensor noise."""
    out = cv2.GaussianBlur(img.astype(np.float32), (0, 0), blur) if blur > 0 \
        else img.astype(np.float32)
    out += rng.normal(0, noise, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1] (random grid upsampled bicubically)."""
    g = rng.uniform(-1, 1, (h // cell + 2, w // cell + 2)).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


def print_like(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An inkjet/laser print of ``img`` seen again: narrower gamut and a colour cast, ink
    blur, paper texture (fibre grain and uneven sheen)."""
    h, w = img.shape[:2]
    x = img.astype(np.float32) / 255.0
    contrast = rng.uniform(0.65, 0.85)
    cast = rng.uniform(-0.06, 0.06, 3)
    x = 0.5 + (x - 0.5) * contrast + cast + rng.uniform(0.0, 0.06)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.6, 0.9)  # washed-out saturation
    x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.9, 1.6))
    grain = rng.normal(0, rng.uniform(0.015, 0.03), (h, w, 1)).astype(np.float32)
    sheen = smooth_noise(rng, h, w, max(8, w // 12))[:, :, None] * rng.uniform(0.03, 0.07)
    x = x * (1 + grain + sheen)
    return np.clip(x * 255, 0, 255).astype(np.uint8)


def moire(h: int, w: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A multiplicative moire pattern: two beating line gratings (pixel grid against the
    camera's sensor)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.ones((h, w), np.float32)
    for _ in range(2):
        f = rng.uniform(0.15, 0.45)
        a = rng.uniform(0, np.pi)
        out *= 1 + strength * np.sin(2 * np.pi * f * (xx * np.cos(a) + yy * np.sin(a)))
    return out


def glare_blob(h: int, w: int, rng: np.random.Generator, cx: float, cy: float,
               size: float) -> np.ndarray:
    """An additive specular reflection: a bright saturated core with a soft rim, near
    (cx, cy)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx = cx + rng.uniform(-0.6, 0.6) * size
    gy = cy + rng.uniform(-0.6, 0.6) * size
    rx, ry = size * rng.uniform(0.35, 0.7), size * rng.uniform(0.2, 0.45)
    ang = rng.uniform(0, np.pi)
    u = ((xx - gx) * np.cos(ang) + (yy - gy) * np.sin(ang)) / rx
    v = (-(xx - gx) * np.sin(ang) + (yy - gy) * np.cos(ang)) / ry
    r2 = u * u + v * v
    return np.clip(1.6 - r2, 0, 1) * 255


@dataclass
class Phone:
    """Where a phone shows the picture: its screen rectangle in the camera frame (before the
    hand's homography), bezel width and the display's look."""

    x0: int
    y0: int
    x1: int
    y1: int
    bezel: int
    gamma: float
    moire: float
    glare: bool
    zoom: float


def make_phone(rng: np.random.Generator, shape: tuple[int, ...], box: tuple[float, ...]
               ) -> Phone:
    """A phone held so the face appears about life size: a screen ~3 face widths wide, ~3.3
    tall, centred near the face; its bezel sometimes partly out of the frame."""
    fw, fh = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    sw, sh = fw * rng.uniform(2.6, 3.4), fh * rng.uniform(2.9, 3.6)
    cx += rng.uniform(-0.2, 0.2) * fw
    cy += rng.uniform(-0.15, 0.3) * fh
    x0, y0 = int(cx - sw / 2), int(cy - sh / 2)
    return Phone(x0, y0, int(x0 + sw), int(y0 + sh), int(rng.uniform(0.08, 0.18) * fw),
                 rng.uniform(0.6, 1.5), rng.uniform(0.04, 0.12), bool(rng.random() < 0.6),
                 rng.uniform(0.95, 1.15))


def on_phone(content: np.ndarray, box: tuple[float, ...], phone: Phone, room: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """``content`` (a frame with its face at ``box``) displayed on ``phone`` and held up in
    front of ``room``: the screen shows the region around the face, then gamma, moire,
    glare, the bezel, the hand's homography and the recapture."""
    h, w = room.shape[:2]
    sw, sh = phone.x1 - phone.x0, phone.y1 - phone.y0
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    # the screen shows content around the face, magnified by zoom
    sx = (phone.x0 + phone.x1) / 2 - cx
    sy = (phone.y0 + phone.y1) / 2 - cy
    m = np.array([[phone.zoom, 0, cx * (1 - phone.zoom) + sx - phone.x0],
                  [0, phone.zoom, cy * (1 - phone.zoom) + sy - phone.y0]], np.float64)
    screen = cv2.warpAffine(content, m, (sw, sh), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    x = (screen.astype(np.float32) / 255.0) ** phone.gamma
    x *= moire(sh, sw, rng, phone.moire)[:, :, None]
    x = x * 255 * rng.uniform(0.85, 1.05) + rng.uniform(0, 18)  # backlight, black level
    if phone.glare:
        x += glare_blob(sh, sw, rng, sw * rng.uniform(0.15, 0.85), sh * rng.uniform(0.1, 0.9),
                        min(sw, sh) * rng.uniform(0.25, 0.45))[:, :, None] * rng.uniform(0.7, 1)
    screen = np.clip(x, 0, 255).astype(np.uint8)
    b = phone.bezel
    body = np.full((sh + 2 * b, sw + 2 * b, 3), rng.uniform(10, 40), np.float32)
    body += rng.normal(0, 2, body.shape)
    body[b:b + sh, b:b + sw] = screen
    body_u8 = np.clip(body, 0, 255).astype(np.uint8)
    # place the phone into the room with the hand's homography
    bh, bw = body_u8.shape[:2]
    src = np.array([[0, 0], [bw, 0], [bw, bh], [0, bh]], np.float32)
    dst = src + np.array([phone.x0 - b, phone.y0 - b], np.float32)
    dst += rng.uniform(-0.025, 0.025, (4, 2)).astype(np.float32) * (bw, bh)
    hm = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(body_u8, hm, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones((bh, bw), np.float32), hm, (w, h))[:, :, None]
    out = room.astype(np.float32) * (1 - mask) + warped.astype(np.float32) * mask
    return recapture(np.clip(out, 0, 255).astype(np.uint8), rng, blur=rng.uniform(0.5, 0.9))


def room_of(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A background for the presented device: the frame blurred beyond recognition and
    dimmed (a room behind the phone)."""
    r = cv2.GaussianBlur(frame, (0, 0), 12).astype(np.float32) * rng.uniform(0.5, 0.8)
    return np.clip(r, 0, 255).astype(np.uint8)


def hand_held(picture: np.ndarray, rng: np.random.Generator, n: int) -> Iterator[np.ndarray]:
    """``picture`` held up to fill the camera's view, moved by the hand: a small random
    homography per frame, each frame recaptured."""
    h, w = picture.shape[:2]
    for _ in range(n):
        hm = jitter_homography(rng, w, h, 0.02, 0.02)
        moved = cv2.warpPerspective(picture, hm, (w, h), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT)
        yield recapture(moved, rng, blur=rng.uniform(0.5, 1.0))


def textured_room(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A room with texture behind a held sheet: the frame upside down (no face is detected
    in it), lightly blurred and dimmed."""
    r = cv2.GaussianBlur(frame[::-1], (0, 0), rng.uniform(1.5, 3.0)).astype(np.float32)
    return np.clip(r * rng.uniform(0.5, 0.9), 0, 255).astype(np.uint8)


def on_paper(content: np.ndarray, box: tuple[float, ...], room: np.ndarray,
             rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """``content`` printed (:func:`print_like`) on a sheet 2.2-3.2 face widths wide around
    the face, with a white margin of up to 0.12 face widths, held in front of ``room`` and
    moved by a hand: a drift plus a tremor homography per frame, each frame recaptured."""
    h, w = room.shape[:2]
    fw, fh = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    sw, sh = int(fw * rng.uniform(2.2, 3.2)), int(fh * rng.uniform(2.6, 3.8))
    px0 = int(cx - sw / 2 + rng.uniform(-0.15, 0.15) * fw)
    py0 = int(cy - sh / 2 + rng.uniform(-0.1, 0.25) * fh)
    printed = print_like(content, rng)
    pad = max(sw, sh)
    big = cv2.copyMakeBorder(printed, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    sheet = big[py0 + pad:py0 + pad + sh, px0 + pad:px0 + pad + sw]
    m = int(rng.uniform(0, 0.12) * fw)
    paper = np.full((sh + 2 * m, sw + 2 * m, 3), rng.uniform(190, 240), np.float32)
    paper[m:m + sh, m:m + sw] = sheet
    paper_u8 = np.clip(paper, 0, 255).astype(np.uint8)
    ph, pw = paper_u8.shape[:2]
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    base = src + np.array([px0 - m, py0 - m], np.float32)
    drift = np.zeros(2, np.float32)
    out = []
    for _ in range(n):
        drift += rng.uniform(-0.02, 0.02, 2).astype(np.float32) * (pw, ph)
        dst = base + drift + rng.uniform(-0.015, 0.015, (4, 2)).astype(np.float32) * (pw, ph)
        hm = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
        warped = cv2.warpPerspective(paper_u8, hm, (w, h), flags=cv2.INTER_LINEAR)
        mask = cv2.warpPerspective(np.ones((ph, pw), np.float32), hm, (w, h))[:, :, None]
        f = room.astype(np.float32) * (1 - mask) + warped.astype(np.float32) * mask
        out.append(recapture(np.clip(f, 0, 255).astype(np.uint8), rng,
                             blur=rng.uniform(0.5, 0.9)))
    return out


def live_variant(frames: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """A live capture under another camera's response: exposure, gamma and noise."""
    gain, gamma, noise = rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.25), rng.uniform(1, 4)
    out = []
    for f in frames:
        x = np.clip((f.astype(np.float32) / 255.0 * gain), 0, 1) ** gamma * 255
        x += rng.normal(0, noise, x.shape)
        out.append(np.clip(x, 0, 255).astype(np.uint8))
    return out


# --------------------------------------------------------------------------------------------
# The kit
# --------------------------------------------------------------------------------------------


def face_boxes(frames: list[np.ndarray]) -> list[tuple[float, float, float, float] | None]:
    """The largest face box of each frame, by the engine's detector on the clips' settings."""
    from faceunlock.engine.pipeline import Pipeline, PipelineSettings

    pipe = Pipeline(PipelineSettings(min_face=80, downscale=50 / 80, max_face=160))
    out: list[tuple[float, float, float, float] | None] = []
    for f in frames:
        dets = pipe.detect(f)
        out.append(max(dets, key=lambda d: d.width * d.height).box if dets else None)
    return out


def write(d: Path, frames: list[np.ndarray]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(d / f"{i:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))


def build(out: Path, part: str = "report", seed: int = 0, clips: Path | None = None,
          per_clip: int = 6, kinds: tuple[str, ...] = KINDS, live_variants: int = 1,
          frames_per: int = FRAMES, scale: float = 1.0) -> dict[str, int]:
    """Write the kit's ``part`` under ``out``; returns the number of presentations per kind
    (``live`` included). ``scale``: the clips' frames are first enlarged (bicubic) by this
    factor, as a camera with more pixels on the face would see the scene, and everything
    else (camera responses, noise, blur, print, phone) is then made at that size; the face
    boxes are the detector's on the clips' own frames, scaled."""
    clips = clips or shared_dir() / "datasets" / "clips"
    counts: dict[str, int] = {}
    for ci, name in enumerate(PARTS[part]):
        frames = clip_frames(clips / name)
        boxes = face_boxes(frames)
        if scale != 1.0:
            frames = [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
                      for f in frames]
            boxes = [None if b is None else (b[0] * scale, b[1] * scale, b[2] * scale,
                                             b[3] * scale) for b in boxes]
        usable = [i for i, b in enumerate(boxes) if b is not None]
        stem = name.removeprefix("head-pose-face-detection-").removesuffix(".gif")
        rng = np.random.default_rng([seed, ci, len(frames)])
        n_live = 0
        for s in range(0, len(frames) - LIVE_WINDOW + 1, LIVE_STEP):
            window = frames[s:s + LIVE_WINDOW]
            write(out / "live" / f"{stem}-{s:03d}", window)
            for v in range(live_variants):
                write(out / "live" / f"{stem}-{s:03d}-cam{v}", live_variant(window, rng))
            n_live += 1 + live_variants
        counts["live"] = counts.get("live", 0) + n_live
        picks = rng.choice(usable, size=per_clip, replace=per_clip > len(usable))
        for j, fi in enumerate(int(p) for p in picks):
            f, box = frames[fi], boxes[fi]
            assert box is not None
            pid = f"{stem}-{j:03d}-f{fi:03d}"
            for kind in kinds:
                r = np.random.default_rng([seed, ci, j, (KINDS + STRESS_KINDS).index(kind)])
                if kind == "copies":
                    seq = [f] * frames_per
                elif kind == "moving-photo":
                    seq = list(hand_held(f, r, frames_per))
                elif kind == "print":
                    seq = list(hand_held(print_like(f, r), r, frames_per))
                elif kind == "print-room":
                    seq = on_paper(f, box, textured_room(f, r), r, frames_per)
                elif kind == "print-still":
                    still = print_like(f, r)
                    seq = [recapture(still, r, blur=0.7) for _ in range(frames_per)]
                elif kind == "screen":
                    phone, room = make_phone(r, f.shape, box), room_of(f, r)
                    seq = [on_phone(f, box, phone, room, r) for _ in range(frames_per)]
                else:  # replay: the clip from this frame on, on the phone
                    phone, room = make_phone(r, f.shape, box), room_of(f, r)
                    seq = []
                    for k in range(frames_per):
                        g = min(fi + k, len(frames) - 1)
                        bk = boxes[g] if boxes[g] is not None else box
                        assert bk is not None
                        seq.append(on_phone(frames[g], bk, phone, room, r))
                write(out / "attack" / kind / pid, seq)
                counts[kind] = counts.get(kind, 0) + 1
    return counts


def kit_config() -> Config:
    """The unlock config for the clips' small faces (57-90 px): detect from 50 px to 160."""
    from faceunlock.config import config_set

    cfg = Config()
    for k, v in (("detector.min_face", "50"), ("detector.max_face", "160")):
        cfg = config_set(cfg, k, v)
    return cfg


def fit(seed: int = 0, target_bpcer: float = 0.05, out_json: Path | None = None) -> dict:
    """Build the fit part, score it with the engine's stage at the passive level and choose
    the operating point: the lowest threshold at which every fit attack kind's APCER is
    minimal, while the live BPCER stays within ``target_bpcer``. Writes it into the V2
    sidecar's ``operating_point``."""
    from faceunlock.engine.modelfile import load_sidecar, write_sidecar
    from faceunlock.evaluation import liveness as ev
    from faceunlock.paths import models_dir

    with tempfile.TemporaryDirectory() as td:
        counts = build(Path(td), "fit", seed, per_clip=FIT_PER_CLIP,
                       live_variants=FIT_LIVE_VARIANTS, frames_per=FIT_FRAMES)
        scored = ev.score_sets(Path(td) / "live", Path(td) / "attack", kit_config(), "passive")
    live = np.array([p.score for p in scored.live if p.found])
    op = ev.choose_threshold(scored, target_bpcer)
    path = models_dir() / "minifasnet-v2.onnx"
    meta = load_sidecar(path)
    meta["operating_point"] = {
        "threshold": op["threshold"],
        "score": "mean over the judged frames of the mean real-class probability of "
                 "minifasnet-v2 and minifasnet-v1se",
        "fitted_on": f"tools/attack_kit.py fit --seed {seed}: the kit's fit part (the man's "
                     "clip only; never the woman's or the two-person clip, which are "
                     "reported)",
        "target_bpcer": target_bpcer,
        "fit_bpcer": round(op["bpcer"], 4),
        "fit_apcer": {k: round(v, 4) for k, v in op["per_kind"].items()},
        "fit_counts": counts,
        "fit_interval": [round(op["lo"], 4), round(op["hi"], 4)],
        "fit_lowest_live_scores": [round(float(x), 4) for x in np.sort(live)[:5]],
        "rule": "midpoint of [lowest threshold with the fit set's minimal worst-kind APCER, "
                "highest threshold with fit BPCER <= target]",
    }
    write_sidecar(path, {k: v for k, v in meta.items() if k not in ("file", "sha256")})
    if out_json is not None:
        out_json.write_text(json.dumps(meta["operating_point"], indent=2) + "\n")
    return dict(meta["operating_point"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the kit")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--part", choices=list(PARTS), default="report")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--per-clip", type=int, default=6, help="attack presentations per clip "
                   "and kind")
    b.add_argument("--clips", type=Path, default=None)
    b.add_argument("--live-variants", type=int, default=1,
                   help="camera-response variants of each live window")
    b.add_argument("--frames", type=int, default=FRAMES, help="frames per presentation")
    b.add_argument("--scale", type=float, default=1.0,
                   help="enlarge the clips' frames by this factor first (a camera with more "
                   "pixels on the face; the clips' faces are 57-90 px wide)")
    b.add_argument("--kinds", default=",".join(KINDS),
                   help=f"attack kinds, comma-separated, of {', '.join(KINDS + STRESS_KINDS)}")
    f = sub.add_parser("fit", help="fit the operating point on the fit part")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--target-bpcer", type=float, default=0.05)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        kinds = tuple(k for k in args.kinds.split(",") if k)
        bad = [k for k in kinds if k not in KINDS + STRESS_KINDS]
        if not 0.25 <= args.scale <= 8.0:
            ap.error(f"--scale must be within 0.25-8, got {args.scale}")
        if bad:
            ap.error(f"unknown attack kind(s) {', '.join(bad)}; known: "
                     f"{', '.join(KINDS + STRESS_KINDS)}")
        print(json.dumps(build(args.out, args.part, args.seed, args.clips, args.per_clip,
                               kinds=kinds, live_variants=args.live_variants,
                               frames_per=args.frames, scale=args.scale)))
    else:
        print(json.dumps(fit(args.seed, args.target_bpcer), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
