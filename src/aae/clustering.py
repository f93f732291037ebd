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


def paper_rule_mapping(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K,) label per cluster: the label of the example with the highest probability of it."""
    return np.asarray(labels)[np.asarray(probs).argmax(0)]


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


def cluster_scores(val_probs: np.ndarray, val_labels: np.ndarray, test_probs: np.ndarray,
                   test_labels: np.ndarray) -> dict:
    """Test errors under both rules (mappings chosen on validation), NMI and ARI on the test set,
    and the cluster sizes."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    k = val_probs.shape[1]
    test_assigned = test_probs.argmax(1)
    paper = paper_rule_mapping(val_probs, val_labels)
    majority = majority_mapping(val_probs.argmax(1), val_labels, k)
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
