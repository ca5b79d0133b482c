"""Where FaceUnlock's LFW accuracy differs from dlib's: one stage swapped at a time, on View 1.

    nice python benchmarks/view1_decompose.py [--sets DevTest,DevTrain] [--limit N]
        [--cache /tmp/faceunlock-view1-decompose] [--out benchmarks/results] [--report-only]

Every image of the chosen View 1 pair files is described by several pipelines that differ from
FaceUnlock's default in one stage (or from dlib's in one stage), so each difference in accuracy
can be put down to a stage:

* ``ours``: FaceUnlock's default (``faceunlock eval lfw``): our detector (full scan, fallback
  passes), the face nearest the image centre, our 5-point landmarks, our chip, the int8
  encoder, test-time zoom 1.05 and mirror averaging;
* ``ours-largest``: the largest face instead of the one nearest the centre (face selection);
* ``ours-fp32``: the fp32 encoder (``encoder.onnx``) instead of int8 (precision);
* ``ours-int8-plain`` / ``ours-fp32-plain``: no zoom, no mirror (test-time augmentation);
* ``dlibbox``: dlib's box (HOG with one upsample, then its CNN where HOG finds nothing, then the
  central box; the face nearest the centre), our landmarks and the rest ours (detector);
* ``dlibbox-dliblm``: dlib's box and dlib's 5-point landmarks, the rest ours (landmarks);
* ``dlibbox-dliblm-fp32-plain``: dlib's box, landmarks and our chip, the fp32 encoder with no
  augmentation: dlib's pipeline re-implemented (checks the port);
* ``dlib``: dlib's own pipeline: dlib's box, landmarks and ``compute_face_descriptor``;
* ``dlib-largest``: the same with dlib's largest face;
* ``ourdet-dlibdesc``: our box and landmarks, dlib's descriptor (encoder and chip alone).

Reported per variant and pair set: 10-fold accuracy (View 2's protocol: the threshold of each
fold fitted on the other nine; mean and its standard error over folds), the paired difference
from ``dlib`` in correct pairs with its standard error (McNemar: from the pairs one gets right
and the other wrong), ROC AUC with a bootstrap standard error, and TAR at FAR 1e-3. With
DevTrain too: accuracy on DevTest at the threshold fitted on DevTrain (the View 1 protocol).
Per-image results are cached, so an interrupted run resumes; writes view1_decompose.json and
view1_decompose.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SHARED = (
    Path(os.environ.get("FACEUNLOCK_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    / "datasets"
)
VARIANTS = (
    "ours",
    "ours-largest",
    "ours-fp32",
    "ours-int8-plain",
    "ours-fp32-plain",
    "dlibbox",
    "dlibbox-dliblm",
    "dlibbox-dliblm-fp32-plain",
    "dlib",
    "dlib-largest",
    "ourdet-dlibdesc",
)
Box = tuple[float, float, float, float]


class Describer:
    """Every variant's embedding of one image (see the module docstring)."""

    def __init__(self) -> None:
        import dlib
        import face_recognition_models as frm

        from faceunlock.engine.encoder import FaceEncoder
        from faceunlock.engine.pipeline import Pipeline, PipelineSettings, model_path
        from faceunlock.paths import models_dir

        self.dlib = dlib
        self.pipe = Pipeline(PipelineSettings(threads=1))
        self.int8 = FaceEncoder(model_path(models_dir(), "encoder", "int8"), threads=1)
        self.fp32 = FaceEncoder(model_path(models_dir(), "encoder", "fp32"), threads=1)
        self.hog = dlib.get_frontal_face_detector()
        self.cnn = dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())
        self.sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def _embed(self, chip: np.ndarray, fp32: bool, tta: bool) -> np.ndarray:
        from faceunlock.engine.pipeline import zoom_chips

        enc = self.fp32 if fp32 else self.int8
        if not tta:
            return enc.embed(chip[None])[0]
        z = zoom_chips(chip[None], self.pipe.settings.zoom)
        both = enc.embed(np.concatenate([z, z[:, :, ::-1, :]]))
        return ((both[0] + both[1]) / 2.0).astype(np.float32)

    def _dlib_desc(self, image: np.ndarray, box: Box, lm: np.ndarray) -> np.ndarray:
        d = self.dlib
        rect = d.rectangle(*(round(v) for v in box))
        shape = d.full_object_detection(rect, [d.point(round(x), round(y)) for x, y in lm])
        return np.asarray(self.rec.compute_face_descriptor(image, shape), np.float32)

    def describe(self, image: np.ndarray) -> dict[str, Any]:
        from faceunlock.engine.align import face_chip
        from faceunlock.engine.detector import Detection
        from faceunlock.engine.pipeline import center_box, select_detections

        d = self.dlib
        dets = self.pipe.detect(image)
        found = bool(dets)
        fallback = center_box(image.shape)

        def pick(ds: list[Detection], how: str) -> Box:
            s = select_detections(ds, image.shape, how)  # type: ignore[arg-type]
            return s[0].box if s else fallback

        oc, ol = pick(dets, "center"), pick(dets, "largest")
        hog = [
            Detection((r.left(), r.top(), r.right(), r.bottom()), 0.0) for r in self.hog(image, 1)
        ]
        dl_dets = hog or [
            Detection((r.rect.left(), r.rect.top(), r.rect.right(), r.rect.bottom()), 0.0)
            for r in self.cnn(image, 0)
        ]
        dc, dlg = pick(dl_dets, "center"), pick(dl_dets, "largest")
        lm = self.pipe.landmarker

        def dlib_lm(box: Box) -> np.ndarray:
            sh = self.sp(image, d.rectangle(*(round(v) for v in box)))
            return np.asarray([(p.x, p.y) for p in sh.parts()], np.float64)

        def dlib_full(box: Box) -> np.ndarray:
            sh = self.sp(image, d.rectangle(*(round(v) for v in box)))
            return np.asarray(self.rec.compute_face_descriptor(image, sh), np.float32)

        lm_oc = lm.predict(image, oc)
        chip_oc = face_chip(image, lm_oc)
        lm_dc = dlib_lm(dc)
        chip_dc = face_chip(image, lm_dc)
        e: dict[str, np.ndarray] = {
            "ours": self._embed(chip_oc, False, True),
            "ours-fp32": self._embed(chip_oc, True, True),
            "ours-int8-plain": self._embed(chip_oc, False, False),
            "ours-fp32-plain": self._embed(chip_oc, True, False),
            "dlibbox": self._embed(face_chip(image, lm.predict(image, dc)), False, True),
            "dlibbox-dliblm": self._embed(chip_dc, False, True),
            "dlibbox-dliblm-fp32-plain": self._embed(chip_dc, True, False),
            "dlib": dlib_full(dc),
            "ourdet-dlibdesc": self._dlib_desc(image, oc, lm_oc),
        }
        e["ours-largest"] = (
            e["ours"]
            if ol == oc
            else self._embed(face_chip(image, lm.predict(image, ol)), False, True)
        )
        e["dlib-largest"] = e["dlib"] if dlg == dc else dlib_full(dlg)
        return {
            "emb": e,
            "found": found,
            "dlib_found": bool(dl_dets),
            "n_ours": len(dets),
            "n_dlib": len(dl_dets),
            "dlib_hog": bool(hog),
            "box_ours": oc,
            "box_dlib": dc,
        }


