from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceunlock.engine.quality import (
    crop,
    is_dark,
    is_uniform,
    region_brightness,
    sharpness,
    to_gray,
)
from faceunlock.errors import InputError


def _grey_rgb(level: int, h: int = 40, w: int = 60) -> np.ndarray:
    return np.full((h, w, 3), level, np.uint8)


def test_is_dark_threshold_behaviour() -> None:
    assert is_dark(_grey_rgb(0))
    assert is_dark(_grey_rgb(39))
    assert not is_dark(_grey_rgb(40))
    assert not is_dark(_grey_rgb(128))
    # 96 % dark pixels: dark at 0.95, not at 0.97
    img = np.zeros((100, 100), np.uint8)
    img[:4, :] = 200
    assert is_dark(img, dark_fraction=0.95)
    assert not is_dark(img, dark_fraction=0.97)
    # a custom dark level
    assert is_dark(_grey_rgb(50), dark_level=60)


def test_is_dark_rejects_bad_parameters() -> None:
    with pytest.raises(InputError, match="dark_fraction"):
        is_dark(_grey_rgb(0), dark_fraction=0.0)
    with pytest.raises(InputError, match="dark_level"):
        is_dark(_grey_rgb(0), dark_level=300)


def test_sharpness_orders_sharp_above_blurred() -> None:
    rng = np.random.default_rng(0)
    sharp = (rng.random((64, 64)) > 0.5).astype(np.uint8) * 255
    blurred = cv2.GaussianBlur(sharp, (9, 9), 3)
    assert sharpness(sharp) > 10 * sharpness(blurred)
    assert sharpness(_grey_rgb(100)) == 0.0
    rgb = np.repeat(sharp[:, :, None], 3, axis=2)
    assert sharpness(rgb) == pytest.approx(sharpness(sharp))
    with pytest.raises(InputError, match="3x3"):
        sharpness(np.zeros((2, 10), np.uint8))


def test_region_brightness_and_clipping() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    img[20:40, 30:60] = 200
    assert region_brightness(img, (30, 20, 60, 40)) == pytest.approx(200, abs=1)
    assert region_brightness(img, (0, 0, 100, 100)) == pytest.approx(200 * 600 / 10000, abs=1)
    # boxes partly outside are clipped; float boxes are rounded
    assert region_brightness(img, (-50.2, -10, 40.4, 30.0)) < 200
    assert crop(img, (90, 90, 200, 200)).shape == (10, 10, 3)
    with pytest.raises(InputError, match="does not overlap"):
        region_brightness(img, (200, 200, 300, 300))
    with pytest.raises(InputError, match="x1, y1, x2, y2"):
        region_brightness(img, (1, 2, 3))


def test_is_uniform() -> None:
    assert is_uniform(_grey_rgb(0))
    assert is_uniform(_grey_rgb(180))
    noisy = np.random.default_rng(1).integers(0, 255, (30, 30, 3), dtype=np.uint8)
    assert not is_uniform(noisy)


def test_input_validation() -> None:
    with pytest.raises(InputError, match="uint8"):
        to_gray(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InputError, match="shape"):
        to_gray(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(InputError, match="numpy array"):
        to_gray([[1, 2]])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="empty"):
        is_dark(np.zeros((0, 4), np.uint8))
