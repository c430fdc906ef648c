"""hazmat package."""
