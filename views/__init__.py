"""One blueprint per domain: thin HTTP handlers."""
