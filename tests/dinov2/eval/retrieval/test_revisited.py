"""mAP and mP@k of the revisited protocol against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dinov2.eval.retrieval.revisited import compute_ap, compute_map, evaluate_revisited, setting_gnd

# Database of 10 images, three queries.
# q0: easy {2, 5}, hard {7}, junk {0}; ranked 0 2 3 7 5 1 4 6 8 9 → junk first, hard between easies.
# q1: easy {4}, no hard, junk {9}; ranked 4 9 ... → junk after the only positive;
#     no positive in Hard.
# q2: no easy, no hard, junk {3}: no positive in any setting.
GND = [
    {"easy": [2, 5], "hard": [7], "junk": [0]},
    {"easy": [4], "hard": [], "junk": [9]},
    {"easy": [], "hard": [], "junk": [3]},
]
RANKS = np.array(
    [
        [0, 2, 3, 7, 5, 1, 4, 6, 8, 9],
        [4, 9, 0, 1, 2, 3, 5, 6, 7, 8],
        [3, 0, 1, 2, 4, 5, 6, 7, 8, 9],
    ]
).T  # [n_db, n_queries]

# Hand computation (positions are zero-based after removing junk):
# Easy   q0: ok {2,5}, junk {0,7}: positions 0, 2 → AP = (1+1)/2·½ + (½+⅔)/2·½ = 19/24;
#        P@1 1, P@5 = P@10 = 2/3 (k_q = 3)
# Medium q0: ok {2,5,7}, junk {0}: positions 0, 2, 3 → AP = 1/3 + 7/36 + 17/72 = 55/72;
#        P@1 1, P@5 = P@10 = 3/4 (k_q = 4)
# Hard   q0: ok {7}, junk {0,2,5}: position 1 → AP = (0 + ½)/2 = 1/4;
#        P@1 0, P@5 = P@10 = ½ (k_q = 2)
# q1: AP 1 and P@k 1 in Easy and Medium, nan in Hard; q2: nan everywhere (excluded from the means).
EXPECTED = {
    "easy": (43 / 48, [1.0, 5 / 6, 5 / 6]),
    "medium": (127 / 144, [1.0, 7 / 8, 7 / 8]),
    "hard": (1 / 4, [0.0, 0.5, 0.5]),
}


@pytest.mark.parametrize("setting", ["easy", "medium", "hard"])
def test_map_and_mpk_equal_hand_computed_values(setting):
    m, aps, pr, prs = compute_map(RANKS, setting_gnd(GND, setting), kappas=(1, 5, 10))
    expected_map, expected_pr = EXPECTED[setting]
    assert m == pytest.approx(expected_map)
    np.testing.assert_allclose(pr, expected_pr)
    assert math.isnan(aps[2]) and np.isnan(prs[2]).all()
    assert aps.shape == (3,) and prs.shape == (3, 3)


def test_query_without_positives_is_nan_and_excluded():
    _, aps, _, prs = compute_map(RANKS, setting_gnd(GND, "hard"))
    assert math.isnan(aps[1]) and math.isnan(aps[2])
    assert aps[0] == pytest.approx(0.25)


def test_settings_build_positive_and_junk_lists():
    q0 = {s: setting_gnd(GND, s)[0] for s in ("easy", "medium", "hard")}
    assert sorted(q0["easy"]["ok"]) == [2, 5] and sorted(q0["easy"]["junk"]) == [0, 7]
    assert sorted(q0["medium"]["ok"]) == [2, 5, 7] and sorted(q0["medium"]["junk"]) == [0]
    assert sorted(q0["hard"]["ok"]) == [7] and sorted(q0["hard"]["junk"]) == [0, 2, 5]


def test_evaluate_revisited_reports_percent():
    r = evaluate_revisited(RANKS, GND)
    assert r["mAP_easy"] == pytest.approx(100 * 43 / 48)
    assert r["mAP_hard"] == pytest.approx(25.0)
    assert r["mP@5_medium"] == pytest.approx(100 * 7 / 8)


def test_compute_ap_is_one_for_a_perfect_ranking_and_trapezoidal_otherwise():
    assert compute_ap(np.array([0, 1, 2]), 3) == pytest.approx(1.0)
    # one positive at rank 3 of 1: precision goes from 0 to 1/4 over the whole recall step
    assert compute_ap(np.array([3]), 1) == pytest.approx(0.125)
    # a positive never retrieved counts as recall never reached
    assert compute_ap(np.array([0]), 2) == pytest.approx(0.5)


def test_ranks_of_wrong_shape_are_rejected():
    with pytest.raises(ValueError, match="n_queries"):
        compute_map(RANKS.T, setting_gnd(GND, "easy"))
