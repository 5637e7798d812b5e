"""Policy format, loading and validation."""
