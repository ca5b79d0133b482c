"""Cohort score normalisation (AS-norm): the maths against a plain-loop reference, the
look-alike check on a synthetic cohort, and the shipped cohort file."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from faceunlock.engine import cohort as coh
from faceunlock.engine.cohort import Cohort, Matcher
from faceunlock.engine.modelfile import sha256_bytes
from faceunlock.errors import InputError, ModelError


def _loop_stats(x: np.ndarray, means: np.ndarray, k: int) -> tuple[float, float]:
    d = sorted(math.dist(x, m) for m in means)[:k]
    mu = sum(d) / k
    sd = math.sqrt(sum((v - mu) ** 2 for v in d) / k)
    return mu, max(sd, coh.MIN_SPREAD)


def _loop_score(p: np.ndarray, a: np.ndarray, means: np.ndarray, k: int) -> float:
    d = math.dist(p, a)
    mp, sp = _loop_stats(p, means, k)
    ma, sa = _loop_stats(a, means, k)
    return 0.5 * ((d - mp) / sp + (d - ma) / sa)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_scores_match_plain_loop(rng: np.random.Generator) -> None:
    means = rng.normal(0, 0.1, (60, 16)).astype(np.float32)
    anchors = rng.normal(0, 0.1, (4, 16)).astype(np.float32)
    probes = rng.normal(0, 0.1, (5, 16)).astype(np.float32)
    c = Cohort(means, k=9)
    m = Matcher(anchors, c)
    got = m.pair_scores(probes)
    want = np.array([[_loop_score(p, a, means, 9) for a in anchors] for p in probes])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.scores(probes), want.min(axis=1), rtol=1e-5, atol=1e-5)
    assert m.scoring == coh.ASNORM


def test_raw_matcher_is_plain_distance(rng: np.random.Generator) -> None:
    anchors = rng.normal(0, 0.1, (3, 8))
    probes = rng.normal(0, 0.1, (4, 8))
    m = Matcher(anchors)
    want = [min(math.dist(p, a) for a in anchors) for p in probes]
    np.testing.assert_allclose(m.scores(probes), want, rtol=1e-5)
    assert m.scoring == coh.RAW
    loo = [min(math.dist(a, b) for j, b in enumerate(anchors) if j != i)
           for i, a in enumerate(anchors)]
    np.testing.assert_allclose(m.leave_one_out(), loo, rtol=1e-5)


def test_crowded_region_scores_less_alike(rng: np.random.Generator) -> None:
    """The same raw distance is weaker evidence where the cohort is dense."""
    dense = rng.normal(0, 0.02, (50, 8)) + 1.0  # a tight group around (1, ..., 1)
    sparse = rng.normal(0, 0.3, (50, 8)) - 1.0
    c = Cohort(np.vstack([dense, sparse]).astype(np.float32), k=10)
    step = np.zeros(8)
    step[0] = 0.1
    near_dense = Matcher(np.full((1, 8), 1.0), c).scores((np.full(8, 1.0) + step)[None])[0]
    near_sparse = Matcher(np.full((1, 8), -1.0), c).scores((np.full(8, -1.0) + step)[None])[0]
    assert near_dense > near_sparse


def test_lookalike_found_in_synthetic_cohort(rng: np.random.Generator) -> None:
    user = rng.normal(0, 0.3, 16)
    others = rng.normal(0, 0.3, (80, 16))
    twin = user + rng.normal(0, 0.01, 16)  # a cohort identity almost identical to the user
    anchors = user + rng.normal(0, 0.02, (5, 16))
    plain = Matcher(anchors, Cohort(others.astype(np.float32), k=10)).lookalikes(1)[0]
    with_twin = Matcher(anchors, Cohort(np.vstack([others, twin]).astype(np.float32), k=10))
    assert with_twin.lookalikes(1)[0] < plain - 1.0
    # the twin scores like the user's own anchors: no threshold separates them
    assert with_twin.lookalikes(1)[0] <= with_twin.leave_one_out().max() + 1.0


def test_bad_shapes_and_k() -> None:
    with pytest.raises(InputError):
        Cohort(np.zeros((1, 4), np.float32), k=2)
    with pytest.raises(InputError):
        Cohort(np.zeros((5, 4), np.float32), k=6)
    with pytest.raises(InputError):
        Matcher(np.zeros((0, 4)))
    with pytest.raises(InputError):
        Matcher(np.zeros((2, 4)), Cohort(np.ones((5, 3), np.float32), k=2))


def _write_cohort(tmp_path, means: np.ndarray, k: int, encoder_sha: str) -> None:
    buf = io.BytesIO()
    np.savez(buf, means=means)
    data = buf.getvalue()
    (tmp_path / "cohort-int8.npz").write_bytes(data)
    meta = {"file": "cohort-int8.npz", "sha256": sha256_bytes(data), "source": "test",
            "licence": "test", "input": {}, "k": k, coh.ENCODER_KEY: encoder_sha}
    (tmp_path / "cohort-int8.npz.json").write_text(json.dumps(meta))


def test_cohort_file_checked(tmp_path, rng: np.random.Generator) -> None:
    means = rng.normal(0, 0.1, (10, 4)).astype(np.float32)
    _write_cohort(tmp_path, means, 3, "a" * 64)
    enc = tmp_path / "encoder-int8.onnx"
    c = coh.cohort_for(enc, "a" * 64)
    assert c is not None and c.size == 10 and c.k == 3
    with pytest.raises(ModelError, match="made for encoder"):
        coh.cohort_for(enc, "b" * 64)
    assert coh.cohort_for(tmp_path / "other.onnx", "a" * 64) is None
    (tmp_path / "cohort-int8.npz").write_bytes(b"corrupt")
    with pytest.raises(ModelError, match="sha256"):
        coh.cohort_for(enc, "a" * 64)


def test_shipped_cohort_matches_encoder() -> None:
    from faceunlock.engine.modelfile import load_sidecar
    from faceunlock.paths import models_dir

    enc = models_dir() / "encoder-int8.onnx"
    c = coh.cohort_for(enc, load_sidecar(enc)["sha256"])
    assert c is not None, "models/cohort-int8.npz is missing"
    assert c.size >= 1000 and c.means.shape[1] == 128
    assert "far_table" in c.meta and c.meta["far_table"]["entries"]


# --------------------------------------------------------------------------- service level


def _template(anchors: np.ndarray, **calibration: object):
    from faceunlock.engine.templates import Anchor, Template

    t = Template(user="alice", model_sha256="0" * 64)
    thumb = np.zeros((64, 64, 3), np.uint8)
    t.add_anchors(Anchor.new(a.astype(np.float32), thumb, label="default") for a in anchors)
    t.calibration = dict(calibration)
    return t


def test_old_templates_keep_raw_scoring(rng: np.random.Generator) -> None:
    """A template calibrated before cohort normalisation (no ``scoring`` key) is still
    scored by raw distance, so its stored threshold keeps its meaning."""
    from faceunlock.app import service

    t = _template(rng.normal(0, 0.1, (3, 128)))
    assert service.scoring_of(t) == coh.RAW
    assert service.scoring_of(_template(rng.normal(0, 0.1, (3, 128)), scoring="asnorm")) == "asnorm"
    assert service.scoring_of(_template(rng.normal(0, 0.1, (3, 128)), scoring="bogus")) == "raw"


def test_lookalike_check_warns_on_a_twin(rng: np.random.Generator) -> None:
    from faceunlock.app import service
    from faceunlock.engine import calibration as cal

    user = rng.normal(0, 0.3, 32)
    others = rng.normal(0, 0.3, (200, 32))
    anchors = user + rng.normal(0, 0.02, (6, 32))
    imp = rng.normal(0.0, 1.0, 200_000)  # a standard normal impostor scale, like AS-norm's
    table = cal.fit_far_table(imp)
    clean = service.choose(Matcher(anchors, Cohort(others.astype(np.float32), 20)), table,
                           np.full(6, -8.0), "balanced")
    assert clean.scoring == coh.ASNORM
    assert clean.lookalikes["margin"] > service.LOOKALIKE_MARGIN
    assert not clean.lookalikes["warning"]
    twin = user + rng.normal(0, 0.02, 32)
    risky = service.choose(
        Matcher(anchors, Cohort(np.vstack([others, twin]).astype(np.float32), 20)), table,
        np.full(6, -8.0), "balanced",
    )
    assert risky.lookalikes["margin"] < 0  # the twin would be accepted
    assert "looks close to you" in risky.lookalikes["warning"]
    assert risky.lookalikes["warning"] in risky.warnings
    assert risky.to_json()["lookalikes"]["nearest"][0] == risky.lookalikes["nearest"][0]
