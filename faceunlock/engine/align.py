"""Face alignment: the 150x150 "face chip" the recognition network expects, as dlib's
``get_face_chip_details`` + ``extract_image_chip`` make it (``dlib.get_face_chip(img, shape,
size=150, padding=0.25)``).

Coordinates: ``x`` is the column and ``y`` the row, pixel centres on integers. Landmarks are
the five points of :mod:`faceunlock.engine.landmarks`, float (5, 2) (x, y).

Geometry (``docs/model-formats.md``, "Face-chip alignment"):

1. chip template points are ``size * (padding + T_i) / (1 + 2 * padding)`` with T dlib's
   5-point unit template;
2. the least-squares similarity (Umeyama) from template to landmarks gives ``M`` (2x2) and
   ``t``;
3. ``s = |M (1, 0)|``, ``R = M / s``;
4. the centre is ``c = M (size/2, size/2) + t``;
5. chip pixels ``0`` and ``size-1`` land on ``c ± (size*s - 1)/2`` along the rotated axes, so
   chip pixel ``q`` maps to ``c + k R (q - (size-1)/2)`` with ``k = (size*s - 1)/(size - 1)``.

Sampling: bilinear with OpenCV. dlib truncates interpolated values and blacks out chip pixels
whose 2x2 source neighbourhood leaves the image; here the warp runs on float32 and is floored,
and those pixels are masked to 0, which reproduces both.
When the chip is a strong reduction (``s`` above about 2) dlib samples from a half-size image
pyramid level instead (5-tap [1 4 6 4 1]/16 filter). We do the same with ``cv2.pyrDown`` on
the region around the face, mapping points onto the reduced image the way dlib's
``pyramid_down<2>`` does (including its (-0.5, +0.5) pixel offset) and starting the pyramid
at dlib's crop corner so the filter grid has the same parity.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from faceunlock.engine.imageio import as_rgb_u8
from faceunlock.errors import InputError

#: dlib's 5-point unit template (get_face_chip_details), in landmark order.
TEMPLATE_5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    dtype=np.float64,
)
_MAX_SIZE = 4096


def _check(landmarks5: np.ndarray, size: int, padding: float) -> np.ndarray:
    try:
        pts = np.asarray(landmarks5, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"landmarks5: not numeric ({e})") from e
    if pts.shape != (5, 2):
        raise InputError(f"landmarks5: expected shape (5, 2), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise InputError("landmarks5: coordinates must be finite")
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise InputError(f"size: expected an int, got {type(size).__name__}")
    if not 2 <= size <= _MAX_SIZE:
        raise InputError(f"size: must be in 2..{_MAX_SIZE}, got {size}")
    if not (math.isfinite(padding) and padding >= 0):
        raise InputError(f"padding: must be finite and >= 0, got {padding}")
    return pts


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ≈ M @ src + t`` (Umeyama, 2-D closed form).

    Returns (M (2, 2), t (2,)), float64.
    """
    ms = src.mean(axis=0)
    md = dst.mean(axis=0)
    s = src - ms
    d = dst - md
    var = float(np.sum(s * s))
    if var == 0.0:
        raise InputError("landmarks5: template points coincide")
    a = float(np.sum(d[:, 0] * s[:, 0] + d[:, 1] * s[:, 1])) / var
    b = float(np.sum(d[:, 1] * s[:, 0] - d[:, 0] * s[:, 1])) / var
    m = np.array([[a, -b], [b, a]])
    return m, md - m @ ms


def _chip_geometry(
    pts: np.ndarray, size: int, padding: float
) -> tuple[np.ndarray, float]:
    """(A, s): the 2x3 chip->image map and the scale s (image pixels per chip pixel)."""
    template = size * (padding + TEMPLATE_5) / (2 * padding + 1)
    m, t = _similarity(template, pts)
    s = math.hypot(m[0, 0], m[1, 0])
    if not s > 0:
        raise InputError("landmarks5: degenerate (all points coincide)")
    rot = m / s
    centre = m @ np.array([size / 2.0, size / 2.0]) + t
    k = (size * s - 1.0) / (size - 1.0)
    lin = k * rot
    off = centre - lin @ np.array([(size - 1) / 2.0, (size - 1) / 2.0])
    return np.hstack([lin, off[:, None]]), s


def chip_transform(
    landmarks5: np.ndarray, size: int = 150, padding: float = 0.25
) -> np.ndarray:
    """The float64 (2, 3) affine map from chip pixel (x, y) to image pixel (x, y).

    Pass it to ``cv2.warpAffine(img, A, (size, size), flags=... | cv2.WARP_INVERSE_MAP)``.
    ``landmarks5``: float (5, 2) (x, y) image points in :mod:`~faceunlock.engine.landmarks`
    order.
    """
    return _chip_geometry(_check(landmarks5, size, padding), size, padding)[0]


