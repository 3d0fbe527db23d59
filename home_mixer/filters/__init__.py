"""home_mixer filters."""
