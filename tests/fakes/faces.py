"""The committed test faces (tests/data/faces: CC-BY 4.0 frames of the webcam clips, see its
README), present in every clone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"


@dataclass(frozen=True)
class ParitySample:
    """Images for a comparison with dlib: ``kind`` "faces" (the committed faces and the
    two-person frame) or "lfw" (60 LFW DevTest images, the larger sample)."""

    kind: str
    paths: list[Path]
