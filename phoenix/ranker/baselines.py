"""Two reference baselines scored on the same train/eval split as the ranker:

* `AuthorPopularityBaseline`: P(action | author) from training impressions, smoothed towards the
  global rate (what "show popular authors" achieves).
* `FactorizationBaseline`: multi-task logistic matrix factorisation over dense id indices:
  logit_a = b_a + user_bias[u, a] + author_bias[au, a] + post_bias[p, a] + (U[u] * A[au]) . W[:, a].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from phoenix.ranker.config import NUM_ACTIONS
from phoenix.ranker.features import action_multi_hot


def _index(train_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Dense index (1-based) of ids seen in training; 0 = unseen."""
    uniq = np.unique(train_ids)
    pos = np.clip(np.searchsorted(uniq, ids), 0, max(len(uniq) - 1, 0))
    return np.where((len(uniq) > 0) & (uniq[pos] == ids), pos + 1, 0)


class AuthorPopularityBaseline:
    def __init__(self, prior_strength: float = 20.0) -> None:
        self.prior_strength = prior_strength

    def fit(self, author_ids: np.ndarray, action_masks: np.ndarray) -> AuthorPopularityBaseline:
        self.train_authors = author_ids
        y = action_multi_hot(action_masks)
        idx = _index(author_ids, author_ids)
        n = int(idx.max(initial=0)) + 1
        global_rate = y.mean(0) if len(y) else np.zeros(NUM_ACTIONS, dtype=np.float32)
        pos = np.zeros((n, NUM_ACTIONS))
        np.add.at(pos, idx, y)
        cnt = np.bincount(idx, minlength=n)[:, None].astype(np.float64)
        self.rates = (pos + self.prior_strength * global_rate) / (cnt + self.prior_strength)
        self.rates[0] = global_rate
        return self

    def predict(self, author_ids: np.ndarray) -> np.ndarray:
        return self.rates[_index(self.train_authors, author_ids)].astype(np.float32)


class _MF(nn.Module):
    def __init__(self, n_users: int, n_authors: int, n_posts: int, k: int) -> None:
        super().__init__()
        self.user_bias = nn.Embedding(n_users, NUM_ACTIONS)
        self.author_bias = nn.Embedding(n_authors, NUM_ACTIONS)
        self.post_bias = nn.Embedding(n_posts, NUM_ACTIONS)
        self.u = nn.Embedding(n_users, k)
        self.a = nn.Embedding(n_authors, k)
        self.w = nn.Linear(k, NUM_ACTIONS)
        for e in (self.user_bias, self.author_bias, self.post_bias):
            nn.init.zeros_(e.weight)
        nn.init.normal_(self.u.weight, std=0.1)
        nn.init.normal_(self.a.weight, std=0.1)

    def forward(self, u: torch.Tensor, a: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return self.w(self.u(u) * self.a(a)) + self.user_bias(u) + self.author_bias(a) + self.post_bias(p)


@dataclass
class FactorizationBaseline:
    k: int = 16
    epochs: int = 6
    batch_size: int = 2048
    lr: float = 0.02
    weight_decay: float = 1e-5
    seed: int = 0

    def fit(
        self, user_ids: np.ndarray, author_ids: np.ndarray, post_ids: np.ndarray, action_masks: np.ndarray
    ) -> FactorizationBaseline:
        self.train_ids = (user_ids, author_ids, post_ids)
        u, a, p = (_index(x, x) for x in self.train_ids)
        y = torch.from_numpy(action_multi_hot(action_masks))
        g = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        self.model = _MF(
            int(u.max(initial=0)) + 1, int(a.max(initial=0)) + 1, int(p.max(initial=0)) + 1, self.k
        )
        with torch.no_grad():
            rate = y.mean(0).clamp(1e-4, 1 - 1e-4)
            self.model.w.bias.copy_(torch.log(rate / (1 - rate)))
        opt = torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        ut, at, pt = (torch.from_numpy(x) for x in (u, a, p))
        n = len(y)
        for _ in range(self.epochs):
            perm = torch.randperm(n, generator=g)
            for s in range(0, n, self.batch_size):
                b = perm[s : s + self.batch_size]
                loss = F.binary_cross_entropy_with_logits(self.model(ut[b], at[b], pt[b]), y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.model.eval()
        return self

    @torch.inference_mode()
    def predict(self, user_ids: np.ndarray, author_ids: np.ndarray, post_ids: np.ndarray) -> np.ndarray:
        idx = [
            torch.from_numpy(_index(t, x))
            for t, x in zip(self.train_ids, (user_ids, author_ids, post_ids), strict=True)
        ]
        return torch.sigmoid(self.model(*idx)).numpy()
