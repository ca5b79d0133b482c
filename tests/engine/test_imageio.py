"""Image reading: the pixel limit is enforced from the header, before anything is decoded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceunlock import MAX_IMAGE_PIXELS
from faceunlock.engine.imageio import (
    MAX_IMAGE_FILE_BYTES,
    image_size,
    read_image,
)
from faceunlock.errors import AuthStatus, ImageReadError
from tests.fakes.bad_images import huge_headers, png


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tif", ".ppm", ".pgm",
                                 ".pam", ".ras", ".hdr", ".jp2", ".avif", ".gif"])
def test_image_size_reads_every_format_opencv_writes(ext: str) -> None:
    img = np.random.default_rng(0).integers(0, 255, (37, 53, 3)).astype(np.uint8)
    if ext == ".hdr":
        img = img.astype(np.float32) / 255
    if ext == ".pgm":
        img = img[:, :, 0]
    if not cv2.haveImageWriter(ext):
        pytest.skip(f"this OpenCV cannot write {ext}")
    ok, buf = cv2.imencode(ext, img)
    assert ok
    assert image_size(buf.tobytes()) == (53, 37)


@pytest.mark.parametrize("fmt", sorted(huge_headers(8, 8)))
def test_huge_header_is_refused_before_decoding(tmp_path: Path, fmt: str) -> None:
    """50000 × 50000 (a decompression bomb): before, the PNG raised cv2.error (a traceback,
    exit 1); now every format is refused from its header with BAD_INPUT."""
    data = huge_headers(50000, 50000)[fmt]
    assert image_size(data) == (50000, 50000)
    p = tmp_path / f"bomb.{fmt}"
    p.write_bytes(data)
    with pytest.raises(ImageReadError, match=r"50000×50000 pixels \(2500 MP\)") as ei:
        read_image(p)
    assert ei.value.status == AuthStatus.BAD_INPUT
    assert "40 MP" in str(ei.value)


def test_decodable_image_over_the_limit_is_refused(tmp_path: Path) -> None:
    """A real 8000 × 8000 PNG (190 KB): OpenCV decodes it (under its default 1 GP limit) and
    the pipeline then needs gigabytes; now it is refused from the header."""
    p = tmp_path / "big.png"
    p.write_bytes(png(8000, 8000, full=True))
    with pytest.raises(ImageReadError, match="8000×8000 pixels"):
        read_image(p)
    ok = tmp_path / "ok.png"
    ok.write_bytes(png(6000, 6000, full=True))  # 36 MP: under the limit, decoded
    assert read_image(ok).shape == (6000, 6000, 3)


def test_opencv_limit_is_set_before_cv2_loads(tmp_path: Path) -> None:
    """Importing faceunlock sets OPENCV_IO_MAX_IMAGE_PIXELS, so OpenCV itself refuses images
    over the limit in formats the header parser does not know."""
    p = tmp_path / "big.png"
    p.write_bytes(png(8000, 8000, full=True))
    code = (
        "import faceunlock, cv2, numpy as np, sys\n"
        "try:\n"
        f"    cv2.imdecode(np.fromfile({str(p)!r}, np.uint8), cv2.IMREAD_COLOR)\n"
        "except cv2.error as e:\n"
        "    sys.exit(7 if 'MAX_IMAGE' in str(e) else 8)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 7, r.stderr
    assert MAX_IMAGE_PIXELS == 40_000_000


def test_file_size_is_bounded(tmp_path: Path) -> None:
    p = tmp_path / "huge.png"
    with open(p, "wb") as f:
        f.write(png(100, 100, full=True))
        f.truncate(MAX_IMAGE_FILE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(ImageReadError, match="MiB limit"):
        read_image(p)
