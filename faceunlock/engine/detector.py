"""Face detector: dlib's CNN (MMOD) face detector on onnxruntime, no dlib needed.

The ONNX model (``models/detector.onnx``, made by :mod:`faceunlock.training.dlib.mmod`) is
only the convolution stack. This module reproduces the rest of dlib's
``cnn_face_detection_model_v1``:

1. **Tiled image pyramid** (dlib ``input_rgb_image_pyramid<pyramid_down<6>>``). Level ``i+1``
   is ``floor(5/6 * size)`` of level ``i`` (stop below 5 rows), resampled from level ``i``
   with corner-aligned bilinear interpolation (source = dest * (in-1)/(out-1)) in float
   (``cv2.warpAffine`` per plane; < 1e-3 grey levels from dlib; speed settings use
   ``cv2.resize``, within 0.1 px of it). Levels are packed into one
   image with dlib's layout: 11 px outer padding, 10 px between tiles, the first column going
   down, the rest coming back up along the right edge.
   Padding holds the channel means (zero after dlib's ``(pixel - mean)/256``, which the
   graph applies itself).
2. **One ONNX run** on the tiled image: float32 (1, 3, H, W) raw RGB 0..255 in, scores
   (1, 1, h, w) out.
3. **Decoding**: every score > ``threshold`` at ``(x, y)`` is an 80x80 window centred at
   tiled point ``(8x+14, 8y+14)``, i.e. ``centre ± 39.5``. The window is assigned to the tile
   nearest its centre, moved into that tile's frame and mapped up the pyramid with
   ``p -> p*1.2 + 0.3`` once per level, then rounded to integers (halves away from zero, as
   dlib 20 does).
4. **NMS** as dlib's ``loss_mmod``: detections in descending score order; one is dropped if,
   against an already kept box, ``intersection / bounding-box-of-both > 0.338`` or it (or
   the kept box) is covered more than 100 % (never). Areas count inclusive integer pixels.

Boxes are ``(left, top, right, bottom)`` in the input image's pixel coordinates in dlib's
``rectangle`` convention: ``right``/``bottom`` are the inclusive last column/row (so a box's
width in pixels is ``right - left + 1``) and may lie partly outside the image. With default
settings (``min_face=80``, no ``downscale``, ``upsample=0``) boxes are integers and match
``dlib.cnn_face_detection_model_v1(path)(image, 0)``.

Speed knobs (see :class:`FaceDetector`): the network finds faces of ~73-88 px per level
(80 px window, levels 1.2x apart) and costs ~50 ns per tiled pixel per core, ~3.3x the image
area for the full pyramid. ``min_face`` leaves out the first levels (small faces),
``max_face`` the last ones (huge faces); a truncated pyramid is packed more densely than
dlib's layout and resampled with the faster ``cv2.resize``. Any change of tiling changes
which neighbours a window's 189 px receptive field sees, so boxes then differ from dlib's by
a size step or a stride now and then (IoU ~0.8 on average) while being as accurate against
the truth. Such scans (and the pipeline's tracker and coarse pass) run ``detector-int8.onnx``
in :class:`~faceunlock.engine.pipeline.Pipeline` (~40 % less CPU than fp32 on a 640x480 scan;
its first convolution and its score head stay float); :attr:`FaceDetector.dlib_exact` says
which settings keep dlib's whole pyramid, which always runs the fp32 model.

The ONNX graph zero-pads the 45-channel layers to 48 and computes the final 9x9 conv as a
depthwise conv plus a channel sum (see :mod:`faceunlock.training.dlib.mmod`): onnxruntime
then uses its blocked convolutions throughout, ~2x faster than the plain graph.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceunlock.engine.imageio import as_rgb_u8
from faceunlock.engine.modelfile import resolve_model
from faceunlock.engine.ortsession import LazyOnnxModel
from faceunlock.errors import InputError, ModelError

DEFAULT_MODEL = "detector.onnx"

#: dlib's defaults for this model (also recorded in the sidecar).
WINDOW = 80
NMS_IOU = 0.3382761351109955
NMS_COVERED = 1.0
PYRAMID_PADDING = 10
PYRAMID_OUTER_PADDING = 11
PYRAMID_MIN_HEIGHT = 5
#: size ratio between pyramid levels (pyramid_down<6>: each level is 5/6 of the previous)
PYRAMID_STEP = 1.2
DEFAULT_MEAN = (122.782, 117.001, 104.298)
SCORE_STRIDE = 8
SCORE_OFFSET = 14
#: smallest tiled-image side for which the network still produces an output
_MIN_TILED = 29

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One detected face.

    box: (left, top, right, bottom) in image pixels, dlib ``rectangle`` convention (right and
    bottom inclusive). score: the detector's window score (> threshold; ~0..2 for faces).
    """

    box: Box
    score: float

    @property
    def width(self) -> float:
        """``right - left`` (dlib's inclusive pixel width is one more)."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """``bottom - top``."""
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        """``width * height`` (0 for a degenerate box)."""
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        """(x, y) centre of the box."""
        return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)


# -- pyramid geometry --------------------------------------------------------------------------


def pyramid_level_sizes(height: int, width: int, max_levels: int | None = None
                        ) -> list[tuple[int, int]]:
    """(rows, cols) of each pyramid_down<6> level, as dlib computes them (level 0 = input)."""
    sizes = [(height, width)]
    nr, nc = height, width
    rate = 5.0 / 6.0
    while max_levels is None or len(sizes) < max_levels:
        nr = math.floor(rate * nr)
        nc = math.floor(rate * nc)
        if nr * nc == 0 or nr < PYRAMID_MIN_HEIGHT:
            break
        sizes.append((nr, nc))
    return sizes


def tile_layout(sizes: list[tuple[int, int]], padding: int = PYRAMID_PADDING,
                outer: int = PYRAMID_OUTER_PADDING) -> tuple[np.ndarray, int, int]:
    """dlib's ``compute_tiled_image_pyramid_details``.

    Returns (rects, rows, cols): rects is int64 (L, 4) of inclusive (left, top, right, bottom)
    per level inside the tiled image, possibly fewer than ``sizes`` (dlib drops trailing
    levels that would collide with level 0); rows x cols is the tiled image size.
    """
    h0, w0 = sizes[0]
    total_height = sum(h + padding for h, _ in sizes) - padding * 2
    height = 0
    prev_width = 0
    for h, w in sizes:
        if w <= w0 - prev_width - padding and (height - h0) * 2 >= (total_height - h0):
            break
        height += h + padding
        prev_width = w
    height -= padding
    rows, cols = height + outer * 2, w0 + outer * 2

    rects: list[tuple[int, int, int, int]] = []
    y = outer
    i = 0
    while y < height + outer and i < len(sizes):
        h, w = sizes[i]
        rects.append((outer, y, outer + w - 1, y + h - 1))
        y += h + padding
        i += 1
    y -= padding
    while i < len(sizes):
        h, w = sizes[i]
        right, bottom = outer + w0 - 1, y - 1
        rect = (right - (w - 1), bottom - (h - 1), right, bottom)
        r0 = rects[0]
        if not (max(r0[0], rect[0]) > min(r0[2], rect[2])
                or max(r0[1], rect[1]) > min(r0[3], rect[3])):
            break  # would overlap level 0
        rects.append(rect)
        y -= h + padding
        i += 1
    return np.asarray(rects, dtype=np.int64).reshape(-1, 4), rows, cols


def _skyline_pack(sizes: list[tuple[int, int]], width: int, padding: int
                  ) -> tuple[list[tuple[int, int]], int]:
    """Bottom-left skyline packing of (rows, cols) rectangles into a strip ``width`` wide.

    Returns the (x, y) of each rectangle and the strip height used. Rectangles keep
    ``padding`` pixels between each other.
    """
    sky: list[list[int]] = [[0, 0, width]]  # segments [x, y, w] covering [0, width)
    pos: list[tuple[int, int]] = []
    height = 0
    for h, w in sizes:
        best: tuple[int, int, int] | None = None  # (top of rect, x, y)
        for i in range(len(sky)):
            x = sky[i][0]
            if x + w > width:
                break
            y, j, end = 0, i, x + w + padding
            while j < len(sky) and sky[j][0] < end:
                y = max(y, sky[j][1])
                j += 1
            if best is None or (y + h, x) < (best[0], best[1]):
                best = (y + h, x, y)
        if best is None:
            raise ValueError(f"a {w} px wide tile cannot fit a {width} px strip")
        _, x, y = best
        pos.append((x, y))
        height = max(height, y + h)
        end = min(x + w + padding, width)
        new: list[list[int]] = []
        for seg in sky:
            s0, s1 = seg[0], seg[0] + seg[2]
            if s1 <= x or s0 >= end:
                new.append(seg)
                continue
            if s0 < x:
                new.append([s0, seg[1], x - s0])
            if s1 > end:
                new.append([end, seg[1], s1 - end])
        new.append([x, y + h + padding, end - x])
        sky = sorted(new)
    return pos, height


@functools.lru_cache(maxsize=32)
def compact_layout(sizes: tuple[tuple[int, int], ...], padding: int = PYRAMID_PADDING,
                   outer: int = PYRAMID_OUTER_PADDING) -> tuple[np.ndarray, int, int]:
    """The smallest of dlib's tiling and bottom-left packings (same return as tile_layout).

    dlib's layout is sized for the full pyramid; for the first few levels only, packing the
    tiles into a wider strip can save 10-15 % of the pixels the network must process. Strip
    widths from level 0's width to twice it are tried in steps of 8 px (cached per sizes).
    """
    rects, rows, cols = tile_layout(list(sizes), padding, outer)
    if len(rects) != len(sizes):  # dlib dropped levels: keep its (smaller) set as is
        return rects, rows, cols
    w0 = sizes[0][1]
    for width in range(w0, 2 * w0 + 1, 8):
        pos, height = _skyline_pack(list(sizes), width, padding)
        if (height + 2 * outer) * (width + 2 * outer) < rows * cols:
            rows, cols = height + 2 * outer, width + 2 * outer
            rects = np.asarray(
                [(outer + x, outer + y, outer + x + w - 1, outer + y + h - 1)
                 for (x, y), (h, w) in zip(pos, sizes, strict=True)], dtype=np.int64)
    return rects, rows, cols


def _lerp_axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices and weights of dlib's corner-aligned bilinear resize along one axis."""
    scale = (n_in - 1) / max(n_out - 1, 1)
    pos = np.cumsum(np.full(n_out, scale))  # dlib accumulates: x += scale
    pos -= scale
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (pos - lo).astype(np.float32)
    return lo, hi, frac


