"""Phoenix ranking model: hashed-id embeddings, candidate-isolated transformer, multi-action heads."""

from phoenix.ranker.config import RankerConfig, TrainConfig

__all__ = ["RankerConfig", "TrainConfig"]
