"""Evaluation helpers for self-supervised backbones: weighted kNN classification, top-k accuracy, and the kNN +
linear-probe accuracy of a backbone on several evaluation sets.

The kNN classifier follows the protocol of InstDisc as used by lightly's benchmarks: features are
L2-normalised, the ``k`` most cosine-similar bank entries vote for their class with weight
``exp(similarity / temperature)``, and classes are ranked by their summed weight.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn.functional as F


def knn_predict(
    features: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> torch.Tensor:
    """Rank classes for each query by weighted kNN vote; returns ``[B, num_classes]`` class indices, best first.

    ``features`` [B, D] and ``bank`` [N, D] are L2-normalised here (idempotent when already normalised);
    ``bank_labels`` [N] holds int labels in ``[0, num_classes)``. Queries are processed in chunks of ``chunk``
    rows so the [B, N] similarity matrix never has to exist in full.
    """
    if features.ndim != 2 or bank.ndim != 2 or features.shape[1] != bank.shape[1]:
        raise ValueError(f"knn_predict: features {tuple(features.shape)} and bank {tuple(bank.shape)} "
                         "must be [B, D] and [N, D] with the same D")
    if bank.shape[0] != bank_labels.shape[0]:
        raise ValueError(f"knn_predict: bank has {bank.shape[0]} rows but bank_labels has {bank_labels.shape[0]}")
    if k < 1 or temperature <= 0:
        raise ValueError(f"knn_predict: k must be >= 1 and temperature > 0 (got k={k}, temperature={temperature})")
    k = min(k, bank.shape[0])
    bank = F.normalize(bank.float(), dim=1)
    bank_labels = bank_labels.long().to(bank.device)
    ranked = []
    for start in range(0, features.shape[0], chunk):
        query = F.normalize(features[start:start + chunk].float(), dim=1)
        sim, idx = (query @ bank.T).topk(k, dim=1)
        weights = (sim / temperature).exp()
        scores = torch.zeros(query.shape[0], num_classes, device=query.device)
        scores.scatter_add_(1, bank_labels[idx], weights)
        ranked.append(scores.argsort(dim=1, descending=True))
    return torch.cat(ranked)


def topk_correct(ranked: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, int]:
    """Count samples whose label is among the first ``k`` ranked classes, for each ``k`` in ``ks``.

    ``ranked`` is [B, C] class indices (best first) or [B, C] logits/scores (ranked here when float).
    """
    if ranked.is_floating_point():
        ranked = ranked.argsort(dim=1, descending=True)
    hits = ranked == labels.view(-1, 1).to(ranked.device)
    return {k: int(hits[:, :k].any(dim=1).sum()) for k in ks}


@torch.no_grad()
def extract(backbone: torch.nn.Module, probe: torch.nn.Module, batches: Iterable[tuple[Any, Any]],
            prepare: Callable[[torch.Tensor], torch.Tensor],
            amp: Callable[[], Any] = contextlib.nullcontext) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backbone features, probe logits and labels of every sample of ``(views, labels)`` batches (first view).

    ``prepare`` moves a batch to the model's device; features stay there (the kNN search runs there).
    """
    feats, logits, labels = [], [], []
    for views, y in batches:
        with amp():
            f = backbone(prepare(views[0])).float()
            logits.append(probe(f).float())
        feats.append(f)
        labels.append(torch.as_tensor(y).clone())  # a loader may reuse the batch memory for the next batch
    return torch.cat(feats), torch.cat(logits), torch.cat(labels)


def evaluate(backbone: torch.nn.Module, probe: torch.nn.Module, bank: Iterable, eval_sets: Mapping[str, Iterable],
             num_classes: int, *, k: int = 200, temperature: float = 0.1,
             prepare: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
             amp: Callable[[], Any] = contextlib.nullcontext) -> dict[str, float]:
    """kNN (against the ``bank`` set's features) and probe top-1/top-5, in %, per evaluation set, as
    ``"<set>/knn_top1"`` ..., plus their means over the sets as ``"knn_top1"`` ...; the caller sets eval mode."""
    bank_feats, _, bank_labels = extract(backbone, probe, bank, prepare, amp)
    results: dict[str, float] = {}
    for name, batches in eval_sets.items():
        feats, logits, labels = extract(backbone, probe, batches, prepare, amp)
        knn = topk_correct(knn_predict(feats, bank_feats, bank_labels, num_classes, k, temperature), labels)
        for kind, hits in (("knn", knn), ("probe", topk_correct(logits, labels))):
            for top, count in hits.items():
                results[f"{name}/{kind}_top{top}"] = 100.0 * count / len(labels)
    for metric in ("knn_top1", "knn_top5", "probe_top1", "probe_top5"):
        values = [v for key, v in results.items() if key.endswith("/" + metric)]
        if values:
            results[metric] = sum(values) / len(values)
    return results
