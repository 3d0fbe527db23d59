"""Model registry (docs/OPERATIONS.md, "Model registry, gate and rollback"): versioned checkpoints
per model kind, an atomically replaced promoted pointer with rollback, and a follower that keeps a
running service on the promoted version.

This package's top level imports only the standard library (listing and promoting need no torch);
the ranker-specific helpers of a retrain are in `ranker_window` (held-out window, compact metrics)
and `ranker_warm` (warm start)."""

from phoenix.registry.follower import RegistryFollower, Reloadable, follow_promoted
from phoenix.registry.store import KINDS, Registry, RegistryError, kind_of

__all__ = [
    "KINDS",
    "Registry",
    "RegistryError",
    "RegistryFollower",
    "Reloadable",
    "follow_promoted",
    "kind_of",
]
