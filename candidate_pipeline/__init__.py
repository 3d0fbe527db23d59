"""candidate_pipeline package."""
