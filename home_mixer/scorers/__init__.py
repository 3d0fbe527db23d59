"""home_mixer scorers."""
