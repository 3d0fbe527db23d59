"""Synthetic world: config, generator, ground-truth engagement model and the saved World."""

from world.config import WorldConfig
from world.generator import generate_world
from world.world import World

__all__ = ["World", "WorldConfig", "generate_world"]
