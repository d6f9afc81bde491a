import math

import numpy as np
import pytest

from virtue.eval.metrics import gt_rank, kind_accuracy, kind_wins, macro_mean, ranking, summary, vlm2vec_scores


def test_rank_of_ground_truth():
    assert gt_rank([0.9, 0.1, 0.5]) == 1
    assert gt_rank([0.4, 0.1, 0.5, 0.7]) == 3
    assert list(ranking([0.4, 0.1, 0.5, 0.7])) == [3, 2, 0, 1]


def test_ties_count_against_the_ground_truth():
    assert gt_rank([1.0, 1.0, 1.0, 1.0]) == 4
    assert gt_rank([0.5, 0.5, 0.1]) == 2
    assert ranking([0.5, 0.5, 0.1])[0] == 1


def test_summary_by_hand():
    # ranks 1, 2, 6, 1: hit@1 = 2/4, hit@5 = 3/4, MRR = (1 + 1/2 + 1/6 + 1) / 4
    s = summary([1, 2, 6, 1])
    assert s["hit@1"] == 0.5
    assert s["hit@5"] == 0.75
    assert s["mrr"] == pytest.approx((1 + 0.5 + 1 / 6 + 1) / 4)
    assert s["n"] == 4


def test_vlm2vec_set_by_hand():
    s = vlm2vec_scores([1, 3, 7, 12])
    assert s["num_queries"] == 4
    assert s["hit@1"] == s["precision@1"] == s["recall@1"] == 0.25
    assert s["hit@5"] == 0.5 and s["precision@5"] == pytest.approx(0.5 / 5)
    assert s["hit@10"] == s["recall@10"] == 0.75
    assert s["ndcg@5"] == pytest.approx((1 + 1 / math.log2(4)) / 4)
    assert s["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(8)) / 4)
    assert s["mrr@5"] == s["map@5"] == pytest.approx((1 + 1 / 3) / 4)
    assert s["mrr@10"] == pytest.approx((1 + 1 / 3 + 1 / 7) / 4)
    assert s["mrr@1"] == 0.25


def test_kind_wins_per_kind():
    kinds = ("gt", "object_in_image", "object_in_image", "relation", "scene")
    wins = kind_wins(np.array([0.5, 0.4, 0.6, 0.1, 0.5]), kinds)
    # one in-image object beats the GT; relation is below; the scene swap ties (a tie is a loss)
    assert wins == {"object_in_image": False, "relation": True, "scene": False}
    acc = kind_accuracy([wins, {"relation": False, "scene": True}, {"object_absent": True}])
    assert acc["relation"] == {"accuracy": 0.5, "n": 2}
    assert acc["scene"] == {"accuracy": 0.5, "n": 2}
    assert acc["object_absent"] == {"accuracy": 1.0, "n": 1}
    assert acc["object_in_image"] == {"accuracy": 0.0, "n": 1}


def test_kind_wins_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        kind_wins([0.1, 0.2], ("gt",))


def test_macro_mean_ignores_missing():
    assert macro_mean([0.2, 0.4, float("nan")]) == pytest.approx(0.3)
    assert math.isnan(macro_mean([]))
