"""Fit the encoder's FAR table on LFW DevTrain and store it in ``models/encoder.onnx.json``.

    python benchmarks/fit_far_table.py [--precision int8|fp32] [--lfw ../shared/datasets/lfw]
        [--cache /tmp/devtrain.npz] [--chips /tmp/faceunlock-chips/devtrain-people.npz]

Embeds every image of the DevTrain people (peopleDevTrain.txt, 9,525 images), takes every
cross-identity pair as an impostor comparison (~45 M), fits the table with
:func:`faceunlock.engine.calibration.fit_far_table`, and also records the accuracy-optimal
threshold on pairsDevTrain. DevTest is never touched here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from faceunlock.engine.batch import embed_paths
from faceunlock.engine.calibration import fit_far_table
from faceunlock.engine.modelfile import sidecar_path, write_sidecar
from faceunlock.engine.pipeline import Pipeline, PipelineSettings
from faceunlock.evaluation import lfw, metrics
from faceunlock.paths import shared_dir


def devtrain_images(root: Path) -> tuple[list[str], np.ndarray]:
    rels, labels = [], []
    lines = (root / "peopleDevTrain.txt").read_text().split("\n")[1:]
    for ident, line in enumerate(ln for ln in lines if ln.strip()):
        name, count = line.split()
        for i in range(1, int(count) + 1):
            rels.append(lfw.image_relpath(name, i))
            labels.append(ident)
    return rels, np.asarray(labels)


def impostor_distances(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Every cross-identity pair distance (i < j), computed in row blocks."""
    e = emb.astype(np.float32)
    sq = (e * e).sum(1)
    out = []
    for s in range(0, e.shape[0], 1024):
        blk = e[s : s + 1024]
        d2 = sq[s : s + 1024, None] + sq[None, :] - 2.0 * blk @ e.T
        d = np.sqrt(np.maximum(d2, 0.0))
        rows = np.arange(s, s + blk.shape[0])[:, None]
        mask = (np.arange(e.shape[0])[None, :] > rows) & (
            labels[s : s + 1024, None] != labels[None, :]
        )
        out.append(d[mask])
    return np.concatenate(out)


HIST_STEP = 0.01
HIST_BINS = 150  # distances 0.00 .. 1.50


def genuine_distances(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Every same-identity pair distance (i < j)."""
    out = []
    for lab in np.unique(labels):
        e = emb[labels == lab].astype(np.float32)
        if len(e) < 2:
            continue
        d = np.sqrt(np.maximum(((e[:, None, :] - e[None, :, :]) ** 2).sum(-1), 0.0))
        out.append(d[np.triu_indices(len(e), 1)])
    return np.concatenate(out)


def histogram(d: np.ndarray) -> dict[str, object]:
    """Counts in HIST_BINS bins of HIST_STEP from 0 (the last bin also takes everything above):
    the distributions the wizard's calibration plot draws."""
    idx = np.minimum((d / HIST_STEP).astype(np.int64), HIST_BINS - 1)
    counts = np.bincount(idx, minlength=HIST_BINS)
    return {"start": 0.0, "step": HIST_STEP, "counts": [int(c) for c in counts],
            "pairs": int(d.size)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, default=shared_dir() / "datasets" / "lfw")
    ap.add_argument("--cache", type=Path, default=None, help="npz cache of the embeddings")
    ap.add_argument("--dry-run", action="store_true", help="print, do not write the sidecar")
    ap.add_argument("--precision", choices=("int8", "fp32"), default="int8",
                    help="which encoder's sidecar to fit (encoder-int8.onnx or encoder.onnx)")
    ap.add_argument("--chips", type=Path, default=None,
                    help="a training chip cache (faceunlock.training.data) holding the DevTrain "
                         "chips: embeds those instead of detecting and aligning again")
    args = ap.parse_args()
    pipe = Pipeline(PipelineSettings(precision=args.precision))
    rels, labels = devtrain_images(args.lfw)
    if args.cache and args.cache.is_file():
        emb = np.load(args.cache)["emb"]
    else:
        if args.chips:
            with np.load(args.chips, allow_pickle=False) as z:
                row = {str(p): i for i, p in enumerate(z["paths"])}
                missing = [r for r in rels if r not in row]
                if missing:
                    raise SystemExit(f"{args.chips} lacks {len(missing)} DevTrain images")
                chips = z["chips"][np.asarray([row[r] for r in rels])]
            emb = np.concatenate([pipe.embed_chips(chips[i : i + 64])
                                  for i in range(0, len(chips), 64)])
        else:
            t0 = time.perf_counter()
            _, emb, _, fb = embed_paths(
                [args.lfw / "images" / r for r in rels],
                pipe,
                select="center",
                fallback_center=True,
                label="DevTrain",
            )
            print(
                f"embedded {len(rels)} images in {time.perf_counter() - t0:.0f} s, "
                f"{int(fb.sum())} with the central fallback box",
                file=sys.stderr,
            )
        if args.cache:
            np.savez(args.cache, emb=emb, labels=labels)
    imp = impostor_distances(emb, labels)
    table = fit_far_table(
        imp,
        source="LFW DevTrain (peopleDevTrain.txt), all cross-identity "
        "pairs, centre face, embeddings of the 1.05-zoomed chip averaged with its mirror, "
        f"{pipe.encoder.path.name}",
    )
    # accuracy-optimal threshold on pairsDevTrain (same embeddings)
    pairs = lfw.read_pairs(args.lfw / "pairsDevTrain.txt")
    index = {r: i for i, r in enumerate(rels)}
    table_emb = {r: emb[index[r]] for r in pairs.images() if r in index}
    missing = [r for r in pairs.images() if r not in index]
    if missing:
        _, extra, _, _ = embed_paths(
            [args.lfw / "images" / r for r in missing],
            pipe,
            select="center",
            fallback_center=True,
            label="pairs",
        )
        table_emb.update(zip(missing, extra, strict=True))
    d = lfw.pair_distances(pairs, table_emb)
    thr = metrics.best_threshold(d, pairs.same)
    far_json = table.to_json()
    far_json["impostor_histogram"] = histogram(imp)
    far_json["genuine_histogram"] = histogram(genuine_distances(emb, labels))
    result = {
        "far_table": far_json,
        "lfw_devtrain": {
            "threshold": round(thr, 6),
            "accuracy": metrics.accuracy(d, pairs.same, thr),
            "flip_average": True,
            "zoom": pipe.settings.zoom,
        },
    }
    print(json.dumps({k: v for k, v in result.items() if k != "far_table"}
                     | {"far_table": table.to_json()}, indent=2))
    if not args.dry_run:
        model = pipe.encoder.path
        meta = json.loads(sidecar_path(model).read_text())
        meta.pop("far_table_note", None)
        meta.update(result)
        meta["default_threshold"] = round(thr, 4)
        write_sidecar(model, meta)
        print(f"updated {sidecar_path(model)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
