"""LLM backends, one module each, selected by name from a closed registry."""
