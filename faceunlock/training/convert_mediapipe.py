"""Convert MediaPipe's face mesh and iris models (Apache-2.0) from TFLite to ONNX, once.

One command, deterministic (re-running gives byte-identical files)::

    python -m faceunlock.training.convert_mediapipe --wheel mediapipe-0.10.21-cp311-...whl \\
        [--out models/] [--fixtures tests/data/mediapipe-reference.npz]

The wheel is PyPI's ``mediapipe==0.10.21`` for CPython 3.11 (``pip download --no-deps
mediapipe==0.10.21``); its sha256 must be :data:`WHEEL_SHA256` (other builds may carry other
models). From it are read

* ``mediapipe/modules/face_landmark/face_landmark.tflite``: 468 3-D points from a 192x192
  crop, plus a face-presence logit; converted with ``tf2onnx`` (``tflite2onnx`` cannot);
* ``mediapipe/modules/iris_landmark/iris_landmark.tflite``: 71 eye-contour and brow points
  and 5 iris points from a 64x64 eye crop; converted with ``tflite2onnx``.

Both converted graphs are then put into the engine's shape (one input, one output, see
:func:`finish`): input ``image`` NHWC float32 RGB in [0, 1], batch 1; the two TFLite outputs
flattened and concatenated into one output (the face-presence logit through a sigmoid).
Before anything is written, onnxruntime is checked against the TFLite interpreter on smooth
random inputs and on crops of ``tests/data/faces`` (:data:`PARITY_TOL`). ``--fixtures``
also writes those reference outputs for ``tests/engine/test_mesh.py``, which checks the
committed models without TensorFlow.

The conversion tools are heavy and never part of FaceUnlock's runtime, its extras or its CI.
Use a throw-away virtual environment (what produced the committed files)::

    python3.11 -m venv /tmp/mpconv && /tmp/mpconv/bin/pip install tensorflow-cpu==2.21.0 \\
        tf2onnx==1.17.0 tflite2onnx==0.4.1 onnx==1.23.2 onnxruntime==1.32.0 \\
        opencv-python-headless platformdirs
    PYTHONPATH=. /tmp/mpconv/bin/python -m faceunlock.training.convert_mediapipe --wheel ...
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceunlock.engine.modelfile import sha256_file, write_sidecar
from faceunlock.errors import InputError, ModelError
from faceunlock.fileio import atomic_write_bytes
from faceunlock.paths import models_dir

WHEEL = "mediapipe==0.10.21 (PyPI, mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl)"
WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
OPSET = 13
INPUT_NAME = "image"
#: max |onnxruntime - TFLite| allowed, on every output value (crop-pixel units for points)
PARITY_TOL = 1e-4
INSTALL_HINT = ("the MediaPipe conversion needs TensorFlow and the converters, never part of "
                "FaceUnlock itself: in a throw-away venv, `pip install tensorflow-cpu==2.21.0 "
                "tf2onnx==1.17.0 tflite2onnx==0.4.1 onnx onnxruntime` (see this module's doc)")


@dataclass(frozen=True)
class Spec:
    key: str
    member: str
    out_name: str
    size: int
    tool: str
    #: TFLite output names, in the order they are concatenated, and their widths
    outputs: tuple[tuple[str, int], ...]
    #: which TFLite outputs go through a sigmoid in the graph
    sigmoid: tuple[str, ...]
    output_name: str
    output_meaning: str
    crop_rule: str
    note: str


MESH = Spec(
    key="mesh",
    member="mediapipe/modules/face_landmark/face_landmark.tflite",
    out_name="face-mesh.onnx",
    size=192,
    tool="tf2onnx",
    outputs=(("conv2d_21", 1404), ("conv2d_31", 1)),
    sigmoid=("conv2d_31",),
    output_name="mesh",
    output_meaning="values 0..1403: 468 points (x, y, z) in crop pixels of the 192x192 input "
                   "(x right, y down, z towards the camera is negative, about the x scale); "
                   "value 1404: face presence, sigmoid of the model's logit, 0..1",
    crop_rule="a square, rotated so the eyes are level, about 1.5x the face's landmark "
              "extent (MediaPipe's rect from landmarks); see faceunlock.engine.mesh",
    note="MediaPipe face mesh (FaceMesh V1, no attention); points in MediaPipe's canonical "
         "468-point topology",
)
IRIS = Spec(
    key="iris",
    member="mediapipe/modules/iris_landmark/iris_landmark.tflite",
    out_name="iris.onnx",
    size=64,
    tool="tflite2onnx",
    outputs=(("output_eyes_contours_and_brows", 213), ("output_iris", 15)),
    sigmoid=(),
    output_name="eye",
    output_meaning="values 0..212: 71 eye-contour and brow points (x, y, z) in crop pixels "
                   "of the 64x64 input; values 213..227: 5 iris points (centre first, "
                   "then 4 on the iris edge)",
    crop_rule="a square 2.3x the eye-corner distance about their midpoint, rotated so the "
              "corners are level; the subject's left eye (the image's right) mirrored "
              "horizontally (the model sees left-looking-like right eyes); see "
              "faceunlock.engine.mesh",
    note="MediaPipe iris landmark model",
)
SPECS = (MESH, IRIS)


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise InputError(f"cannot import {module}: {INSTALL_HINT}") from e


def read_member(wheel: Path, member: str, check_sha: bool = True) -> bytes:
    """The bytes of ``member`` inside the wheel (checked against WHEEL_SHA256)."""
    if not wheel.is_file():
        raise InputError(f"wheel not found: {wheel} (`pip download --no-deps "
                         "mediapipe==0.10.21 --python-version 3.11 --only-binary=:all:`)")
    if check_sha:
        digest = sha256_file(wheel)
        if digest != WHEEL_SHA256:
            raise InputError(f"{wheel}: sha256 {digest[:16]}… is not the expected "
                             f"{WHEEL_SHA256[:16]}… of {WHEEL}")
    try:
        with zipfile.ZipFile(wheel) as z:
            return z.read(member)
    except (zipfile.BadZipFile, KeyError) as e:
        raise InputError(f"{wheel}: cannot read {member} ({e})") from e


def raw_onnx(spec: Spec, tflite: Path) -> Any:
    """The converter's own ONNX ModelProto of ``tflite``."""
    onnx = _need("onnx")
    if spec.tool == "tf2onnx":
        tf2onnx = _need("tf2onnx")
        model, _ = tf2onnx.convert.from_tflite(str(tflite), opset=OPSET)
        return model
    tflite2onnx = _need("tflite2onnx")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "raw.onnx"
        tflite2onnx.convert(str(tflite), str(out))
        return onnx.load(str(out))


