"""Frame and face-region quality measures used by enrolment and authentication.

All functions take an engine image — RGB ``uint8`` (H, W, 3) — or a greyscale ``uint8``
(H, W) array, and never modify their input. Boxes are ``(x1, y1, x2, y2)`` in pixels, the
right and bottom edges exclusive; they are clipped to the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import cv2
import numpy as np

from faceunlock.config import AuthConfig
from faceunlock.errors import InputError

#: the too-dark gate's defaults: the auth.dark_level and auth.dark_fraction config keys'
DEFAULT_DARK_LEVEL = AuthConfig.dark_level
DEFAULT_DARK_FRACTION = AuthConfig.dark_fraction


class BrightnessStats(TypedDict):
    """Grey-level statistics of an image (all on the 0–255 scale except ``dark_fraction``)."""

    mean: float
    std: float
    min: float
    max: float
    p05: float
    median: float
    p95: float
    dark_fraction: float  # fraction (0–1) of pixels below ``dark_level``


def to_gray(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Return a greyscale ``uint8`` (H, W) view/copy of an RGB (H, W, 3) or grey (H, W) image."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"{what}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"{what}: expected dtype uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        gray = image
    elif image.ndim == 3 and image.shape[2] == 3:
        gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    else:
        raise InputError(f"{what}: expected shape (H, W, 3) or (H, W), got {image.shape}")
    if gray.size == 0:
        raise InputError(f"{what}: empty image {image.shape}")
    return gray


def _histogram(gray: np.ndarray) -> np.ndarray:
    """256-bin histogram of a uint8 image as int64 counts."""
    return np.bincount(gray.ravel(), minlength=256).astype(np.int64)


def _check_dark_params(dark_level: int, dark_fraction: float) -> None:
    if not 0 <= dark_level <= 255:
        raise InputError(f"dark_level: must be between 0 and 255, got {dark_level}")
    if not 0.0 < dark_fraction <= 1.0:
        raise InputError(f"dark_fraction: must be in (0, 1], got {dark_fraction}")


def brightness_stats(image: np.ndarray, *, dark_level: int = DEFAULT_DARK_LEVEL) -> BrightnessStats:
    """Grey-level statistics of ``image`` computed from its 256-bin histogram.

    ``dark_fraction`` is the fraction of pixels whose grey level is strictly below
    ``dark_level``; percentiles are the lowest grey level reaching that share of pixels.
    """
    _check_dark_params(dark_level, 1.0)
    gray = to_gray(image)
    hist = _histogram(gray)
    total = int(hist.sum())
    levels = np.arange(256, dtype=np.float64)
    mean = float((hist * levels).sum() / total)
    var = float((hist * (levels - mean) ** 2).sum() / total)
    cum = np.cumsum(hist)
    nonzero = np.flatnonzero(hist)

    def pct(q: float) -> float:
        return float(np.searchsorted(cum, q * total, side="left"))

    return BrightnessStats(
        mean=mean,
        std=var**0.5,
        min=float(nonzero[0]),
        max=float(nonzero[-1]),
        p05=pct(0.05),
        median=pct(0.5),
        p95=pct(0.95),
        dark_fraction=float(hist[:dark_level].sum() / total),
    )


def is_dark(
    image: np.ndarray,
    *,
    dark_level: int = DEFAULT_DARK_LEVEL,
    dark_fraction: float = DEFAULT_DARK_FRACTION,
) -> bool:
    """True when at least ``dark_fraction`` of the pixels are darker than ``dark_level``.

    Such frames (covered lens, unlit room, IR emitter off) carry no usable face and are skipped
    rather than counted as failed matches.
    """
    _check_dark_params(dark_level, dark_fraction)
    hist = _histogram(to_gray(image))
    return bool(hist[:dark_level].sum() >= dark_fraction * hist.sum())


def is_uniform(image: np.ndarray, *, max_std: float = 2.0) -> bool:
    """True when the frame is (nearly) one flat colour: grey-level std ≤ ``max_std``.

    Cameras that fail silently deliver such frames (all black, all green, all grey).
    """
    gray = to_gray(image)
    return bool(float(gray.std()) <= max_std)


def sharpness(region: np.ndarray) -> float:
    """Focus measure: variance of the Laplacian of the grey region (higher is sharper).

    region: RGB uint8 (H, W, 3) or grey uint8 (H, W), at least 3x3 pixels.
    """
    gray = to_gray(region, "region")
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        raise InputError(f"region: must be at least 3x3 pixels, got {gray.shape}")
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def crop(image: np.ndarray, box: Sequence[float] | np.ndarray) -> np.ndarray:
    """The part of ``image`` inside ``box`` = (x1, y1, x2, y2), clipped to the image.

    Coordinates are rounded to the nearest pixel. Raises InputError when the clipped box is
    empty.
    """
    if len(box) != 4:
        raise InputError(f"box: expected (x1, y1, x2, y2), got {len(box)} values")
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    x1, x2 = max(0, x1), min(w, x2)
    y1, y2 = max(0, y1), min(h, y2)
    if x2 <= x1 or y2 <= y1:
        raise InputError(f"box {tuple(box)} does not overlap the {w}x{h} image")
    return image[y1:y2, x1:x2]


def region_brightness(image: np.ndarray, box: Sequence[float] | np.ndarray) -> float:
    """Mean grey level (0–255) of ``image`` inside ``box`` = (x1, y1, x2, y2)."""
    gray = to_gray(image)
    return float(crop(gray, box).mean())
