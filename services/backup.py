"""Online backup of the SQLite database."""
import sqlite3
from pathlib import Path


def backup_sqlite(source_path, target_path, pages_per_step=1024):
    """Copy a live SQLite database to `target_path` with the online backup API.

    Writers may go on while it runs: SQLite restarts the copy of pages that
    change underneath, and the result is a consistent snapshot. Returns the
    size in bytes of the copy.
    """
    target = Path(target_path)
    if target.exists():
        raise FileExistsError(str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30)
    dest = sqlite3.connect(str(target))
    try:
        source.backup(dest, pages=pages_per_step)
        dest.execute("PRAGMA journal_mode=DELETE")
    finally:
        dest.close()
        source.close()
    return target.stat().st_size
