"""INT8 encoder: static post-training quantization of ``models/encoder.onnx``.

One command (CPU, about a minute)::

    python -m faceunlock.training.quantize [--lfw ../shared/datasets/lfw]

What it does:

1. Calibration data: the first ``--images`` distinct images of LFW ``pairsDevTrain.txt`` (never
   DevTest), aligned by the runtime pipeline (centre face, central fallback box), each chip
   zoomed 1.05 and mirrored exactly as :meth:`Pipeline.embed_chips` feeds the encoder, so the
   activation ranges are those the runtime sees.
2. onnxruntime's static quantizer: QDQ format, weights int8 per output channel, activations
   uint8, ranges from the 99.999th percentile of each activation's histogram (min/max ranges
   lost 0.3 points of LFW accuracy in our trial; percentile lost none).
3. The result is written atomically with a sidecar: source (the fp32 file and its sha256),
   licence (CC0, as the weights it was made from), input/output spec, calibration, and the
   fp32 sidecar's threshold until ``benchmarks/fit_far_table.py --encoder encoder-int8.onnx``
   fits the int8 model's own FAR table and threshold.

The output is deterministic for a given onnxruntime version and calibration set (a test
checks two runs give the same bytes). On CPUs with AVX-512 VNNI or AVX-VNNI the int8
encoder runs about 2.2x faster than fp32 (``faceunlock bench``; figures in the README).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faceunlock.engine.modelfile import atomic_write_bytes, load_sidecar, sha256_file, write_sidecar
from faceunlock.paths import models_dir, shared_dir

DEFAULT_OUT = "encoder-int8.onnx"
CALIBRATION_IMAGES = 500
#: chips per calibration batch (all batches must be the same size for the histogram collector)
CALIBRATION_BATCH = 8
PERCENTILE = 99.999


def calibration_images(pairs_file: Path, limit: int) -> list[str]:
    """The first ``limit`` distinct image paths (relative to ``images/``) of a pairs file."""
    from faceunlock.evaluation import lfw

    return lfw.read_pairs(pairs_file).images()[:limit]


def encoder_inputs(chips: np.ndarray, zoom: float = 1.05) -> np.ndarray:
    """What the runtime feeds the encoder for ``chips``: each chip zoomed about its centre,
    followed by the mirrored copies (:meth:`Pipeline.embed_chips`)."""
    from faceunlock.engine.pipeline import Pipeline, PipelineSettings

    pipe = Pipeline(PipelineSettings(zoom=zoom))
    zoomed = pipe.zoom_chips(chips)
    return np.ascontiguousarray(np.concatenate([zoomed, zoomed[:, :, ::-1]], axis=0))


class _Reader:
    """onnxruntime CalibrationDataReader over a uint8 chip array in equal batches of
    CALIBRATION_BATCH (a short last batch is dropped)."""

    def __init__(self, name: str, chips: np.ndarray) -> None:
        self.name, self.chips, self.i = name, chips, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i + CALIBRATION_BATCH > len(self.chips):
            return None
        batch = self.chips[self.i : self.i + CALIBRATION_BATCH]
        self.i += CALIBRATION_BATCH
        return {self.name: batch}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:  # pragma: no cover - protocol
        while (b := self.get_next()) is not None:
            yield b


def quantize_bytes(src: Path, chips: np.ndarray) -> bytes:
    """INT8 QDQ model bytes for the fp32 encoder ``src``, calibrated on ``chips`` (uint8
    (N, 150, 150, 3), already in the form the runtime feeds)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(src))
    name = model.graph.input[0].name

    class Reader(_Reader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="faceunlock-quant-") as tmp:
        pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(src), str(pre))
        quantize_static(
            str(pre), str(out), Reader(name, chips),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": PERCENTILE},
        )
        q = onnx.load(str(out))
    q.producer_name = "faceunlock.training.quantize"
    q.producer_version = "1"
    q.doc_string = ""
    for p in q.metadata_props:
        if p.key == "source":
            p.value = f"{src.name} quantized to int8 (QDQ) by faceunlock.training.quantize"
    return bytes(q.SerializeToString(deterministic=True))


def sidecar(src: Path, n_images: int, n_chips: int) -> dict[str, Any]:
    base = load_sidecar(src)
    keep = ("licence", "input", "output", "metric", "chip", "opset", "default_threshold",
            "far_table", "lfw_devtrain")
    meta = {k: base[k] for k in keep if k in base}
    meta["source"] = (f"{src.name} (sha256 {base['sha256']}) quantized to int8 by "
                      "faceunlock.training.quantize; " + str(base.get("source", "")))
    meta["quantization"] = {
        "format": "QDQ", "weights": "int8 per output channel", "activations": "uint8",
        "calibration": f"percentile {PERCENTILE}",
        "calibration_data": (f"first {n_images} distinct images of LFW pairsDevTrain.txt, "
                             f"runtime chips zoomed 1.05 plus mirrors ({n_chips} inputs)"),
        "fp32_sha256": base["sha256"],
    }
    meta["far_table_note"] = ("copied from the fp32 model until benchmarks/fit_far_table.py "
                              "--encoder refits it")
    return meta


def quantize(src: Path, out: Path, lfw_root: Path, n_images: int = CALIBRATION_IMAGES,
             log: Any = print) -> Path:
    """Make ``out`` (and its sidecar) from ``src``; returns ``out``."""
    from faceunlock.training.data import load_chips

    rels = calibration_images(lfw_root / "pairsDevTrain.txt", n_images)
    log(f"aligning {len(rels)} calibration images from {lfw_root / 'pairsDevTrain.txt'}")
    data = load_chips(lfw_root / "images", rels)
    chips = encoder_inputs(data["chips"])
    log(f"calibrating on {len(chips)} encoder inputs")
    blob = quantize_bytes(src, chips)
    atomic_write_bytes(out, blob)
    write_sidecar(out, sidecar(src, len(rels), len(chips)))
    log(f"wrote {out} ({len(blob) / 1e6:.1f} MB, sha256 {sha256_file(out)[:12]}...)")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    ap.add_argument("--src", type=Path, default=models_dir() / "encoder.onnx",
                    help="fp32 encoder (default: models/encoder.onnx)")
    ap.add_argument("--out", type=Path, default=models_dir() / DEFAULT_OUT)
    ap.add_argument("--lfw", type=Path, default=shared_dir() / "datasets" / "lfw",
                    help="LFW root (pairsDevTrain.txt, images/)")
    ap.add_argument("--images", type=int, default=CALIBRATION_IMAGES,
                    help="calibration images (distinct, from pairsDevTrain)")
    args = ap.parse_args(argv)
    if not (args.lfw / "pairsDevTrain.txt").is_file():
        print(f"error: {args.lfw / 'pairsDevTrain.txt'} not found (give --lfw)", file=sys.stderr)
        return 2
    quantize(args.src, args.out, args.lfw, args.images,
             log=lambda s: print(s, file=sys.stderr))
    print(json.dumps({"out": str(args.out), "sha256": sha256_file(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