def resize_corner_aligned(src: np.ndarray, out_rows: int, out_cols: int) -> np.ndarray:
    """Bilinear resize of a (C, H, W) float32 array, dlib's ``resize_image`` sampling.

    Output pixel (r, c) samples the source at (r*(H-1)/(out_rows-1), c*(W-1)/(out_cols-1)).
    """
    _, h, w = src.shape
    top, bottom, fy = _lerp_axis(h, out_rows)
    left, right, fx = _lerp_axis(w, out_cols)
    a = src[:, top, :]
    rows = a + (src[:, bottom, :] - a) * fy[None, :, None]
    b = rows[:, :, left]
    return b + (rows[:, :, right] - b) * fx[None, None, :]


def _resize_planes(src: np.ndarray, dst: np.ndarray, exact: bool = True) -> None:
    """Bilinear resize of (C, h, w) float32 planes into ``dst`` (C, H, W), in place.

    ``exact``: dlib's corner-aligned sampling (source = dest * (in-1)/(out-1)) through
    ``cv2.warpAffine`` (differs from :func:`resize_corner_aligned` by < 1e-3 grey levels).
    Otherwise ``cv2.resize`` (half-pixel centres: source = (dest+0.5)*in/out - 0.5), ~3x
    faster and within 0.1 px of dlib's sampling for a 5/6 step. ``src`` and ``dst`` may be
    views into one tiled buffer.
    """
    _, h, w = src.shape
    _, oh, ow = dst.shape
    m = np.array([[(w - 1) / max(ow - 1, 1), 0.0, 0.0], [0.0, (h - 1) / max(oh - 1, 1), 0.0]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for c in range(src.shape[0]):
        if exact:
            out = cv2.warpAffine(src[c], m, (ow, oh), dst=dst[c], flags=flags,
                                 borderMode=cv2.BORDER_REPLICATE)
        else:
            out = cv2.resize(src[c], (ow, oh), dst=dst[c], interpolation=cv2.INTER_LINEAR)
        if out.ctypes.data != dst[c].ctypes.data:  # cv2 could not write in place
            dst[c] = out


def build_tiled_pyramid(image: np.ndarray, sizes: list[tuple[int, int]],
                        mean: tuple[float, float, float] = DEFAULT_MEAN, *,
                        skip: int = 0, fast: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The network input for an RGB uint8 (H, W, 3) image.

    ``sizes`` from :func:`pyramid_level_sizes` (possibly truncated); level ``i+1`` is resampled
    from level ``i`` as dlib does. The first ``skip`` levels are computed but not tiled (the
    cheap way to ignore faces smaller than 80*1.2^skip px). ``fast`` packs the tiles with
    :func:`compact_layout` and resamples with ``cv2.resize`` (see :func:`_resize_planes`);
    otherwise dlib's :func:`tile_layout` and exact sampling are used. Returns (tiled float32
    (1, 3, rows, cols) raw RGB with mean-coloured padding, rects int64 (L, 4) of the tiled
    levels ``skip, skip+1, ...``).
    """
    used = sizes[skip:]
    if fast:
        rects, rows, cols = compact_layout(tuple(used))
    else:
        rects, rows, cols = tile_layout(used)
    tiled = np.empty((3, rows, cols), dtype=np.float32)
    tiled[:] = np.asarray(mean, dtype=np.float32)[:, None, None]
    l0, t0, r0, b0 = (int(v) for v in rects[0])
    first = tiled[:, t0:b0 + 1, l0:r0 + 1]
    if skip == 0:
        first[...] = image.transpose(2, 0, 1)
    elif fast:  # interleaved RGB: cv2 resizes the three channels in one pass
        hwc: np.ndarray = image.astype(np.float32)
        for i in range(1, skip + 1):
            hwc = cv2.resize(hwc, (sizes[i][1], sizes[i][0]), interpolation=cv2.INTER_LINEAR)
        first[...] = hwc.transpose(2, 0, 1)
    else:
        cur = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
        for i in range(1, skip + 1):
            nxt = first if i == skip else np.empty((3, *sizes[i]), np.float32)
            _resize_planes(cur, nxt)
            cur = nxt
    for i in range(1, len(rects)):
        pl, pt, pr, pb = (int(v) for v in rects[i - 1])
        cl, ct, cr, cb = (int(v) for v in rects[i])
        _resize_planes(tiled[:, pt:pb + 1, pl:pr + 1], tiled[:, ct:cb + 1, cl:cr + 1],
                       exact=not fast)
    return tiled[None], rects


# -- decoding ------------------------------------------------------------------------------------


def decode_scores(scores: np.ndarray, rects: np.ndarray, threshold: float, skip: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Score map (h, w) -> (boxes float64 (N, 4) rounded dlib rectangles, scores (N,)).

    ``rects`` are the tiles of pyramid levels ``skip, skip+1, ...``. Boxes are in pyramid
    level-0 coordinates, sorted by descending score (before NMS).
    """
    ys, xs = np.nonzero(scores > threshold)
    if ys.size == 0:
        return np.zeros((0, 4)), np.zeros(0)
    sc = scores[ys, xs].astype(np.float64)
    order = np.argsort(-sc, kind="stable")
    ys, xs, sc = ys[order], xs[order], sc[order]
    cx = xs.astype(np.float64) * SCORE_STRIDE + SCORE_OFFSET
    cy = ys.astype(np.float64) * SCORE_STRIDE + SCORE_OFFSET
    # nearest tile to the window centre (dlib's nearest_rect; 0 distance when inside)
    rl, rt, rr, rb = (rects[:, k].astype(np.float64)[None, :] for k in range(4))
    dx = cx[:, None] - np.clip(cx[:, None], rl, rr)
    dy = cy[:, None] - np.clip(cy[:, None], rt, rb)
    level = np.argmin(dx * dx + dy * dy, axis=1)
    half = (WINDOW - 1) / 2.0
    box = np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)
    box -= np.stack([rects[level, 0], rects[level, 1]] * 2, axis=1).astype(np.float64)
    level = level + skip
    for lv in range(1, int(level.max()) + 1):
        sel = level >= lv
        box[sel] = box[sel] * 1.2 + 0.3
    return _round_half_away(box), sc


def _round_half_away(v: np.ndarray) -> np.ndarray:
    """dlib's drectangle -> rectangle rounding (``std::round``: halves away from zero)."""
    return np.copysign(np.floor(np.abs(v) + 0.5), v)


def mmod_nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU,
             covered: float = NMS_COVERED) -> np.ndarray:
    """dlib's greedy ``test_box_overlap`` NMS. Returns kept indices, best score first.

    boxes: (N, 4) inclusive integer rectangles; scores: (N,). Boxes are visited by descending
    score (stable for ties); one is dropped if, against an already kept box, "iou" =
    intersection / area of the bounding box of both (dlib's definition) > ``iou``, or the
    intersection covers more than ``covered`` of either box.
    """
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable").tolist():
        b = boxes[i]
        drop = False
        for j in keep:
            k = boxes[j]
            iw = min(b[2], k[2]) - max(b[0], k[0]) + 1
            ih = min(b[3], k[3]) - max(b[1], k[1]) + 1
            if iw <= 0 or ih <= 0:
                continue
            inner = iw * ih
            outer = ((max(b[2], k[2]) - min(b[0], k[0]) + 1)
                     * (max(b[3], k[3]) - min(b[1], k[1]) + 1))
            if inner / outer > iou or inner / area[i] > covered or inner / area[j] > covered:
                drop = True
                break
        if not drop:
            keep.append(i)
    return np.asarray(keep, dtype=np.intp)


