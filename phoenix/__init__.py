"""phoenix package."""
