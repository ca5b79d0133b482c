"""Image files that claim more pixels than FaceUnlock decodes (decompression bombs), in
several formats: shared by the image-reading, source, CLI and fuzz tests."""

from __future__ import annotations

import struct
import zlib


def png(width: int, height: int, *, full: bool = False) -> bytes:
    """A PNG of ``width`` × ``height`` black RGB pixels. ``full``: every row is there (a real,
    decodable image, ~1 KB per 4 MP); otherwise only the first rows (a header claiming the
    size, as a decompression bomb's)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\0" * (1 + 3 * width)
    z = zlib.compressobj(9)
    body = b"".join(z.compress(row) for _ in range(height if full else 4)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body)
            + chunk(b"IEND", b""))


def huge_headers(width: int, height: int) -> dict[str, bytes]:
    """Files of several formats whose headers claim ``width`` × ``height`` pixels."""
    jpeg = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
            + b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width)
            + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01" + b"\xff\xd9")
    bmp = (b"BM" + struct.pack("<IHHI", 54, 0, 0, 54)
           + struct.pack("<IiiHHIIiiII", 40, width, -height, 1, 24, 0, 0, 0, 0, 0, 0))
    webp_x = (b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8X" + struct.pack("<I", 10)
              + b"\0\0\0\0" + (width - 1).to_bytes(3, "little")
              + (height - 1).to_bytes(3, "little"))
    tiff = (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2)
            + struct.pack("<HHII", 256, 4, 1, width) + struct.pack("<HHII", 257, 4, 1, height)
            + b"\0\0\0\0")
    return {
        "png": png(width, height),
        "jpg": jpeg,
        "bmp": bmp,
        "webp": webp_x,
        "tif": tiff,
        "ppm": f"P6\n# comment\n{width} {height}\n255\n".encode() + b"\0" * 64,
        "gif": b"GIF89a" + struct.pack("<HH", min(width, 65535), min(height, 65535)) + b"\0" * 8,
    }
