"""home_mixer candidate_hydrators."""
