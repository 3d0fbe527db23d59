"""home_mixer side_effects."""
