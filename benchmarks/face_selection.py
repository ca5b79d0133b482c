"""Which face an image's embedding describes when it shows several: the selection rules of
``faceunlock embed --select`` on LFW View 1.

    nice python benchmarks/face_selection.py [--cache /tmp/faceunlock-face-selection.pkl]
        [--out benchmarks/results]

Every image of View 1 (DevTrain and DevTest) is observed once with the default pipeline, all
faces kept (box and embedding); each rule of
:func:`faceunlock.engine.pipeline.select_detections` (``largest``, ``whole``, ``center``) then
picks one face per image, and the pairs are scored: 10-fold accuracy (the threshold of each
fold fitted on the other nine) per pair set, and the number of images where the rule's pick
differs from the central face. The rule was chosen on DevTrain; DevTest is for reporting.
Writes ``face_selection.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/faceunlock-face-selection.pkl"))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    a = ap.parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from faceunlock.app import service
    from faceunlock.config import Config
    from faceunlock.engine.imageio import read_image
    from faceunlock.engine.pipeline import select_detections
    from faceunlock.evaluation.lfw import evaluate, pair_distances, read_pairs
    from faceunlock.paths import shared_dir

    lfw = shared_dir() / "datasets" / "lfw"
    # View 1 has no folds: fold by pair index, so evaluate() runs its 10-fold protocol
    sets = {}
    for name in ("DevTrain", "DevTest"):
        ps = read_pairs(lfw / f"pairs{name}.txt")
        sets[name] = dataclasses.replace(ps, fold=np.arange(len(ps.pairs)) % 10)
    images = sorted({p for ps in sets.values() for p in ps.images()})
    faces: dict[str, Any] = pickle.loads(a.cache.read_bytes()) if a.cache.exists() else {}
    pipe = service.pipeline_for(Config())
    for i, p in enumerate(x for x in images if x not in faces):
        im = read_image(lfw / "images" / p)
        faces[p] = (im.shape[:2], [(tuple(map(float, o.box)), o.embedding.copy())
                                   for o in pipe.observe(im, select="all")])
        if i % 500 == 499:
            a.cache.write_bytes(pickle.dumps(faces))
            print(f"{i + 1} images", file=sys.stderr)
    a.cache.write_bytes(pickle.dumps(faces))

    def pick(rule: str, shape: Any, fs: list[Any]) -> int:
        dets = [SimpleNamespace(box=b) for b, _ in fs]
        chosen = select_detections(dets, shape, rule)  # type: ignore[arg-type]
        return dets.index(chosen[0])

    res: dict[str, Any] = {
        "images": len(images),
        "several_faces": sum(len(faces[p][1]) > 1 for p in images),
        "no_face": sum(not faces[p][1] for p in images),
        "rules": {},
    }
    for rule in ("largest", "whole", "center"):
        idx = {p: pick(rule, *faces[p]) for p in images if faces[p][1]}
        emb = {p: faces[p][1][idx[p]][1] if p in idx else np.zeros(128, np.float32)
               for p in images}
        row: dict[str, Any] = {"differs_from_center": sum(
            idx[p] != pick("center", *faces[p]) for p in idx)}
        for name, ps in sets.items():
            row[f"{name}_10fold"] = round(evaluate(ps, pair_distances(ps, emb))["accuracy"], 4)
        res["rules"][rule] = row
        print(rule, row)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "face_selection.json").write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
