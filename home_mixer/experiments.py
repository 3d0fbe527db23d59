"""The serving config of a params file (TOML, docs/home_mixer.md "Params file and experiments"):
base params, experiments and shadow scoring, validated as a whole, and each viewer's assignment.

    version = "2026-12-07a"        # optional label (default: the file's sha256, 12 hex digits)
    [params]                       # any field of home_mixer.params.Params
    oon_weight_factor = 0.75
    [[experiment]]
    name = "oon"                   # unique; recorded as "<name>:<bucket>" in `served`
    salt = "oon-2026-12"           # default: the name
    control = "control"            # default: the first bucket
    [[experiment.bucket]]
    name = "control"
    share = 0.5                    # shares of one experiment sum to at most 1 (the rest: not in it)
    [[experiment.bucket]]
    name = "no_oon"
    share = 0.5
    ranker_version = "ranker-0002" # optional: the registry version the ranker serves this bucket
    params = { oon_weight_factor = 0.0 }
    [shadow]
    ranker_version = "ranker-0003" # also score a share of requests with this version; log, not serve
    share = 0.1

A viewer's bucket of an experiment: u = blake2b("<salt>:<user id>") as a fraction of 2^64, the
first bucket whose cumulative share exceeds u (deterministic; independent across salts). Several
experiments may run at once (orthogonal layers) as long as no two override the same param or both
pin a ranker version: a file where they would is refused."""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from home_mixer.params import DEFAULT_PARAMS, Params

_TOP_KEYS = {"version", "params", "experiment", "shadow"}
_EXPERIMENT_KEYS = {"name", "salt", "control", "bucket"}
_BUCKET_KEYS = {"name", "share", "params", "ranker_version"}
_SHADOW_KEYS = {"ranker_version", "share"}


def unit_hash(key: str, salt: str) -> float:
    """A uniform fraction in [0, 1) from (salt, key): the same inputs, the same fraction."""
    digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def bucket_index(user_id: int, salt: str, shares: list[float]) -> int | None:
    """Index of the bucket of `user_id` (by hash(user id, salt) against the cumulative `shares`);
    None when it falls in the rest (the shares sum to less than 1)."""
    u, acc = unit_hash(str(user_id), salt), 0.0
    for i, s in enumerate(shares):
        acc += s
        if u < acc:
            return i
    return None


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    share: float
    overrides: dict[str, str] = field(default_factory=dict)  # param name -> value (as a string)
    ranker_version: str = ""  # "" = the ranker's served (promoted) version


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    salt: str
    buckets: tuple[Bucket, ...]
    control: str

    def bucket_of(self, user_id: int) -> Bucket | None:
        i = bucket_index(user_id, self.salt, [b.share for b in self.buckets])
        return None if i is None else self.buckets[i]


@dataclass(frozen=True, slots=True)
class Shadow:
    ranker_version: str
    share: float

    def wants(self, request_id: str) -> bool:
        """Is this request also scored by the shadow model? (by hash of the request id)"""
        return self.share > 0 and unit_hash(request_id, "shadow") < self.share


@dataclass(frozen=True, slots=True)
class Assignment:
    """What a viewer's requests are served with: params (base + bucket overrides), the bucket label
    recorded in `served` and the debug response, and the ranker version ("" = the promoted one)."""

    params: Params
    bucket: str = ""
    ranker_version: str = ""


@dataclass(slots=True)
class ServingConfig:
    params: Params = DEFAULT_PARAMS
    experiments: tuple[Experiment, ...] = ()
    shadow: Shadow | None = None
    version: str = "default"
    _cache: dict[tuple[str, ...], Assignment] = field(default_factory=dict, repr=False)

    def assign(self, user_id: int) -> Assignment:
        """The viewer's buckets (one per experiment it falls in) and what they set."""
        if not self.experiments:
            return Assignment(self.params)
        chosen = [(e, e.bucket_of(user_id)) for e in self.experiments]
        labels = tuple(f"{e.name}:{b.name}" for e, b in chosen if b is not None)
        hit = self._cache.get(labels)
        if hit is not None:
            return hit
        overrides: dict[str, str] = {}
        version = ""
        for _, b in chosen:
            if b is not None:
                overrides |= b.overrides
                version = b.ranker_version or version
        out = Assignment(self.params.with_overrides(overrides), ",".join(labels), version)
        self._cache[labels] = out  # at most the product of the bucket counts
        return out


class ParamsFileError(ValueError):
    """A params file that cannot be served (names the file and the first problem)."""


