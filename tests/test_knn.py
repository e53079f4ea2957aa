"""Weighted kNN classifier (lightly / InstDisc semantics) on toy problems with known answers."""
import math

import pytest
import torch

from fastssl_loader.ssl_eval import knn_predict, topk_correct


def test_two_clusters_are_separated():
    torch.manual_seed(0)
    centers = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    bank = torch.cat([centers[0] + 0.05 * torch.randn(20, 3), centers[1] + 0.05 * torch.randn(20, 3)])
    labels = torch.tensor([0] * 20 + [1] * 20)
    queries = torch.cat([centers[0] + 0.05 * torch.randn(5, 3), centers[1] + 0.05 * torch.randn(5, 3)])
    ranked = knn_predict(queries, bank, labels, num_classes=2, k=10, temperature=0.1)
    assert ranked[:, 0].tolist() == [0] * 5 + [1] * 5


def test_weights_are_exp_similarity_over_temperature():
    # one class-0 neighbour identical to the query (s=1) vs three class-1 neighbours at s=0.5:
    # weights e^10 vs 3 e^5 -> class 0 wins although class 1 has the majority; at T=10 the majority wins
    query = torch.tensor([[1.0, 0.0]])
    half = [0.5, math.sqrt(0.75)]
    bank = torch.tensor([[1.0, 0.0], half, half, half])
    labels = torch.tensor([0, 1, 1, 1])
    assert knn_predict(query, bank, labels, 2, k=4, temperature=0.1)[0, 0].item() == 0
    assert knn_predict(query, bank, labels, 2, k=4, temperature=10.0)[0, 0].item() == 1


def test_only_k_nearest_vote_and_features_are_normalised():
    query = torch.tensor([[10.0, 0.0]])  # unnormalised on purpose
    bank = torch.tensor([[2.0, 0.1], [0.0, 1.0], [0.0, 3.0], [-1.0, 1.0]])
    labels = torch.tensor([2, 1, 1, 1])
    ranked = knn_predict(query, bank, labels, 3, k=1, temperature=0.1)
    assert ranked[0, 0].item() == 2
    # k larger than the bank is clamped; classes with no neighbour rank last
    ranked = knn_predict(query, bank, labels, 4, k=500, temperature=0.1, chunk=1)
    assert ranked[0, 0].item() == 2 and ranked[0, 1].item() == 1


def test_chunking_does_not_change_the_answer():
    torch.manual_seed(3)
    bank, labels = torch.randn(50, 8), torch.randint(0, 5, (50,))
    queries = torch.randn(17, 8)
    a = knn_predict(queries, bank, labels, 5, k=7, temperature=0.2, chunk=4)
    b = knn_predict(queries, bank, labels, 5, k=7, temperature=0.2, chunk=1000)
    assert torch.equal(a[:, 0], b[:, 0])


def test_topk_correct_counts():
    ranked = torch.tensor([[0, 1, 2], [2, 1, 0], [1, 2, 0]])
    labels = torch.tensor([0, 1, 0])
    assert topk_correct(ranked, labels, ks=(1, 2, 3)) == {1: 1, 2: 2, 3: 3}
    logits = torch.tensor([[5.0, 1.0, 0.0], [0.0, 1.0, 5.0]])
    assert topk_correct(logits, torch.tensor([0, 1]), ks=(1, 2)) == {1: 1, 2: 2}


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match="same D"):
        knn_predict(torch.randn(2, 3), torch.randn(4, 5), torch.zeros(4), 2)
    with pytest.raises(ValueError, match="bank_labels"):
        knn_predict(torch.randn(2, 3), torch.randn(4, 3), torch.zeros(3), 2)
    with pytest.raises(ValueError, match="temperature"):
        knn_predict(torch.randn(2, 3), torch.randn(4, 3), torch.zeros(4), 2, temperature=0)
