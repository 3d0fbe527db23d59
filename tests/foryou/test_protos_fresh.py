"""The committed generated stubs must equal what `make protos` produces from the .proto files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_protos_are_fresh(tmp_path: Path) -> None:
    (tmp_path / "protos").mkdir()
    protos = sorted((ROOT / "protos").glob("*.proto"))
    assert {p.stem for p in protos} == {"events", "thunder", "phoenix", "home_mixer"}
    for p in protos:
        shutil.copy(p, tmp_path / "protos" / p.name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            ".",
            "--python_out=.",
            "--pyi_out=.",
            "--grpc_python_out=.",
            *[f"protos/{p.name}" for p in protos],
        ],
        cwd=tmp_path,
        check=True,
    )
    generated = sorted(f.name for f in (tmp_path / "protos").iterdir() if f.suffix in {".py", ".pyi"})
    assert len(generated) == 3 * len(protos)
    stale = [
        n for n in generated if (tmp_path / "protos" / n).read_bytes() != (ROOT / "protos" / n).read_bytes()
    ]
    assert not stale, f"stale generated files (run `make protos`): {stale}"


def test_action_names_follow_the_reference_numbering() -> None:
    from protos import events_pb2 as ev

    expected = {
        "SERVER_TWEET_FAV": 1,
        "SERVER_TWEET_REPLY": 4,
        "SERVER_TWEET_QUOTE": 5,
        "SERVER_TWEET_RETWEET": 6,
        "CLIENT_TWEET_RECAP_DWELLED": 11,
        "CLIENT_TWEET_VIDEO_QUALITY_VIEW": 13,
        "CLIENT_TWEET_PHOTO_EXPAND": 14,
        "CLIENT_TWEET_REPORT": 16,
        "CLIENT_TWEET_NOT_INTERESTED_IN": 17,
        "CLIENT_TWEET_FOLLOW_AUTHOR": 21,
        "CLIENT_TWEET_BLOCK_AUTHOR": 23,
        "CLIENT_TWEET_MUTE_AUTHOR": 25,
        "CLIENT_TWEET_CLICK": 29,
        "CLIENT_TWEET_CLICK_PROFILE": 30,
        "CLIENT_TWEET_SHARE_VIA_COPY_LINK": 32,
        "CLIENT_TWEET_CLICK_SEND_VIA_DIRECT_MESSAGE": 33,
        "CLIENT_TWEET_SHARE": 37,
        "CLIENT_QUOTED_TWEET_CLICK": 38,
        "SERVER_PROFILE_BLOCK": 63,
    }
    for name, value in expected.items():
        assert ev.ActionName.Value(name) == value
    assert sorted(v for v in ev.ActionName.values() if v < 64) == list(range(64))
