"""Image reading at the engine's I/O boundary (BGR on disk/OpenCV -> RGB uint8 inside).

Every image file is checked before it is decoded: at most :data:`MAX_IMAGE_FILE_BYTES` bytes,
and at most :data:`~faceunlock.MAX_IMAGE_PIXELS` pixels (40 MP) as its header states, so a
small file that claims a huge size (a "decompression bomb": a 1 MB PNG of 20000×20000 pixels)
is refused without allocating anything. :func:`image_size` reads the size from the headers
of PNG, JPEG, BMP, WebP, TIFF (and BigTIFF), PBM/PGM/PPM/PAM/PFM, GIF, Sun raster, Radiance
HDR, JPEG 2000 and AVIF/HEIF; for any other format OpenCV's own header check applies, set to
the same limit (``OPENCV_IO_MAX_IMAGE_PIXELS``, see :mod:`faceunlock`).
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceunlock import MAX_IMAGE_PIXELS
from faceunlock.errors import ImageReadError, InputError

#: the largest image file read at all (a 40 MP 16-bit RGB TIFF is 240 MB)
MAX_IMAGE_FILE_BYTES = 256 << 20

#: the file suffixes (lower case) taken for images wherever a folder of them is read: image
#: folders as a camera, datasets, galleries, liveness material
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm"}
)


def _natural_key(p: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def list_images(folder: str | Path, *, recursive: bool = False) -> list[Path]:
    """The image files (:data:`IMAGE_SUFFIXES`, any case) in ``folder``, hidden ones left out,
    in natural order (``2.png`` before ``10.png``, case-insensitive).

    With ``recursive`` the files of every sub-folder (not hidden) are included too, each
    folder's files in natural order, folders in natural order of their relative paths.
    OSError when ``folder`` cannot be listed.
    """
    folder = Path(folder)
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
    ]
    out = sorted(files, key=_natural_key)
    if recursive:
        subdirs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        for d in sorted(subdirs, key=_natural_key):
            out.extend(list_images(d, recursive=True))
    return out


# ------------------------------------------------------------------------- header parsing


def _u16(data: bytes, at: int, order: str = ">") -> int:
    return int(struct.unpack_from(order + "H", data, at)[0])


def _u32(data: bytes, at: int, order: str = ">") -> int:
    return int(struct.unpack_from(order + "I", data, at)[0])


def _png(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    return _u32(data, 16), _u32(data, 20)


_JPEG_SOF = {*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}


def _jpeg(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        length = _u16(data, i + 2)
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                return None
            height, width = _u16(data, i + 5), _u16(data, i + 7)
            # height 0: defined later by a DNL marker, i.e. unknown here
            return (width, height) if height else None
        if length < 2:
            return None
        i += 2 + length
    return None


def _bmp(data: bytes) -> tuple[int, int] | None:
    header = _u32(data, 14, "<")
    if header == 12:  # BITMAPCOREHEADER
        return _u16(data, 18, "<"), _u16(data, 20, "<")
    width, height = struct.unpack_from("<ii", data, 18)
    return abs(int(width)), abs(int(height))


def _webp(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if kind == b"VP8L" and data[20] == 0x2F:
        bits = _u32(data, 21, "<")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return _u16(data, 26, "<") & 0x3FFF, _u16(data, 28, "<") & 0x3FFF
    return None


def _tiff(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    big = _u16(data, 2, order) == 43
    if big:
        ifd = int(struct.unpack_from(order + "Q", data, 8)[0])
        count = int(struct.unpack_from(order + "Q", data, ifd)[0])
        first, step, value_at = ifd + 8, 20, 12
    else:
        ifd = _u32(data, 4, order)
        count = _u16(data, ifd, order)
        first, step, value_at = ifd + 2, 12, 8
    size: dict[int, int] = {}
    for k in range(min(count, 4096)):
        e = first + k * step
        tag, kind = _u16(data, e, order), _u16(data, e + 2, order)
        if tag not in (256, 257):
            continue
        if kind == 3:  # SHORT
            size[tag] = _u16(data, e + value_at, order)
        elif kind == 4:  # LONG
            size[tag] = _u32(data, e + value_at, order)
        elif kind == 16:  # LONG8 (BigTIFF)
            size[tag] = int(struct.unpack_from(order + "Q", data, e + value_at)[0])
    if 256 in size and 257 in size:
        return size[256], size[257]
    return None


_PNM_TOKEN = re.compile(rb"(?:\s|#[^\n]*\n?)*(\d+)")


def _pnm(data: bytes) -> tuple[int, int] | None:
    if data[:2] == b"P7":  # PAM: WIDTH / HEIGHT lines before ENDHDR
        head = data[: data.find(b"ENDHDR")] if b"ENDHDR" in data[:4096] else data[:4096]
        w = re.search(rb"^WIDTH\s+(\d+)", head, re.MULTILINE)
        h = re.search(rb"^HEIGHT\s+(\d+)", head, re.MULTILINE)
        return (int(w.group(1)), int(h.group(1))) if w and h else None
    m1 = _PNM_TOKEN.match(data, 2)
    m2 = _PNM_TOKEN.match(data, m1.end()) if m1 else None
    if not (m1 and m2) or len(m1.group(1)) > 12 or len(m2.group(1)) > 12:
        return None
    return int(m1.group(1)), int(m2.group(1))


def _hdr(data: bytes) -> tuple[int, int] | None:
    m = re.search(rb"\n\n([-+][XY]) (\d{1,12}) ([-+][XY]) (\d{1,12})", data[:65536])
    if m is None:
        return None
    a, b = int(m.group(2)), int(m.group(4))
    return (b, a) if m.group(1).endswith(b"Y") else (a, b)


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """ISO base media / JP2 boxes in ``data[start:end]``: (type, content start, content end)."""
    out: list[tuple[bytes, int, int]] = []
    i = start
    while i + 8 <= end and len(out) < 1024:
        size, kind = _u32(data, i), data[i + 4 : i + 8]
        head = 8
        if size == 1:
            size, head = int(struct.unpack_from(">Q", data, i + 8)[0]), 16
        elif size == 0:
            size = end - i
        if size < head:
            break
        out.append((kind, i + head, min(i + size, end)))
        i += size
    return out


def _jp2(data: bytes) -> tuple[int, int] | None:
    if data[:4] == b"\xff\x4f\xff\x51":  # raw codestream: SIZ right after SOC
        xsiz, ysiz, xo, yo = struct.unpack_from(">IIII", data, 8)
        return max(int(xsiz) - int(xo), 0), max(int(ysiz) - int(yo), 0)
    for kind, a, b in _boxes(data, 0, len(data)):
        if kind == b"jp2h":
            for sub, c, _ in _boxes(data, a, b):
                if sub == b"ihdr":
                    height, width = _u32(data, c), _u32(data, c + 4)
                    return width, height
    return None


def _isobmff(data: bytes) -> tuple[int, int] | None:
    """AVIF / HEIF: the largest ``ispe`` (image spatial extents) property of the file."""
    best: tuple[int, int] | None = None
    for kind, a, b in _boxes(data, 0, len(data)):
        if kind != b"meta":
            continue
        for sub, c, d in _boxes(data, a + 4, b):  # meta is a full box: version + flags
            if sub != b"iprp":
                continue
            for prop, e, f in _boxes(data, c, d):
                if prop != b"ipco":
                    continue
                for item, g, _ in _boxes(data, e, f):
                    if item == b"ispe":
                        width, height = _u32(data, g + 4), _u32(data, g + 8)
                        if best is None or width * height > best[0] * best[1]:
                            best = (width, height)
    return best


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of an encoded image as its header states, without decoding it;
    None when the format is not one parsed here or the header is cut short (the decoder then
    decides). data: the file's bytes (only the header is looked at)."""
    head = bytes(data[:16])
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png(data)
        if head.startswith(b"\xff\xd8"):
            return _jpeg(data)
        if head.startswith(b"BM"):
            return _bmp(data)
        if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
            return _webp(data)
        if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _tiff(data)
        if re.match(rb"P[1-7]", head) or head[:2] in (b"PF", b"Pf"):
            return _pnm(data)
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return _u16(data, 6, "<"), _u16(data, 8, "<")
        if head.startswith(b"\x59\xa6\x6a\x95"):  # Sun raster
            return _u32(data, 4), _u32(data, 8)
        if head.startswith(b"#?"):  # Radiance HDR
            return _hdr(data)
        if head.startswith((b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0cjP  ")):
            return _jp2(data)
        if head[4:8] == b"ftyp":
            return _isobmff(data)
    except (struct.error, IndexError):
        return None
    return None


def check_image_size(width: int, height: int, path: str | Path) -> None:
    """ImageReadError when ``width × height`` exceeds :data:`~faceunlock.MAX_IMAGE_PIXELS`."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageReadError(
            path,
            f"is {width}×{height} pixels ({width * height / 1e6:.0f} MP), more than the "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP FaceUnlock decodes; scale it down",
        )


def read_image_bytes(path: str | Path) -> np.ndarray:
    """The bytes of an image file as uint8 (N,), N ≥ 1. ImageReadError naming the file when it
    is missing, not a regular file, unreadable, empty or over :data:`MAX_IMAGE_FILE_BYTES`."""
    p = Path(path)
    if not p.exists():
        raise ImageReadError(p, "file not found")
    if not p.is_file():
        raise ImageReadError(p, "not a regular file")
    try:
        size = os.stat(p).st_size
        if size > MAX_IMAGE_FILE_BYTES:
            raise ImageReadError(
                p, f"file is {size} bytes, more than the {MAX_IMAGE_FILE_BYTES >> 20} MiB limit"
            )
        raw = np.fromfile(str(p), dtype=np.uint8, count=MAX_IMAGE_FILE_BYTES + 1)
    except OSError as e:
        raise ImageReadError(p, f"cannot be read ({e.strerror})") from e
    if raw.size == 0:
        raise ImageReadError(p, "file is empty")
    if raw.size > MAX_IMAGE_FILE_BYTES:
        raise ImageReadError(p, f"file is more than the {MAX_IMAGE_FILE_BYTES >> 20} MiB limit")
    return raw


def decode_image(raw: np.ndarray, path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode an image file's bytes with ``cv2.imdecode(raw, flags)`` after checking its size
    from the header. ImageReadError naming ``path`` when it is too large or not decodable."""
    size = image_size(raw[: 1 << 20].tobytes())  # headers sit in the first MiB
    if size is not None:
        check_image_size(*size, path)
    try:
        img = cv2.imdecode(raw, flags)
    except cv2.error as e:  # OpenCV's own header check (OPENCV_IO_MAX_IMAGE_PIXELS) and others
        if "MAX_IMAGE" in str(e):
            raise ImageReadError(
                path, f"is larger than the {MAX_IMAGE_PIXELS / 1e6:.0f} MP FaceUnlock decodes"
            ) from None
        raise ImageReadError(path, "not a decodable image (the decoder failed)") from None
    if img is None or img.size == 0:
        raise ImageReadError(path, "not a decodable image (corrupt or unsupported format)")
    check_image_size(img.shape[1], img.shape[0], path)
    return np.asarray(img)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3). Greyscale files are expanded to 3 channels.

    Raises ImageReadError naming the file when it is missing, unreadable, not an image, or
    larger than :data:`~faceunlock.MAX_IMAGE_PIXELS` (checked before decoding).
    """
    p = Path(path)
    img = decode_image(read_image_bytes(p), p, cv2.IMREAD_COLOR)
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
