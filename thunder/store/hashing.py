"""Constants of the store's two open-addressing tables (`IntHash`, `IdIndex`)."""

from __future__ import annotations

import numpy as np

EMPTY = np.iinfo(np.int64).min  # a never-used slot (no post or author id takes this value)
# Fibonacci hashing: key * 2^64/phi, top bits = slot; spreads sequential ids (snowflakes) evenly
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
