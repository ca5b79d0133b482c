"""Would the face mesh's geometry help passive liveness? Measured on the attack kit.

    python tools/attack_kit.py build --out KIT/fit --part fit --per-clip 40 \\
        --live-variants 3 --frames 4
    python tools/attack_kit.py build --out KIT/report --part report --per-clip 40 \\
        --live-variants 3 --frames 4
    python benchmarks/mesh_cues.py --kit KIT [--out benchmarks/results]

Each presentation runs as ``faceunlock eval liveness`` runs it (the default config, tracked
stream, the first ``auth.k`` frames with a face, the current passive stage's verdict). On the
same judged frames the mesh runs (5-point landmarks of the judged box, then
:meth:`~faceunlock.engine.mesh.FaceMesh.mesh`), and :func:`~faceunlock.engine.mesh.parallax`
compares the first and last: a flat picture moves as one homography, so a homography fitted
to the face oval and eye corners predicts the nose; a head that turns does not.

The candidate deny cue ``mesh-planar``: the oval moved at least ``--min-motion`` eye distances
and the nose's residual is at most ``--max-residual`` and at most ``--max-relative`` of that
motion. Its constants are the smallest of a grid that refuses the fit part's passing print
(fit part only: the man's clip). Reported per part and kind: presentations, accepted by the
current stage, accepted with the cue added; the features' quantiles (motion, residual, the
mesh's own depth range, presence); and milliseconds per judged frame (landmarks + mesh) and
per parallax call. Writes ``mesh_cues.json`` into ``--out``.

``--clips DIR`` instead measures live motion of every size: the mesh on every frame of the
three webcam clips (the engine's tracked face), :func:`~faceunlock.engine.mesh.parallax` of
every pair of frames 1-8 apart, binned by the mesh's yaw change; and each clip's eye aspect
ratio (does it blink?). Writes ``mesh_cues_clips.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

MIN_MOTION = 0.1
MAX_RESIDUAL = 0.02
MAX_RELATIVE = 0.05


def features(root: Path) -> list[dict[str, Any]]:
    from faceunlock.app import service
    from faceunlock.config import Config
    from faceunlock.engine import mesh as M
    from faceunlock.engine.landmarks import LandmarkPredictor
    from faceunlock.engine.liveness import Liveness, LivenessParams
    from faceunlock.evaluation import liveness as EL

    cfg = Config()
    pipe = service.pipeline_for(cfg)
    stage = Liveness(None, LivenessParams(level="passive"))
    fm = M.FaceMesh(threads=1).load()
    lmp = LandmarkPredictor()
    rows = []
    for attack in (False, True):
        for pres in EL.presentations(root / ("attack" if attack else "live"), attack):
            faces = EL.track_faces(pipe, pres, cfg.auth.k)
            rec: dict[str, Any] = {"kind": pres.kind, "name": pres.name,
                                   "found": len(faces) >= cfg.auth.k}
            if rec["found"]:
                v = stage.judge(faces)
                t0 = time.perf_counter()
                meshes = [fm.mesh(im, landmarks5=lmp.predict(im, b))
                          for im, b in faces[-stage.params.max_judged:]]
                t1 = time.perf_counter()
                px = M.parallax(meshes[0].points, meshes[-1].points)
                t2 = time.perf_counter()
                rec.update(reasons=v.reasons, motion=px.motion, residual=px.residual,
                           depth=float(np.mean([M.depth_range(m.points) for m in meshes])),
                           presence=min(m.presence for m in meshes),
                           mesh_ms=(t1 - t0) * 1e3 / len(meshes), parallax_ms=(t2 - t1) * 1e3)
            rows.append(rec)
    return rows


def fires(r: dict[str, Any], m: float, res: float, rel: float) -> bool:
    return bool(r["motion"] >= m and r["residual"] <= min(res, rel * r["motion"]))


def summary(rows: list[dict[str, Any]], m: float, res: float, rel: float) -> dict[str, Any]:
    def q(v: list[float]) -> list[float]:
        return [round(float(x), 4) for x in np.percentile(v, [5, 25, 50, 75, 95])] if v else []

    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["found"]:
            by[r["kind"]].append(r)
    out: dict[str, Any] = {}
    for kind, rs in sorted(by.items()):
        now = [not r["reasons"] for r in rs]
        cue = [a and not fires(r, m, res, rel) for a, r in zip(now, rs, strict=True)]
        out[kind] = {
            "n": len(rs), "accepted_now": int(sum(now)), "accepted_with_cue": int(sum(cue)),
            "cue_fired": int(sum(fires(r, m, res, rel) for r in rs)),
            "motion_q05_25_50_75_95": q([r["motion"] for r in rs]),
            "residual_q": q([r["residual"] for r in rs]),
            "depth_range_q": q([r["depth"] for r in rs]),
            "presence_min_q": q([r["presence"] for r in rs]),
            "mesh_ms_median": round(float(np.median([r["mesh_ms"] for r in rs])), 2),
            "parallax_ms_median": round(float(np.median([r["parallax_ms"] for r in rs])), 2),
        }
    return out


CLIPS = ("head-pose-face-detection-female.gif", "head-pose-face-detection-male.gif",
         "head-pose-face-detection-female-and-male.gif")


def clip_pairs(clips: Path) -> dict[str, Any]:
    import cv2

    from faceunlock.engine import mesh as M
    from faceunlock.engine.pipeline import Pipeline, PipelineSettings
    from faceunlock.evaluation.liveness import follow_face

    pipe = Pipeline(PipelineSettings(min_face=80, downscale=50 / 80, max_face=160))
    fm = M.FaceMesh(threads=1)
    pairs: list[tuple[float, float, float]] = []
    out: dict[str, Any] = {"clips": {}}
    for name in CLIPS:
        cap = cv2.VideoCapture(str(clips / name))
        pts: list[np.ndarray | None] = []
        last = None
        pipe.reset_tracking()
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            im = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            obs = pipe.observe(im, select="all", track=True)
            if not obs:
                pts.append(None)
                last = None
                continue
            o = follow_face(obs, last)
            last = o.box
            r = fm.mesh(im, landmarks5=o.landmarks)
            pts.append(r.points if r.presence > 0.5 else None)
        cap.release()
        for d in range(1, 9):
            for a, b in zip(pts, pts[d:], strict=False):
                if a is not None and b is not None:
                    px = M.parallax(a, b)
                    pairs.append((px.motion, px.residual, px.yaw_change))
        ears = [M.eye_aspect_ratio(p) for p in pts if p is not None]
        out["clips"][name] = {
            "frames": len(pts), "meshes": len(ears),
            "ear_min_over_median": round(min(ears) / float(np.median(ears)), 3),
            "blinked": M.blinked([p for p in pts if p is not None]),
        }
    arr = np.array(pairs)
    bins = []
    for lo, hi in ((0, 3), (3, 6), (6, 10), (10, 15), (15, 90)):
        sel = arr[(np.abs(arr[:, 2]) >= lo) & (np.abs(arr[:, 2]) < hi)]
        if len(sel):
            bins.append({"abs_yaw_change_deg": [lo, hi], "pairs": len(sel),
                         "residual_q05_50_95": [round(float(x), 4) for x in
                                                np.percentile(sel[:, 1], [5, 50, 95])],
                         "motion_median": round(float(np.median(sel[:, 0])), 4)})
    out["parallax_by_yaw_change"] = bins
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--kit", type=Path, help="folder with fit/ and report/")
    ap.add_argument("--clips", type=Path, help="the shared clips folder (live pairs instead)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--min-motion", type=float, default=MIN_MOTION)
    ap.add_argument("--max-residual", type=float, default=MAX_RESIDUAL)
    ap.add_argument("--max-relative", type=float, default=MAX_RELATIVE)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.clips is not None:
        res_c = clip_pairs(args.clips)
        (args.out / "mesh_cues_clips.json").write_text(json.dumps(res_c, indent=2) + "\n")
        print(json.dumps(res_c, indent=2))
        return 0
    if args.kit is None:
        ap.error("give --kit or --clips")
    res: dict[str, Any] = {"rule": {"min_motion": args.min_motion,
                                    "max_residual": args.max_residual,
                                    "max_relative": args.max_relative}}
    for part in ("fit", "report"):
        if (args.kit / part).is_dir():
            res[part] = summary(features(args.kit / part), args.min_motion,
                                args.max_residual, args.max_relative)
    (args.out / "mesh_cues.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
