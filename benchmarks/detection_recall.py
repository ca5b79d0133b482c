"""Detection recall on hard-condition proxies built from LFW DevTest, FaceUnlock next to dlib.

    nice python benchmarks/detection_recall.py [--pairs 200] [--conditions small,lfw150]
        [--pipelines faceunlock,faceunlock-single,dlib] [--cache DIR] [--out benchmarks/results]

Every DevTest image of the chosen pairs (``--pairs N``: the first N/2 same and the first N/2
different pairs; 0 = all 1,000) is turned into one image per condition, deterministically
(the random draws are seeded by image name and condition):

* ``original``: the 250x250 deep-funneled image (faces ~96 px, dlib's CNN boxes);
* ``small``: scaled so the face is 40-80 px and pasted at a random place of a 640x480 frame
  (a smooth random background with sensor noise): a webcam user 1-1.5 m away;
* ``lfw150``: the whole image shrunk to 150x150 (faces ~58 px, like LFW's original crops);
* ``tight``: the central 150x150 (the face fills most of it);
* ``fill``: the central 104x120 resized to 168x192: the face fills the image (Yale-B-like);
* ``sidelight`` / ``fill_sidelight``: a one-sided light ramp (dark side ~6 % of the lit one)
  and a gamma of 1.3-2.0, on the full image / on the ``fill`` crop;
* ``grey``: greyscale;
* ``rotate``: in-plane rotation, uniform in [-30, 30] degrees.

Pipelines (each one's faces, then landmarks and descriptor; the face nearest the known face
centre is used, and when nothing is found the image's central box, as in the LFW protocol):

* ``faceunlock-single``: the engine with its default settings and no fallback passes (before);
* ``faceunlock``: the default engine, fallback passes on (after);
* ``dlib-hog``: dlib's HOG detector, one upsample; ``dlib-cnn``: dlib's CNN (MMOD) detector,
  no upsample (``face_recognition_models``' file, as compare_peers.py uses);
  ``dlib-pipeline``: HOG, then the CNN when HOG finds nothing, then the central box; all three
  with dlib's 5-point landmarks and ResNet descriptor (``--pipelines dlib`` runs them in one
  pass, sharing the detections; ``--pipelines dlib-pipeline`` runs only the last, and its CNN
  only on the images HOG finds nothing in: ~10x cheaper).

Reported per condition and pipeline: no-face rate (share of images where the detector found
nothing near the face), accuracy at the pipeline's own default threshold (0.6 for dlib, the
encoder sidecar's for FaceUnlock) and TAR at FAR 1e-3 (with fewer than 1,000 impostor pairs this
is TAR at zero false accepts). Per-image results are cached (``--cache``, one file per pipeline
and condition, keyed by image name), so pipelines can run in separate invocations and a run on
more pairs computes only the images it adds; writes detection_recall.json and
detection_recall.md (``--tag``: detection_recall_TAG.*). One thread per model (``--threads``).
FaceUnlock's detector runs with ``min_face`` 80 and no ``max_face`` (dlib's full pyramid) unless
``--min-face``/``--max-face`` are given (the app's ``[detector]`` defaults are 100 and 400: give
each setting its own ``--cache``, as the cache is keyed by pipeline and condition only).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

SHARED = (
    Path(os.environ.get("FACEUNLOCK_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    / "datasets"
)
#: dlib CNN box side on LFW deep-funneled images (median over DevTest)
FACE_PX = 96.0
FRAME_W, FRAME_H = 640, 480
CONDITIONS = (
    "original",
    "small",
    "lfw150",
    "tight",
    "fill",
    "sidelight",
    "fill_sidelight",
    "grey",
    "rotate",
)
FACEUNLOCK = ("faceunlock-single", "faceunlock")
DLIB = ("dlib-hog", "dlib-cnn", "dlib-pipeline")
Centre = tuple[float, float]


# -- conditions -----------------------------------------------------------------------------------


def _rng(name: str, cond: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{cond}/{name}".encode()))


def _background(rng: np.random.Generator) -> np.ndarray:
    low = rng.uniform(40, 200, (6, 8, 3)).astype(np.float32)
    bg = np.asarray(cv2.resize(low, (FRAME_W, FRAME_H), interpolation=cv2.INTER_CUBIC))
    bg += rng.normal(0, 6, bg.shape).astype(np.float32)
    return np.asarray(np.clip(bg, 0, 255), np.uint8)


def side_light(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A light ramp from one side (±20° off horizontal), gain ~0.06 to ~1.56, then gamma."""
    h, w = img.shape[:2]
    a = rng.uniform(-0.35, 0.35) + (0.0 if rng.random() < 0.5 else math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = ((xx - w / 2) * math.cos(a) + (yy - h / 2) * math.sin(a)) / (0.12 * w)
    gain = 0.06 + 1.5 / (1 + np.exp(-t))
    out = np.clip(img.astype(np.float32) / 255.0 * gain[..., None], 0, 1) ** rng.uniform(1.3, 2.0)
    return np.asarray(out * 255 + 0.5, np.uint8)


def _fill(img: np.ndarray) -> np.ndarray:
    return np.asarray(cv2.resize(img[67:187, 73:177], (168, 192), interpolation=cv2.INTER_LINEAR))


def make_condition(img: np.ndarray, name: str, cond: str) -> tuple[np.ndarray, Centre]:
    """The ``cond`` version of an LFW image, and where the face's centre is in it."""
    rng = _rng(name, cond)
    h, w = img.shape[:2]
    c = (w / 2.0, h / 2.0)
    if cond == "original":
        return img, c
    if cond == "small":
        s = rng.uniform(40, 80) / FACE_PX
        im = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        frame = _background(rng)
        ih, iw = im.shape[:2]
        x, y = int(rng.integers(0, FRAME_W - iw)), int(rng.integers(0, FRAME_H - ih))
        frame[y : y + ih, x : x + iw] = im
        return frame, (x + iw / 2.0, y + ih / 2.0)
    if cond == "lfw150":
        return np.asarray(cv2.resize(img, (150, 150), interpolation=cv2.INTER_AREA)), (75.0, 75.0)
    if cond == "tight":
        return np.ascontiguousarray(img[50:200, 50:200]), (75.0, 75.0)
    if cond == "fill":
        return _fill(img), (84.0, 96.0)
    if cond == "sidelight":
        return side_light(img, rng), c
    if cond == "fill_sidelight":
        return side_light(_fill(img), rng), (84.0, 96.0)
    if cond == "grey":
        g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        return np.repeat(g[..., None], 3, axis=2), c
    if cond == "rotate":
        m = cv2.getRotationMatrix2D(c, float(rng.uniform(-30, 30)), 1.0)
        return np.asarray(
            cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        ), c
    raise ValueError(f"unknown condition {cond!r}")


def near(
    boxes: list[tuple[float, float, float, float]], c: Centre
) -> tuple[float, float, float, float] | None:
    """The box whose centre lies within 0.6 of its size of ``c`` and is nearest to it."""
    best, dist = None, math.inf
    for b in boxes:
        bx, by = (b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0
        w, h = b[2] - b[0] + 1, b[3] - b[1] + 1
        if abs(bx - c[0]) < 0.6 * w and abs(by - c[1]) < 0.6 * h:
            d = (bx - c[0]) ** 2 + (by - c[1]) ** 2
            if d < dist:
                best, dist = b, d
    return best


def central_box(shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    from faceunlock.engine.pipeline import center_box

    return center_box(shape)


# -- pipelines ------------------------------------------------------------------------------------

#: per image: (found, embedding)
Describe = Callable[[np.ndarray, Centre], dict[str, tuple[bool, np.ndarray]]]


def faceunlock_describer(
    kind: str, threads: int = 1, min_face: int = 80, max_face: int | None = None
) -> tuple[Describe, float]:
    from faceunlock.engine.pipeline import Pipeline, PipelineSettings

    pipe = Pipeline(
        PipelineSettings(
            fallback=kind == "faceunlock", threads=threads, min_face=min_face, max_face=max_face
        )
    )

    def describe(im: np.ndarray, c: Centre) -> dict[str, tuple[bool, np.ndarray]]:
        box = near([d.box for d in pipe.detect(im)], c)
        found = box is not None
        obs = pipe.observe_boxes(im, [box if box is not None else central_box(im.shape)])
        return {kind: (found, obs[0].embedding)}

    return describe, pipe.threshold


def dlib_describer(only_pipeline: bool = False) -> tuple[Describe, float]:
    """dlib's three pipelines (module docstring); ``only_pipeline``: dlib-pipeline alone, its
    CNN run only where HOG finds nothing."""
    import dlib
    import face_recognition_models as frm

    hog = dlib.get_frontal_face_detector()
    cnn = dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def rects(rs: list[Any]) -> list[tuple[float, float, float, float]]:
        return [(r.left(), r.top(), r.right(), r.bottom()) for r in rs]

    def emb(im: np.ndarray, b: tuple[float, float, float, float]) -> np.ndarray:
        r = dlib.rectangle(*(int(v) for v in b))
        return np.asarray(rec.compute_face_descriptor(im, sp(im, r)), np.float32)

    def describe(im: np.ndarray, c: Centre) -> dict[str, tuple[bool, np.ndarray]]:
        fallback = central_box(im.shape)
        h = near(rects(list(hog(im, 1))), c)
        if only_pipeline:
            b = h if h is not None else near(rects([d.rect for d in cnn(im, 0)]), c)
            return {"dlib-pipeline": (b is not None, emb(im, b if b is not None else fallback))}
        k = near(rects([d.rect for d in cnn(im, 0)]), c)
        eh = emb(im, h if h is not None else fallback)
        ek = emb(im, k if k is not None else fallback)
        ep = eh if h is not None else ek
        return {
            "dlib-hog": (h is not None, eh),
            "dlib-cnn": (k is not None, ek),
            "dlib-pipeline": (h is not None or k is not None, ep),
        }

    return describe, 0.6


# -- running --------------------------------------------------------------------------------------


def pairs(limit: int) -> tuple[list[tuple[str, str]], np.ndarray]:
    from faceunlock.evaluation import lfw

    ps = lfw.read_pairs(SHARED / "lfw" / "pairsDevTest.txt")
    idx = list(range(len(ps.pairs)))
    if limit and limit < len(idx):
        half = len(idx) // 2
        idx = idx[: limit // 2] + idx[half : half + limit // 2]
    return [ps.pairs[i] for i in idx], np.asarray([bool(ps.same[i]) for i in idx])


def run_condition(
    describe: Describe,
    names: list[str],
    cond: str,
    save: Callable[[dict[str, dict[str, Any]]], None],
) -> dict[str, dict[str, Any]]:
    """Every image of ``names`` under ``cond``: per pipeline, names, found, emb and the
    seconds spent; ``save`` is called with the partial result every 100 images."""
    from faceunlock.engine.imageio import read_image

    out: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    for i, n in enumerate(names):
        im, c = make_condition(read_image(SHARED / "lfw" / "images" / n), n, cond)
        for kind, (found, e) in describe(im, c).items():
            slot = out.setdefault(kind, {"names": [], "found": [], "emb": [], "seconds": 0.0})
            slot["names"].append(n)
            slot["found"].append(found)
            slot["emb"].append(e)
        for slot in out.values():
            slot["seconds"] = time.perf_counter() - t0
        if (i + 1) % 100 == 0:
            save(out)
            print(
                f"  {cond}: {i + 1}/{len(names)} images, {time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    save(out)
    return out


def load_cache(f: Path) -> dict[str, Any]:
    """A cache file as {names, found, emb, threshold, seconds (spent on those images)}; empty
    names when absent. Files of the earlier layout (``G-COND-PAIRS.npz``) read the same."""
    if not f.is_file():
        return {"names": [], "found": [], "emb": [], "threshold": math.nan, "seconds": 0.0}
    z = np.load(f)
    return {
        "names": [str(x) for x in z["names"]],
        "found": list(z["found"]),
        "emb": list(z["emb"]),
        "threshold": float(z["threshold"]),
        "seconds": float(z["seconds"]),
    }


def save_cache(
    f: Path,
    names: list[str],
    found: list[bool],
    emb: list[np.ndarray],
    threshold: float,
    seconds: float,
) -> None:
    tmp = f.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        names=np.asarray(names),
        found=np.asarray(found, bool),
        emb=np.stack(emb),
        threshold=threshold,
        seconds=seconds,
    )
    tmp.replace(f)


def score(
    names: list[str],
    found: np.ndarray,
    emb: np.ndarray,
    prs: list[tuple[str, str]],
    same: np.ndarray,
    threshold: float,
) -> dict[str, Any]:
    from faceunlock.evaluation import metrics

    idx = {n: i for i, n in enumerate(names)}
    a = emb[[idx[x] for x, _ in prs]].astype(np.float64)
    b = emb[[idx[y] for _, y in prs]].astype(np.float64)
    d = np.linalg.norm(a - b, axis=1)
    tar, _ = metrics.tar_at_far(d, same, 1e-3)
    fold = np.empty(len(same), np.int64)  # 10 folds, each 1/10 of the same and different pairs
    for flag in (True, False):
        ix = np.nonzero(same == flag)[0]
        fold[ix] = np.arange(len(ix)) * 10 // max(len(ix), 1)
    cv = np.zeros(len(d), bool)
    for k in range(10):
        tr, te = fold != k, fold == k
        if te.any() and tr.any():
            cv[te] = (d[te] <= metrics.best_threshold(d[tr], same[tr])) == same[te]
    return {
        "correct": (d <= threshold) == same,
        "correct_cv": cv,
        "accuracy_10fold": float(cv.mean()),
        "images": len(names),
        "no_face": int((~found).sum()),
        "no_face_rate": float((~found).mean()),
        "pairs": len(prs),
        "accuracy": metrics.accuracy(d, same, threshold),
        "threshold": threshold,
        "tar_at_far_1e-3": tar,
        "auc": metrics.roc_auc(d, same),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=200, help="DevTest pairs (0 = all 1,000)")
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument(
        "--pipelines",
        default="faceunlock-single,faceunlock,dlib",
        help="comma list of faceunlock-single, faceunlock, dlib (runs dlib's "
        "three), dlib-pipeline (that one alone, cheaper)",
    )
    ap.add_argument("--cache", type=Path, default=Path("/tmp/faceunlock-detection-recall"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--tag", default="", help="result files detection_recall_TAG.{json,md}")
    ap.add_argument("--threads", type=int, default=1, help="FaceUnlock's onnxruntime threads")
    ap.add_argument(
        "--min-face",
        type=int,
        default=80,
        help="FaceUnlock's detector min_face (80: dlib's full pyramid; the app uses 100)",
    )
    ap.add_argument(
        "--max-face", type=int, default=None, help="FaceUnlock's max_face (the app uses 400)"
    )
    ap.add_argument("--report-only", action="store_true", help="tabulate the cache only")
    a = ap.parse_args()
    prs, same = pairs(a.pairs)
    names = sorted({x for p in prs for x in p})
    conds = [c for c in a.conditions.split(",") if c]
    kinds = [k for k in a.pipelines.split(",") if k]
    a.cache.mkdir(parents=True, exist_ok=True)

    def cache_file(g: str, cond: str) -> Path:
        return a.cache / f"{g}-{cond}.npz"

    for kind in kinds if not a.report_only else []:
        if kind in ("dlib", "dlib-pipeline"):
            describe, thr = dlib_describer(only_pipeline=kind == "dlib-pipeline")
        else:
            describe, thr = faceunlock_describer(kind, a.threads, a.min_face, a.max_face)
        groups = list(DLIB) if kind == "dlib" else [kind]
        for cond in conds:
            have = {g: load_cache(cache_file(g, cond)) for g in groups}
            todo = [n for n in names if any(n not in set(have[g]["names"]) for g in groups)]
            if not todo:
                continue
            print(
                f"{kind} on {cond} ({len(todo)} of {len(names)} images to do)",
                file=sys.stderr,
                flush=True,
            )

            def save(
                out: dict[str, dict[str, Any]],
                cond: str = cond,
                have: dict[str, dict[str, Any]] = have,
                thr: float = thr,
            ) -> None:
                for g, slot in out.items():
                    old = have[g]
                    keep = [i for i, n in enumerate(old["names"]) if n not in set(slot["names"])]
                    save_cache(
                        cache_file(g, cond),
                        [old["names"][i] for i in keep] + slot["names"],
                        [old["found"][i] for i in keep] + slot["found"],
                        [old["emb"][i] for i in keep] + slot["emb"],
                        thr,
                        old["seconds"] + slot["seconds"],
                    )

            run_condition(describe, todo, cond, save)
    rows: list[dict[str, Any]] = []
    for cond in conds:
        for g in (*FACEUNLOCK, *DLIB):
            z = load_cache(cache_file(g, cond))
            idx = {n: i for i, n in enumerate(z["names"])}
            if not all(n in idx for n in names):
                continue
            sel = [idx[n] for n in names]
            r = score(
                names,
                np.asarray(z["found"], bool)[sel],
                np.stack(z["emb"])[sel],
                prs,
                same,
                z["threshold"],
            )
            r.update(
                condition=cond,
                pipeline=g,
                ms_per_image=round(1e3 * z["seconds"] / len(z["names"]), 1),
            )
            rows.append(r)
    for r in rows:  # paired with dlib's pipeline on the same condition (McNemar)
        ref = next(
            (
                q
                for q in rows
                if q["condition"] == r["condition"] and q["pipeline"] == "dlib-pipeline"
            ),
            None,
        )
        for key, name in (("correct", "vs_dlib_pipeline"), ("correct_cv", "vs_dlib_10fold")):
            if ref is None:
                continue
            x, y = r[key], ref[key]
            ab, ba = int((x & ~y).sum()), int((~x & y).sum())
            n = len(x)
            r[name] = {
                "right_only_here": ab,
                "right_only_dlib": ba,
                "diff": (ab - ba) / n,
                "se": math.sqrt(max(ab + ba - (ab - ba) ** 2 / n, 0.0)) / n,
            }
    for r in rows:
        r.pop("correct")
        r.pop("correct_cv")
    a.out.mkdir(parents=True, exist_ok=True)
    stem = "detection_recall" + (f"_{a.tag}" if a.tag else "")
    (a.out / f"{stem}.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [
        f"LFW DevTest, {len(prs)} pairs ({len(names)} images); no face: detector found "
        "nothing near the face (the central box is then described); accuracy at each "
        "pipeline's default threshold; TAR at FAR 1e-3.",
        "",
        "Paired: the pairs this pipeline gets right and dlib-pipeline wrong / the reverse, "
        "and the difference in accuracy with its standard error (McNemar); 10-fold: the "
        "threshold of each tenth of the pairs fitted on the rest.",
        "",
        "| condition | pipeline | no face | accuracy | vs dlib-pipeline | 10-fold accuracy "
        "| vs dlib-pipeline, 10-fold | TAR@FAR1e-3 | AUC | ms/image |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def paired(v: dict[str, Any] | None) -> str:
        if v is None:
            return ""
        return (
            f"+{v['right_only_here']}/-{v['right_only_dlib']}: "
            f"{100 * v['diff']:+.1f} ± {100 * v['se']:.1f} pt"
        )

    for r in rows:
        lines.append(
            f"| {r['condition']} | {r['pipeline']} | {r['no_face']} "
            f"({100 * r['no_face_rate']:.1f} %) | {r['accuracy']:.3f} | "
            f"{paired(r.get('vs_dlib_pipeline'))} | {r['accuracy_10fold']:.3f} | "
            f"{paired(r.get('vs_dlib_10fold'))} | "
            f"{r['tar_at_far_1e-3']:.3f} | {r['auc']:.4f} | {r['ms_per_image']} |"
        )
    (a.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
