"""Does passive liveness refuse live users in other light, at other distances, on other
webcams? And does an attacker gain by presenting in such light?

    python benchmarks/liveness_conditions.py [--quick] [--seed 0] [--per-clip 10]
        [--out benchmarks/results]

Live presentations are the attack kit's live windows (``tools/attack_kit.py``: 4 consecutive
frames, every 2 frames) of the report clips (the woman's clip and the two-person clip) and,
labelled ``fit``, of the man's clip (the clip the operating point was fitted on). Each window
is judged as captured and under each condition below, built from its frames:

    dim          a dim room: brightness x0.35, the camera's gamma 0.8 lifting the shadows,
                 sensor noise sigma 6 (a webcam at high gain), new noise every frame
    side-right   one-sided light (a lamp on the image's right): a smooth multiplicative ramp
                 across the face, 0.2 at 1.5 face widths left of the face's centre to 1.3
                 at 1.5 to its right (constant beyond)
    side-left    its mirror (the lamp on the image's left)
    far          far from the camera: the frame scaled so the face is 50-60 px tall (the
                 first frame's detector box), pasted at a random place into a 640x480
                 frame whose rest repeats the border pixels (no step edge around it)
    poor-webcam  sensor noise sigma 3, blur sigma 1.2, chroma subsampled 2x2 (4:2:0), JPEG
                 quality 35
    warm, cool   white balance not corrected: tungsten (R x1.2, G x1.0, B x0.65) and a
                 cool daylight cast (R x0.8, G x0.95, B x1.2), noise sigma 2
    backlit      a bright window behind: the subject (a soft ellipse around head and
                 shoulders from the face box) underexposed x0.45, the rest pushed towards
                 white (255 - (255 - v) x 0.2, partly clipped), noise sigma 3
    dim-quiet    ``dim`` with noise sigma 3 (a better sensor, or less gain): which of the
                 two, darkness or noise, the model minds

Every transform is seeded (``numpy.random.default_rng([seed, condition, presentation])``):
the same arguments give the same pixels. Attacks: the kit's report part (``build(part=
"report", per_clip=--per-clip, frames_per=4)``, all five kinds), judged as built and under
``dim``, ``side-left`` and ``side-right`` (an attacker can present in any light).

Each presentation is judged exactly as ``faceunlock eval liveness`` judges one
(:func:`faceunlock.evaluation.liveness.judge_presentation`: the tracked stream, the first
``auth.k`` frames with a face, the engine's :meth:`~faceunlock.engine.liveness.Liveness.judge`
at ``passive``), with the clips' detector sizes (50-160 px, ``attack_kit.kit_config``), on
the face the condition was built around (the window's first detector box, moved with the
frame by ``far``; :func:`condition_box`): in the two-person clip a dim frame can make the
other person the largest face, and auth judges the matched face, not the largest.
Reported per condition: BPCER (live refused as an attack, among the presentations with a
face), no-face count (a detection miss, not a liveness refusal), which reasons refused (the
model's ``score`` and each deny cue), the live score's 5th percentile and median; per attack
kind and condition, APCER. Writes ``liveness_conditions.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIPS = Path(os.environ.get("FACEUNLOCK_SHARED", REPO.parent / "shared")) / "datasets" / "clips"

Box = tuple[float, float, float, float]
Frames = list[np.ndarray]
#: a condition: (frames RGB uint8, the first frame's face box, rng) -> the frames under it
Transform = Callable[[Frames, Box, np.random.Generator], Frames]


def attack_kit() -> ModuleType:
    """tools/attack_kit.py as a module."""
    if "attack_kit" not in sys.modules:
        spec = importlib.util.spec_from_file_location("attack_kit",
                                                      REPO / "tools" / "attack_kit.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules["attack_kit"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["attack_kit"]


# --------------------------------------------------------------------------------------------
# The conditions
# --------------------------------------------------------------------------------------------


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _noise(x: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return x + rng.normal(0.0, sigma, x.shape).astype(np.float32)


def dim(frames: Frames, box: Box, rng: np.random.Generator, sigma: float = 6.0) -> Frames:
    """A dim room seen by a webcam at high gain: x0.35, gamma 0.8, noise ``sigma``."""
    out = []
    for f in frames:
        x = ((f.astype(np.float32) / 255.0) * 0.35) ** 0.8 * 255.0
        out.append(_u8(_noise(x, rng, sigma)))
    return out


def _dim_quiet(frames: Frames, box: Box, rng: np.random.Generator) -> Frames:
    return dim(frames, box, rng, 3.0)


def _ramp(width: int, box: Box, lo: float, hi: float) -> np.ndarray:
    """(width,) gain: ``lo`` at 1.5 face widths left of the face's centre rising linearly to
    ``hi`` at 1.5 face widths right of it, constant beyond."""
    cx, fw = (box[0] + box[2]) / 2.0, max(box[2] - box[0], 1.0)
    t = np.clip((np.arange(width, dtype=np.float32) - (cx - 1.5 * fw)) / (3.0 * fw), 0.0, 1.0)
    return (lo + (hi - lo) * t).astype(np.float32)


def side_light(frames: Frames, box: Box, rng: np.random.Generator, mirror: bool = False
               ) -> Frames:
    """A lamp on the image's right: gain 0.2 at 1.5 face widths left of the face's centre
    rising to 1.3 at 1.5 face widths right of it (``mirror``: the lamp on the left), noise
    sigma 2."""
    lo, hi = (1.3, 0.2) if mirror else (0.2, 1.3)
    gain = _ramp(frames[0].shape[1], box, lo, hi)
    return [_u8(_noise(f.astype(np.float32) * gain[None, :, None], rng, 2.0)) for f in frames]


def far_placement(shape: Sequence[int], box: Box, rng: np.random.Generator
                  ) -> tuple[float, int, int]:
    """(scale, left, top) of :func:`far`: the face 50-60 px tall, at a random place."""
    target = rng.uniform(50.0, 60.0)
    s = min(1.0, target / max(box[3] - box[1], 1.0))
    h, w = int(shape[0]), int(shape[1])
    sw, sh = max(1, round(w * s)), max(1, round(h * s))
    if sw > 640 or sh > 480:
        raise ValueError(f"far: a {w}x{h} frame scaled by {s:.2f} does not fit 640x480")
    return s, int(rng.integers(0, 640 - sw + 1)), int(rng.integers(0, 480 - sh + 1))


def far(frames: Frames, box: Box, rng: np.random.Generator) -> Frames:
    """The frames scaled so the face is 50-60 px tall, pasted at one random place (the same
    for the window) into 640x480, the rest repeating the scaled frame's border pixels (no
    step edge, no second picture around it), noise sigma 1.5. (A sharp frame pasted into a
    blurred copy of itself is a picture in a picture: MiniFASNet V1SE, whose 4.0x crop sees
    the paste's edge, scored such live faces 0.00-0.09, an artefact of the construction.)"""
    s, left, top = far_placement(frames[0].shape, box, rng)
    h, w = frames[0].shape[:2]
    sw, sh = max(1, round(w * s)), max(1, round(h * s))
    out = []
    for f in frames:
        small = cv2.resize(f, (sw, sh), interpolation=cv2.INTER_AREA)
        big = cv2.copyMakeBorder(small, top, 480 - sh - top, left, 640 - sw - left,
                                 cv2.BORDER_REPLICATE)
        out.append(_u8(_noise(big.astype(np.float32), rng, 1.5)))
    return out


def poor_webcam(frames: Frames, box: Box, rng: np.random.Generator) -> Frames:
    """A cheap webcam: noise sigma 3, blur sigma 1.2, 4:2:0 chroma, JPEG quality 35."""
    out = []
    for f in frames:
        x = cv2.GaussianBlur(_u8(_noise(f.astype(np.float32), rng, 3.0)), (0, 0), 1.2)
        ycc = cv2.cvtColor(x, cv2.COLOR_RGB2YCrCb)
        h, w = ycc.shape[:2]
        for c in (1, 2):
            half = cv2.resize(ycc[:, :, c], ((w + 1) // 2, (h + 1) // 2),
                              interpolation=cv2.INTER_AREA)
            ycc[:, :, c] = cv2.resize(half, (w, h), interpolation=cv2.INTER_LINEAR)
        x = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)
        ok, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, 35])
        if not ok:
            raise RuntimeError("poor-webcam: JPEG encoding failed")
        out.append(cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    return out


WARM = (1.2, 1.0, 0.65)
COOL = (0.8, 0.95, 1.2)


def colour_cast(frames: Frames, box: Box, rng: np.random.Generator,
                gains: tuple[float, float, float] = WARM) -> Frames:
    """White balance not corrected: each RGB channel times ``gains``, noise sigma 2."""
    g = np.asarray(gains, np.float32)[None, None, :]
    return [_u8(_noise(f.astype(np.float32) * g, rng, 2.0)) for f in frames]


def subject_mask(shape: Sequence[int], box: Box) -> np.ndarray:
    """(H, W) float32 in [0, 1]: a soft ellipse around the head (1.7 face widths wide, 2.2
    face heights tall) joined to one around the shoulders below it."""
    h, w = int(shape[0]), int(shape[1])
    fw, fh = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    m = np.zeros((h, w), np.float32)
    cv2.ellipse(m, (round(cx), round(cy - 0.1 * fh)), (round(0.85 * fw), round(1.1 * fh)),
                0, 0, 360, 1.0, -1)
    cv2.ellipse(m, (round(cx), round(cy + 2.2 * fh)), (round(1.9 * fw), round(1.3 * fh)),
                0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(m, (0, 0), max(0.2 * fw, 1.0))


def backlit(frames: Frames, box: Box, rng: np.random.Generator) -> Frames:
    """A bright window behind the user: the subject x0.45, the rest 255 - (255 - v) x 0.2,
    noise sigma 3 (the mask from the first frame's box; the head moves little in 4 frames)."""
    m = subject_mask(frames[0].shape, box)[:, :, None]
    out = []
    for f in frames:
        x = f.astype(np.float32)
        lit = 255.0 - (255.0 - x) * 0.2
        out.append(_u8(_noise(m * x * 0.45 + (1 - m) * lit, rng, 3.0)))
    return out


def _mirrored(frames: Frames, box: Box, rng: np.random.Generator) -> Frames:
    return side_light(frames, box, rng, mirror=True)


def _cool(frames: Frames, box: Box, rng: np.random.Generator) -> Frames:
    return colour_cast(frames, box, rng, COOL)


#: the conditions, in report order (``captured`` is the identity)
CONDITIONS: dict[str, Transform] = {
    "captured": lambda frames, box, rng: list(frames),
    "dim": dim,
    "side-left": _mirrored,
    "side-right": side_light,
    "far": far,
    "poor-webcam": poor_webcam,
    "warm": colour_cast,
    "cool": _cool,
    "backlit": backlit,
    "dim-quiet": _dim_quiet,
}
#: the conditions applied to the kit's attacks
ATTACK_CONDITIONS = ("captured", "dim", "side-left", "side-right")


def _rng(condition: str, seed: int, index: int) -> np.random.Generator:
    if condition not in CONDITIONS:
        raise KeyError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
    return np.random.default_rng([seed, list(CONDITIONS).index(condition), index])


def apply(condition: str, frames: Frames, box: Box, seed: int, index: int) -> Frames:
    """``frames`` under ``condition``, deterministic in (``seed``, condition, ``index``)."""
    rng = _rng(condition, seed, index)
    if not frames:
        raise ValueError("a presentation needs at least one frame")
    return CONDITIONS[condition](frames, box, rng)


def condition_box(condition: str, frames: Frames, box: Box, seed: int, index: int) -> Box:
    """Where the face at ``box`` of ``frames`` is in :func:`apply`'s output (moved only by
    ``far``): the person a presentation is judged on, as auth judges the matched face."""
    if condition != "far":
        return box
    s, left, top = far_placement(frames[0].shape, box, _rng(condition, seed, index))
    return (box[0] * s + left, box[1] * s + top, box[2] * s + left, box[3] * s + top)


# --------------------------------------------------------------------------------------------
# Presentations and judging
# --------------------------------------------------------------------------------------------


def live_windows(frames: Frames) -> list[tuple[int, Frames]]:
    """The kit's live windows of a clip: (start, LIVE_WINDOW consecutive frames) every
    LIVE_STEP frames."""
    kit = attack_kit()
    return [(s, frames[s:s + kit.LIVE_WINDOW])
            for s in range(0, len(frames) - kit.LIVE_WINDOW + 1, kit.LIVE_STEP)]


def first_box(frames: Frames, boxes: Sequence[Box | None] | None = None) -> Box | None:
    """The first face box of the window (from ``boxes``, the kit's detector boxes of the
    frames, else detected here)."""
    kit = attack_kit()
    found = boxes if boxes is not None else kit.face_boxes(frames[:2])
    return next((b for b in found if b is not None), None)


class Judge:
    """The evaluation's path: the clips' config, its pipeline, the passive stage."""

    def __init__(self) -> None:
        from faceunlock.app import service

        self.cfg = attack_kit().kit_config()
        self.pipe = service.pipeline_for(self.cfg)
        stage = service.liveness_for(self.cfg, self.pipe, "passive")
        assert stage is not None
        self.stage = stage

    def __call__(self, name: str, kind: str, frames: Frames, first: Box | None = None
                 ) -> dict[str, Any]:
        """Judge ``frames`` as one presentation, following the face at ``first`` (see
        :func:`faceunlock.evaluation.liveness.track_faces`)."""
        from faceunlock.evaluation import liveness as EL

        pres = EL.Presentation(name, kind, ())
        s = EL.judge_presentation(self.pipe, self.stage, pres, self.cfg.auth.k, frames, first)
        v = s.verdict
        return {"name": name, "found": s.found, "accepted": s.accepted(),
                "score": None if v is None or not np.isfinite(v.score) else round(v.score, 4),
                "reasons": [] if v is None else list(v.reasons)}


def summarise(rows: list[dict[str, Any]], live: bool) -> dict[str, Any]:
    """BPCER (live) or APCER (attack) of ``rows``, with the refusal reasons and scores."""
    found = [r for r in rows if r["found"]]
    reasons: dict[str, int] = {}
    for r in found:
        for x in r["reasons"]:
            reasons[x] = reasons.get(x, 0) + 1
    scores = np.array([r["score"] for r in found if r["score"] is not None], np.float64)
    out: dict[str, Any] = {"n": len(rows), "no_face": len(rows) - len(found)}
    if live:
        refused = [r for r in found if not r["accepted"]]
        out["bpcer"] = round(len(refused) / len(found), 4) if found else None
        out["refused"] = len(refused)
        out["refused_names"] = [r["name"] for r in refused]
        # a presentation refused only by the score, or only by one cue
        out["only_score"] = sum(r["reasons"] == ["score"] for r in refused)
    else:
        acc = sum(r["accepted"] for r in rows)
        out["apcer"] = round(acc / len(rows), 4) if rows else None
        out["accepted"] = acc
    out["reasons"] = dict(sorted(reasons.items()))
    if scores.size:
        out["score_p5"] = round(float(np.percentile(scores, 5)), 4)
        out["score_median"] = round(float(np.median(scores)), 4)
    return out


def live_rows(judge: Judge, clips: Path, names: Sequence[str], conditions: Sequence[str],
              seed: int, step: int = 1) -> dict[str, list[dict[str, Any]]]:
    """Every live window of the clips ``names`` (every ``step``-th) under each condition."""
    kit = attack_kit()
    rows: dict[str, list[dict[str, Any]]] = {c: [] for c in conditions}
    index = 0
    for name in names:
        frames = kit.clip_frames(clips / name)
        boxes = kit.face_boxes(frames)
        stem = name.removeprefix("head-pose-face-detection-").removesuffix(".gif")
        for s, window in live_windows(frames)[::step]:
            box = first_box(window, boxes[s:s + len(window)])
            index += 1
            if box is None:  # no face in the window as captured: nothing to transform
                continue
            for c in conditions:
                rows[c].append(judge(f"{stem}-{s:03d}", "live",
                                     apply(c, window, box, seed, index),
                                     condition_box(c, window, box, seed, index)))
    return rows


def attack_rows(judge: Judge, clips: Path, names: Sequence[str], conditions: Sequence[str],
                seed: int, per_clip: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The kit's attacks of the report clips (``per_clip`` per kind and clip, 4 frames each),
    under each condition: {condition: {kind: rows}}."""
    from faceunlock.engine.imageio import read_image

    kit = attack_kit()
    out: dict[str, dict[str, list[dict[str, Any]]]] = {c: {} for c in conditions}
    with tempfile.TemporaryDirectory() as td:
        root = Path(td)
        kit.build(root, "report", seed, clips=clips, per_clip=per_clip, live_variants=0,
                  frames_per=4)
        index = 10_000
        for kind_dir in sorted((root / "attack").iterdir()):
            for pdir in sorted(kind_dir.iterdir()):
                if not any(pdir.name.startswith(
                        n.removeprefix("head-pose-face-detection-").removesuffix(".gif") + "-")
                        for n in names):
                    continue
                frames = [read_image(p) for p in sorted(pdir.glob("*.png"))]
                index += 1
                box = first_box(frames)
                if box is None:  # no face: the conditions cannot be centred on one
                    h, w = frames[0].shape[:2]
                    box = (w / 3, h / 3, 2 * w / 3, 2 * h / 3)
                for c in conditions:
                    out[c].setdefault(kind_dir.name, []).append(
                        judge(pdir.name, kind_dir.name, apply(c, frames, box, seed, index),
                              condition_box(c, frames, box, seed, index)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-clip", type=int, default=10,
                    help="attack presentations per kind and report clip")
    ap.add_argument("--quick", action="store_true",
                    help="every 3rd live window, no fit clip, 3 attacks per kind and clip")
    ap.add_argument("--clips", type=Path, default=CLIPS)
    args = ap.parse_args(argv)
    if not args.clips.is_dir():
        ap.error(f"{args.clips} is not a folder (the shared webcam clips)")
    kit = attack_kit()
    t0 = time.perf_counter()
    judge = Judge()
    step = 3 if args.quick else 1
    per_clip = 3 if args.quick else args.per_clip
    result: dict[str, Any] = {
        "seed": args.seed, "quick": args.quick, "per_clip": per_clip,
        "operating_point": judge.stage.threshold, "k": judge.cfg.auth.k,
        "live": {}, "attack": {},
    }
    parts = {"report": (kit.FEMALE, kit.BOTH)} if args.quick else \
        {"report": (kit.FEMALE, kit.BOTH), "fit": (kit.MALE,)}
    for part, names in parts.items():
        rows = live_rows(judge, args.clips, names, list(CONDITIONS), args.seed, step)
        result["live"][part] = {c: summarise(r, True) for c, r in rows.items()}
        print(f"live {part} done, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    att = attack_rows(judge, args.clips, (kit.FEMALE, kit.BOTH), ATTACK_CONDITIONS, args.seed,
                      per_clip)
    result["attack"] = {c: {k: summarise(r, False) for k, r in kinds.items()}
                        for c, kinds in att.items()}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(format_table(result))
    args.out.mkdir(parents=True, exist_ok=True)
    name = "liveness_conditions-quick.json" if args.quick else "liveness_conditions.json"
    (args.out / name).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def format_table(res: dict[str, Any]) -> str:
    def pct(x: float | None) -> str:
        return "   -  " if x is None else f"{100 * x:5.1f} %"

    lines = [f"passive, operating point {res['operating_point']:.3f}, k={res['k']}"]
    for part, conds in res["live"].items():
        lines.append(f"live, {part} clips: condition   BPCER   refused/n  no-face  "
                     "score p5 / median  reasons")
        for c, r in conds.items():
            reasons = ", ".join(f"{k} {v}" for k, v in r["reasons"].items()) or "-"
            judged = r["n"] - r["no_face"]
            lines.append(f"  {c:<12} {pct(r['bpcer'])}  {r['refused']:>3}/{judged:<4}"
                         f" {r['no_face']:>5}    {r.get('score_p5', float('nan')):.3f} / "
                         f"{r.get('score_median', float('nan')):.3f}   {reasons}")
    kinds = sorted({k for c in res["attack"].values() for k in c})
    lines.append("attacks (report clips), APCER: " + "  ".join(f"{k:>12}" for k in kinds))
    for c, per in res["attack"].items():
        lines.append(f"  {c:<28}" + "  ".join(
            f"{pct(per[k]['apcer']):>7} of {per[k]['n']:<3}" if k in per else f"{'-':>12}"
            for k in kinds))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