# -- cache ----------------------------------------------------------------------------------------


def load_cache(f: Path) -> dict[str, dict[str, Any]]:
    if not f.is_file():
        return {}
    with np.load(f) as z:  # each array read once (an NpzFile reads it again on every access)
        arrays = {k: np.array(z[k]) for k in z.files}
    names = [str(x) for x in arrays["names"]]
    out: dict[str, dict[str, Any]] = {}
    for i, n in enumerate(names):
        out[n] = {
            "emb": {v: arrays[f"emb_{v}"][i].copy() for v in VARIANTS},
            **{k: arrays[k][i] for k in ("found", "dlib_found", "n_ours", "n_dlib", "dlib_hog")},
            "box_ours": tuple(arrays["box_ours"][i]),
            "box_dlib": tuple(arrays["box_dlib"][i]),
        }
    return out


def save_cache(f: Path, cache: dict[str, dict[str, Any]]) -> None:
    names = list(cache)
    arrays: dict[str, np.ndarray] = {"names": np.asarray(names)}
    for v in VARIANTS:
        arrays[f"emb_{v}"] = np.stack([cache[n]["emb"][v] for n in names])
    for k in ("found", "dlib_found", "n_ours", "n_dlib", "dlib_hog", "box_ours", "box_dlib"):
        arrays[k] = np.asarray([cache[n][k] for n in names])
    tmp = f.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(f)


# -- statistics -----------------------------------------------------------------------------------


def folds_of(same: np.ndarray, k: int = 10) -> np.ndarray:
    """View 2-like folds: the i-th same pair and the i-th different pair go to fold i*k//n."""
    fold = np.empty(len(same), np.int64)
    for flag in (True, False):
        idx = np.nonzero(same == flag)[0]
        fold[idx] = np.arange(len(idx)) * k // len(idx)
    return fold


