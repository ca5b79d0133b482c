from __future__ import annotations

import numpy as np
import pytest

from faceunlock.engine import calibration as cal
from faceunlock.errors import InputError


def _table(n: int = 4_000_000, seed: int = 0) -> tuple[cal.FarTable, np.ndarray]:
    rng = np.random.default_rng(seed)
    imp = rng.normal(1.0, 0.1, n)
    return cal.fit_far_table(imp), imp


def test_far_table_empirical_entries_match_the_data() -> None:
    table, imp = _table()
    for e in table.entries:
        if e.method == "empirical":
            assert np.mean(imp <= e.threshold) == pytest.approx(e.far, rel=0.02)
            assert e.count >= cal.MIN_TAIL_COUNT
    methods = {e.far: e.method for e in table.entries}
    # 4e6 samples: 1e-3..1e-5 have >= 25 pairs; 1e-6 has only 4 and must be extrapolated
    assert methods[1e-3] == "empirical" and methods[1e-5] == "empirical"
    assert methods[1e-6] == "extrapolated"


def test_extrapolation_is_close_for_a_gaussian_tail() -> None:
    table, _ = _table()
    from statistics import NormalDist

    true = NormalDist(1.0, 0.1).inv_cdf(1e-6)
    got = next(e.threshold for e in table.entries if e.far == 1e-6)
    # a log-linear tail is conservative-ish for a Gaussian; within 0.05 of the truth
    assert abs(got - true) < 0.05
    thresholds = [e.threshold for e in table.entries]
    assert thresholds == sorted(thresholds, reverse=True)


def test_round_trip_and_interpolation() -> None:
    table, _ = _table(500_000)
    again = cal.FarTable.from_json(table.to_json())
    assert again.entries == tuple(
        cal.FarEntry(e.far, round(e.threshold, 6), e.method, e.count) for e in table.entries
    )
    t3, t4 = again.threshold_for(1e-3), again.threshold_for(1e-4)
    mid = again.threshold_for(10**-3.5)
    assert t4 < mid < t3


def test_security_levels_account_for_anchors() -> None:
    table, _ = _table()
    g = np.full(20, 0.3)
    bal = cal.choose_threshold(table, 10, g, "balanced")
    sec = cal.choose_threshold(table, 10, g, "secure")
    conv = cal.choose_threshold(table, 10, g, "convenient")
    assert conv.threshold > bal.threshold > sec.threshold
    assert bal.per_comparison_far == pytest.approx(cal.SECURITY_LEVELS["balanced"] / 10)
    assert bal.expected_frr == 0.0 and not bal.warnings
    with pytest.raises(InputError, match="not one of"):
        cal.choose_threshold(table, 10, g, "lax")


def test_poor_enrolment_warns() -> None:
    table, _ = _table()
    bad = cal.choose_threshold(table, 2, np.full(10, 2.0), "balanced")
    assert bad.expected_frr == 1.0
    text = " ".join(bad.warnings)
    assert "Re-enrol" in text and "at least 5" in text


def test_scores_and_leave_one_out() -> None:
    anchors = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    assert cal.anchor_genuine_distances(anchors).tolist() == [3.0, 3.0, 4.0]
    probes = np.array([[0.0, 1.0], [3.0, 3.0]])
    assert cal.scores_to_anchors(probes, anchors) == pytest.approx([1.0, 3.0])
    with pytest.raises(InputError):
        cal.anchor_genuine_distances(anchors[:1])


def test_false_reject_estimate_is_never_a_bare_zero() -> None:
    """Six samples, none missed: the rate can still be up to 39 % (95 % upper bound), and so
    few samples get a warning; the words never say 0 %."""
    table, _ = _table()
    ch = cal.choose_threshold(table, 10, np.full(6, 0.3), "balanced")
    assert ch.expected_frr == 0.0 and ch.frr_samples == 6
    assert ch.frr_upper == pytest.approx(1 - 0.05 ** (1 / 6))  # 0.393
    assert "0 %" not in ch.frr_words() and "0%" not in ch.frr_words()
    assert "all 6 samples" in ch.frr_words() and "39%" in ch.frr_words()
    assert any("only 6 independent sample" in w for w in ch.warnings)
    many = cal.choose_threshold(table, 10, np.full(40, 0.3), "balanced")
    assert not many.warnings and many.frr_upper < 0.08
    none = cal.choose_threshold(table, 10, np.zeros(0), "balanced")
    assert "not measured" in none.frr_words() and none.to_json()["expected_frr"] is None
    assert any("No independent samples" in w for w in none.warnings)


def test_frr_upper_bound_matches_clopper_pearson() -> None:
    assert cal.frr_upper_bound(0, 10) == pytest.approx(0.2589, abs=1e-4)
    assert cal.frr_upper_bound(1, 10) == pytest.approx(0.3942, abs=1e-4)
    assert cal.frr_upper_bound(5, 10) == pytest.approx(0.7776, abs=1e-4)
    assert cal.frr_upper_bound(3, 3) == 1.0 and cal.frr_upper_bound(0, 0) == 1.0


def test_heldout_scores_skip_the_anchors_own_pose() -> None:
    """Anchors taken a moment apart in one pose are near-duplicates: each anchor is scored
    against the other poses only, and a single-pose template has no held-out score."""
    from faceunlock.app.service import heldout_scores
    from faceunlock.engine.cohort import Matcher

    a = np.array([[0.0, 0.0], [0.01, 0.0], [1.0, 0.0], [1.0, 0.02]], np.float32)
    m = Matcher(a)
    np.testing.assert_allclose(m.leave_one_out(), [0.01, 0.01, 0.02, 0.02], atol=1e-6)
    held = heldout_scores(m, ["d/frontal", "d/frontal", "d/left", "d/left"])
    np.testing.assert_allclose(held, [1.0, 0.99, 0.99, 0.99], atol=1e-3)
    assert heldout_scores(m, ["d/frontal"] * 4).size == 0
