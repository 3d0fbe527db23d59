"""The ranker-response wire decoder gives exactly what the protobuf parser + as_predictions give:
on the canonical layout (fast path) and on every other shape (fallback)."""

from __future__ import annotations

import numpy as np
import pytest

from home_mixer.clients import as_predictions
from home_mixer.predict_decoder import decode_predict_response
from protos import phoenix_pb2


def response(n: int, seed: int = 0, **kw: object) -> phoenix_pb2.PredictResponse:
    rng = np.random.default_rng(seed)
    resp = phoenix_pb2.PredictResponse(model_version=str(kw.get("version", "v1")))
    for _ in range(n):
        post_id = int(kw.get("post_id", rng.integers(1, 1 << 62)))  # type: ignore[call-overload]
        resp.predictions.add(
            post_id=post_id,
            action_probs=rng.random(int(kw.get("heads", 64))).astype(np.float32).tolist(),  # type: ignore[call-overload]
            continuous=rng.random(int(kw.get("cont", 8))).astype(np.float32).tolist(),  # type: ignore[call-overload]
        )
    return resp


def check(raw: bytes) -> None:
    want = as_predictions(phoenix_pb2.PredictResponse.FromString(raw))
    got = decode_predict_response(raw)
    assert got.probs.dtype == np.float64 and got.probs.shape == want.probs.shape
    assert np.array_equal(got.probs, want.probs) and np.array_equal(got.continuous, want.continuous)
    assert got.model_version == want.model_version


@pytest.mark.parametrize(
    "resp",
    [
        response(300),  # canonical: fast path
        response(50, post_id=1),  # 1-byte post ids
        response(1, version="x" * 300),  # long model version
        response(0),  # no predictions
        response(20, heads=10),  # ragged rows: padded with 0
        response(20, heads=80, cont=2),  # too wide / too narrow
        response(20, post_id=0),  # post_id omitted on the wire
        response(5, cont=0),  # no continuous field
    ],
)
def test_decoder_matches_protobuf(resp: phoenix_pb2.PredictResponse) -> None:
    check(resp.SerializeToString())


def test_decoder_handles_concatenated_and_unknown_fields() -> None:
    a, b = response(10, seed=1), response(10, seed=2, version="v2")
    check(a.SerializeToString() + b.SerializeToString())  # messages concatenate: last version wins
    unknown = a.SerializeToString() + bytes([0x18, 0x05])  # field 3 varint: unknown, skipped
    check(unknown)
    one = response(1).predictions[0]
    # a prediction whose packed probs are split into two chunks (the parser concatenates them)
    probs = np.asarray(one.action_probs, dtype="<f4").tobytes()
    inner = b"\x08\x07" + b"\x12\x80\x01" + probs[:128] + b"\x12\x80\x01" + probs[128:]
    check(b"\x0a" + bytes([len(inner) & 0x7F | 0x80, len(inner) >> 7]) + inner)


def test_fast_path_is_taken_for_canonical_responses(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = response(100).SerializeToString()

    def no_fallback(raw: bytes) -> None:
        raise AssertionError("fell back to the protobuf parser")

    monkeypatch.setattr(phoenix_pb2.PredictResponse, "FromString", no_fallback)
    got = decode_predict_response(raw)
    assert got.probs.shape == (100, 64) and got.model_version == "v1"
