"""Losses and distances against plain-Python loop references."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from faceunlock.training.distances import (  # noqa: E402
    CosineSimilarity,
    EuclideanDistance,
    SquaredEuclideanDistance,
)
from faceunlock.training.losses import (  # noqa: E402
    ArcFaceLoss,
    ContrastiveLoss,
    TripletMarginLoss,
)
from faceunlock.training.miners import BatchHardMiner  # noqa: E402

DISTANCES = {
    "euclidean": EuclideanDistance,
    "squared": SquaredEuclideanDistance,
    "cosine": CosineSimilarity,
}
# margins giving a mix of active and inactive pairs/triplets on the random batches below
TRIPLET_MARGIN = {"euclidean": 1.0, "squared": 4.0, "cosine": 0.3}
CONTRASTIVE_MARGIN = {"euclidean": 3.0, "squared": 8.0, "cosine": 0.2}
TOL = {torch.float32: {"rtol": 1e-5, "atol": 1e-5}, torch.float64: {"rtol": 1e-10, "atol": 1e-10}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ref_distance(kind: str, u: list[float], v: list[float]) -> float:
    if kind == "euclidean":
        return math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v, strict=True)))
    if kind == "squared":
        return sum((a - b) ** 2 for a, b in zip(u, v, strict=True))
    nu = math.sqrt(sum(a * a for a in u))
    nv = math.sqrt(sum(b * b for b in v))
    return sum(a * b for a, b in zip(u, v, strict=True)) / (nu * nv)


def batch(seed: int, n: int = 10, dim: int = 4, classes: int = 3,
          dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64).to(dtype)
    labels = torch.randint(0, classes, (n,), generator=g)
    return x, labels


# ---------------------------------------------------------------------------------------------
# distances
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", DISTANCES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_distances_match_reference(kind, dtype):
    x, _ = batch(1, n=5, dtype=dtype)
    y, _ = batch(2, n=3, dtype=dtype)
    dist = DISTANCES[kind]()
    got = dist.pairwise(x, y)
    assert got.shape == (5, 3) and got.dtype == dtype
    want = torch.tensor([[ref_distance(kind, a, b) for b in y.tolist()] for a in x.tolist()],
                        dtype=torch.float64)
    torch.testing.assert_close(got.double(), want, **TOL[dtype])
    torch.testing.assert_close(dist.paired(x[:3], y).double(), want.diagonal()[:3], **TOL[dtype])
    assert dist.is_inverted == (kind == "cosine")


def test_euclidean_gradient_is_finite_at_zero_distance():
    x = torch.ones(3, 4, dtype=torch.float64, requires_grad=True)
    EuclideanDistance().pairwise(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_distance_rejects_bad_shapes():
    with pytest.raises(ValueError):
        EuclideanDistance().pairwise(torch.zeros(3))
    with pytest.raises(ValueError):
        EuclideanDistance().pairwise(torch.zeros(3, 2), torch.zeros(3, 4))
    with pytest.raises(ValueError):
        CosineSimilarity(normalize=False)


# ---------------------------------------------------------------------------------------------
# contrastive
# ---------------------------------------------------------------------------------------------


def ref_contrastive(kind: str, x: list[list[float]], labels: list[int], m: float) -> float:
    losses = []
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            d = ref_distance(kind, x[i], x[j])
            same = labels[i] == labels[j]
            if kind == "cosine":
                loss = (1 - d) ** 2 if same else max(d - m, 0.0) ** 2
            else:
                loss = d**2 if same else max(m - d, 0.0) ** 2
            losses.append(loss)
    return sum(losses) / len(losses)


@pytest.mark.parametrize("kind", DISTANCES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_contrastive_matches_loop(kind, dtype, seed):
    x, labels = batch(seed, dtype=dtype)
    m = CONTRASTIVE_MARGIN[kind]
    loss_fn = ContrastiveLoss(margin=m, distance=DISTANCES[kind]())
    got = loss_fn(x, labels)
    assert got.dtype == dtype and got.ndim == 0
    want = ref_contrastive(kind, x.double().tolist(), labels.tolist(), m)
    torch.testing.assert_close(got.double(), torch.tensor(want, dtype=torch.float64),
                               **TOL[dtype])
    assert loss_fn.last_num_pairs == 45
    assert 0.0 < loss_fn.last_active_fraction <= 1.0


def test_contrastive_explicit_pairs_and_defaults():
    x, labels = batch(3)
    loss_fn = ContrastiveLoss()
    assert loss_fn.margin == 1.0 and ContrastiveLoss(distance=CosineSimilarity()).margin == 0.5
    i, j = torch.tensor([0, 2]), torch.tensor([1, 5])
    got = loss_fn(x, labels, pairs=(i, j))
    want = 0.0
    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        d = ref_distance("euclidean", x[a].tolist(), x[b].tolist())
        want += d**2 if labels[a] == labels[b] else max(1.0 - d, 0.0) ** 2
    assert got.item() == pytest.approx(want / 2, abs=1e-12)
    empty = loss_fn(x[:1], labels[:1])
    assert empty.item() == 0.0 and loss_fn.last_num_pairs == 0


def test_contrastive_gradcheck():
    x, labels = batch(4, n=6, dim=3)
    x.requires_grad_(True)
    loss_fn = ContrastiveLoss(margin=3.0)
    assert torch.autograd.gradcheck(lambda e: loss_fn(e, labels), (x,))


# ---------------------------------------------------------------------------------------------
# triplet
# ---------------------------------------------------------------------------------------------


def ref_triplet(kind: str, x: list[list[float]], triplets: list[tuple[int, int, int]],
                m: float) -> tuple[float, int]:
    losses = []
    for a, p, n in triplets:
        dap = ref_distance(kind, x[a], x[p])
        dan = ref_distance(kind, x[a], x[n])
        v = (dan - dap + m) if kind == "cosine" else (dap - dan + m)
        losses.append(max(v, 0.0))
    positive = [v for v in losses if v > 0]
    return (sum(positive) / len(positive) if positive else 0.0), len(positive)


def all_triplets(labels: list[int]) -> list[tuple[int, int, int]]:
    n = len(labels)
    return [(i, j, k) for i in range(n) for j in range(n) for k in range(n)
            if len({i, j, k}) == 3 and labels[i] == labels[j] != labels[k]]


@pytest.mark.parametrize("kind", DISTANCES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triplet_batch_all_matches_loop(kind, dtype, seed):
    x, labels = batch(seed, dtype=dtype)
    m = TRIPLET_MARGIN[kind]
    loss_fn = TripletMarginLoss(margin=m, distance=DISTANCES[kind]())
    got = loss_fn(x, labels)
    assert got.dtype == dtype and got.ndim == 0
    trips = all_triplets(labels.tolist())
    want, n_pos = ref_triplet(kind, x.double().tolist(), trips, m)
    torch.testing.assert_close(got.double(), torch.tensor(want, dtype=torch.float64),
                               **TOL[dtype])
    assert loss_fn.last_num_triplets == len(trips)
    assert loss_fn.last_num_active == n_pos
    assert loss_fn.active_fraction == pytest.approx(n_pos / len(trips))
    assert 0 < n_pos < len(trips)  # the margins above give a mix


@pytest.mark.parametrize("kind", DISTANCES)
def test_triplet_with_miner_indices_matches_loop(kind):
    x, labels = batch(5, n=12)
    dist = DISTANCES[kind]()
    m = TRIPLET_MARGIN[kind]
    idx = BatchHardMiner(distance=dist)(x, labels)
    loss_fn = TripletMarginLoss(margin=m, distance=dist)
    got = loss_fn(x, labels, idx)
    trips = list(zip(*(t.tolist() for t in idx), strict=True))
    want, n_pos = ref_triplet(kind, x.tolist(), trips, m)
    assert got.item() == pytest.approx(want, abs=1e-10)
    assert loss_fn.last_num_triplets == len(trips) and loss_fn.last_num_active == n_pos


def test_triplet_no_active_is_zero_with_graph():
    # two tight, far-apart clusters: every triplet satisfies the margin
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [10.1, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    loss_fn = TripletMarginLoss(margin=0.2)
    loss = loss_fn(x, labels)
    assert loss.item() == 0.0 and loss_fn.active_fraction == 0.0
    assert loss_fn.last_num_triplets == 8
    loss.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    # no triplet at all (a single identity)
    assert loss_fn(x, torch.zeros(4, dtype=torch.long)).item() == 0.0
    assert loss_fn.last_num_triplets == 0 and loss_fn.active_fraction == 0.0


def test_triplet_gradcheck():
    x, labels = batch(6, n=6, dim=3)
    x.requires_grad_(True)
    loss_fn = TripletMarginLoss(margin=1.0)
    assert torch.autograd.gradcheck(lambda e: loss_fn(e, labels), (x,))


# ---------------------------------------------------------------------------------------------
# ArcFace
# ---------------------------------------------------------------------------------------------


def ref_arcface_logits(x: list[list[float]], w: list[list[float]], labels: list[int],
                       m: float, s: float) -> list[list[float]]:
    out = []
    for xi, yi in zip(x, labels, strict=True):
        row = []
        for c, wc in enumerate(w):
            cos = ref_distance("cosine", xi, wc)
            theta = math.acos(max(-1.0, min(1.0, cos)))
            if c == yi:
                row.append(s * (math.cos(theta + m) if theta + m <= math.pi
                                else cos - m * math.sin(m)))
            else:
                row.append(s * cos)
        out.append(row)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_arcface_logits_match_formula(dtype):
    torch.manual_seed(0)
    loss_fn = ArcFaceLoss(num_classes=5, embedding_size=8, margin=0.5, scale=64.0)
    g = torch.Generator().manual_seed(7)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 2])
    w = loss_fn.weight.detach().double()
    # near their class template, so every target angle is below pi - m
    x = (w[labels] + 0.3 * torch.randn(7, 8, generator=g, dtype=torch.float64)).to(dtype)
    got = loss_fn.logits(x, labels)
    assert got.shape == (7, 5) and got.dtype == dtype
    want = ref_arcface_logits(x.double().tolist(), w.tolist(), labels.tolist(), 0.5, 64.0)
    tol = {"rtol": 1e-5, "atol": 1e-4} if dtype == torch.float32 else TOL[dtype]
    torch.testing.assert_close(got.double(), torch.tensor(want, dtype=torch.float64), **tol)
    # the loss is the cross-entropy of those logits
    lw = torch.tensor(want, dtype=torch.float64)
    ce = sum(math.log(math.fsum(math.exp(v - max(r)) for v in r)) + max(r) - r[y]
             for r, y in zip(lw.tolist(), labels.tolist(), strict=True)) / 7
    assert loss_fn(x, labels).item() == pytest.approx(ce, rel=1e-5 if dtype == torch.float32
                                                      else 1e-10)


def test_arcface_margin_zero_and_fallback():
    loss_fn = ArcFaceLoss(num_classes=3, embedding_size=4, margin=0.0, scale=10.0)
    x = torch.randn(4, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(loss_fn.logits(x, labels), 10.0 * loss_fn.cosines(x))
    # opposite to its template (theta = pi > pi - m): the linear continuation
    loss_fn = ArcFaceLoss(num_classes=2, embedding_size=3, margin=0.5, scale=2.0)
    with torch.no_grad():
        loss_fn.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    x = torch.tensor([[-3.0, 0.0, 0.0]], dtype=torch.float64)
    got = loss_fn.logits(x, torch.tensor([0]))
    assert got[0, 0].item() == pytest.approx(2.0 * (-1.0 - 0.5 * math.sin(0.5)), abs=1e-12)
    assert got[0, 1].item() == pytest.approx(0.0, abs=1e-12)


def test_arcface_trains_templates():
    torch.manual_seed(1)
    loss_fn = ArcFaceLoss(num_classes=3, embedding_size=4)
    x = torch.randn(6, 4, requires_grad=True)
    loss = loss_fn(x, torch.tensor([0, 1, 2, 0, 1, 2]))
    loss.backward()
    assert torch.isfinite(loss) and loss_fn.weight.grad is not None
    assert torch.isfinite(loss_fn.weight.grad).all() and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError):
        loss_fn.logits(x, torch.tensor([0, 1, 2, 0, 1, 3]))
