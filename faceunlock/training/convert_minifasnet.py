"""Convert the MiniFASNet anti-spoofing weights (Apache-2.0) to ONNX for the liveness stage.

One command, deterministic (re-running gives byte-identical files)::

    python -m faceunlock.training.convert_minifasnet [--weights DIR] [--out models/]

reads ``2.7_80x80_MiniFASNetV2.pth`` and ``4_0_0_80x80_MiniFASNetV1SE.pth`` from ``DIR``
(default ``../shared/models/minifasnet``, see its README) and writes ``minifasnet-v2.onnx``
and ``minifasnet-v1se.onnx`` with JSON sidecars. The network is built from the state-dict
keys and shapes alone (the weights are pruned, so every channel count comes from a weight
shape); the graph ends in a softmax, so the model outputs the three class probabilities
(class 1: a real face). Before anything is written, onnxruntime's output is checked against
torch's on random and face-like crops (``PARITY_TOL``). Keys that a later step added to a
sidecar (the operating point, fitted by ``tools/attack_kit.py fit``) are kept when the model's
bytes are unchanged.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from faceunlock.engine.modelfile import sha256_file, sidecar_path, write_sidecar
from faceunlock.errors import InputError, ModelError
from faceunlock.fileio import atomic_write_bytes
from faceunlock.paths import models_dir, shared_dir

OPSET = 13
INPUT_NAME = "image"
OUTPUT_NAME = "probs"
SIZE = 80
PARITY_TOL = 1e-4
SOURCE_COMMIT = "b6d5f04ad78778917853b25c778acef6d5626d15"

#: (source file, output file, crop scale about the face box centre)
MODELS: dict[str, tuple[str, str, float]] = {
    "v2": ("2.7_80x80_MiniFASNetV2.pth", "minifasnet-v2.onnx", 2.7),
    "v1se": ("4_0_0_80x80_MiniFASNetV1SE.pth", "minifasnet-v1se.onnx", 4.0),
}


class ConvBlock(nn.Module):
    """Conv2d (no bias) + BatchNorm2d, then PReLU unless ``linear``."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, pad: int, groups: int,
                 linear: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu: nn.Module | None = None if linear else nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return x if self.prelu is None else self.prelu(x)


