"""thunder package."""
