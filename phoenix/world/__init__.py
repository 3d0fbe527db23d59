"""Synthetic world: config, generator, ground-truth engagement model and the saved World."""

from phoenix.world.config import WorldConfig
from phoenix.world.generator import generate_world
from phoenix.world.world import World

__all__ = ["World", "WorldConfig", "generate_world"]