def load_params_file(path: str | Path) -> ServingConfig:
    """Read and validate a params file; ParamsFileError when it is not servable."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        doc = tomllib.loads(raw.decode())
        cfg = parse_serving_config(doc)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as e:
        raise ParamsFileError(f"{p}: {e}") from None
    if "version" not in doc:
        cfg.version = hashlib.sha256(raw).hexdigest()[:12]
    return cfg


def _keys(d: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a table")
    extra = set(d) - allowed
    if extra:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(sorted(extra))} (allowed: {', '.join(sorted(allowed))})"
        )
    return d


def _overrides(d: Any, where: str) -> dict[str, str]:
    if not isinstance(d, dict):
        raise ValueError(f"{where}.params must be a table")
    out = {}
    for k, v in d.items():
        if isinstance(v, bool | int | float | str) and not (isinstance(v, float) and not math.isfinite(v)):
            out[k] = str(v)
        else:
            raise ValueError(f"{where}.params.{k}: a number, bool or string, got {v!r}")
    return out


def _share(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1:
        raise ValueError(f"{where}.share must be a number in (0, 1], got {v!r}")
    return float(v)


def _name(v: Any, where: str) -> str:
    if not isinstance(v, str) or not v or any(c in v for c in ",:") or v != v.strip():
        raise ValueError(f"{where}.name must be a non-empty string without ',' or ':', got {v!r}")
    return v


def _version(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise ValueError(f"{where}.ranker_version must be a string, got {v!r}")
    return v


def parse_serving_config(doc: dict[str, Any]) -> ServingConfig:
    """A ServingConfig from a parsed params file; ValueError naming the first problem."""
    _keys(doc, _TOP_KEYS, "params file")
    base = DEFAULT_PARAMS.with_overrides(_overrides(doc.get("params", {}), "params file"))
    experiments: list[Experiment] = []
    owner: dict[str, str] = {}  # param (or "ranker_version") -> the experiment overriding it
    raw_exps = doc.get("experiment", [])
    if not isinstance(raw_exps, list):
        raise ValueError("experiment must be an array of tables ([[experiment]])")
    for i, e in enumerate(raw_exps):
        where = f"experiment[{i}]"
        _keys(e, _EXPERIMENT_KEYS, where)
        name = _name(e.get("name"), where)
        where = f"experiment {name!r}"
        if any(x.name == name for x in experiments):
            raise ValueError(f"{where}: duplicate experiment name")
        raw_buckets = e.get("bucket", [])
        if not isinstance(raw_buckets, list) or not raw_buckets:
            raise ValueError(f"{where}: needs at least one [[experiment.bucket]]")
        buckets: list[Bucket] = []
        for j, b in enumerate(raw_buckets):
            bw = f"{where} bucket[{j}]"
            _keys(b, _BUCKET_KEYS, bw)
            bname = _name(b.get("name"), bw)
            if any(x.name == bname for x in buckets):
                raise ValueError(f"{where}: duplicate bucket name {bname!r}")
            bucket = Bucket(
                bname,
                _share(b.get("share"), bw),
                _overrides(b.get("params", {}), bw),
                _version(b.get("ranker_version", ""), bw),
            )
            try:
                base.with_overrides(bucket.overrides)
            except ValueError as err:
                raise ValueError(f"{where} bucket {bname!r}: {err}") from None
            for key in [*bucket.overrides, *(["ranker_version"] if bucket.ranker_version else [])]:
                if owner.setdefault(key, name) != name:
                    raise ValueError(
                        f"{where} and experiment {owner[key]!r} both set {key}: experiments running "
                        "at once must not override the same thing"
                    )
            buckets.append(bucket)
        total = sum(b.share for b in buckets)
        if total > 1 + 1e-9:
            raise ValueError(f"{where}: bucket shares sum to {total:g} > 1")
        control = e.get("control", buckets[0].name)
        if control not in {b.name for b in buckets}:
            raise ValueError(f"{where}: control {control!r} is not one of its buckets")
        salt = e.get("salt", name)
        if not isinstance(salt, str) or not salt:
            raise ValueError(f"{where}: salt must be a non-empty string")
        experiments.append(Experiment(name, salt, tuple(buckets), control))
    shadow = None
    if "shadow" in doc:
        s = _keys(doc["shadow"], _SHADOW_KEYS, "shadow")
        version = _version(s.get("ranker_version", ""), "shadow")
        if not version:
            raise ValueError("shadow.ranker_version is required")
        shadow = Shadow(version, _share(s.get("share"), "shadow"))
    version = doc.get("version", "")
    if not isinstance(version, str | int):
        raise ValueError(f"version must be a string, got {version!r}")
    return ServingConfig(base, tuple(experiments), shadow, str(version))