def _pyramid_levels(s: float, size: int) -> int:
    """How many 2:1 pyramid levels dlib's extract_image_chips descends for scale ``s``.

    dlib's crop rectangle is ``size*s`` wide (a drectangle's width is right-left+1); each
    ``rect_down`` makes it ``(w+1)/2``; it descends while the reduced area exceeds size**2.
    """
    w = size * s
    levels = 0
    while ((w + 1.0) / 2.0) ** 2 > size * size:
        w = (w + 1.0) / 2.0
        levels += 1
    return levels


def _dlib_crop_box(
    a: np.ndarray, size: int, levels: int, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """dlib's pyramid crop: bounding box of the rotated chip rectangle grown by
    6, 14, 30, ... pixels for 1, 2, 3, ... levels, clipped to the image and rounded:
    (left, top, right, bottom), inclusive."""
    corners = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]],
                       dtype=np.float64)
    pts = corners @ a.T
    grow = 2.0
    for _ in range(levels):
        grow = grow * 2 + 2
    h, w = shape
    lo = np.maximum(pts.min(axis=0) - grow, 0.0)
    hi = np.minimum(pts.max(axis=0) + grow, [w - 1.0, h - 1.0])
    l_, t_ = np.floor(lo + 0.5).astype(int)
    r_, b_ = np.floor(hi + 0.5).astype(int)
    return int(l_), int(t_), int(r_), int(b_)


def face_chip(
    image: np.ndarray, landmarks5: np.ndarray, size: int = 150, padding: float = 0.25
) -> np.ndarray:
    """The aligned face chip: RGB uint8 (size, size, 3).

    ``image``: RGB uint8 (H, W, 3) (or greyscale (H, W)); ``landmarks5``: float (5, 2) (x, y)
    image points. Chip pixels whose source lies outside the image are black.
    """
    img = as_rgb_u8(image)
    pts = _check(landmarks5, size, padding)
    a, s = _chip_geometry(pts, size, padding)
    src = img
    levels = _pyramid_levels(s, size)
    if levels:
        left, top, right, bottom = _dlib_crop_box(a, size, levels, img.shape[:2])
        if right < left or bottom < top:  # the chip lies entirely outside the image
            return np.zeros((size, size, 3), dtype=np.uint8)
        src = img[top : bottom + 1, left : right + 1].astype(np.float32)
        a = a.copy()
        a[:, 2] -= (left, top)
        for _ in range(levels):
            if min(src.shape[:2]) <= 8:  # too small to reduce: sample this level instead
                break
            # dlib's level pixel x is the [1 4 6 4 1] filter centred on pixel 2x+2 of the
            # level above, its size is (n-3)//2 and it truncates sum/256. OpenCV's pixel u
            # is centred on 2u, so drop OpenCV's first row/column and trim the end; a float
            # pyrDown floored gives the truncated integer result exactly.
            h, w = src.shape[:2]
            src = np.floor(cv2.pyrDown(src)[1 : 1 + (h - 3) // 2, 1 : 1 + (w - 3) // 2])
            # dlib maps points onto the level by point_down(p) = p/2 - (1.25, 0.75)
            a = a * 0.5
            a[:, 2] -= (1.25, 0.75)
    return _warp(src, a, size)


def _warp(src: np.ndarray, a: np.ndarray, size: int) -> np.ndarray:
    """Bilinear chip sampling that truncates like dlib and blacks out chip pixels whose 2x2
    source neighbourhood is not entirely inside ``src`` (dlib's ``interpolate_bilinear``).

    ``src``: (h, w, 3) uint8 or float32 holding whole numbers; ``a``: chip -> src map.
    """
    h, w = src.shape[:2]
    grid = np.arange(size, dtype=np.float64)
    xs = a[0, 0] * grid[None, :] + a[0, 1] * grid[:, None] + a[0, 2]
    ys = a[1, 0] * grid[None, :] + a[1, 1] * grid[:, None] + a[1, 2]
    valid = (xs >= 0) & (xs < w - 1) & (ys >= 0) & (ys < h - 1)
    if not valid.any():
        return np.zeros((size, size, 3), dtype=np.uint8)
    # only the source region the chip reads is converted to float
    cl = int(np.floor(xs[valid].min()))
    ct = int(np.floor(ys[valid].min()))
    cr = int(np.floor(xs[valid].max())) + 1
    cb = int(np.floor(ys[valid].max())) + 1
    region = src[ct : cb + 1, cl : cr + 1].astype(np.float32)
    a = a.copy()
    a[:, 2] -= (cl, ct)
    out = cv2.warpAffine(
        region,
        a,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    chip = np.floor(out).astype(np.uint8)
    chip[~valid] = 0
    return chip
