"""Write outputs so that a crash or a bad row never leaves a half-written file or folder under the final name.

Everything is built in a temporary sibling of the target (same file system, so the final step is a
rename) and moved into place only when complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def check_target(target: str | os.PathLike, overwrite: bool) -> Path:
    """Fail early (before any work) if `target` exists and may not be replaced."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists (pass overwrite=True / --overwrite to replace it)")
    return target


@contextmanager
def atomic_directory(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder; on normal exit it becomes `target`, on error it is deleted."""
    target = check_target(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
        replace_path(staging, target, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_path(staging: Path, target: Path, overwrite: bool) -> None:
    """Move a finished `staging` file or folder to `target`, replacing an old one only if `overwrite`."""
    if not target.exists():
        os.rename(staging, target)
        return
    check_target(target, overwrite)
    if staging.is_file() and not target.is_dir():
        os.replace(staging, target)
        return
    # A folder cannot be swapped in one rename: move the old one aside first, then drop it.
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.rename(target, retired / target.name)
    os.rename(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder."""
    path = Path(path)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


__all__ = ["atomic_directory", "check_target", "replace_path", "write_text_atomically"]
