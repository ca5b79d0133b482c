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
encoder runs about 2.2x faster than fp32 (``faceunlock bench``; figures in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faceunlock.engine.modelfile import load_sidecar, sha256_file, write_sidecar
from faceunlock.fileio import atomic_write_bytes
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
    from faceunlock.engine.pipeline import zoom_chips

    zoomed = zoom_chips(chips, zoom)
    return np.ascontiguousarray(np.concatenate([zoomed, zoomed[:, :, ::-1]], axis=0))


def _quantize_static(src: Path, batches: list[dict[str, np.ndarray]], method: str,
                     extra: dict[str, Any], exclude: Sequence[str] = ()) -> bytes:
    """INT8 QDQ bytes of ``src`` (weights int8 per channel, activations uint8), calibrated by
    running ``batches`` through it; metadata made deterministic. ``exclude``: names of nodes
    left in float (their outputs are still quantized where a quantized node reads them)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    with tempfile.TemporaryDirectory(prefix="faceunlock-quant-") as tmp:
        pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(src), str(pre))
        quantize_static(
            str(pre), str(out), Reader(),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, method), extra_options=extra,
            nodes_to_exclude=list(exclude),
        )
        q = onnx.load(str(out))
    q.producer_name = "faceunlock.training.quantize"
    q.producer_version = "1"
    q.doc_string = ""
    for p in q.metadata_props:
        if p.key == "source":
            p.value = f"{src.name} quantized to int8 (QDQ) by faceunlock.training.quantize"
    return bytes(q.SerializeToString(deterministic=True))


def quantize_bytes(src: Path, chips: np.ndarray) -> bytes:
    """INT8 encoder bytes for the fp32 encoder ``src``, calibrated on ``chips`` (uint8
    (N, 150, 150, 3), already in the form the runtime feeds) with percentile ranges."""
    import onnx

    name = onnx.load(str(src)).graph.input[0].name
    n = len(chips) - len(chips) % CALIBRATION_BATCH
    batches = [{name: chips[i : i + CALIBRATION_BATCH]} for i in range(0, n, CALIBRATION_BATCH)]
    return _quantize_static(src, batches, "Percentile", {"CalibPercentile": PERCENTILE})


class _Recorder:
    """Wraps an onnxruntime session and keeps a copy of every input it is run on."""

    def __init__(self, session: Any, store: list[dict[str, np.ndarray]]) -> None:
        self.session, self.store = session, store

    def run(self, outputs: Any, feed: dict[str, np.ndarray]) -> Any:
        self.store.append({k: v.copy() for k, v in feed.items()})
        return self.session.run(outputs, feed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def detector_inputs(src: Path, lfw_root: Path, n_images: int) -> list[dict[str, np.ndarray]]:
    """What the coarse pass and the face tracker feed the detector on webcam-like frames: the
    first ``n_images`` peopleDevTrain people's first image, scaled 1.0/1.6/2.2x (faces of
    ~110-240 px) on a 640x480 frame of a random grey, run as the unlock path runs them
    (coarse-first search, then two tracked frames)."""
    import cv2

    from faceunlock.engine.imageio import read_image
    from faceunlock.engine.pipeline import Pipeline, PipelineSettings
    from faceunlock.evaluation import lfw
    from faceunlock.training.data import read_people

    pipe = Pipeline(PipelineSettings(max_face=400, coarse_first=True, models=str(src.parent)))
    # calibrate the fp32 model on the inputs the int8 one will get: every detector of the
    # pipeline runs it, so the search does not depend on the model being made
    for det in (pipe.coarse, pipe.tracker, pipe.detector, pipe.fallback.small):
        det.path = src
    store: list[dict[str, np.ndarray]] = []
    for det in (pipe.coarse, pipe.tracker):
        det.load()
        det._session = _Recorder(det._session, store)
    rng = np.random.default_rng(0)
    people = read_people(lfw_root / "peopleDevTrain.txt")[:n_images]
    for i, (name, _count) in enumerate(people):
        img = read_image(lfw_root / "images" / lfw.image_relpath(name, 1))
        big = cv2.resize(img, None, fx=(1.0, 1.6, 2.2)[i % 3], fy=(1.0, 1.6, 2.2)[i % 3])
        h, w = min(big.shape[0], 480), min(big.shape[1], 640)
        frame = np.full((480, 640, 3), int(rng.integers(40, 200)), np.uint8)
        y0, x0 = (480 - h) // 2, (640 - w) // 2
        frame[y0 : y0 + h, x0 : x0 + w] = big[:h, :w]
        pipe.reset_tracking()
        pipe._last_face_px = None  # every frame starts coarse, whatever the last face's size
        for _ in range(3):
            pipe.detect(frame, track=True)
    return store


def float_nodes(src: Path) -> list[str]:
    """The nodes of the detector ``src`` that stay float in its int8 copy: the first
    convolution (it reads the raw image) and the score head after the last ReLU (the 9x9
    depthwise convolution, its channel sum and bias).

    Measured on the bench frame's full scan (640x480, one core): with 3 input channels
    onnxruntime's int8 convolution is slower than its float one (~30 against ~18 ms), and the
    int8 depthwise head was slower too. A quantized head also rounds the scores to 256 levels:
    neighbouring windows then tie, and the first in raster order wins, so boxes moved by a
    stride or a size step against fp32's on 2 of 3 LFW images; with a float head, 1 in 10.
    """
    import onnx

    g = onnx.load(str(src)).graph
    name = g.input[0].name
    first = [n.name for n in g.node if n.op_type == "Conv" and n.input[0] == name]
    if len(first) != 1:
        raise ValueError(f"{src}: expected one Conv reading the input {name!r}, "
                         f"found {len(first)}")
    relus = [i for i, n in enumerate(g.node) if n.op_type == "Relu"]
    if not relus:
        raise ValueError(f"{src}: no Relu node, not the MMOD detector's graph")
    head = [n.name for n in g.node[relus[-1] + 1:] if n.op_type != "Constant"]
    return first + head


def quantize_detector(src: Path, out: Path, lfw_root: Path, n_images: int = 60,
                      log: Any = print) -> Path:
    """``detector-int8.onnx`` (and sidecar) from the fp32 detector ``src``: min/max ranges
    over the coarse-pass and tracker inputs of :func:`detector_inputs` (their sizes vary, which
    the percentile histograms cannot merge); the first convolution and the score head stay
    float (:func:`float_nodes`)."""
    inputs = detector_inputs(src, lfw_root, n_images)
    log(f"calibrating the detector on {len(inputs)} coarse-pass and tracker inputs")
    blob = _quantize_static(src, inputs, "MinMax", {}, exclude=float_nodes(src))
    if _unchanged(out, blob):
        log(f"{out} is unchanged (same bytes)")
        return out
    atomic_write_bytes(out, blob)
    meta = _int8_sidecar(
        src, "min/max",
        f"first image of the first {n_images} peopleDevTrain people on 640x480 frames, "
        f"coarse-pass and tracker inputs ({len(inputs)})",
        used_for="the coarse pass, the face tracker and full scans whose pyramid is cut short "
                 "(min_face above 80 or max_face: the app's settings); dlib's full pyramid "
                 "(min_face 80, no max_face) stays fp32; the first convolution and the score "
                 "head are float")
    write_sidecar(out, meta)
    log(f"wrote {out} ({len(blob) / 1e6:.2f} MB, sha256 {sha256_file(out)[:12]}...)")
    return out


def _int8_sidecar(src: Path, calibration: str, calibration_data: str,
                  **extra: str) -> dict[str, Any]:
    """The sidecar of an int8 copy of ``src``: everything ``src``'s sidecar says (input spec,
    metric, threshold, FAR table, ...), a source naming ``src`` and its sha256, and how it was
    quantized."""
    base = load_sidecar(src)
    meta = {k: v for k, v in base.items() if k not in ("sha256", "file")}
    meta["source"] = (f"{src.name} (sha256 {base['sha256']}) quantized to int8 by "
                      "faceunlock.training.quantize; " + str(base.get("source", "")))
    meta["quantization"] = {
        "format": "QDQ", "weights": "int8 per output channel", "activations": "uint8",
        "calibration": calibration, "calibration_data": calibration_data,
        "fp32_sha256": base["sha256"], **extra,
    }
    return meta


def sidecar(src: Path, n_images: int, n_chips: int) -> dict[str, Any]:
    """The int8 encoder's sidecar; its FAR table is the fp32 one until refitted."""
    meta = _int8_sidecar(
        src, f"percentile {PERCENTILE}",
        f"first {n_images} distinct images of LFW pairsDevTrain.txt, runtime chips zoomed "
        f"1.05 plus mirrors ({n_chips} inputs)")
    meta["far_table_note"] = ("copied from the fp32 model until benchmarks/fit_far_table.py "
                              "--precision int8 refits it")
    return meta


