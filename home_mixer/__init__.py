"""home_mixer package."""
