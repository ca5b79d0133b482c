"""``faceunlock eval unlock``: the face-unlock protocol on a gallery of identity folders.

For every identity folder (with at least ``min_images`` images), the first K images (sorted
by name) are enrolled as anchors and every later image is a genuine probe. Each probe is
also an impostor attempt against every *other* identity's template. A probe's score against
a template is its smallest distance to that template's anchors, exactly the score the
unlock decision uses for one frame.

Reported: failure-to-enrol (an identity with a face in fewer than K of its first K images),
failure-to-acquire (probes with no face), FRR at FAR 1e-3/1e-4/1e-5 with the thresholds
giving them, and FAR/FRR at the calibrated threshold of each security level.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from faceunlock.engine import calibration as cal
from faceunlock.engine.modelfile import load_sidecar
from faceunlock.engine.pipeline import Pipeline, PipelineSettings
from faceunlock.errors import InputError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def gallery(root: Path, min_images: int) -> dict[str, list[Path]]:
    if not root.is_dir():
        raise InputError(f"--gallery {root}: not a directory")
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        imgs = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if len(imgs) >= min_images:
            out[d.name] = imgs
    if len(out) < 2:
        raise InputError(
            f"--gallery {root}: need at least 2 identity folders with "
            f">= {min_images} images, found {len(out)}"
        )
    return out


def frr_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> dict[str, float]:
    imp = np.sort(impostor)
    k = int(np.floor(far * imp.size + 1e-9))
    thr = float(imp[0] - 1e-9) if k == 0 else float((imp[k - 1] + imp[min(k, imp.size - 1)]) / 2)
    return {
        "far_target": far,
        "threshold": round(thr, 5),
        "far": float(np.mean(impostor <= thr)),
        "frr": float(np.mean(genuine > thr)),
        "impostor_below": int(np.sum(impostor <= thr)),
    }


def run(root: Path, k: int, settings: PipelineSettings, min_images: int = 0) -> dict[str, Any]:
    from faceunlock.cli import embed_paths

    if k < 1:
        raise InputError("--anchors must be at least 1")
    ids = gallery(root, max(min_images, k + 1))
    pipe = Pipeline(settings)
    t0 = time.perf_counter()
    paths = [p for imgs in ids.values() for p in imgs]
    found, emb, _, _ = embed_paths(paths, pipe, select="center", label="eval unlock")
    elapsed = time.perf_counter() - t0
    templates: list[np.ndarray] = []
    probes: list[tuple[int, np.ndarray]] = []
    fte = 0
    missed = 0
    i = 0
    for imgs in ids.values():
        f = found[i : i + len(imgs)]
        e = emb[i : i + len(imgs)]
        i += len(imgs)
        if f[:k].sum() < k:
            fte += 1
            templates.append(np.zeros((0, emb.shape[1]), np.float32))
        else:
            templates.append(e[:k])
        for j in range(k, len(imgs)):
            if f[j]:
                probes.append((len(templates) - 1, e[j]))
            else:
                missed += 1
    gen: list[float] = []
    imp: list[float] = []
    for owner, vec in probes:
        for t_idx, anchors in enumerate(templates):
            if not len(anchors):
                continue
            s = float(cal.scores_to_anchors(vec[None], anchors)[0])
            (gen if t_idx == owner else imp).append(s)
    g = np.asarray(gen)
    m = np.asarray(imp)
    table = cal.FarTable.from_json(load_sidecar(pipe.encoder.path)["far_table"])
    levels = {}
    for level in cal.SECURITY_LEVELS:
        _, per_cmp = cal.per_comparison_target(level, k)
        thr = table.threshold_for(per_cmp)
        levels[level] = {
            "threshold": round(thr, 5),
            "far": float(np.mean(m <= thr)),
            "frr": float(np.mean(g > thr)),
            "impostor_accepts": int(np.sum(m <= thr)),
        }
    return {
        "identities": len(ids),
        "anchors": k,
        "images": len(paths),
        "failure_to_enrol": fte,
        "probes_without_face": missed,
        "genuine_attempts": int(g.size),
        "impostor_attempts": int(m.size),
        "frr_at_far": [frr_at_far(g, m, f) for f in (1e-3, 1e-4, 1e-5)],
        "calibrated": levels,
        "seconds": round(elapsed, 1),
        "note": "one probe image = one single-frame attempt; the k-of-n rule is not applied",
    }


def format_report(res: dict[str, Any]) -> str:
    lines = [
        f"{res['identities']} identities, {res['anchors']} anchors each, "
        f"{res['genuine_attempts']} genuine and {res['impostor_attempts']} impostor attempts",
        f"failure to enrol: {res['failure_to_enrol']}, probes without a face: "
        f"{res['probes_without_face']}",
    ]
    for r in res["frr_at_far"]:
        lines.append(
            f"FAR {r['far_target']:g}: FRR {r['frr']:.4f} at threshold {r['threshold']:.4f}"
        )
    for lvl, r in res["calibrated"].items():
        lines.append(
            f"{lvl:<11} threshold {r['threshold']:.4f}: FAR {r['far']:.2e} "
            f"({r['impostor_accepts']} accepts), FRR {r['frr']:.4f}"
        )
    return "\n".join(lines)
