"""Work that is neither HTTP nor a table."""
