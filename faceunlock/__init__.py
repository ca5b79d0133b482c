"""FaceUnlock: 1:1 face verification for the Linux desktop."""

from __future__ import annotations

import os

__version__ = "0.1.0"

# Nothing leaves the machine. onnxruntime (1.2x+, Linux builds included) ships Microsoft's 1DS
# telemetry client: `import onnxruntime` writes a device id and an event queue
# ($XDG_CACHE_HOME or ~/.cache)/Microsoft/DeveloperTools/.onnxruntime/{deviceid,onnxruntime.db}
# (an SQLite db of events holding the OS and release, the process path, the network kind,
# CPU and container details) for upload. ``onnxruntime.disable_telemetry_events()`` comes too
# late: the files are written at import. The library reads ORT_DISABLE_TELEMETRY at import
# (1/true/yes: off; 0 keeps it on); every FaceUnlock process imports this package before
# onnxruntime, so it is switched off here, whatever the environment says (measured with
# onnxruntime 1.32.0: no file at all afterwards; tests/engine/test_no_telemetry.py).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

#: the largest image FaceUnlock decodes, in pixels (width × height): 40 MP, more than any
#: webcam or phone photo of a face. Larger images are refused (exit 4, BAD_INPUT) from their
#: header, before any pixel is decoded; see :mod:`faceunlock.engine.imageio`.
MAX_IMAGE_PIXELS = 40_000_000


def _limit_opencv_decoding() -> None:
    """OpenCV reads ``OPENCV_IO_MAX_IMAGE_PIXELS`` once, when it is loaded, and then refuses
    to decode any image above it from the image's header. Set it to :data:`MAX_IMAGE_PIXELS`
    (unless a smaller limit is already set) before anything of ours imports cv2: the guard for
    the formats whose headers :mod:`faceunlock.engine.imageio` does not parse itself."""
    current = os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", "")
    if not (current.isdigit() and 0 < int(current) <= MAX_IMAGE_PIXELS):
        os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(MAX_IMAGE_PIXELS)


_limit_opencv_decoding()
