"""Five-point face landmarks: a numpy port of dlib's ``shape_predictor`` (Kazemi & Sullivan
ensemble of regression trees), bit-exact with ``dlib.shape_predictor`` on the same box.

The model is ``models/landmarks5.npz``, converted from dlib's CC0
``shape_predictor_5_face_landmarks.dat`` by :mod:`faceunlock.training.dlib.shape` (which
documents the array layout). The five points, in order: right-eye outer corner, right-eye
inner corner, left-eye outer corner, left-eye inner corner, nose base ("right" is the
subject's right, i.e. the left side of an unmirrored image).

Coordinates: ``x`` is the column and ``y`` the row, in pixels, with pixel centres on
integers (pixel ``(x, y)`` is ``image[y, x]``).

Face boxes are ``(left, top, right, bottom)`` in dlib's ``rectangle`` convention:
``right``/``bottom`` are the *inclusive* last column/row, so a box ``w`` pixels wide starting
at column ``x`` has ``right = x + w - 1`` (dlib's ``rect.width()`` is ``right - left + 1``).
The predictor maps its unit square onto the corners: normalised ``(u, v)`` goes to
``(left + u * (right - left), top + v * (bottom - top))``, exactly as dlib's
``unnormalizing_tform(rect)``. Fractional coordinates are used as given (no rounding); dlib
itself only takes integer rectangles, so integer boxes reproduce dlib bit for bit. To mimic
dlib on a ``drectangle``, round each coordinate with ``floor(v + 0.5)`` first.

What makes it bit-exact (see ``docs/model-formats.md``): grey = (r+g+b)//3; the
shape-to-shape similarity is fitted in float64 and cast to a float32 2x2 matrix applied as
``a00*dx + a01*dy`` (no fused multiply-add) plus the anchor point in float32; the box mapping
in closed form in float64; rounding to pixels by ``floor(x + 0.5)`` with out-of-image pixels
reading 0; leaf vectors added one tree at a time in float32 (``cumsum`` is sequential). The
output points are rounded to whole pixels, as dlib returns them.
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faceunlock.engine.imageio import as_rgb_u8
from faceunlock.engine.modelfile import load_model_bytes, resolve_model
from faceunlock.errors import InputError, ModelError

MODEL_NAME = "landmarks5.npz"
FORMAT_VERSION = 1
N_POINTS = 5
POINT_NAMES = (
    "right_eye_outer",
    "right_eye_inner",
    "left_eye_outer",
    "left_eye_inner",
    "nose_base",
)
_MAX_COORD = float(2**30)
_KEYS = (
    "format_version",
    "initial_shape",
    "split_idx1",
    "split_idx2",
    "split_thresh",
    "leaf_values",
    "anchor_idx",
    "deltas",
)


class _Model:
    """The arrays of a loaded model, rearranged for the vectorised walk."""

    def __init__(self, arrays: dict[str, np.ndarray], path: Path) -> None:
        def bad(problem: str) -> ModelError:
            return ModelError(path, problem)

        version = arrays["format_version"]
        if version.shape != () or version.dtype.kind not in "iu" or int(version) != FORMAT_VERSION:
            raise bad(f"format_version is {version!r}, this FaceUnlock reads {FORMAT_VERSION}")
        idx1 = arrays["split_idx1"]
        if idx1.ndim != 3 or 0 in idx1.shape:
            raise bad(f"split_idx1 has shape {idx1.shape}, expected (cascades, trees, splits)")
        n_casc, n_trees, n_splits = idx1.shape
        depth = int(n_splits + 1).bit_length() - 1
        if (1 << depth) != n_splits + 1:
            raise bad(f"trees have {n_splits} splits: not a complete binary tree")
        anchor = arrays["anchor_idx"]
        if anchor.ndim != 2 or anchor.shape[0] != n_casc or anchor.shape[1] == 0:
            raise bad(f"anchor_idx has shape {anchor.shape}, expected ({n_casc}, features)")
        n_feat = anchor.shape[1]
        want = {
            "initial_shape": ((N_POINTS, 2), np.float32),
            "split_idx1": ((n_casc, n_trees, n_splits), np.int32),
            "split_idx2": ((n_casc, n_trees, n_splits), np.int32),
            "split_thresh": ((n_casc, n_trees, n_splits), np.float32),
            "leaf_values": ((n_casc, n_trees, n_splits + 1, N_POINTS, 2), np.float32),
            "anchor_idx": ((n_casc, n_feat), np.int32),
            "deltas": ((n_casc, n_feat, 2), np.float32),
        }
        for key, (shape, dtype) in want.items():
            a = arrays[key]
            if a.shape != shape:
                raise bad(f"array {key!r} has shape {a.shape}, expected {shape}")
            if a.dtype != dtype:
                raise bad(f"array {key!r} has dtype {a.dtype}, expected {np.dtype(dtype)}")
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise bad(f"array {key!r} holds non-finite values")
        for key in ("split_idx1", "split_idx2"):
            a = arrays[key]
            if a.min() < 0 or a.max() >= n_feat:
                raise bad(f"array {key!r} indexes outside the {n_feat} feature pixels")
        if anchor.min() < 0 or anchor.max() >= N_POINTS:
            raise bad(f"array 'anchor_idx' indexes outside the {N_POINTS} landmarks")

        self.n_cascades = n_casc
        self.n_trees = n_trees
        self.n_splits = n_splits
        self.depth = depth
        self.n_features = n_feat
        init = np.ascontiguousarray(arrays["initial_shape"], dtype=np.float32)
        self.initial = init
        self.initial_c64 = init.astype(np.float64) - init.astype(np.float64).mean(axis=0)
        self.initial_ss = float(np.sum(self.initial_c64**2))  # N_POINTS * variance
        # Split arrays flattened per cascade: node k of tree t is entry t*S + k.
        self.idx1 = np.ascontiguousarray(idx1.reshape(n_casc, -1), dtype=np.intp)
        self.idx2 = np.ascontiguousarray(arrays["split_idx2"].reshape(n_casc, -1), dtype=np.intp)
        self.thresh = np.ascontiguousarray(arrays["split_thresh"].reshape(n_casc, -1))
        # Leaves flattened per cascade: leaf j of tree t is row t*L + j, (2P,) = x0 y0 x1 ...
        self.leaves = np.ascontiguousarray(
            arrays["leaf_values"].reshape(n_casc, n_trees * (n_splits + 1), 2 * N_POINTS)
        )
        self.anchor = np.ascontiguousarray(anchor, dtype=np.intp)
        self.dx = np.ascontiguousarray(arrays["deltas"][:, :, 0])
        self.dy = np.ascontiguousarray(arrays["deltas"][:, :, 1])
        self.tree_base = np.arange(n_trees, dtype=np.intp) * n_splits
        self.leaf_base = np.arange(n_trees, dtype=np.intp) * (n_splits + 1)


def _parse_npz(data: bytes, path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            missing = [k for k in _KEYS if k not in npz.files]
            if missing:
                raise ModelError(path, f"npz lacks arrays: {', '.join(missing)}")
            return {k: npz[k] for k in _KEYS}
    except ModelError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise ModelError(path, f"not a readable landmarks npz ({type(e).__name__}: {e})") from e


def _check_boxes(boxes: np.ndarray) -> np.ndarray:
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InputError(f"boxes: expected shape (N, 4) of (left, top, right, bottom), "
                         f"got {boxes.shape}")
    if not np.all(np.isfinite(boxes)):
        raise InputError("boxes: coordinates must be finite")
    if np.any(np.abs(boxes) > _MAX_COORD):
        raise InputError(f"boxes: coordinates beyond ±{_MAX_COORD:.0f}")
    if np.any(boxes[:, 2] <= boxes[:, 0]) or np.any(boxes[:, 3] <= boxes[:, 1]):
        raise InputError("boxes: need right > left and bottom > top")
    return boxes


def _as_boxes(boxes: object, single: bool) -> np.ndarray:
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as e:
        what = "box" if single else "boxes"
        raise InputError(f"{what}: not numeric ({e})") from e
    if single:
        if arr.shape != (4,):
            raise InputError(f"box: expected 4 numbers (left, top, right, bottom), "
                             f"got shape {arr.shape}")
        arr = arr[None, :]
    elif arr.shape in ((0,), (0, 4)):  # no faces
        return np.zeros((0, 4), dtype=np.float64)
    return _check_boxes(arr)


class LandmarkPredictor:
    """dlib-compatible 5-point landmark predictor (pure numpy, thread-safe after loading).

    ``model_path`` defaults to ``models_dir()/landmarks5.npz``. Nothing is read until the
    first prediction (or :meth:`load`); a missing, corrupt or mismatched model raises
    :class:`~faceunlock.errors.ModelError` naming the file.
    """

    def __init__(self, model_path: str | Path | None = None) -> None:
        self.model_path = resolve_model(model_path, MODEL_NAME)
        self._model: _Model | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Read and validate the model now (idempotent)."""
        self._get()

    def _get(self) -> _Model:
        model = self._model
        if model is not None:
            return model
        with self._lock:
            if self._model is None:
                data, _meta = load_model_bytes(self.model_path)
                self._model = _Model(_parse_npz(data, self.model_path), self.model_path)
            return self._model

    def predict(
        self, image: np.ndarray, box: Sequence[float] | np.ndarray
    ) -> np.ndarray:
        """Landmarks of the face in ``box``.

        ``image``: RGB uint8 (H, W, 3) (or greyscale (H, W)). ``box``: (left, top, right,
        bottom) in dlib's inclusive-corner convention (module docstring). Returns a float32
        (5, 2) array of (x, y) pixel positions (whole numbers, as dlib rounds them), ordered
        as :data:`POINT_NAMES`. Raises InputError for a bad image or box.
        """
        return self._run(image, _as_boxes(box, single=True))[0]

    def predict_many(
        self, image: np.ndarray, boxes: Sequence[Sequence[float]] | np.ndarray
    ) -> np.ndarray:
        """Landmarks for several boxes in one image: float32 (N, 5, 2); N may be 0."""
        return self._run(image, _as_boxes(boxes, single=False))

    def _run(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        img = as_rgb_u8(image)
        model = self._get()
        if boxes.shape[0] == 0:
            return np.zeros((0, N_POINTS, 2), dtype=np.float32)
        shape = _walk(model, img, boxes)
        return _to_image(shape, boxes).astype(np.float32)


def _similarity_2x2(model: _Model, cur: np.ndarray) -> np.ndarray:
    """float32 (N, 2, 2): the linear part of the least-squares similarity that maps the
    initial shape onto each current shape (dlib's ``find_similarity_transform``, closed form).
    """
    to = cur.astype(np.float64)
    to -= to.sum(axis=1, keepdims=True) / N_POINTS
    fr = model.initial_c64
    # cov = mean over points of to ⊗ from; a = (cov00 + cov11)/var, b = (cov10 - cov01)/var
    # (the Umeyama solution dlib computes by SVD, in closed form for 2-D)
    tx = to[:, :, 0]
    ty = to[:, :, 1]
    a = (tx @ fr[:, 0] + ty @ fr[:, 1]) / model.initial_ss
    b = (ty @ fr[:, 0] - tx @ fr[:, 1]) / model.initial_ss
    m = np.empty((cur.shape[0], 2, 2), dtype=np.float64)
    m[:, 0, 0] = a
    m[:, 0, 1] = -b
    m[:, 1, 0] = b
    m[:, 1, 1] = a
    return m.astype(np.float32)


def _walk(model: _Model, img: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Run the cascades; returns the float32 (N, 5, 2) shapes in box-normalised units."""
    h, w = img.shape[:2]
    flat = img.reshape(-1, 3)
    n = boxes.shape[0]
    left = boxes[:, 0:1]
    top = boxes[:, 1:2]
    bw = boxes[:, 2:3] - left
    bh = boxes[:, 3:4] - top
    split_base = model.tree_base + np.arange(n, dtype=np.intp)[:, None] * model.thresh.shape[1]
    cur = np.repeat(model.initial[None], n, axis=0)  # (N, P, 2) float32
    s = model.n_splits
    for c in range(model.n_cascades):
        m = _similarity_2x2(model, cur)
        anchor = model.anchor[c]
        dx = model.dx[c]
        dy = model.dy[c]
        ax = cur[:, anchor, 0]
        ay = cur[:, anchor, 1]
        # float32 throughout, each product rounded separately (no FMA), as dlib computes it
        px = (m[:, 0, 0:1] * dx + m[:, 0, 1:2] * dy) + ax
        py = (m[:, 1, 0:1] * dx + m[:, 1, 1:2] * dy) + ay
        ix = np.floor(px.astype(np.float64) * bw + left + 0.5)
        iy = np.floor(py.astype(np.float64) * bh + top + 0.5)
        inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        pos = np.where(inside, iy * w + ix, 0).astype(np.intp)
        rgb = flat[pos].astype(np.int16)  # (N, F, 3)
        grey = (rgb[..., 0] + rgb[..., 1] + rgb[..., 2]) // 3
        grey *= inside
        feat = grey.astype(np.float32)

        # Evaluate every split of every tree at once (T*S tests), then walk the trees by
        # indexing the outcomes: node i goes to 2i+1 when its test is true, else to 2i+2.
        go = (feat[:, model.idx1[c]] - feat[:, model.idx2[c]] > model.thresh[c]).ravel()
        node = np.zeros((n, model.n_trees), dtype=np.intp)
        for _ in range(model.depth):
            node = 2 * node + 2 - go[split_base + node]
        leaf = model.leaf_base + (node - s)
        inc = model.leaves[c][leaf]  # (N, T, 2P)
        seq = np.concatenate([cur.reshape(n, 1, -1), inc], axis=1)
        cur = np.cumsum(seq, axis=1, dtype=np.float32)[:, -1].reshape(n, N_POINTS, 2)
    return cur


def _to_image(shape: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Box-normalised float32 (N, P, 2) -> whole image pixels, float64 (N, P, 2)."""
    out = np.empty(shape.shape, dtype=np.float64)
    s = shape.astype(np.float64)
    out[..., 0] = np.floor(s[..., 0] * (boxes[:, 2:3] - boxes[:, 0:1]) + boxes[:, 0:1] + 0.5)
    out[..., 1] = np.floor(s[..., 1] * (boxes[:, 3:4] - boxes[:, 1:2]) + boxes[:, 1:2] + 0.5)
    return out