def cv_correct(d: np.ndarray, same: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """(N,) bool: pair judged right at the threshold fitted on the other folds."""
    from faceunlock.evaluation import metrics

    ok = np.zeros(len(d), bool)
    for k in np.unique(fold):
        tr, te = fold != k, fold == k
        thr = metrics.best_threshold(d[tr], same[tr])
        ok[te] = (d[te] <= thr) == same[te]
    return ok


def bootstrap_auc_se(d: np.ndarray, same: np.ndarray, n: int = 200, seed: int = 0) -> float:
    from faceunlock.evaluation import metrics

    rng = np.random.default_rng(seed)
    pos, neg = np.nonzero(same)[0], np.nonzero(~same)[0]
    aucs = []
    for _ in range(n):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        aucs.append(metrics.roc_auc(d[idx], same[idx]))
    return float(np.std(aucs, ddof=1))


def paired_se(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """Pairs right in ``a`` and wrong in ``b``, the reverse, and the standard error of the
    difference in accuracy (McNemar)."""
    n = len(a)
    ab, ba = int((a & ~b).sum()), int((~a & b).sum())
    var = (ab + ba) - (ab - ba) ** 2 / n
    return ab, ba, math.sqrt(max(var, 0.0)) / n


def read(set_name: str) -> tuple[list[tuple[str, str]], np.ndarray]:
    from faceunlock.evaluation import lfw

    ps = lfw.read_pairs(SHARED / "lfw" / f"pairs{set_name}.txt")
    return ps.pairs, np.asarray(ps.same, bool)


def distances(cache: dict[str, dict[str, Any]], prs: list[tuple[str, str]], v: str) -> np.ndarray:
    a = np.stack([cache[x]["emb"][v] for x, _ in prs]).astype(np.float64)
    b = np.stack([cache[y]["emb"][v] for _, y in prs]).astype(np.float64)
    return np.asarray(np.linalg.norm(a - b, axis=1))


def report(cache: dict[str, dict[str, Any]], sets: list[str]) -> dict[str, Any]:
    from faceunlock.evaluation import metrics

    data = {s: read(s) for s in sets}
    scopes: dict[str, tuple[list[tuple[str, str]], np.ndarray]] = {}
    for s, (prs, same) in data.items():
        # the pairs whose images are described: all of them, or a balanced prefix (an
        # interrupted run; as many same as different pairs, in file order)
        ok = np.asarray([x in cache and y in cache for x, y in prs])
        pos, neg = np.nonzero(same & ok)[0], np.nonzero(~same & ok)[0]
        k = min(len(pos), len(neg))
        if k < 50:
            continue
        keep = sorted([*pos[:k], *neg[:k]]) if not ok.all() else list(range(len(prs)))
        label = s if ok.all() else f"{s} ({2 * k} of {len(prs)} pairs)"
        scopes[label] = ([prs[i] for i in keep], same[keep])
    test = next((x for x in scopes if x.startswith("DevTest")), None)
    train = next((x for x in scopes if x.startswith("DevTrain")), None)
    if test and train:
        (pa, sa), (pb, sb) = scopes[test], scopes[train]
        scopes["View 1, both sets"] = (pa + pb, np.concatenate([sa, sb]))
    out: dict[str, Any] = {"scopes": {}}
    for scope, (prs, same) in scopes.items():
        fold = folds_of(same)
        rows: dict[str, Any] = {}
        ok_ref = None
        d_ref = distances(cache, prs, "dlib")
        ok_ref = cv_correct(d_ref, same, fold)
        ok_ours = cv_correct(distances(cache, prs, "ours"), same, fold)
        for v in VARIANTS:
            d = distances(cache, prs, v)
            ok = cv_correct(d, same, fold)
            accs = [float(ok[fold == k].mean()) for k in range(10)]
            ab, ba, se = paired_se(ok, ok_ref)
            oa, ob, ose = paired_se(ok, ok_ours)
            tar, _ = metrics.tar_at_far(d, same, 1e-3)
            row = {
                "pairs": len(prs),
                "cv_accuracy": float(ok.mean()),
                "cv_accuracy_se": float(np.std(accs, ddof=1) / math.sqrt(10)),
                "vs_dlib_right_only_here": ab,
                "vs_dlib_right_only_dlib": ba,
                "vs_dlib_diff": float(ok.mean() - ok_ref.mean()),
                "vs_dlib_diff_se": se,
                "vs_ours_right_only_here": oa,
                "vs_ours_right_only_ours": ob,
                "vs_ours_diff": float(ok.mean() - ok_ours.mean()),
                "vs_ours_diff_se": ose,
                "auc": metrics.roc_auc(d, same),
                "auc_se": bootstrap_auc_se(d, same),
                "tar_at_far_1e-3": tar,
            }
            if scope == test and train:
                pf, sf = scopes[train]
                thr = metrics.best_threshold(distances(cache, pf, v), sf)
                row["devtest_accuracy_fit_devtrain"] = metrics.accuracy(d, same, thr)
                row["fit_threshold"] = thr
            rows[v] = row
        imgs = sorted({x for p in prs for x in p})
        out["scopes"][scope] = {
            "rows": rows,
            "images": len(imgs),
            "ours_no_face": sum(not cache[n]["found"] for n in imgs),
            "dlib_no_face": sum(not cache[n]["dlib_found"] for n in imgs),
            "dlib_hog_missed": sum(not cache[n]["dlib_hog"] for n in imgs),
            "ours_several_faces": sum(int(cache[n]["n_ours"]) > 1 for n in imgs),
            "dlib_several_faces": sum(int(cache[n]["n_dlib"]) > 1 for n in imgs),
            "box_centre_offset_px_median": float(
                np.median(
                    [
                        math.hypot(
                            (
                                cache[n]["box_ours"][0]
                                + cache[n]["box_ours"][2]
                                - cache[n]["box_dlib"][0]
                                - cache[n]["box_dlib"][2]
                            )
                            / 2,
                            (
                                cache[n]["box_ours"][1]
                                + cache[n]["box_ours"][3]
                                - cache[n]["box_dlib"][1]
                                - cache[n]["box_dlib"][3]
                            )
                            / 2,
                        )
                        for n in imgs
                    ]
                )
            ),
        }
    return out


def markdown(res: dict[str, Any]) -> str:
    lines: list[str] = []
    for scope, sc in res["scopes"].items():
        rows = sc["rows"]
        n = next(iter(rows.values()))["pairs"]
        lines += [
            f"## {scope}: {n} pairs, {sc['images']} images",
            "",
            f"No face: ours {sc['ours_no_face']}, dlib {sc['dlib_no_face']} (HOG missed "
            f"{sc['dlib_hog_missed']}); several faces found: ours "
            f"{sc['ours_several_faces']}, dlib {sc['dlib_several_faces']}; median "
            f"distance between the two selected boxes' centres "
            f"{sc['box_centre_offset_px_median']:.1f} px.",
            "",
        ]
        fit = "devtest_accuracy_fit_devtrain" in next(iter(rows.values()))
        head = (
            "| variant | 10-fold accuracy (SE) | vs ours (SE), pairs +/- | vs dlib (SE), pairs +/- "
            "| AUC (SE) | TAR@FAR1e-3 |"
        )
        lines += [
            head + (" DevTest @ DevTrain threshold |" if fit else ""),
            "|---|---|---|---|---|---|" + ("---|" if fit else ""),
        ]
        for v, r in rows.items():
            line = (
                f"| {v} | {r['cv_accuracy']:.4f} ({r['cv_accuracy_se']:.4f}) | "
                f"{100 * r['vs_ours_diff']:+.2f} pt ({100 * r['vs_ours_diff_se']:.2f}), "
                f"+{r['vs_ours_right_only_here']}/-{r['vs_ours_right_only_ours']} | "
                f"{100 * r['vs_dlib_diff']:+.2f} pt ({100 * r['vs_dlib_diff_se']:.2f}), "
                f"+{r['vs_dlib_right_only_here']}/-{r['vs_dlib_right_only_dlib']} | "
                f"{r['auc']:.4f} ({r['auc_se']:.4f}) | {r['tar_at_far_1e-3']:.3f} |"
            )
            if fit:
                line += f" {r['devtest_accuracy_fit_devtrain']:.4f} |"
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="DevTest,DevTrain", help="View 1 pair files, in order")
    ap.add_argument("--limit", type=int, default=0, help="describe at most N new images")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/faceunlock-view1-decompose"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args()
    from faceunlock.engine.imageio import read_image

    sets = [s for s in a.sets.split(",") if s]
    a.cache.mkdir(parents=True, exist_ok=True)
    cf = a.cache / "cache.npz"
    cache = load_cache(cf)
    if not a.report_only:
        todo: list[str] = []
        seen: set[str] = set(cache)
        for s in sets:
            prs, same = read(s)
            # same and different pairs interleaved: a run cut short covers a balanced prefix
            pos, neg = np.nonzero(same)[0], np.nonzero(~same)[0]
            order = [int(i) for pn in zip(pos, neg, strict=False) for i in pn]
            for i in order:
                for n in prs[i]:
                    if n not in seen:
                        seen.add(n)
                        todo.append(n)
        if a.limit:
            todo = todo[: a.limit]
        desc = Describer() if todo else None
        t0 = time.perf_counter()
        for i, n in enumerate(todo):
            assert desc is not None
            cache[n] = desc.describe(read_image(SHARED / "lfw" / "images" / n))
            if (i + 1) % 100 == 0 or i + 1 == len(todo):
                save_cache(cf, cache)
                print(
                    f"  {i + 1}/{len(todo)} images, {time.perf_counter() - t0:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
    res = report(cache, sets)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "view1_decompose.json").write_text(json.dumps(res, indent=1) + "\n")
    md = markdown(res)
    (a.out / "view1_decompose.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
