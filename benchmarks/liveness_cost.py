"""What passive liveness costs the owner: false rejects and time, on the shared webcam clips.

    python benchmarks/liveness_cost.py [--out benchmarks/results]

Owners: the woman (enrolled from the first half of her clip; attempts start at every frame
of its second half, and at every frame of the two-person clip, where the man stands beside
her) and the man (enrolled from the first half of his clip; attempts start at every frame of
its second half). Each attempt runs :func:`faceunlock.engine.auth.authenticate` on the frames
from its start to the clip's end (the config's k-of-n, tracked stream), with liveness off
and passive. Reported: FRR per owner and level, and milliseconds: per frame of the attempts
(mean over all frames, i.e. what the stream pays), per judged attempt, and per layer (each
model per crop, each deny cue per call), medians over repeated calls on the clips' frames;
the judge's wall time (its cues run beside the models, on a second thread) and its CPU time
(both threads).
Writes ``liveness_cost.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIPS = Path(os.environ.get("FACEUNLOCK_SHARED", REPO.parent / "shared")) / "datasets" / "clips"
FEMALE = "head-pose-face-detection-female.gif"
MALE = "head-pose-face-detection-male.gif"
BOTH = "head-pose-face-detection-female-and-male.gif"


def _clip_material() -> Any:
    if str(REPO) not in sys.path:  # tests/fakes is the package tests.fakes
        sys.path.insert(0, str(REPO))
    from tests.fakes import clip_material

    return clip_material


def template(pipe: Any, frames: list[np.ndarray], cfg: Any) -> tuple[Any, float]:
    """(matcher, threshold) of a template enrolled from ``frames`` (as service.enrol does,
    unguided: the clips were not filmed to the wizard's prompts)."""
    _clip_material()  # puts the repository on sys.path for tests.fakes
    from tests.fakes.responsive_owner import enrol_template

    return enrol_template(pipe, cfg, frames)


def attempts(pipe: Any, m: Any, thr: float, frames: list[np.ndarray], cfg: Any,
             level: str) -> dict[str, Any]:
    from faceunlock.app import service
    from faceunlock.engine.auth import AuthParams, authenticate
    from faceunlock.engine.sources import Frame
    from faceunlock.errors import AuthStatus

    stage = service.liveness_for(cfg, pipe, level)
    a = cfg.auth
    params = AuthParams(timeout=30.0, k=a.k, n=a.n)
    statuses, frame_ms, judged_ms, scores = [], [], [], []
    for s in range(len(frames)):
        res = authenticate(pipe, m, thr, (Frame(f, i, 0.0) for i, f in enumerate(frames[s:])),
                           params, liveness=stage)
        statuses.append(res.status)
        frame_ms += [f.ms for f in res.frames]
        if res.liveness is not None:
            judged_ms.append(res.liveness.ms)
            scores.append(res.liveness.score)
    n_ok = sum(st == AuthStatus.OK for st in statuses)
    return {
        "attempts": len(statuses),
        "frr": round(1 - n_ok / len(statuses), 4),
        "refused_as_attack": sum(st == AuthStatus.PRESENTATION_ATTACK for st in statuses),
        "ms_per_frame_mean": round(float(np.mean(frame_ms)), 2),
        "judge_ms_median": round(statistics.median(judged_ms), 2) if judged_ms else None,
        "lowest_live_scores": [round(x, 3) for x in sorted(scores)[:3]],
    }


def layer_ms(pipe: Any, frames: list[np.ndarray], repeats: int = 20) -> dict[str, float]:
    """Median ms per call of each layer on the clip's first face."""
    from faceunlock.engine import liveness as L

    stage = L.Liveness()
    a, b = frames[0], frames[1]
    box = pipe.observe(a, select="largest")[0].box
    faces = [(a, box), (b, box)]
    stage.judge(faces)  # load

    def med(fn: Any) -> float:
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
        return round(statistics.median(ts), 3)

    def cpu(fn: Any) -> float:
        t0 = time.process_time()
        for _ in range(repeats):
            fn()
        return round((time.process_time() - t0) / repeats * 1e3, 3)

    grey = [np.zeros((80, 80), np.float32), np.ones((80, 80), np.float32)]
    return {
        "minifasnet_v2_per_crop": med(lambda: stage.v2.real(faces[:1])),
        "minifasnet_v1se_per_crop": med(lambda: stage.v1se.real(faces[:1])),
        "both_models_two_crops": med(lambda: stage.scores(faces)),
        "glare_per_frame": med(lambda: L.glare(a, box)),
        "bezel_per_frame": med(lambda: L.bezel(a, box)),
        "frozen_two_crops": med(lambda: L.frozen(grey)),
        "planar_motion_pair": med(lambda: L.planar_motion(a, b, box)),
        "deny_cues_two_frames": med(lambda: L.deny_cues(faces)),
        "judge_two_frames": med(lambda: stage.judge(faces)),
        "judge_two_frames_cpu": cpu(lambda: stage.judge(faces)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    from faceunlock.app import service

    cm = _clip_material()
    cfg = cm.clip_config()
    pipe = service.pipeline_for(cfg)
    fem, male, both = (cm.clip_frames(CLIPS / c) for c in (FEMALE, MALE, BOTH))
    result: dict[str, Any] = {"cpu_count": os.cpu_count(), "k": cfg.auth.k, "n": cfg.auth.n}
    owners = {
        "woman, own clip": (fem[:len(fem) // 2], fem[len(fem) // 2:]),
        "woman, two-person clip": (fem[:len(fem) // 2], both),
        "man, own clip": (male[:len(male) // 2], male[len(male) // 2:]),
    }
    for name, (enrol_frames, probe) in owners.items():
        m, thr = template(pipe, enrol_frames, cfg)
        result[name] = {lvl: attempts(pipe, m, thr, probe, cfg, lvl)
                        for lvl in ("off", "passive")}
        print(name, json.dumps(result[name]), file=sys.stderr)
    result["layer_ms"] = layer_ms(pipe, fem)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "liveness_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
