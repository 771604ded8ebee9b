"""Numbered schema migrations; see models/schema.py."""
