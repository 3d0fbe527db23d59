"""Phoenix ranker: hashed-id token builders, a pre-norm GQA transformer trunk with RoPE, and
multi-action heads, with candidate isolation (a candidate never attends to another candidate).

Sequence = [user token][history S slots, valid items left-aligned, chronological][candidates C].
Attention: a query may attend key k iff k is a valid user/history token or k is the query itself,
so each candidate's output depends only on the user/history and itself ("batch invariant").
Positions are right-anchored: the most recent history item sits at 1+S-1, every candidate at 1+S.

The trunk (`Transformer`) and the user/history token builder (`ContextTokenBuilder`) are separate
modules so the retrieval two-tower can reuse them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from phoenix.ranker.config import (
    DWELL_CAP_S,
    EXPOSURE_SLOT,
    NUM_ACTIONS,
    NUM_CONTINUOUS,
    PRODUCT_SURFACE_VOCAB,
    RankerConfig,
)

NEG_INF = float("-inf")


@dataclass
class RankerBatch:
    """Model inputs with ids already hashed to shared-table rows (0 = padding).

    History items are left-aligned (valid first, chronological); a slot is valid iff its first
    post row is non-zero; the same for candidates. The user token is valid iff user_rows[:, 0] != 0."""

    user_rows: torch.Tensor  # [B, 2] int64
    hist_post_rows: torch.Tensor  # [B, S, 2] int64
    hist_author_rows: torch.Tensor  # [B, S, 2] int64
    hist_actions: torch.Tensor  # [B, S, 64] float multi-hot (index = ActionName)
    hist_surface: torch.Tensor  # [B, S] int64 in [0, 16)
    hist_dwell_s: torch.Tensor  # [B, S] float seconds
    cand_post_rows: torch.Tensor  # [B, C, 2] int64
    cand_author_rows: torch.Tensor  # [B, C, 2] int64
    cand_surface: torch.Tensor  # [B, C] int64
    # [B, C] int64 age bucket at request time (RankerConfig.age_bucket); None = unknown (bucket 0)
    cand_age: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> RankerBatch:
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        return RankerBatch(**{k: v.to(device) if v is not None else None for k, v in kw.items()})

    def select_candidates(self, idx: torch.Tensor) -> RankerBatch:
        """The same users/histories with candidates `idx` ([C'] indices into the candidate axis)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("cand_post_rows", "cand_author_rows", "cand_surface", "cand_age"):
            if kw[name] is not None:
                kw[name] = kw[name][:, idx]
        return RankerBatch(**kw)

    @property
    def context_valid(self) -> torch.Tensor:
        return torch.cat([self.user_rows[:, :1] != 0, self.hist_post_rows[..., 0] != 0], dim=1)

    @property
    def candidate_valid(self) -> torch.Tensor:
        return self.cand_post_rows[..., 0] != 0


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        # RMSNorm statistics in fp32 even for bf16 activations: a low-precision mean square is too coarse
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).to(x.dtype)


def rope_tables(
    positions: torch.Tensor, dim: int, base: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape positions.shape + (dim,) for rotate-half RoPE."""
    inv_freq = base ** (-torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim)
    ang = positions.to(torch.float32)[..., None] * inv_freq
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().to(dtype), ang.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    """Grouped-query attention: merged QKV, optional qk-norm over all heads, RoPE, 1/sqrt(key) scale."""

    def __init__(self, cfg: RankerConfig) -> None:
        super().__init__()
        self.hq, self.hkv, self.dk = cfg.num_q_heads, cfg.num_kv_heads, cfg.key_size
        self.qkv = nn.Linear(cfg.emb_size, (self.hq + 2 * self.hkv) * self.dk, bias=False)
        self.out = nn.Linear(self.hq * self.dk, cfg.emb_size, bias=False)
        self.q_norm = RMSNorm(self.hq * self.dk) if cfg.qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.hkv * self.dk) if cfg.qk_norm else nn.Identity()
        self.scale = 1.0 / math.sqrt(self.dk)
        if cfg.tied_qk_init:
            with torch.no_grad():
                w = self.qkv.weight  # rows: [q heads | k heads | v heads] x dk
                g = self.hq // self.hkv
                for j in range(self.hkv):
                    src = w[j * g * self.dk : (j * g + 1) * self.dk]
                    w[(self.hq + j) * self.dk : (self.hq + j + 1) * self.dk] = src

    def project(
        self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q [B,Hq,T,dk], k [B,Hkv,T,dk], v [B,Hkv,T,dk]; cos/sin [B,1,T,dk] (or broadcastable);
        cos/sin None = no RoPE (the caller folded it into the keys it attends to)."""
        b, t, _ = x.shape
        q, k, v = self.qkv(x).split([self.hq * self.dk, self.hkv * self.dk, self.hkv * self.dk], dim=-1)
        q = self.q_norm(q).view(b, t, self.hq, self.dk).transpose(1, 2)
        k = self.k_norm(k).view(b, t, self.hkv, self.dk).transpose(1, 2)
        v = v.view(b, t, self.hkv, self.dk).transpose(1, 2)
        if cos is None or sin is None:
            return q, k, v
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def merge(self, o: torch.Tensor) -> torch.Tensor:
        """[B,Hq,T,dk] -> [B,T,D]."""
        b, _, t, _ = o.shape
        return self.out(o.transpose(1, 2).reshape(b, t, self.hq * self.dk))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        q, k, v = self.project(x, cos, sin)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale, enable_gqa=True)
        return self.merge(o)


class FeedForward(nn.Module):
    """Non-gated GELU(tanh) FFN, D -> ffn_size -> D, no biases."""

    def __init__(self, cfg: RankerConfig) -> None:
        super().__init__()
        self.up = nn.Linear(cfg.emb_size, cfg.ffn_size, bias=False)
        self.down = nn.Linear(cfg.ffn_size, cfg.emb_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg: RankerConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.emb_size)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.emb_size)
        self.ffn = FeedForward(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self, h: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        h = h + self.dropout(self.attn(self.attn_norm(h), mask, cos, sin))
        return h + self.dropout(self.ffn(self.ffn_norm(h)))


class Transformer(nn.Module):
    """Pre-norm trunk. forward(x [B,T,D], mask [B,T,T] bool (True = may attend), positions [B,T])
    returns the final-RMSNormed hidden states [B,T,D]. Every query row must allow at least one key."""

    def __init__(self, cfg: RankerConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.final_norm = RMSNorm(cfg.emb_size)

    def rope(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = rope_tables(positions, self.cfg.key_size, self.cfg.rope_base, dtype)
        return cos.unsqueeze(1), sin.unsqueeze(1)  # broadcast over heads

    def forward(self, x: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        cos, sin = self.rope(positions, x.dtype)
        m = mask.unsqueeze(1)
        for block in self.blocks:
            x = block(x, m, cos, sin)
        return self.final_norm(x)


class HashEmbeddingTable(nn.Module):
    """The shared hash table (rows from `HashConfig.rows`); row 0 = padding, kept at zero."""

    def __init__(self, cfg: RankerConfig) -> None:
        super().__init__()
        # hashed user/post/author rows, then the semantic-id rows (RankerConfig.sid_row)
        self.table = nn.Embedding(cfg.table_rows, cfg.emb_table_width, padding_idx=0, sparse=True)
        nn.init.normal_(self.table.weight, std=1.0 / math.sqrt(cfg.emb_table_width))
        with torch.no_grad():
            self.table.weight[0].zero_()

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """rows [..., n] -> concatenated embeddings [..., n * width]."""
        e = self.table(rows)
        return e.reshape(*rows.shape[:-1], rows.shape[-1] * e.shape[-1])


def without_post_ids(e: torch.Tensor, rows: torch.Tensor, first_sid_row: int) -> torch.Tensor:
    """Concatenated [post slot 0, post slot 1, author h0, author h1] embeddings of `rows` [..., 4]
    with the post-id hash rows zeroed; semantic-id rows (>= first_sid_row) are kept."""
    keep = torch.ones(rows.shape, dtype=e.dtype, device=e.device)
    keep[..., :2] = (rows[..., :2] >= first_sid_row).to(e.dtype)
    return (e.view(*rows.shape, -1) * keep.unsqueeze(-1)).reshape(e.shape)


class ContextTokenBuilder(nn.Module):
    """User token + history tokens (width emb_size), scaled by sqrt(emb_size).

    Per-hash embeddings are combined project-then-sum (a separate linear map per hash, summed),
    computed as one matmul over the concatenated hash embeddings (identical maths, one GEMM)."""

    def __init__(self, cfg: RankerConfig) -> None:
        super().__init__()
        d, w = cfg.emb_size, cfg.emb_table_width
        self.user_proj = nn.Linear(2 * w, d, bias=False)
        self.hist_proj = nn.Linear(4 * w, d, bias=False)  # post h0,h1 + author h0,h1
        self.action_emb = nn.Parameter(torch.randn(NUM_ACTIONS, d) / math.sqrt(d))
        self.surface_emb = nn.Embedding(PRODUCT_SURFACE_VOCAB, d)
        nn.init.normal_(self.surface_emb.weight, std=1.0 / math.sqrt(d))
        self.dwell_vec = nn.Parameter(torch.randn(d) / math.sqrt(d))
        self.first_sid_row = cfg.hash_config.num_rows
        self.input_scale = math.sqrt(d)

    def forward(self, table: HashEmbeddingTable, b: RankerBatch, authors_only: bool = False) -> torch.Tensor:
        """`authors_only` zeroes the user and post-id embeddings, keeping authors and semantic ids
        (training curriculum, see RankerModel.forward)."""
        user = self.user_proj(table(b.user_rows)).unsqueeze(1)
        ids = torch.cat([b.hist_post_rows, b.hist_author_rows], dim=-1)
        e = table(ids)
        if authors_only:
            user = torch.zeros_like(user)
            e = without_post_ids(e, ids, self.first_sid_row)
        hist = self.hist_proj(e)
        hist = hist + b.hist_actions.to(hist.dtype) @ self.action_emb.to(hist.dtype)
        hist = hist + self.surface_emb(b.hist_surface.clamp(0, PRODUCT_SURFACE_VOCAB - 1)).to(hist.dtype)
        dwell = (b.hist_dwell_s.clamp(0.0, DWELL_CAP_S) / DWELL_CAP_S).to(hist.dtype)
        hist = hist + dwell.unsqueeze(-1) * self.dwell_vec.to(hist.dtype)
        return torch.cat([user, hist], dim=1) * self.input_scale


class CandidateTokenBuilder(nn.Module):
    """Candidate tokens: project-then-sum of post and author hash embeddings + product surface."""

    def __init__(self, cfg: RankerConfig) -> None:
        super().__init__()
        d, w = cfg.emb_size, cfg.emb_table_width
        # None: use the history builder's projection (passed to forward), see shared_entity_proj
        self.proj = None if cfg.shared_entity_proj else nn.Linear(4 * w, d, bias=False)
        self.surface_emb = nn.Embedding(PRODUCT_SURFACE_VOCAB, d)
        nn.init.normal_(self.surface_emb.weight, std=1.0 / math.sqrt(d))
        # candidate age buckets (row 0 = unknown, kept at zero); None without the age feature
        self.age_emb = nn.Embedding(cfg.age_buckets, d, padding_idx=0) if cfg.age_buckets > 0 else None
        if self.age_emb is not None:
            nn.init.zeros_(self.age_emb.weight)  # like the surface: tokens start as pure id embeddings
        self.first_sid_row = cfg.hash_config.num_rows
        self.input_scale = math.sqrt(d)

    def forward(
        self,
        table: HashEmbeddingTable,
        b: RankerBatch,
        shared_proj: nn.Linear | None = None,
        authors_only: bool = False,
    ) -> torch.Tensor:
        ids = torch.cat([b.cand_post_rows, b.cand_author_rows], dim=-1)
        proj = self.proj if self.proj is not None else shared_proj
        assert proj is not None, "shared_entity_proj needs the history projection"
        e = table(ids)
        x = proj(without_post_ids(e, ids, self.first_sid_row) if authors_only else e)
        x = x + self.surface_emb(b.cand_surface.clamp(0, PRODUCT_SURFACE_VOCAB - 1)).to(x.dtype)
        if self.age_emb is not None and b.cand_age is not None:
            x = x + self.age_emb(b.cand_age.clamp(0, self.age_emb.num_embeddings - 1)).to(x.dtype)
        return x * self.input_scale


def context_positions(context_valid: torch.Tensor, history_len: int) -> torch.Tensor:
    """Right-anchored positions of [user, history]: user 0; the k valid history items at
    1+S-k .. 1+S-1 (S = configured history length); padding 0."""
    hist_valid = context_valid[:, 1:]
    k = hist_valid.sum(dim=1, keepdim=True)
    idx = torch.arange(hist_valid.shape[1], device=hist_valid.device).unsqueeze(0)
    pos = torch.where(hist_valid, 1 + history_len - k + idx, torch.zeros_like(idx))
    return torch.cat([torch.zeros_like(k), pos], dim=1)


def candidate_isolation_mask(context_valid: torch.Tensor, num_candidates: int) -> torch.Tensor:
    """[B, T, T] bool, T = context + candidates: key k allowed iff k is a valid context token or k == q."""
    b, tc = context_valid.shape
    t = tc + num_candidates
    key_ok = torch.cat([context_valid, context_valid.new_zeros(b, num_candidates)], dim=1)
    eye = torch.eye(t, dtype=torch.bool, device=context_valid.device)
    return key_ok.unsqueeze(1) | eye.unsqueeze(0)


@dataclass
class ContextCache:
    """Per-layer K/V of the user/history tokens of each request, computed once and reused for every
    candidate batch."""

    # per layer [B, Hkv, dk, Tc + 1]: RoPE relative to the candidate position and the 1/sqrt(dk)
    # scale applied; the last slot is filled with each candidate's own-key logit
    keys_t: list[torch.Tensor]
    values: list[torch.Tensor]  # per layer [B, Hkv, Tc + 1, dk] (last slot zero)
    key_bias: torch.Tensor | None  # [B, 1, 1, Tc + 1]: 0 valid / -inf padding; None = no padding
    candidate_position: torch.Tensor  # [B] the shared right-anchored candidate position


class RankerModel(nn.Module):
    def __init__(self, cfg: RankerConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.table = HashEmbeddingTable(cfg)
        self.context_tokens = ContextTokenBuilder(cfg)
        self.candidate_tokens = CandidateTokenBuilder(cfg)
        self.trunk = Transformer(cfg)
        self.token_dropout = nn.Dropout(cfg.dropout)
        self.action_head = nn.Linear(cfg.emb_size, NUM_ACTIONS)
        self.continuous_head = nn.Linear(cfg.emb_size, NUM_CONTINUOUS)
        nn.init.constant_(self.action_head.bias, -4.0)  # engagement is rare: start near p = 0.02
        nn.init.zeros_(self.continuous_head.weight)
        nn.init.zeros_(self.continuous_head.bias)
        with torch.no_grad():
            # history/candidate tokens start as pure id embeddings: the shared action, surface and
            # dwell vectors would otherwise add one common direction that hides the ids from QK
            self.context_tokens.action_emb.zero_()
            self.context_tokens.dwell_vec.zero_()
            self.context_tokens.surface_emb.weight.zero_()
            self.candidate_tokens.surface_emb.weight.zero_()
            # a random (not zero) head: with zero weights no gradient reaches the trunk until the
            # head has grown, and it then follows candidate-only features (docs/ranker.md)
            self.action_head.weight.normal_(std=cfg.emb_size**-0.5)
            self.action_head.bias[EXPOSURE_SLOT] = 0.0  # half of its examples are positives

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.action_head(h).float(), self.continuous_head(h).float()

    @staticmethod
    def continuous_values(raw: torch.Tensor) -> torch.Tensor:
        """Raw continuous outputs -> values; dwell seconds = 30 * sigmoid (capped at 30 s)."""
        return DWELL_CAP_S * torch.sigmoid(raw)

    def forward(self, b: RankerBatch, authors_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Plain masked forward over [user, history, candidates]: (logits [B,C,64], raw [B,C,8]).

        `authors_only` (the exposure stage of training) hides the user and post ids, leaving the
        authors and semantic ids: the exposure task can then only be solved by matching candidates
        against the history, not by memorising which user saw which post."""
        ctx = self.context_tokens(self.table, b, authors_only)
        cand = self.candidate_tokens(self.table, b, self.context_tokens.hist_proj, authors_only)
        valid = b.context_valid
        c = cand.shape[1]
        pos_ctx = context_positions(valid, self.cfg.history_len)
        pos_cand = torch.full((ctx.shape[0], c), 1 + self.cfg.history_len, device=ctx.device)
        h = self.trunk(
            self.token_dropout(torch.cat([ctx, cand], dim=1)),
            candidate_isolation_mask(valid, c),
            torch.cat([pos_ctx, pos_cand], dim=1),
        )
        return self.heads(h[:, ctx.shape[1] :])

    # --- fast inference: user/history once, then candidates in batches against the cached K/V ---

    def encode_context(self, b: RankerBatch) -> ContextCache:
        x = self.context_tokens(self.table, b)
        valid = b.context_valid
        pos = context_positions(valid, self.cfg.history_len)
        mask: torch.Tensor | None
        if x.shape[0] == 1:
            # one request: padding tokens never influence valid ones, so drop them; no mask needed
            keep = valid[0].nonzero().squeeze(1)
            x, pos, valid, mask = x[:, keep], pos[:, keep], valid[:, keep], None
        else:
            eye = torch.eye(x.shape[1], dtype=torch.bool, device=x.device)
            mask = (valid.unsqueeze(1) | eye).unsqueeze(1)
        cos, sin = self.trunk.rope(pos, x.dtype)
        keys, values = [], []
        for i, block in enumerate(self.trunk.blocks):
            q, k, v = block.attn.project(block.attn_norm(x), cos, sin)
            keys.append(k)
            values.append(v)
            if i == len(self.trunk.blocks) - 1:
                break  # the last layer's context outputs are never read by candidates
            if q.shape[2] > 0:
                o = F.scaled_dot_product_attention(
                    q, k, v, attn_mask=mask, scale=block.attn.scale, enable_gqa=True
                )
                x = x + block.attn.merge(o)
                x = x + block.ffn(block.ffn_norm(x))
        # Every candidate sits at the same position p, and RoPE is a rotation: R(p)q . R(j)k =
        # q . R(-p)R(j)k, and R(p)q . R(p)k = q . k. So the cached keys are rotated by -p once here and
        # candidates skip RoPE entirely (score_candidates).
        cand_pos = torch.full((x.shape[0],), 1 + self.cfg.history_len, device=x.device)
        cos_c, sin_c = self.trunk.rope(cand_pos[:, None], x.dtype)
        # the 1/sqrt(dk) logit scale is folded into the cached keys (and the own-key logit below)
        keys = [
            apply_rope(k, cos_c, -sin_c) * blk.attn.scale
            for k, blk in zip(keys, self.trunk.blocks, strict=True)
        ]
        # append a zero key/value slot that each candidate's own key/value fills in score_candidates
        keys_t = [F.pad(k, (0, 0, 0, 1)).transpose(-1, -2).contiguous() for k in keys]
        values = [F.pad(v, (0, 0, 0, 1)) for v in values]
        bias = None
        if mask is not None:
            bias = torch.zeros(valid.shape, dtype=x.dtype, device=x.device).masked_fill(~valid, NEG_INF)
            bias = F.pad(bias, (0, 1))[:, None, None, :]
        return ContextCache(keys_t, values, bias, cand_pos)

    def score_candidates(self, cache: ContextCache, b: RankerBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidates of `b` against a cached context: each candidate query attends to the context
        K/V plus its own key, via a joint softmax (own-key logit computed separately)."""
        x = self.candidate_tokens(self.table, b, self.context_tokens.hist_proj)
        bsz, c, _ = x.shape
        for i, block in enumerate(self.trunk.blocks):
            attn = block.attn
            g = attn.hq // attn.hkv
            # no RoPE: the cached context keys are pre-rotated to the candidates' shared position
            q, k, v = attn.project(block.attn_norm(x), None, None)
            # group query heads onto their kv head: [B, Hkv, G*C, dk]
            qg = q.reshape(bsz, attn.hkv, g * c, attn.dk)
            # logits against [context keys ; a zero slot], then the own-key logit goes into that slot:
            # one joint softmax without materialising per-candidate K/V copies
            logits = qg @ cache.keys_t[i]
            if cache.key_bias is not None:
                logits = logits + cache.key_bias
            self_logit = (qg.view(bsz, attn.hkv, g, c, attn.dk) * k.unsqueeze(2)).sum(-1)
            logits[..., -1] = self_logit.reshape(bsz, attn.hkv, g * c) * attn.scale
            p = torch.softmax(logits, dim=-1)
            o = (p @ cache.values[i]).view(bsz, attn.hkv, g, c, attn.dk)
            o = o + p[..., -1:].view(bsz, attn.hkv, g, c, 1) * v.unsqueeze(2)
            x = x + attn.merge(o.reshape(bsz, attn.hq, c, attn.dk))
            x = x + block.ffn(block.ffn_norm(x))
        return self.heads(self.trunk.final_norm(x))

    def forward_fast(self, b: RankerBatch, chunk_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """Same outputs as `forward` (up to float rounding), O(C * history) instead of O((C + S)^2)."""
        cache = self.encode_context(b)
        c, dev = b.cand_post_rows.shape[1], b.cand_post_rows.device
        if c <= chunk_size:
            return self.score_candidates(cache, b)
        outs = [
            self.score_candidates(
                cache, b.select_candidates(torch.arange(s, min(s + chunk_size, c), device=dev))
            )
            for s in range(0, c, chunk_size)
        ]
        return torch.cat([o[0] for o in outs], dim=1), torch.cat([o[1] for o in outs], dim=1)