def finish(spec: Spec, model: Any) -> bytes:
    """Deterministic bytes of the engine's form of ``model``: input ``image`` (1, S, S, 3)
    float32 NHWC (a transpose is put in front when the converter made the graph NCHW), the
    TFLite outputs reshaped to (1, k), the sigmoid applied where ``spec.sigmoid`` says, and
    concatenated into one output (1, sum k) named ``spec.output_name``."""
    onnx = _need("onnx")
    helper = onnx.helper
    g = model.graph
    if len(g.input) != 1:
        raise ModelError(spec.out_name, f"converted graph has {len(g.input)} inputs")
    inp = g.input[0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    nodes = list(g.node)
    new_inputs_nodes = []
    old_in = inp.name
    if dims == [1, spec.size, spec.size, 3]:
        for n in nodes:
            n.input[:] = [INPUT_NAME if x == old_in else x for x in n.input]
    elif dims == [1, 3, spec.size, spec.size]:
        nchw = f"{INPUT_NAME}_nchw"
        for n in nodes:
            n.input[:] = [nchw if x == old_in else x for x in n.input]
        new_inputs_nodes.append(helper.make_node("Transpose", [INPUT_NAME], [nchw],
                                                 name="faceunlock_to_nchw", perm=[0, 3, 1, 2]))
    else:
        raise ModelError(spec.out_name, f"converted input has shape {dims}")
    outs = {o.name: o for o in g.output}
    want = [name for name, _ in spec.outputs]
    if sorted(outs) != sorted(want):
        raise ModelError(spec.out_name, f"converted outputs {sorted(outs)} != {sorted(want)}")
    nodes, inits = _canonical(new_inputs_nodes + nodes, list(g.initializer), {INPUT_NAME},
                              set(want))
    tail = []
    shape_name = "faceunlock_flat_shape"
    tail_init = [onnx.numpy_helper.from_array(np.array([1, -1], np.int64), shape_name)]
    parts = []
    for name, _ in spec.outputs:
        flat = f"{name}_flat"
        tail.append(helper.make_node("Reshape", [name, shape_name], [flat],
                                     name=f"faceunlock_flat_{name}"))
        if name in spec.sigmoid:
            sig = f"{name}_sigmoid"
            tail.append(helper.make_node("Sigmoid", [flat], [sig],
                                         name=f"faceunlock_sigmoid_{name}"))
            flat = sig
        parts.append(flat)
    width = sum(k for _, k in spec.outputs)
    tail.append(helper.make_node("Concat", parts, [spec.output_name],
                                 name="faceunlock_concat", axis=1))
    graph = helper.make_graph(
        nodes + tail,
        f"faceunlock_{spec.key}",
        [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT,
                                       [1, spec.size, spec.size, 3])],
        [helper.make_tensor_value_info(spec.output_name, onnx.TensorProto.FLOAT, [1, width])],
        initializer=inits + tail_init,
    )
    opset = max(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                            producer_name="faceunlock.training.convert_mediapipe",
                            producer_version="1")
    out.ir_version = min(int(model.ir_version) or 8, 8)
    out.doc_string = f"{spec.note}; from {WHEEL} {spec.member}; Apache-2.0"
    onnx.checker.check_model(out)
    return bytes(out.SerializeToString(deterministic=True))


