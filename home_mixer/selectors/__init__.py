"""home_mixer selectors."""
