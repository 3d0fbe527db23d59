"""The numpy-written GetInNetworkPostsResponse against building the LightPosts one by one: same
message and the same bytes protobuf would serialize, for every field value class (zero = absent,
small, multi-byte, 64-bit, negative) and every flag combination."""

from __future__ import annotations

import numpy as np

from protos import thunder_pb2 as pb
from thunder.handler import to_light_posts
from thunder.response_encoder import encode_response
from thunder.store import QueryResult
from thunder.store.records import INT_FIELDS


def _result(n: int, rng: np.random.Generator) -> QueryResult:
    choices = np.array([0, 1, 127, 128, 16_383, 16_384, 2**35, 2**62 + 7, 2**63 - 1, -1, -(2**63)], np.int64)
    cols = {name: choices[rng.integers(0, len(choices), n)] for name in INT_FIELDS}
    cols["post_id"] = np.where(cols["post_id"] == 0, 5, cols["post_id"])
    cols["flags"] = rng.integers(0, 16, n).astype(np.uint8)
    return QueryResult(np.arange(n), cols)


def test_encoded_response_equals_the_message_built_field_by_field() -> None:
    rng = np.random.default_rng(1)
    for n in (0, 1, 2, 37, 1200):
        res = _result(n, rng)
        want = pb.GetInNetworkPostsResponse(posts=to_light_posts(res))
        raw = encode_response(res.columns)
        assert raw == want.SerializeToString()
        assert pb.GetInNetworkPostsResponse.FromString(raw) == want
