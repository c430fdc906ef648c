"""The screens of the TUI (one per module)."""
