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
from faceunlock.engine.cohort import ASNORM, RAW, Matcher, cohort_for
from faceunlock.engine.imageio import IMAGE_SUFFIXES
from faceunlock.engine.modelfile import load_sidecar
from faceunlock.engine.pipeline import Pipeline, PipelineSettings
from faceunlock.errors import InputError


def gallery(root: Path, min_images: int) -> dict[str, list[Path]]:
    if not root.is_dir():
        raise InputError(f"--gallery {root}: not a directory")
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        imgs = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
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
    from faceunlock.engine.batch import embed_paths

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
    owners = np.asarray([o for o, _ in probes], np.int64)
    vecs = np.stack([v for _, v in probes]) if probes else np.zeros((0, emb.shape[1]), np.float32)
    enrolled = [t for t, a in enumerate(templates) if len(a)]
    genuine_mask = owners[:, None] == np.asarray(enrolled)[None, :]  # (P, T)
    c = cohort_for(pipe.encoder.path, pipe.encoder.sha256)
    tables = {RAW: cal.FarTable.from_json(load_sidecar(pipe.encoder.path)["far_table"])}
    if c is not None and "far_table" in c.meta:
        tables[ASNORM] = cal.FarTable.from_json(c.meta["far_table"])
    strata = identity_strata(np.stack([templates[t].mean(axis=0) for t in enrolled]))
    scoring: dict[str, Any] = {}
    for name, table in tables.items():
        scores = np.stack(
            [Matcher(templates[t], c if name == ASNORM else None).scores(vecs) for t in enrolled],
            axis=1,
        )  # (P, T): each probe's frame score against each enrolled template
        scoring[name] = score_report(scores, genuine_mask, owners, enrolled, strata, table, k)
    g = scoring[RAW]["_genuine"]
    m = scoring[RAW]["_impostor"]
    for rep in scoring.values():
        rep.pop("_genuine")
        rep.pop("_impostor")
    best = ASNORM if ASNORM in scoring else RAW
    return {
        "identities": len(ids),
        "anchors": k,
        "images": len(paths),
        "failure_to_enrol": fte,
        "probes_without_face": missed,
        "genuine_attempts": int(g.size),
        "impostor_attempts": int(m.size),
        "population": POPULATION_NOTE,
        "scoring": best,
        "frr_at_far": scoring[best]["frr_at_far"],
        "calibrated": scoring[best]["calibrated"],
        "by_scoring": scoring,
        "strata": int(strata.max()) + 1,
        "seconds": round(elapsed, 1),
        "note": "one probe image = one single-frame attempt; the k-of-n rule is not applied",
    }


#: what the measured rates describe (shown with them)
POPULATION_NOTE = (
    "the identities of --gallery: per-level FAR holds for people like them, photographed "
    "like them; 'worst stratum' is the highest FAR among groups of look-alike identities "
    "(k-means of their mean embeddings), where a family or one demographic group would fall"
)
#: look-alike groups for the worst-stratum FAR
N_STRATA = 6
#: fewer impostor attempts than this many per expected false accept: the FAR is a guess
MIN_ATTEMPTS_PER_ACCEPT = 10


def identity_strata(means: np.ndarray, n: int = N_STRATA, iters: int = 50) -> np.ndarray:
    """Look-alike groups: k-means (seeded, deterministic) of identity mean embeddings,
    (T, D) -> (T,) int labels."""
    n = max(1, min(n, len(means)))
    rng = np.random.default_rng(0)
    centres = means[rng.choice(len(means), n, replace=False)]
    labels = np.zeros(len(means), np.int64)
    for _ in range(iters):
        d = ((means[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        labels = d.argmin(axis=1)
        centres = np.stack(
            [means[labels == j].mean(axis=0) if np.any(labels == j) else centres[j]
             for j in range(n)]
        )
    return labels


def score_report(
    scores: np.ndarray,
    genuine_mask: np.ndarray,
    owners: np.ndarray,
    enrolled: list[int],
    strata: np.ndarray,
    table: cal.FarTable,
    k: int,
) -> dict[str, Any]:
    """FRR at fixed FARs and the calibrated levels (overall and worst stratum) of one scoring.

    scores: (P, T) probe x enrolled-template frame scores; genuine_mask: (P, T) bool."""
    g = scores[genuine_mask]
    m = scores[~genuine_mask]
    col = {t: j for j, t in enumerate(enrolled)}
    probe_stratum = np.asarray([strata[col[o]] if o in col else -1 for o in owners])
    levels = {}
    for level in cal.SECURITY_LEVELS:
        target, per_cmp = cal.per_comparison_target(level, k)
        thr = table.threshold_for(per_cmp)
        accept = scores <= thr
        worst = {"far": 0.0, "impostor_attempts": 0, "impostor_accepts": 0}
        for s in range(int(strata.max()) + 1):
            block = np.ix_(probe_stratum == s, strata == s)
            imp = ~genuine_mask[block]
            n_imp = int(imp.sum())
            if n_imp and accept[block][imp].mean() >= worst["far"]:
                acc = int(accept[block][imp].sum())
                worst = {"far": acc / n_imp, "impostor_attempts": n_imp, "impostor_accepts": acc}
        entry: dict[str, Any] = {
            "threshold": round(thr, 5),
            "far_target": target,
            "far": float(np.mean(m <= thr)),
            "frr": float(np.mean(g > thr)),
            "impostor_accepts": int(np.sum(m <= thr)),
            "worst_stratum": worst,
        }
        if m.size * target < MIN_ATTEMPTS_PER_ACCEPT:
            entry["caveat"] = (
                f"only {m.size} impostor attempts for a target of {target:g}: "
                f"at least {MIN_ATTEMPTS_PER_ACCEPT / target:.0f} are needed to measure it"
            )
        levels[level] = entry
    return {
        "frr_at_far": [frr_at_far(g, m, f) for f in (1e-3, 1e-4, 1e-5)],
        "calibrated": levels,
        "_genuine": g,
        "_impostor": m,
    }


def format_report(res: dict[str, Any]) -> str:
    lines = [
        f"{res['identities']} identities, {res['anchors']} anchors each, "
        f"{res['genuine_attempts']} genuine and {res['impostor_attempts']} impostor attempts",
        f"failure to enrol: {res['failure_to_enrol']}, probes without a face: "
        f"{res['probes_without_face']}",
        f"population: {res['population']}",
    ]
    for name, rep in res["by_scoring"].items():
        used = " (used for unlock)" if name == res["scoring"] else ""
        lines.append(f"-- {name} scores{used}")
        for r in rep["frr_at_far"]:
            lines.append(
                f"FAR {r['far_target']:g}: FRR {r['frr']:.4f} at threshold {r['threshold']:.4f}"
            )
        for lvl, r in rep["calibrated"].items():
            w = r["worst_stratum"]
            lines.append(
                f"{lvl:<11} threshold {r['threshold']:.4f}: FAR {r['far']:.2e} "
                f"({r['impostor_accepts']} accepts; target {r['far_target']:g}), "
                f"FRR {r['frr']:.4f}; worst stratum FAR {w['far']:.2e} "
                f"({w['impostor_accepts']} of {w['impostor_attempts']})"
            )
            if "caveat" in r:
                lines.append(f"{'':<12}caveat: {r['caveat']}")
    return "\n".join(lines)