def _unchanged(out: Path, blob: bytes) -> bool:
    """``out`` already holds ``blob`` and has a sidecar (then neither is rewritten)."""
    from faceunlock.engine.modelfile import sha256_bytes, sidecar_path

    return (out.is_file() and sidecar_path(out).is_file()
            and sha256_file(out) == sha256_bytes(blob))


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
    if _unchanged(out, blob):
        log(f"{out} is unchanged (same bytes); its sidecar and FAR table are kept")
        return out
    atomic_write_bytes(out, blob)
    write_sidecar(out, sidecar(src, len(rels), len(chips)))
    log(f"wrote {out} ({len(blob) / 1e6:.1f} MB, sha256 {sha256_file(out)[:12]}...)")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    ap.add_argument("--models", type=Path, default=models_dir(),
                    help="models directory: reads encoder.onnx and detector.onnx, writes "
                         "encoder-int8.onnx and detector-int8.onnx beside them")
    ap.add_argument("--only", choices=("encoder", "detector"), default=None)
    ap.add_argument("--lfw", type=Path, default=shared_dir() / "datasets" / "lfw",
                    help="LFW root (pairsDevTrain.txt, peopleDevTrain.txt, images/)")
    ap.add_argument("--images", type=int, default=CALIBRATION_IMAGES,
                    help="encoder calibration images (distinct, from pairsDevTrain)")
    args = ap.parse_args(argv)
    if not (args.lfw / "pairsDevTrain.txt").is_file():
        print(f"error: {args.lfw / 'pairsDevTrain.txt'} not found (give --lfw)", file=sys.stderr)
        return 2
    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    written = []
    if args.only in (None, "encoder"):
        written.append(quantize(args.models / "encoder.onnx", args.models / DEFAULT_OUT,
                                args.lfw, args.images, log=log))
    if args.only in (None, "detector"):
        written.append(quantize_detector(args.models / "detector.onnx",
                                         args.models / "detector-int8.onnx", args.lfw, log=log))
    print(json.dumps({str(p): sha256_file(p) for p in written}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
