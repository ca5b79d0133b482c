"""CPU time per frame of the whole pipeline, with and without a face, single frames and streams.

    python benchmarks/frame_cost.py [--repeats 30] [--out benchmarks/results/frame_cost.json]

``time.process_time`` of one ``observe`` call (one onnxruntime thread, so the figure is the
CPU a frame costs whatever the machine's load), median over ``--repeats`` frames, with
``faceunlock bench``'s detector settings (min_face 100, max_face 400):

* ``single``, ``tracked``, ``coarse-first``: the bench frame (one face, ~165 px);
* ``no face, single``: a 640x480 frame with no face (a smooth random background with sensor
  noise, as in detection_recall.py), each frame a new image: every frame runs the fallback;
* ``no face, stream, static``: the same scene in a stream, each frame with new sensor noise (a
  camera with nobody in front);
* ``no face, stream, changing``: a stream whose scene changes every frame (someone moving out
  of the detector's reach, the worst case).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from faceunlock.engine.pipeline import Pipeline, PipelineSettings
from faceunlock.evaluation.bench import make_frame

W, H = 640, 480


def scene(rng: np.random.Generator) -> np.ndarray:
    low = rng.uniform(40, 200, (6, 8, 3)).astype(np.float32)
    return np.asarray(cv2.resize(low, (W, H), interpolation=cv2.INTER_CUBIC))


def noisy(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(np.clip(base + rng.normal(0, 6, base.shape), 0, 255), np.uint8)


def cpu_ms(pipe: Pipeline, frames: list[np.ndarray], track: bool) -> dict[str, float]:
    pipe.reset_tracking()
    ts: list[float] = []
    passes = 0
    for f in frames:
        t0 = time.process_time()
        pipe.observe(f, select="largest", track=track)
        ts.append((time.process_time() - t0) * 1e3)
        passes += bool(pipe.fallback_passes)
    return {
        "median_ms": round(statistics.median(ts), 1),
        "mean_ms": round(statistics.mean(ts), 1),
        "frames": len(ts),
        "frames_with_fallback": passes,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    n = a.repeats
    settings = PipelineSettings(min_face=100, max_face=400, threads=1)
    pipe = Pipeline(settings)
    coarse = Pipeline(replace(settings, coarse_first=True))
    face = make_frame()
    rng = np.random.default_rng(0)
    base = scene(rng)
    for p in (pipe, coarse):  # load the models, warm the sessions
        p.observe(face)
        p.observe(noisy(base, rng))
    res = {
        "settings": "min_face 100, max_face 400, 1 thread",
        "load_average": os.getloadavg(),
        "single": cpu_ms(pipe, [face] * n, False),
        "tracked": cpu_ms(pipe, [face] * n, True),
        "coarse-first": cpu_ms(coarse, [face] * n, False),
        "no face, single": cpu_ms(pipe, [noisy(scene(rng), rng) for _ in range(n)], False),
        "no face, stream, static": cpu_ms(pipe, [noisy(base, rng) for _ in range(n)], True),
        "no face, stream, changing": cpu_ms(pipe, [noisy(scene(rng), rng) for _ in range(n)], True),
    }
    text = json.dumps(res, indent=1)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
