"""Build the score-normalisation cohort and fit its FAR table: ``models/cohort-int8.npz``.

    python benchmarks/fit_cohort.py [--precision int8|fp32] [--lfw ../shared/datasets/lfw]
        [--cache /tmp/lfw-center-int8.npz] [--k 50,100,200,400] [--dry-run]

Identities (LFW deep-funneled, centre face, the runtime's embeddings):
- **evaluation people**: every LFW person with at least 8 images (217). They are never in
  the cohort nor in the fitting set, so ``faceunlock eval unlock --gallery lfw/images
  --min-images 8`` measures on people the normalisation has never seen;
- the other **DevTrain** people (peopleDevTrain.txt) are split by a CRC32 of the name:
  even -> the **cohort** (one mean embedding each), odd -> the **fitting set** (every
  cross-identity pair of its images, scored with the cohort, gives the FAR table).
  DevTest people are not used at all.

k (how many nearest cohort identities describe a face) is chosen by validation inside the
fitting set: its people are split again in two (next CRC32 bit); a table fitted on one half
is applied to the other half's pairs, and the k with the lowest false-reject rate at a
per-comparison FAR of 1e-4 wins, among those whose measured FAR stays within 2x of it.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from faceunlock.engine.batch import embed_paths
from faceunlock.engine.calibration import FarTable, fit_far_table
from faceunlock.engine.cohort import COHORT_FILES, ENCODER_KEY, Cohort, pairwise_distances
from faceunlock.engine.modelfile import write_sidecar
from faceunlock.engine.pipeline import Pipeline, PipelineSettings
from faceunlock.evaluation import lfw
from faceunlock.paths import shared_dir

EVAL_MIN_IMAGES = 8
VALIDATION_FAR = 1e-4
HIST = {"start": -15.0, "step": 0.1, "bins": 400}  # normalised scores -15 .. +25


def all_images(root: Path) -> tuple[list[str], list[str]]:
    """(relative paths, person names) of every LFW image, from lfw-names.txt."""
    rels, names = [], []
    for line in (root / "lfw-names.txt").read_text().split("\n"):
        if not line.strip():
            continue
        name, count = line.split()
        for i in range(1, int(count) + 1):
            rels.append(lfw.image_relpath(name, i))
            names.append(name)
    return rels, names


def people(path: Path) -> set[str]:
    lines = path.read_text().split("\n")[1:]
    return {ln.split()[0] for ln in lines if ln.strip()}


def crc_bit(name: str, bit: int) -> int:
    return (zlib.crc32(name.encode()) >> bit) & 1


def pair_scores(
    emb: np.ndarray, names: np.ndarray, cohort: Cohort | None
) -> tuple[np.ndarray, np.ndarray]:
    """(impostor, genuine) scores of every pair i < j: raw distances without a cohort."""
    d = pairwise_distances(emb, emb)
    if cohort is not None:
        mu, sd = cohort.stats(emb)
        d = 0.5 * ((d - mu[:, None]) / sd[:, None] + (d - mu[None, :]) / sd[None, :])
    iu = np.triu_indices(len(emb), 1)
    same = (names[:, None] == names[None, :])[iu]
    s = d[iu]
    return s[~same], s[same]


def histogram(d: np.ndarray) -> dict[str, object]:
    start, step, bins = HIST["start"], HIST["step"], int(HIST["bins"])
    idx = np.clip(((d - start) / step).astype(np.int64), 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)
    return {"start": start, "step": step, "counts": [int(c) for c in counts], "pairs": int(d.size)}


def validate(emb: np.ndarray, names: np.ndarray, cohort: Cohort | None) -> dict[str, float]:
    """Fit on one half of the fitting people, measure on the other (FAR target 1e-4)."""
    half = np.asarray([crc_bit(str(n), 1) for n in names], bool)
    imp_a, _ = pair_scores(emb[half], names[half], cohort)
    imp_b, gen_b = pair_scores(emb[~half], names[~half], cohort)
    thr = fit_far_table(imp_a, targets=(VALIDATION_FAR,)).threshold_for(VALIDATION_FAR)
    return {"far": float(np.mean(imp_b <= thr)), "frr": float(np.mean(gen_b > thr)),
            "impostor_pairs": int(imp_b.size), "genuine_pairs": int(gen_b.size)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, default=shared_dir() / "datasets" / "lfw")
    ap.add_argument("--cache", type=Path, default=None, help="npz cache of the embeddings")
    ap.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    ap.add_argument("--k", default="50,100,200,400", help="k values to validate")
    ap.add_argument("--dry-run", action="store_true", help="print, do not write the cohort")
    args = ap.parse_args()
    pipe = Pipeline(PipelineSettings(precision=args.precision))
    rels, names_l = all_images(args.lfw)
    if args.cache and args.cache.is_file():
        with np.load(args.cache) as z:
            found, emb = z["found"], z["emb"]
    else:
        t0 = time.perf_counter()
        found, emb, _, _ = embed_paths(
            [args.lfw / "images" / r for r in rels], pipe, select="center", label="LFW"
        )
        print(f"embedded {len(rels)} images in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        if args.cache:
            np.savez(args.cache, found=found, emb=emb)
    names = np.asarray(names_l)
    emb = emb[found].astype(np.float32)
    names = names[found]
    counts = {n: int(c) for n, c in zip(*np.unique(names, return_counts=True), strict=True)}
    evaluation = {n for n, c in counts.items() if c >= EVAL_MIN_IMAGES}
    pool = sorted(people(args.lfw / "peopleDevTrain.txt") - evaluation)
    cohort_ids = [n for n in pool if crc_bit(n, 0) == 0 and n in counts]
    fit_ids = {n for n in pool if crc_bit(n, 0) == 1 and n in counts}
    means = np.stack([emb[names == n].mean(axis=0) for n in cohort_ids]).astype(np.float32)
    fit = np.isin(names, sorted(fit_ids))
    femb, fnames = emb[fit], names[fit]
    print(f"{len(evaluation)} evaluation people (excluded), cohort {len(cohort_ids)} people, "
          f"fitting set {len(fit_ids)} people / {int(fit.sum())} images", file=sys.stderr)

    raw = validate(femb, fnames, None)
    print(f"raw distances: validation {raw}", file=sys.stderr)
    validation = {}
    for k in (int(x) for x in args.k.split(",")):
        validation[k] = validate(femb, fnames, Cohort(means, k))
        print(f"k={k}: validation {validation[k]}", file=sys.stderr)
    ok = {k: v for k, v in validation.items() if v["far"] <= 2 * VALIDATION_FAR}
    best = min(ok or validation, key=lambda k: (ok or validation)[k]["frr"])
    cohort = Cohort(means, best)
    imp, gen = pair_scores(femb, fnames, cohort)
    table: FarTable = fit_far_table(
        imp,
        source=f"LFW DevTrain people with fewer than {EVAL_MIN_IMAGES} images whose name's "
        f"CRC32 is odd ({len(fit_ids)} people), all cross-identity pairs, AS-norm scores "
        f"against this cohort (k={best}), {pipe.encoder.path.name}",
    )
    far_json = table.to_json()
    far_json["impostor_histogram"] = histogram(imp)
    far_json["genuine_histogram"] = histogram(gen)
    name = COHORT_FILES[pipe.encoder.path.name]
    out = pipe.encoder.path.with_name(name)
    meta = {
        "file": name,
        "source": (
            "mean embedding of each LFW deep-funneled DevTrain person (peopleDevTrain.txt) "
            f"with fewer than {EVAL_MIN_IMAGES} images whose name's CRC32 is even, centre "
            f"face, computed with {pipe.encoder.path.name} by benchmarks/fit_cohort.py; no "
            "image, name or per-image embedding is stored"
        ),
        "licence": "derived data (mean face descriptors) of the LFW research benchmark; "
                   "shipped under the project's MIT licence",
        "input": {"dtype": "float32", "shape": [len(cohort_ids), int(means.shape[1])],
                  "metric": "euclidean", "scoring": "asnorm"},
        ENCODER_KEY: pipe.encoder.sha256,
        "k": best,
        "identities": len(cohort_ids),
        "validation": {"far_target": VALIDATION_FAR, "raw": raw,
                       **{f"k={k}": v for k, v in validation.items()}},
        "far_table": far_json,
    }
    summary = {k: v for k, v in meta.items() if k != "far_table"} | {"far_table": table.to_json()}
    print(json.dumps(summary, indent=2))
    if not args.dry_run:
        buf = io.BytesIO()
        np.savez(buf, means=means)
        out.write_bytes(buf.getvalue())
        write_sidecar(out, meta)
        print(f"wrote {out} and its sidecar", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
