"""home_mixer visibility."""
