"""Session fixtures with trained demo models (owned by the training work)."""