def _canonical(nodes: list[Any], inits: list[Any], sources: set[str], keep: set[str]
               ) -> tuple[list[Any], list[Any]]:
    """The graph in a canonical form: every node identified by a hash of its operator,
    attributes and inputs (recursively, an initialiser by its content), duplicate nodes
    (the same operation on the same inputs) merged, the nodes in topological order with
    ties broken by that hash, and nodes, intermediate tensors and initialisers renamed by
    that order (``n3``, ``t7``, ``w0``; the names in ``keep`` stay). tf2onnx names its
    folded constants, orders them and keeps one of two identical nodes differently on every
    run; the computation is the same, so this makes its bytes the same."""
    import hashlib as _h

    by_init = {i.name: i for i in inits}
    ident: dict[str, str] = {s: f"src:{s}" for s in sources}
    for k, v in by_init.items():
        ident[k] = "w:" + _h.sha256(v.SerializeToString().replace(k.encode(), b"")).hexdigest()
    ident[""] = ""
    pending = list(nodes)
    node_id: dict[int, str] = {}
    seen: dict[str, Any] = {}
    kept: list[Any] = []
    while pending:
        ready = [n for n in pending if all(x in ident for x in n.input)]
        if not ready:
            raise ModelError("convert_mediapipe", "the converted graph has a cycle")
        for n in ready:
            pending.remove(n)
            sig = "|".join([n.domain, n.op_type,
                            *(a.SerializeToString().hex() for a in n.attribute),
                            *(ident[x] for x in n.input)])
            hid = _h.sha256(sig.encode()).hexdigest()
            if hid in seen:  # the same operation on the same inputs: reuse its outputs
                first = seen[hid]
                for o, o1 in zip(n.output, first.output, strict=True):
                    if o in keep:
                        raise ModelError("convert_mediapipe", f"output {o} is a duplicate")
                    ident[o] = ident[o1]
                    for m in pending:
                        m.input[:] = [o1 if x == o else x for x in m.input]
                continue
            seen[hid] = n
            node_id[id(n)] = hid
            kept.append(n)
            for j, o in enumerate(n.output):
                ident[o] = f"{hid}:{j}"
    # a canonical topological order: of the ready nodes, the smallest hash first
    ready_t = set(sources) | set(by_init) | {""}
    pending = list(kept)
    ordered: list[Any] = []
    while pending:
        n = min((m for m in pending if all(x in ready_t for x in m.input)),
                key=lambda m: node_id[id(m)])
        pending.remove(n)
        ordered.append(n)
        ready_t.update(n.output)
    names: dict[str, str] = {}
    winit: dict[str, str] = {}
    for n in ordered:
        for x in n.input:
            if x in by_init and x not in winit:
                winit[x] = f"w{len(winit)}"
        for o in n.output:
            if o and o not in keep:
                names[o] = f"t{len(names)}"
    for k, n in enumerate(ordered):
        n.input[:] = [winit.get(x, names.get(x, x)) for x in n.input]
        n.output[:] = [names.get(x, x) for x in n.output]
        n.name = f"n{k}"
    out = []
    for old, new in winit.items():
        t = by_init[old]
        t.name = new
        out.append(t)
    return ordered, out


