"""`foryou index sids`: semantic ids from an item features table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from typer.testing import CliRunner

from foryou.app.cli import app
from phoenix.ranker.sid_builder import SidBuildConfig, build_sids, item_vectors
from phoenix.ranker.sids import resolve_sids

TOPICS = ["cats and kittens", "football match report", "stock market news"]


def _items(n: int = 120) -> pl.DataFrame:
    """Items 1..n in three content groups; item i + n/2 has exactly item i's features."""
    rng = np.random.default_rng(0)
    half = n // 2
    group = rng.integers(0, 3, half)
    emb = rng.normal(size=(half, 4)) + 5.0 * group[:, None]
    price = rng.normal(size=half) + 10.0 * group
    title = [TOPICS[g] for g in group]
    return pl.DataFrame(
        {
            "post_id": np.arange(1, n + 1) * 1_000,
            "author_id": np.arange(n),  # an id column: not a feature
            "price": np.r_[price, price],
            "emb": [list(x) for x in np.r_[emb, emb]],
            "title": title + title,
            "group_ms": np.r_[group, group],  # a *_ms column: not a feature (the test's answer key)
        }
    )


def test_equal_features_equal_sids_and_deterministic() -> None:
    items = _items()
    vec = item_vectors(items, SidBuildConfig())
    assert vec.shape == (120, 1 + 4 + 64)  # price, 4 embedding dims, hashed title
    out = build_sids(items, SidBuildConfig(levels=2, codebook=3, seed=1))
    codes = np.stack(out["sid"].to_list())
    assert codes.shape == (120, 2) and codes.min() >= 1 and codes.max() <= 3
    np.testing.assert_array_equal(codes[:60], codes[60:])  # equal features, equal SIDs
    again = np.stack(build_sids(items, SidBuildConfig(levels=2, codebook=3, seed=1))["sid"].to_list())
    np.testing.assert_array_equal(codes, again)
    # level 1 separates the three content groups
    group = items["group_ms"].to_numpy()
    assert len(np.unique(codes[:, 0])) == 3
    assert all(len(np.unique(codes[group == g, 0])) == 1 for g in range(3))


def test_cli_output_loads_through_the_trainers_reader(tmp_path: Path) -> None:
    items = _items()
    items.write_parquet(tmp_path / "items.parquet")
    out = tmp_path / "sids.parquet"
    args = ["index", "sids", "--items", str(tmp_path / "items.parquet"), "--out", str(out)]
    res = CliRunner().invoke(app, [*args, "--levels", "2", "--codebook", "4"])
    assert res.exit_code == 0, res.output
    lookup = resolve_sids(tmp_path / "no-log-dir.parquet", out)  # what `train … --sids FILE` reads
    assert lookup is not None and len(lookup) == 120 and lookup.levels == 2
    got = lookup.lookup(items["post_id"].to_numpy(), 2)
    np.testing.assert_array_equal(got, np.stack(pl.read_parquet(out)["sid"].to_list()))
    assert got.min() >= 1  # every item known
    bad = CliRunner().invoke(app, [*args, "--columns", "price,nope"])
    assert bad.exit_code == 2 and "lacks column(s) nope" in bad.output