# -- the detector ----------------------------------------------------------------------------------


class FaceDetector(LazyOnnxModel):
    """dlib's MMOD CNN face detector on onnxruntime. Lazily loaded; thread-compatible.

    Knobs (all boxes are reported in the input image's coordinates whatever they are):

    * ``min_face``: smallest face side (px) to find. Above 80 the first
      ``skip = floor(log_1.2(min_face/80))`` pyramid levels are computed (cheaply, as dlib
      does) but not run through the network, so the smallest window is 80*1.2^skip <=
      ``min_face`` px and windows and strides stay those of dlib's full pyramid.
    * ``downscale``: instead, shrink the image by this factor first (cv2 INTER_AREA; fast
      for integer factors). When given, ``min_face`` is ignored.
    * ``max_face``: stop adding pyramid levels once the window covers faces of this size
      (the first level whose window is >= ``max_face`` px is the last). None: full pyramid.
    * ``upsample``: dlib's ``upsample_num_times`` for faces below 80 px: the image is doubled
      that many times first (dlib's ``pyramid_up`` geometry). Exclusive with shrinking.
    * ``threshold``: dlib's ``adjust_threshold``; windows scoring above it are detections.
    * ``threads``: onnxruntime intra-op threads (default ``min(4, cpu_count)``).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        min_face: int = 80,
        max_face: int | None = None,
        downscale: float | None = None,
        upsample: int = 0,
        threshold: float = 0.0,
        threads: int | None = None,
    ) -> None:
        if min_face <= 0:
            raise InputError(f"min_face must be positive, got {min_face}")
        if max_face is not None and max_face <= 0:
            raise InputError(f"max_face must be positive, got {max_face}")
        if downscale is not None and not (downscale > 0 and math.isfinite(downscale)):
            raise InputError(f"downscale must be a positive number, got {downscale}")
        if upsample < 0:
            raise InputError(f"upsample must be >= 0, got {upsample}")
        skip = 0
        if downscale is None and min_face > WINDOW:  # largest 1.2^skip not above min_face/80
            skip = math.floor(math.log(min_face / WINDOW, PYRAMID_STEP) + 1e-9)
        if upsample and (skip or (downscale is not None and downscale != 1.0)):
            raise InputError("upsample and downscale/min_face > 80 are exclusive")
        if not math.isfinite(threshold):
            raise InputError(f"threshold must be finite, got {threshold}")
        super().__init__(resolve_model(model_path, DEFAULT_MODEL), threads)
        self.min_face = min_face
        self.max_face = max_face
        self.downscale = downscale
        self.upsample = upsample
        self.threshold = float(threshold)
        self.skip: int = skip
        self._mean: tuple[float, float, float] = DEFAULT_MEAN

    @property
    def dlib_exact(self) -> bool:
        """Whether these settings search dlib's whole pyramid with its tiling (``min_face`` 80
        or less, no ``max_face``, no shrinking): the boxes are then dlib's own (with the fp32
        model). Otherwise the pyramid is cut short, packed densely and resampled with
        ``cv2.resize`` (see :func:`build_tiled_pyramid`)."""
        return (self.skip == 0 and self.max_face is None
                and (self.downscale is None or self.downscale == 1.0))

    # -- loading ------------------------------------------------------------------------------

    def _accept(self, inp: Any, out: Any, meta: dict[str, Any]) -> None:
        if inp.type != "tensor(float)" or len(inp.shape) != 4 or inp.shape[1] != 3:
            raise ModelError(self.path, f"input {inp.name!r} is {inp.type} {inp.shape}, "
                             "expected float [1, 3, H, W]")
        if out.type != "tensor(float)" or len(out.shape) != 4:
            raise ModelError(self.path, f"output {out.name!r} is {out.type} {out.shape}, "
                             "expected float [1, 1, h, w]")
        mean = meta.get("input", {}).get("mean") if isinstance(meta.get("input"), dict) \
            else None
        if mean is not None:
            if not (isinstance(mean, list) and len(mean) == 3):
                raise ModelError(self.path, f"sidecar input.mean must be 3 numbers, got {mean}")
            self._mean = (float(mean[0]), float(mean[1]), float(mean[2]))

    # -- inference ---------------------------------------------------------------------------

    def _working_image(self, image: np.ndarray) -> tuple[np.ndarray, str, float, float]:
        """(image to build the pyramid from, mapping kind, sx, sy): original = f(working)."""
        if self.upsample:
            work = image
            for _ in range(self.upsample):
                hh, ww = work.shape[:2]
                # dlib pyramid_up with pyramid_down<2>: size from rect_up of the image rect
                up = resize_corner_aligned(work.transpose(2, 0, 1).astype(np.float32),
                                           2 * hh + 1, 2 * ww + 2)
                work = np.ascontiguousarray(
                    np.clip(np.floor(up + 0.5), 0, 255).astype(np.uint8).transpose(1, 2, 0))
            return work, "up", 0.5 ** self.upsample, 0.5 ** self.upsample
        if self.downscale is None or self.downscale == 1.0:
            return image, "none", 1.0, 1.0
        h, w = image.shape[:2]
        nw = max(1, round(w / self.downscale))
        nh = max(1, round(h / self.downscale))
        work = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        return work, "scale", w / nw, h / nh

    def _max_levels(self, scale: float) -> int | None:
        """Levels (from 0) needed to reach windows of ``max_face`` px; scale = px per work px."""
        if self.max_face is None:
            return None
        k = 0
        while WINDOW * (PYRAMID_STEP ** k) * scale < self.max_face:
            k += 1
        return max(k + 1, self.skip + 1)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 (H, W, 3) image (greyscale (H, W) is accepted).

        Returns detections sorted by descending score; boxes as described in the module
        docstring, in ``image``'s coordinates. Raises InputError for a bad image, ModelError
        if the model cannot be loaded.
        """
        image = as_rgb_u8(image)
        self.load()
        session = self._session
        assert session is not None
        work, kind, sx, sy = self._working_image(image)
        max_levels = self._max_levels(sx)
        sizes = pyramid_level_sizes(work.shape[0], work.shape[1], max_levels)
        if len(sizes) <= self.skip:
            return []
        h, w = sizes[self.skip]
        if min(h, w) + 2 * PYRAMID_OUTER_PADDING < _MIN_TILED:
            return []
        # dlib's exact layout and sampling for the full pyramid; when it is cut short (a
        # speed setting) a denser packing and cv2.resize
        fast = self.skip > 0 or (max_levels is not None and len(sizes) == max_levels)
        tiled, rects = build_tiled_pyramid(work, sizes, self._mean, skip=self.skip, fast=fast)
        (scores,) = session.run(None, {self._input_name: tiled})
        boxes, sc = decode_scores(scores[0, 0], rects, self.threshold, self.skip)
        if boxes.shape[0] == 0:
            return []
        keep = mmod_nms(boxes, sc)
        boxes, sc = boxes[keep], sc[keep]
        if kind == "up":
            for _ in range(self.upsample):  # dlib rect_down: p/2 - (1.25, 0.75)
                boxes = boxes / 2.0 - np.array([1.25, 0.75, 1.25, 0.75])
            boxes = _round_half_away(boxes)
        elif kind == "scale":
            # inclusive pixel boxes: left edge l*s, right edge (r+1)*s - 1
            boxes = np.stack([boxes[:, 0] * sx, boxes[:, 1] * sy,
                              (boxes[:, 2] + 1) * sx - 1, (boxes[:, 3] + 1) * sy - 1], axis=1)
        return [
            Detection((float(b[0]), float(b[1]), float(b[2]), float(b[3])), float(s))
            for b, s in zip(boxes, sc, strict=True)
        ]

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return (f"FaceDetector({str(self.path)!r}, min_face={self.min_face}, "
                f"max_face={self.max_face}, downscale={self.downscale}, "
                f"upsample={self.upsample}, threshold={self.threshold}, {state})")
