"""Training augmentations on face chips.

Every function takes and returns ``uint8`` (N, H, W, 3) RGB tensors (NHWC, the encoder's
input layout) and draws its randomness from an explicit ``torch.Generator``, so a batch
augmented twice from generators seeded alike comes out identical. The generator must live on
the CPU; the draws are moved to the chips' device.

* :func:`hflip`: mirror image (the runtime also embeds the mirror chip);
* :func:`color_jitter`: brightness, contrast and saturation;
* :func:`ir_like`: greyscale + contrast stretch + slight blur, a rough stand-in for the
  near-infrared cameras Windows-Hello-style laptops have.

:class:`Augmenter` chains them with per-sample probabilities and its own seeded generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from faceunlock.config import Section, key

_LUMA = (0.299, 0.587, 0.114)


def _check(chips: torch.Tensor) -> None:
    if chips.dtype != torch.uint8:
        raise TypeError(f"chips must be uint8, got {chips.dtype}")
    if chips.ndim != 4 or chips.shape[3] != 3:
        raise ValueError(f"chips must be (N, H, W, 3), got {tuple(chips.shape)}")


def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator).to(device)


def _to_u8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0.0, 255.0).to(torch.uint8)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """float (N, H, W, 3) -> (N, H, W, 1) luma."""
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device)
    return (x * w).sum(dim=3, keepdim=True)


def hflip(chips: torch.Tensor, p: float = 0.5,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each chip left-right with probability ``p``."""
    _check(chips)
    pick = _rand(chips.shape[0], generator, chips.device) < p
    return torch.where(pick[:, None, None, None], chips.flip(2), chips)


def color_jitter(chips: torch.Tensor, brightness: float = 0.2, contrast: float = 0.2,
                 saturation: float = 0.2,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale brightness, contrast (about each chip's mean grey) and saturation (about each
    pixel's grey) by factors drawn uniformly from ``[1 - v, 1 + v]``, in that order."""
    _check(chips)
    n = chips.shape[0]
    x = chips.to(torch.float32)

    def factor(v: float) -> torch.Tensor:
        return (1.0 + v * (2.0 * _rand(n, generator, chips.device) - 1.0))[:, None, None, None]

    b, c, s = factor(brightness), factor(contrast), factor(saturation)
    x = (x * b).clamp(0.0, 255.0)
    mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * c + mean).clamp(0.0, 255.0)
    g = _grey(x)
    x = (g + (x - g) * s).clamp(0.0, 255.0)
    return _to_u8(x)


def _gauss_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    radius = max(1, math.ceil(2.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def ir_like(chips: torch.Tensor, p: float = 1.0, blur_sigma: float = 0.8,
            low: float = 0.01, high: float = 0.99,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """With probability ``p`` per chip: greyscale, stretch the ``low``..``high`` quantiles
    of its grey levels to 0..255, blur with a Gaussian of ``blur_sigma`` pixels (separable,
    reflected borders); the result is grey replicated in the three channels."""
    _check(chips)
    n, h, w, _ = chips.shape
    pick = _rand(n, generator, chips.device) < p
    if not bool(pick.any()):
        return chips.clone()
    sel = chips[pick].to(torch.float32)
    g = _grey(sel)[..., 0]  # (S, H, W)
    flat = g.reshape(g.shape[0], -1)
    q = torch.quantile(flat, torch.tensor([low, high], device=g.device), dim=1)  # (2, S)
    lo, hi = q[0][:, None, None], q[1][:, None, None]
    g = ((g - lo) * (255.0 / (hi - lo).clamp_min(1.0))).clamp(0.0, 255.0)
    if blur_sigma > 0:
        k = _gauss_kernel(blur_sigma, g.device)
        r = (k.numel() - 1) // 2
        x = g[:, None]
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.reshape(1, 1, 1, -1))
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.reshape(1, 1, -1, 1))
        g = x[:, 0]
    out = chips.clone()
    out[pick] = _to_u8(g)[..., None].expand(-1, h, w, 3)
    return out


@dataclass
class AugmentConfig(Section):
    """[augment] probabilities and strengths of :class:`Augmenter`; set a probability to 0 to
    disable."""

    SECTION = "augment"
    flip_p: float = key(0.5, "probability of the mirror image", lo=0.0, hi=1.0)
    jitter_p: float = key(0.8, "probability of the colour jitter", lo=0.0, hi=1.0)
    brightness: float = key(0.25, "brightness factor drawn from 1 +- this", lo=0.0, hi=1.0)
    contrast: float = key(0.25, "contrast factor drawn from 1 +- this", lo=0.0, hi=1.0)
    saturation: float = key(0.25, "saturation factor drawn from 1 +- this", lo=0.0, hi=1.0)
    ir_p: float = key(0.2, "probability of the infrared-like greyscale", lo=0.0, hi=1.0)
    blur_sigma: float = key(0.8, "blur of the infrared-like chips, pixels (0: none)", lo=0.0)


class Augmenter:
    """Flip, then colour jitter, then IR-like, each per chip with its probability.

    Deterministic: two augmenters made with the same seed and fed the same batches return
    the same chips. ``reseed(seed)`` restarts the sequence (e.g. ``seed + epoch``).
    """

    def __init__(self, seed: int = 0, config: AugmentConfig | None = None) -> None:
        self.config = config or AugmentConfig()
        self.generator = torch.Generator()
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def __call__(self, chips: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> uint8 (N, H, W, 3)."""
        _check(chips)
        c, g = self.config, self.generator
        out = hflip(chips, c.flip_p, generator=g)
        jit = _rand(chips.shape[0], g, chips.device) < c.jitter_p
        jittered = color_jitter(out, c.brightness, c.contrast, c.saturation, generator=g)
        out = torch.where(jit[:, None, None, None], jittered, out)
        return ir_like(out, c.ir_p, c.blur_sigma, generator=g)
