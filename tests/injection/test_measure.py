import math

from proxy.injection.measure import auc, rates, roc_table


def test_auc_perfect_random_and_ties():
    assert auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    assert math.isnan(auc([0.1, 0.2], [1, 1]))


def test_rates_per_subtype():
    r = rates([0.9, 0.4, 0.6, 0.1], [1, 1, 0, 0], ["a", "b", "x", "y"], 0.5)
    assert r["tpr"] == 0.5 and r["fpr"] == 0.5
    assert r["tpr_by_subtype"] == {"a": 1.0, "b": 0.0}
    assert r["fpr_by_subtype"] == {"x": 1.0, "y": 0.0}


def test_roc_table_respects_fpr():
    scores = [i / 100 for i in range(100)] + [0.995] * 10
    labels = [0] * 100 + [1] * 10
    for f, thr, tpr in roc_table(scores, labels, (0.0, 0.05)):
        neg_fp = sum(s >= thr for s, y in zip(scores, labels) if y == 0) / 100
        assert neg_fp <= f and tpr == 1.0
