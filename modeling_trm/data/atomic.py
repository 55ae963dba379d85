"""Write outputs so that a crash or a bad row never leaves a half-written file or folder under the final name.

Everything is built in a temporary sibling of the target (same file system, so the final step is a
rename) and moved into place only when complete.

Staging names carry the writer's process id (`.NAME.PID.XXXX.tmp`): a later write of the same target
removes the staging leftovers of writers that no longer run (a killed build), never those of a live one.

Fault injection (tests only): `TRM_FAULT_INJECT=kill:<point>` (`modeling_trm.faults`) kills the
process at one of the `WRITE_POINTS` of a write, as a crash or `kill -9` would there;
`tests/test_faults_interrupted.py` uses them to land kills mid-write.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..faults import WRITE_POINTS, fault_point


# The points of a write where the fault tests land a kill (`faults.WRITE_POINTS`).
KILL_POINTS = WRITE_POINTS


def _staging_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}."


def remove_stale_staging(target: Path) -> list[Path]:
    """Delete `.NAME.PID.*.tmp` / `.old` siblings of `target` left by writers whose process is gone."""
    removed = []
    if not target.parent.is_dir():
        return removed
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*"):
        parts = leftover.name[len(target.name) + 2:].split(".")
        if len(parts) < 3 or not parts[0].isdigit() or parts[-1] not in ("tmp", "old"):
            continue
        if _process_alive(int(parts[0])):
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


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
    remove_stale_staging(target)
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(target), suffix=".tmp", dir=target.parent))
    try:
        yield staging
        fault_point("staging-complete")
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
    retired = Path(tempfile.mkdtemp(prefix=_staging_prefix(target), suffix=".old", dir=target.parent))
    os.rename(target, retired / target.name)
    fault_point("old-moved-aside")
    os.rename(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder."""
    path = Path(path)
    remove_stale_staging(path)
    handle, temp_name = tempfile.mkstemp(prefix=_staging_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        fault_point("temp-file-written")
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


__all__ = ["KILL_POINTS", "atomic_directory", "check_target", "fault_point", "remove_stale_staging", "replace_path",
           "write_text_atomically"]
