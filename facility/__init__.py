"""facility package."""
