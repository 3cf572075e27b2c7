"""nodeforge's built-in node families, one module each; the registry finds them through the entry point."""
