"""``rapid bench``: measure a runtime (placeholder until the module is written)."""
