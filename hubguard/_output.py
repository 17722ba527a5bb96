"""Write an output file (a report, a lock file) atomically, turning any ``OSError`` into a clear error.

The parent folder is created when missing. The text goes to a temporary file next to the
target and replaces it in one ``os.replace``, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hubguard.errors import OutputFileError


def write_text_atomic(path: str | Path, text: str, *, description: str) -> Path:
    """Write ``text`` to ``path`` as UTF-8, creating parent folders, and return the path.

    Args:
        path: the file to write.
        text: its new content.
        description: the file's role in the error message ("the lock file", "the json report").

    Raises:
        OutputFileError: the folder cannot be created or the file cannot be written.
    """
    target = Path(path)
    temporary: str | None = None
    try:
        if target.is_dir():
            raise IsADirectoryError(f"{target} is a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, target)
        temporary = None
    except OSError as error:
        raise OutputFileError(
            f"cannot write {description} to {target}: {error}",
            path=str(target),
            hint="pass an output path in a folder you can write to",
        ) from error
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
    return target


__all__ = ["write_text_atomic"]
