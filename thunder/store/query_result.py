"""What a query returns: the columns of the matching posts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thunder.store.records import HAS_VIDEO, IS_REPLY, IS_RETWEET, RECORD_FIELDS, PostRecord


@dataclass(slots=True)
class QueryResult:
    """Columns of the matching posts, newest first."""

    rows: np.ndarray
    columns: dict[str, np.ndarray]

    @classmethod
    def of(cls, rows: np.ndarray, rec: np.ndarray, flags: np.ndarray) -> QueryResult:
        """From the gathered records and flags of `rows`."""
        cols = {name: rec[name] for name in RECORD_FIELDS}
        cols["flags"] = flags
        return cls(rows, cols)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def post_ids(self) -> list[int]:
        return self.columns["post_id"].tolist()

    def records(self) -> list[PostRecord]:
        c = self.columns
        flags = c["flags"]
        return [
            PostRecord(
                int(c["post_id"][i]),
                int(c["author_id"][i]),
                int(c["created_at"][i]),
                int(c["in_reply_to_post_id"][i]),
                int(c["in_reply_to_user_id"][i]),
                bool(flags[i] & IS_RETWEET),
                bool(flags[i] & IS_REPLY),
                int(c["source_post_id"][i]),
                int(c["source_user_id"][i]),
                bool(flags[i] & HAS_VIDEO),
                int(c["conversation_id"][i]),
            )
            for i in range(len(self.rows))
        ]
