"""home_mixer query_hydrators."""
