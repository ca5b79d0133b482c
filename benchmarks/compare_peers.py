"""FaceUnlock's engine next to dlib's pipelines (as used by face_recognition and Howdy), on the
same frames, in one run.

    python benchmarks/compare_peers.py [--frames N] [--lfw-pairs N] [--out benchmarks/results]

Pipelines (each in its own subprocess, so peak RSS is its own):
  * dlib-hog: dlib-bin's HOG detector + 5-point shape predictor + ResNet descriptor;
  * dlib-cnn: dlib-bin's CNN (MMOD) detector + the same landmarks and descriptor;
  * faceunlock: this project's engine with the webcam settings (min_face 80, max_face 400),
    every frame on its own;
  * faceunlock-coarse: single frames with coarse-first detection, as the unlock path's first
    frame is searched (faces of 160 px and more on the halved frame first; smaller faces,
    like the clip's, then get the full scan);
  * faceunlock-stream: the same, as authentication runs it on a camera stream: after the
    first frame the detector searches around the last face (full rescan every 15 frames).
Frames: 640x480, one face each: the bench frame (an LFW DevTest face, scaled 1.6x) and frames
of the male webcam clip letterboxed to 640x480. Reported per pipeline: per-frame median and
p90 ms, the ratio to FaceUnlock, peak RSS, and LFW pair accuracy on a balanced subset of
DevTest pairs (the centre face, the central box when none) at each pipeline's own default
threshold: 0.6 as published for dlib, the sidecar's (fitted on DevTrain) for FaceUnlock.
Writes compare_peers.json and compare_peers.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from faceunlock.paths import shared_dir

SHARED = shared_dir() / "datasets"  # FACEUNLOCK_SHARED, else ../shared


def frames(n: int) -> list[Any]:
    import cv2
    import numpy as np

    from faceunlock.engine.sources import VideoFileSource
    from faceunlock.evaluation.bench import make_frame

    out = [make_frame(None)]
    with VideoFileSource(SHARED / "clips" / "head-pose-face-detection-male.gif") as src:
        for f in src:
            if len(out) >= n:
                break
            im = cv2.resize(f.image, (640, 360), interpolation=cv2.INTER_LINEAR)
            out.append(cv2.copyMakeBorder(im, 60, 60, 0, 0, cv2.BORDER_CONSTANT, value=0))
    return [np.ascontiguousarray(x) for x in out]


def lfw_pairs(limit: int) -> tuple[list[tuple[str, str]], list[bool]]:
    from faceunlock.evaluation import lfw

    ps = lfw.read_pairs(SHARED / "lfw" / "pairsDevTest.txt")
    idx = list(range(len(ps.pairs)))
    if limit and limit < len(idx):  # balanced subset: first limit/2 same, first limit/2 diff
        half = len(idx) // 2
        idx = idx[: limit // 2] + idx[half : half + limit // 2]
    return [ps.pairs[i] for i in idx], [bool(ps.same[i]) for i in idx]


def child(kind: str, n_frames: int, lfw_limit: int) -> dict[str, Any]:
    import resource
    import time

    import numpy as np

    from faceunlock.engine.imageio import read_image

    fr = frames(n_frames)
    if kind.startswith("faceunlock"):
        from faceunlock.engine.pipeline import Pipeline, PipelineSettings

        live = Pipeline(PipelineSettings(min_face=80, max_face=400,
                                         coarse_first=kind == "faceunlock-coarse"))
        lfw_pipe = Pipeline(PipelineSettings())
        track = kind == "faceunlock-stream"

        def run_frame(im: Any) -> int:
            return len(live.observe(im, select="largest", track=track))

        def describe(im: Any) -> Any:
            o = lfw_pipe.observe(im, select="center", fallback_center=True)
            return o[0].embedding if o else None

        default_thr = lfw_pipe.threshold
    else:
        import dlib
        import face_recognition_models as frm

        sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        if kind == "dlib-hog":
            hog = dlib.get_frontal_face_detector()

            def detect(im: Any) -> list[Any]:
                return list(hog(im, 0))
        else:
            cnn = dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())

            def detect(im: Any) -> list[Any]:
                return [d.rect for d in cnn(im, 0)]

        def run_frame(im: Any) -> int:
            rects = detect(im)
            if rects:
                r = max(rects, key=lambda r: r.area())
                rec.compute_face_descriptor(im, sp(im, r))
            return len(rects)

        def describe(im: Any) -> Any:
            rects = detect(im)
            h, w = im.shape[:2]
            if rects:
                r = min(
                    rects, key=lambda r: (r.center().x - w / 2) ** 2 + (r.center().y - h / 2) ** 2
                )
            else:
                s = int(0.44 * min(h, w))
                r = dlib.rectangle(
                    w // 2 - s // 2, h // 2 - s // 2, w // 2 + s // 2, h // 2 + s // 2
                )
            return np.asarray(rec.compute_face_descriptor(im, sp(im, r)), np.float32)

        default_thr = 0.6
    run_frame(fr[0])  # warm-up
    times, faces = [], []
    reps = 3 if kind == "dlib-cnn" else 10
    for _ in range(reps):
        for im in fr:
            t0 = time.perf_counter()
            faces.append(run_frame(im))
            times.append((time.perf_counter() - t0) * 1e3)
    res: dict[str, Any] = {
        "pipeline": kind,
        "frames": len(fr) * reps,
        "median_ms": float(np.median(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "faces_found_share": float(np.mean(np.asarray(faces) > 0)),
    }
    if lfw_limit >= 0:
        pairs, same = lfw_pairs(lfw_limit)
        root = SHARED / "lfw" / "images"
        cache: dict[str, Any] = {}
        for a, b in pairs:
            for r in (a, b):
                if r not in cache:
                    cache[r] = describe(read_image(root / r))
        d = np.asarray([np.linalg.norm(cache[a] - cache[b]) for a, b in pairs])
        s = np.asarray(same)
        res.update(
            lfw_pairs=len(pairs),
            lfw_threshold=default_thr,
            lfw_accuracy=float(np.mean((d <= default_thr) == s)),
        )
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument(
        "--lfw-pairs",
        type=int,
        default=200,
        help="DevTest pairs (0 = all 1000, -1 = skip accuracy)",
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--only", action="append")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.frames, a.lfw_pairs)))
        return 0
    rows = []
    for kind in a.only or ["faceunlock", "faceunlock-coarse", "faceunlock-stream", "dlib-hog",
                           "dlib-cnn"]:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                kind,
                "--frames",
                str(a.frames),
                "--lfw-pairs",
                str(a.lfw_pairs),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    ours = next((r for r in rows if r["pipeline"] == "faceunlock"), None)
    stream = next((r for r in rows if r["pipeline"] == "faceunlock-stream"), None)
    for r in rows:
        r["x_slower_than_faceunlock"] = r["median_ms"] / ours["median_ms"] if ours else None
        r["x_slower_than_faceunlock_stream"] = (r["median_ms"] / stream["median_ms"]
                                                if stream else None)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "compare_peers.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| pipeline | median ms/frame | p90 ms | x FaceUnlock | x FaceUnlock stream "
        "| peak RSS MB | LFW DevTest acc. |",
        "|---|---|---|---|---|---|---|",
    ]

    def ratio(x: float | None) -> str:
        return f"{x:.1f}" if x is not None else "-"

    for r in rows:
        acc = f"{r['lfw_accuracy']:.3f} ({r['lfw_pairs']} pairs)" if "lfw_accuracy" in r else "-"
        lines.append(
            f"| {r['pipeline']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | "
            f"{ratio(r['x_slower_than_faceunlock'])} | "
            f"{ratio(r['x_slower_than_faceunlock_stream'])} | {r['peak_rss_mb']:.0f} | {acc} |"
        )
    (a.out / "compare_peers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
