"""Reader for dlib's binary serialization format (``dlib/serialize.h``).

Only reading is implemented; it is used by :mod:`faceunlock.training.convert_dlib` to turn
dlib's CC0 ``.dat`` model files into ONNX / npz. Pure numpy, no torch.

Primitives (all facts from dlib's serialize.h, see ``docs/model-formats.md``):

* integer: one control byte (low 4 bits = byte count, bit 0x80 = negative), then the
  magnitude little-endian;
* float/double: packed int64 mantissa, packed int16 exponent, value = m * 2**e
  (exponents 32000/32001/32002 = +inf/-inf/NaN);
* bool: one ASCII byte ``'0'``/``'1'``;
* string: packed length, then bytes;
* tensor: packed version 2, four packed dims (N, K, R, C), then float32 LE data;
* alias tensor: packed version 1, four packed dims, no data;
* matrix: packed *negated* rows and cols, then one packed float per element.
"""

from __future__ import annotations

import builtins
import math
from pathlib import Path

import numpy as np


class DlibFormatError(ValueError):
    """The byte stream does not follow dlib's serialization format."""


class DlibReader:
    """Sequential reader over the bytes of a dlib ``.dat`` file."""

    def __init__(self, data: bytes, name: str = "<bytes>") -> None:
        self.data = data
        self.pos = 0
        self.name = name

    @classmethod
    def open(cls, path: str | Path) -> DlibReader:
        p = Path(path)
        return cls(p.read_bytes(), str(p))

    def _fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(f"{self.name}: {what} at byte offset {self.pos}")

    def _take(self, n: builtins.int) -> bytes:
        if self.pos + n > len(self.data):
            raise self._fail(f"unexpected end of file (wanted {n} bytes)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    @property
    def remaining(self) -> builtins.int:
        return len(self.data) - self.pos

    def int(self) -> builtins.int:
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        if size > 8:
            raise self._fail(f"integer control byte 0x{ctrl:02x} claims {size} bytes")
        value = int.from_bytes(self._take(size), "little") if size else 0
        return -value if ctrl & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent == 32002:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def bool(self) -> bool:
        b = self._take(1)
        if b == b"1":
            return True
        if b == b"0":
            return False
        raise self._fail(f"bool byte {b!r} is neither '0' nor '1'")

    def string(self) -> str:
        n = self.int()
        if n < 0 or n > self.remaining:
            raise self._fail(f"string length {n} out of range")
        return self._take(n).decode("latin-1")

    def expect_string(self, expected: str) -> None:
        start = self.pos
        got = self.string()
        if got != expected:
            self.pos = start
            raise self._fail(f"expected record {expected!r}, found {got!r}")

    def expect_int(self, expected: builtins.int, what: str = "version") -> None:
        got = self.int()
        if got != expected:
            raise self._fail(f"expected {what} {expected}, found {got}")

    def tensor(self) -> np.ndarray:
        """A data tensor: returns float32 array of shape (N, K, R, C)."""
        self.expect_int(2, "tensor version")
        dims = [self.int() for _ in range(4)]
        if any(d < 0 for d in dims):
            raise self._fail(f"negative tensor dims {dims}")
        count = int(np.prod(dims)) if dims else 0
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").reshape(dims).astype(np.float32)

    def alias_tensor(self) -> tuple[builtins.int, builtins.int, builtins.int, builtins.int]:
        self.expect_int(1, "alias tensor version")
        n, k, r, c = (self.int() for _ in range(4))
        return (n, k, r, c)

    def matrix(self) -> np.ndarray:
        """A dlib matrix of floats: returns float64 array (rows, cols)."""
        rows = -self.int()
        cols = -self.int()
        if rows < 0 or cols < 0:
            raise self._fail(f"bad matrix shape {rows}x{cols}")
        vals = [self.float() for _ in range(rows * cols)]
        return np.asarray(vals, dtype=np.float64).reshape(rows, cols)
