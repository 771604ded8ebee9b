"""Online backup of the SQLite database."""
import os
import sqlite3
from pathlib import Path


def backup_sqlite(source_path, target_path, pages_per_step=1024):
    """Copy a live SQLite database to `target_path` with the online backup API.

    Writers may go on while it runs: SQLite restarts the copy of pages that
    change underneath, and the result is a consistent snapshot. The copy is
    made with mode 0600, a missing folder with 0700. Returns the size in bytes
    of the copy; raises FileExistsError when `target_path` exists.
    """
    target = Path(target_path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The copy holds everything the database does: readable by this user alone (its
    # journal gets the same mode). O_EXCL: an existing file is never overwritten.
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30)
    dest = sqlite3.connect(str(target))
    try:
        source.backup(dest, pages=pages_per_step)
        dest.execute("PRAGMA journal_mode=DELETE")
    finally:
        dest.close()
        source.close()
    return target.stat().st_size
