"""Warm start of the hash table's author rows from exposure co-occurrence (training impressions).

Trained from a random init on the demo world, author embeddings never organise by topic (5-NN
same-topic rate = chance) and the ranker ignores the history. Which authors a user is *shown*
already reveals the user's topics, so author rows start from a truncated SVD of the user x author
PPMI matrix: authors shown to the same users start close (5-NN topic purity 0.99 on the demo
world). Measured in docs/ranker.md ("Exposure curriculum")."""

from __future__ import annotations

import numpy as np
import torch

from phoenix.hashing import HashConfig
from phoenix.ranker.model import HashEmbeddingTable


def ppmi_svd(
    user_ids: np.ndarray, author_ids: np.ndarray, dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(users, user vectors [U, k], authors, author vectors [A, k]), k = min(dim, U - 1, A - 1)."""
    users, ui = np.unique(user_ids, return_inverse=True)
    authors, ai = np.unique(author_ids, return_inverse=True)
    m = np.zeros((len(users), len(authors)), dtype=np.float64)
    np.add.at(m, (ui, ai), 1.0)
    total = m.sum()
    pu = m.sum(1, keepdims=True) / total
    pa = m.sum(0, keepdims=True) / total
    with np.errstate(divide="ignore"):
        pmi = np.log(np.where(m > 0, m / total, 1.0) / (pu * pa))
    ppmi = np.where(m > 0, np.maximum(pmi, 0.0), 0.0)
    k = max(1, min(dim, len(users) - 1, len(authors) - 1))
    u, s, vt = np.linalg.svd(ppmi, full_matrices=False)
    root = np.sqrt(s[:k])
    return users, u[:, :k] * root, authors, vt[:k].T * root


def set_rows(weight: torch.Tensor, rows: np.ndarray, vecs: np.ndarray) -> None:
    """Write unit-normalised vecs ([N, k]) into the first k columns of `rows` ([N, n_hashes]),
    zeroing the rest of those rows: each row keeps the table's init RMS (1/sqrt(width))."""
    k = vecs.shape[1]
    norm = np.linalg.norm(vecs, axis=1, keepdims=True)
    t = torch.from_numpy((vecs / np.where(norm > 0, norm, 1.0)).astype(np.float32)).to(weight.dtype)
    for j in range(rows.shape[1]):
        r = torch.from_numpy(rows[:, j])
        ok = r > 0  # never touch the padding row
        weight[r[ok]] = 0.0
        weight[r[ok], :k] = t[ok]


@torch.no_grad()
def author_cooccurrence_init(
    table: HashEmbeddingTable, hc: HashConfig, user_ids: np.ndarray, author_ids: np.ndarray, dim: int
) -> int:
    """Initialise the author rows of `table` from aligned (user, author) impression arrays; returns
    the number of authors set (0 when there is nothing to factorise)."""
    if dim <= 0 or len(np.unique(user_ids)) < 2 or len(np.unique(author_ids)) < 2:
        return 0
    w = table.table.weight
    _, _, authors, avec = ppmi_svd(user_ids, author_ids, min(dim, w.shape[1]))
    set_rows(w, hc.rows(authors, "author"), avec)
    return len(authors)


@torch.no_grad()
def sid_cooccurrence_init(
    table: HashEmbeddingTable, first_sid_row: int, user_ids: np.ndarray, post_rows: np.ndarray, dim: int
) -> int:
    """The same for semantic-id rows: `post_rows` [N, 2] are the impressions' post-slot rows; the
    slots holding SID rows (>= first_sid_row) start from the PPMI-SVD of user x SID exposure.
    Returns the number of distinct SIDs set."""
    known = post_rows[:, 0] >= first_sid_row
    if dim <= 0 or not known.any():
        return 0
    pairs, key = np.unique(post_rows[known], axis=0, return_inverse=True)
    if len(pairs) < 2 or len(np.unique(user_ids[known])) < 2:
        return 0
    w = table.table.weight
    _, _, keys, vec = ppmi_svd(user_ids[known], key.reshape(-1), min(dim, w.shape[1]))
    set_rows(w, pairs[keys], vec)
    return len(keys)
