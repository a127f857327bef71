"""Weighted kNN against a brute-force, one-query-at-a-time computation."""

from __future__ import annotations

import math

import pytest
import torch

from dinov2.eval.knn import knn_accuracy, knn_scores


def brute_force_scores(train, train_labels, query, k, temperature, num_classes):
    """Cosine similarity to every training point, sort, sum exp(sim / T) per label of the k
    nearest."""
    sims = []
    for i in range(train.shape[0]):
        cos = float(train[i] @ query) / (float(train[i].norm()) * float(query.norm()))
        sims.append((cos, i))
    sims.sort(key=lambda t: -t[0])
    scores = [0.0] * num_classes
    for cos, i in sims[:k]:
        scores[int(train_labels[i])] += math.exp(cos / temperature)
    return scores


def test_knn_scores_match_brute_force():
    g = torch.Generator().manual_seed(0)
    train, labels = torch.randn(40, 6, generator=g), torch.randint(0, 4, (40,), generator=g)
    test = torch.randn(7, 6, generator=g)
    scores = knn_scores(train, labels, test, ks=(1, 5, 20), temperature=0.07, num_classes=4)
    for k in (1, 5, 20):
        for q in range(7):
            expected = brute_force_scores(train, labels, test[q], k, 0.07, 4)
            torch.testing.assert_close(
                scores[k][q], torch.tensor(expected, dtype=torch.float32), rtol=1e-4, atol=1e-3
            )


def test_knn_accuracy_on_toy_clusters_and_k_above_dataset_size():
    centres = torch.eye(3) * 10
    g = torch.Generator().manual_seed(1)
    train = centres.repeat_interleave(5, 0) + torch.randn(15, 3, generator=g)
    train_y = torch.arange(3).repeat_interleave(5)
    test = centres + 0.1 * torch.randn(3, 3, generator=g)
    acc = knn_accuracy(train, train_y, test, torch.arange(3), ks=(3, 200))
    assert acc["k=3"]["top1"] == 100.0
    assert (
        acc["k=200"]["top5"] == 100.0
    )  # k clamps to the 15 training points; top-5 clamps to 3 classes
    # with all 15 neighbours voting, the exp(sim/T) weights still let the own cluster win
    assert acc["k=200"]["top1"] == 100.0


def test_temperature_changes_weights_not_only_ranking():
    train = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.8, 0.6]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.0]])
    # sharp weights: the single closest point wins; flat weights: the two votes of class 1 win
    assert knn_scores(train, labels, query, ks=(3,), temperature=0.07)[3].argmax() == 0
    assert knn_scores(train, labels, query, ks=(3,), temperature=10.0)[3].argmax() == 1


@pytest.mark.parametrize("k", [1, 2])
def test_knn_scores_have_one_row_per_query_and_one_column_per_class(k):
    scores = knn_scores(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]), torch.randn(2, 3), ks=(k,))
    assert scores[k].shape == (2, 4)
