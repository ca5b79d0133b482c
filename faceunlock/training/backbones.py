"""Small encoders to train from scratch, with the same interface as
:class:`~faceunlock.training.dlib.resnet.DlibFaceResNet`: ``uint8`` (N, 150, 150, 3) RGB
chips (NHWC) in, ``float32`` (N, 128) descriptors out, so the trainer, the evaluation code and
the ONNX export treat them alike.

* :class:`MobileFaceNetLite`: a MobileFaceNet-like stack of depthwise-separable convolutions
  (~0.2 M parameters, ~60 MFLOPs per chip at 150x150); the descriptors are L2-normalised by
  default so a triplet margin of ~0.2 (Euclidean) is meaningful from the first step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn(cin: int, cout: int, k: int, stride: int, groups: int = 1,
             act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.PReLU(cout))
    return nn.Sequential(*layers)


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 (stride ``stride``) then pointwise 1x1, each with BN + PReLU; a residual
    connection when the shape is unchanged."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.dw = _conv_bn(cin, cin, 3, stride, groups=cin)
        self.pw = _conv_bn(cin, cout, 1, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return x + y if self.residual else y


#: (output channels, stride) of the depthwise-separable blocks after the 3x3 stem
MOBILE_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1), (256, 2), (256, 1),
)


class MobileFaceNetLite(nn.Module):
    """MobileFaceNet-like encoder: stem 3x3/2 conv, :data:`MOBILE_BLOCKS`, a 1x1 expansion,
    a global depthwise convolution over the final feature map (MobileFaceNet's GDConv instead
    of average pooling), a linear layer to ``embedding_size`` and BatchNorm1d.

    Input: ``uint8`` (N, 150, 150, 3) RGB chips. Output: ``float32`` (N, embedding_size),
    L2-normalised when ``normalize``.
    """

    def __init__(self, embedding_size: int = 128, width: int = 32, size: int = 150,
                 normalize: bool = True) -> None:
        super().__init__()
        self.size = (size, size)
        self.normalize = normalize
        self.stem = _conv_bn(3, width, 3, 2)
        blocks: list[nn.Module] = []
        cin = width
        spatial = (size + 1) // 2
        for cout, stride in MOBILE_BLOCKS:
            blocks.append(DepthwiseSeparable(cin, cout, stride))
            cin = cout
            spatial = (spatial + stride - 1) // stride
        self.blocks = nn.Sequential(*blocks)
        self.expand = _conv_bn(cin, 2 * cin, 1, 1)
        self.gdconv = _conv_bn(2 * cin, 2 * cin, spatial, 1, groups=2 * cin, act=False)
        # the kernel covers the whole map: no padding
        gdconv = self.gdconv[0]
        assert isinstance(gdconv, nn.Conv2d)
        gdconv.padding = (0, 0)
        self.fc = nn.Linear(2 * cin, embedding_size, bias=False)
        self.bn = nn.BatchNorm1d(embedding_size)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = chips.to(torch.float32).permute(0, 3, 1, 2) * (1.0 / 127.5) - 1.0
        x = self.blocks(self.stem(x))
        x = self.gdconv(self.expand(x)).flatten(1)
        e = self.bn(self.fc(x))
        return F.normalize(e, dim=1) if self.normalize else e


def build_backbone(name: str, **kwargs: object) -> nn.Module:
    """A backbone by name (``mobilefacenet_lite``)."""
    if name == "mobilefacenet_lite":
        return MobileFaceNetLite(**kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown backbone {name!r}")