class SEModule(nn.Module):
    """Squeeze-excitation on the ``project`` output: pool, fc1, bn1, relu, fc2, bn2, sigmoid."""

    def __init__(self, ch: int, mid: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(ch, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.fc2 = nn.Conv2d(mid, ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean(dim=(2, 3), keepdim=True)
        w = torch.relu(self.bn1(self.fc1(w)))
        return x * torch.sigmoid(self.bn2(self.fc2(w)))


class DepthWise(nn.Module):
    """1x1 conv block, depthwise 3x3 conv block (``stride``), 1x1 linear ``project``, an
    optional SE module on the projection, and the residual when ``residual``."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int, residual: bool,
                 se_mid: int | None) -> None:
        super().__init__()
        self.residual = residual
        self.conv = ConvBlock(cin, mid, 1, 1, 0, 1)
        self.conv_dw = ConvBlock(mid, mid, 3, stride, 1, mid)
        self.project = ConvBlock(mid, cout, 1, 1, 0, 1, linear=True)
        self.se_module: nn.Module | None = SEModule(cout, se_mid) if se_mid else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.conv_dw(self.conv(x)))
        if self.se_module is not None:
            y = self.se_module(y)
        return x + y if self.residual else y


class Residual(nn.Module):
    def __init__(self, blocks: list[DepthWise]) -> None:
        super().__init__()
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MiniFASNet(nn.Module):
    """MiniFASNet V2 / V1SE as its state dict describes it (see the weights' README)."""

    def __init__(self, state: Mapping[str, torch.Tensor], softmax: bool = True) -> None:
        super().__init__()
        shape = {k: tuple(v.shape) for k, v in state.items()}

        def out_ch(prefix: str) -> int:
            return int(shape[f"{prefix}.conv.weight"][0])

        def dw(prefix: str, stride: int, residual: bool) -> DepthWise:
            cin = int(shape[f"{prefix}.conv.conv.weight"][1])
            se = f"{prefix}.se_module.fc1.weight"
            return DepthWise(cin, out_ch(f"{prefix}.conv"), out_ch(f"{prefix}.project"),
                             stride, residual, int(shape[se][0]) if se in shape else None)

        def stage(name: str) -> Residual:
            n = 1 + max(int(m.group(1)) for k in shape
                        if (m := re.match(rf"{name}\.model\.(\d+)\.", k)))
            return Residual([dw(f"{name}.model.{i}", 1, True) for i in range(n)])

        c1 = out_ch("conv1")
        self.conv1 = ConvBlock(3, c1, 3, 2, 1, 1)
        self.conv2_dw = ConvBlock(c1, out_ch("conv2_dw"), 3, 1, 1, c1)
        self.conv_23 = dw("conv_23", 2, False)
        self.conv_3 = stage("conv_3")
        self.conv_34 = dw("conv_34", 2, False)
        self.conv_4 = stage("conv_4")
        self.conv_45 = dw("conv_45", 2, False)
        self.conv_5 = stage("conv_5")
        c6 = out_ch("conv_6_sep")
        self.conv_6_sep = ConvBlock(int(shape["conv_6_sep.conv.weight"][1]), c6, 1, 1, 0, 1)
        k = (SIZE + 15) // 16
        self.conv_6_dw = ConvBlock(c6, c6, k, 1, 0, c6, linear=True)
        emb, feat = shape["linear.weight"]
        self.linear = nn.Linear(int(feat), int(emb), bias=False)
        self.bn = nn.BatchNorm1d(int(emb))
        self.prob = nn.Linear(int(emb), int(shape["prob.weight"][0]), bias=False)
        self.softmax = softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for m in (self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34,
                  self.conv_4, self.conv_45, self.conv_5, self.conv_6_sep, self.conv_6_dw):
            x = m(x)
        x = self.prob(self.bn(self.linear(torch.flatten(x, 1))))  # dropout: identity
        return torch.softmax(x, dim=1) if self.softmax else x


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a ``.pth`` file, ``module.`` prefixes stripped."""
    if not path.is_file():
        raise InputError(f"MiniFASNet weights not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise InputError(f"{path}: not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def build(path: Path, softmax: bool = True) -> MiniFASNet:
    """The network of ``path`` with its weights, in eval mode."""
    state = load_state(path)
    net = MiniFASNet(state, softmax)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise InputError(f"{path}: the state dict does not fit MiniFASNet: {e}") from e
    return net.float().eval()


def export_onnx_bytes(net: MiniFASNet, doc: str) -> bytes:
    """Deterministic ONNX bytes of ``net`` (dynamic batch, NCHW float32 80x80)."""
    import onnx

    dummy = torch.full((1, 3, SIZE, SIZE), 128.0)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (dummy,), buf,  # type: ignore[arg-type]  # file-like objects are accepted
            dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buf.getvalue())
    proto.producer_name = "faceunlock.training.convert_minifasnet"
    proto.producer_version = "1"
    proto.doc_string = doc
    onnx.checker.check_model(proto)
    return bytes(proto.SerializeToString(deterministic=True))


def parity_inputs(extra: np.ndarray | None = None, n: int = 4, seed: int = 0) -> np.ndarray:
    """(N, 3, 80, 80) float32 BGR 0-255 crops: uniform noise, smooth random images and, when
    given, ``extra`` (real face crops in the same layout)."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (n, 3, SIZE, SIZE))
    smooth = rng.uniform(0, 255, (n, 3, 8, 8)).repeat(10, axis=2).repeat(10, axis=3)
    smooth = np.clip(smooth + rng.normal(0, 10, smooth.shape), 0, 255)
    parts = [noise, smooth] + ([extra] if extra is not None and len(extra) else [])
    return np.concatenate(parts).astype(np.float32)


def max_diff(net: MiniFASNet, data: bytes, x: np.ndarray) -> float:
    """Max |torch - onnxruntime| of the probabilities over ``x``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {INPUT_NAME: x})
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    if got.shape != want.shape:
        raise ModelError(INPUT_NAME, f"onnx output {got.shape} != torch {want.shape}")
    return float(np.max(np.abs(got - want)))


def real_crops(scale: float) -> np.ndarray:
    """Face crops of the shared webcam clips (the liveness stage's own cropping on the
    engine's detector boxes), (N, 3, 80, 80) float32; empty when the clips are absent."""
    from faceunlock.engine import liveness
    from faceunlock.engine.pipeline import Pipeline, PipelineSettings
    from faceunlock.engine.sources import VideoFileSource

    clip = shared_dir() / "datasets" / "clips" / "head-pose-face-detection-female.gif"
    if not clip.is_file():
        return np.zeros((0, 3, SIZE, SIZE), np.float32)
    pipe = Pipeline(PipelineSettings(min_face=80, downscale=50 / 80, max_face=160))
    crops = []
    with VideoFileSource(clip) as src:
        for i, fr in enumerate(src):
            if i % 6:
                continue
            for d in pipe.detect(fr.image)[:1]:
                crops.append(liveness.crop_input(fr.image, d.box, scale))
    return np.stack(crops) if crops else np.zeros((0, 3, SIZE, SIZE), np.float32)


def sidecar_meta(src: Path, scale: float) -> dict[str, Any]:
    return {
        "source": f"minivision-ai/Silent-Face-Anti-Spoofing@{SOURCE_COMMIT} "
                  f"resources/anti_spoof_models/{src.name}, converted by "
                  "faceunlock.training.convert_minifasnet",
        "licence": "Apache-2.0",
        "source_sha256": sha256_file(src),
        "note": "MiniFASNet RGB presentation-attack classifier; graph ends in a softmax. Use "
                "as one signal among several: random noise can score as real",
        "input": {
            "name": INPUT_NAME,
            "layout": "NCHW",
            "dtype": "float32",
            "shape": ["batch", 3, SIZE, SIZE],
            "channels": "BGR",
            "range": [0, 255],
            "normalisation": "none (raw pixel values, no mean, no /255)",
            "crop": {
                "scale": scale,
                "rule": "the face box scaled about its centre by `scale`, the factor clipped "
                        "so the crop fits the image, then shifted back inside it; resized "
                        "to 80x80",
            },
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", 3],
            "meaning": "softmax over 3 classes; class 1 is a real face, 0 and 2 attacks",
            "real_class": 1,
        },
        "opset": OPSET,
    }


def convert(weights: Path, out_dir: Path, which: list[str] | None = None,
            check_real: bool = True) -> list[tuple[Path, float]]:
    """Convert the models; returns (written path, max parity difference) per model."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for key, (src_name, out_name, scale) in MODELS.items():
        if which and key not in which:
            continue
        src = weights / src_name
        net = build(src)
        data = export_onnx_bytes(net, f"MiniFASNet {key} ({src_name}), Apache-2.0")
        extra = real_crops(scale) if check_real else None
        diff = max_diff(net, data, parity_inputs(extra))
        if not diff <= PARITY_TOL:
            raise ModelError(out_name, f"onnxruntime and torch differ by {diff:.3g}")
        out = out_dir / out_name
        sc = sidecar_path(out)
        old = json.loads(sc.read_text()) if sc.is_file() else {}
        atomic_write_bytes(out, data)
        meta = sidecar_meta(src, scale)
        meta["parity"] = (f"onnxruntime matches torch within {PARITY_TOL:g} on noise, smooth "
                          "random and webcam-clip crops (checked by every conversion)")
        if old.get("sha256") == sha256_file(out):  # keep what later steps added
            meta.update({k: v for k, v in old.items() if k not in meta
                         and k not in ("file", "sha256", "parity_max_abs_diff")})
        write_sidecar(out, meta)
        done.append((out, diff))
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m faceunlock.training.convert_minifasnet",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path, default=None,
                    help="folder of the .pth files (default ../shared/models/minifasnet)")
    ap.add_argument("--out", type=Path, default=None, help="output directory (default models/)")
    ap.add_argument("--only", choices=list(MODELS), action="append")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    weights = args.weights or shared_dir() / "models" / "minifasnet"
    for out, diff in convert(weights, args.out or models_dir(), args.only):
        print(f"{out} ({sha256_file(out)[:16]}…), max |onnx - torch| {diff:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
