"""Cluster-to-label rules and clustering scores (paper section 6, table 3).

An unsupervised AAE with a K-way y head puts each image in a cluster; to turn clusters into an
error rate each cluster needs a label:

* the paper's rule: for each cluster i, the validation example with the highest q(y = i | x) gives
  its label to the whole cluster (one labelled example per cluster);
* majority vote (what most reimplementations report, and easier): each cluster takes the most
  common label of the validation examples assigned to it.

Both mappings are chosen on the validation split and scored on the test split. NMI and ARI come
from scikit-learn.
"""

from __future__ import annotations

import numpy as np


def paper_rule_mapping(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K,) label per cluster: the label of the example with the highest probability of it.

    ``scores`` (N, K): q(y|x) or any increasing function of it. Pass :func:`log_odds` of the
    head's logits: a trained softmax head rounds q to exactly 1.0 in float32 for hundreds of
    examples per cluster (and log q to 0.0), and among such ties ``argmax`` would take the first
    example, not the most confident one."""
    return np.asarray(labels)[np.asarray(scores).argmax(0)]


def log_odds(logits: np.ndarray) -> np.ndarray:
    """(N, K) log(q_k / (1 - q_k)) = logit_k - logsumexp of the other logits, for q = softmax of
    ``logits``: increasing in q_k, so it ranks examples as q does, but it keeps its resolution
    where q rounds to 1.0 (in float64, through scipy's logsumexp)."""
    from scipy.special import logsumexp

    z = np.asarray(logits, dtype=np.float64)
    out = np.empty_like(z)
    for k in range(z.shape[1]):  # one (N, K - 1) pass per class: memory stays N x K
        out[:, k] = z[:, k] - logsumexp(np.delete(z, k, axis=1), axis=1)
    return out


def majority_mapping(assigned: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(K,) label per cluster: the most common label among its members; -1 for an empty one."""
    out = np.full(k, -1, dtype=np.int64)
    labels = np.asarray(labels)
    for c in range(k):
        members = labels[np.asarray(assigned) == c]
        if len(members):
            out[c] = np.bincount(members).argmax()
    return out


def mapped_error(assigned: np.ndarray, labels: np.ndarray, mapping: np.ndarray) -> float:
    """Share of examples whose cluster's label differs from their own."""
    return float((np.asarray(mapping)[np.asarray(assigned)] != np.asarray(labels)).mean())


def paper_rule_spread(val_scores: np.ndarray, val_labels: np.ndarray, test_assigned: np.ndarray,
                      test_labels: np.ndarray, draws: int = 200, seed: int = 0) -> dict:
    """How much the paper's test error depends on single validation examples: the rule re-run on
    ``draws`` bootstrap resamples of the validation set (each leaves out about a third of it, so
    a cluster's most confident example is sometimes absent and the next one names the cluster).
    Returns the draws' mean, 5th and 95th percentiles of the test error, and the share of draws
    whose mapping equals the one from the whole validation set. A spread, not a second rule."""
    rng = np.random.default_rng(seed)
    scores, labels = np.asarray(val_scores), np.asarray(val_labels)
    full = paper_rule_mapping(scores, labels)
    errors, same = [], 0
    for _ in range(draws):
        idx = rng.integers(0, len(labels), len(labels))
        mapping = paper_rule_mapping(scores[idx], labels[idx])
        errors.append(mapped_error(test_assigned, test_labels, mapping))
        same += bool((mapping == full).all())
    p05, p95 = np.percentile(errors, [5, 95])
    return {"draws": draws, "mean": float(np.mean(errors)), "p05": float(p05), "p95": float(p95),
            "same_mapping": same / draws}


def cluster_scores(val_scores: np.ndarray, val_labels: np.ndarray, test_scores: np.ndarray,
                   test_labels: np.ndarray) -> dict:
    """Test errors under both rules (mappings chosen on validation), NMI and ARI on the test set,
    and the cluster sizes. ``*_scores`` (N, K): q(y|x) or, better, its :func:`log_odds`."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    k = val_scores.shape[1]
    test_assigned = test_scores.argmax(1)
    paper = paper_rule_mapping(val_scores, val_labels)
    majority = majority_mapping(val_scores.argmax(1), val_labels, k)
    return {
        "clusters": k,
        "paper_error": mapped_error(test_assigned, test_labels, paper),
        "majority_error": mapped_error(test_assigned, test_labels, majority),
        "nmi": float(normalized_mutual_info_score(test_labels, test_assigned)),
        "ari": float(adjusted_rand_score(test_labels, test_assigned)),
        "paper_mapping": paper.tolist(),
        "majority_mapping": majority.tolist(),
        "sizes": np.bincount(test_assigned, minlength=k).tolist(),
    }
