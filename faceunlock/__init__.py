"""FaceUnlock: 1:1 face verification for the Linux desktop."""

from __future__ import annotations

__version__ = "0.1.0"
