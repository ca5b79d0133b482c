"""Presentation attacks on the owner of :class:`clip_material.EnrolledClips` (the woman), made
with the attack kit (tools/attack_kit.py) from her clip's second half: ten copies of one
frame, that frame moved as a hand-held photo, and the clip replayed on a phone screen. Shared
by the liveness tests of ``faceunlock auth`` and of the PAM helper."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from tests.fakes.clip_material import FEMALE, clip_frames, png_folder

REPO = Path(__file__).resolve().parents[2]


def attack_kit() -> ModuleType:
    """tools/attack_kit.py as a module."""
    if "attack_kit" not in sys.modules:
        path = REPO / "tools" / "attack_kit.py"
        spec = importlib.util.spec_from_file_location("attack_kit", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules["attack_kit"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["attack_kit"]


def attacks(root: Path, clips: Path, seed: int = 0) -> dict[str, Path]:
    """PNG folders under ``root``: ``copies``, ``moving-photo`` and ``screen-replay``."""
    kit = attack_kit()
    fem = clip_frames(clips / FEMALE)
    probe = fem[len(fem) // 2:]
    boxes = kit.face_boxes(probe)
    first = next(i for i, b in enumerate(boxes) if b is not None)
    frame = probe[first]
    rng = np.random.default_rng(seed)
    phone, room = kit.make_phone(rng, frame.shape, boxes[first]), kit.room_of(frame, rng)
    replay = [kit.on_phone(f, b if b is not None else boxes[first], phone, room, rng)
              for f, b in zip(probe[first:], boxes[first:], strict=True)]
    return {
        "copies": png_folder(root / "copies", [frame] * 10),
        "moving-photo": png_folder(root / "moving-photo", list(kit.hand_held(frame, rng, 10))),
        "screen-replay": png_folder(root / "screen-replay", replay),
    }
