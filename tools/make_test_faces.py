"""Write the committed test faces (tests/data/faces) from the CC-BY 4.0 webcam clips.

    python tools/make_test_faces.py [--clips ../shared/datasets/clips] [--out tests/data/faces]

Each face image is a square crop of one clip frame around one face, twice the side of the
face's detector box, scaled to 250x250: the detector then finds a face of 95-115 px in it, as
in an LFW image;
``pair-00.jpg`` is a whole frame with both people. The boxes below were found once with
``FaceDetector(min_face=40)`` and are written here, so the output depends only on the clips
and OpenCV (GIF decoding, resizing, JPEG encoding at quality 95): a run with the same OpenCV
gives the same bytes. The clips are "Sample videos" by Intel Corporation
(intel-iot-devkit/sample-videos), CC-BY 4.0; see tests/data/faces/README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
FEMALE = "head-pose-face-detection-female.gif"
MALE = "head-pose-face-detection-male.gif"
BOTH = "head-pose-face-detection-female-and-male.gif"
SIDE = 250  # LFW's image size
SCALE = 2.0  # crop side / detector box side
QUALITY = 95

#: output name -> (clip, frame index, face box (x0, y0, x1, y1) in the 480x270 frame, or
#: None for the whole frame)
FACES: dict[str, tuple[str, int, tuple[int, int, int, int] | None]] = {
    "woman-00.jpg": (FEMALE, 0, (164, 68, 243, 147)),  # head turned
    "woman-09.jpg": (FEMALE, 9, (188, 68, 267, 147)),  # towards the camera
    "woman-15.jpg": (FEMALE, 15, (204, 68, 283, 147)),
    "woman-pair-00.jpg": (BOTH, 0, (60, 68, 139, 147)),  # the two-person clip
    "man-00.jpg": (MALE, 0, (204, 52, 283, 131)),
    "man-30.jpg": (MALE, 30, (212, 52, 291, 131)),
    "man-pair-00.jpg": (BOTH, 0, (324, 60, 403, 139)),
    "man-pair-30.jpg": (BOTH, 30, (292, 68, 371, 147)),  # head tilted
    "pair-00.jpg": (BOTH, 0, None),  # both people, the whole frame
}


def clip_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of a clip, BGR as OpenCV decodes it."""
    cap = cv2.VideoCapture(str(path))
    try:
        for _ in range(index + 1):
            ok, frame = cap.read()
            if not ok:
                raise SystemExit(f"{path}: no frame {index}")
    finally:
        cap.release()
    return frame


def face_crop(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A SIDE x SIDE crop centred on ``box`` (moved inside the frame where it would leave it)."""
    h, w = frame.shape[:2]
    side = round((box[2] - box[0] + 1) * SCALE)
    cx, cy = (box[0] + box[2] + 1) // 2, (box[1] + box[3] + 1) // 2
    x0 = min(max(cx - side // 2, 0), w - side)
    y0 = min(max(cy - side // 2, 0), h - side)
    crop = frame[y0:y0 + side, x0:x0 + side]
    return cv2.resize(crop, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=Path, default=REPO.parent / "shared" / "datasets" / "clips")
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "faces")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    for name, (clip, index, box) in FACES.items():
        frame = clip_frame(a.clips / clip, index)
        img = frame if box is None else face_crop(frame, box)
        ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        if not ok:
            raise SystemExit(f"cannot encode {name}")
        (a.out / name).write_bytes(data.tobytes())
        print(f"{name}: {clip} frame {index}, {img.shape[1]}x{img.shape[0]}, "
              f"{len(data) // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
