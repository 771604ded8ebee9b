"""Checks that the health endpoint and the setup report."""
import functools


@functools.cache
def harfbuzz_subsetting():
    """True when WeasyPrint can subset fonts with HarfBuzz (libharfbuzz-subset0).

    Without it WeasyPrint falls back to subsetting in Python, and a one-page
    Chinese sheet takes ~10 s instead of ~0.3 s.
    """
    try:
        from weasyprint.text.ffi import harfbuzz_subset
    except (ImportError, OSError):
        return False
    return harfbuzz_subset is not None
