"""home_mixer sources."""
