"""Image reading at the engine's I/O boundary (BGR on disk/OpenCV -> RGB uint8 inside)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from faceunlock.errors import ImageReadError, InputError


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3). Greyscale files are expanded to 3 channels.

    Raises ImageReadError naming the file when it is missing, unreadable or not an image.
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError(p, "file not found")
    if not p.is_file():
        raise ImageReadError(p, "not a regular file")
    try:
        raw = np.fromfile(str(p), dtype=np.uint8)
    except OSError as e:
        raise ImageReadError(p, f"cannot be read ({e.strerror})") from e
    if raw.size == 0:
        raise ImageReadError(p, "file is empty")
    img = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    if img is None:
        raise ImageReadError(p, "not a decodable image (corrupt or unsupported format)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def as_rgb_u8(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Validate an engine input image: (H, W, 3) uint8 RGB; (H, W) is expanded to 3 channels."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"{what}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"{what}: expected dtype uint8, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"{what}: expected shape (H, W, 3), got {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"{what}: empty image {image.shape}")
    return np.ascontiguousarray(image)
