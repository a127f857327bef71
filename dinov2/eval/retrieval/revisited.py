"""Revisited Oxford / Paris evaluation: mAP and mP@k exactly as the revisited protocol defines them.

Reference: Radenović et al., "Revisiting Oxford and Paris: Large-Scale Image Retrieval
Benchmarking" (CVPR 2018) and its public evaluation code. The facts reproduced here:

- ``ranks`` is ``[n_db, n_queries]``: column ``q`` lists database indices from most to least
  similar;
- junk images are removed from the ranking (each positive moves up by the number of junk images
  ranked before it) before the average precision is computed;
- AP integrates the precision-recall curve with trapezoids (:func:`compute_ap`);
- a query without positives gets AP = nan and P@k = nan and is left out of the means;
- P@k uses ``k_q = min(k, position of the last positive)``, so a query with fewer than k positives,
  all ranked first, scores 1 (the protocol's definition, not the textbook one);
- the three settings use the ``easy`` / ``hard`` / ``junk`` lists of the ground truth
  (:data:`SETTINGS`); results are reported in percent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

KAPPAS = (1, 5, 10)
# setting -> (lists that are positives, lists that are junk)
SETTINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "easy": (("easy",), ("junk", "hard")),
    "medium": (("easy", "hard"), ("junk",)),
    "hard": (("hard",), ("junk", "easy")),
}


def compute_ap(ranks: np.ndarray, nres: int) -> float:
    """Trapezoidal average precision.

    ``ranks``: zero-based, increasing positions of the positives in the (junk-free) ranking;
    ``nres``: number of positives of the query (positives missing from ``ranks`` count as never
    found). Between recall ``j/nres`` and ``(j+1)/nres`` the precision goes from ``j / rank`` (1 at
    rank 0) to ``(j+1) / (rank+1)``; the area of each trapezoid is summed.
    """
    ap = 0.0
    recall_step = 1.0 / nres
    for j, rank in enumerate(np.asarray(ranks).tolist()):
        precision_0 = 1.0 if rank == 0 else j / rank
        precision_1 = (j + 1) / (rank + 1)
        ap += (precision_0 + precision_1) * recall_step / 2.0
    return ap


def _positions_without_junk(column: np.ndarray, ok: np.ndarray, junk: np.ndarray) -> np.ndarray:
    """Zero-based positions of ``ok`` images in ``column`` after removing ``junk`` from the
    ranking."""
    is_pos = np.isin(column, ok)
    is_junk = np.isin(column, junk)
    # The number of junk images ranked before each positive is subtracted from its position.
    junk_before = np.cumsum(is_junk) - is_junk
    return (np.flatnonzero(is_pos) - junk_before[is_pos]).astype(np.int64)


def compute_map(
    ranks: np.ndarray, gnd: Sequence[Mapping[str, Sequence[int]]], kappas: Sequence[int] = KAPPAS
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """mAP and mP@k of a ranking, revisited-protocol contract.

    ``ranks``: int ``[n_db, n_queries]``, database indices sorted by decreasing similarity per
    query; ``gnd``: one dict per query with ``ok`` (positives) and optionally ``junk`` index lists.
    Returns ``(map, aps [n_queries], pr [len(kappas)], prs [n_queries, len(kappas)])`` as fractions
    in [0, 1]; queries without positives have nan in ``aps``/``prs`` and are excluded from the
    means.
    """
    ranks = np.asarray(ranks)
    n_queries = len(gnd)
    if ranks.ndim != 2 or ranks.shape[1] != n_queries:
        raise ValueError(f"ranks must be [n_db, n_queries={n_queries}], got shape {ranks.shape}")
    aps = np.zeros(n_queries)
    prs = np.zeros((n_queries, len(kappas)))
    for i, query in enumerate(gnd):
        ok = np.asarray(query["ok"], dtype=np.int64)
        if ok.size == 0:
            aps[i] = np.nan
            prs[i, :] = np.nan
            continue
        junk = np.asarray(query.get("junk", []), dtype=np.int64)
        pos = _positions_without_junk(ranks[:, i], ok, junk)
        aps[i] = compute_ap(pos, len(ok))
        if pos.size == 0:
            prs[i, :] = 0.0  # positives exist but none was ranked (a truncated ranking)
            continue
        pos1 = pos + 1  # one-based positions
        for j, kappa in enumerate(kappas):
            k_q = min(int(pos1.max()), kappa)
            prs[i, j] = (pos1 <= k_q).sum() / k_q
    valid = ~np.isnan(aps)
    if not valid.any():
        raise ValueError("no query has a positive image; mAP is undefined")
    return float(aps[valid].mean()), aps, prs[valid].mean(axis=0), prs


def setting_gnd(
    gnd: Sequence[Mapping[str, Sequence[int]]], setting: str
) -> list[dict[str, np.ndarray]]:
    """``ok``/``junk`` lists of the Easy, Medium or Hard setting built from
    ``easy``/``hard``/``junk``."""
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; valid: {', '.join(SETTINGS)}")
    ok_lists, junk_lists = SETTINGS[setting]
    out = []
    for query in gnd:
        ok = np.concatenate([np.asarray(query[k], dtype=np.int64) for k in ok_lists])
        junk = np.concatenate([np.asarray(query[k], dtype=np.int64) for k in junk_lists])
        out.append({"ok": ok, "junk": junk})
    return out


def evaluate_revisited(
    ranks: np.ndarray, gnd: Sequence[Mapping[str, Sequence[int]]], kappas: Sequence[int] = KAPPAS
) -> dict[str, float]:
    """``{"mAP_easy", "mAP_medium", "mAP_hard", "mP@k_<setting>" ...}`` in percent, as papers report
    them."""
    results: dict[str, float] = {}
    for setting in SETTINGS:
        m, _, pr, _ = compute_map(ranks, setting_gnd(gnd, setting), kappas)
        results[f"mAP_{setting}"] = 100.0 * m
        for kappa, p in zip(kappas, pr):
            results[f"mP@{kappa}_{setting}"] = 100.0 * float(p)
    return results


def rank_by_similarity(db_features: np.ndarray, query_features: np.ndarray) -> np.ndarray:
    """Ranks ``[n_db, n_queries]`` by decreasing dot product of ``[n_db, D]`` and ``[n_queries, D]``
    features.

    Ties are broken by database index (stable sort), so the ranking is deterministic.
    """
    scores = np.asarray(db_features) @ np.asarray(query_features).T  # [n_db, n_queries]
    return np.argsort(-scores, axis=0, kind="stable")
