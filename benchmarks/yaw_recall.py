"""Detection recall on turned faces: the head-pose clips, every frame, FaceUnlock next to dlib.

    nice python benchmarks/yaw_recall.py [--out benchmarks/results]

The clips in ``../shared/datasets/clips`` (480x270, faces ~60-90 px) show heads turning but
carry no pose labels, so each face's yaw is estimated from its 5 landmarks: with the eyes'
centres ``A`` and ``B`` and the base of the nose ``N``, the asymmetry
``a = (|N - B| - |N - A|) / (|N - B| + |N - A|)`` (horizontal distances) is 0 for a frontal
face and about ``0.6 tan(yaw)`` for a head whose nose base sits ~2 cm in front of the eyes'
plane and whose eyes are ~6.4 cm apart: ~0.35 at 30° and ~0.6 at 45°. The shape predictor
pulls turned faces toward the mean shape, so the estimate is low for strongly turned heads:
read the bins as "frontal", "turned" and "strongly turned", not as degrees.

For every frame each pipeline's detections are matched to faces (a detection whose centre
lies within 0.5 of its size of another's is the same face); a face is one found by any
pipeline; its yaw is estimated from the landmarks in FaceUnlock's box when it found it, else in
dlib's. Pipelines: ``faceunlock`` (the default engine, single frames: full scan and the
fallback passes), ``faceunlock-single`` (no fallback), ``dlib-hog`` (HOG, one upsample) and
``dlib-cnn`` (the CNN, one upsample: its window is 80 px). Writes yaw_recall.json and
yaw_recall.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

CLIPS = (
    Path(os.environ.get("FACEUNLOCK_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    / "datasets"
    / "clips"
)
FILES = (
    "head-pose-face-detection-female.gif",
    "head-pose-face-detection-male.gif",
    "head-pose-face-detection-female-and-male.gif",
)
PIPELINES = ("faceunlock", "faceunlock-single", "dlib-hog", "dlib-cnn")
BINS = (
    (0.0, 0.15, "frontal (asymmetry < 0.15, ~<15°)"),
    (0.15, 0.35, "turned (0.15-0.35, ~15-30°)"),
    (0.35, 9.0, "strongly turned (> 0.35, ~>30°)"),
)
Box = tuple[float, float, float, float]


def asymmetry(lm: np.ndarray) -> float:
    """The yaw proxy of the module docstring from (5, 2) landmarks (dlib's order)."""
    a = (lm[0, 0] + lm[1, 0]) / 2.0
    b = (lm[2, 0] + lm[3, 0]) / 2.0
    n = lm[4, 0]
    da, db = abs(n - a), abs(n - b)
    return float((db - da) / max(da + db, 1e-6))


def same_face(p: Box, q: Box) -> bool:
    pc = ((p[0] + p[2]) / 2, (p[1] + p[3]) / 2)
    qc = ((q[0] + q[2]) / 2, (q[1] + q[3]) / 2)
    size = max(p[2] - p[0], q[2] - q[0], 1.0)
    return abs(pc[0] - qc[0]) < 0.5 * size and abs(pc[1] - qc[1]) < 0.5 * size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    a = ap.parse_args()
    import dlib
    import face_recognition_models as frm

    repo = str(Path(__file__).resolve().parents[1])
    if repo not in sys.path:
        sys.path.insert(0, repo)
    from faceunlock.engine.pipeline import Pipeline, PipelineSettings
    from tests.fakes.clip_material import clip_frames

    fu = Pipeline(PipelineSettings(threads=1))
    fu1 = Pipeline(PipelineSettings(threads=1, fallback=False))
    hog = dlib.get_frontal_face_detector()
    cnn = dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())

    def rect(r: Any) -> Box:
        return (r.left(), r.top(), r.right(), r.bottom())

    faces: list[dict[str, Any]] = []
    for name in FILES:
        for i, f in enumerate(clip_frames(CLIPS / name)):
            found: dict[str, list[Box]] = {
                "faceunlock": [d.box for d in fu.detect(f)],
                "faceunlock-single": [d.box for d in fu1.detect(f)],
                "dlib-hog": [rect(r) for r in hog(f, 1)],
                "dlib-cnn": [rect(d.rect) for d in cnn(f, 1)],
            }
            mine: list[dict[str, Any]] = []
            for p in PIPELINES:  # faceunlock first: its boxes place the landmarks
                for b in found[p]:
                    face = next((m for m in mine if same_face(m["box"], b)), None)
                    if face is None:
                        face = {"clip": name, "frame": i, "box": b, "by": set()}
                        mine.append(face)
                    face["by"].add(p)
            for m in mine:
                m["yaw_proxy"] = asymmetry(fu.landmarker.predict(f, m["box"]))
                m["by"] = sorted(m["by"])
            faces += mine
        print(f"{name}: {sum(f['clip'] == name for f in faces)} faces", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    for lo, hi, label in BINS:
        sel = [f for f in faces if lo <= abs(f["yaw_proxy"]) < hi]
        rows.append(
            {
                "bin": label,
                "faces": len(sel),
                **{p: sum(p in f["by"] for f in sel) for p in PIPELINES},
            }
        )
    rows.append(
        {
            "bin": "all",
            "faces": len(faces),
            **{p: sum(p in f["by"] for f in faces) for p in PIPELINES},
        }
    )
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "yaw_recall.json").write_text(
        json.dumps(
            {"rows": rows, "faces": [{**f, "box": [float(v) for v in f["box"]]} for f in faces]},
            indent=1,
        )
        + "\n"
    )
    lines = [
        "Head-pose clips, every frame (141 frames); a face: found by any pipeline; cells: "
        "faces found (share). Yaw bins from the landmark asymmetry proxy "
        "(benchmarks/yaw_recall.py).",
        "",
        "| yaw bin | faces | " + " | ".join(PIPELINES) + " |",
        "|---|---|" + "---|" * len(PIPELINES),
    ]
    for r in rows:
        cells = [f"{r[p]} ({100 * r[p] / max(r['faces'], 1):.0f} %)" for p in PIPELINES]
        lines.append(f"| {r['bin']} | {r['faces']} | " + " | ".join(cells) + " |")
    (a.out / "yaw_recall.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
