"""Triplet miners: brute-force counts and hand-built examples."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from faceunlock.training.distances import (  # noqa: E402
    CosineSimilarity,
    EuclideanDistance,
    SquaredEuclideanDistance,
)
from faceunlock.training.miners import (  # noqa: E402
    BatchAllMiner,
    BatchHardMiner,
    SemiHardMiner,
)

DISTANCES = {
    "euclidean": EuclideanDistance,
    "squared": SquaredEuclideanDistance,
    "cosine": CosineSimilarity,
}
MARGIN = {"euclidean": 1.0, "squared": 4.0, "cosine": 0.3}

# Hand-built 1-D batch. Identities: A = {0, 1, 2}, B = {3, 4}, C = {5} (C has no positive).
X1 = [[0.0], [1.0], [4.0], [2.0], [7.0], [20.0]]
LABELS1 = [0, 0, 0, 1, 1, 2]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def as_tuples(idx):
    return [t.tolist() for t in idx]


def dissim(kind: str, u: list[float], v: list[float]) -> float:
    """Larger = farther, in plain Python (a cosine similarity is negated)."""
    if kind == "cosine":
        nu = math.sqrt(sum(a * a for a in u))
        nv = math.sqrt(sum(b * b for b in v))
        return -sum(a * b for a, b in zip(u, v, strict=True)) / (nu * nv)
    sq = sum((a - b) ** 2 for a, b in zip(u, v, strict=True))
    return sq if kind == "squared" else math.sqrt(sq)


def random_batch(seed: int, n: int = 9, classes: int = 3):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, generator=g, dtype=torch.float64),
            torch.randint(0, classes, (n,), generator=g))


# ---------------------------------------------------------------------------------------------
# batch-all
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", DISTANCES)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_batch_all_counts_match_brute_force(kind, seed):
    x, labels = random_batch(seed)
    xs, ls = x.tolist(), labels.tolist()
    n = len(ls)
    m = MARGIN[kind]
    valid, positive = [], []
    for i in range(n):
        for j in range(n):
            for k in range(n):
                if len({i, j, k}) < 3 or ls[i] != ls[j] or ls[i] == ls[k]:
                    continue
                valid.append((i, j, k))
                if dissim(kind, xs[i], xs[j]) - dissim(kind, xs[i], xs[k]) + m > 0:
                    positive.append((i, j, k))
    miner = BatchAllMiner(margin=m, distance=DISTANCES[kind]())
    got = miner(x, labels)
    assert all(t.dtype == torch.long for t in got)
    assert len(got[0]) == len(valid) == miner.last_num_valid == miner.last_num_triplets
    assert list(zip(*as_tuples(got), strict=True)) == valid
    pos_miner = BatchAllMiner(margin=m, positive_only=True, distance=DISTANCES[kind]())
    got = pos_miner(x, labels)
    assert list(zip(*as_tuples(got), strict=True)) == positive
    assert pos_miner.last_num_valid == len(valid)
    assert 0 < len(positive) < len(valid)


def test_batch_all_small_hand_count():
    # A = {0, 1, 2}: 6 ordered pairs x 3 negatives; B = {3, 4}: 2 pairs x 4 negatives
    got = BatchAllMiner()(torch.tensor(X1), torch.tensor(LABELS1))
    assert len(got[0]) == 6 * 3 + 2 * 4


# ---------------------------------------------------------------------------------------------
# batch-hard
# ---------------------------------------------------------------------------------------------

BATCH_HARD_EXPECTED = [[0, 1, 2, 3, 4], [2, 2, 0, 4, 3], [3, 3, 3, 1, 2]]


def test_batch_hard_hand_example_1d():
    # anchor 0 (x=0): positives 1 (d 1), 2 (d 4) -> 2; negatives 3 (2), 4 (7), 5 (20) -> 3
    # anchor 1 (x=1): positives 0 (1), 2 (3) -> 2; negatives 3 (1), 4 (6), 5 (19) -> 3
    # anchor 2 (x=4): positives 0 (4), 1 (3) -> 0; negatives 3 (2), 4 (3), 5 (16) -> 3
    # anchor 3 (x=2): positive 4 (5); negatives 0 (2), 1 (1), 2 (2), 5 (18) -> 1
    # anchor 4 (x=7): positive 3 (5); negatives 0 (7), 1 (6), 2 (3), 5 (13) -> 2
    # anchor 5: no positive, skipped
    for dist in (EuclideanDistance(), SquaredEuclideanDistance()):
        got = BatchHardMiner(distance=dist)(torch.tensor(X1), torch.tensor(LABELS1))
        assert as_tuples(got) == BATCH_HARD_EXPECTED


def test_batch_hard_hand_example_cosine_2d():
    # the same structure on the circle: angles (degrees) and arbitrary radii
    angles = [0, 10, 40, 20, 90, 180]
    radii = [1.0, 2.0, 0.5, 3.0, 1.5, 0.7]
    x = torch.tensor([[r * math.cos(math.radians(a)), r * math.sin(math.radians(a))]
                      for a, r in zip(angles, radii, strict=True)], dtype=torch.float64)
    got = BatchHardMiner(distance=CosineSimilarity())(x, torch.tensor(LABELS1))
    assert as_tuples(got) == BATCH_HARD_EXPECTED


def test_batch_hard_skips_anchors_without_negative_or_positive():
    x = torch.tensor(X1)
    assert as_tuples(BatchHardMiner()(x, torch.zeros(6, dtype=torch.long))) == [[], [], []]
    assert as_tuples(BatchHardMiner()(x, torch.arange(6))) == [[], [], []]


@pytest.mark.parametrize("kind", DISTANCES)
def test_batch_hard_matches_brute_force(kind):
    x, labels = random_batch(11, n=10)
    xs, ls = x.tolist(), labels.tolist()
    want = []
    for a in range(len(ls)):
        pos = [j for j in range(len(ls)) if j != a and ls[j] == ls[a]]
        neg = [k for k in range(len(ls)) if ls[k] != ls[a]]
        if pos and neg:
            p = max(pos, key=lambda j: dissim(kind, xs[a], xs[j]))
            n = min(neg, key=lambda k: dissim(kind, xs[a], xs[k]))
            want.append((a, p, n))
    got = BatchHardMiner(distance=DISTANCES[kind]())(x, labels)
    assert list(zip(*as_tuples(got), strict=True)) == want


# ---------------------------------------------------------------------------------------------
# semi-hard
# ---------------------------------------------------------------------------------------------


def test_semi_hard_hand_example_1d():
    # margin 2.5; ordered (a, p) pairs, negatives must satisfy d(a,p) < d(a,n) < d(a,p) + 2.5
    # (0,1): d_ap 1, window (1, 3.5): negatives 3 (2) ok, 4 (7), 5 (20) -> 3
    # (0,2): d_ap 4, window (4, 6.5): 3 (2), 4 (7), 5 (20) -> none
    # (1,0): d_ap 1, window (1, 3.5): 3 (1) is not strictly farther -> none
    # (1,2): d_ap 3, window (3, 5.5): 3 (1), 4 (6), 5 (19) -> none
    # (2,0): d_ap 4, window (4, 6.5): 3 (2), 4 (3), 5 (16) -> none
    # (2,1): d_ap 3, window (3, 5.5): 4 (3) is not strictly farther -> none
    # (3,4): d_ap 5, window (5, 7.5): 0 (2), 1 (1), 2 (2), 5 (18) -> none
    # (4,3): d_ap 5, window (5, 7.5): 0 (7) and 1 (6) ok, 2 (3) too hard -> closest is 1
    miner = SemiHardMiner(margin=2.5)
    got = miner(torch.tensor(X1, dtype=torch.float64), torch.tensor(LABELS1))
    assert as_tuples(got) == [[0, 4], [1, 3], [3, 1]]
    assert miner.last_num_triplets == 2


def test_semi_hard_hand_example_2d():
    # 2-D points, Euclidean. A = {0, 1}, B = {2, 3, 4}
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 6.0], [6.0, 8.0], [0.0, -5.5]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    # (0,1): d_ap 5, window (5, 6): 2 (6) no, 3 (10) no, 4 (5.5) yes -> 4
    # (1,0): d_ap 5, window (5, 6): 2 (3.6) no, 3 (5) not strictly farther, 4 (9.96) no
    # B pairs against negatives {0, 1}, margin 1:
    # (2,3): d_ap 6.32, d(2,0) 6 no, d(2,1) 3.6 no -> none
    # (2,4): d_ap 11.5 -> none;  (3,2): 6.32 -> d(3,1) 5 no, d(3,0) 10 no -> none
    # (3,4): d_ap 14.8 -> none;  (4,2): 11.5 -> d(4,1) 9.96 no, d(4,0) 5.5 no -> none
    # (4,3): d_ap 14.8 -> none
    got = SemiHardMiner(margin=1.0)(x, labels)
    assert as_tuples(got) == [[0], [1], [4]]


@pytest.mark.parametrize("kind", DISTANCES)
def test_semi_hard_matches_brute_force(kind):
    x, labels = random_batch(21, n=10)
    xs, ls = x.tolist(), labels.tolist()
    m = MARGIN[kind]
    want = []
    for a in range(len(ls)):
        for p in range(len(ls)):
            if p == a or ls[p] != ls[a]:
                continue
            dap = dissim(kind, xs[a], xs[p])
            cands = [k for k in range(len(ls)) if ls[k] != ls[a]
                     and dap < dissim(kind, xs[a], xs[k]) < dap + m]
            if cands:
                want.append((a, p, min(cands, key=lambda k: dissim(kind, xs[a], xs[k]))))
    got = SemiHardMiner(margin=m, distance=DISTANCES[kind]())(x, labels)
    assert list(zip(*as_tuples(got), strict=True)) == want
    assert want  # the example is not vacuous


def test_miners_reject_bad_input_and_build_no_graph():
    x = torch.tensor(X1, requires_grad=True)
    for miner in (BatchAllMiner(), BatchHardMiner(), SemiHardMiner()):
        out = miner(x, torch.tensor(LABELS1))
        assert all(not t.requires_grad and t.dtype == torch.long for t in out)
        with pytest.raises(ValueError):
            miner(x, torch.tensor(LABELS1[:3]))
        with pytest.raises(TypeError):
            miner(x, torch.tensor(LABELS1, dtype=torch.float32))