class TfliteReference:
    """The TFLite interpreter on one model, with TFLite's built-in kernels and no XNNPACK
    delegate (XNNPACK sums in another order: it differs from them by up to 1.5e-4 crop
    pixels on the mesh, from onnxruntime by as much; the built-in kernels by 6.9e-5)."""

    def __init__(self, spec: Spec, tflite: Path) -> None:
        tf = _need("tensorflow")
        self.spec = spec
        self.it = tf.lite.Interpreter(
            model_path=str(tflite),
            experimental_op_resolver_type=(
                tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]["index"]
        self.out = {d["name"]: d["index"] for d in self.it.get_output_details()}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(S, S, 3) float32 in [0, 1] → the engine's output vector (as :func:`finish`)."""
        self.it.set_tensor(self.inp, x[None].astype(np.float32))
        self.it.invoke()
        parts = []
        for name, _ in self.spec.outputs:
            v = np.asarray(self.it.get_tensor(self.out[name]), np.float32).reshape(-1)
            if name in self.spec.sigmoid:
                v = (1.0 / (1.0 + np.exp(-v.astype(np.float64)))).astype(np.float32)
            parts.append(v)
        return np.concatenate(parts)


def smooth_inputs(size: int, n: int = 2) -> np.ndarray:
    """(n, S, S, 3) float32 smooth patterns in [0, 1], from sines only (the same values on
    every platform, no random generator)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    out = []
    for i in range(n):
        chans = [0.5 + 0.45 * np.sin(2 * np.pi * ((c + 1) * xx * (i + 1) + (2 - c) * yy + i / 3))
                 for c in range(3)]
        out.append(np.stack(chans, axis=-1))
    return np.stack(out).astype(np.float32)


#: real inputs for the parity check and the fixtures: (image in tests/data/faces, x0, y0,
#: mirrored) of an S x S window taken as is (integer offsets: no resampling, so the test can
#: rebuild the exact input without OpenCV's warp); the mesh windows hold a whole face, the
#: iris windows one eye (the subject's left eye, the image's right, mirrored as the engine
#: does)
WINDOWS: dict[str, tuple[tuple[str, int, int, bool], ...]] = {
    "mesh": (("man-00.jpg", 35, 25, False), ("woman-09.jpg", 32, 22, False),
             ("woman-15.jpg", 44, 24, False), ("man-pair-30.jpg", 22, 30, False)),
    "iris": (("man-00.jpg", 72, 71, False), ("man-00.jpg", 126, 70, True),
             ("woman-09.jpg", 72, 68, False)),
}


def window_input(image_rgb: np.ndarray, x0: int, y0: int, size: int, mirror: bool
                 ) -> np.ndarray:
    """The (S, S, 3) float32 [0, 1] model input of one window of an RGB uint8 image."""
    w = image_rgb[y0:y0 + size, x0:x0 + size]
    if w.shape != (size, size, 3):
        raise InputError(f"window ({x0}, {y0}) of size {size} leaves the image {image_rgb.shape}")
    if mirror:
        w = w[:, ::-1]
    return (w.astype(np.float32) / np.float32(255.0)).astype(np.float32)


def face_inputs(spec: Spec, faces: Path) -> tuple[np.ndarray, np.ndarray]:
    """The WINDOWS inputs of ``spec`` from the images in ``faces``: (N, S, S, 3) float32
    and their (N,) table (name, x0, y0, mirror) as a structured array."""
    import cv2

    crops, rows = [], []
    for name, x0, y0, mirror in WINDOWS[spec.key]:
        bgr = cv2.imread(str(faces / name), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"cannot read {faces / name}")
        crops.append(window_input(bgr[:, :, ::-1], x0, y0, spec.size, mirror))
        rows.append((name, x0, y0, mirror))
    table = np.array(rows, dtype=[("name", "U32"), ("x0", "i4"), ("y0", "i4"), ("mirror", "?")])
    return np.stack(crops), table


def onnx_outputs(data: bytes, x: np.ndarray) -> np.ndarray:
    ort = _need("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # the engine's
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return np.stack([sess.run(None, {INPUT_NAME: xi[None]})[0][0] for xi in x])


def sidecar_meta(spec: Spec, tflite_sha: str, parity: float) -> dict[str, Any]:
    width = sum(k for _, k in spec.outputs)
    return {
        "source": f"{WHEEL} {spec.member}, converted by {spec.tool} and "
                  "faceunlock.training.convert_mediapipe",
        "source_wheel_sha256": WHEEL_SHA256,
        "source_path": spec.member,
        "source_sha256": tflite_sha,
        "licence": "Apache-2.0",
        "note": spec.note,
        "input": {
            "name": INPUT_NAME,
            "layout": "NHWC",
            "dtype": "float32",
            "shape": [1, spec.size, spec.size, 3],
            "channels": "RGB",
            "range": [0.0, 1.0],
            "normalisation": "pixel / 255",
            "crop": spec.crop_rule,
        },
        "output": {
            "name": spec.output_name,
            "shape": [1, width],
            "meaning": spec.output_meaning,
        },
        "parity": f"onnxruntime matches the TFLite interpreter (tensorflow-cpu 2.21.0, "
                  f"built-in kernels, no XNNPACK) within {PARITY_TOL:g} on smooth patterns "
                  f"and crops of tests/data/faces (max {parity:.2g}; checked by every "
                  "conversion)",
    }


def convert(wheel: Path, out_dir: Path, fixtures: Path | None = None,
            check_sha: bool = True, faces: Path | None = None) -> list[tuple[Path, float]]:
    """Convert both models; returns (written path, max parity difference) per model.
    ``faces``: the folder of the test faces (default tests/data/faces of this checkout)."""
    faces = faces or Path(__file__).resolve().parents[2] / "tests" / "data" / "faces"
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    refs: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in SPECS:
            raw = read_member(wheel, spec.member, check_sha)
            tfl = Path(tmp) / Path(spec.member).name
            tfl.write_bytes(raw)
            data = finish(spec, raw_onnx(spec, tfl))
            ref = TfliteReference(spec, tfl)
            crops, table = face_inputs(spec, faces)
            x = np.concatenate([smooth_inputs(spec.size), crops])
            want = np.stack([ref(xi) for xi in x])
            got = onnx_outputs(data, x)
            diff = float(np.max(np.abs(got - want)))
            if not diff <= PARITY_TOL:
                raise ModelError(spec.out_name, f"onnxruntime and TFLite differ by {diff:.3g}")
            out = out_dir / spec.out_name
            atomic_write_bytes(out, data)
            write_sidecar(out, sidecar_meta(spec, hashlib.sha256(raw).hexdigest(), diff))
            done.append((out, diff))
            refs[f"{spec.key}_windows"] = table
            refs[f"{spec.key}_crop_sha256"] = np.array(
                [hashlib.sha256(np.ascontiguousarray(c).tobytes()).hexdigest() for c in crops])
            refs[f"{spec.key}_smooth"] = want[: len(x) - len(crops)]
            refs[f"{spec.key}_faces"] = want[len(x) - len(crops):]
    if fixtures is not None:
        write_fixtures(fixtures, refs)
    return done


def write_fixtures(path: Path, refs: dict[str, np.ndarray]) -> None:
    """The reference outputs as a compressed npz with fixed member order and timestamps."""
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for key in sorted(refs):
            arr = io.BytesIO()
            np.lib.format.write_array(arr, np.ascontiguousarray(refs[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, arr.getvalue())
    atomic_write_bytes(path, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m faceunlock.training.convert_mediapipe",
                                 description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, required=True,
                    help="the mediapipe-0.10.21 cp311 wheel (pip download --no-deps)")
    ap.add_argument("--out", type=Path, default=None, help="output directory (default models/)")
    ap.add_argument("--fixtures", type=Path, default=None,
                    help="also write the TFLite reference outputs to this npz")
    args = ap.parse_args(argv)
    for out, diff in convert(args.wheel, args.out or models_dir(), args.fixtures):
        print(f"{out} ({sha256_file(out)[:16]}…), max |onnx - tflite| {diff:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
