"""The small from-scratch encoder: interface and trainability."""

import pytest

torch = pytest.importorskip("torch")

from faceunlock.training.backbones import MobileFaceNetLite, build_backbone  # noqa: E402


def _chips(n: int) -> "torch.Tensor":
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 150, 150, 3), dtype=torch.uint8, generator=g)


def test_output_shape_and_dtype() -> None:
    torch.manual_seed(0)
    model = MobileFaceNetLite().eval()
    with torch.no_grad():
        e = model(_chips(3))
    assert e.shape == (3, 128)
    assert e.dtype == torch.float32
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)


def test_unnormalised_and_by_name() -> None:
    model = build_backbone("mobilefacenet_lite", embedding_size=64, normalize=False).eval()
    with torch.no_grad():
        assert model(_chips(2)).shape == (2, 64)
    with pytest.raises(ValueError):
        build_backbone("nope")


def test_forward_backward() -> None:
    torch.manual_seed(0)
    model = MobileFaceNetLite().train()
    e = model(_chips(4))
    loss = (e[0] - e[1]).pow(2).sum() - (e[0] - e[2]).pow(2).sum()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
